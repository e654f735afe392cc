"""IoU tracker: stable ids for the people of a clip.

Greedy matching on box IoU (highest pairs first), the standard cheap choice for
video at frame rate where a person moves little between frames. A track that is
not matched survives ``max_age`` frames (its last box is kept), so a person the
detector misses for a few frames gets the same id back.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from privvid.detect.base import Detections
from privvid.detect.common import box_iou


@dataclass
class _Track:
    tid: int
    box: np.ndarray
    age: int = 0  # frames since last matched


class IouTracker:
    def __init__(self, iou_threshold: float = 0.3, max_age: int = 10) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if max_age < 0:
            raise ValueError(f"max_age must be >= 0, got {max_age}")
        self.iou_threshold = iou_threshold
        self.max_age = max_age
        self.reset()

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 0

    def update(self, dets: Detections) -> Detections:
        """Return ``dets`` with ``track_ids`` filled in (a new object; the input is not modified)."""
        n = len(dets)
        ids = np.full(n, -1, dtype=np.int64)
        if self._tracks and n:
            iou = box_iou(dets.boxes, np.stack([t.box for t in self._tracks]))
            pairs = np.argwhere(iou >= self.iou_threshold)
            order = np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")
            used_d: set[int] = set()
            used_t: set[int] = set()
            for d, t in pairs[order]:
                if d in used_d or t in used_t:
                    continue
                used_d.add(int(d))
                used_t.add(int(t))
                track = self._tracks[t]
                ids[d] = track.tid
                track.box = dets.boxes[d].astype(np.float32).copy()
                track.age = -1  # incremented to 0 below
        for d in np.flatnonzero(ids < 0):
            ids[d] = self._next_id
            self._tracks.append(_Track(self._next_id, dets.boxes[d].astype(np.float32).copy(), age=-1))
            self._next_id += 1
        for track in self._tracks:
            track.age += 1
        self._tracks = [t for t in self._tracks if t.age <= self.max_age]
        return replace(dets, track_ids=ids)

    def info(self) -> dict[str, object]:
        return {"name": "iou", "iou_threshold": self.iou_threshold, "max_age": self.max_age}
