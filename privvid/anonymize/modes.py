"""Anonymisation modes: how the pixels under a removal mask are replaced.

Each mode is a *composer*: it receives windows of frames with their detections and
removal masks and returns the anonymised frames. Modes register by name in
:data:`MODES`; a new mode is one class plus one ``register`` line.
"""

from __future__ import annotations

from typing import Any, Protocol

import cv2
import numpy as np

from privvid.config import AnonymizeConfig
from privvid.detect.base import Detections
from privvid.registry import Registry


class Composer(Protocol):
    context: int  # frames of context needed before and after each window

    def reset(self) -> None: ...

    def __call__(self, frames: np.ndarray, detections: list[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """Return the anonymised ``frames[core]`` and one info dict per core frame."""
        ...

    def finish(self) -> dict[str, Any]: ...

    def info(self) -> dict[str, Any]: ...


class _PerFrame:
    """Base for modes that replace masked pixels frame by frame."""

    context = 0
    name = ""

    def __init__(self, cfg: AnonymizeConfig) -> None:
        self.cfg = cfg

    def reset(self) -> None:
        pass

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, frames: np.ndarray, detections: list[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        out = frames[core].copy()
        for frame, mask in zip(out, masks[core]):
            if mask.any():
                frame[mask] = self.replacement(frame)[mask]
        return out, [{} for _ in range(len(out))]

    def finish(self) -> dict[str, Any]:
        return {}

    def info(self) -> dict[str, Any]:
        return {"name": self.name, **self.params()}

    def params(self) -> dict[str, Any]:
        return {}


class BlurComposer(_PerFrame):
    name = "blur"

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        k = self.cfg.blur_kernel | 1
        return cv2.GaussianBlur(frame, (k, k), 0)

    def params(self) -> dict[str, Any]:
        return {"kernel": self.cfg.blur_kernel | 1}


class PixelateComposer(_PerFrame):
    name = "pixelate"

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        block = max(2, self.cfg.pixel_block)
        small = cv2.resize(frame, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    def params(self) -> dict[str, Any]:
        return {"block": max(2, self.cfg.pixel_block)}


class SolidComposer(_PerFrame):
    name = "solid"

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.cfg.solid_color, dtype=np.uint8), frame.shape)

    def params(self) -> dict[str, Any]:
        return {"color": list(self.cfg.solid_color)}


class RemoveComposer:
    """No-Human data: masked pixels are inpainted from the background."""

    def __init__(self, cfg: AnonymizeConfig) -> None:
        from privvid.inpaint import INPAINTERS

        self.inpainter = INPAINTERS.create(cfg.inpaint.backend, cfg.inpaint)
        self.context = int(self.inpainter.context)

    def reset(self) -> None:
        self.inpainter.reset()

    def background(self, frames: np.ndarray, masks: np.ndarray, core: slice) -> np.ndarray:
        """The inpainted ``frames[core]`` (the context frames only lend their pixels)."""
        filled = self.inpainter(frames, masks, core=core)
        if filled.shape != frames.shape or filled.dtype != np.uint8:
            from privvid.errors import BackendFailure

            raise BackendFailure(
                f"inpainter returned {filled.dtype} {filled.shape}, expected uint8 {frames.shape}"
            )
        return filled[core]

    def __call__(self, frames: np.ndarray, detections: list[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        filled = self.background(frames, masks, core)
        return filled, [{} for _ in range(len(filled))]

    def finish(self) -> dict[str, Any]:
        return {}

    def info(self) -> dict[str, Any]:
        return {"name": "remove", "inpainter": self.inpainter.info()}


class MeshComposer(RemoveComposer):
    """Mask2Mesh: remove people, then render a plain body mesh with their motion."""

    def __init__(self, cfg: AnonymizeConfig) -> None:
        super().__init__(cfg)
        from privvid.mesh import MeshStage

        self.mesh = MeshStage(cfg.mesh)

    def reset(self) -> None:
        super().reset()
        self.mesh.reset()

    def __call__(self, frames: np.ndarray, detections: list[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        background = self.background(frames, masks, core)
        rendered, infos = self.mesh(frames[core], detections[core], background, masks[core])
        return rendered, infos

    def finish(self) -> dict[str, Any]:
        return self.mesh.finish()

    def save_params(self, path: Any) -> None:
        self.mesh.save_params(path)

    def info(self) -> dict[str, Any]:
        return {"name": "mesh", "inpainter": self.inpainter.info(), "mesh": self.mesh.info()}


MODES = Registry("mode")
MODES.register("remove", RemoveComposer)
MODES.register("mesh", MeshComposer)
MODES.register("blur", BlurComposer)
MODES.register("pixelate", PixelateComposer)
MODES.register("solid", SolidComposer)
