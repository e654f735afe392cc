"""Pose sources: 2D (and, for BlazePose, metric 3D) body landmarks per person crop.

Every source returns landmarks in the BlazePose 33-point layout so the fitter
has one correspondence table; sources without a landmark leave its confidence 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from privvid.detect.common import one_euro
from privvid.runtime.native_log import quiet_graph

NUM_LANDMARKS = 33
# COCO-17 (ultralytics pose) -> BlazePose-33 index
COCO_TO_BLAZE = [0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28]


@dataclass
class PoseResult:
    """Landmarks of one person at full-frame pixel coordinates.

    image: (33, 3) x, y, confidence
    world: (33, 3) metric 3D (x right, y down, z away from the camera, origin between the hips) or None
    """

    image: np.ndarray
    world: np.ndarray | None = None


def crop_box(box: np.ndarray, width: int, height: int, pad: float = 0.25) -> tuple[int, int, int, int]:
    """A padded, roughly square crop around a person box, clipped to the frame."""
    x0, y0, x1, y1 = [float(v) for v in box]
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1)
    side = max(x1 - x0, y1 - y0) * (1.0 + 2 * pad)
    half = 0.5 * side
    a, b = int(max(0, np.floor(cx - half))), int(max(0, np.floor(cy - half)))
    c, d = int(min(width, np.ceil(cx + half))), int(min(height, np.ceil(cy + half)))
    return a, b, c, d


class MediapipePose:
    """BlazePose GHUM (mediapipe legacy solution, bundled model_complexity=1): a video-mode tracker per
    track id for up to ``max_tracks`` people, one shared still-image graph for the rest.

    A tracker graph costs ~75 ms to build and ~100 MB. When all ``max_tracks`` are in use, the least
    recently used one is replaced only once its person has been gone ``stale`` frames; until then a new
    person goes through the still-image graph (a detection on every call, no graph to build), so a crowd
    no longer rebuilds graphs on every frame."""

    name = "mediapipe"

    def __init__(self, weights: Path | None = None, min_confidence: float = 0.3, max_tracks: int = 8,
                 stale: int = 5) -> None:
        if weights is not None:
            raise ValueError("the mediapipe pose source uses its bundled model; --pose-weights is for 'yolo'")
        import mediapipe as mp

        self._mp = mp
        self.min_confidence = min_confidence
        self.max_tracks = max_tracks
        self.stale = max(0, int(stale))
        self._trackers: dict[int, Any] = {}   # least recently used first
        self._last: dict[int, int] = {}       # track id -> frame it was last looked at
        self._static: Any = None
        self._calls = 0
        self.graphs_built = 0

    def _still(self) -> Any:
        if self._static is None:
            self._static = self._make(static=True)
            self.graphs_built += 1
        return self._static

    def _tracker(self, track_id: int, frame_index: int | None = None) -> Any:
        if track_id < 0:
            return self._still()
        now = self._calls if frame_index is None else int(frame_index)
        if track_id in self._trackers:
            self._trackers[track_id] = self._trackers.pop(track_id)   # most recently used now
            self._last[track_id] = now
            return self._trackers[track_id]
        self._last[track_id] = now
        if len(self._trackers) >= self.max_tracks:
            oldest = next(iter(self._trackers))
            if now - self._last.get(oldest, now) <= self.stale:
                return self._still()   # every tracker's person is still around
            self._trackers.pop(oldest).close()
        self._trackers[track_id] = self._make(static=False)
        self.graphs_built += 1
        return self._trackers[track_id]

    def _make(self, static: bool) -> Any:
        return quiet_graph(
            self._mp.solutions.pose.Pose, static_image_mode=static, model_complexity=1, smooth_landmarks=True,
            enable_segmentation=False, min_detection_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
        )

    def reset(self) -> None:
        for t in self._trackers.values():
            t.close()
        self._trackers.clear()
        self._last.clear()
        self._calls = 0
        self.graphs_built = 0

    def __call__(self, frame: np.ndarray, box: np.ndarray, track_id: int = -1,
                 frame_index: int | None = None) -> PoseResult | None:
        h, w = frame.shape[:2]
        self._calls += 1
        a, b, c, d = crop_box(box, w, h)
        if c - a < 8 or d - b < 8:
            return None
        crop = np.ascontiguousarray(frame[b:d, a:c])
        res = self._tracker(int(track_id), frame_index).process(crop)
        if res.pose_landmarks is None:
            return None
        cw, ch = c - a, d - b
        img = np.array([[lm.x * cw + a, lm.y * ch + b, lm.visibility] for lm in res.pose_landmarks.landmark],
                       dtype=np.float32)
        world = None
        if res.pose_world_landmarks is not None:
            world = np.array([[lm.x, lm.y, lm.z] for lm in res.pose_world_landmarks.landmark], dtype=np.float32)
        return PoseResult(image=img, world=world)

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "model": "BlazePose GHUM full (model_complexity=1)",
                "mediapipe": getattr(self._mp, "__version__", "unknown"), "max_tracks": self.max_tracks,
                "graphs_built": self.graphs_built}


class YoloPose:
    """Ultralytics pose weights (COCO-17, 2D only), run per person crop."""

    name = "yolo"

    def __init__(self, weights: Path | None = None, min_confidence: float = 0.25, trust: bool = False) -> None:
        from privvid.io.model_files import check_model_file

        path = check_model_file(weights, "ultralytics pose weights",
                                "Pass --pose-weights PATH (e.g. yolo11n-pose_int8.tflite or .onnx); nothing is "
                                "downloaded.", trust=trust, allowed=("tflite", "onnx"))
        os.environ.setdefault("YOLO_CONFIG_DIR", str(Path.home() / ".cache" / "privvid" / "ultralytics"))
        os.environ.setdefault("YOLO_OFFLINE", "1")
        from ultralytics import YOLO

        self.path = path
        self.model = YOLO(str(path), task="pose")
        self.min_confidence = min_confidence

    def reset(self) -> None:
        pass

    def __call__(self, frame: np.ndarray, box: np.ndarray, track_id: int = -1,
                 frame_index: int | None = None) -> PoseResult | None:
        h, w = frame.shape[:2]
        a, b, c, d = crop_box(box, w, h, pad=0.15)
        if c - a < 8 or d - b < 8:
            return None
        crop = np.ascontiguousarray(frame[b:d, a:c, ::-1])  # ultralytics expects BGR arrays
        res = self.model.predict(crop, imgsz=320, conf=self.min_confidence, verbose=False)[0]
        if res.keypoints is None or len(res.keypoints) == 0:
            return None
        boxes = res.boxes.xyxy.cpu().numpy()
        # the person whose box best matches the crop's centre
        centre = np.array([(box[0] + box[2]) / 2 - a, (box[1] + box[3]) / 2 - b])
        bc = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2], axis=1)
        i = int(np.argmin(np.linalg.norm(bc - centre, axis=1)))
        kp = res.keypoints.data[i].cpu().numpy()  # (17, 3)
        img = np.zeros((NUM_LANDMARKS, 3), dtype=np.float32)
        img[COCO_TO_BLAZE, 0] = kp[:, 0] + a
        img[COCO_TO_BLAZE, 1] = kp[:, 1] + b
        img[COCO_TO_BLAZE, 2] = kp[:, 2] if kp.shape[1] > 2 else 1.0
        return PoseResult(image=img, world=None)

    def info(self) -> dict[str, Any]:
        import ultralytics

        from privvid.io.model_files import recorded_path

        return {"name": self.name, "weights": recorded_path(self.path), "ultralytics": ultralytics.__version__}


class LandmarkFilter:
    """One-euro smoothing of each track's landmarks from frame to frame (the filter mediapipe's pose
    tracker applies to its own output), for landmarks that come without it (the detector's, one model
    run per crop). Image landmarks are filtered in units of the person's landmark box (its mean side),
    world landmarks in metres; a track not seen on the frame before starts afresh. Frames count as
    ``fps`` a second (the stage does not know the clip's rate; 30, as for most action clips)."""

    IMAGE = (0.05, 80.0)   # (min_cutoff, beta), as mediapipe's pose landmark filter
    WORLD = (0.1, 40.0)

    def __init__(self, fps: float = 30.0, d_cutoff: float = 1.0) -> None:
        self.fps = float(fps)
        self.d_cutoff = d_cutoff
        self._state: dict[int, tuple[int, dict[str, tuple[np.ndarray, np.ndarray]]]] = {}

    def reset(self) -> None:
        self._state.clear()

    def _step(self, key: str, x: np.ndarray, old: dict, new: dict, params: tuple[float, float],
              scale: float = 1.0) -> np.ndarray:
        """One filter step of ``x``; the speed that opens the filter is measured in units of ``scale``."""
        out, new[key] = one_euro(x, old.get(key), *params, fps=self.fps, d_cutoff=self.d_cutoff, scale=scale)
        return out

    def __call__(self, track_id: int, frame_index: int, res: PoseResult) -> PoseResult:
        last, old = self._state.get(track_id, (None, {}))
        if last != frame_index - 1:
            old = {}
        new: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        img = res.image.astype(np.float64)
        conf = img[:, 2] >= 0.3
        xy = img[conf, :2] if conf.sum() >= 2 else img[:, :2]
        scale = max(float(np.mean(xy.max(axis=0) - xy.min(axis=0))), 1.0)
        image = res.image.copy()
        image[:, :2] = self._step("image", img[:, :2], old, new, self.IMAGE, scale)
        world = None
        if res.world is not None:
            world = self._step("world", res.world.astype(np.float64), old, new, self.WORLD).astype(np.float32)
        # a track not seen on the frame before starts afresh, so only this frame's and the last one's states
        # can be read again: the others are dropped rather than kept for the whole clip
        self._state = {t: st for t, st in self._state.items() if st[0] >= frame_index - 1}
        self._state[track_id] = (frame_index, new)
        return PoseResult(image=image, world=world)
