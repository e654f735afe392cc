"""``privvid qa audit``: re-detect people and faces on the anonymised outputs and rank clips.

Each clip is checked on ``frames`` frames spread over its length. Default checkers:

- ``face``: MediaPipe face detection (full-range model) - a different model from any person
  segmenter privvid removes people with;
- ``pose``: MediaPipe BlazePose run per frame (static image mode); a person counts when the
  mean landmark visibility reaches the threshold.

Any detector registered in :data:`privvid.detect.DETECTORS` (e.g. ``yolo`` with user weights)
can replace ``pose`` as the person checker; the audit notes when the person checker is the same
backend the clip was anonymised with, because it then shares that backend's blind spots.

Small people are missed by both MediaPipe models on the whole frame, so by default each frame is
also checked as a 2 x 2 grid of overlapping crops (``tiles``).

A clip is flagged when a checker fires on at least ``min_hits`` of the checked frames; clips are
ranked by the larger hit share of the two checkers, then by the highest score.

The audit also reads what the written-frame check (:mod:`privvid.anonymize.check`) recorded in
each sidecar while the clip was made: the frames it flagged and mended, and those where it had to
paint a box solid because a person was still found after the refill. A clip with ``min_hits`` or
more solid fallbacks is flagged too (something person-like kept coming back there), and a
remove / mesh clip made with the check off is noted.

A mesh clip shows a plain body where each person was, and the checkers see it: BlazePose found
the mannequin on 16 and 14 of 16 frames and BlazeFace its head on 3 of 16 (0.60-0.71) on the tai chi
and two-people clips. Its sidecar records where bodies were drawn on each frame (``mesh.
per_frame[].drawn``); a person hit whose box lies on a drawn body (``ON_BODY``) and is a quarter neutral
grey (``NEUTRAL_BODY``; a real person standing where a body was drawn is not) is the mannequin, and so is
a face hit there whose box is mostly grey (``GREY_FACE``; not in a black-and-white frame).
Such frames are counted (``person_on_body``, ``face_on_body``), not flagged. A hit beside
the bodies still counts, but BlazePose follows one person per crop, so it can stay on the mannequin
next to someone left in the frame: audit mesh datasets with a multi-person checker too
(``--person yolo --person-weights ...``).

Blur, pixelate and solid keep each person's place and shape (a grey silhouette under solid): the
sidecar's coarse grid of where each frame was anonymised (``coverage.grid``) tells those people from
one left in the frame. A person hit lying on it (``ON_COVER``) does not count, nor a face hit under a
solid fill; a face found through a blur or pixelation does (``person_on_cover``, ``face_on_cover``).
BlazePose follows one person per crop: when it stays on the kept person, someone left beside them goes
unseen, so audit such datasets with a multi-person checker too, as mesh ones.

Every video file under the dataset is audited, not only privvid's outputs: a video without a
``<rel>.json`` sidecar (a raw clip copied into the output folder, say) is checked like the others
and always flagged, with the reason. Flagged clips rank before unflagged ones.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from privvid.config import SHAPE_MODES
from privvid.errors import BadInput, ConfigError, PrivvidError
from privvid.io import layout
from privvid.qa.dataset import AnonClip, QAError, scan
from privvid.qa.sample import grab_indexed_frames
from privvid.runtime.native_log import quiet_graph


class Checker(Protocol):
    name: str

    # (score, area share) or (score, area share, box): box = (x0, y0, x1, y1) as shares of the frame's
    # width and height, which lets a mesh clip's drawn bodies be told from people
    def __call__(self, frame: np.ndarray) -> list[tuple]: ...

    def close(self) -> None: ...


class FaceChecker:
    """MediaPipe face detection; score = detection confidence, area = box share of the frame."""

    name = "mediapipe-face"

    def __init__(self, min_confidence: float = 0.5, model_selection: int = 1) -> None:
        import mediapipe as mp

        self._det = quiet_graph(mp.solutions.face_detection.FaceDetection,
                                model_selection=model_selection, min_detection_confidence=min_confidence)

    def __call__(self, frame: np.ndarray) -> list[tuple]:
        result = self._det.process(np.ascontiguousarray(frame))
        out = []
        for det in result.detections or []:
            box = det.location_data.relative_bounding_box
            area = max(0.0, min(1.0, box.width)) * max(0.0, min(1.0, box.height))
            out.append((float(det.score[0]), float(area),
                        (box.xmin, box.ymin, box.xmin + box.width, box.ymin + box.height)))
        return out

    def close(self) -> None:
        self._det.close()


class PoseChecker:
    """MediaPipe BlazePose per frame; score = mean visibility of the 33 landmarks,
    area = share of the frame covered by the box of landmarks visible above 0.5."""

    name = "mediapipe-pose"
    # privvid's default "mediapipe" removal backend runs this same BlazePose model (plus selfie
    # segmentation), so on its outputs this checker is not independent
    shares_model_with = ("mediapipe",)

    def __init__(self, min_confidence: float = 0.5) -> None:
        import mediapipe as mp

        self._pose = quiet_graph(mp.solutions.pose.Pose, static_image_mode=True, model_complexity=1,
                                 min_detection_confidence=min_confidence)

    def __call__(self, frame: np.ndarray) -> list[tuple]:
        result = self._pose.process(np.ascontiguousarray(frame))
        if result.pose_landmarks is None:
            return []
        marks = result.pose_landmarks.landmark
        vis = np.array([m.visibility for m in marks])
        xy = np.array([(m.x, m.y) for m in marks])[vis > 0.5]
        if not len(xy):
            return [(float(vis.mean()), 0.0)]
        lo, hi = np.clip(xy.min(0), 0, 1), np.clip(xy.max(0), 0, 1)
        return [(float(vis.mean()), float(np.prod(hi - lo)), (lo[0], lo[1], hi[0], hi[1]))]

    def close(self) -> None:
        self._pose.close()


class RegistryChecker:
    """A privvid person detector backend (privvid.detect.DETECTORS) as a checker."""

    def __init__(self, backend: str, weights: Path | None = None, min_score: float = 0.3, trust: bool = False) -> None:
        from privvid.config import DetectConfig
        from privvid.detect import DETECTORS

        self.name = backend
        # the yolo backend as the plain model: its crop refinement adds pixels, not people
        options = {"refine": False} if backend == "yolo" else {}
        try:
            self._det = DETECTORS.create(backend, DetectConfig(backend=backend, weights=weights, min_score=min_score,
                                                               trust_model_files=trust, options=options))
        except PrivvidError as exc:
            # the detector speaks of anonymize's flag; the audit's model file is --person-weights
            raise ConfigError(re.sub(r"(?<![\w-])--weights\b", "--person-weights", str(exc))) from exc

    def __call__(self, frame: np.ndarray) -> list[tuple]:
        dets = self._det(frame)
        h, w = frame.shape[:2]
        out = []
        for i in range(len(dets)):
            area = float(dets.masks[i].mean()) if dets.masks.size else 0.0
            x0, y0, x1, y1 = (float(v) for v in dets.boxes[i])
            out.append((float(dets.scores[i]), area, (x0 / w, y0 / h, x1 / w, y1 / h)))
        return out

    def close(self) -> None:
        pass

    def reset(self) -> None:
        if hasattr(self._det, "reset"):
            self._det.reset()


@dataclass
class ClipAudit:
    rank: int
    rel: str
    label: str
    mode: str
    flagged: bool
    suspicion: float          # max over checkers of the share of checked frames with a hit
    frames_checked: int
    person_hits: int
    person_max_score: float
    person_max_area: float
    face_hits: int
    face_max_score: float
    face_max_area: float
    removal_detector: str
    same_detector: bool       # person checker == the backend that did the removal
    check: str = "absent"     # the written-frame check while the clip was made: on | off | n/a (blur, pixelate,
                              # solid) | absent (no record)
    check_flagged: int = 0    # frames it found a person or face in and mended
    check_solid: int = 0      # ... of which it had to paint a box solid
    person_on_body: int = 0   # mesh: frames whose person hits all lay on a drawn body (not counted as hits)
    face_on_body: int = 0     # ... face hits (grey ones, in a colour scene)
    person_on_cover: int = 0  # blur / pixelate / solid: frames whose person hits all lay on the anonymised region
    face_on_cover: int = 0    # ... face hits (solid only: through a blur or pixelation a face found counts)
    person_frames: str = ""   # the frames (0-based, in the written clip) with a person hit, space-separated
    face_frames: str = ""     # ... with a face hit
    error: str = ""
    sidecar: bool = True      # False: no <rel>.json beside it; privvid anonymize did not write it
    reason: str = ""          # why the clip is flagged ("; "-separated), empty when it is not
    in_part: bool = False     # written in part: its sidecar cannot be read, or its video is gone (``error`` says)


@dataclass(frozen=True)
class AuditConfig:
    frames: int = 16
    person: str = "pose"             # pose | <DETECTORS name> | none
    person_weights: Path | None = None
    face: bool = True
    threshold: float = 0.5           # score at which a detection counts as a hit
    min_hits: int = 2                # hits needed to flag a clip
    max_side: int = 640              # frames larger than this are scaled down before checking
    tiles: int = 2                   # also check an n x n grid of overlapping crops (small people); 1 = off
    trust_model_files: bool = False  # load a pickle-based person_weights file (it can run code)


NO_SIDECAR = "no sidecar: not written by privvid anonymize (raw file?)"


def make_checkers(cfg: AuditConfig) -> tuple[Any | None, Any | None]:
    person = None
    if cfg.person == "pose":
        person = PoseChecker(min_confidence=cfg.threshold)
    elif cfg.person != "none":
        from privvid.registry import UnknownBackend

        try:
            person = RegistryChecker(cfg.person, cfg.person_weights, min_score=cfg.threshold,
                                     trust=cfg.trust_model_files)
        except ConfigError as exc:   # the registry's message lists its backends: the audit has two more
            if not isinstance(exc.__cause__, UnknownBackend):
                raise
            raise ConfigError(f"--person must be pose, none or a detector backend: {exc}") from None
    face = FaceChecker(min_confidence=cfg.threshold) if cfg.face else None
    if person is None and face is None:
        raise QAError("the audit needs at least one checker (person or face)")
    return person, face


def audit_clip(clip: AnonClip, person: Any | None, face: Any | None, cfg: AuditConfig) -> ClipAudit:
    removal = clip.removal_detector or ""
    person_name = getattr(person, "name", "") if person is not None else ""
    same = bool(person_name) and (person_name == removal or removal in getattr(person, "shares_model_with", ()))
    row = ClipAudit(0, clip.rel, clip.label, clip.mode, False, 0.0, 0, 0, 0.0, 0.0, 0, 0.0, 0.0, removal, same,
                    sidecar=clip.has_sidecar)
    recorded = clip.sidecar.get("check")
    if isinstance(recorded, dict):
        row.check = "off" if recorded.get("name") == "off" else "on"
        per_frame = recorded.get("per_frame") or []
        row.check_flagged = int(recorded.get("frames_flagged", len(per_frame)))
        row.check_solid = sum(1 for r in per_frame if isinstance(r, dict) and r.get("action") == "solid")
    elif clip.mode in SHAPE_MODES and isinstance(_get(clip.sidecar, "config", "check"), dict):
        row.check = "n/a"   # the written-frame check is for remove and mesh; these modes keep no record of it
    bodies = drawn_bodies(clip.sidecar) if clip.mode == "mesh" else None
    if clip.problem:   # written in part: flagged; its video, where there is one, is still looked at
        row.error, row.in_part = clip.problem, True
        row.suspicion = 1.0
        if not clip.video.is_file():
            return _flag(row, cfg)
    try:
        indexed = grab_indexed_frames(clip.video, cfg.frames, strict=True)
    except BadInput as exc:
        row.error = "; ".join(x for x in (row.error, f"unreadable: {exc}") if x)
        row.suspicion = 1.0
        return _flag(row, cfg)
    cover = covered_cells(clip.sidecar, [i for i, _ in indexed]) if clip.mode in SHAPE_MODES else None
    if person is not None and hasattr(person, "reset"):
        person.reset()
    for index, frame in indexed:
        frame = _fit(frame, cfg.max_side)
        row.frames_checked += 1
        for checker, prefix in ((person, "person"), (face, "face")):
            if checker is None:
                continue
            strong = [h for h in _check(checker, frame, cfg.tiles) if h[0] >= cfg.threshold]
            hits = strong
            # a mesh clip shows a body where each person was: the person checker sees it too, and the face
            # checker takes its plain grey head for a face. Either must be grey as well (skin and clothes are
            # not): a face mostly grey, a person's box a quarter neutral grey. In a black-and-white clip, where
            # everything is grey, a face on a body counts and a person on a body does not (nothing tells them
            # apart there)
            if bodies is not None and strong:
                drawn = bodies.get(index, ())
                grey = low_saturation(frame) if prefix == "face" else neutral_grey(frame)
                colour = scene_grey_share(grey, drawn) < GREY_FRAME
                need = GREY_FACE if prefix == "face" else NEUTRAL_BODY
                if prefix == "face":
                    hits = [h for h in strong if not (colour and on_body(h, drawn) and grey_share(grey, h) >= need)]
                else:
                    hits = [h for h in strong if not (on_body(h, drawn) and (not colour or grey_share(grey, h) >= need))]
                attr = f"{prefix}_on_body"
                setattr(row, attr, getattr(row, attr) + int(not hits))
            # blur and pixelate keep each person's shape where they were, solid a grey silhouette: a person
            # found there is one the mode kept by design (a face still counts, unless under a solid fill)
            if cover is not None and hits and (prefix == "person" or clip.mode == "solid"):
                left = [h for h in hits if not on_cover(h, cover.get(index))]
                attr = f"{prefix}_on_cover"
                setattr(row, attr, getattr(row, attr) + int(not left))
                hits = left
            if hits:
                setattr(row, f"{prefix}_hits", getattr(row, f"{prefix}_hits") + 1)
                setattr(row, f"{prefix}_frames", f"{getattr(row, f'{prefix}_frames')} {index}".strip())
                setattr(row, f"{prefix}_max_score", max(getattr(row, f"{prefix}_max_score"), max(h[0] for h in hits)))
                setattr(row, f"{prefix}_max_area", max(getattr(row, f"{prefix}_max_area"), max(h[1] for h in hits)))
    n = max(1, row.frames_checked)
    row.suspicion = 1.0 if clip.problem else max(row.person_hits, row.face_hits) / n
    return _flag(row, cfg)


def _get(tree: Any, *keys: str) -> Any:
    for key in keys:
        tree = tree.get(key) if isinstance(tree, dict) else None
    return tree


def _flag(row: ClipAudit, cfg: AuditConfig) -> ClipAudit:
    """Set ``flagged`` and ``reason`` from what the row holds."""
    reasons = [NO_SIDECAR] if not row.sidecar else []
    if row.error:
        reasons.append(row.error)
    # a clip with fewer frames than --min-hits is flagged when every frame of it has a hit
    need = max(1, min(cfg.min_hits, row.frames_checked))
    for prefix in ("person", "face"):
        hits = getattr(row, f"{prefix}_hits")
        if hits >= need:
            frames = getattr(row, f"{prefix}_frames")
            reasons.append(f"{prefix} on {hits}/{row.frames_checked} frames" + (f" ({frames})" if frames else ""))
    if row.check_solid >= cfg.min_hits:
        reasons.append(f"written-frame check painted {row.check_solid} frame(s) solid")
    row.flagged, row.reason = bool(reasons), "; ".join(reasons)
    return row


def crops(frame: np.ndarray, tiles: int) -> list[tuple[np.ndarray, float]]:
    """An ``tiles`` x ``tiles`` grid of overlapping crops (each 1.2 / tiles of a side), with the
    share of the frame each covers. Detectors that look at a downscaled whole frame miss small
    people (a tai chi player 1/4 of the frame high); in a crop they are twice as large."""
    h, w = frame.shape[:2]
    return [(frame[y:y + ch, x:x + cw], (ch * cw) / (h * w)) for y, x, ch, cw in _windows(h, w, tiles)]


def _windows(height: int, width: int, tiles: int) -> list[tuple[int, int, int, int]]:
    """(y, x, crop height, crop width) of each crop of :func:`crops`."""
    if tiles <= 1:
        return []
    ch, cw = min(height, round(height * 1.2 / tiles)), min(width, round(width * 1.2 / tiles))
    ys = np.linspace(0, height - ch, tiles).round().astype(int)
    xs = np.linspace(0, width - cw, tiles).round().astype(int)
    return [(int(y), int(x), ch, cw) for y in ys for x in xs]


def _check(checker: Any, frame: np.ndarray, tiles: int) -> list[tuple]:
    """The checker's findings on the frame and on its crops, areas and boxes as shares of the frame."""
    found = list(checker(frame))
    h, w = frame.shape[:2]
    for y, x, ch, cw in _windows(h, w, tiles):
        share = (ch * cw) / (h * w)
        for hit in checker(np.ascontiguousarray(frame[y:y + ch, x:x + cw])):
            if len(hit) > 2:
                x0, y0, x1, y1 = hit[2]
                box = ((x + x0 * cw) / w, (y + y0 * ch) / h, (x + x1 * cw) / w, (y + y1 * ch) / h)
                found.append((hit[0], hit[1] * share, box))
            else:
                found.append((hit[0], hit[1] * share))
    return found


def drawn_bodies(sidecar: dict[str, Any]) -> dict[int, list[tuple[float, float, float, float]]]:
    """A mesh clip's drawn bodies per output frame (sidecar ``mesh.per_frame[].drawn``, pixel boxes of
    the rendered pixels), as shares of the frame's width and height."""
    out = sidecar.get("output")
    size = [out.get("width"), out.get("height")] if isinstance(out, dict) else []
    if not all(isinstance(v, (int, float)) for v in size) or len(size) != 2:
        return {}
    width, height = float(size[0]), float(size[1])
    bodies: dict[int, list[tuple[float, float, float, float]]] = {}
    if width <= 0 or height <= 0:
        return bodies
    mesh = sidecar.get("mesh")
    frames = mesh.get("per_frame") if isinstance(mesh, dict) else None
    for entry in frames if isinstance(frames, list) else []:
        if not (isinstance(entry, dict) and isinstance(entry.get("frame"), int)
                and isinstance(entry.get("drawn"), list)):
            continue
        boxes = [b for b in entry["drawn"] if isinstance(b, list) and len(b) == 4
                 and all(isinstance(v, (int, float)) and math.isfinite(v) for v in b)]
        bodies[entry["frame"]] = [(x0 / width, y0 / height, x1 / width, y1 / height) for x0, y0, x1, y1 in boxes]
    return bodies


ON_COVER = 0.6   # share of a hit's box the clip anonymised (its sidecar's coarse grid) for the hit to lie on it


def covered_cells(sidecar: dict[str, Any], frames: Sequence[int]) -> dict[int, np.ndarray]:
    """Where each of ``frames`` (output frame indices) was anonymised: sidecar ``coverage.grid``
    (:func:`privvid.io.masks.coarse_mask`); empty for a sidecar written before it was recorded, or whose grid
    does not agree with the coverage it records beside it (one entry per frame; a cell is set only where at
    least half of it was anonymised, so no more than twice the frame's coverage of the cells can be set):
    an edited grid cannot hide a person."""
    from privvid.io.masks import read_coarse_mask

    coverage = sidecar.get("coverage")
    grid = coverage.get("grid") if isinstance(coverage, dict) else None
    shares = coverage.get("per_frame") if isinstance(coverage, dict) else None
    if not (isinstance(grid, list) and isinstance(shares, list) and len(grid) == len(shares)):
        return {}
    found = {}
    for i in frames:
        if not 0 <= i < len(grid):
            continue
        cells, share = read_coarse_mask(grid[i]), shares[i]
        if (cells is not None and isinstance(share, (int, float)) and math.isfinite(share)
                and cells.mean() <= 2 * share + 0.05):
            found[i] = cells
    return found


def on_cover(hit: tuple, cells: np.ndarray | None) -> bool:
    """Whether at least :data:`ON_COVER` of a hit's box (shares of the frame) lies on the set cells.
    A hit without a box never does."""
    if len(hit) < 3 or cells is None:
        return False
    rows, cols = cells.shape
    x0, y0, x1, y1 = (float(v) for v in hit[2])
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        return False
    # the box on a grid 8 times finer than the cells, each fine cell taking its cell's value
    fine = np.repeat(np.repeat(cells, 8, axis=0), 8, axis=1)
    inside = fine[max(0, int(y0 * rows * 8)):max(0, int(np.ceil(y1 * rows * 8))),
                  max(0, int(x0 * cols * 8)):max(0, int(np.ceil(x1 * cols * 8)))]
    return bool(inside.size) and float(inside.mean()) >= ON_COVER


ON_BODY = 0.6     # share of a hit's box that must lie on a drawn body's box (grown by BODY_GROW per side)
BODY_GROW = 0.1
GREY_FACE = 0.6   # a face hit on a body is its head when this share of its box is grey (HSV saturation < 30):
                  # 0.70-1.00 on the mannequin's heads, 0.00-0.47 on the real faces of the same two clips
GREY_FRAME = 0.9  # ... but not where the scene around the bodies is this grey (a black-and-white clip, where
                  # every face is grey; a dim indoor colour scene, the two-people clip, reads 0.56-0.58)


NEUTRAL_BODY = 0.25  # a person hit on a body is the mannequin when this share of its box is neutral grey
                     # (neutral_grey): 0.19-1.00 on the bodies of four mesh clips at 432x240 (two people, schoolgirls,
                     # breakdance, dance-twirl; 2 of 99 hits under 0.25), 0.02-0.20 on the two real men (one 0.41
                     # of 69), 2026-12-08


def neutral_grey(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of no colour at all (chroma within 3 of neutral) and not dark, as the mannequin is
    drawn (one grey, shaded); clothes, skin and hair are rarely so exactly neutral, black ones are dark."""
    import cv2

    ycc = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YCrCb).astype(np.int16)
    return (np.abs(ycc[..., 1] - 128) <= 3) & (np.abs(ycc[..., 2] - 128) <= 3) & (ycc[..., 0] > 40)


def low_saturation(frame: np.ndarray) -> np.ndarray:
    """(H, W) bool: the frame's grey pixels (HSV saturation under 30), what the mannequin is drawn in."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2HSV)[..., 1] < 30


def _box_pixels(shape: tuple[int, ...], box: Any) -> tuple[slice, slice]:
    h, w = shape[:2]
    x0, y0, x1, y1 = box
    return (slice(max(0, int(y0 * h)), max(0, int(np.ceil(y1 * h)))),
            slice(max(0, int(x0 * w)), max(0, int(np.ceil(x1 * w)))))


def scene_grey_share(grey: np.ndarray, bodies: Any) -> float:
    """Share of the grey pixels (:func:`low_saturation` or :func:`neutral_grey`) outside the drawn bodies' boxes."""
    keep = np.ones(grey.shape, bool)
    for box in bodies:
        keep[_box_pixels(grey.shape, box)] = False
    return float(grey[keep].mean()) if keep.any() else 1.0


def grey_share(grey: np.ndarray, hit: tuple) -> float:
    """Share of the grey pixels (:func:`low_saturation` or :func:`neutral_grey`) in the hit's box."""
    inside = grey[_box_pixels(grey.shape, hit[2])]
    return float(inside.mean()) if inside.size else 0.0


def on_body(hit: tuple, bodies: Any) -> bool:
    """Whether a hit (with a box) lies on one of ``bodies``: the mannequin, not a person left in the frame.
    A hit without a box never does."""
    from privvid.detect.common import box_inside

    if len(hit) < 3 or not bodies:
        return False
    b = np.asarray(bodies, np.float64).reshape(-1, 4)
    grow = BODY_GROW * (b[:, 2:] - b[:, :2])
    grown = np.concatenate([b[:, :2] - grow, b[:, 2:] + grow], axis=1)
    return bool((box_inside(np.asarray(hit[2], np.float64), grown) >= ON_BODY).any())


def _fit(frame: np.ndarray, max_side: int) -> np.ndarray:
    h, w = frame.shape[:2]
    if max(h, w) <= max_side:
        return frame
    import cv2

    scale = max_side / max(h, w)
    return cv2.resize(frame, (max(2, round(w * scale)), max(2, round(h * scale))), interpolation=cv2.INTER_AREA)


@dataclass
class AuditResult:
    rows: list[ClipAudit]
    checkers: dict[str, str]
    config: AuditConfig

    @property
    def flagged(self) -> list[ClipAudit]:
        return [r for r in self.rows if r.flagged]


def audit(root: str | os.PathLike[str], cfg: AuditConfig = AuditConfig(),
          progress: Callable[[int], None] | None = None, checkers: tuple[Any, Any] | None = None) -> AuditResult:
    if cfg.frames < 1 or cfg.min_hits < 1:
        raise QAError("--frames and --min-hits must be at least 1")
    if cfg.min_hits > cfg.frames:
        raise QAError(f"--min-hits {cfg.min_hits} is more than the {cfg.frames} frames checked per clip")
    if not 0.0 < cfg.threshold < 1.0:
        # 1 or more would count no detection at all (every clip passes); 0 or less every one
        raise QAError(f"--threshold must be between 0 and 1 (a detection score), got {cfg.threshold}")
    if cfg.tiles < 1:
        raise QAError(f"--tiles must be at least 1 (1 = the whole frame only), got {cfg.tiles}")
    if cfg.max_side < 32:
        raise QAError(f"max_side must be at least 32 px, got {cfg.max_side}")
    clips = scan(root, everything=True)
    person, face = checkers if checkers is not None else make_checkers(cfg)
    rows = []
    try:
        for clip in clips:
            rows.append(audit_clip(clip, person, face, cfg))
            if progress is not None:
                progress(1)
    finally:
        for checker in (person, face):
            if checker is not None:
                checker.close()
    rows.sort(key=lambda r: (not r.flagged, -r.suspicion, -max(r.person_max_score, r.face_max_score), r.rel))
    for rank, row in enumerate(rows, 1):
        row.rank = rank
    names = {"person": getattr(person, "name", "none") if person else "none",
             "face": getattr(face, "name", "none") if face else "none"}
    return AuditResult(rows, names, cfg)


def audit_output(root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> Path:
    """Where the per-clip CSV goes: ``out``, or ``root/.privvid/audit.csv`` when ``root`` holds privvid's
    outputs. A folder with no sidecar in it (an input folder, say) is not written into: ``out`` is then
    required (:class:`ConfigError`, raised before any clip is checked)."""
    if out is not None:
        return Path(out)
    root = Path(root)
    if root.is_dir() and not any(clips for clips in layout.read_tree(root, strict=False)):   # finished or in part
        raise ConfigError(f"{root} holds no clip written by privvid anonymize (no sidecars), and the audit does "
                          "not write into a folder privvid did not make: say where its CSV goes with --out FILE.csv")
    return root / ".privvid" / "audit.csv"


def write_audit(result: AuditResult, out: str | os.PathLike[str]) -> Path:
    """Write the per-clip CSV (ranked, most suspicious first)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fields = list(asdict(result.rows[0]).keys()) if result.rows else [f for f in ClipAudit.__dataclass_fields__]
    tmp = out.with_name(f".{out.name}.partial")
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in result.rows:
            data = asdict(row)
            for key, value in data.items():
                if isinstance(value, float):
                    data[key] = f"{value:.4f}"
            writer.writerow(data)
    os.replace(tmp, out)
    return out


def summary(result: AuditResult) -> dict[str, Any]:
    rows = result.rows
    by_class: dict[str, list[int]] = {}
    for row in rows:
        entry = by_class.setdefault(row.label, [0, 0])
        entry[0] += 1
        entry[1] += int(row.flagged)
    return {
        "clips": len(rows),
        "flagged": sum(r.flagged for r in rows),
        "unreadable": sum(bool(r.error) and not r.in_part for r in rows),
        "without_sidecar": sum(not r.sidecar for r in rows),
        "written_in_part": sum(r.in_part for r in rows),
        "with_person_hits": sum(r.person_hits > 0 for r in rows),
        "with_face_hits": sum(r.face_hits > 0 for r in rows),
        "same_detector_as_removal": sum(r.same_detector for r in rows),
        "mesh_frames_with_hits_on_drawn_bodies": {"person": sum(r.person_on_body for r in rows),
                                                  "face": sum(r.face_on_body for r in rows)},
        "frames_with_hits_on_anonymised_regions": {"person": sum(r.person_on_cover for r in rows),
                                                   "face": sum(r.face_on_cover for r in rows)},
        "written_frame_check": {"on": sum(r.check == "on" for r in rows), "off": sum(r.check == "off" for r in rows),
                                "n/a": sum(r.check == "n/a" for r in rows),
                                "absent": sum(r.check == "absent" for r in rows),
                                "frames_mended": sum(r.check_flagged for r in rows),
                                "solid_fallbacks": sum(r.check_solid for r in rows)},
        "checkers": result.checkers,
        "per_class": {k: {"clips": v[0], "flagged": v[1]} for k, v in sorted(by_class.items())},
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(result.config).items()},
    }
