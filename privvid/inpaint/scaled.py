"""Filling large frames on a scaled-down copy (``InpaintConfig.work_lines``).

The fill of a hole is made from background pixels around it and in other frames; at 1080 lines and
above, making it at full size costs most of a clip's time (and memory grows with every pixel of the
window), while what it paints is smooth background. :class:`WorkingSize` wraps any inpainter: a window
whose frames' shorter side is longer than ``lines`` goes to the inner inpainter scaled down to that
(``INTER_AREA``), with each hole grown to every working pixel that holds any of it, so a working pixel
outside the hole is an average of frame pixels outside it; the inner fill, scaled back up, is pasted
into the frame's own holes only. Every other pixel is the frame's own, at its own size. Windows of
smaller frames go to the inner inpainter unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any, Callable

import cv2
import numpy as np

from privvid.inpaint.base import Inpainter, check_window, scale_zones

if TYPE_CHECKING:
    from privvid.config import InpaintConfig


def cover(masks: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(T, h, w) bool: a working pixel is set where any frame pixel under it is (float area average > 0)."""
    h, w = shape
    out = np.zeros((len(masks), h, w), bool)
    for t, m in enumerate(masks):
        if m.any():
            out[t] = cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
    return out


class WorkingSize:
    """An inpainter that fills frames over ``cfg.work_lines`` lines (shorter side) at that size, see the
    module. ``make`` builds the backend from an InpaintConfig; on scaled frames it gets one whose pixel
    settings (``margin``, ``radius``, ``static_px``) are turned into working pixels, never narrower (as the
    detector's are), so they keep counting frame pixels. Its stats (``masked_px`` ...) count working pixels."""

    def __init__(self, make: Callable[[InpaintConfig], Inpainter], cfg: InpaintConfig) -> None:
        self.make, self.cfg, self.lines = make, cfg, int(cfg.work_lines)
        self.inner = make(cfg)
        self._inner_cfg = cfg
        self.name = self.inner.name
        self.context = int(self.inner.context)
        self.uses_sources = bool(getattr(self.inner, "uses_sources", False))
        self.reset()

    def reset(self) -> None:
        self.inner.reset()
        self.work_size: tuple[int, int] | None = None   # (width, height) of the last scaled window

    def _backend(self, scale: float | None) -> Inpainter:
        """The backend for frames scaled by ``scale`` (None: not scaled), built anew when its settings
        change (a clip of another size: state is per clip anyway)."""
        c = self.cfg
        want = c if scale is None else replace(
            c, margin=int(np.ceil(c.margin * scale)), radius=max(1, int(np.ceil(c.radius * scale))),
            static_px=c.static_px * scale)
        if want != self._inner_cfg:
            self.inner, self._inner_cfg = self.make(want), want
        return self.inner

    def __call__(self, frames: np.ndarray, masks: np.ndarray, core: slice | None = None,
                 **kwargs: Any) -> np.ndarray:
        from privvid.io.video import working_shape

        check_window(frames, masks, self.context)
        T, H, W = masks.shape
        small = working_shape((H, W), self.lines)
        if small is None:
            return self._backend(None)(frames, masks, core=core, **kwargs)
        h, w = small
        self.work_size = (w, h)
        inner = self._backend(min(h, w) / min(H, W))
        frames_small = np.empty((T, h, w, 3), np.uint8)
        for t, f in enumerate(frames):
            cv2.resize(f, (w, h), dst=frames_small[t], interpolation=cv2.INTER_AREA)
        scaled = {k: scale_zones(v, (H, W), small) if k == "avoid" and v is not None else v
                  for k, v in kwargs.items()}
        filled = inner(frames_small, cover(masks, small), core=core, **scaled)
        out = frames.copy()
        for t in range(T)[core or slice(None)]:
            hole = masks[t]
            if not hole.any():
                continue
            # only the rows and columns the hole spans are scaled up
            ys, xs = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
            y0, y1, x0, x1 = int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1
            up = _scaled_up(filled[t], (y0, y1, x0, x1), (H, W))
            np.copyto(out[t, y0:y1, x0:x1], up, where=hole[y0:y1, x0:x1, None])
        return out

    def forget(self, region: np.ndarray) -> None:
        """Pass on the inner backend's ``forget`` (see PropagationInpainter), ``region`` (at the frames' own
        size) at the working size of such frames (every working pixel that holds any of it)."""
        from privvid.io.video import working_shape

        forget = getattr(self.inner, "forget", None)
        if forget is None:
            return
        small = working_shape(region.shape, self.lines)
        forget(region if small is None else cover(region[None], small)[0])

    def info(self) -> dict[str, Any]:
        return {**self.inner.info(), "work_lines": self.lines,
                "work_size": None if self.work_size is None else list(self.work_size)}


def _scaled_up(small: np.ndarray, box: tuple[int, int, int, int], full: tuple[int, int]) -> np.ndarray:
    """The (y0:y1, x0:x1) part of ``small`` scaled up to ``full`` (H, W) with bilinear interpolation, as
    ``cv2.resize`` of the whole image would give it there (pixel centres aligned the same way)."""
    y0, y1, x0, x1 = box
    H, W = full
    h, w = small.shape[:2]
    sy, sx = h / H, w / W
    gx = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * sx - 0.5).clip(0, w - 1)
    gy = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * sy - 0.5).clip(0, h - 1)
    mx, my = np.meshgrid(gx, gy)
    return cv2.remap(small, mx, my, interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
