"""Streaming removal masks: detection -> tracking -> temporal union -> dilation.

Frames go in one at a time; a frame's removal mask is final once ``delay``
(= ``DetectConfig.temporal``) later frames have been seen, because it is the
union of the dilated person masks of frames i-delay .. i+delay. Each instance is
dilated by ``DetectConfig.dilate_rel`` x its own box height (at least
``dilate_min_frame`` x the frame height and ``dilate_min`` px; elliptical kernel),
so a mask grows with the person, not with the frame, and the same clip gives the
same removal at any resolution. Each connected piece of the person pixels of no
instance (``extra``) grows the same way by its own size, and by at least
``DetectConfig.dilate`` px; ``dilate_rel = 0`` uses the fixed ``DetectConfig.dilate``
px for everything. Only 2*delay+1 per-frame masks are held, never the clip.

With ``DetectConfig.temporal_align = "flow"`` (the default) a neighbour frame's
person pixels are first moved onto this frame by dense optical flow (OpenCV's DIS,
ultrafast preset, on a grey copy at most ``FLOW_WIDTH`` px wide, chained frame to
frame) and grow by ``DetectConfig.temporal_grow`` x the dilation of their own frame
(never less than the least growth, so small people keep their whole margin):
the neighbours are there to cover what this frame's detection dropped, where the
person is now, not to stamp five silhouettes of a moving person and the camera's
pan over the scene. A piece of the moved neighbours' masks that touches none of this
frame's own is a person this frame missed, and keeps its full growth. With
``DetectConfig.temporal_vote`` > 1 (opt-in), next to a person this frame found, a neighbour's pixel
is kept only where that many neighbours hold it, or
inside a piece thicker than ``temporal_sliver`` of that person's height (a limb this frame dropped),
not in the thin slivers that the flow's error leaves along the person's outline. ``"none"``
unions the neighbours' masks where they lie, grown as much as their own frame's
(the rule until 2026-12-05).

A frame whose shorter side is longer than ``DetectConfig.work_lines`` (720 by default) is scaled
down to that before any of this (``INTER_AREA``), and what comes out is scaled back up: the instance masks at the
middle of the interpolation, boxes and landmarks by the scale, the removal mask (and ``extra``) over
every frame pixel that a working pixel touches, so it never covers less than the working mask does.
``dilate`` and ``dilate_min`` keep counting frame pixels; a backend's own pixel options (the ssd
detector's ``small_fill``, ``small``) count working pixels.

A detector with ``tracks = True`` gives its own track ids; otherwise the IoU
tracker assigns them.

A backend exception propagates unchanged (the pipeline quarantines the clip); a
backend result of the wrong type or shape raises :class:`BackendFailure`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from privvid.config import DetectConfig
from privvid.detect.base import Detections, Detector
from privvid.detect.common import check_frame, dilate, instance_kernel, least_kernel, mask_box, validate
from privvid.detect.track import IouTracker

Output = tuple[Detections, np.ndarray]
FLOW_WIDTH = 432  # px: optical flow runs on a grey copy at most this wide (its cost does not grow with the input)
MIN_FLOW_SIDE = 16  # px: a frame whose flow copy is smaller on a side gets no flow (DIS needs patches)
# px: a flow copy shorter than this is padded (edge rows repeated) before DIS sees it: OpenCV's DIS
# ULTRAFAST crashes the process on grey images 100 px wide or more and 16-31 px high (a 3840x240 clip's
# copy is 432x27), and runs on the padded one; the flow is cut back to the copy's size
DIS_MIN_SIDE = 32


class MaskStream:
    def __init__(self, detector: Detector, cfg: DetectConfig | None = None,
                 tracker: IouTracker | None = None) -> None:
        self.cfg = self.given = cfg or DetectConfig()   # cfg: in working pixels once a frame has come
        if self.cfg.temporal < 0:
            raise ValueError(f"temporal must be >= 0, got {self.cfg.temporal}")
        if self.cfg.dilate < 0:
            raise ValueError(f"dilate must be >= 0, got {self.cfg.dilate}")
        self.detector = detector
        self.tracker = tracker or IouTracker(self.cfg.track_iou, self.cfg.track_max_age)
        self.own_tracks = bool(getattr(detector, "tracks", False)) and tracker is None
        self.delay = int(self.cfg.temporal)
        self._shape: tuple[int, int] | None = None
        self._full: tuple[int, int] | None = None   # the frames' own (height, width), when they are scaled down
        # (index, this frame's removal pixels, the same as a neighbour's: grown by temporal_grow)
        self._unions: deque[tuple[int, np.ndarray, np.ndarray]] = deque(maxlen=2 * self.delay + 1)
        self._pending: deque[tuple[int, Detections]] = deque()
        self._count = 0
        self._flow = _FlowMaps() if self.delay > 0 and self.cfg.temporal_align == "flow" else None

    @property
    def align(self) -> bool:
        """Whether the neighbours' masks are moved by optical flow (``temporal_align`` flow, ``temporal`` > 0)."""
        return self._flow is not None

    def reset(self) -> None:
        self.detector.reset()
        self.tracker.reset()
        if self._full is not None and getattr(self.detector, "cfg", None) is self.cfg:
            self.detector.cfg = self.given   # type: ignore[attr-defined]
        self._shape = self._full = None
        self.cfg = self.given
        self._unions.clear()
        self._pending.clear()
        self._count = 0
        if self._flow is not None:
            self._flow = _FlowMaps()

    def _removal(self, i: int, last: int, dets: Detections) -> np.ndarray:
        lo, hi = i - self.delay, min(i + self.delay, last)
        held = {j: (own, near) for j, own, near in self._unions if lo <= j <= hi}
        out = held[i][0].copy()
        if self._flow is None:
            for j, (own, _) in held.items():
                if j != i:
                    out |= own
            return out
        if self.cfg.temporal_vote > 1:
            return self._voted(i, held, out, dets)
        # each side's neighbours, carried one frame at a time onto frame i: a union moved by a map is
        # the union of the moved masks, so the far neighbour rides along with the near one's step. Both
        # the neighbours' full growth and their lesser one are carried
        full = np.zeros_like(out)
        for step in (1, -1):
            carried: list[np.ndarray] | None = None
            j = i + step * self.delay
            while j != i:
                if j in held:
                    carried = list(held[j]) if carried is None else [c | h for c, h in zip(carried, held[j])]
                if carried is not None:
                    carried = [self._flow.warp(c, j - step, j) for c in carried]
                j -= step
            if carried is not None:
                full |= carried[0]
                out |= carried[1]
        return self._missed(held[i][0], out, full)

    @staticmethod
    def _missed(own: np.ndarray, out: np.ndarray, full: np.ndarray) -> np.ndarray:
        """``out`` plus each piece of ``full`` (the neighbours' moved masks, fully grown) that touches none
        of this frame's ``own``: the lesser growth is for people this frame found too (their own mask has
        the full margin); a person it missed keeps the full margin."""
        if full.any():
            n, labels = cv2.connectedComponents(full.view(np.uint8), connectivity=8)
            missed = np.ones(n, bool)
            missed[0] = False
            missed[labels[own & full]] = False
            out |= missed[labels]
        return out

    def _voted(self, i: int, held: dict[int, tuple[np.ndarray, np.ndarray]], out: np.ndarray,
               dets: Detections) -> np.ndarray:
        """``_removal`` with ``temporal_vote`` > 1: each neighbour's masks are carried onto frame i on their
        own. Of their lesser growth, a pixel is added where ``temporal_vote`` of them hold it; where fewer
        do, only inside a piece thicker than ``temporal_sliver`` of the height of the person of frame i it
        lies by (a morphological opening, person by person, of what they add to this frame's own mask): a
        limb this frame's detection dropped is thick, a neighbour's outline that the flow put a few pixels
        off is a thin sliver along the person. By a person whose sliver would be thinner than the least
        margin (a small person) every neighbour pixel is kept, and a person this frame missed keeps every
        neighbour's pixels too (``_missed``)."""
        assert self._flow is not None
        full = np.zeros_like(out)
        votes = np.zeros(out.shape, np.uint8)
        for j, (own, near) in held.items():
            if j == i:
                continue
            step = 1 if j > i else -1
            moved = [own, near]
            k = j
            while k != i:
                moved = [self._flow.warp(m, k - step, k) for m in moved]
                k -= step
            full |= moved[0]
            votes += moved[1].view(np.uint8)
        added = (votes > 0) & ~out
        if added.any():
            h, w = out.shape
            least = least_kernel(self.cfg, h)
            keep = np.zeros_like(out)
            for box in dets.boxes:
                height = float(box[3] - box[1])
                size = int(round(self.cfg.temporal_sliver * height))
                # (as far as half their height out of their box: a limb this frame missed lies outside it)
                reach = instance_kernel(self.cfg, height, h) + size + int(height) // 2
                window = (slice(max(int(box[1]) - reach, 0), min(int(np.ceil(box[3])) + reach, h)),
                          slice(max(int(box[0]) - reach, 0), min(int(np.ceil(box[2])) + reach, w)))
                piece = added[window]
                if size < least:   # a small person: the neighbours' pixels by them are kept whole
                    keep[window] |= piece
                elif piece.any():
                    size += 1 - size % 2
                    keep[window] |= cv2.morphologyEx(
                        np.ascontiguousarray(piece).view(np.uint8), cv2.MORPH_OPEN,
                        cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))).view(bool)
            out |= keep   # (inside ``added``: an opening of a piece of it)
            out |= votes >= self.cfg.temporal_vote
        return self._missed(held[i][0], out, full)

    def _dilated(self, dets: Detections) -> tuple[np.ndarray, np.ndarray]:
        """This frame's person pixels, each instance grown by its own size (see the module doc), and the
        same grown by ``temporal_grow`` of that, for the neighbours' removal (the first again when not
        aligning)."""
        cfg = self.cfg
        grow = cfg.temporal_grow if self.align else 1.0

        def less(k: int, floor: int = int(cfg.dilate_min)) -> int:
            """A neighbour's kernel: ``temporal_grow`` of the frame's own ``k``, never under the least one
            (``floor``: small people keep their whole margin) nor over ``k``."""
            if grow >= 1.0 or k <= 1:
                return k
            k = min(k, max(floor, int(round(grow * k))))
            return k + 1 - k % 2

        if cfg.dilate_rel <= 0:
            union = dets.union()
            own = dilate(union, cfg.dilate)
            return own, (own if grow >= 1.0 else dilate(union, less(cfg.dilate)))
        h, w = dets.shape
        out = np.zeros((h, w), bool)
        near = out if grow >= 1.0 else np.zeros((h, w), bool)
        least = least_kernel(cfg, h)
        # (box, least kernel, the piece's pixels inside a window): a piece is only ever read in its window
        pieces: list[tuple[Any, int, Callable[[slice, slice], np.ndarray]]] = [
            (mask_box(mask), least, lambda ys, xs, m=mask: m[ys, xs]) for mask in dets.masks if mask.any()]
        if dets.extra is not None and dets.extra.any():
            # person pixels of no instance: each connected piece grows by its own size like an instance, and
            # by at least the fixed `dilate` px
            n, labels, stats, _ = cv2.connectedComponentsWithStats(dets.extra.view(np.uint8), connectivity=8)
            floor = max(least, int(cfg.dilate))
            pieces += [((x, y, x + bw, y + bh), floor, lambda ys, xs, k=k: labels[ys, xs] == k)
                       for k, (x, y, bw, bh) in enumerate(stats[1:, :4].tolist(), 1)]
        for box, floor, piece in pieces:
            k = instance_kernel(cfg, float(box[3] - box[1]), h, floor)
            r = k // 2 + 1
            x0, y0 = max(int(box[0]) - r, 0), max(int(box[1]) - r, 0)
            x1, y1 = min(int(np.ceil(box[2])) + r, w), min(int(np.ceil(box[3])) + r, h)
            if x1 <= x0 or y1 <= y0:
                continue
            window = (slice(y0, y1), slice(x0, x1))
            pixels = piece(*window)
            out[window] |= dilate(pixels, k)
            if near is not out:
                near[window] |= dilate(pixels, less(k, floor))
        return out, near

    def push(self, frame: np.ndarray) -> list[Output]:
        frame = check_frame(frame)
        shape = frame.shape[:2]
        if self._shape is None:
            self._start(shape)
        elif shape != (self._full or self._shape):
            raise ValueError(f"frame size changed within a clip: {self._full or self._shape} -> {shape}")
        if self._full is not None:
            h, w = self._shape   # type: ignore[misc]
            frame = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
            shape = (h, w)
        dets = validate(self.detector(frame), shape, getattr(self.detector, "name", "?"))
        if not self.own_tracks:
            dets = self.tracker.update(dets)
        idx = self._count
        self._count += 1
        if self._flow is not None:
            self._flow.add(idx, frame, keep=self.delay)
        self._unions.append((idx, *self._dilated(dets)))
        self._pending.append((idx, dets))
        out: list[Output] = []
        while self._pending and self._pending[0][0] + self.delay <= idx:
            i, d = self._pending.popleft()
            out.append(self._up(d, self._removal(i, idx, d)))
        return out

    def flush(self) -> list[Output]:
        last = self._count - 1
        out = [self._up(d, self._removal(i, last, d)) for i, d in self._pending]
        self._pending.clear()
        return out

    def _start(self, shape: tuple[int, int]) -> None:
        """The working size for frames of ``shape`` (the first frame's): the shorter side at most
        ``work_lines`` (a portrait clip is scaled as its landscape twin), the pixel settings of ``cfg``
        turned into working pixels, never narrower than asked (odd kernels, radii rounded up). A detector
        that reads the same settings (``detector.cfg``) reads the working ones too."""
        from privvid.io.video import working_shape

        small = working_shape(shape, int(self.given.work_lines))
        if small is None:
            self._shape = shape
            return
        self._full, self._shape = shape, small
        scale = int(self.given.work_lines) / min(shape)

        def px(v: int) -> int:
            return 2 * int(np.ceil((v - 1) / 2 * scale)) + 1 if v > 1 else v

        self.cfg = replace(self.given, dilate=px(self.given.dilate), dilate_min=px(self.given.dilate_min))
        if getattr(self.detector, "cfg", None) == self.given:
            self.detector.cfg = self.cfg   # type: ignore[attr-defined]

    def _up(self, dets: Detections, removal: np.ndarray) -> Output:
        """A working-size result at the frames' own size (as it is when they are not scaled down)."""
        if self._full is None:
            return dets, removal
        h, w = self._full
        sy, sx = h / removal.shape[0], w / removal.shape[1]

        def grown(m: np.ndarray, cover: bool) -> np.ndarray:
            up = cv2.resize(m.view(np.uint8) * np.uint8(255), (w, h), interpolation=cv2.INTER_LINEAR)
            return up > 0 if cover else up >= 128

        masks = np.stack([grown(m, False) for m in dets.masks]) if len(dets.masks) else np.zeros((0, h, w), bool)
        scale = np.array([sx, sy, sx, sy], np.float32)
        keypoints = None
        if dets.keypoints is not None:
            keypoints = dets.keypoints.astype(np.float32, copy=True)
            keypoints[..., 0] *= sx
            keypoints[..., 1] *= sy
        up = Detections(masks=masks, boxes=(dets.boxes * scale).astype(np.float32).reshape(-1, 4),
                        scores=dets.scores, track_ids=dets.track_ids, keypoints=keypoints,
                        extra=None if dets.extra is None else grown(dets.extra, True),
                        world_keypoints=dets.world_keypoints)
        return up, grown(removal, True)

    def run(self, frames: Iterable[np.ndarray]) -> list[Output]:
        """A whole in-memory clip at once (tests and benchmarks): reset, push every frame, flush."""
        self.reset()
        out: list[Output] = []
        for frame in frames:
            out += self.push(frame)
        return out + self.flush()

    def info(self) -> dict[str, Any]:
        return {
            "backend": getattr(self.detector, "name", type(self.detector).__name__),
            "detector": self.detector.info(),
            "tracker": {"name": "detector's own"} if self.own_tracks else self.tracker.info(),
            "temporal": self.delay,
            "temporal_align": self.cfg.temporal_align if self.delay else "none",
            "temporal_grow": self.cfg.temporal_grow if self.align else 1.0,
            "temporal_vote": self.cfg.temporal_vote if self.align else 1,
            "temporal_sliver": self.cfg.temporal_sliver if self.align and self.cfg.temporal_vote > 1 else 0.0,
            **({"flow": f"opencv DIS ultrafast, at most {FLOW_WIDTH} px wide"} if self.align else {}),
            "dilate": self.given.dilate,
            "dilate_rel": self.cfg.dilate_rel,
            "dilate_min": self.given.dilate_min,
            "work_lines": self.given.work_lines,
            "work_size": None if self._shape is None else [self._shape[1], self._shape[0]],
            "dilate_min_frame": self.cfg.dilate_min_frame,
            "dilate_kernel": "ellipse",
        }


class _FlowMaps:
    """Dense optical flow between consecutive frames, both ways, as remap tables at the frame's size.

    ``warp(mask, a, b)`` moves a mask of frame ``b`` (a neighbour of ``a``) onto frame ``a``: each pixel
    of ``a`` takes the mask's value where the flow from ``a`` to ``b`` says that pixel went. ``add`` keeps
    only a small grey copy of each frame; a flow and its table are computed the first time a non-empty
    mask is moved along them (stretches with nobody in them cost no flow), and only those the held window
    needs are kept.
    """

    def __init__(self) -> None:
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST)
        self._greys: dict[int, np.ndarray] = {}  # frame -> its grey copy at the flow's size
        self._maps: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}   # (a, b) -> remap table
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._scale = 1.0
        self._size = (0, 0)   # (w, h) of the flow copies before padding (set with the grid)

    def add(self, idx: int, frame: np.ndarray, keep: int) -> None:
        h, w = frame.shape[:2]
        if self._grid is None:
            self._scale = min(1.0, FLOW_WIDTH / w)
            gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
            self._grid = (gx, gy)
            self._size = (max(1, round(w * self._scale)), max(1, round(h * self._scale)))
        for old in [k for k in self._greys if k < idx - 2 * keep]:
            del self._greys[old]
        for key in [k for k in self._maps if min(k) < idx - 2 * keep]:
            del self._maps[key]
        size = self._size
        if min(size) < MIN_FLOW_SIDE:  # too small for DIS's patches: the masks stay where they lie
            return
        small = frame if self._scale >= 1.0 else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        pad_y, pad_x = max(0, DIS_MIN_SIDE - grey.shape[0]), max(0, DIS_MIN_SIDE - grey.shape[1])
        if pad_y or pad_x:
            grey = cv2.copyMakeBorder(grey, 0, pad_y, 0, pad_x, cv2.BORDER_REPLICATE)
        self._greys[idx] = grey

    def _table(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The remap table moving frame ``b``'s pixels onto frame ``a`` (None: no flow between them)."""
        if (a, b) in self._maps:
            return self._maps[a, b]
        if a not in self._greys or b not in self._greys:
            return None
        assert self._grid is not None
        w, h = self._size
        flow = self._dis.calc(self._greys[a], self._greys[b], None)
        if flow.shape[:2] != (h, w):
            flow = np.ascontiguousarray(flow[:h, :w])
        gx, gy = self._grid
        if self._scale < 1.0:
            flow = cv2.resize(flow, (gx.shape[1], gx.shape[0]), interpolation=cv2.INTER_LINEAR) / self._scale
        table = self._maps[a, b] = cv2.convertMaps(gx + flow[..., 0], gy + flow[..., 1], cv2.CV_16SC2,
                                                   nninterpolation=True)
        return table

    def warp(self, mask: np.ndarray, a: int, b: int) -> np.ndarray:
        table = self._table(a, b) if mask.any() else None
        if table is None:  # nothing to move, or no flow between frames this small
            return mask
        m1, m2 = table
        # nearest-neighbour sampling of a 0/1 image gives 0/1: a bool view, no copy
        return cv2.remap(mask.view(np.uint8), m1, m2, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=0).view(bool)


def build_mask_stream(cfg: DetectConfig | None = None) -> MaskStream:
    """The full per-clip chain for ``cfg.backend`` (raises UnknownBackend / MissingWeights early)."""
    from privvid.detect import DETECTORS

    cfg = cfg or DetectConfig()
    return MaskStream(DETECTORS.create(cfg.backend, cfg), cfg)
