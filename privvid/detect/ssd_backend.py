"""Embedded multi-person default (``ssd``): SSD person boxes, a selfie mask per box, tracks.

Every person in the frame is found as a box by the SSD MobileNetV2 person detector that npm
``@mediapipe/objectron`` ships (Apache-2.0; ``privvid models fetch`` installs it), on the whole
frame and, every ``tile_every`` frames, on overlapping tiles so that small people (a street, an
audience) are seen at a useful scale. A tile run that finds nobody the frame's own run did not (a
clip of big people only) lets the tiles rest until ``tile_idle`` frames later; the first run that
finds someone new brings them back to every ``tile_every`` frames. Boxes are merged by non-maximum
suppression (a box mostly inside a better one is a part of that person) and matched to tracks by
IoU; a track that the SSD misses keeps being looked at, at its predicted box, for ``carry`` frames,
so one missed frame (or the frames between two tile runs) does not lose a person.

Each box's square crop (``crop_scale`` x its longer edge) goes through mediapipe's selfie
segmentation model; the person pixels inside the box grown by ``box_grow`` are that person's
instance mask. The model was made for upright people: a box at least ``turn_aspect`` as wide as
it is tall (someone lying, crouching, cartwheeling or upside down) whose crop has a model input of
its own (``small`` px or more) is also segmented turned by 180 degrees, and the pixels the turned
pass is sure of (``turn_score``) are added. A box whose crop holds almost no person pixels is a
false alarm (a tripod, a rock) unless the SSD is sure of it (``keep_score``): then an ellipse in
the box is removed, so a person the segmenter cannot see is still never left in the frame.

With ``refine="pose"`` (mesh mode's default; off otherwise) a found person's instance is instead the mask that
BlazePose GHUM's landmark model gives for the one person their crop is centred on: the selfie model
marks everyone in a crop, so a dancer's instance held the spectators behind them. The selfie pixels
it leaves out stay removed (``extra``); it costs about 10 ms per refined person on one core, and
removal does not need it, so it is for runs whose instance masks are used. The same model run gives
the refined person's 33 landmarks, in the image and in metric 3D (``keypoints``, ``world_keypoints``;
confidence 0 for the people not refined): mesh mode fits those people from them instead of running
its own pose model on their crops. A person refined on the frame before is looked for where those
landmarks put them, turned upright (``refine_track``), as mediapipe's pose tracker does, with the two
points that place the region steadied by the one-euro filter that tracker gives them (``refine_steady``).

Compared with the ``mediapipe`` backend (selfie segmentation of the whole frame + BlazePose,
which follows one person at a time), this finds crowds and bystanders and gives one instance
and track per person. Without ``refine`` it gives no keypoints: mesh mode runs its pose model on
each person's crop.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from privvid.config import DetectConfig, parse_tiles
from privvid.detect.base import Detections
from privvid.detect.common import (  # noqa: F401
    box_iou, check_frame, crop_person_pixels, dilate, instance_kernel, mask_box, one_euro, options_from, tile_boxes)
from privvid.detect.litert_models import (
    PoseCrop, PoseCrops, SelfieCrops, SsdPersons, merge_parts, nms, pose_region, square_crop)
from privvid.errors import ConfigError


REFINE = ("none", "pose")


@dataclass(frozen=True)
class SsdOptions:
    """Options of the ``ssd`` detector (``--detect-opt name=value``)."""

    score: float = 0.2           # SSD person score for a box to count (the segmenter drops false alarms)
    nms_iou: float = 0.5         # boxes overlapping more are one person
    contain: float = 0.8         # a box this much inside a better one is a part of it
    tiles: str | None = "2x2"    # COLSxROWS overlapping tiles also searched (small people); "none" = off
    tile_every: int = 2          # tiles run on every k-th frame (tracks carry tile-found people between)
    tile_idle: int = 4           # after a tile run that found nobody the frame's own run missed (big people only),
                                 # the next one comes this many frames later (never sooner than tile_every); 0 = off
    tile_overlap: float = 0.25   # each tile is this much larger than its share of the frame
    crop_scale: float = 1.4      # square crop side / the box's longer edge
    mask_threshold: float = 0.3  # selfie probability for a person pixel
    box_grow: float = 0.25       # instance = person pixels inside the box grown by this share per side
    min_fill: float = 0.06       # a box with fewer person pixels (share of its area) is a false alarm...
    keep_score: float = 0.5      # ... unless it scores this high (then an ellipse in the box is removed)
    small_fill: int = 48         # a person shorter than this (px) also gets the ellipse of their box (the
                                 # segmenter sees them at a few dozen pixels; the ellipse costs little scene)
    carry: int = 3               # frames a missed track is still segmented at its predicted box
    track_iou: float = 0.3       # min box IoU to continue a track
    small: int = 96              # crops smaller than this (px) share one model input (2 x 2 mosaic)
    max_people: int = 96         # most boxes segmented per frame (best scores first)
    threads: int = 1             # interpreter threads (workers already use the cores)
    turn: bool = True            # also segment a crop of `small` px or more turned by 180 degrees when its box is...
    turn_aspect: float = 0.6     # ... at least this wide for its height (someone lying, crouching, kicking or upside
                                 # down; 0 = every box)
    turn_score: float = 0.9      # ... a pixel of the turned crop is the person's at this selfie probability
    shadow: float = 0.0          # > 0: also remove the person's cast shadow: pixels below and beside the feet,
                                 # within this share of the person's height, clearly darker than the ground
                                 # around them and touching the person (0 = off, the default)
    shadow_dark: float = 0.75    # ... "clearly darker": luminance below this share of the ground's median
    refine: str = "none"         # "pose": a found person's instance is BlazePose's mask of the one person their crop
                                 # is centred on (the selfie mask holds everyone in the crop: the spectators behind
                                 # a dancer); the selfie pixels it leaves out stay removed as `extra`. "none" = off
    refine_min: float = 0.2      # ... for people whose box's longer side is at least this share of the frame height
    refine_max: int = 4          # ... at most this many per frame (half those whose selfie mask reaches furthest out
                                 # of their box, half the largest; about 10 ms a pass on one core, two passes for a
                                 # wide box)
    refine_track: bool = True    # ... the pose model looks where the person's landmarks of the frame before say
                                 # they are, turned upright (one pass), when that finds this frame's instance;
                                 # false = always the box's square crop
    refine_steady: bool = True   # ... and is placed by the landmarks' two alignment points after a one-euro filter
                                 # (mediapipe's for them: cutoff 0.01 Hz, beta 1), not by where they lie raw

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"ssd detector option {what}")

        need(0.0 < self.score < 1.0, f"score must be in (0, 1), got {self.score}")
        need(0.0 < self.nms_iou <= 1.0, f"nms_iou must be in (0, 1], got {self.nms_iou}")
        need(0.0 < self.contain <= 1.01, f"contain must be in (0, 1.01], got {self.contain}")
        try:
            parse_tiles(self.tiles)
        except ValueError as exc:
            raise ConfigError(f"ssd detector option tiles: {exc}") from None
        need(self.tile_every >= 1, f"tile_every must be >= 1, got {self.tile_every}")
        need(self.tile_idle >= 0, f"tile_idle must be >= 0 (0 = off), got {self.tile_idle}")
        need(0.0 <= self.tile_overlap <= 1.0, f"tile_overlap must be in [0, 1], got {self.tile_overlap}")
        need(self.crop_scale >= 1.0, f"crop_scale must be >= 1, got {self.crop_scale}")
        need(0.0 < self.mask_threshold < 1.0, f"mask_threshold must be in (0, 1), got {self.mask_threshold}")
        need(0.0 <= self.box_grow <= 1.0, f"box_grow must be in [0, 1], got {self.box_grow}")
        need(0.0 <= self.min_fill < 1.0, f"min_fill must be in [0, 1), got {self.min_fill}")
        need(self.turn_aspect >= 0.0, f"turn_aspect must be >= 0, got {self.turn_aspect}")
        need(0.0 < self.turn_score < 1.0, f"turn_score must be in (0, 1), got {self.turn_score}")
        need(0.0 < self.keep_score <= 1.0, f"keep_score must be in (0, 1], got {self.keep_score}")
        need(self.carry >= 0, f"carry must be >= 0, got {self.carry}")
        need(self.small_fill >= 0, f"small_fill must be >= 0, got {self.small_fill}")
        need(0.0 < self.track_iou <= 1.0, f"track_iou must be in (0, 1], got {self.track_iou}")
        need(self.small >= 0 and self.max_people >= 1 and self.threads >= 1,
             "small must be >= 0, max_people and threads >= 1")
        need(0.0 <= self.shadow <= 2.0, f"shadow must be in [0, 2] (share of the person's height), got {self.shadow}")
        need(0.0 < self.shadow_dark < 1.0, f"shadow_dark must be in (0, 1), got {self.shadow_dark}")
        need(self.refine in REFINE, f"refine must be one of {', '.join(REFINE)}, got {self.refine!r}")
        need(0.0 <= self.refine_min <= 1.0, f"refine_min must be in [0, 1], got {self.refine_min}")
        need(self.refine_max >= 0, f"refine_max must be >= 0, got {self.refine_max}")


@dataclass
class _Track:
    tid: int
    box: np.ndarray           # x0, y0, x1, y1 of the last detection (or prediction)
    velocity: np.ndarray      # per-frame change of the box
    score: float
    missed: int = 0           # frames since the SSD last found it
    region: tuple[float, float, float, float] | None = None   # refine: where the pose model looks next ...
    region_at: int = -1       # ... set on this frame (used on the next one only)
    aux: tuple[np.ndarray, ...] | None = None   # refine_steady: the alignment points' filter state ...
    aux_at: int = -1                            # ... as of this frame


STEADY = (0.01, 1.0)   # one-euro cutoff (Hz) and beta of the alignment points (mediapipe's for its own) ...
STEADY_FPS = 30.0      # ... at this frame rate (the detector does not know the clip's; most action clips)


def _beyond(found: list[np.ndarray], whole: np.ndarray, iou: float = 0.3) -> bool:
    """Whether a box in ``found`` (the tiles' boxes, none cut by a tile's edge) matches no box in
    ``whole`` (the frame's own run) with an IoU of ``iou``: someone only the tiles see. A box inside
    a bigger one (a group, a person behind another) does not match it."""
    for b in found:
        if not len(b):
            continue
        if not len(whole) or (box_iou(b, whole).max(axis=1) < iou).any():
            return True
    return False


def ellipse_mask(box: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    cv2.ellipse(out, (int(round((x0 + x1) / 2)), int(round((y0 + y1) / 2))),
                (max(1, int(round((x1 - x0) / 2))), max(1, int(round((y1 - y0) / 2)))), 0, 0, 360, 1, -1)
    return out.astype(bool)


class SsdDetector:
    name = "ssd"
    Options = SsdOptions
    tracks = True  # gives its own track ids (the stream's IoU tracker is not needed)

    def __init__(self, cfg: DetectConfig | None = None) -> None:
        from privvid.runtime.models import SELFIE, SSD_PERSON, npm_model_path, wheel_model_path

        self.cfg = cfg or DetectConfig()
        self.opts = options_from(SsdOptions, self.cfg.options)
        self._tiles = parse_tiles(self.opts.tiles)
        self._ssd = SsdPersons(npm_model_path(SSD_PERSON), self.opts.threads)
        self._seg = SelfieCrops(wheel_model_path(SELFIE), small=self.opts.small, threads=self.opts.threads)
        self._pose = None
        if self.opts.refine == "pose":
            from privvid.runtime.models import POSE_LANDMARK

            self._pose = PoseCrops(wheel_model_path(POSE_LANDMARK), self.opts.threads)
        self.reset()

    def close(self) -> None:
        """Nothing to release: the interpreters go with the object."""

    def reset(self) -> None:
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._frame = 0
        self._next_tiles = 0
        self.stats = {"frames": 0, "boxes": 0, "carried": 0, "dropped": 0, "ellipses": 0, "tile_frames": 0,
                      "turned": 0, "shadow_px": 0, "refined": 0, "refine_kept": 0, "refine_tracked": 0}
        # the models' own counters run over every clip of the process: this clip's are counted from here
        self._inputs_at = (self._seg.inputs_run, self._pose.inputs_run if self._pose is not None else 0)

    # ------------------------------------------------------------------ boxes
    def _boxes(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        o = self.opts
        h, w = frame.shape[:2]
        boxes, scores, cut = [], [], []
        b, s = self._ssd(frame, o.score)
        boxes.append(b)
        scores.append(s)
        cut.append(np.zeros(len(b), bool))
        if self._tiles is not None and self._frame >= self._next_tiles:
            self.stats["tile_frames"] += 1
            own = b   # the whole frame's boxes
            cols, rows = self._tiles
            for x0, y0, x1, y1 in tile_boxes(w, h, cols, rows, o.tile_overlap):
                b, s = self._ssd(frame[y0:y1, x0:x1], o.score)
                if len(b):
                    # a box that ends at an edge the tile shares with the rest of the frame is a person
                    # cut by the tile: only a piece of them
                    edge = np.zeros(len(b), bool)
                    for k, (limit, inner) in enumerate(((0, x0 > 0), (0, y0 > 0), (x1 - x0, x1 < w),
                                                        (y1 - y0, y1 < h))):
                        if inner:
                            edge |= np.abs(b[:, k] - limit) <= 2
                    boxes.append(b + np.array([x0, y0, x0, y0], np.float32))
                    scores.append(s)
                    cut.append(edge)
            rest = o.tile_idle and not _beyond([t[~e] for t, e in zip(boxes[1:], cut[1:])], own)
            self._next_tiles = self._frame + (max(o.tile_idle, o.tile_every) if rest else o.tile_every)
        b, s, c = np.concatenate(boxes), np.concatenate(scores), np.concatenate(cut)
        ok = ((b[:, 2] - b[:, 0]) >= 2) & ((b[:, 3] - b[:, 1]) >= 4)
        b, s, c = b[ok], s[ok], c[ok]
        if c.any() and (~c).any():
            # a cut piece overlapping a whole box by 40% of its area is that person: not a person of its own
            whole = b[~c]
            ix = (np.minimum(b[:, None, 2], whole[None, :, 2]) - np.maximum(b[:, None, 0], whole[None, :, 0])).clip(0)
            iy = (np.minimum(b[:, None, 3], whole[None, :, 3]) - np.maximum(b[:, None, 1], whole[None, :, 1])).clip(0)
            area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])).clip(1e-6)
            inter = ix * iy
            piece = c & (inter.max(axis=1) > 0.4 * area)
            whole_idx = np.flatnonzero(~c)
            for k in np.flatnonzero(piece):  # ... and widen that person's box to hold the piece too
                j = whole_idx[int(np.argmax(inter[k]))]
                b[j, :2] = np.minimum(b[j, :2], b[k, :2])
                b[j, 2:] = np.maximum(b[j, 2:], b[k, 2:])
            b, s = b[~piece], s[~piece]
        keep = nms(b, s, o.nms_iou, o.contain)
        b, s = merge_parts(b[keep], s[keep], o.contain)
        order = np.argsort(-s, kind="stable")[: o.max_people]
        return b[order], s[order]

    def _match(self, boxes: np.ndarray, scores: np.ndarray) -> list[tuple[_Track, bool]]:
        """Update the tracks with this frame's boxes; returns (track, found this frame) to segment."""
        o = self.opts
        matched_t: set[int] = set()
        matched_d: set[int] = set()
        if self._tracks and len(boxes):
            predicted = np.stack([t.box + t.velocity * min(t.missed + 1, 2) for t in self._tracks])
            iou = box_iou(boxes, predicted)
            pairs = np.argwhere(iou >= o.track_iou)
            for d, t in pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]:
                if d in matched_d or t in matched_t:
                    continue
                matched_d.add(int(d))
                matched_t.add(int(t))
                track = self._tracks[t]
                steps = track.missed + 1
                new_v = (boxes[d] - track.box) / steps
                track.velocity = 0.5 * track.velocity + 0.5 * new_v
                track.box = boxes[d].astype(np.float32).copy()
                track.score = float(scores[d])
                track.missed = 0
        out: list[tuple[_Track, bool]] = []
        keep: list[_Track] = []
        for t, track in enumerate(self._tracks):
            if t in matched_t:
                out.append((track, True))
                keep.append(track)
                continue
            track.missed += 1
            if track.missed <= o.carry and not _covered(track.box, boxes, o.contain):
                out.append((track, False))   # still looked for at its predicted box
            if track.missed <= max(o.carry, self.cfg.track_max_age):
                keep.append(track)           # its id comes back if the person is found again nearby
        for d in range(len(boxes)):
            if d not in matched_d:
                track = _Track(self._next_id, boxes[d].astype(np.float32).copy(), np.zeros(4, np.float32),
                               float(scores[d]))
                self._next_id += 1
                out.append((track, True))
                keep.append(track)
        self._tracks = keep
        return out

    # ------------------------------------------------------------------ main
    def __call__(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        o = self.opts
        h, w = frame.shape[:2]
        boxes, scores = self._boxes(frame)
        current = self._match(boxes, scores)
        self._frame += 1
        self.stats["frames"] += 1
        shown = []
        for track, found in current:
            box = track.box if found else track.box + track.velocity * min(track.missed, 2)
            bw, bh = box[2] - box[0], box[3] - box[1]
            if bw < 1 or bh < 1 or box[2] <= 0 or box[3] <= 0 or box[0] >= w or box[1] >= h:
                continue
            shown.append((track, found, box.astype(np.float32)))
        crops = [square_crop(box, o.crop_scale, w, h) for _, _, box in shown]
        probs = self._seg(frame, crops) if crops else []
        turn = [k for k, ((_, _, box), crop) in enumerate(zip(shown, crops)) if o.turn and crop[2] >= o.small
                and box[2] - box[0] >= o.turn_aspect * (box[3] - box[1])]
        if turn:
            # the selfie model misses much of a person who is not upright (a breakdancer's raised legs); the
            # crop turned upside down shows it that person the right way up, and only where it is sure
            self.stats["turned"] += len(turn)
            for k, prob in zip(turn, self._seg(frame, [crops[k] for k in turn], turned=True)):
                probs[k] = np.where(prob >= o.turn_score, np.maximum(probs[k], prob), probs[k])
        masks, out_boxes, out_scores, ids = [], [], [], []
        dead: set[int] = set()
        people: list[tuple[bool, np.ndarray, _Track]] = []   # (found this frame, SSD box, track) of each instance
        for (track, found, box), (cx, cy, side), prob in zip(shown, crops, probs):
            mask = self._instance(prob, cx, cy, side, box, (h, w))
            x0, y0, x1, y1 = np.clip(box, [0, 0, 0, 0], [w, h, w, h])
            area = max((x1 - x0) * (y1 - y0), 1.0)
            if found and (y1 - y0) < o.small_fill and mask.sum() >= o.min_fill * area:
                mask |= ellipse_mask(np.array([x0, y0, x1, y1]), (h, w))
            if mask.sum() < o.min_fill * area:
                if found and track.score >= o.keep_score:
                    mask = ellipse_mask(np.array([x0, y0, x1, y1]), (h, w))
                    self.stats["ellipses"] += 1
                else:
                    self.stats["dropped"] += 1
                    dead.add(track.tid)
                    continue
            if not mask.any():
                continue
            if o.shadow > 0:
                shadow = cast_shadow(frame, mask, o.shadow, o.shadow_dark)
                self.stats["shadow_px"] += int((shadow & ~mask).sum())
                mask |= shadow
            self.stats["boxes" if found else "carried"] += 1
            masks.append(mask)
            out_boxes.append(mask_box(mask).tolist())
            out_scores.append(track.score if found else track.score * 0.5)
            ids.append(track.tid)
            people.append((found, box, track))
        if dead:
            self._tracks = [t for t in self._tracks if t.tid not in dead]
        extra, marks = self._refine(frame, masks, out_boxes, people) if self._pose is not None and masks \
            else (None, {})
        n = len(masks)
        keypoints = world = None
        if marks:
            # the refined people's landmarks (mesh mode poses them from these); the others' stay at confidence 0
            keypoints, world = np.zeros((2, n, PoseCrops.LANDMARKS, 3), np.float32)
            for i, pc in marks.items():
                keypoints[i], world[i] = pc.image, pc.world
        return Detections(
            masks=np.stack(masks) if n else np.zeros((0, h, w), bool),
            boxes=np.asarray(out_boxes, np.float32).reshape(n, 4),
            scores=np.asarray(out_scores, np.float32),
            track_ids=np.asarray(ids, np.int64),
            keypoints=keypoints,
            extra=extra,
            world_keypoints=world,
        )

    def _to_refine(self, masks: list[np.ndarray], people: list[tuple[bool, np.ndarray, _Track]], height: int
                   ) -> list[int]:
        """Which instances get the pose model's mask (``refine``): people found this frame whose box's longer
        side is at least ``refine_min`` of the frame height (a breakdancer on the floor is wide, not tall),
        at most ``refine_max``: half of them those whose selfie instance reaches furthest out of their box
        (most pixels outside it: people merged into theirs; a breakdancer inside a ring of spectators, who
        stand taller), the rest the largest (a dancer with spectators inside their box)."""
        o = self.opts
        order = []
        for i, (found, box, _) in enumerate(people):
            size = float(max(box[2] - box[0], box[3] - box[1]))
            if not found or size < o.refine_min * height:
                continue
            x0, y0 = max(int(box[0]), 0), max(int(box[1]), 0)
            x1, y1 = int(np.ceil(box[2])), int(np.ceil(box[3]))
            outside = int(masks[i].sum()) - int(masks[i][y0:y1, x0:x1].sum())
            order.append((-outside, -size, i))
        first = [i for *_, i in sorted(order)[: o.refine_max // 2]]
        rest = [i for *_, i in sorted(order, key=lambda t: t[1]) if i not in first]
        return first + rest[: o.refine_max - len(first)]

    def _refine(self, frame: np.ndarray, masks: list[np.ndarray], boxes: list[list[Any]],
                people: list[tuple[bool, np.ndarray, _Track]]) -> tuple[np.ndarray | None, dict[int, PoseCrop]]:
        """Replace the chosen instances (:meth:`_to_refine`) by the pose model's mask of their person, in
        place (their boxes too). Returns the selfie pixels they leave out (``extra``: the people behind
        them, still removed; None when there are none) and what the pose model said of each instance it
        replaced (its landmarks).

        The crop is centred on the SSD box joined with the selfie instance's box: the SSD box of someone
        upside down or kicking often holds only part of them (breakdance at 432x240, frame 9: IoU 0.40
        with the GT from the SSD box's crop, 0.82 from the joined box's). Selfie pixels within the refined
        person's own removal margin (``instance_kernel``) are not put in ``extra``: the stream's dilation of
        this very mask removes them in this frame, and a margin of their own would remove more scene
        (parkour outside the person 7.0% instead of 6.3% at 432x240). In the union over frames the
        neighbours carry them only as far as the person's own mask carries."""
        h, w = frame.shape[:2]
        extra = np.zeros((h, w), bool)
        marks: dict[int, PoseCrop] = {}
        for i in self._to_refine(masks, people, h):
            mb = np.asarray(boxes[i], np.float32)   # the selfie instance's own box (``mask_box`` of masks[i])
            box = np.concatenate([np.minimum(mb[:2], people[i][1][:2]), np.maximum(mb[2:], people[i][1][2:])])
            found = self._refined(frame, square_crop(box, self.opts.crop_scale, w, h), box, mb, people[i][2])
            if found is None:
                continue
            own, marks[i] = found
            tight = mask_box(own)
            extra |= masks[i] & ~dilate(own, instance_kernel(self.cfg, float(tight[3] - tight[1]), h))
            masks[i] = own
            boxes[i] = tight.tolist()
        extra &= ~np.logical_or.reduce(masks)
        return (extra if extra.any() else None), marks

    def _refined(self, frame: np.ndarray, crop: tuple[int, int, int], box: np.ndarray, selfie_box: np.ndarray,
                 track: _Track) -> tuple[np.ndarray, PoseCrop] | None:
        """The person's own pixels (pose model probability >= 0.5) inside the box grown by ``box_grow``.

        Where the pose model found this track's person on the frame before (``refine_track``), it looks
        where those landmarks say the person is now, turned so that they stand upright in its crop (as
        mediapipe's pose tracker does, placed by the alignment points after that tracker's filter with
        ``refine_steady``): one pass, and steadier landmarks than a crop around the box (on
        DAVIS parkour at 432x240 the frame-to-frame jitter of 12 body landmarks fell from 0.109 to 0.074
        of the runner's height, a one-off script, 2026-12-06). It is kept when the model is sure a person
        is there (presence >= 0.5) and its mask's box matches the selfie instance's (``selfie_box``, IoU
        >= 0.5): the person may have moved off the region, or another one stepped into it. Otherwise (and on a
        track's first frame) the crop is the box's square; with ``turn``, a crop of ``small`` px or more
        whose box is ``turn_aspect`` as wide as it is tall is also shown turned (about 10 ms a pass), and
        the pass the model is surer of is kept. None where it finds too little of the person (under
        ``min_fill`` of the box, or nothing): the selfie instance stays. On the box's crop the model's presence
        score only picks the pass: the breakdancer's masks are good where it is low (gating on presence >= 0.5
        lowered breakdance's IoU from 0.58 to 0.54)."""
        assert self._pose is not None
        o = self.opts
        h, w = frame.shape[:2]
        area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1.0)

        def enough(m: np.ndarray) -> bool:   # at least min_fill of the box, and something
            return bool(m.any()) and float(m.sum()) >= o.min_fill * area

        own = None
        self.stats["refined"] += 1
        if o.refine_track and track.region is not None and track.region_at == self._frame - 1 \
                and track.region[2] >= 8:
            seen, region_crop = self._pose.rotated(frame, track.region)
            if seen.presence >= 0.5:
                own = self._instance(seen.prob, *region_crop, box, (h, w), threshold=0.5)
                if not enough(own) or box_iou(mask_box(own)[None], selfie_box[None])[0, 0] < 0.5:
                    own = None
                else:
                    self.stats["refine_tracked"] += 1
        if own is None:
            seen = self._pose(frame, crop)
            if o.turn and crop[2] >= o.small and box[2] - box[0] >= o.turn_aspect * (box[3] - box[1]):
                turned = self._pose(frame, crop, turned=True)
                if turned.presence > seen.presence:
                    seen = turned
            own = self._instance(seen.prob, *crop, box, (h, w), threshold=0.5)
        track.region, track.region_at = None, self._frame
        if seen.presence >= 0.5 and seen.aux is not None:
            aux = np.asarray(seen.aux, np.float64)
            if o.refine_track and o.refine_steady:
                # the speed in units of the mean side of the points' box, from their last raw place, as
                # mediapipe's filter counts it; the state carries on through a frame whose followed region
                # was not kept (the box's crop then gave the points): the person was seen on both frames
                last = track.aux if track.aux_at == self._frame - 1 else None
                scale = max(float(np.abs(aux[1] - aux[0]).mean()), 1.0)
                aux, track.aux = one_euro(aux, last, *STEADY, fps=STEADY_FPS, scale=scale, from_raw=True)
                track.aux_at = self._frame
            track.region = pose_region(aux)
        if not enough(own):
            return None
        self.stats["refine_kept"] += 1
        return own, seen

    def _instance(self, prob: np.ndarray, cx: int, cy: int, side: int, box: np.ndarray,
                  shape: tuple[int, int], threshold: float | None = None) -> np.ndarray:
        """Person pixels (probability >= ``threshold``, by default ``mask_threshold``) of the crop inside the
        grown box, as a full-frame bool mask."""
        h, w = shape
        out = np.zeros((h, w), bool)
        level = self.opts.mask_threshold if threshold is None else threshold
        found = crop_person_pixels(prob, (cx, cy, side), box, self.opts.box_grow, level, w, h)
        if found is not None:
            x0, y0, region = found
            out[y0:y0 + region.shape[0], x0:x0 + region.shape[1]] = region
        return out

    def info(self) -> dict[str, Any]:
        from privvid.runtime.models import POSE_LANDMARK, SELFIE, SSD_PERSON

        return {
            "name": self.name,
            "models": {"boxes": f"{SSD_PERSON.name} ({SSD_PERSON.package}, {SSD_PERSON.licence})",
                       "masks": f"{SELFIE.name} (mediapipe wheel, {SELFIE.licence})",
                       **({"instances": f"{POSE_LANDMARK.name} (mediapipe wheel, {POSE_LANDMARK.licence})"}
                          if self._pose is not None else {})},
            "options": asdict(self.opts),
            "stats": dict(self.stats, model_inputs=self._seg.inputs_run - self._inputs_at[0],
                          pose_inputs=(self._pose.inputs_run if self._pose is not None else 0) - self._inputs_at[1]),
        }


def _covered(box: np.ndarray, boxes: np.ndarray, contain: float) -> bool:
    """Is more than ``contain`` of ``box`` inside one of ``boxes`` (a person found this frame)?"""
    if not len(boxes):
        return False
    ix = (np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0])).clip(0)
    iy = (np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1])).clip(0)
    area = max(float((box[2] - box[0]) * (box[3] - box[1])), 1e-6)
    return bool((ix * iy > contain * area).any())


def cast_shadow(frame: np.ndarray, person: np.ndarray, reach: float, dark: float) -> np.ndarray:
    """The person's cast shadow on the ground: in a band from the lower quarter of the person down to
    ``reach`` x their height below the feet (and as wide either side), the pixels darker than ``dark`` x
    the band's median luminance that are connected to the person. A bool mask (the person not included)."""
    import cv2

    h, w = person.shape
    ys, xs = np.flatnonzero(person.any(axis=1)), np.flatnonzero(person.any(axis=0))
    if not len(ys):
        return np.zeros_like(person)
    top, bottom, left, right = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    ph = bottom - top
    y0, y1 = max(0, bottom - ph // 4), min(h, bottom + int(round(reach * ph)))
    x0, x1 = max(0, left - int(round(reach * ph))), min(w, right + int(round(reach * ph)))
    if y1 <= y0 or x1 <= x0:
        return np.zeros_like(person)
    grey = cv2.cvtColor(np.ascontiguousarray(frame[y0:y1, x0:x1]), cv2.COLOR_RGB2GRAY).astype(np.float32)
    band_person = person[y0:y1, x0:x1]
    ground = grey[~band_person]
    if ground.size < 16:
        return np.zeros_like(person)
    candidate = (grey < dark * float(np.median(ground))) | band_person
    _, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    touching = np.unique(labels[band_person & (labels > 0)])
    keep = np.isin(labels, touching[touching > 0]) & ~band_person
    out = np.zeros_like(person)
    out[y0:y1, x0:x1] = keep
    return out
