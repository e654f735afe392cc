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


def build_mask_stream(cfg=None):  # noqa: ANN001, ANN201 - re-exported lazily (numpy/cv2 only when used)
    from privvid.detect.stream import build_mask_stream as _build

    return _build(cfg)


__all__ = ["DETECTORS", "Detections", "Detector", "build_mask_stream"]
