"""Mask2Mesh on real clips from ../shared/data: juggler, two people indoors, parkour.

People come from the int8 YOLO11n-pose weights in ../shared/weights (boxes + IoU tracks, via
privvid.mesh.people); the stage runs mediapipe BlazePose on each person crop, fits, renders.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("smplx")
pytest.importorskip("pyrender")
pytest.importorskip("mediapipe")
pytest.importorskip("ultralytics")

from mesh_helpers import run_windows  # noqa: E402
from privvid.config import MeshConfig  # noqa: E402

SIZE = (432, 240)
FRAMES = 24


@pytest.fixture(scope="module", autouse=True)
def _env(tmp_path_factory):
    saved = {k: os.environ.get(k) for k in ("PRIVVID_CACHE", "YOLO_CONFIG_DIR")}
    os.environ["PRIVVID_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["YOLO_CONFIG_DIR"] = str(tmp_path_factory.mktemp("yolo"))
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def detector(shared_weights):
    from privvid.mesh.people import YoloPoseDetector

    return YoloPoseDetector(shared_weights / "yolo11n-pose_int8.tflite")


def _load(path, detector, frames=FRAMES):
    from privvid.mesh.people import decode

    video = decode(path, SIZE, frames)
    detector.reset()
    dets = [detector(f) for f in video]
    for d in dets:
        d.keypoints = None  # make the stage run its own pose source on each crop
    masks = np.stack([d.union() for d in dets])
    # a stand-in "inpainted" background: a flat colour that is in no real frame
    background = np.zeros_like(video)
    background[..., 2] = 200
    return video, dets, background, masks


def _box_mask(box, shape, pad=0.1):
    x0, y0, x1, y1 = box
    px, py = pad * (x1 - x0), pad * (y1 - y0)
    m = np.zeros(shape, bool)
    m[max(int(y0 - py), 0):int(y1 + py) + 1, max(int(x0 - px), 0):int(x1 + px) + 1] = True
    return m


def test_juggler_mesh_covers_the_person(shared_data, detector):
    from privvid.mesh import MeshStage

    video, dets, background, masks = _load(shared_data / "demo-clips" / "sam2_juggle.mp4", detector)
    stage = MeshStage(MeshConfig())
    out, infos = run_windows(stage, video, dets, background, masks)
    assert out.shape == video.shape and len(infos) == FRAMES
    summary = stage.finish()
    assert summary["frames"] == FRAMES and summary["fitted"] >= 0.9 * summary["person_frames"] > 0
    assert summary["mean_reproj_error_rel"] <= 0.05
    json.dumps(summary)  # sidecar-ready
    json.dumps(stage.info())
    # the sidecar counts each body drawn once, by the mesh it was drawn with
    renderer = stage.info()["renderer"]
    ok = sum(p["status"] == "ok" for info in infos for p in info["people"])
    assert renderer["multisample"] == 0 and sum(renderer["bodies_by_faces"].values()) == ok > 0
    # no dark outline: every drawn pixel is at least the ambient grey (a multisampled edge blends with black)
    from privvid.mesh.render import AMBIENT, GREY

    drawn_px = np.concatenate([out[t][(out[t] != background[t]).any(-1)] for t in range(FRAMES)])
    assert len(drawn_px) and drawn_px.min() >= int(AMBIENT * GREY[0] * 255)
    for t in range(FRAMES):
        drawn = (out[t] != background[t]).any(-1)
        if not len(dets[t]):
            assert not drawn.any()
            continue
        box = _box_mask(dets[t].boxes[0], drawn.shape)
        if infos[t]["people"][0]["status"] == "ok":
            # the rendered silhouette lies on the detected person and fills a good part of the box
            assert (drawn & box).sum() >= 0.95 * drawn.sum()
            x0, y0, x1, y1 = dets[t].boxes[0]
            assert drawn.sum() >= 0.2 * (x1 - x0) * (y1 - y0)
            ys = np.nonzero(drawn)[0]
            assert (ys.max() - ys.min()) >= 0.7 * (y1 - y0)
        # everything outside the drawn body is the background, never the original frame
        assert (out[t][~drawn] == background[t][~drawn]).all()
    stage.close()


def test_two_people_params_reload_through_smplx(shared_data, detector, tmp_path):
    import smplx
    import torch

    from privvid.mesh import MeshStage

    video, dets, background, masks = _load(
        shared_data / "demo-clips" / "mmaction2_demo_skeleton_two_people.mp4", detector)
    assert min(len(d) for d in dets) == 2
    stage = MeshStage(MeshConfig())
    out, infos = run_windows(stage, video, dets, background, masks)
    summary = stage.finish()
    assert summary["tracks"] == 2 and summary["fitted"] >= 0.9 * summary["person_frames"]
    # each person gets their own body: both boxes receive rendered pixels
    for t in (0, FRAMES - 1):
        drawn = (out[t] != background[t]).any(-1)
        for box in dets[t].boxes:
            x0, y0, x1, y1 = box.astype(int)
            assert drawn[y0:y1, x0:x1].mean() > 0.15

    path = tmp_path / "two.params.npz"
    stage.save_params(path)
    with np.load(path, allow_pickle=False) as p:   # plain numpy, no privvid needed
        data = {k: p[k] for k in p.files}
    meta = json.loads(str(data["meta"]))
    assert len(set(data["track_id"].tolist())) == 2
    n = len(data["frame"])
    recorded = meta["body_model"]["body_model_path"]
    assert not Path(recorded).is_absolute() or not recorded.startswith(str(Path.home()) + "/")   # ~/... there
    model = smplx.SMPLX(os.path.expanduser(recorded), use_pca=False, num_betas=data["betas"].shape[1],
                        flat_hand_mean=False, ext="npz")
    t = lambda k: torch.tensor(data[k], dtype=torch.float32)  # noqa: E731
    with torch.no_grad():
        res = model(global_orient=t("global_orient"), body_pose=t("body_pose"), transl=t("transl"),
                    betas=t("betas"), jaw_pose=torch.zeros(n, 3), leye_pose=torch.zeros(n, 3),
                    reye_pose=torch.zeros(n, 3), left_hand_pose=torch.zeros(n, 45),
                    right_hand_pose=torch.zeros(n, 45), expression=torch.zeros(n, 10))
    np.testing.assert_allclose(res.joints[:, :55].numpy(), data["joints"], atol=1e-4)
    # the reloaded joints project onto the rendered body in the frame they belong to
    k = data["camera_intrinsics"]
    j = res.joints[:, [0, 3, 6, 9, 12]].numpy()  # pelvis and spine: inside the silhouette
    uv = np.stack([k[0, 0] * j[..., 0] / j[..., 2] + k[0, 2], k[1, 1] * j[..., 1] / j[..., 2] + k[1, 2]], -1)
    hits = []
    for row in range(n):
        drawn = (out[data["frame"][row]] != background[data["frame"][row]]).any(-1)
        for u, v in uv[row]:
            u, v = int(round(u)), int(round(v))
            hits.append(0 <= v < drawn.shape[0] and 0 <= u < drawn.shape[1] and drawn[v, u])
    assert np.mean(hits) > 0.95
    stage.close()


class _FailingPose:
    """Wraps a pose source and fails on chosen calls (simulates a pose/fit failure)."""

    def __init__(self, inner, fail_every=3):
        self.inner, self.fail_every, self.calls = inner, fail_every, 0
        self.name = "failing"

    def reset(self):
        self.inner.reset()

    def __call__(self, frame, box, track_id=-1, frame_index=None):
        self.calls += 1
        res = self.inner(frame, box, track_id, frame_index)
        if self.calls % self.fail_every == 0:
            raise RuntimeError("simulated failure")
        return res

    def info(self):
        return {"name": self.name}


def test_parkour_failed_person_stays_inpainted(shared_data, detector):
    from privvid.mesh import MeshStage
    from privvid.mesh.pose import MediapipePose

    video, dets, background, masks = _load(shared_data / "demo-clips" / "propainter_test-sample1.mp4", detector)
    stage = MeshStage(MeshConfig(), pose_source=_FailingPose(MediapipePose()))
    out, infos = run_windows(stage, video, dets, background, masks)
    failed = [t for t, i in enumerate(infos) if i["people"] and all(p["status"] == "failed" for p in i["people"])]
    ok = [t for t, i in enumerate(infos) if any(p["status"] == "ok" for p in i["people"])]
    assert failed and ok
    for t in failed:
        assert (out[t] == background[t]).all()       # the person region is the inpainted background
        assert (masks[t]).any()
    for t in ok:
        drawn = (out[t] != background[t]).any(-1)
        assert drawn.any()
        # wherever the output differs from the background it is grey mesh, not person pixels
        px = out[t][drawn].astype(int)
        assert np.abs(px[:, 0] - px[:, 2]).max() <= 3
    stage.close()


def test_yolo_pose_source(shared_data, shared_weights, detector):
    from privvid.mesh import MeshStage

    video, dets, background, masks = _load(shared_data / "demo-clips" / "sam2_juggle.mp4", detector, frames=8)
    stage = MeshStage(MeshConfig(pose_backend="yolo", pose_weights=shared_weights / "yolo11n-pose_int8.tflite"))
    out, infos = run_windows(stage, video, dets, background, masks, window=8)
    summary = stage.finish()
    assert stage.info()["pose_source"]["name"] == "yolo"
    assert summary["fitted"] >= 6 and summary["mean_reproj_error_rel"] <= 0.08
    assert (out != background).any()
    stage.close()


# ---------------------------------------------------------------------------------------------
# The body follows the person: the pipeline's own detector (privvid.detect with the settings mesh mode
# gives it: the ssd detector's pose-model instances and their landmarks) feeds the stage exactly as
# `privvid anonymize --mode mesh` does (detections, tracks and removal masks from build_mask_stream).

FOLLOW_CLIPS = {"sam2_juggle.mp4": 48, "mmaction2_demo_skeleton_two_people.mp4": 60}  # 60: past the hug (~50)


@pytest.fixture(scope="module")
def followed(shared_data):
    from privvid.config import AnonymizeConfig
    from privvid.detect import build_mask_stream
    from privvid.mesh import MeshStage
    from privvid.mesh.people import decode

    stage = MeshStage(MeshConfig())
    results = {}
    for name, n in FOLLOW_CLIPS.items():
        video = decode(shared_data / "demo-clips" / name, SIZE, n)
        pairs = build_mask_stream(AnonymizeConfig(mode="mesh").resolved().detect).run(video)
        dets = [d for d, _ in pairs]
        removal = np.stack([r for _, r in pairs])
        background = np.zeros_like(video)
        background[..., 2] = 200
        stage.reset()
        out, infos = run_windows(stage, video, dets, background, removal, window=24)
        records = [r for r in stage._records if r["ok"] and "joints" in r]
        results[name] = dict(video=video, dets=dets, removal=removal, background=background, out=out,
                             infos=infos, records=records, camera=dict(stage._camera), summary=stage.finish())
    stage.close()
    return results


@pytest.mark.parametrize("clip", sorted(FOLLOW_CLIPS))
def test_fitted_arms_follow_the_detected_elbows_and_wrists(followed, clip):
    """The visible BlazePose elbows and wrists (visibility >= 0.5) have the rendered body's elbow /
    wrist joint (smplx output, projected with the stage camera) within 8% of the person box height
    (at least 98% of them; none beyond 12%; 4% on average). Measured: juggler worst 2.9%, two
    people mean 2.8%, worst 9.4% (one hidden elbow in the hug). The previous fit, which left the
    arms near the rest pose, missed them by 9% on average and up to 20% on the juggler and up to
    14.7% on the two people."""
    from privvid.mesh.metrics import group_errors

    r = followed[clip]
    assert len(r["records"]) >= 0.9 * len(r["video"])      # the person is fitted in (almost) every frame
    # mesh mode's detector gives the landmarks (its pose run for the instance): the stage posed the people
    # from them, not from a pose run of its own (measured: juggler 48 of 48 person-frames, two men 131)
    assert r["summary"]["landmarks_from_detector"] >= 0.9 * len(r["records"])
    err = group_errors(r["records"], r["camera"])
    arms = err["arms"]
    assert len(arms) >= 2 * len(r["records"])               # at least half the elbows/wrists were visible
    within = float((arms <= 0.08).mean())
    assert within >= 0.98, f"only {within:.1%} of elbows/wrists within 8% (worst {arms.max():.3f})"
    assert arms.mean() <= 0.04
    # in the hug one elbow, half hidden by the other person, is off by ~9%; with the ssd default's boxes
    # (the stage runs its own pose on every person crop) the worst frame measured 12.6% (juggler) and
    # 13.7% (two people) at commit 28838f4, against 9.4% with the mediapipe detector's landmarks; with mesh
    # mode's detector landmarks (commit ce37cb9) 2.7% and 8.5%, means 1.2% and 1.8%
    assert arms.max() <= 0.15
    # hips are placed differently by BlazePose and SMPL-X: looser. With the ssd default's boxes the worst
    # leg frame of the two people (the hug) measured 16.1% at commit 0dcbfee; 9.7% with mesh mode's
    # detector landmarks (ce37cb9)
    for group in ("legs", "torso"):
        assert err[group].mean() <= 0.05 and err[group].max() <= 0.2, group


@pytest.mark.parametrize("clip", sorted(FOLLOW_CLIPS))
def test_rendered_silhouette_matches_the_person(followed, clip):
    """The rendered body covers the person: IoU with the detector's instance mask of the fitted
    person (the tight part of the removal mask) >= 0.5 in every frame and >= 0.6 on average on the
    juggler; a plain, unclothed mannequin cannot reach 1 (clothes, hair and the mask's soft border
    make the person mask wider), and a body whose arms or legs point elsewhere loses the overlap of
    those limbs. The two men (>= 0.4 and >= 0.55): with the selfie instances their masks were the selfie
    model's on crops that hold both of them, so they also covered the space between the men. Measured at commit fa1792e
    (one body per person): juggler mean 0.718, worst 0.626; two men mean 0.570, worst 0.446 (frames
    54-57 of the hug); 0.561 and 0.450 since young bodies give way to the heads and boxes they lie
    on. Before, the same man was drawn up to three times over (duplicate boxes), which widened the
    drawn silhouette: mean 0.616, worst 0.501. With mesh mode's detector settings (commit ce37cb9: the
    pose model's one-person instances and landmarks) juggler mean 0.773, worst 0.687; two men mean 0.645,
    worst 0.525 (57 frames scored). The removal mask itself is dilated
    and unioned over +-2 frames, so its IoU mostly measures that margin; what matters there is that
    the body is drawn only inside it (>= 97% of the rendered pixels)."""
    from privvid.mesh.metrics import iou

    r = followed[clip]
    ious = []
    for t, info in enumerate(r["infos"]):
        ok = [k for k, p in enumerate(info["people"]) if p["status"] == "ok"]
        drawn = (r["out"][t] != r["background"][t]).any(-1)
        if not ok:
            assert not drawn.any()
            continue
        assert (drawn & r["removal"][t]).sum() >= 0.97 * drawn.sum()
        det = r["dets"][t]
        # the instance mask is one person's own (BlazePose segmentation) only where the detector ran its
        # pose model on that person (with mesh mode's ssd settings, up to 4 large people a frame); where it
        # has no confident landmarks for them it can be a selfie-segmentation blob holding both people of
        # the hug, which no single body matches, and the frame is not scored
        if det.keypoints is not None and any((det.keypoints[k][:, 2] >= 0.5).sum() < 6 for k in ok):
            continue
        ious.append(iou(drawn, np.any([det.masks[k] for k in ok], axis=0)))
    assert len(ious) >= 0.4 * len(r["video"])
    worst, mean = (0.5, 0.6) if clip == "sam2_juggle.mp4" else (0.4, 0.55)
    assert min(ious) >= worst, f"worst frame IoU {min(ious):.3f}"
    assert np.mean(ious) >= mean, f"mean IoU {np.mean(ious):.3f}"


def test_one_body_follows_each_person_across_track_switches(followed):
    """The SSD follows the two men on tracks that change in the hug (measured: 5 track ids in 60 frames
    for two men). Each person keeps one body (one fitted shape and smoothing history) all along:
    measured, each man's body in 60 of 60 frames; before bodies were passed on, each track had a body
    of its own. The juggler stays on one track and one body (48 of 48 frames; until the tiles rested
    on clips of big people, 2026-12-06, the tiles' chest-down box and the whole body took turns on two
    tracks, 22 and 26 frames, and the body was handed over between them)."""
    from collections import Counter

    r = followed["sam2_juggle.mp4"]
    frames = len(r["video"])
    bodies = Counter(p["body"] for info in r["infos"] for p in info["people"] if p["status"] == "ok")
    assert bodies.most_common(1)[0][1] >= 0.95 * frames, bodies
    r = followed["mmaction2_demo_skeleton_two_people.mp4"]
    ok = [p for info in r["infos"] for p in info["people"] if p["status"] == "ok"]
    tracks = Counter(p["track_id"] for p in ok)
    assert len(tracks) >= 3, tracks            # more tracks than men: the situation this test is about
    bodies = Counter(p["body"] for p in ok)
    assert len(bodies) >= 2 and all(n >= 0.95 * len(r["video"]) for _, n in bodies.most_common(2)), bodies


def test_rendered_body_is_plain_neutral_grey(followed):
    """Mask2Mesh requirement: no skin tone or texture. Every rendered pixel is grey (R = G = B
    within rounding), the mesh has no texture coordinates or colours of its own, and the shading
    spans a range of greys (it is lit, not a flat sticker)."""
    r = followed["sam2_juggle.mp4"]
    drawn = (r["out"] != r["background"]).any(-1)
    px = r["out"][drawn].astype(int)
    assert len(px) > 1000
    assert np.abs(px[:, 0] - px[:, 1]).max() <= 2 and np.abs(px[:, 1] - px[:, 2]).max() <= 2
    assert px[:, 0].max() - px[:, 0].min() >= 40


def test_two_people_standing_close_each_get_a_body(followed, detector):
    """Issue 3's 'replaces every person' on the clip where it used to fail: the two men stand close
    (one selfie blob) and hug from frame ~50. With the default detector feeding the stage, both
    men are fitted in (almost) every frame on two tracks, each is drawn once, and each man found by an independent
    reference (the int8 YOLO11n-pose boxes) has a rendered body over him: at least 15% of his box
    drawn in every sampled frame. Before the detector's pose cascade the left man got no body."""
    r = followed["mmaction2_demo_skeleton_two_people.mp4"]
    frames = len(r["video"])
    fitted_per_track: dict[int, int] = {}
    for info in r["infos"]:
        for p in info["people"]:
            if p["status"] == "ok":
                fitted_per_track[p["track_id"]] = fitted_per_track.get(p["track_id"], 0) + 1
    assert sorted(fitted_per_track.values())[-2:][0] >= 0.9 * frames, fitted_per_track  # two full tracks
    # one body per man: the SSD also boxes the pair and parts of a man, and each of those crops' pose is one
    # of the men. Measured: two bodies in 60 of 60 frames since a young body gives way to a head or a box it
    # lies on (before: two in 53, three in 6 and four in 1, from boxes on the pair and on a man's half whose
    # guessed limbs lay apart from his; before duplicates were told apart, four bodies in 35 frames)
    bodies = [sum(p["status"] == "ok" for p in info["people"]) for info in r["infos"]]
    assert sum(b == 2 for b in bodies) >= 0.95 * frames and max(bodies) <= 3, bodies
    detector.reset()
    for t in range(0, frames, 6):
        ref = detector(r["video"][t])
        keep = ref.scores >= 0.5
        assert keep.sum() >= 2, f"frame {t}: the reference found {keep.sum()} people"
        drawn = (r["out"][t] != r["background"][t]).any(-1)
        for x0, y0, x1, y1 in ref.boxes[keep].astype(int):
            covered = drawn[max(y0, 0):y1, max(x0, 0):x1].mean()
            assert covered > 0.15, f"frame {t}: person at x {x0}-{x1} has {covered:.0%} of the box drawn"
