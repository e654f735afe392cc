"""The inpainter interface: frames + masks in, frames with the masked pixels filled out."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import numpy as np


class Inpainter(Protocol):
    """Fills masked pixels of a window of frames.

    The pipeline streams a clip through windows: each call gets ``frames``
    (T, H, W, 3) RGB uint8 and ``masks`` (T, H, W) bool, where the first and last
    ``context`` frames are context only (their output is discarded). It must return a
    new (T, H, W, 3) uint8 array in which every masked pixel is replaced and every
    unmasked pixel is unchanged. When the caller passes ``core`` (the slice of frames whose
    output it keeps), frames outside it may be returned unfilled: they only lend their
    pixels to the others. ``reset()`` is called before each clip; state may be
    kept across windows of one clip (e.g. a running background model).
    """

    name: str
    context: int

    def reset(self) -> None: ...

    def __call__(self, frames: np.ndarray, masks: np.ndarray, core: slice | None = None) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...


def check_window(frames: np.ndarray, masks: np.ndarray, context: int = 0) -> None:
    """Raise ``ValueError`` with a readable reason unless ``frames``/``masks`` form a valid window."""
    if not isinstance(frames, np.ndarray) or not isinstance(masks, np.ndarray):
        raise ValueError(
            f"inpainter expects numpy arrays, got frames={type(frames).__name__}, masks={type(masks).__name__}"
        )
    if frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 RGB, got dtype {frames.dtype}")
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {frames.shape}")
    if masks.dtype != np.bool_:
        raise ValueError(f"masks must be bool, got dtype {masks.dtype}")
    if masks.shape != frames.shape[:3]:
        raise ValueError(f"masks must have shape (T, H, W) = {frames.shape[:3]}, got {masks.shape}")
    if frames.shape[0] == 0:
        raise ValueError("empty window: no frames")
    if frames.shape[1] < 2 or frames.shape[2] < 2:
        raise ValueError(f"frames are too small to inpaint: {frames.shape[1]}x{frames.shape[2]}")
    if context < 0:
        raise ValueError(f"context must be >= 0, got {context}")


def inpaint_clip(inpainter: Inpainter, frames: np.ndarray, masks: np.ndarray, window: int = 24) -> np.ndarray:
    """Run ``inpainter`` over a whole in-memory clip the way the streaming pipeline does.

    Windows hold ``window`` core frames plus up to ``inpainter.context`` frames of context
    on each side (none before the first window, fewer after the last); only core outputs
    are kept. For tests and benchmarks: the pipeline streams and never holds a whole clip.
    """
    check_window(frames, masks)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    ctx = int(inpainter.context)
    inpainter.reset()
    out = np.empty_like(frames)
    n = len(frames)
    for start in range(0, n, window):
        stop = min(start + window, n)
        lo, hi = max(0, start - ctx), min(n, stop + ctx)
        filled = inpainter(frames[lo:hi], masks[lo:hi], core=slice(start - lo, stop - lo))
        out[start:stop] = filled[start - lo:stop - lo]
    return out


def check_zones(zones: Sequence[np.ndarray], frames: int) -> None:
    """``zones`` hold one array of rectangles per frame of a window of ``frames``."""
    if len(zones) != frames:
        raise ValueError(f"avoid must hold one array of rectangles per frame: {len(zones)} for {frames} frames")


def zone_masks(zones: Sequence[np.ndarray], masks: np.ndarray) -> np.ndarray:
    """``masks`` (T, H, W bool) with each frame's rectangles of ``zones`` set as well (a new array). A zone
    is one frame's (n, 4) integer x0, y0, x1, y1 rows, ends exclusive, clipped to the frame."""
    check_zones(zones, len(masks))
    out = masks.copy()
    for t, rects in enumerate(zones):
        rects = np.asarray(rects)
        if rects.size and (rects.ndim != 2 or rects.shape[1] != 4):
            raise ValueError(f"avoid rectangles must be (n, 4) x0, y0, x1, y1, got shape {rects.shape}")
        for x0, y0, x1, y1 in rects.reshape(-1, 4).astype(np.int64).tolist():
            out[t, max(0, y0):max(0, y1), max(0, x0):max(0, x1)] = True
    return out


def scale_zones(zones: Sequence[np.ndarray], full: tuple[int, int], small: tuple[int, int]) -> list[np.ndarray]:
    """``zones`` of (H, W) frames at (h, w): every pixel there whose area holds any part of a rectangle (the
    integer floor of its start and ceiling of its end). An area-average scale-down of the zones' masks marks
    the same pixels, but for overlaps under a thousandth of a pixel, which OpenCV drops: never fewer."""
    (H, W), (h, w) = full, small
    out = []
    for rects in zones:
        r = np.asarray(rects, np.int64).reshape(-1, 4)
        x0, x1 = (r[:, 0] * w) // W, -((-r[:, 2] * w) // W)
        y0, y1 = (r[:, 1] * h) // H, -((-r[:, 3] * h) // H)
        out.append(np.stack([x0, y0, x1, y1], axis=1))
    return out
