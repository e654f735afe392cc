"""Anonymisation modes: how the pixels under a removal mask are replaced.

Each mode is a *composer*: it receives windows of frames with their detections and
removal masks and returns the anonymised frames. Modes register by name in
:data:`MODES`; a new mode is one class plus one ``register`` line.
"""

from __future__ import annotations

from typing import Any, Protocol, Sequence

import cv2
import numpy as np

from privvid.config import AnonymizeConfig
from privvid.detect.base import Detections
from privvid.registry import Registry


class Composer(Protocol):
    context: int  # frames of context needed before and after each window

    def reset(self) -> None: ...

    def __call__(self, frames: np.ndarray, detections: Sequence[Detections], masks: np.ndarray,
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
        self.side: int | None = None   # the clip's shorter side (sizes are given as a share of it)

    def reset(self) -> None:
        self.side = None

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, frames: np.ndarray, detections: Sequence[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        self.side = int(min(frames.shape[1:3]))
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


def frame_share(share: float, side: int, least: int) -> int:
    """``share`` of a frame whose shorter side is ``side`` px, in whole pixels, at least ``least``."""
    return max(least, int(round(share * side)))


class BlurComposer(_PerFrame):
    """A Gaussian blur whose kernel is a share of the frame's shorter side (``blur_size``), at least :attr:`LEAST`
    px, so a person is as blurred at 1080 lines as at 240 (and a portrait clip as its landscape twin). The blur
    is computed on the frame scaled down to a kernel of :attr:`WORK_KERNEL` px (a blur that wide keeps nothing
    finer than that scale), then scaled back up."""

    name = "blur"
    LEAST = 51         # px: a small frame is blurred no less than this
    WORK_KERNEL = 31   # the kernel's side where the blur is computed

    def kernel(self, side: int) -> int:
        return frame_share(self.cfg.blur_size, side, self.LEAST) | 1

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        k = self.kernel(min(h, w))
        sigma = 0.3 * ((k - 1) * 0.5 - 1) + 0.8   # OpenCV's sigma for a kernel of side k
        scale = min(1.0, self.WORK_KERNEL / k)
        if scale >= 1.0:
            return cv2.GaussianBlur(frame, (k, k), sigma)
        small = cv2.resize(frame, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), sigma * scale)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    def params(self) -> dict[str, Any]:
        return {"size": self.cfg.blur_size, **({} if self.side is None else {"kernel": self.kernel(self.side)})}


class PixelateComposer(_PerFrame):
    """Blocks whose side is a share of the frame's shorter side (``pixel_size``), at least :attr:`LEAST` px."""

    name = "pixelate"
    LEAST = 16

    def block(self, side: int) -> int:
        return frame_share(self.cfg.pixel_size, side, self.LEAST)

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        block = self.block(min(h, w))
        small = cv2.resize(frame, (max(1, w // block), max(1, h // block)), interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)

    def params(self) -> dict[str, Any]:
        return {"size": self.cfg.pixel_size, **({} if self.side is None else {"block": self.block(self.side)})}


class SolidComposer(_PerFrame):
    name = "solid"

    def replacement(self, frame: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(self.cfg.solid_color, dtype=np.uint8), frame.shape)

    def params(self) -> dict[str, Any]:
        return {"color": list(self.cfg.solid_color)}


def avoid_zones(boxes: Sequence[np.ndarray], shape: tuple[int, int], grow: float) -> list[np.ndarray]:
    """Per frame, (n, 4) int rectangles x0, y0, x1, y1 (ends exclusive): every person box of the frame grown
    by ``grow`` x its size per side. Pixels there are never a source for filling another frame (background
    needs evidence); the inpainter marks them at the size it fills at."""
    from privvid.detect.common import grow_box

    h, w = shape
    return [np.array([grow_box(box, grow, w, h) for box in frame_boxes], np.int64).reshape(-1, 4)
            for frame_boxes in boxes]


class RemoveComposer:
    """No-Human data: masked pixels are inpainted from the background, then every frame is checked
    (:mod:`privvid.anonymize.check`) before it is handed on."""

    name = "remove"

    def __init__(self, cfg: AnonymizeConfig) -> None:
        from privvid.inpaint import build_inpainter

        self.cfg = cfg
        self.inpainter = build_inpainter(cfg.inpaint)
        self.context = int(self.inpainter.context)
        # a detector other than the embedded ssd may miss people the SSD sees: its boxes guard the
        # sources too (a person found by either in a frame is never pasted from that frame)
        self.guard = None
        if cfg.detect.backend != "ssd" and getattr(self.inpainter, "uses_sources", False) and cfg.inpaint.guard:
            from privvid.detect.litert_models import SsdPersons
            from privvid.runtime.models import SSD_PERSON, npm_model_path

            self.guard = SsdPersons(npm_model_path(SSD_PERSON))
        self.check = None
        if cfg.check.active(cfg.mode):
            from privvid.anonymize.check import FrameCheck

            self.check = FrameCheck(cfg.check, cfg.inpaint.radius, cfg.inpaint.method, cfg.inpaint.spatial_scale)

    def reset(self) -> None:
        self.inpainter.reset()
        if self.check is not None:
            self.check.reset()

    def background(self, frames: np.ndarray, detections: Sequence[Detections], masks: np.ndarray,
                   core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """The inpainted, checked ``frames[core]`` (the context frames only lend their pixels) and one
        info dict per core frame; the check adds what it filled to ``masks[core]``."""
        kwargs: dict[str, Any] = {}
        if getattr(self.inpainter, "uses_sources", False):
            boxes = [d.boxes for d in detections]
            if self.guard is not None:
                from privvid.detect.litert_models import nms

                guard = []
                for frame in frames:
                    b, sc = self.guard(frame, self.cfg.inpaint.guard_score)
                    guard.append(b[nms(b, sc, 0.5)])
                boxes = [np.concatenate([a, g]) for a, g in zip(boxes, guard)]
            kwargs["avoid"] = avoid_zones(boxes, masks.shape[1:], self.cfg.inpaint.avoid_grow)
        filled = self.inpainter(frames, masks, core=core, **kwargs)
        if not isinstance(filled, np.ndarray) or filled.shape != frames.shape or filled.dtype != np.uint8:
            from privvid.errors import BackendFailure

            raise BackendFailure(
                f"inpainter returned {getattr(filled, 'dtype', None)} {getattr(filled, 'shape', None)}, "
                f"expected uint8 {frames.shape}"
            )
        # the inpainter's array is its own (the protocol): the core frames are mended in it, not in a copy
        # (a copy of a window's core at 4K is 600 MB); one that hands back the input frames gets copied
        out = filled[core] if not np.may_share_memory(filled, frames) else filled[core].copy()
        infos: list[dict[str, Any]] = [{} for _ in range(len(out))]
        # the inpainter's running model keeps the last core frame as its fill left it: whatever is mended
        # there after the fill (a copy the guard below refills, what the check fills or paints) must be no
        # background for the next window either
        forget = getattr(self.inpainter, "forget", None)
        kept = (out[-1].copy(), masks[core][-1].copy()) if forget is not None and len(out) else None
        if getattr(self.inpainter, "uses_sources", False) and self.cfg.inpaint.copy_share > 0:
            # a person the fill gives back (pasted from frames where the detector missed them) is filled
            # spatially before the check looks
            from privvid.inpaint.classical import refill_copies

            ip = self.cfg.inpaint
            for k, t in enumerate(range(*core.indices(len(frames)))):
                copies = refill_copies(frames[t], out[k], detections[t].masks, masks[t], ip.copy_tol, ip.copy_share,
                                       ip.radius, ip.method, ip.spatial_scale)
                if copies:
                    infos[k]["copies"] = copies
        if self.check is not None:
            records = self.check(out, masks[core])
            infos = [dict(info, check=r) if r else info for info, r in zip(infos, records)]
        if kept is not None and forget is not None:
            mended = (out[-1] != kept[0]).any(axis=-1) | (masks[core][-1] & ~kept[1])
            if mended.any():
                forget(mended)
        return out, infos

    def __call__(self, frames: np.ndarray, detections: Sequence[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        return self.background(frames, detections, masks, core)

    def finish(self) -> dict[str, Any]:
        return {}

    def info(self) -> dict[str, Any]:
        return {"name": self.name, "inpainter": self.inpainter.info(),
                "check": self.check.info() if self.check is not None else {"name": "off"}}


class MeshComposer(RemoveComposer):
    """Mask2Mesh: remove people, then render a plain body mesh with their motion."""

    def __init__(self, cfg: AnonymizeConfig) -> None:
        super().__init__(cfg)
        from privvid.mesh import MeshStage

        self.mesh = MeshStage(cfg.mesh)

    def reset(self) -> None:
        super().reset()
        self.mesh.reset()

    def __call__(self, frames: np.ndarray, detections: Sequence[Detections], masks: np.ndarray,
                 core: slice) -> tuple[np.ndarray, list[dict[str, Any]]]:
        background, checks = self.background(frames, detections, masks, core)
        rendered, infos = self.mesh(frames[core], detections[core], background, masks[core])
        return rendered, [{**info, **chk} for info, chk in zip(infos, checks)] + infos[len(checks):]

    def finish(self) -> dict[str, Any]:
        return self.mesh.finish()

    def save_params(self, path: Any) -> None:
        self.mesh.save_params(path)

    def info(self) -> dict[str, Any]:
        return {"name": "mesh", "inpainter": self.inpainter.info(), "mesh": self.mesh.info(),
                "check": self.check.info() if self.check is not None else {"name": "off"}}


MODES = Registry("mode", label="mode")
MODES.register("remove", RemoveComposer)
MODES.register("mesh", MeshComposer)
MODES.register("blur", BlurComposer)
MODES.register("pixelate", PixelateComposer)
MODES.register("solid", SolidComposer)
