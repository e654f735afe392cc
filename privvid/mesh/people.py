"""Small helpers for running MeshStage on its own (tests, benchmarks, demos).

``decode`` reads frames with PyAV; ``YoloPoseDetector`` finds every person in a frame
with ultralytics pose weights and links them over time by box overlap, producing
``privvid.detect.Detections`` (box-shaped masks, tracks, COCO landmarks in the
BlazePose layout). The pipeline proper uses the detect stage instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from privvid.detect.base import Detections
from privvid.mesh.pose import COCO_TO_BLAZE, NUM_LANDMARKS


def decode(path: str | os.PathLike, size: tuple[int, int] | None = None, max_frames: int | None = None
           ) -> np.ndarray:
    """RGB uint8 frames (T, H, W, 3), optionally resized to size=(width, height)."""
    import av

    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if size is not None:
                frame = frame.reformat(width=size[0], height=size[1])
            out.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(out) >= max_frames:
                break
    return np.stack(out)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-6)


class YoloPoseDetector:
    """People as boxes + COCO landmarks from ultralytics pose weights, with greedy IoU tracking."""

    def __init__(self, weights: str | os.PathLike, min_score: float = 0.35, imgsz: int = 320,
                 trust: bool = False) -> None:
        from privvid.io.model_files import check_model_file

        path = check_model_file(weights, "ultralytics pose weights", "Pass an existing pose model file.",
                                trust=trust, allowed=("tflite", "onnx"))
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".cache" / "privvid" / "ultralytics"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        self.model = YOLO(str(path), task="pose")
        self.min_score = min_score
        self.imgsz = imgsz
        self.reset()

    def reset(self) -> None:
        self._prev_boxes = np.zeros((0, 4), np.float32)
        self._prev_ids = np.zeros(0, np.int64)
        self._next_id = 0

    def __call__(self, frame: np.ndarray) -> Detections:
        h, w = frame.shape[:2]
        res = self.model.predict(np.ascontiguousarray(frame[..., ::-1]), imgsz=self.imgsz, conf=self.min_score,
                                 verbose=False)[0]
        boxes = res.boxes.xyxy.cpu().numpy().astype(np.float32) if len(res.boxes) else np.zeros((0, 4), np.float32)
        scores = res.boxes.conf.cpu().numpy().astype(np.float32) if len(res.boxes) else np.zeros(0, np.float32)
        n = len(boxes)
        kp = np.zeros((n, NUM_LANDMARKS, 3), np.float32)
        if n and res.keypoints is not None:
            data = res.keypoints.data.cpu().numpy()
            kp[:, COCO_TO_BLAZE] = data[:, :, :3]
        ids = np.full(n, -1, np.int64)
        if n and len(self._prev_boxes):
            iou = _iou(boxes, self._prev_boxes)
            while iou.size and iou.max() > 0.3:
                i, j = np.unravel_index(np.argmax(iou), iou.shape)
                ids[i] = self._prev_ids[j]
                iou[i, :] = 0
                iou[:, j] = 0
        for i in range(n):
            if ids[i] < 0:
                ids[i] = self._next_id
                self._next_id += 1
        self._prev_boxes, self._prev_ids = boxes, ids
        masks = np.zeros((n, h, w), bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.astype(int)):
            masks[i, max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        return Detections(masks=masks, boxes=boxes, scores=scores, track_ids=ids, keypoints=kp)

    def info(self) -> dict[str, Any]:
        return {"name": "yolo-pose (mesh helper)", "min_score": self.min_score}
