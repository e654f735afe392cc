"""``opencv``: per-frame classical inpainting (Telea or Navier-Stokes), the baseline.

Each frame is filled from its own unmasked pixels only; nothing is taken from other
frames, so a person-sized hole becomes a smooth smear. Use ``propagate`` for real data.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

import privvid
from privvid.config import InpaintConfig
from privvid.detect.common import mask_box
from privvid.inpaint.base import check_window

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


def refill_copies(original: np.ndarray, filled: np.ndarray, people: np.ndarray, holes: np.ndarray, tol: int,
                  share: float, radius: int, method: str, scale: float = 1.0) -> list[list[int]]:
    """Fill spatially, in ``filled`` (H, W, 3, in place), the holes of the people whose removed pixels it
    gives back: a person (one of ``people``, (N, H, W) bool, the detector's instances of this frame) on
    ``share`` or more of whose pixels ``filled`` is within ``tol`` levels (every channel) of ``original``
    was pasted back from frames that show them where the detector missed them, since background differs
    from a person (or the instance held no person, and nothing is lost but the other frames' copy of that
    spot). The refilled region is every connected piece of ``holes`` (the removal mask) the person lies
    in. Returns the boxes (x0, y0, x1, y1) of the people whose holes were refilled."""
    if share <= 0 or not len(people):
        return []
    found = []
    for person in people:
        x0, y0, x1, y1 = (int(v) for v in mask_box(person))
        inside = person[y0:y1, x0:x1] & holes[y0:y1, x0:x1]
        n = int(inside.sum())
        if not n:
            continue
        diff = np.abs(original[y0:y1, x0:x1].astype(np.int16) - filled[y0:y1, x0:x1].astype(np.int16)).max(axis=-1)
        if int((inside & (diff <= tol)).sum()) >= share * n:
            found.append((y0, x0, inside, [x0, y0, x1, y1]))
    if not found:
        return []
    _, labels = cv2.connectedComponents(holes.view(np.uint8), connectivity=8)
    pieces = np.unique(np.concatenate([labels[y0:y0 + inside.shape[0], x0:x0 + inside.shape[1]][inside]
                                       for y0, x0, inside, _ in found]))
    spatial_fill(filled, np.isin(labels, pieces[pieces > 0]), radius, method, scale)
    return [box for *_, box in found]


def spatial_fill(frame: np.ndarray, hole: np.ndarray, radius: int, method: str, scale: float = 1.0) -> None:
    """Fill ``frame[hole]`` in place with OpenCV inpainting, working on the hole's bounding box.

    The hole's own pixel values are cleared first, so nothing of what was under the mask
    can leak into the result. ``scale`` < 1 inpaints a downscaled crop (cheaper for big
    holes) and writes the upscaled result into the hole only.
    """
    if not hole.any():
        return
    flag = METHODS[method]
    h, w = hole.shape
    ys, xs = np.nonzero(hole)
    pad = radius + 2
    y0, y1 = max(int(ys.min()) - pad, 0), min(int(ys.max()) + pad + 1, h)
    x0, x1 = max(int(xs.min()) - pad, 0), min(int(xs.max()) + pad + 1, w)
    crop = frame[y0:y1, x0:x1].copy()
    hole_c = hole[y0:y1, x0:x1]
    crop[hole_c] = 0
    mask_c = hole_c.astype(np.uint8) * 255
    ch, cw = hole_c.shape
    if scale < 1.0 and min(ch, cw) * scale >= 8:
        sw, sh = max(int(round(cw * scale)), 2), max(int(round(ch * scale)), 2)
        small = cv2.resize(crop, (sw, sh), interpolation=cv2.INTER_AREA)
        # a small pixel is unknown when any full-resolution pixel under it is
        small_mask = cv2.resize(mask_c, (sw, sh), interpolation=cv2.INTER_AREA)
        small_mask = np.where(small_mask > 0, 255, 0).astype(np.uint8)
        filled = cv2.inpaint(small, small_mask, max(1, int(round(radius * scale))), flag)
        filled = cv2.resize(filled, (cw, ch), interpolation=cv2.INTER_LINEAR)
    else:
        filled = cv2.inpaint(crop, mask_c, radius, flag)
    frame[y0:y1, x0:x1][hole_c] = filled[hole_c]


class OpenCVInpainter:
    """Per-frame ``cv2.inpaint``; keeps no state and needs no context frames."""

    name = "opencv"
    context = 0

    def __init__(self, config: InpaintConfig | None = None) -> None:
        self.config = config or InpaintConfig()
        if self.config.method not in METHODS:
            raise ValueError(f"unknown OpenCV inpainting method {self.config.method!r}; choose telea or ns")

    def reset(self) -> None:
        pass

    def __call__(self, frames: np.ndarray, masks: np.ndarray, core: slice | None = None) -> np.ndarray:
        check_window(frames, masks)
        out = frames.copy()
        for t in range(len(out))[core or slice(None)]:
            spatial_fill(out[t], masks[t], self.config.radius, self.config.method)
        return out

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": privvid.__version__,
            "opencv": cv2.__version__,
            "params": {"method": self.config.method, "radius": self.config.radius},
        }
