"""Streaming removal masks: detection -> tracking -> temporal union -> dilation.

Frames go in one at a time; a frame's removal mask is final once ``delay``
(= ``DetectConfig.temporal``) later frames have been seen, because it is the
union of the person masks of frames i-delay .. i+delay, dilated by
``DetectConfig.dilate`` px (elliptical kernel of that width). Only 2*delay+1
per-frame masks are held, never the clip.

A backend exception propagates unchanged (the pipeline quarantines the clip); a
backend result of the wrong type or shape raises :class:`BackendFailure`.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Iterable

import numpy as np

from privvid.config import DetectConfig
from privvid.detect.base import Detections, Detector
from privvid.detect.common import check_frame, dilate, validate
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
        return dilate(out, self.cfg.dilate)

    def push(self, frame: np.ndarray) -> list[Output]:
        frame = check_frame(frame)
        shape = frame.shape[:2]
        if self._shape is None:
            self._shape = shape
        elif shape != self._shape:
            raise ValueError(f"frame size changed within a clip: {self._shape} -> {shape}")
        dets = validate(self.detector(frame), shape, getattr(self.detector, "name", "?"))
        dets = self.tracker.update(dets)
        idx = self._count
        self._count += 1
        self._unions.append((idx, dets.union()))
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
            "tracker": self.tracker.info(),
            "temporal": self.delay,
            "dilate": self.cfg.dilate,
            "dilate_kernel": "ellipse",
        }


def build_mask_stream(cfg: DetectConfig | None = None) -> MaskStream:
    """The full per-clip chain for ``cfg.backend`` (raises UnknownBackend / MissingWeights early)."""
    from privvid.detect import DETECTORS

    cfg = cfg or DetectConfig()
    return MaskStream(DETECTORS.create(cfg.backend, cfg), cfg)
