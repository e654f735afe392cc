"""Inpainting backends behind one interface (frames + masks -> frames)."""

from privvid.inpaint.base import Inpainter
from privvid.registry import Registry

INPAINTERS = Registry("inpainter")
# name -> "module:factory"; each factory takes an InpaintConfig
INPAINTERS.register("propagate", "privvid.inpaint.propagate:PropagationInpainter")
INPAINTERS.register("opencv", "privvid.inpaint.classical:OpenCVInpainter")

__all__ = ["INPAINTERS", "Inpainter"]
