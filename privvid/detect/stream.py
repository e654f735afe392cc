"""Streaming removal masks: detection -> tracking -> temporal union -> dilation.

Frames go in one at a time; a frame's removal mask is final once ``delay``
(= ``DetectConfig.temporal``) later frames have been seen, because it is the
union of the dilated person masks of frames i-delay .. i+delay. Each instance is
dilated by ``DetectConfig.dilate_rel`` x its own box height (at least
``dilate_min_frame`` x the frame height and ``dilate_min`` px; elliptical kernel),
so a mask grows with the person, not with the frame, and the same clip gives the
same removal at any resolution. Each connected piece of the person pixels of no
instance (``extra``) grows the same way by its own size, and by at least
``DetectConfig.dilate`` px; ``dilate_rel = 0`` uses the fixed ``DetectConfig.dilate``
px for everything. Only 2*delay+1 per-frame masks are held, never the clip.

A detector with ``tracks = True`` gives its own track ids; otherwise the IoU
tracker assigns them.

A backend exception propagates unchanged (the pipeline quarantines the clip); a
backend result of the wrong type or shape raises :class:`BackendFailure`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from privvid.config import DetectConfig
from privvid.detect.base import Detections, Detector
from privvid.detect.common import check_frame, dilate, mask_box, validate
from privvid.detect.track import IouTracker

Output = tuple[Detections, np.ndarray]


class MaskStream:
    def __init__(self, detector: Detector, cfg: DetectConfig | None = None,
                 tracker: IouTracker | None = None) -> None:
        self.cfg = cfg or DetectConfig()
        if self.cfg.temporal < 0:
            raise ValueError(f"temporal must be >= 0, got {self.cfg.temporal}")
        if self.cfg.dilate < 0:
            raise ValueError(f"dilate must be >= 0, got {self.cfg.dilate}")
        self.detector = detector
        self.tracker = tracker or IouTracker(self.cfg.track_iou, self.cfg.track_max_age)
        self.own_tracks = bool(getattr(detector, "tracks", False)) and tracker is None
        self.delay = int(self.cfg.temporal)
        self._shape: tuple[int, int] | None = None
        self._unions: deque[tuple[int, np.ndarray]] = deque(maxlen=2 * self.delay + 1)
        self._pending: deque[tuple[int, Detections]] = deque()
        self._count = 0

    def reset(self) -> None:
        self.detector.reset()
        self.tracker.reset()
        self._shape = None
        self._unions.clear()
        self._pending.clear()
        self._count = 0

    def _removal(self, i: int, last: int) -> np.ndarray:
        lo, hi = i - self.delay, min(i + self.delay, last)
        out: np.ndarray | None = None
        for j, u in self._unions:
            if lo <= j <= hi:
                out = u.copy() if out is None else (out | u)
        assert out is not None
        return out

    def _dilated(self, dets: Detections) -> np.ndarray:
        """This frame's person pixels, each instance grown by its own size (see the module doc)."""
        cfg = self.cfg
        if cfg.dilate_rel <= 0:
            return dilate(dets.union(), cfg.dilate)
        h, w = dets.shape
        out = np.zeros((h, w), bool)
        least = max(int(cfg.dilate_min), int(round(cfg.dilate_min_frame * h)))
        # (box, least kernel, the piece's pixels inside a window): a piece is only ever read in its window
        pieces: list[tuple[Any, int, Callable[[slice, slice], np.ndarray]]] = [
            (mask_box(mask), least, lambda ys, xs, m=mask: m[ys, xs]) for mask in dets.masks if mask.any()]
        if dets.extra is not None and dets.extra.any():
            # person pixels of no instance: each connected piece grows by its own size like an instance, and
            # by at least the fixed `dilate` px
            n, labels, stats, _ = cv2.connectedComponentsWithStats(dets.extra.view(np.uint8), connectivity=8)
            floor = max(least, int(cfg.dilate))
            pieces += [((x, y, x + bw, y + bh), floor, lambda ys, xs, k=k: labels[ys, xs] == k)
                       for k, (x, y, bw, bh) in enumerate(stats[1:, :4].tolist(), 1)]
        for box, floor, piece in pieces:
            k = max(floor, int(round(cfg.dilate_rel * float(box[3] - box[1]))))
            k += 1 - k % 2  # odd: the kernel is centred
            r = k // 2 + 1
            x0, y0 = max(int(box[0]) - r, 0), max(int(box[1]) - r, 0)
            x1, y1 = min(int(np.ceil(box[2])) + r, w), min(int(np.ceil(box[3])) + r, h)
            if x1 <= x0 or y1 <= y0:
                continue
            window = (slice(y0, y1), slice(x0, x1))
            out[window] |= dilate(piece(*window), k)
        return out

    def push(self, frame: np.ndarray) -> list[Output]:
        frame = check_frame(frame)
        shape = frame.shape[:2]
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError(f"frame size changed within a clip: {self._shape} -> {shape}")
        dets = validate(self.detector(frame), shape, getattr(self.detector, "name", "?"))
        if not self.own_tracks:
            dets = self.tracker.update(dets)
        idx = self._count
        self._count += 1
        self._unions.append((idx, self._dilated(dets)))
        self._pending.append((idx, dets))
        out: list[Output] = []
        while self._pending and self._pending[0][0] + self.delay <= idx:
            i, d = self._pending.popleft()
            out.append((d, self._removal(i, idx)))
        return out

    def flush(self) -> list[Output]:
        last = self._count - 1
        out = [(d, self._removal(i, last)) for i, d in self._pending]
        self._pending.clear()
        return out

    def run(self, frames: Iterable[np.ndarray]) -> list[Output]:
        """A whole in-memory clip at once (tests and benchmarks): reset, push every frame, flush."""
        self.reset()
        out: list[Output] = []
        for frame in frames:
            out += self.push(frame)
        return out + self.flush()

    def info(self) -> dict[str, Any]:
        return {
            "backend": getattr(self.detector, "name", type(self.detector).__name__),
            "detector": self.detector.info(),
            "tracker": {"name": "detector's own"} if self.own_tracks else self.tracker.info(),
            "temporal": self.delay,
            "dilate": self.cfg.dilate,
            "dilate_rel": self.cfg.dilate_rel,
            "dilate_min": self.cfg.dilate_min,
            "dilate_min_frame": self.cfg.dilate_min_frame,
            "dilate_kernel": "ellipse",
        }


def build_mask_stream(cfg: DetectConfig | None = None) -> MaskStream:
    """The full per-clip chain for ``cfg.backend`` (raises UnknownBackend / MissingWeights early)."""
    from privvid.detect import DETECTORS

    cfg = cfg or DetectConfig()
    return MaskStream(DETECTORS.create(cfg.backend, cfg), cfg)
