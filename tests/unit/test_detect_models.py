"""Unit tests of the model backends' own logic with tiny randomly initialised models (no real weights)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from privvid.config import DetectConfig
from privvid.detect import Detections
from privvid.detect.common import mask_box
from privvid.errors import BackendFailure
from sam_helpers import tiny_sam

torch = pytest.importorskip("torch")


class FixedBase:
    name = "fixed"

    def __init__(self, dets: Detections) -> None:
        self.dets = dets
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1

    def __call__(self, frame):
        return self.dets

    def info(self):
        return {"name": self.name}


def test_sam_refinement_clips_to_boxes_and_never_drops_base_pixels(rng) -> None:
    pytest.importorskip("segment_anything")
    from privvid.detect.sam_backend import SamRefinedDetector

    h, w = 60, 80
    m0 = np.zeros((h, w), bool)
    m0[10:40, 5:25] = True
    m1 = np.zeros((h, w), bool)
    m1[20:55, 50:70] = True
    extra = np.zeros((h, w), bool)
    extra[0, 0] = True
    kp = rng.random((2, 33, 3)).astype(np.float32)
    base = Detections(masks=np.stack([m0, m1]), boxes=np.stack([mask_box(m0), mask_box(m1)]),
                      scores=np.array([0.9, 0.8], np.float32), keypoints=kp, extra=extra)
    det = SamRefinedDetector(DetectConfig(backend="sam"), model=tiny_sam(), base=FixedBase(base))
    frame = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    out = det(frame)
    assert out.masks.shape == (2, h, w) and out.masks.dtype == bool
    np.testing.assert_array_equal(out.scores, base.scores)
    np.testing.assert_array_equal(out.keypoints, kp)
    for i, (x0, y0, x1, y1) in enumerate([(5, 10, 25, 40), (50, 20, 70, 55)]):
        mx, my = 0.08 * (x1 - x0), 0.08 * (y1 - y0)
        ys, xs = np.nonzero(out.masks[i])
        assert len(xs) > 0
        # SAM's mask stays inside the (slightly grown) prompt box
        assert xs.min() >= np.floor(x0 - mx) - 1 and xs.max() < np.ceil(x1 + mx) + 1
        assert ys.min() >= np.floor(y0 - my) - 1 and ys.max() < np.ceil(y1 + my) + 1
        np.testing.assert_array_equal(out.boxes[i], mask_box(out.masks[i]))
    # fail closed: every base person pixel is still in the union (instances or extra)
    assert not (base.union() & ~out.union()).any()
    assert out.extra[0, 0]
    det.reset()
    assert det.base.resets == 1
    assert det.info()["base"] == {"name": "fixed"}


def test_sam_passes_empty_frames_through() -> None:
    pytest.importorskip("segment_anything")
    from privvid.detect.sam_backend import SamRefinedDetector

    det = SamRefinedDetector(DetectConfig(backend="sam"), model=tiny_sam(), base=FixedBase(Detections.empty(30, 40)))
    out = det(np.zeros((30, 40, 3), np.uint8))
    assert len(out) == 0 and out.shape == (30, 40)
    with pytest.raises(ValueError, match="sam_base"):
        SamRefinedDetector(DetectConfig(backend="sam", sam_base="sam"), model=tiny_sam())


@pytest.fixture(scope="module")
def yolo_pts(tmp_path_factory):
    pytest.importorskip("ultralytics")
    d = tmp_path_factory.mktemp("yolo")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(d / "cfg"))
    from ultralytics import YOLO

    seg, det = d / "rand-seg.pt", d / "rand-det.pt"
    YOLO("yolov8n-seg.yaml").save(seg)   # architecture from the yaml bundled in ultralytics, random weights
    YOLO("yolov8n.yaml").save(det)
    return seg, det


def test_yolo_loads_a_pt_segmentation_checkpoint(yolo_pts, rng) -> None:
    from privvid.detect.yolo_backend import YoloDetector

    seg, _ = yolo_pts
    from privvid.errors import ConfigError

    with pytest.raises(ConfigError, match="trust-model-files"):   # a .pt is a pickle: refused by default
        YoloDetector(DetectConfig(backend="yolo", weights=seg))
    det = YoloDetector(DetectConfig(backend="yolo", weights=seg, min_score=0.0, imgsz=128, trust_model_files=True))
    frame = rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)
    out = det(frame)
    # random weights: any number of people, but always a well-formed result at frame size
    assert out.shape == (72, 96) and out.masks.shape[1:] == (72, 96)
    assert len(out.boxes) == len(out.scores) == len(out)
    info = det.info()
    assert info["weights"] == str(seg) and info["person_class"] == 0


def test_yolo_rejects_a_detection_only_checkpoint(yolo_pts) -> None:
    from privvid.detect.yolo_backend import YoloDetector

    _, det = yolo_pts
    with pytest.raises(BackendFailure, match="'detect' model"):
        YoloDetector(DetectConfig(backend="yolo", weights=det, trust_model_files=True))


def test_yolo_reports_a_corrupt_file(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    from privvid.detect.yolo_backend import YoloDetector

    bad = tmp_path / "broken-seg.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(BackendFailure, match="broken-seg.pt"):
        YoloDetector(DetectConfig(backend="yolo", weights=bad, trust_model_files=True))


def test_yolo_options_are_checked_before_any_model_loads():
    from privvid.config import DetectConfig
    from privvid.detect import validate_options
    from privvid.detect.yolo_backend import YoloOptions
    from privvid.errors import ConfigError

    validate_options(DetectConfig(backend="yolo", options={"refine": False, "box_grow": 0.2}))
    with pytest.raises(ConfigError, match="refnie"):
        validate_options(DetectConfig(backend="yolo", options={"refnie": False}))
    with pytest.raises(ConfigError, match="refine must be bool"):
        validate_options(DetectConfig(backend="yolo", options={"refine": "maybe"}))
    with pytest.raises(ConfigError, match="crop_scale"):
        YoloOptions(crop_scale=0.5)
    assert YoloOptions().refine is True
