"""The detector interface: people per frame as instance masks, boxes, scores and track ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class Detections:
    """People found in one frame, at the frame's resolution.

    masks:     (N, H, W) bool, one instance mask per person
    boxes:     (N, 4) float32, x0, y0, x1, y1 in pixels
    scores:    (N,) float32 in [0, 1]
    track_ids: (N,) int64, -1 until a tracker assigned ids
    keypoints: optional (N, K, 3) float32 (x, y, confidence) when the backend has them
    world_keypoints: optional (N, K, 3) float32 metric 3D landmarks of the same people (BlazePose's world
               landmarks), where the backend has them; a person's row counts only where ``keypoints``
               has confident points for them
    extra:     optional (H, W) bool pixels that belong to people but to no instance
               (e.g. a semantic person mask); they are removed too
    """

    masks: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray = field(default=None)  # type: ignore[assignment]
    keypoints: np.ndarray | None = None
    extra: np.ndarray | None = None
    world_keypoints: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.masks)
        if self.track_ids is None:
            self.track_ids = np.full(n, -1, dtype=np.int64)
        if not (len(self.boxes) == len(self.scores) == len(self.track_ids) == n):
            raise ValueError("masks, boxes, scores and track_ids must have the same length")

    @classmethod
    def empty(cls, height: int, width: int) -> "Detections":
        return cls(
            masks=np.zeros((0, height, width), dtype=bool),
            boxes=np.zeros((0, 4), dtype=np.float32),
            scores=np.zeros(0, dtype=np.float32),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return self.masks.shape[1:] if self.extra is None else self.extra.shape  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.masks)

    def packed(self) -> "PackedDetections":
        """The same detections with each mask held as the crop of its bounding box (see
        :class:`PackedDetections`); ``packed().unpack()`` equals this."""
        return PackedDetections(self.shape, [_crop(m) for m in self.masks],
                                None if self.extra is None else _crop(self.extra),
                                {"boxes": self.boxes, "scores": self.scores, "track_ids": self.track_ids,
                                 "keypoints": self.keypoints, "world_keypoints": self.world_keypoints})

    def union(self) -> np.ndarray:
        """All person pixels of this frame as one (H, W) bool mask."""
        h, w = self.shape
        out = self.masks.any(axis=0) if len(self.masks) else np.zeros((h, w), dtype=bool)
        if self.extra is not None:
            out = out | self.extra
        return out


def _crop(mask: np.ndarray) -> tuple[int, int, np.ndarray]:
    """(y0, x0, the mask's bounding box's pixels); an empty mask is (0, 0, an empty array)."""
    from privvid.detect.common import mask_box

    x0, y0, x1, y1 = (int(v) for v in mask_box(mask))
    return y0, x0, mask[y0:y1, x0:x1].copy()


@dataclass(frozen=True)
class PackedDetections:
    """:class:`Detections` whose masks are held as their bounding boxes' crops: what a window of frames
    keeps between the detector and the composer. A person's crop is a fraction of the frame; a full mask
    of a 3840x2160 frame is 8 MB for each person in each frame of the window."""

    shape: tuple[int, int]
    crops: list[tuple[int, int, np.ndarray]]
    extra: tuple[int, int, np.ndarray] | None
    fields: dict[str, Any]

    def __len__(self) -> int:
        return len(self.crops)

    def unpack(self) -> Detections:
        h, w = self.shape

        def full(crop: tuple[int, int, np.ndarray], out: np.ndarray) -> np.ndarray:
            y0, x0, part = crop
            out[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part
            return out

        masks = np.zeros((len(self.crops), h, w), bool)
        for i, crop in enumerate(self.crops):
            full(crop, masks[i])
        extra = None if self.extra is None else full(self.extra, np.zeros((h, w), bool))
        return Detections(masks=masks, extra=extra, **self.fields)


class Detector(Protocol):
    """A person detector/segmenter. One instance serves one clip at a time.

    ``reset()`` is called before each clip; ``__call__`` receives RGB uint8 frames
    (H, W, 3) in order and may keep state between frames (video-mode models).
    ``info()`` returns what goes into the sidecar: name, versions, parameters.
    """

    name: str

    def reset(self) -> None: ...

    def __call__(self, frame: np.ndarray) -> Detections: ...

    def info(self) -> dict[str, Any]: ...
