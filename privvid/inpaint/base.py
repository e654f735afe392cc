"""The inpainter interface: frames + masks in, frames with the masked pixels filled out."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Inpainter(Protocol):
    """Fills masked pixels of a window of frames.

    The pipeline streams a clip through windows: each call gets ``frames``
    (T, H, W, 3) RGB uint8 and ``masks`` (T, H, W) bool, where the first and last
    ``context`` frames are context only (their output is discarded). It must return a
    new (T, H, W, 3) uint8 array in which every masked pixel is replaced and every
    unmasked pixel is unchanged. ``reset()`` is called before each clip; state may be
    kept across windows of one clip (e.g. a running background model).
    """

    name: str
    context: int

    def reset(self) -> None: ...

    def __call__(self, frames: np.ndarray, masks: np.ndarray) -> np.ndarray: ...

    def info(self) -> dict[str, Any]: ...
