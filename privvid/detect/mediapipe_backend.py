"""Embedded default detector: the person models that ship inside mediapipe 0.10.21 (offline).

Two models are combined (see docs/mask_quality.md for the measurements behind this):

* Selfie segmentation (landscape model by default, ~5 ms/frame) gives a semantic
  mask of *everyone*; it is generous around people and misses little.
* BlazePose Full (legacy ``mp.solutions.pose`` in video mode, ~15-19 ms/frame at
  432x240) tracks ONE person and gives a tight segmentation mask plus 33 2D
  landmarks. Its mask is far more precise (IoU ~0.9 on DAVIS parkour) but it
  follows a single person and can lock onto a bystander.

Its settings are :class:`MediapipeOptions` (``DetectConfig.options``, ``--detect-opt name=value``).

Crops (``crops``, on by default): at 432x240 the full-frame selfie model
sees a person ~150 px tall at 0.6x scale and often finds only part of a second person
(a head, a shoulder). The connected blobs of selfie + pose are therefore grown into
enlarged crops (at least ``crop_min_height`` of the frame tall, blob near the top when
it is small: a head found means a body below), overlapping crops are merged, and the
square selfie model runs again on up to ``crops`` of them; its probabilities are
max-combined with the full-frame ones. ``crop_passes`` > 1 repeats this around what the
previous pass found (slower, for people found only in pieces).

Tiles (``tiles``, e.g. ``"3x2"``, off by default): for small people (crowds,
surveillance views) that the full-frame model never finds, so the crop pass has nothing to
grow, the square selfie model also runs on COLS x ROWS overlapping tiles of the whole frame
(:func:`tile_boxes`) and its probabilities are max-combined with the full-frame ones before
the pose and crop steps (what the tiles find seeds the crops too). About twice the cost.

People close together (``pose_people``, 3 by default): BlazePose follows one
person, and people standing close merge into one selfie blob. So BlazePose runs as a cascade
of video-mode trackers: tracker k sees the frame with the people found by trackers 0..k-1
greyed out, and runs only while a sizeable blob of person pixels stays unexplained
(``split_min``). Each tracker keeps following its own person from frame to frame. On frames
where the pose models do not run (``pose_every``), a selfie blob that holds two or more of the
last pose people is cut between them, each pixel going to the nearest (:func:`split_by_seeds`),
and each person's instance is the part of the blob near their last pose mask (grown by
``carry_grow`` of its height): the tight pose shape carried over one frame rather than the
generous selfie blob; what is left of the blob goes to ``extra`` (removed, no instance), as it
does on pose frames.

Instances: each pose person is one instance (its pose mask, with keypoints); the
selfie-mask pixels of the same blob that no pose mask covers go to ``extra``
(removed, no instance); every other connected blob of the selfie mask is one more
instance (no keypoints: confidence 0). Blobs smaller than ``min_area`` of the frame
and instances scoring below ``min_score`` also go to ``extra`` so nothing detected is
ever dropped from the removal mask.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

from privvid.config import DetectConfig, parse_tiles
from privvid.detect.base import Detections
from privvid.detect.common import TILE_OVERLAP, assemble, box_iou, check_frame, components_to_instances, dilate, tile_boxes  # noqa: F401
from privvid.detect.common import options_from
from privvid.errors import ConfigError
from privvid.runtime.native_log import quiet_graph

NUM_KEYPOINTS = 33  # BlazePose topology
CROP_ASPECT = 0.75  # a crop is at least this wide per unit of height (people are taller than wide)
TOP_FRACTION = 0.35  # a small blob is placed this far down its crop
GREY = 128           # value painted over the people already found before the next pose tracker runs
GREY_GROW = 0.06     # ... after growing their masks by this share of the smallest one's height
RETRY_AFTER = 4      # a cascade tracker that found no one in a blob skips that blob for this many pose frames


@dataclass(frozen=True)
class MediapipeOptions:
    """Options of the ``mediapipe`` detector (``DetectConfig.options``, ``--detect-opt name=value``)."""

    selfie_model: int = 1         # 0 = square 256x256 model, 1 = landscape 256x144 model
    pose_every: int = 2           # run the BlazePose model every k-th frame (1 = every frame, 0 = off)
    pose_threshold: float = 0.5   # threshold on the pose segmentation mask
    pose_people: int = 3          # BlazePose trackers in a cascade: tracker k sees the frame with the people of
                                  # trackers 0..k-1 greyed out and runs only while person pixels stay
                                  # unexplained (people close together merge into one selfie blob); 1 = one
                                  # pose person per frame
    split_min: float = 0.2        # unexplained person pixels start the next tracker when one blob of them is
                                  # this share of the smallest pose person found
    carry_grow: float = 0.1       # frames without a pose run: a person's instance is their blob within their
                                  # last pose mask grown by this share of its height (0 = the whole selfie blob)
    min_area: float = 2e-4        # smallest instance, as a share of the frame (smaller -> extra)
    crops: int = 3                # selfie segmentation again on up to N enlarged crops around the people
                                  # found (0 = off); see docs/mask_quality.md
    crop_model: int = 0           # selfie model used on the crops (0 = square, 1 = landscape)
    crop_min_height: float = 0.5  # a crop is at least this share of the frame height tall
    crop_margin: float = 0.8      # a crop grows the person's box by this share on each axis
    crop_passes: int = 2          # repeat the crop pass around what the previous pass found
    crop_max_aspect: float = 1.3  # wider crops are cut into tiles this wide per unit height (0 = never)
    tiles: str | None = None      # opt-in: "CxR" overlapping tiles over the whole frame for the square selfie
                                  # model (small people: crowds, surveillance); None / "none" = off
    tile_every: int = 4           # tiles run on every k-th frame (the +-temporal union of the removal mask
                                  # covers the frames between; see docs/mask_quality.md)

    def __post_init__(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(f"mediapipe detector option {what}")

        need(self.selfie_model in (0, 1), f"selfie_model must be 0 or 1, got {self.selfie_model}")
        need(self.pose_every >= 0, f"pose_every must be >= 0 (0 = pose model off), got {self.pose_every}")
        need(0.0 < self.pose_threshold < 1.0, f"pose_threshold must be in (0, 1), got {self.pose_threshold}")
        need(self.pose_people >= 1, f"pose_people must be >= 1, got {self.pose_people}")
        need(self.split_min > 0, f"split_min must be > 0, got {self.split_min}")
        need(self.carry_grow >= 0, f"carry_grow must be >= 0, got {self.carry_grow}")
        need(0.0 <= self.min_area < 1.0, f"min_area must be in [0, 1), got {self.min_area}")
        need(self.crops >= 0, f"crops must be >= 0 (0 = off), got {self.crops}")
        need(self.crop_model in (0, 1), f"crop_model must be 0 or 1, got {self.crop_model}")
        need(0.0 <= self.crop_min_height <= 1.0, f"crop_min_height must be in [0, 1], got {self.crop_min_height}")
        need(self.crop_margin >= 0, f"crop_margin must be >= 0, got {self.crop_margin}")
        need(self.crop_passes >= 1, f"crop_passes must be >= 1, got {self.crop_passes}")
        need(self.crop_max_aspect >= 0, f"crop_max_aspect must be >= 0 (0 = never cut), got {self.crop_max_aspect}")
        try:
            parse_tiles(self.tiles)
        except ValueError as exc:
            raise ConfigError(f"mediapipe detector option {exc}") from None
        need(self.tile_every >= 1, f"tile_every must be >= 1, got {self.tile_every}")


def _fit(lo: float, size: float, limit: int) -> tuple[int, int]:
    """Place an interval of ``size`` starting at ``lo`` inside [0, limit): shift first, then clip."""
    size = min(size, limit)
    lo = min(max(lo, 0.0), limit - size)
    return int(np.floor(lo)), int(np.ceil(min(lo + size, limit)))


def crop_boxes(
    person: np.ndarray,
    min_pixels: int,
    max_crops: int,
    min_height: float = 0.5,
    margin: float = 0.8,
    max_aspect: float = 1.3,
) -> list[tuple[int, int, int, int]]:
    """Enlarged crops (x0, y0, x1, y1) around the connected blobs of ``person``.

    Each blob of at least ``min_pixels`` gets a crop grown by ``margin`` on each axis, at
    least ``min_height`` of the frame tall and ``CROP_ASPECT`` times as wide as tall; a blob
    much smaller than its crop sits in its upper part (a head or shoulders were found, the
    body is below). Crops overlapping by more than half of the smaller one are merged into
    their bounding box; a merged crop more than ``max_aspect`` times as wide as tall (> 0) is
    cut into overlapping tiles. The ``max_crops`` holding the most blob pixels are returned.
    """
    h, w = person.shape
    if max_crops <= 0 or not person.any():
        return []
    n, _, stats, _ = cv2.connectedComponentsWithStats(person.view(np.uint8), connectivity=8)
    crops: list[list[float]] = []  # x0, y0, x1, y1, blob pixels
    for lab in range(1, n):
        bx, by, bw, bh, area = (int(v) for v in stats[lab])
        if area < min_pixels:
            continue
        ch = max((1.0 + margin) * bh, min_height * h)
        cw = max((1.0 + margin) * bw, CROP_ASPECT * ch)
        cy0 = by + bh / 2 - ch / 2 if bh > 0.5 * ch else by - TOP_FRACTION * ch + bh / 2
        x0, x1 = _fit(bx + bw / 2 - cw / 2, cw, w)
        y0, y1 = _fit(cy0, ch, h)
        crops.append([x0, y0, x1, y1, area])
    merged = True
    while merged and len(crops) > 1:
        merged = False
        for i in range(len(crops)):
            for j in range(i + 1, len(crops)):
                a, b = crops[i], crops[j]
                iw = min(a[2], b[2]) - max(a[0], b[0])
                ih = min(a[3], b[3]) - max(a[1], b[1])
                smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
                if iw > 0 and ih > 0 and iw * ih > 0.5 * smaller:
                    crops[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]), a[4] + b[4]]
                    del crops[j]
                    merged = True
                    break
            if merged:
                break
    crops.sort(key=lambda c: -c[4])
    out: list[tuple[int, int, int, int]] = []
    for x0, y0, x1, y1, _ in crops:
        # a crop much wider than tall (a crowd, people side by side) is cut into overlapping tiles
        # no wider than max_aspect x its height, so the square model sees it at a useful scale
        n_tiles = max(1, int(np.ceil((x1 - x0) / (max_aspect * (y1 - y0))))) if max_aspect > 0 else 1
        if n_tiles == 1:
            out.append((int(x0), int(y0), int(x1), int(y1)))
            continue
        step = (x1 - x0) / n_tiles
        pad = 0.1 * step
        for k in range(n_tiles):
            out.append((int(max(x0, x0 + k * step - pad)), int(y0), int(min(x1, x0 + (k + 1) * step + pad)), int(y1)))
    return out[:max_crops]


def split_by_seeds(region: np.ndarray, seeds: list[np.ndarray]) -> list[np.ndarray]:
    """Cut ``region`` (bool H x W) into one part per seed mask: each pixel goes to the nearest seed.

    The parts are disjoint and cover ``region``; distances are Euclidean, computed only over the
    bounding box of the region and the seeds (so the cost follows the people, not the frame).
    """
    if len(seeds) < 2:
        return [region.copy() for _ in seeds]
    both = region | np.logical_or.reduce(seeds)
    ys = np.flatnonzero(both.any(axis=1))
    xs = np.flatnonzero(both.any(axis=0))
    if len(xs) == 0:
        return [np.zeros_like(region) for _ in seeds]
    win = np.s_[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1]
    dist = np.stack([cv2.distanceTransform(np.ascontiguousarray(~s[win]).view(np.uint8), cv2.DIST_L2, 3)
                     for s in seeds])
    owner = dist.argmin(axis=0)
    parts = []
    for k in range(len(seeds)):
        part = np.zeros_like(region)
        part[win] = region[win] & (owner == k)
        parts.append(part)
    return parts


class MediapipeDetector:
    name = "mediapipe"
    Options = MediapipeOptions

    def __init__(self, cfg: DetectConfig | None = None) -> None:
        self.cfg = cfg or DetectConfig(backend="mediapipe")
        self.opts: MediapipeOptions = options_from(MediapipeOptions, self.cfg.options)
        self._tiles = parse_tiles(self.opts.tiles)
        import mediapipe as mp  # heavy import, only when this backend is used (and its options are valid)

        self._mp = mp
        self._selfie: Any = None
        self._poses: list[Any] = []   # the pose cascade, one video-mode tracker per person
        self._crop_seg: Any = None
        self._tile_seg: Any = None
        self._index = 0
        self._seeds: list[np.ndarray] = []  # the pose people of the last pose frame
        self._misses: dict[int, tuple[np.ndarray, int]] = {}  # tracker -> (blob box, frame) it found no one in

    # -- lifecycle -----------------------------------------------------------------
    def _open(self) -> None:
        selfie = self._mp.solutions.selfie_segmentation.SelfieSegmentation
        self._selfie = quiet_graph(selfie, model_selection=self.opts.selfie_model)
        if self.opts.crops:
            self._crop_seg = quiet_graph(selfie, model_selection=self.opts.crop_model)
        if self._tiles is not None:
            self._tile_seg = quiet_graph(selfie, model_selection=0)

    def _pose_model(self, k: int) -> Any:
        """Tracker k of the pose cascade, built the first time a clip needs it."""
        while len(self._poses) <= k:
            self._poses.append(quiet_graph(
                self._mp.solutions.pose.Pose,
                static_image_mode=False,
                model_complexity=1,  # "full": the only pose landmark model bundled in the wheel
                enable_segmentation=True,
                smooth_segmentation=True,
                min_detection_confidence=0.5,
                min_tracking_confidence=0.5,
            ))
        return self._poses[k]

    def close(self) -> None:
        for graph in (self._selfie, *self._poses, self._crop_seg, self._tile_seg):
            if graph is not None:
                graph.close()
        self._selfie = self._crop_seg = self._tile_seg = None
        self._poses = []

    def reset(self) -> None:
        """Start a new clip: drop the pose trackers' state."""
        self.close()
        self._index = 0
        self._seeds = []
        self._misses = {}

    # -- inference -----------------------------------------------------------------
    def _run_pose(self, model: Any, frame: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None, float]:
        h, w = frame.shape[:2]
        res = model.process(frame)
        if res.pose_landmarks is None:
            return None, None, 0.0
        kp = np.array(
            [(lm.x * w, lm.y * h, lm.visibility) for lm in res.pose_landmarks.landmark], dtype=np.float32
        )
        seg = res.segmentation_mask
        pmask = seg > self.opts.pose_threshold if seg is not None else np.zeros((h, w), dtype=bool)
        score = float(np.clip(kp[:, 2], 0, 1).mean())
        return pmask, kp, score

    def _run_poses(self, frame: np.ndarray, person: np.ndarray, min_pixels: int
                   ) -> list[tuple[np.ndarray | None, np.ndarray | None, float]]:
        """The pose cascade: (mask, keypoints, score) of each person found, the first tracker's first.

        Tracker k > 0 runs only while a blob of person pixels of at least ``split_min`` x the smallest
        person found stays outside the (grown) masks found so far; it sees those masks greyed out.
        A blob in which tracker k found no one (a coat on a chair that the selfie model takes for a
        person) is not tried again by k for ``RETRY_AFTER`` pose frames while it stays in place.
        """
        since = RETRY_AFTER * self.opts.pose_every  # frames
        found: list[tuple[np.ndarray | None, np.ndarray | None, float]] = []
        covered = np.zeros(person.shape, dtype=bool)
        image = frame
        for k in range(self.opts.pose_people):
            if k:
                heights = [int(np.ptp(np.flatnonzero(m.any(axis=1)))) + 1 for m, _, _ in found]
                grey = dilate(covered, max(3, int(GREY_GROW * min(heights))))
                need = max(min_pixels, self.opts.split_min * min(int(m.sum()) for m, _, _ in found))
                area, blob = _largest_blob(person & ~grey)
                if area < need:
                    break
                miss = self._misses.get(k)
                if (miss is not None and self._index - miss[1] <= since
                        and box_iou(blob, miss[0])[0, 0] >= 0.5):
                    break
                image = frame.copy()
                image[grey] = GREY
            pmask, kp, score = self._run_pose(self._pose_model(k), image)
            if pmask is None or not pmask.any():
                if k == 0 and kp is not None:
                    found.append((None, kp, score))  # landmarks without a mask: matched to a blob below
                if k:
                    self._misses[k] = (blob, self._index)
                break
            new = pmask & ~covered
            if new.sum() < 0.5 * pmask.sum():
                if k:
                    self._misses[k] = (blob, self._index)
                break  # the same person again
            self._misses.pop(k, None)
            found.append((new, kp, score))
            covered |= new
        return found

    def _refine_crops(self, frame: np.ndarray, prob: np.ndarray, seed: np.ndarray, min_pixels: int) -> np.ndarray:
        """Max-combine ``prob`` with the selfie model run on enlarged crops around the blobs of ``seed``."""
        prob = prob.copy()
        done: list[tuple[int, int, int, int]] = []
        for _ in range(self.opts.crop_passes):
            boxes = [b for b in crop_boxes(seed, min_pixels, self.opts.crops, self.opts.crop_min_height,
                                           self.opts.crop_margin, self.opts.crop_max_aspect) if b not in done]
            if not boxes:
                break
            for x0, y0, x1, y1 in boxes:
                if x1 - x0 < 8 or y1 - y0 < 8:
                    continue
                crop = np.ascontiguousarray(frame[y0:y1, x0:x1])
                p = self._crop_seg.process(crop).segmentation_mask
                if p is not None:
                    np.maximum(prob[y0:y1, x0:x1], p, out=prob[y0:y1, x0:x1])
            done += boxes
            seed = seed | (prob > self.cfg.threshold)
        return prob

    def __call__(self, frame: np.ndarray) -> Detections:
        frame = check_frame(frame)
        if self._selfie is None:
            self._open()
        h, w = frame.shape[:2]
        frame = np.ascontiguousarray(frame)
        prob = self._selfie.process(frame).segmentation_mask
        if prob is None:
            prob = np.zeros((h, w), dtype=np.float32)
        if self._tile_seg is not None and self._index % self.opts.tile_every == 0:
            # small people: the square model on overlapping tiles sees them several times larger
            prob = prob.copy()
            for x0, y0, x1, y1 in tile_boxes(w, h, *self._tiles):
                p = self._tile_seg.process(np.ascontiguousarray(frame[y0:y1, x0:x1])).segmentation_mask
                if p is not None:
                    np.maximum(prob[y0:y1, x0:x1], p, out=prob[y0:y1, x0:x1])
        person = prob > self.cfg.threshold

        min_pixels = max(1, int(round(self.opts.min_area * h * w)))
        pose_frame = self.opts.pose_every > 0 and self._index % self.opts.pose_every == 0
        self._index += 1
        poses = self._run_poses(frame, person, min_pixels) if pose_frame else []
        people = [(m, k, s) for m, k, s in poses if m is not None]
        pose_union = np.logical_or.reduce([m for m, _, _ in people]) if people else None
        if self._crop_seg is not None:
            seed = person if pose_union is None else (person | pose_union)
            prob = self._refine_crops(frame, prob, seed, min_pixels)
            person = prob > self.cfg.threshold

        masks: list[np.ndarray] = [m for m, _, _ in people]
        scores: list[float] = [s for _, _, s in people]
        keypoints: list[np.ndarray | None] = [k for _, k, _ in people]
        extra = np.zeros((h, w), dtype=bool)
        rest = person
        if pose_union is not None:
            # selfie blobs touching a pose person belong to it: their extra pixels are removed, no instance
            n, labels = cv2.connectedComponents((person | pose_union).view(np.uint8), connectivity=8)
            touching = np.unique(labels[pose_union])
            same = np.isin(labels, touching[touching > 0])
            extra |= same & ~pose_union
            rest = person & ~same
        elif self._seeds:
            # no pose this frame: a blob holding several of the last pose people is cut between them,
            # and each person's instance is the part of the blob near their last pose mask (grown by
            # carry_grow of its height for the motion since); the rest of the blob goes to extra
            rest = person.copy()
            _, labels = cv2.connectedComponents(person.view(np.uint8), connectivity=8)
            holders: dict[int, list[np.ndarray]] = {}   # blob label -> the last pose people in it
            for seed in self._seeds:
                for lab in np.unique(labels[seed]):
                    if lab:
                        holders.setdefault(int(lab), []).append(seed)
            for lab, inside in holders.items():
                blob = labels == lab
                rest &= ~blob
                for seed, part in zip(inside, split_by_seeds(blob, inside)):
                    near = part
                    if self.opts.carry_grow > 0:
                        height = int(np.ptp(np.flatnonzero(seed.any(axis=1)))) + 1
                        near = part & dilate(seed, max(3, int(self.opts.carry_grow * height)))
                    if near.sum() < min_pixels:
                        extra |= part
                        continue
                    # the rest of the blob is removed without an instance, as on pose frames
                    extra |= part & ~near
                    masks.append(near)
                    scores.append(float(prob[near].mean()))
                    keypoints.append(None)
        if pose_frame:
            self._seeds = [m for m, _, _ in people]
        comp_masks, comp_scores, leftover = components_to_instances(rest, prob, min_pixels)
        extra |= leftover
        masks += comp_masks
        scores += comp_scores
        keypoints += [None] * len(comp_masks)
        kp = poses[0][1] if poses and poses[0][0] is None else None
        if kp is not None and comp_masks:
            # pose found a person but no mask: attach keypoints to the blob holding most of them
            xs = np.clip(kp[:, 0].astype(int), 0, w - 1)
            ys = np.clip(kp[:, 1].astype(int), 0, h - 1)
            hits = [int(m[ys, xs].sum()) for m in comp_masks]
            best = int(np.argmax(hits))
            if hits[best] > 0:
                keypoints[len(masks) - len(comp_masks) + best] = kp
        return assemble(h, w, masks, scores, keypoints, extra, self.cfg.min_score, NUM_KEYPOINTS)

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "mediapipe": getattr(self._mp, "__version__", "unknown"),
            "models": [
                "selfie_segmentation_landscape" if self.opts.selfie_model == 1 else "selfie_segmentation",
            ]
            + ([f"pose_detection + pose_landmark_full (x{self.opts.pose_people} cascade)"]
               if self.opts.pose_every else [])
            + ([("selfie_segmentation" if self.opts.crop_model == 0 else "selfie_segmentation_landscape")
                + " (crops)"] if self.opts.crops else [])
            + (["selfie_segmentation (tiles)"] if self._tiles else []),
            **asdict(self.opts),   # its options, each under its own name
            "threshold": self.cfg.threshold,
            "min_score": self.cfg.min_score,
            "keypoints": "blazepose-33 (x, y, visibility) in pixels",
        }


def _largest_blob(mask: np.ndarray) -> tuple[int, np.ndarray]:
    """Pixels and x0, y0, x1, y1 box of the largest blob of ``mask`` after a 5 px opening (thin
    fringes do not count); (0, zero box) when there is none."""
    if mask.any():
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
        opened = cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, kernel)
        n, _, stats, _ = cv2.connectedComponentsWithStats(opened, connectivity=8)
        if n > 1:
            x, y, bw, bh, area = (int(v) for v in stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))])
            return area, np.array([x, y, x + bw, y + bh], dtype=np.float32)
    return 0, np.zeros(4, dtype=np.float32)
