"""Inpainting backends behind one interface (frames + masks -> frames)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from privvid.inpaint.base import Inpainter
from privvid.registry import Registry

if TYPE_CHECKING:
    from privvid.config import InpaintConfig

INPAINTERS = Registry("inpainter")
# name -> "module:factory"; each factory takes an InpaintConfig
INPAINTERS.register("propagate", "privvid.inpaint.propagate:PropagationInpainter")
INPAINTERS.register("opencv", "privvid.inpaint.classical:OpenCVInpainter")


def build_inpainter(cfg: InpaintConfig) -> Inpainter:
    """The configured backend; frames over ``cfg.work_lines`` lines are filled at that size
    (:class:`privvid.inpaint.scaled.WorkingSize`)."""
    if cfg.work_lines <= 0:
        return INPAINTERS.create(cfg.backend, cfg)
    from privvid.inpaint.scaled import WorkingSize

    return WorkingSize(lambda c: INPAINTERS.create(c.backend, c), cfg)


__all__ = ["INPAINTERS", "Inpainter", "build_inpainter"]
