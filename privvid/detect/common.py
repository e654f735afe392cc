"""Helpers shared by the detect backends: instances from masks, validation, dilation."""

from __future__ import annotations

import types
import typing
from typing import Any

import cv2
import numpy as np

from privvid.detect.base import Detections
from privvid.errors import BackendFailure, ConfigError


def check_frame(frame: Any) -> np.ndarray:
    """The detectors take RGB uint8 (H, W, 3) frames; anything else is a caller bug."""
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        desc = f"{type(frame).__name__} {getattr(frame, 'shape', '')} {getattr(frame, 'dtype', '')}"
        raise ValueError(f"expected an RGB uint8 frame of shape (H, W, 3), got {desc}")
    return frame


def mask_box(mask: np.ndarray) -> np.ndarray:
    """Tight x0, y0, x1, y1 box (pixel edges) of a non-empty bool mask."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0:
        return np.zeros(4, dtype=np.float32)
    return np.array([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=np.float32)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x0, y0, x1, y1 boxes -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ix0 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy0 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix1 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix1 - ix0, 0, None) * np.clip(iy1 - iy0, 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    area_b = (b[:, 2] - b[:, 0]).clip(0) * (b[:, 3] - b[:, 1]).clip(0)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def box_inside(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise share of each (N, 4) box ``a``'s area that lies inside each (M, 4) box ``b`` -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    area_a = (a[:, 2] - a[:, 0]).clip(0) * (a[:, 3] - a[:, 1]).clip(0)
    return iw * ih / np.maximum(area_a[:, None], 1e-6)


def dilate(mask: np.ndarray, kernel: int) -> np.ndarray:
    """Grow a bool mask with an elliptical kernel ``kernel`` px wide (<= 1: unchanged)."""
    if kernel <= 1 or not mask.any():
        return mask.copy()
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (int(kernel), int(kernel)))
    return cv2.dilate(mask.view(np.uint8), k).astype(bool)


def instance_kernel(cfg: Any, person_height: float, frame_height: int, floor: int | None = None) -> int:
    """The removal mask's dilation kernel (px) for a person ``person_height`` px tall in a frame
    ``frame_height`` px tall: :class:`~privvid.config.DetectConfig`'s ``dilate_rel`` x the height, at
    least ``floor`` (by default the least margin, ``dilate_min`` / ``dilate_min_frame``), made odd so it
    is centred; with ``dilate_rel = 0`` the fixed ``dilate`` as given."""
    if cfg.dilate_rel <= 0:
        return int(cfg.dilate)
    if floor is None:
        floor = least_kernel(cfg, frame_height)
    k = max(floor, int(round(cfg.dilate_rel * float(person_height))))
    return k + 1 - k % 2  # odd: the kernel is centred


def least_kernel(cfg: Any, frame_height: int) -> int:
    """The least dilation (px) of any person: ``dilate_min`` px and ``dilate_min_frame`` of the frame height."""
    return max(int(cfg.dilate_min), int(round(cfg.dilate_min_frame * frame_height)))


def validate(dets: Any, shape: tuple[int, int], backend: str) -> Detections:
    """Raise :class:`BackendFailure` unless ``dets`` is a well-formed Detections for a frame of ``shape``."""
    def fail(why: str) -> BackendFailure:
        return BackendFailure(f"detector {backend!r} returned an invalid result: {why}")

    if not isinstance(dets, Detections):
        raise fail(f"expected Detections, got {type(dets).__name__}")
    h, w = shape
    masks, boxes, scores, ids = dets.masks, dets.boxes, dets.scores, dets.track_ids
    for name, arr in (("masks", masks), ("boxes", boxes), ("scores", scores), ("track_ids", ids)):
        if not isinstance(arr, np.ndarray):
            raise fail(f"{name} is {type(arr).__name__}, not a numpy array")
    n = len(masks)
    if masks.ndim != 3 or masks.shape[1:] != (h, w) or masks.dtype != bool:
        raise fail(f"masks have shape {masks.shape} dtype {masks.dtype}, expected ({n}, {h}, {w}) bool")
    if boxes.shape != (n, 4):
        raise fail(f"boxes have shape {boxes.shape}, expected ({n}, 4)")
    if scores.shape != (n,) or ids.shape != (n,):
        raise fail(f"scores {scores.shape} / track_ids {ids.shape} do not match {n} instances")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise fail("boxes or scores are not finite")
    if dets.extra is not None:
        if not isinstance(dets.extra, np.ndarray) or dets.extra.shape != (h, w) or dets.extra.dtype != bool:
            raise fail(f"extra has shape {getattr(dets.extra, 'shape', None)}, expected ({h}, {w}) bool")
    if dets.keypoints is not None:
        kp = dets.keypoints
        if not isinstance(kp, np.ndarray) or kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 3:
            raise fail(f"keypoints have shape {getattr(kp, 'shape', None)}, expected ({n}, K, 3)")
    if dets.world_keypoints is not None:
        wk = dets.world_keypoints
        if dets.keypoints is None or not isinstance(wk, np.ndarray) or wk.shape != dets.keypoints.shape:
            raise fail(f"world_keypoints have shape {getattr(wk, 'shape', None)}, expected the keypoints' "
                       f"{getattr(dets.keypoints, 'shape', None)}")
    return dets


def components_to_instances(
    person: np.ndarray,
    prob: np.ndarray | None,
    min_pixels: int,
) -> tuple[list[np.ndarray], list[float], np.ndarray]:
    """Split a semantic person mask into connected components.

    Returns (instance masks, scores, leftover) where components smaller than
    ``min_pixels`` end up in ``leftover`` (still people pixels, but no instance).
    """
    leftover = np.zeros_like(person)
    if not person.any():
        return [], [], leftover
    n, labels, stats, _ = cv2.connectedComponentsWithStats(person.view(np.uint8), connectivity=8)
    masks: list[np.ndarray] = []
    scores: list[float] = []
    for lab in range(1, n):
        comp = labels == lab
        if stats[lab, cv2.CC_STAT_AREA] < min_pixels:
            leftover |= comp
            continue
        masks.append(comp)
        scores.append(float(prob[comp].mean()) if prob is not None else 1.0)
    return masks, scores, leftover


def assemble(
    height: int,
    width: int,
    masks: list[np.ndarray],
    scores: list[float],
    keypoints: list[np.ndarray | None] | None,
    extra: np.ndarray | None,
    min_score: float,
    num_keypoints: int = 33,
) -> Detections:
    """Build Detections; instances scoring below ``min_score`` are moved to ``extra`` (still removed)."""
    extra = np.zeros((height, width), dtype=bool) if extra is None else extra.copy()
    keep_m, keep_s, keep_k = [], [], []
    for i, (m, s) in enumerate(zip(masks, scores)):
        if s < min_score or not m.any():
            extra |= m
            continue
        keep_m.append(m)
        keep_s.append(s)
        kp = keypoints[i] if keypoints is not None else None
        keep_k.append(kp if kp is not None else np.zeros((num_keypoints, 3), dtype=np.float32))
    n = len(keep_m)
    return Detections(
        masks=np.stack(keep_m) if n else np.zeros((0, height, width), dtype=bool),
        boxes=np.stack([mask_box(m) for m in keep_m]) if n else np.zeros((0, 4), dtype=np.float32),
        scores=np.asarray(keep_s, dtype=np.float32),
        keypoints=(np.stack(keep_k).astype(np.float32) if n else np.zeros((0, num_keypoints, 3), np.float32))
        if keypoints is not None
        else None,
        extra=extra,
    )


TILE_OVERLAP = 0.25  # each tile is this much larger than its share of the frame on each axis


def tile_boxes(width: int, height: int, cols: int, rows: int,
               overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int, int]]:
    """``cols`` x ``rows`` overlapping tiles (x0, y0, x1, y1) covering a ``width`` x ``height`` frame.

    Each tile is ``1 + overlap`` times its share of the frame on each axis (capped at the frame); the
    tiles are spread evenly so the first starts at 0 and the last ends at the frame edge, so
    neighbours overlap and a small person cut by one tile edge is whole in the next tile.
    """
    def spans(size: int, n: int) -> list[tuple[int, int]]:
        if n == 1:
            return [(0, size)]
        length = min(size, int(np.ceil(size / n * (1.0 + overlap))))
        step = (size - length) / (n - 1)
        return [(int(round(k * step)), int(round(k * step)) + length) for k in range(n)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(height, rows) for x0, x1 in spans(width, cols)]


def grow_box(box: Any, share: float, width: int, height: int) -> tuple[int, int, int, int]:
    """Integer x0, y0, x1, y1 of ``box`` grown by ``share`` of its width / height on each side,
    clipped to a ``width`` x ``height`` frame."""
    x0, y0, x1, y1 = (float(v) for v in box)
    gx, gy = share * (x1 - x0), share * (y1 - y0)
    return (int(max(0, np.floor(x0 - gx))), int(max(0, np.floor(y0 - gy))),
            int(min(width, np.ceil(x1 + gx))), int(min(height, np.ceil(y1 + gy))))


def crop_person_pixels(prob: np.ndarray, crop: tuple[int, int, int], box: Any, grow: float, threshold: float,
                       width: int, height: int) -> tuple[int, int, np.ndarray] | None:
    """The person pixels of a square crop's probability map (``prob``, side x side at ``crop`` = x0, y0,
    side) that lie inside ``box`` grown by ``grow``: (x0, y0, bool region) in frame coordinates, or None
    when the grown box and the crop do not overlap."""
    cx, cy, side = crop
    gx0, gy0, gx1, gy1 = grow_box(box, grow, width, height)
    gx0, gy0, gx1, gy1 = max(gx0, cx), max(gy0, cy), min(gx1, cx + side), min(gy1, cy + side)
    if gx1 <= gx0 or gy1 <= gy0:
        return None
    return gx0, gy0, prob[gy0 - cy:gy1 - cy, gx0 - cx:gx1 - cx] >= threshold


def options_from(cls: Any, given: Any) -> Any:
    """A backend's options dataclass ``cls(**given)``, with a clear ConfigError for a name it does not have
    or a value of the wrong kind (text where a number belongs, a number where text does)."""
    given = dict(given or {})
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(given) - known)
    if unknown:
        backend = cls.__name__.removesuffix("Options").lower()
        raise ConfigError(f"the {backend} detector has no option {', '.join(unknown)} (given with --detect-opt, or "
                          f"by a flag that another detector reads); its options: {', '.join(sorted(known))}")
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation that cannot be resolved: leave it to the dataclass
        hints = {}
    for name, value in given.items():
        kinds = _kinds(hints.get(name))
        if kinds and not any(_fits(value, kind) for kind in kinds):
            wanted = " or ".join("none" if k is type(None) else k.__name__ for k in kinds)
            raise ConfigError(f"{cls.__name__} option {name} must be {wanted}, got {value!r}")
    return cls(**given)


def _kinds(hint: Any) -> tuple[type, ...]:
    """The plain classes an annotation allows (``str | None`` -> (str, NoneType)); () = not checked."""
    if hint is None:
        return ()
    parts = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not all(p in (bool, int, float, str, type(None)) for p in parts):
        return ()
    return tuple(parts)


def _fits(value: Any, kind: type) -> bool:
    if kind is type(None):
        return value is None
    if kind is bool:
        return isinstance(value, bool)
    if kind in (int, float):  # a whole number is a fine float; a bool is not a number here
        return isinstance(value, (int, float) if kind is float else int) and not isinstance(value, bool)
    return isinstance(value, kind)


def one_euro(x: np.ndarray, state: tuple[np.ndarray, ...] | None, cutoff: float, beta: float, fps: float,
             d_cutoff: float = 1.0, scale: float = 1.0, from_raw: bool = False) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """One step of the one-euro filter (Casiez et al., 2012) on ``x`` given the last ``state`` (None starts
    afresh): a low-pass whose cutoff, ``cutoff`` Hz at rest, opens by ``beta`` x the speed, counted in units
    of ``scale`` a second at ``fps`` frames a second. The speed is the change from the last filtered value
    (the lag opens the filter too), or with ``from_raw`` from the last raw one (the paper's and mediapipe's
    form: only the input's own speed opens it, so it is steadier and trails a steady move further).
    Returns the filtered value and the new state (the filtered value, the speed, the raw value)."""
    if state is None:
        return x, (x, np.zeros_like(x), x)

    def alpha(hz: np.ndarray | float) -> np.ndarray:
        tau = 1.0 / (2.0 * np.pi * np.asarray(hz, np.float64))
        return 1.0 / (1.0 + tau * fps)

    prev, dprev, raw = state
    speed = dprev + alpha(d_cutoff) * ((x - (raw if from_raw else prev)) * (fps / scale) - dprev)
    out = prev + alpha(cutoff + beta * np.abs(speed)) * (x - prev)
    return out, (out, speed, x)
