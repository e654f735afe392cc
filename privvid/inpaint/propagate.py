"""``propagate`` (embedded default): fill people with real background seen in other frames.

For every masked pixel of a frame the nearest frame in time (inside the window, or the
running background model carried over from earlier windows) in which that pixel is
background supplies its value:

* static camera (detected per window from tracked background features): a per-pixel
  nearest-visible-frame search, fully vectorised; values are copied exactly;
* moving camera: neighbour frames are aligned to the target with homographies chained
  from frame-to-frame estimates (see :mod:`privvid.inpaint.motion`) and probed in order
  of time distance until the hole is filled or ``max_probes`` frames were tried.

The colour mismatch between the propagated pixels and the current frame on a thin ring
around the hole is diffused into the hole (push-pull interpolation), so exposure changes
leave no visible seam. Pixels never seen as background in any available frame are
filled with OpenCV inpainting (Telea/NS) from their surroundings.

Background with evidence (a removed person must never be pasted back from a frame in which the
detector missed them or the alignment is off):

* a source pixel is never one the caller marks ``avoid`` in its own frame (the pipeline passes
  every detection's box, grown, so pixels near a person are never sources, whatever the mask);
* where two sources can be had for a pixel (the nearest background before and after it in time,
  or the carried background model; on a moving camera the first two aligned frames that show
  it), they must agree within ``agree_tol`` on every channel; where they disagree, one of them is
  not background, and the pixel is filled spatially instead.

Guarantees: unmasked pixels are returned bit-exact; every masked pixel is written from
another frame's background or from spatial inpainting, never from the frame's own
masked value; pixels within ``margin`` px of a mask, or marked ``avoid``, are never used as a
source.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

import cv2
import numpy as np

import privvid
from privvid.config import InpaintConfig
from privvid.inpaint import motion as mo
from privvid.inpaint.base import check_window, check_zones, zone_masks
from privvid.inpaint.classical import METHODS, spatial_fill

ALIGN_MODES = ("auto", "static", "homography")
RING = 3           # px of unmasked border used to measure the colour mismatch
MAX_RESIDUAL = 40  # a larger mismatch on the ring is misalignment, not exposure: clipped
BLEND_SCALE = 4    # the colour correction is interpolated at this downscale
EXPOSURE_SCALE = 8  # thumbnails for the exposure match are this much smaller
MIN_COMMON = 0.1    # share of the thumbnail both frames must show as background to match exposure
PROBE_DISTANCES = (1, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64)


class PropagationInpainter:
    name = "propagate"
    uses_sources = True  # takes ``avoid`` (pixels never used as a source)

    def __init__(self, config: InpaintConfig | None = None) -> None:
        cfg = config or InpaintConfig()
        if cfg.align not in ALIGN_MODES:
            raise ValueError(f"unknown align mode {cfg.align!r}; choose one of {', '.join(ALIGN_MODES)}")
        if cfg.method not in METHODS:
            raise ValueError(f"unknown OpenCV inpainting method {cfg.method!r}; choose telea or ns")
        if cfg.context < 0 or cfg.margin < 0 or cfg.max_probes < 1:
            raise ValueError("context and margin must be >= 0 and max_probes >= 1")
        if not (0 < cfg.spatial_scale <= 1 and 0 < cfg.motion_scale <= 1):
            raise ValueError("spatial_scale and motion_scale must be in (0, 1]")
        self.config = cfg
        self.context = int(cfg.context)
        self._kernel = np.ones((2 * cfg.margin + 1, 2 * cfg.margin + 1), np.uint8) if cfg.margin else None
        self._ring_kernel = np.ones((2 * RING + 1, 2 * RING + 1), np.uint8)
        self.reset()

    # ------------------------------------------------------------------ state
    def reset(self) -> None:
        self._ref: dict[str, Any] | None = None
        self._prop: np.ndarray | None = None
        self._got: np.ndarray | None = None
        self._rgba: np.ndarray | None = None
        self.stats = {"windows": 0, "static_windows": 0, "moving_windows": 0, "frames_processed": 0,
                      "masked_px": 0, "propagated_px": 0, "spatial_px": 0, "disagreeing_px": 0}
        self.timings = {"motion": 0.0, "propagate": 0.0, "blend": 0.0, "spatial": 0.0}

    def info(self) -> dict[str, Any]:
        c = self.config
        masked = max(self.stats["masked_px"], 1)
        return {
            "name": self.name,
            "version": privvid.__version__,
            "opencv": cv2.__version__,
            "params": {
                "window": c.window, "context": c.context, "align": c.align, "margin": c.margin,
                "max_probes": c.max_probes, "blend": c.blend, "method": c.method, "radius": c.radius,
                "spatial_scale": c.spatial_scale, "motion_scale": c.motion_scale, "static_px": c.static_px,
                "agree_tol": c.agree_tol,
            },
            "stats": dict(self.stats, propagated_share=round(self.stats["propagated_px"] / masked, 4)),
        }

    # ------------------------------------------------------------------ main
    def __call__(self, frames: np.ndarray, masks: np.ndarray, core: slice | None = None,
                 avoid: Sequence[np.ndarray] | None = None) -> np.ndarray:
        """Fill one window; with ``core`` only those frames are filled (the others are context).
        ``avoid``: per frame, (n, 4) int rectangles x0, y0, x1, y1 (ends exclusive) whose pixels are never
        used as a source, e.g. around every detection (:func:`privvid.inpaint.base.zone_masks`)."""
        check_window(frames, masks, self.context)
        if avoid is not None:
            check_zones(avoid, len(masks))
        cfg = self.config
        T, H, W = masks.shape
        if self._ref is not None and self._ref["frame"].shape[:2] != (H, W):
            self._ref = None  # a new size means a new clip: old background is useless
        out = frames.copy()
        self.stats["windows"] += 1
        self.stats["frames_processed"] += T  # context frames count once per window they are in

        t0 = time.perf_counter()
        grays = [mo.to_gray(f, cfg.motion_scale) for f in frames] if cfg.align != "static" else None
        small_shape = grays[0].shape if grays else None
        valid_small = [mo.small_valid(m, small_shape, 1) for m in masks] if grays else None
        steps: list[mo.Motion] = []
        ref_motion: mo.Motion | None = None
        any_mask = bool(masks.any())
        if grays is not None and any_mask:
            fine = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames] if cfg.motion_scale < 1 else None
            steps = [mo.estimate(grays[t], grays[t + 1], valid_small[t], valid_small[t + 1],
                                 cfg.motion_scale, cfg.static_px,
                                 fine=(fine[t], fine[t + 1]) if fine is not None else None) for t in range(T - 1)]
            if self._ref is not None:
                ref_motion = mo.estimate(self._ref["gray"], grays[0], self._ref["valid_small"], valid_small[0],
                                         cfg.motion_scale, cfg.static_px)
        static = cfg.align == "static" or (
            cfg.align == "auto" and all(s.static for s in steps) and (ref_motion is None or ref_motion.static))
        self.timings["motion"] += time.perf_counter() - t0

        if any_mask:
            t0 = time.perf_counter()
            src_valid = self._source_valid(masks if avoid is None else zone_masks(avoid, masks))
            ext = self._extend(masks) if cfg.blend else masks
            k = self._kept(T, core)
            prop, got = self._buffers(frames.shape)
            thumbs = _Thumbs(frames, src_valid, self._ref) if cfg.blend and static else None
            if static:
                age = self._propagate_static(frames, src_valid, ext, prop, got, k, thumbs)
            else:
                age = self._propagate_moving(frames, src_valid, ext, steps, ref_motion, prop, got, k)
            self.timings["propagate"] += time.perf_counter() - t0
            self.stats["static_windows" if static else "moving_windows"] += 1

            for t in range(T)[core or slice(None)]:
                hole = masks[t]
                if not hole.any():
                    continue
                use = hole & got[t]
                if cfg.blend and use.any():
                    t1 = time.perf_counter()
                    self._blend(frames[t], prop[t], got[t], ext[t], hole)
                    self.timings["blend"] += time.perf_counter() - t1
                np.copyto(out[t], prop[t], where=use[..., None])
                rest = hole & ~got[t]
                if rest.any():
                    t1 = time.perf_counter()
                    spatial_fill(out[t], rest, cfg.radius, cfg.method, cfg.spatial_scale)
                    self.timings["spatial"] += time.perf_counter() - t1
                n_hole, n_use = int(hole.sum()), int(use.sum())
                self.stats["masked_px"] += n_hole
                self.stats["propagated_px"] += n_use
                self.stats["spatial_px"] += n_hole - n_use
        else:
            k = self._kept(T, core)
            got = np.zeros_like(masks)
            age = np.zeros((H, W), np.float32)

        # the last core frame's result becomes the background model for the next window
        known = ~masks[k] | got[k]
        gray = grays[k] if grays is not None else None
        self._ref = {"frame": out[k].copy(), "known": known, "age": age, "gray": gray,
                     "valid_small": valid_small[k] if valid_small is not None else None}
        return out

    def forget(self, region: np.ndarray) -> None:
        """The last window's last core frame is no background at ``region`` ((H, W) bool): its pixels
        there are no source for the next window (they were mended after the fill: a person was found in
        them). A region of another size drops the model."""
        if self._ref is None:
            return
        if region.shape != self._ref["known"].shape:
            self._ref = None   # not this model's frame: no model is safer than a wrong one
            return
        self._ref["known"] &= ~region

    # ------------------------------------------------------------------ helpers
    def _kept(self, T: int, core: slice | None = None) -> int:
        """Index of the last core frame of a window (it seeds the next window's model)."""
        if core is not None:
            return range(T)[core][-1]
        return T - 1 - self.context if T - 1 - self.context >= 0 else T - 1

    def _buffers(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """Reused work arrays: fresh multi-MB allocations per window cost more than the work."""
        T = shape[0]
        if self._prop is None or self._prop.shape[1:] != shape[1:] or len(self._prop) < T:
            self._prop = np.empty(shape, np.uint8)
            self._got = np.empty(shape[:3], bool)
        got = self._got[:T]
        got.fill(False)
        return self._prop[:T], got

    def _source_valid(self, masks: np.ndarray) -> np.ndarray:
        if self._kernel is None:
            return ~masks
        return np.stack([cv2.dilate(m.view(np.uint8), self._kernel) == 0 for m in masks])

    def _extend(self, masks: np.ndarray) -> np.ndarray:
        return np.stack([cv2.dilate(m.view(np.uint8), self._ring_kernel) > 0 for m in masks])

    def _propagate_static(self, frames: np.ndarray, valid: np.ndarray, ext: np.ndarray,
                          prop: np.ndarray, got: np.ndarray, keep: int, thumbs: "_Thumbs | None") -> np.ndarray:
        """Nearest frame (past, future or the carried model) where each pixel is background."""
        T, H, W = valid.shape
        ref = self._ref
        fwd = np.empty((T, H, W), np.int16)
        cur = np.full((H, W), -2, np.int16)  # -2: never seen, -1: carried model
        if ref is not None:
            cur[ref["known"]] = -1
        for t in range(T):
            fwd[t] = cur
            np.putmask(cur, valid[t], t)
        bwd = np.empty((T, H, W), np.int16)
        cur = np.full((H, W), -2, np.int16)
        for t in range(T - 1, -1, -1):
            bwd[t] = cur
            np.putmask(cur, valid[t], t)

        # flat indices: one gather per array instead of three-index fancy indexing
        hw = H * W
        flat = np.flatnonzero(ext)
        ts = (flat // hw).astype(np.int32)
        pix = flat - ts.astype(np.int64) * hw
        f = fwd.ravel()[flat].astype(np.int32)
        b = bwd.ravel()[flat].astype(np.int32)
        far = np.int32(1 << 30)
        ref_dist = ts + 1 + (ref["age"].ravel()[pix].astype(np.int32) if ref is not None else 0)
        df = np.where(f >= 0, ts - f, np.where(f == -1, ref_dist, far))
        db = np.where(b >= 0, b - ts, far)
        use_b = db < df
        src = np.where(use_b, b, f)
        d = np.where(use_b, db, df)
        ok = d < far

        offsets = thumbs.static_offsets() if thumbs is not None else None
        frames_flat = frames.reshape(-1, 3)
        ref_flat = ref["frame"].reshape(-1, 3) if ref is not None else None

        def values_at(sel: np.ndarray, source: np.ndarray) -> np.ndarray:
            """Colours of ``source`` (frame index, or -1 = carried model) at the selected hole pixels."""
            ss, tt, pp = source[sel], ts[sel], pix[sel]
            vals = np.empty((len(ss), 3), np.uint8)
            in_win = ss >= 0
            vals[in_win] = frames_flat[ss[in_win].astype(np.int64) * hw + pp[in_win]]
            if ref_flat is not None and not in_win.all():
                vals[~in_win] = ref_flat[pp[~in_win]]
            if offsets is not None:
                vals = _shifted(vals, offsets[tt, np.where(in_win, ss, T)])
            return vals

        tol = self.config.agree_tol
        if tol > 0:
            # two witnesses (before and after in time, or the carried model) must agree
            both = np.flatnonzero((df < far) & (db < far))
            if len(both):
                vf, vb = values_at(both, f), values_at(both, b)
                bad = np.abs(vf.astype(np.int16) - vb).max(axis=1) > tol
                ok[both[bad]] = False
                self.stats["disagreeing_px"] += int(bad.sum())
        prop_flat, got_flat = prop.reshape(-1, 3), got.ravel()
        sel = np.flatnonzero(ok)
        prop_flat[flat[sel]] = values_at(sel, src)
        got_flat[flat[ok]] = True
        age = np.zeros(hw, np.int32)
        at_keep = ok & (ts == keep)
        age[pix[at_keep]] = d[at_keep]
        return age.reshape(H, W)

    def _propagate_moving(self, frames: np.ndarray, valid: np.ndarray, ext: np.ndarray,
                          steps: list[mo.Motion], ref_motion: mo.Motion | None,
                          prop: np.ndarray, got: np.ndarray, keep: int) -> np.ndarray:
        """Probe neighbour frames, aligned by chained homographies, nearest in time first."""
        T, H, W = valid.shape
        ref = self._ref
        to0 = [mo.IDENTITY]  # frame t -> frame 0
        for s in steps:
            to0.append(to0[-1] @ np.linalg.inv(s.matrix))
        ref_to0 = None
        if ref is not None:
            ref_to0 = ref_motion.matrix if ref_motion is not None else mo.IDENTITY
        # colour + source validity in one 4-channel image: one warp per probe, and a bilinear
        # sample is trusted only where all four neighbours are valid (alpha stays 255)
        if self._rgba is None or self._rgba.shape[1:3] != (H, W) or len(self._rgba) < T:
            self._rgba = np.empty((T, H, W, 4), np.uint8)
        rgba = self._rgba[:T]
        rgba[..., :3] = frames
        rgba[..., 3] = valid.view(np.uint8) * np.uint8(255)
        ref_rgba = None
        if ref is not None:
            ref_rgba = np.dstack([ref["frame"], ref["known"].view(np.uint8) * np.uint8(255)])

        age = np.zeros((H, W), np.float32)
        for t in range(T):
            if not ext[t].any():
                continue
            y0, y1, x0, x1 = _bbox(ext[t])
            rem = ext[t][y0:y1, x0:x1].copy()
            vals = prop[t, y0:y1, x0:x1]
            have = got[t, y0:y1, x0:x1]
            dd = age[y0:y1, x0:x1] if t == keep else None
            stop_at = max(16, int(rem.sum()) // 200)  # a few stray pixels go to spatial inpainting
            from0 = np.linalg.inv(to0[t])
            tol = self.config.agree_tol
            once = np.zeros_like(rem)  # filled by one source, waiting for a second to confirm it
            bad = np.zeros_like(rem)   # two sources disagreed: spatial fill
            for d, s in self._probe_order(t, T, ref is not None):
                # warp only the bounding box of what is still missing or unconfirmed
                by0, by1, bx0, bx1 = _bbox(rem | once)
                shift = np.array([[1, 0, -(x0 + bx0)], [0, 1, -(y0 + by0)], [0, 0, 1]], np.float64)
                mat = shift @ from0 @ (to0[s] if s >= 0 else ref_to0)
                warped = cv2.warpPerspective(rgba[s] if s >= 0 else ref_rgba, mat, (bx1 - bx0, by1 - by0),
                                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                                             borderValue=(0, 0, 0, 0))
                seen = warped[..., 3] == 255
                v = vals[by0:by1, bx0:bx1]
                if tol > 0:
                    o = once[by0:by1, bx0:bx1]
                    check = o & seen
                    if check.any():
                        diff = np.abs(v[check].astype(np.int16) - warped[..., :3][check]).max(axis=1) > tol
                        bad[by0:by1, bx0:bx1][check] = diff
                        o &= ~check
                r = rem[by0:by1, bx0:bx1]
                take = r & seen
                if take.any():
                    v[take] = warped[..., :3][take]
                    have[by0:by1, bx0:bx1] |= take
                    if dd is not None:
                        dd[by0:by1, bx0:bx1][take] = d
                    r &= ~take
                    if tol > 0:
                        once[by0:by1, bx0:bx1] |= take
                if np.count_nonzero(rem) <= stop_at and np.count_nonzero(once) <= stop_at:
                    break
            if bad.any():
                have &= ~bad
                self.stats["disagreeing_px"] += int(bad.sum())
        return age

    def _probe_order(self, t: int, T: int, with_ref: bool) -> list[tuple[int, int]]:
        order: list[tuple[int, int]] = []
        for d in PROBE_DISTANCES:
            for s in (t - d, t + d):
                if 0 <= s < T:
                    order.append((d, s))
        if with_ref:
            order.append((t + 1, -1))
            order.sort(key=lambda p: p[0])
        order = order[: self.config.max_probes]
        if with_ref and all(s != -1 for _, s in order):
            order.append((t + 1, -1))  # the carried model is always the last resort
        return order

    def _blend(self, frame: np.ndarray, prop: np.ndarray, got: np.ndarray, ext: np.ndarray,
               hole: np.ndarray) -> None:
        """Shift ``prop`` inside the hole by the colour mismatch measured on the ring around it."""
        y0, y1, x0, x1 = _bbox(ext)
        e, g, hl = ext[y0:y1, x0:x1], got[y0:y1, x0:x1], hole[y0:y1, x0:x1]
        ring = e & ~hl & g
        if ring.sum() < 8:
            return
        p = prop[y0:y1, x0:x1]
        den = ring.astype(np.float32)
        num = frame[y0:y1, x0:x1].astype(np.float32)
        num -= p
        np.clip(num, -MAX_RESIDUAL, MAX_RESIDUAL, out=num)
        num *= den[..., None]
        # the correction is smooth: interpolate it at 1/BLEND_SCALE resolution
        h, w = den.shape
        small = (max(w // BLEND_SCALE, 1), max(h // BLEND_SCALE, 1))
        corr = _push_pull(cv2.resize(num, small, interpolation=cv2.INTER_AREA),
                          cv2.resize(den, small, interpolation=cv2.INTER_AREA))
        corr = cv2.resize(corr, (w, h), interpolation=cv2.INTER_LINEAR)
        corr += p
        np.clip(corr, 0, 255, out=corr)
        np.copyto(p, corr.astype(np.uint8), where=(hl & g)[..., None])


class _Thumbs:
    """Tiny copies of a window's frames (and the carried model) for exposure matching.

    The colour offset between a source frame and the target is the mean difference over
    the background both show; it is added to copied pixels, so a camera that adjusts its
    exposure does not leave darker or brighter patches where a person was. Used for static
    windows only: measured through homographies on moving clips it made a trial on the
    cyclist clip worse, so moving windows rely on the ring correction alone.
    """

    def __init__(self, frames: np.ndarray, valid: np.ndarray, ref: dict[str, Any] | None) -> None:
        T, H, W = valid.shape
        self.T = T
        self.size = (max(W // EXPOSURE_SCALE, 1), max(H // EXPOSURE_SCALE, 1))
        imgs = [frames[t] for t in range(T)] + ([ref["frame"]] if ref is not None else [])
        vals = [valid[t] for t in range(T)] + ([ref["known"]] if ref is not None else [])
        self.img = np.stack([cv2.resize(i, self.size, interpolation=cv2.INTER_AREA) for i in imgs]).astype(np.float32)
        # a thumbnail pixel counts only if every full-resolution pixel under it is background
        self.ok = np.stack([cv2.resize(v.view(np.uint8), self.size, interpolation=cv2.INTER_AREA) == 1
                            for v in vals]).astype(np.float32)
        self._static: np.ndarray | None = None

    def static_offsets(self) -> np.ndarray:
        """(T, T+1, 3) int16: offset to add to a pixel of source s to match target t (same place)."""
        if self._static is None:
            n = len(self.img)
            a = self.ok.reshape(n, -1)
            x = self.img.reshape(n, -1, 3) * a[..., None]
            both = a[: self.T] @ a.T
            diff = np.einsum("sp,tpc->tsc", a, x[: self.T]) - np.einsum("tp,spc->tsc", a[: self.T], x)
            off = diff / np.maximum(both, 1)[..., None]
            off[both < MIN_COMMON * a.shape[1]] = 0
            self._static = np.rint(off).astype(np.int16)
        return self._static


def _shifted(values: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """uint8 ``values`` plus an integer colour ``offset`` per pixel, clipped."""
    if not offset.any():
        return values
    out = values.astype(np.int16)
    out += offset
    return np.clip(out, 0, 255).astype(np.uint8)


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """y0, y1, x0, x1 of the True pixels (half-open); the mask must not be empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _push_pull(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Smoothly interpolate values known where ``den`` > 0 (``num`` = value * den) everywhere."""
    h, w = den.shape
    known = den > 1e-6
    if known.all() or min(h, w) <= 2 or not known.any():
        if not known.any():
            return np.zeros(num.shape, np.float32)
        mean = num.reshape(-1, 3).sum(0) / den.sum()
        fine = np.where(known[..., None], num / np.maximum(den, 1e-6)[..., None], mean)
        return fine.astype(np.float32)
    size = (max((w + 1) // 2, 1), max((h + 1) // 2, 1))
    coarse = _push_pull(cv2.resize(num, size, interpolation=cv2.INTER_AREA),
                        cv2.resize(den, size, interpolation=cv2.INTER_AREA))
    up = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    a = np.clip(den, 0, 1)[..., None]
    fine = num / np.maximum(den, 1e-6)[..., None]
    return (a * fine + (1 - a) * up).astype(np.float32)
