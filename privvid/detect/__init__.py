"""Person detection, segmentation and tracking behind one interface.

Backends register here by name; ``create_detector`` builds the full per-clip
chain (backend -> tracking -> temporal union + dilation) from a DetectConfig.
"""

from privvid.detect.base import Detections, Detector
from privvid.registry import Registry

DETECTORS = Registry("detector")
# name -> "module:factory"; each factory takes a DetectConfig
DETECTORS.register("mediapipe", "privvid.detect.mediapipe_backend:MediapipeDetector")
DETECTORS.register("yolo", "privvid.detect.yolo_backend:YoloDetector")
DETECTORS.register("sam", "privvid.detect.sam_backend:SamRefinedDetector")

__all__ = ["DETECTORS", "Detections", "Detector"]
