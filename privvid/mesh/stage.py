"""MeshStage: landmarks -> fitted SMPL-X bodies -> rendered over the inpainted background.

Fail closed: the stage only ever paints rendered mesh pixels onto ``background``
(people already removed); original frames are used only to estimate pose. A person
whose pose, fit or render fails in a frame is simply not drawn there.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import defaultdict
from typing import Any, Sequence

import numpy as np
import torch

from privvid.config import MeshConfig
from privvid.detect.common import box_inside, box_iou
from privvid.io.atomic import savez_atomic
from privvid.mesh.body_model import BodyModel, load_body_model
from privvid.mesh.fit import MIN_CONF, Fitter, TrackState
from privvid.mesh.metrics import project
from privvid.mesh.pose import LandmarkFilter, PoseResult

OFF_BOX = 2.0             # a body more than this many times as wide or as tall as its person's box on screen ...
OFF_BOX_SLACK = 0.1       # ... plus this share of the box's height is not drawn (a fit to wrong landmarks)
MAX_REL_ERROR = 0.15      # a fit whose mean reprojection error exceeds this share of the box height fails
MIN_LANDMARKS = 6         # confident, usable landmarks needed to fit a person in a frame
DUPLICATE_DISTANCE = 0.08  # two detections whose landmarks lie this close (share of the skeleton's height,
                          # mean over the landmarks both see) are one person: one body is drawn
SAME_BOX_IOU = 0.9        # ... and so are two whose boxes overlap this much (two pose runs on one crop can
                          # disagree)
YOUNG_BODY = 10           # a body drawn in fewer frames than this is young: a young body whose head lies on
                          # another body's head (DUPLICATE_DISTANCE x the skeleton's height) is that body
PART_INSIDE = 0.85        # ... and so is a young body's box lying this much inside the box of an older or
PART_HEIGHT = 0.4         # higher-scored body, when it is at least this share of that box's height
NEAR_HEAD = 0.3           # ... and so is a young body whose head lies within this share of the skeleton's height
NEAR_SKELETON = 0.5       # of the other's, whose landmarks lie this close on average, and whose box lies at least
NEAR_INSIDE = 0.6         # this much inside the other's box (or the other's in its), when the shorter box is at least
                          # PART_HEIGHT of the other's height: a pose run on a box around a part of the person,
                          # or around a group, puts the limbs a little elsewhere
DUPLICATE_BOX_IOU = 0.8   # a duplicate whose box stays this close to its twin's is not posed again (a box
                          # that only overlaps may hold someone else: its pose is looked at again) ...
DUPLICATE_RECHECK = 3     # ... and one whose box lies at least NEAR_INSIDE on its twin's skeleton is posed again
                          # only every this many frames (a crowd's part and group boxes: a third
                          # of the pose runs on DAVIS schoolgirls were on duplicates)
BODY_TAKEOVER = 2         # a new track, or one whose body has been drawn in this many frames at most, whose
BODY_TAKEOVER_IOU = 0.5   # box lies on an older body drawn in the last this many frames (and not in this one)
                          # by at least this IoU carries on that body


def default_focal(width: int, height: int) -> float:
    """Focal length (pixels) of the assumed camera: about 53 degrees across the longer side."""
    return float(max(width, height))


def drawn_boxes(cover: np.ndarray, min_pixels: int = 16) -> list[list[int]]:
    """[x0, y0, x1, y1] (x1, y1 exclusive) of each connected piece of rendered pixels; bodies that touch
    share one box."""
    import cv2

    count, _, stats, _ = cv2.connectedComponentsWithStats(cover.astype(np.uint8), connectivity=8)
    return [[int(x), int(y), int(x + w), int(y + h)] for x, y, w, h, n in stats[1:count] if n >= min_pixels]


class MeshStage:
    """Replace every detected person by a rendered body mesh. One instance serves one clip at a time."""

    def __init__(self, cfg: MeshConfig, pose_source: Any | None = None) -> None:
        from privvid.mesh import POSE_SOURCES

        self.cfg = cfg
        self.min_frames = cfg.min_frames   # frames a body passes every check in before it is drawn
        self.body: BodyModel = load_body_model(cfg.body_model, cfg.gender, trust=cfg.trust_model_files)
        if pose_source is None:
            kwargs = {"trust": True} if cfg.trust_model_files and cfg.pose_backend == "yolo" else {}
            pose_source = POSE_SOURCES.create(cfg.pose_backend, cfg.pose_weights, **kwargs)
        self.pose = pose_source
        self._renderer = None
        self._render_key: tuple | None = None
        self._drawn: tuple[np.ndarray, np.ndarray] | None = None  # (vertex index, faces) of the drawn mesh
        self._coarser: list[tuple[float, np.ndarray, np.ndarray]] = []  # ... for small bodies (detail_levels)
        self.timings: dict[str, float] = defaultdict(float)
        self.reset()

    # ------------------------------------------------------------------ lifecycle
    def reset(self) -> None:
        self.pose.reset()
        if self._renderer is not None:
            self._renderer.reset_counts()
        self._smooth_marks = LandmarkFilter()   # the detector's landmarks come unsmoothed
        self.detector_landmarks = 0             # person-frames posed from the detector's landmarks
        self._states: dict[int, TrackState] = {}
        self._frame0 = 0
        self._fitter: Fitter | None = None
        self._camera: dict[str, float] | None = None
        self._records: list[dict] = []        # one per fitted (track, frame), for params + summary
        self._frames_info: list[dict] = []
        self._next_anon = -1                  # ids privvid makes up (untracked detections, spare bodies)
        self._dup_of: dict[int, int] = {}     # track -> the track it was found to duplicate (last frame)
        self._unposed: dict[int, int] = {}   # duplicate track -> frames in a row it was not posed again
        self._bodies: dict[int, int] = {}     # body -> frames its person was posed in
        self._fits: dict[int, int] = {}       # body -> frames it passed every check in (min_frames counts these)
        self._brief: dict[int, int] = {}      # body -> frames it was withheld in as short-lived so far
        self._body_of: dict[int, int] = {}    # track -> the body it draws (its own id until it takes one over)
        self._holder: dict[int, int] = {}     # body -> the track that drew it last
        self._drawn_at: dict[int, tuple[int, np.ndarray]] = {}   # body -> (last frame drawn, its box there)
        self.fallback_frames = 0              # frames whose bodies could not be drawn (--mesh-fallback remove)
        self.timings = defaultdict(float)

    def _broken(self, part: str, exc: Exception) -> None:
        """The body model or the renderer failed (not one person's fit): the clip cannot get the mode the
        user asked for. Fail it, unless ``fallback="remove"`` says to write those people removed only."""
        from privvid.errors import BackendFailure

        if self.cfg.fallback != "remove":
            raise BackendFailure(f"mesh {part} failed ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                                 "no body can be drawn. Fix the renderer (privvid doctor) or pass "
                                 "--mesh-fallback remove to write such clips with the people removed only") from exc
        self.fallback_frames += 1

    def _setup(self, height: int, width: int) -> None:
        if self._camera is not None and (self._camera["width"], self._camera["height"]) == (width, height):
            return
        focal = default_focal(width, height)
        self._camera = {"focal": focal, "cx": width / 2.0, "cy": height / 2.0, "width": width, "height": height}
        self._fitter = Fitter(self.body, focal, width / 2.0, height / 2.0, smooth=self.cfg.smooth)

    def _get_renderer(self):
        from privvid.mesh.render import MeshRenderer, detail_levels

        cam = self._camera
        key = (cam["width"], cam["height"], cam["focal"])
        if self._renderer is None or self._render_key != key:
            if self._renderer is not None:
                self._renderer.close()
            if self._drawn is None:
                rest = self.body.smplx_model.v_template.detach().cpu().numpy()
                self._drawn, self._coarser = detail_levels(rest, self.body.faces, self.cfg.render_faces)
            index, faces = self._drawn
            self._renderer = MeshRenderer(cam["width"], cam["height"], cam["focal"], cam["cx"], cam["cy"],
                                          faces, vertex_index=index, coarser=self._coarser)
            self._render_key = key
        return self._renderer

    # ------------------------------------------------------------------ main call
    def __call__(self, frames: np.ndarray, detections: Sequence[Any], background: np.ndarray, masks: np.ndarray
                 ) -> tuple[np.ndarray, list[dict]]:
        t_count = len(frames)
        if not (len(detections) == len(background) == len(masks) == t_count):
            raise ValueError("frames, detections, background and masks must have the same length")
        height, width = background.shape[1:3]
        self._setup(height, width)
        out = np.array(background, dtype=np.uint8, copy=True)

        # 1. landmarks per person
        t0 = time.perf_counter()
        rows: list[dict] = []
        per_frame: list[list[dict]] = [[] for _ in range(t_count)]
        for t in range(t_count):
            det = detections[t]
            f_idx = self._frame0 + t
            kp = getattr(det, "keypoints", None)
            world_kp = getattr(det, "world_keypoints", None)
            people = []
            for i in range(len(det)):
                tid = int(det.track_ids[i])
                if tid < 0:
                    tid = self._made_up_id()  # untracked: no temporal link
                box = np.asarray(det.boxes[i], dtype=np.float32)
                person = {"track_id": tid, "box": [round(float(v), 1) for v in box], "status": "failed",
                          "reason": None, "reproj_error_px": None, "reproj_error_rel": None}
                per_frame[t].append(person)
                people.append((i, tid, box, person))
            # one body per person: a detector may report one person twice (a box on the whole body and one
            # on a part of it, or a box around two people standing together, whose crop's pose is one of
            # them). Last frame's duplicates go last (their twin is looked at first), then tracks already
            # fitted, so the body keeps its history
            people.sort(key=lambda p: (p[1] in self._dup_of, self._body(p[1]) not in self._states,
                                       -float(det.scores[p[0]])))
            was_duplicate = dict(self._dup_of)
            # boxes of the bodies drawn last frame whose track this frame lacks: a box on them may be that
            # person now, so it is posed whatever it duplicated last frame
            present = {p[1] for p in people}
            lost = [b for body, (at, b) in self._drawn_at.items()
                    if at == f_idx - 1 and self._holder.get(body) not in present]
            kept: list[dict] = []   # this frame's rows: the people who get a body
            for i, tid, box, person in people:
                if float(box[3] - box[1]) < getattr(self.cfg, "min_height", 0.0) * height:
                    person["status"] = "small"
                    person["reason"] = "shorter than min_height: removed, no body"
                    continue
                twin = self._dup_of.get(tid)
                if twin is not None:
                    still = self._still_twin(tid, box, next((k for k in kept if k["track"] == twin), None), lost)
                    if still:
                        _mark_duplicate(person, twin)   # still on its twin, as last frame: no second pose run
                        continue
                    del self._dup_of[tid]
                self._unposed.pop(tid, None)
                res: PoseResult | None = None
                try:
                    if (kp is not None and len(kp) > i and kp.shape[1] == 33 and world_kp is not None
                            and int((kp[i][:, 2] >= MIN_CONF).sum()) >= MIN_LANDMARKS
                            and _landmarks_match_box(kp[i], box)):
                        res = self._smooth_marks(tid, f_idx, PoseResult(
                            image=np.asarray(kp[i], np.float32), world=np.asarray(world_kp[i], np.float32)))
                        self.detector_landmarks += 1
                    else:
                        # the detector has no usable 2D + 3D landmarks for this person (a second
                        # person, a frame where its pose model did not run, or 2D keypoints only):
                        # run the pose source on this person's crop. Mixing 2D-only frames with
                        # frames that have 3D world landmarks made the arms flip between two depth
                        # readings of the same 2D pose (bent elbows vs straight arms) frame to frame
                        res = self.pose(self._isolate(frames[t], det, i), box, tid, frame_index=f_idx)
                except Exception as exc:  # pose failure -> person stays inpainted
                    person["reason"] = f"pose: {type(exc).__name__}"
                    continue
                if res is None:
                    person["reason"] = "pose: no landmarks"
                    continue
                if not _landmarks_match_box(res.image, box):
                    person["reason"] = "pose: landmarks outside the person box"
                    continue
                if int((res.image[:, 2] >= 0.3).sum()) < MIN_LANDMARKS:
                    person["reason"] = "pose: too few confident landmarks"
                    continue
                new = {"track": tid, "frame": f_idx, "t": t, "image": res.image, "world": res.world, "box": box,
                       "box_h": float(box[3] - box[1]), "person": person, "score": float(det.scores[i]),
                       **self._carried(tid, box, kept, was_duplicate, f_idx)}
                twin = self._twin(kept, new)
                if twin is None:
                    kept.append(new)
                    continue
                # the same person twice: one body (see _priority for which)
                winner, loser = twin, new
                if _priority(new) > _priority(twin):
                    kept[next(j for j, k in enumerate(kept) if k is twin)] = new
                    winner, loser = new, twin
                    new.update(self._carried(tid, box, kept, was_duplicate, f_idx))   # its twin is not kept now
                self._dup_of[loser["track"]] = winner["track"]
                self._dup_of.pop(winner["track"], None)
                _mark_duplicate(loser["person"], winner["track"])
            self._assign_bodies(kept, was_duplicate, f_idx)
            # the fit follows bodies, not detector tracks (the detector's stays beside it, for the params file)
            rows += [{**r, "detector_track": r["track"], "track": r["body"]} for r in kept]
        self.timings["pose"] += time.perf_counter() - t0

        # 2. fit (batched over all frames and people of the window)
        t0 = time.perf_counter()
        rows.sort(key=lambda r: (r["track"], r["frame"]))
        try:
            fits = self._fitter.fit(rows, self._states) if rows else []
        except Exception as exc:
            for r in rows:
                r["person"]["reason"] = f"fit: {type(exc).__name__}"
            rows, fits = [], []
        self.timings["fit"] += time.perf_counter() - t0

        ok_rows = []
        for r, f in zip(rows, fits):
            p = r["person"]
            p["reproj_error_px"] = None if math.isnan(f["err_px"]) else round(f["err_px"], 2)
            p["reproj_error_rel"] = None if math.isnan(f["err_rel"]) else round(f["err_rel"], 4)
            finite = all(np.isfinite(f[k]).all() for k in ("go", "bp", "tr", "betas"))
            if not finite:
                p["reason"] = "fit: not finite"
            elif f["tr"][2] <= 0.1 or f["joints"][:, 2].min() <= 0.05:
                p["reason"] = "fit: body behind the camera"
            elif not (f["err_rel"] <= MAX_REL_ERROR):
                p["reason"] = f"fit: reprojection error {f['err_rel']:.2f} of box height > {MAX_REL_ERROR}"
            else:
                ok_rows.append((r, f))
            rec = {"track": r["track"], "detector_track": r["detector_track"], "frame": r["frame"],
                   "ok": False, **{k: f[k] for k in
                   ("go", "bp", "tr", "betas", "err_px", "err_rel")}, "image": r["image"], "world": r["world"],
                   "landmarks": f["landmarks"], "joints_fit": f["joints"], "box_h": r["box_h"]}
            r["record"] = rec
            self._records.append(rec)

        # 3. body vertices through smplx (the same code path for every body model)
        t0 = time.perf_counter()
        verts_by_t: dict[int, list[tuple[float, np.ndarray, dict]]] = defaultdict(list)
        if ok_rows:
            try:
                verts, joints = self.body_forward(
                    np.stack([f["go"] for _, f in ok_rows]), np.stack([f["bp"] for _, f in ok_rows]),
                    np.stack([f["tr"] for _, f in ok_rows]), np.stack([f["betas"] for _, f in ok_rows]))
                passed = []
                for k, (r, _) in enumerate(ok_rows):
                    if not np.isfinite(verts[k]).all():
                        r["person"]["reason"] = "body model: not finite"
                    elif (why := self._off_box(verts[k], r["box"])) is not None:
                        r["person"]["reason"] = why
                    else:
                        passed.append(k)
                        self._fits[r["body"]] = self._fits.get(r["body"], 0) + 1
                # a body is drawn once its person's body has passed every check in min_frames frames, this
                # window's later frames included (a person who stays gets a body from their first frame in the
                # window): what the detector finds for a few frames only is mostly the scene taken for a person
                # (painted faces, a tree), and a body that pops up for a frame or two is no one's action. Such
                # people stay removed, without a body
                need = self.min_frames
                for k in passed:
                    r, f = ok_rows[k]
                    body = r["body"]
                    if self._fits[body] < need:
                        r["person"]["status"] = "brief"
                        r["person"]["reason"] = (f"its body passed in {self._fits[body]} frame(s) so far, fewer than "
                                                 f"min_frames ({need}): removed, no body")
                        self._brief[body] = self._brief.get(body, 0) + 1
                        continue
                    verts_by_t[r["t"]].append((float(f["tr"][2]), verts[k], r))
                    r["record"]["joints"] = joints[k]
            except Exception as exc:
                self._broken("body model", exc)
                for r, _ in ok_rows:
                    r["person"]["reason"] = f"body model: {type(exc).__name__}"
                verts_by_t.clear()
        self.timings["body_model"] += time.perf_counter() - t0

        # 4. render + composite; rendered pixels only ever go over the inpainted background
        t0 = time.perf_counter()
        drawn: dict[int, list[list[int]]] = {}
        for t in range(t_count):
            people = verts_by_t.get(t)
            if not people:
                continue
            try:
                color, cover = self._get_renderer().render([v for _, v, _ in people])
            except Exception as exc:
                self._broken("renderer", exc)
                for _, _, r in people:
                    r["person"]["reason"] = f"render: {type(exc).__name__}"
                continue
            out[t][cover] = color[cover]
            drawn[t] = drawn_boxes(cover)
            for _, _, r in people:
                r["person"]["status"] = "ok"
                r["record"]["ok"] = True
        self.timings["render"] += time.perf_counter() - t0

        infos = []
        for t in range(t_count):
            for person in per_frame[t]:
                if person["status"] != "ok":
                    person.pop("body", None)   # a body number only where that body was drawn
            # where bodies were drawn (pixel boxes): qa audit tells the mannequin from a person by them
            info = {"frame": self._frame0 + t, "people": per_frame[t], "drawn": drawn.get(t, [])}
            infos.append(info)
            self._frames_info.append(info)
        self._frame0 += t_count
        return out, infos

    def _off_box(self, verts: np.ndarray, box: Any) -> str | None:
        """Why a fitted body does not fit its person, or None: on screen (the part inside the frame) it is
        more than twice as wide or as tall as the person's box (plus a tenth of the box's height). The fit
        matches the pose model's landmarks; on a person a few dozen pixels tall they can be wrong enough to
        give a body lying across the frame with a small reprojection error."""
        cam = self._camera
        assert cam is not None
        z = verts[:, 2]
        if not (z > 0).all():
            return None   # a body reaching behind the camera: the fit's own checks decide
        uv = np.clip(project(verts, cam), 0, [cam["width"], cam["height"]])
        u, v = uv[:, 0], uv[:, 1]
        bw, bh = float(box[2] - box[0]), float(box[3] - box[1])
        w, h = float(u.max() - u.min()), float(v.max() - v.min())
        slack = OFF_BOX_SLACK * bh
        if w > OFF_BOX * bw + slack or h > OFF_BOX * bh + slack:
            return (f"fit: the body ({w:.0f}x{h:.0f} px on screen) does not fit the person's box "
                    f"({bw:.0f}x{bh:.0f} px)")
        return None

    def _still_twin(self, track: int, box: np.ndarray, twin: dict | None, lost: list[np.ndarray]) -> bool:
        """Is a track that duplicated ``twin`` last frame still that person, without a pose run: the twin is
        kept in this frame, no ``lost`` box (of a body drawn last frame whose track is missing now) lies in
        its box or holds it (``NEAR_INSIDE``), and their boxes coincide (``DUPLICATE_BOX_IOU``), or its box
        lies on the twin's skeleton (``NEAR_INSIDE`` of it in the box of the twin's landmarks; a box around
        two people holding another one's box is not enough) and it has not been posed for
        ``DUPLICATE_RECHECK`` - 1 frames in a row."""
        if twin is None or any(max(box_inside(box, b)[0, 0], box_inside(b, box)[0, 0]) >= NEAR_INSIDE for b in lost):
            return False
        if box_iou(twin["box"], box)[0, 0] >= DUPLICATE_BOX_IOU:
            return True
        skipped = self._unposed.get(track, 0)
        inside = box_inside(box, _skeleton_box(twin["image"]))[0, 0]
        if skipped + 1 >= DUPLICATE_RECHECK or inside < NEAR_INSIDE:
            return False
        self._unposed[track] = skipped + 1
        return True

    def _body(self, track: int) -> int:
        return self._body_of.get(track, track)

    @staticmethod
    def _twin(kept: list[dict], new: dict) -> dict | None:
        """The person kept in this frame that a new detection is, if any: one whose landmarks lie on its
        landmarks (``same_skeleton``) or whose box lies on its box (IoU >= ``SAME_BOX_IOU``: two pose
        runs on one crop can disagree). When either body is young (``YOUNG_BODY``) or both tracks drew the
        same body last (one person followed on two tracks that take turns), also one whose head
        lies on its head (the nearest), or near it with the skeleton near too and one box mostly inside the
        other (``NEAR_*``), or one whose box holds its box or lies in it (``_part_of``): on a box
        around a part of a person, or around two, the pose model guesses the limbs but finds the head of the
        person it holds."""
        box, image = new["box"], new["image"]
        twin = next((k for k in kept if same_skeleton(k["image"], image)
                     or box_iou(k["box"], box)[0, 0] >= SAME_BOX_IOU), None)
        if twin is not None:
            return twin
        young = [k for k in kept if min(new["age"], k["age"]) < YOUNG_BODY or k["had"] == new["had"]]
        heads = [(d, k) for k in young if (d := head_distance(k["image"], image)) < DUPLICATE_DISTANCE
                 or (d < NEAR_HEAD and _near(k, new))]
        if heads:
            return min(heads, key=lambda h: h[0])[1]
        return next((k for k in young if _part_of(new, k) or _part_of(k, new)), None)

    def _carried(self, track: int, box: np.ndarray, kept: list[dict], was_duplicate: dict[int, int],
                 frame: int) -> dict[str, int]:
        """The body this track draws, or will carry on when that body's track is not kept in this frame
        (see ``_assign_bodies``; last frame's duplicates and new tracks are looked at after the others), and
        the frames it has been drawn in: ``{"had": body, "age": frames}``. A new track that carries on an
        old body is not young."""
        tracks = {k["track"] for k in kept}
        twin = was_duplicate.get(track)
        body = self._heir(track, box, frame, twin if twin not in tracks else None, {self._body(t) for t in tracks})
        return {"had": body, "age": self._bodies.get(body, 0)}

    def _heir(self, track: int, box: np.ndarray, frame: int, twin: int | None, exclude: set[int]) -> int:
        """The body a kept track draws: that of ``twin`` (the track it duplicated last frame, when that one
        is not kept), else its own, unless its own is a young one (``BODY_TAKEOVER`` frames at most) and its
        box lies on an older body drawn in the last ``BODY_TAKEOVER`` frames, not in this one and not in
        ``exclude`` (IoU >= ``BODY_TAKEOVER_IOU``; the best one)."""
        if twin is not None:
            return self._body(twin)
        body = self._body(track)
        age = self._bodies.get(body, 0)
        if age > BODY_TAKEOVER:
            return body
        near = [(float(box_iou(last, box)[0, 0]), b) for b, (at, last) in self._drawn_at.items()
                if at < frame and b not in exclude and self._bodies.get(b, 0) > age]
        best = max(near, default=(0.0, None))
        return best[1] if best[0] >= BODY_TAKEOVER_IOU else body

    def _assign_bodies(self, kept: list[dict], was_duplicate: dict[int, int], frame: int) -> None:
        """Give each of a frame's kept people a body (``row["body"]``), one body per person.

        The detector may follow one person on two tracks that take turns (one box on the whole body, one
        on a part), or lose a track and start another on the same person. So a body is carried on by the
        track found to duplicate its track last frame, when that track is not kept in this frame, and by a
        track new to the stage (or whose body has been drawn in ``BODY_TAKEOVER`` frames at most) whose box
        lies on an older body drawn in the last ``BODY_TAKEOVER`` frames and not in this one (IoU >=
        ``BODY_TAKEOVER_IOU``): the body keeps its shape and its smoothing instead of flipping between two
        fits or starting again. A body two people would share goes to the track that drew it last frame;
        the other starts a body of its own."""
        kept_tracks = {r["track"] for r in kept}
        kept_bodies = {self._body(t) for t in kept_tracks}
        taken: set[int] = set()
        for r in sorted(kept, key=lambda r: self._holder.get(self._body(r["track"])) != r["track"]):
            track = r["track"]
            twin = was_duplicate.get(track)
            carry = twin is not None and twin not in kept_tracks and self._body(twin) not in taken
            body = self._heir(track, r["box"], frame, twin if carry else None, kept_bodies | taken)
            if body in taken:
                own = track not in taken and self._holder.get(track, track) == track
                body = track if own else self._made_up_id()
            taken.add(body)
            self._body_of[track] = body
            r["body"] = r["person"]["body"] = body
        for r in kept:
            self._holder[r["body"]] = r["track"]
            self._drawn_at[r["body"]] = (frame, r["box"])
            self._bodies[r["body"]] = self._bodies.get(r["body"], 0) + 1
        for b in [b for b, (at, _) in self._drawn_at.items() if at <= frame - BODY_TAKEOVER]:
            del self._drawn_at[b]   # too long ago to be taken over

    def _made_up_id(self) -> int:
        """A negative id no detector track and no other made-up id has: for an untracked detection, or a
        body a track cannot name after itself."""
        self._next_anon -= 1
        return (self._next_anon + 1) * 1_000_000

    @staticmethod
    def _isolate(frame: np.ndarray, det: Any, i: int) -> np.ndarray:
        """The frame with every other person's pixels greyed out, so a crop's pose is this person's."""
        if len(det) < 2:
            return frame
        others = np.zeros(frame.shape[:2], bool)
        for k in range(len(det)):
            if k != i:
                others |= det.masks[k]
        others &= ~det.masks[i]
        if not others.any():
            return frame
        out = frame.copy()
        out[others] = 128
        return out

    def body_forward(self, go: np.ndarray, bp: np.ndarray, tr: np.ndarray, betas: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
        """smplx.SMPLX forward for N parameter sets -> vertices (N, V, 3), joints (N, 55, 3)."""
        m = self.body.smplx_model
        n = len(go)
        f32 = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32)  # noqa: E731
        threads = torch.get_num_threads()
        torch.set_num_threads(1)   # measured 3x faster than 2 threads on this shared 2-core machine
        try:
            return self._body_forward(m, n, f32, go, bp, tr, betas)
        finally:
            torch.set_num_threads(threads)

    @staticmethod
    def _body_forward(m, n, f32, go, bp, tr, betas) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            z3 = torch.zeros(n, 3)
            out = m(global_orient=f32(go).reshape(n, 3), body_pose=f32(bp).reshape(n, 63), transl=f32(tr),
                    betas=f32(betas).reshape(n, -1), jaw_pose=z3, leye_pose=z3, reye_pose=z3,
                    left_hand_pose=torch.zeros(n, 45), right_hand_pose=torch.zeros(n, 45),
                    expression=torch.zeros(n, m.num_expression_coeffs), return_verts=True)
        return out.vertices.numpy(), out.joints[:, :55].numpy()

    # ------------------------------------------------------------------ summaries
    def finish(self) -> dict[str, Any]:
        recs = self._records
        ok = [r for r in recs if r["ok"]]
        err_rel = [r["err_rel"] for r in ok if np.isfinite(r["err_rel"])]
        err_px = [r["err_px"] for r in ok if np.isfinite(r["err_px"])]
        persons = sum(len(f["people"]) for f in self._frames_info)
        small = sum(p["status"] == "small" for f in self._frames_info for p in f["people"])
        duplicates = sum(p["status"] == "duplicate" for f in self._frames_info for p in f["people"])
        brief = sum(p["status"] == "brief" for f in self._frames_info for p in f["people"])
        never = {b: n for b, n in self._brief.items() if self._fits.get(b, 0) < self.min_frames}
        return {
            "frames": len(self._frames_info),
            "person_frames": persons,
            "fitted": len(ok),
            "fallback_frames": self.fallback_frames,
            "landmarks_from_detector": self.detector_landmarks,
            "failed": persons - len(ok) - small - duplicates - brief,
            "small": small,
            "duplicates": duplicates,
            "brief": brief,     # person-frames withheld as short-lived (a person who stays, at a window's end too)
            # bodies never drawn (found in fewer than min_frames frames) and their person-frames
            "brief_bodies": len(never),
            "brief_never": sum(never.values()),
            "tracks": len({r["track"] for r in ok}),
            "mean_reproj_error_px": round(float(np.mean(err_px)), 3) if err_px else None,
            "mean_reproj_error_rel": round(float(np.mean(err_rel)), 5) if err_rel else None,
            "jitter_mm": _round(jitter([r for r in ok if "joints" in r], key="joints")),
            "camera": dict(self._camera) if self._camera else None,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "per_frame": [{"frame": f["frame"], "people": [
                {"track_id": p["track_id"], "status": p["status"], "reproj_error_px": p["reproj_error_px"],
                 "reproj_error_rel": p["reproj_error_rel"], **({"reason": p["reason"]} if p["status"] != "ok"
                                                                else {"body": p.get("body")})} for p in f["people"]]}
                for f in self._frames_info],
        }

    def save_params(self, path: str | os.PathLike) -> None:
        """Write an .npz (plain numpy arrays, no pickles) with one row per fitted (body, frame)."""
        recs = [r for r in self._records if r["ok"] and "joints" in r]
        n = len(recs)
        cam = self._camera or {"focal": 0.0, "cx": 0.0, "cy": 0.0, "width": 0, "height": 0}
        nb = self.body.num_betas

        def stack(key: str, shape: tuple, fill: float = 0.0) -> np.ndarray:
            if not n:
                return np.zeros((0, *shape), np.float32)
            return np.stack([np.full(shape, fill, np.float32) if r.get(key) is None else
                             np.asarray(r[key], np.float32).reshape(shape) for r in recs])

        bodies = np.array([r["track"] for r in recs], dtype=np.int64)
        data = {
            "track_id": bodies,   # the body, by its name before "body" was added
            "body": bodies,
            "detector_track": np.array([r["detector_track"] for r in recs], dtype=np.int64),
            "frame": np.array([r["frame"] for r in recs], dtype=np.int64),
            "global_orient": stack("go", (3,)),
            "body_pose": stack("bp", (63,)),
            "transl": stack("tr", (3,)),
            "betas": stack("betas", (nb,)),
            "joints": stack("joints", (55, 3)),
            "keypoints_2d": stack("image", (33, 3)),
            "keypoints_3d_world": stack("world", (33, 3), fill=np.nan),
            "reproj_error_px": np.array([r["err_px"] for r in recs], dtype=np.float32),
            "camera_intrinsics": np.array([[cam["focal"], 0, cam["cx"]], [0, cam["focal"], cam["cy"]], [0, 0, 1]],
                                          dtype=np.float32),
            "image_size": np.array([cam["width"], cam["height"]], dtype=np.int64),
            "meta": np.array(json.dumps({
                "format": "privvid-mesh-params/1",
                "body_model": self.body.info(),
                "camera": "pinhole at the origin, OpenCV axes (x right, y down, z forward); "
                          "transl/global_orient place the SMPL-X body in camera coordinates",
                "smplx_kwargs": {"use_pca": False, "flat_hand_mean": False, "num_betas": nb,
                                 "hand_pose": "zeros", "jaw_eye_expression": "zeros"},
                "keypoints": "BlazePose 33 layout (x, y, confidence) in output pixels",
                "rows": "one per fitted (body, frame); track_id is the body too (its name before body was added), "
                        "detector_track the detector's track the body followed on that frame",
            })),
        }
        savez_atomic(path, compressed=True, **data)

    def info(self) -> dict[str, Any]:
        from importlib.metadata import version

        def ver(pkg: str) -> str:
            try:
                return version(pkg)
            except Exception:
                return "unknown"

        return {
            "name": "mask2mesh",
            "pose_source": self.pose.info(),
            **self.body.info(),
            "fit": {"smooth": self.cfg.smooth, "max_rel_error": MAX_REL_ERROR, "min_landmarks": MIN_LANDMARKS,
                    "duplicate_distance": DUPLICATE_DISTANCE, "duplicate_box_iou": DUPLICATE_BOX_IOU,
                    "duplicate_recheck": DUPLICATE_RECHECK,
                    "iters_cold": self._fitter.iters_cold if self._fitter else None,
                    "iters_warm": self._fitter.iters_warm if self._fitter else None},
            "renderer": {"backend": "pyrender", "platform": os.environ.get("PYOPENGL_PLATFORM", "egl"),
                         "material": "flat neutral grey", "max_faces": self.cfg.render_faces,
                         "faces_drawn": int(len(self._drawn[1])) if self._drawn is not None else None,
                         "detail": [{"max_size_px": px, "faces": int(len(f))} for px, _, f in self._coarser],
                         "multisample": self._renderer.samples if self._renderer is not None else 0,
                         "bodies_by_faces": ({str(k): v for k, v in self._renderer.drawn.items()}
                                             if self._renderer is not None else {})},
            "versions": {"smplx": ver("smplx"), "pyrender": ver("pyrender"), "torch": torch.__version__,
                         "mannequin-x": ver("mannequin-x"), "fast-simplification": ver("fast-simplification")},
        }

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def skeleton_distance(a: np.ndarray, b: np.ndarray, min_conf: float = 0.5) -> float:
    """Mean distance between the landmarks two (33, 3) sets both see confidently (at least
    ``MIN_LANDMARKS``), as a share of the taller skeleton's height; inf when they share fewer."""
    both = (a[:, 2] >= min_conf) & (b[:, 2] >= min_conf)
    if int(both.sum()) < MIN_LANDMARKS:
        return math.inf
    pa, pb = a[both, :2], b[both, :2]
    height = max(float(np.ptp(pa[:, 1])), float(np.ptp(pb[:, 1])), 1.0)
    return float(np.linalg.norm(pa - pb, axis=1).mean()) / height


def same_skeleton(a: np.ndarray, b: np.ndarray, min_conf: float = 0.5) -> bool:
    """Are two (33, 3) landmark sets one person's: within ``DUPLICATE_DISTANCE`` (see skeleton_distance)."""
    return skeleton_distance(a, b, min_conf) < DUPLICATE_DISTANCE


def head_distance(a: np.ndarray, b: np.ndarray, min_conf: float = 0.5) -> float:
    """Distance between the heads of two (33, 3) landmark sets (the mean of the face landmarks both see
    confidently, at least 3), as a share of the taller skeleton's height; inf when not seen."""
    both = (a[:11, 2] >= min_conf) & (b[:11, 2] >= min_conf)
    if int(both.sum()) < 3:
        return math.inf
    height = max(float(np.ptp(x[x[:, 2] >= min_conf, 1])) for x in (a, b))
    return float(np.linalg.norm(a[:11][both, :2].mean(0) - b[:11][both, :2].mean(0))) / max(height, 1.0)


def _priority(row: dict) -> tuple[int, float]:
    """Which of two detections of one person gets the body: the one whose body has been drawn longer
    (the body keeps its history), then the box that fits the skeleton better."""
    return row["age"], _box_fit(row["box"], row["image"])


def _part_of(a: dict, b: dict) -> bool:
    """Could detection ``a`` be a part of the person detected as ``b``: its box lies inside ``b``'s
    (``PART_INSIDE`` of its area) and is at least ``PART_HEIGHT`` of its height (a spectator far behind a
    performer lies inside the performer's box too, but small), and its body is younger or its score
    lower."""
    (_, ay0, _, ay1), (_, by0, _, by1) = a["box"], b["box"]
    return bool(box_inside(a["box"], b["box"])[0, 0] >= PART_INSIDE and ay1 - ay0 >= PART_HEIGHT * (by1 - by0)
                and (a["age"] < b["age"] or a["score"] < b["score"]))


def _near(a: dict, b: dict) -> bool:
    """Could two detections whose heads are near (``NEAR_HEAD``) be one person: their landmarks lie near
    (``NEAR_SKELETON``), one box lies mostly in the other (``NEAR_INSIDE``) and the shorter box is at least
    ``PART_HEIGHT`` of the other's height (a spectator far behind, small, is someone else)."""
    heights = sorted(float(d["box"][3] - d["box"][1]) for d in (a, b))
    inside = max(box_inside(a["box"], b["box"])[0, 0], box_inside(b["box"], a["box"])[0, 0])
    return bool(heights[0] >= PART_HEIGHT * heights[1] and inside >= NEAR_INSIDE
                and skeleton_distance(a["image"], b["image"]) < NEAR_SKELETON)


def _skeleton_box(image: np.ndarray, pad: float = 0.1) -> np.ndarray:
    """The box of a (33, 3) landmark set's confident points, grown by ``pad`` of its width and height on each
    side; an empty box at the origin when none is confident."""
    xy = image[image[:, 2] >= 0.5, :2]
    if not len(xy):
        return np.zeros(4, np.float32)
    (x0, y0), (x1, y1) = xy.min(0), xy.max(0)
    px, py = pad * float(x1 - x0), pad * float(y1 - y0)
    return np.array([x0 - px, y0 - py, x1 + px, y1 + py], np.float32)


def _box_fit(box: np.ndarray, image: np.ndarray) -> float:
    """IoU of a person box with the box of its confident landmarks (0 when none is confident)."""
    return float(box_iou(box, _skeleton_box(image, pad=0.0))[0, 0])


def _mark_duplicate(person: dict, twin: int) -> None:
    person["status"] = "duplicate"
    person["reason"] = f"the same person as track {twin} (one body drawn)"


def _landmarks_match_box(image: np.ndarray, box: np.ndarray, min_inside: float = 0.6) -> bool:
    """Most confident landmarks must fall inside the (padded) person box."""
    conf = image[:, 2] >= 0.3
    if not conf.any():
        return False
    x0, y0, x1, y1 = [float(v) for v in box]
    px, py = 0.15 * (x1 - x0), 0.15 * (y1 - y0)
    xy = image[conf, :2]
    inside = (xy[:, 0] >= x0 - px) & (xy[:, 0] <= x1 + px) & (xy[:, 1] >= y0 - py) & (xy[:, 1] <= y1 + py)
    return bool(inside.mean() >= min_inside)


def jitter(records: list[dict], key: str = "joints", scale: float = 1000.0) -> float | None:
    """Mean joint acceleration over consecutive frames of each track (body joints 0-21), times ``scale``
    (metres -> mm / frame^2 by default)."""
    by_track: dict[int, list[dict]] = defaultdict(list)
    for r in records:
        by_track[r["track"]].append(r)
    accs = []
    for rs in by_track.values():
        rs.sort(key=lambda r: r["frame"])
        for a, b, c in zip(rs, rs[1:], rs[2:]):
            if b["frame"] - a["frame"] == 1 and c["frame"] - b["frame"] == 1:
                ja, jb, jc = (np.asarray(x[key])[:22] for x in (a, b, c))
                accs.append(np.linalg.norm(ja - 2 * jb + jc, axis=-1).mean() * scale)
    return float(np.mean(accs)) if accs else None


def _round(x: float | None, nd: int = 3) -> float | None:
    return None if x is None else round(x, nd)
