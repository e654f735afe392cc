"""Unit tests for privvid.mesh on generated data: body model, kinematics, fitting, rendering, fail-closed."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("smplx")

from mesh_helpers import run_windows  # noqa: E402
from privvid.config import MeshConfig  # noqa: E402
from privvid.detect.base import Detections  # noqa: E402
from privvid.errors import MissingWeights  # noqa: E402
from privvid.mesh import POSE_SOURCES, body_model  # noqa: E402
from privvid.mesh.fit import Fitter, Kinematics  # noqa: E402
from privvid.mesh.pose import PoseResult  # noqa: E402

W, H = 160, 120


@pytest.fixture(scope="session")
def cache(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("privvid-cache")
    old = os.environ.get("PRIVVID_CACHE")
    os.environ["PRIVVID_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("PRIVVID_CACHE", None)
    else:
        os.environ["PRIVVID_CACHE"] = old


@pytest.fixture(scope="session")
def body(cache):
    return body_model.load_body_model()


def test_embedded_model_is_smplx_format_built_once_atomically(body, cache):
    path = body_model.embedded_model_path()
    assert path.parent.parent == cache and path.is_file()
    mtime = path.stat().st_mtime_ns
    assert body_model.embedded_model_path().stat().st_mtime_ns == mtime  # not rebuilt
    assert [p.name for p in path.parent.iterdir()] == [path.name]     # no temp files left behind
    with np.load(path) as data:
        v = data["v_template"].shape[0]
        assert v > 9929
        assert data["J_regressor"].shape == (55, v)
        assert data["weights"].shape == (v, 55)
        np.testing.assert_allclose(data["weights"].sum(1), 1.0, atol=1e-4)
        assert data["shapedirs"].shape[:2] == (v, 3) and data["posedirs"].shape == (v, 3, 486)
    assert body.embedded and body.gender == "neutral" and body.num_vertices == v


def test_embedded_model_reproduces_mannequin_skeleton(body):
    from mannequin import Mannequin

    man = Mannequin("wooden")
    joints = man.joint_transforms(man.rest_pose())[:22, :3, 3]
    np.testing.assert_allclose(body.j_template[:22], joints, atol=2e-3)
    beta = np.zeros(10, np.float32)
    beta[0] = 1.0
    man.reshape(beta)
    shaped = man.joint_transforms(man.rest_pose())[:22, :3, 3]
    predicted = body.j_template[:22] + body.j_shapedirs[:22] @ beta
    # the linear shape space follows the mannequin's (non-linear) shape response closely
    assert np.abs(predicted - shaped).max() < 0.02
    assert np.abs(shaped - joints).max() > 0.02  # and the shape really moves the joints


def test_missing_body_model_names_the_file(tmp_path, cache):
    with pytest.raises(MissingWeights, match="SMPLX_NEUTRAL.npz"):
        body_model.load_body_model(tmp_path)          # a folder without the file
    with pytest.raises(MissingWeights, match="not found at .*nope.npz"):
        body_model.load_body_model(tmp_path / "nope.npz")
    bad = tmp_path / "broken.npz"
    bad.write_bytes(b"not a zip archive")
    with pytest.raises(MissingWeights, match="broken.npz is not a readable .npz file") as caught:
        body_model.load_body_model(bad)
    # numpy reads a file that is no zip as a pickle and offers to load it unsafely: not privvid's advice
    assert "not found" not in str(caught.value) and "allow_pickle" not in str(caught.value)
    assert "zip archive" in str(caught.value)
    objects = tmp_path / "objects.npz"
    np.savez(objects, shapedirs=np.array([{"a": 1}], dtype=object))
    with pytest.raises(MissingWeights, match="could not be loaded as SMPL-X") as caught:
        body_model.load_body_model(objects)
    assert "object arrays (shapedirs) hold pickled data" in str(caught.value)
    other = tmp_path / "model.pt"
    other.write_bytes(b"\0" * 16)                     # there, but of a kind privvid does not read
    with pytest.raises(MissingWeights, match="model.pt is not an .npz file") as caught:
        body_model.load_body_model(other)
    assert "not found" not in str(caught.value)


def test_a_body_model_in_the_home_folder_is_recorded_without_the_users_name(body, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "alice"))
    inside = tmp_path / "alice" / "models" / "SMPLX_NEUTRAL.npz"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(body.path.read_bytes())
    info = body_model.load_body_model(inside).info()
    assert info["body_model_path"] == info["body_model"] == "~/models/SMPLX_NEUTRAL.npz"
    outside = tmp_path / "shared" / "SMPLX_NEUTRAL.npz"
    outside.parent.mkdir()
    outside.write_bytes(body.path.read_bytes())
    assert body_model.load_body_model(outside).info()["body_model_path"] == str(outside)
    monkeypatch.setenv("HOME", "/")   # a service account's home: every path would be "in" it
    assert body_model.load_body_model(outside).info()["body_model_path"] == str(outside)


def test_user_model_path_uses_same_smplx_code(body, tmp_path):
    user = tmp_path / "SMPLX_NEUTRAL.npz"
    user.write_bytes(body.path.read_bytes())
    loaded = body_model.load_body_model(tmp_path)
    assert not loaded.embedded and loaded.path == user
    assert type(loaded.smplx_model) is type(body.smplx_model)


def test_kinematics_match_smplx(body, rng):
    kin = Kinematics(body)
    n = 4
    go = torch.tensor(rng.normal(0, 0.5, (n, 3)), dtype=torch.float32)
    bp = torch.tensor(rng.normal(0, 0.3, (n, 21, 3)), dtype=torch.float32)
    tr = torch.tensor(rng.normal(0, 1.0, (n, 3)), dtype=torch.float32)
    betas = torch.tensor(rng.normal(0, 1.0, (n, 10)), dtype=torch.float32)
    _, joints = kin(go, bp, tr, betas)
    out = body.smplx_model(global_orient=go, body_pose=bp.reshape(n, 63), transl=tr, betas=betas,
                           jaw_pose=torch.zeros(n, 3), leye_pose=torch.zeros(n, 3), reye_pose=torch.zeros(n, 3),
                           left_hand_pose=torch.zeros(n, 45), right_hand_pose=torch.zeros(n, 45),
                           expression=torch.zeros(n, 10))
    np.testing.assert_allclose(joints.numpy(), out.joints[:, :22].detach().numpy(), atol=1e-4)


def _synthetic_rows(body, fitter, rng, frames=12, noise_px=0.0):
    """Landmarks of a known body walking across the view, as a pose source would give them."""
    kin = fitter.kin
    t = np.arange(frames)
    go = np.tile(np.array([np.pi, 0.0, 0.0]), (frames, 1)) + np.stack([0 * t, 0.02 * t, 0 * t], 1)
    bp = np.zeros((frames, 21, 3))
    bp[:, 3, 0] = 0.4 + 0.3 * np.sin(t / 3)      # left knee bends
    bp[:, 17, 1] = -0.8                           # left elbow bends
    tr = np.stack([-0.3 + 0.05 * t, 0.1 + 0 * t, 3.0 + 0 * t], 1)
    betas = np.zeros((frames, 10))
    with torch.no_grad():
        pts, joints = kin(*(torch.tensor(a, dtype=torch.float32) for a in (go, bp, tr, betas)))
    uv = fitter.project(pts).numpy() + rng.normal(0, noise_px, (frames, 33, 2))
    rows = []
    for i in range(frames):
        img = np.concatenate([uv[i], np.ones((33, 1))], 1).astype(np.float32)
        img[~kin.available, 2] = 0.0
        world = pts[i].numpy() - 0.5 * (pts[i, 23].numpy() + pts[i, 24].numpy())
        ys = uv[i, kin.available, 1]
        rows.append({"track": 7, "frame": i, "image": img, "world": world.astype(np.float32),
                     "box_h": float(ys.max() - ys.min())})
    return rows, joints.numpy()


def test_fit_recovers_a_known_body(body, rng):
    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2, smooth=1.0)
    rows, true_joints = _synthetic_rows(body, fitter, rng)
    fits = fitter.fit(rows, {})
    err_rel = np.array([f["err_rel"] for f in fits])
    assert err_rel.max() < 0.05
    joints = np.stack([f["joints"] for f in fits])
    # 3D joints (relative to the pelvis) close to the truth
    rel = joints - joints[:, :1]
    true_rel = true_joints - true_joints[:, :1]
    assert np.linalg.norm(rel - true_rel, axis=-1).mean() < 0.05


def _arms_down_walk(fitter, frames=12):
    """Landmarks (image px, world m) of the synthetic walk with both arms hanging down."""
    t = np.arange(frames)
    go = np.tile(np.array([np.pi, 0.0, 0.0]), (frames, 1)) + np.stack([0 * t, 0.02 * t, 0 * t], 1)
    bp = np.zeros((frames, 21, 3))
    bp[:, 15, 2], bp[:, 16, 2] = -1.2, 1.2
    bp[:, 17, 1] = -0.3
    tr = np.stack([-0.3 + 0.05 * t, 0.1 + 0 * t, 3.0 + 0 * t], 1)
    with torch.no_grad():
        pts, _ = fitter.kin(*(torch.tensor(a, dtype=torch.float32) for a in (go, bp, tr, np.zeros((frames, 10)))))
    return fitter.project(pts).numpy(), pts.numpy()


def test_arms_follow_2d_only_landmarks_with_smoothing_on(body, rng):
    """2D-only landmarks (the yolo pose source, or a detector without world landmarks) of a person
    with the arms hanging down: with smoothing on, the fitted elbows and wrists must come down to
    them, not stay spread as in the mannequin's rest pose (the 'A-pose' bug)."""
    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2, smooth=1.0)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=12)
    # same walk, arms down: shoulders rotated towards the body (left about -z, right about +z)
    uv, _ = _arms_down_walk(fitter)
    for i, r in enumerate(rows):
        r["image"][:, :2] = uv[i]
        r["world"] = None
    states: dict = {}
    fits = fitter.fit(rows[:6], states) + fitter.fit(rows[6:], states)
    arms = [13, 14, 15, 16]
    for r, f in zip(rows, fits):
        got = fitter.project(torch.tensor(f["landmarks"][arms])).numpy()
        err = np.linalg.norm(got - r["image"][arms, :2], axis=1) / r["box_h"]
        assert err.max() < 0.04, err


LEFT_ARM_HIDDEN = [13, 15, 17, 19, 21]  # left elbow, wrist and hand landmarks


def test_a_hidden_arm_hangs_down_without_world_landmarks(body, rng):
    """2D-only landmarks with the left arm hidden (confidence 0): nothing observes that arm, so the
    pose prior decides; it must leave the arm hanging at the side (wrist well below the shoulder),
    not stretched out sideways as in the model's T-pose (seen on the two-people clip)."""
    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2, smooth=1.0)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=12)
    uv, _ = _arms_down_walk(fitter)
    for i, r in enumerate(rows):
        r["image"][:, :2] = uv[i]
        r["image"][LEFT_ARM_HIDDEN, 2] = 0.0
        r["world"] = None
    fits = fitter.fit(rows, {})
    for r, f in zip(rows, fits):
        shoulder, wrist = fitter.project(torch.tensor(f["landmarks"][[11, 15]])).numpy()
        assert wrist[1] - shoulder[1] > 0.2 * r["box_h"], (shoulder, wrist)


def test_a_hidden_arm_follows_the_world_landmarks(body, rng):
    """Metric 3D landmarks of a hidden limb are the pose model's guess from the rest of the body:
    with the left arm's confidence at 0 its world landmarks still place it (here stretched out, as
    in the synthetic walk), against the prior's arms-down pull."""
    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2, smooth=1.0)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=12)
    for r in rows:
        r["image"][LEFT_ARM_HIDDEN, 2] = 0.0
    fits = fitter.fit(rows, {})
    for r, f in zip(rows, fits):
        rel = f["landmarks"] - 0.5 * (f["landmarks"][23] + f["landmarks"][24])
        assert np.linalg.norm(rel[[13, 15]] - r["world"][[13, 15]], axis=1).max() < 0.08


def test_smoothing_reduces_jitter_and_carries_across_windows(body, rng):
    from privvid.mesh.stage import jitter

    results = {}
    for smooth in (0.0, 1.0):
        fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2, smooth=smooth)
        rows, _ = _synthetic_rows(body, fitter, np.random.default_rng(1), frames=16, noise_px=2.0)
        states: dict = {}
        fits = fitter.fit(rows[:8], states) + fitter.fit(rows[8:], states)  # two windows
        assert states[7].windows == 2 and states[7].anchor_frames == [14, 15]
        results[smooth] = jitter([{"track": 7, "frame": r["frame"], "joints": f["joints"]}
                                  for r, f in zip(rows, fits)])
    assert results[1.0] < 0.7 * results[0.0]


def test_renderer_draws_body_where_it_projects(body):
    from privvid.mesh.render import MeshRenderer, composite

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    go = np.array([[np.pi, 0, 0]])
    tr = np.array([[0.3, 0.0, 4.0]])
    out = body.smplx_model(global_orient=torch.tensor(go, dtype=torch.float32),
                           transl=torch.tensor(tr, dtype=torch.float32))
    v = out.vertices[0].detach().numpy()
    uv = fitter.project(torch.tensor(v)).numpy()
    r = MeshRenderer(W, H, W, W / 2, H / 2, body.faces)
    try:
        color, cover = r.render([v])
        _, empty = r.render([])
    finally:
        r.close()
    assert not empty.any()
    ys, xs = np.nonzero(cover)
    assert abs(xs.min() - uv[:, 0].min()) <= 2 and abs(xs.max() - uv[:, 0].max()) <= 2
    assert abs(ys.min() - uv[:, 1].min()) <= 2 and abs(ys.max() - uv[:, 1].max()) <= 2
    # neutral grey: no hue
    px = color[cover].astype(int)
    assert np.abs(px[:, 0] - px[:, 1]).max() <= 2 and np.abs(px[:, 1] - px[:, 2]).max() <= 2
    bg = np.full((H, W, 3), 17, np.uint8)
    comp = composite(bg, color, cover)
    assert (comp[~cover] == 17).all() and (comp[cover] == color[cover]).all()


def test_simplified_body_is_drawn_like_the_full_one(body):
    """The drawn mesh is decimated once (48k -> 16k faces for the mannequin); a posed body covers the same
    pixels to within a fraction of a percent, and 0 keeps every face."""
    from privvid.config import ConfigError
    from privvid.mesh.render import MeshRenderer, simplified

    rest = body.smplx_model.v_template.numpy()
    index, faces = simplified(rest, body.faces, 16000)
    assert len(body.faces) > 16000 >= len(faces) > 12000
    assert faces.min() == 0 and faces.max() == len(index) - 1 and len(np.unique(index)) == len(index)
    full_index, full_faces = simplified(rest, body.faces, 0)
    assert np.array_equal(full_faces, body.faces) and np.array_equal(full_index, np.arange(len(rest)))
    with pytest.raises(ConfigError, match="render_faces"):
        MeshConfig(render_faces=500)
    pose = np.zeros((1, 63), np.float32)
    pose[0, 3 * 0 + 0], pose[0, 3 * 3 + 0], pose[0, 3 * 15 + 2], pose[0, 3 * 17 + 1] = -0.8, 1.0, -0.9, 1.2
    out = body.smplx_model(global_orient=torch.tensor([[np.pi, 0.3, 0]], dtype=torch.float32),
                           body_pose=torch.tensor(pose), transl=torch.tensor([[0.1, 0.0, 3.0]]))
    v = out.vertices[0].detach().numpy()
    covers = []
    for drawn, f in ((None, body.faces), (index, faces)):
        r = MeshRenderer(W, H, W, W / 2, H / 2, f, vertex_index=drawn)
        try:
            covers.append(r.render([v])[1])
        finally:
            r.close()
    full, small = covers
    assert full.sum() > 500
    assert (full & small).sum() / (full | small).sum() > 0.98


def test_small_bodies_are_drawn_with_fewer_faces(body):
    """A body at most 80 px on screen (its longer side) is drawn with a quarter of the faces, at most 160 px
    with half, larger (or reaching behind the camera) with all of them; each covers the pixels the full mesh
    covers. Levels never go under 1000 faces nor repeat; 0 faces (every face): one mesh."""
    from privvid.mesh.render import MeshRenderer, detail_levels

    rest = body.smplx_model.v_template.numpy()
    (index, faces), coarser = detail_levels(rest, body.faces, 16000)
    assert [px for px, _, _ in coarser] == [80.0, 160.0]
    quarter, half = (len(f) for _, _, f in coarser)
    assert 16000 >= len(faces) > 12000 and 1000 <= quarter <= len(faces) // 4 < half <= len(faces) // 2
    assert detail_levels(rest, body.faces, 0)[1] == []
    assert [(px, len(f)) for px, _, f in detail_levels(rest, body.faces, 1500)[1]] == [(160.0, 1000)]
    w, h = 320, 240
    lod = MeshRenderer(w, h, w, w / 2, h / 2, faces, vertex_index=index, coarser=coarser)
    full = MeshRenderer(w, h, w, w / 2, h / 2, faces, vertex_index=index)
    try:
        # the size is the longer side: 150 px wide and 30 px tall (someone lying down) is not small
        flat = np.stack(np.meshgrid(np.linspace(-75, 75, 20) * 5 / w, np.linspace(-15, 15, 5) * 5 / w),
                        -1).reshape(-1, 2)
        assert len(lod._level(np.c_[flat, np.full(len(flat), 5.0)]).faces) == half
        # upright near / mid / far, and one vertex behind the camera
        for z, n in ((2.8, len(faces)), (5.0, half), (9.0, quarter), (-1.0, len(faces))):
            out = body.smplx_model(global_orient=torch.tensor([[np.pi, 0.2, 0.0]], dtype=torch.float32),
                                   transl=torch.tensor([[0.1, 0.0, 5.0 if z < 0 else z]], dtype=torch.float32))
            v = out.vertices[0].detach().numpy()
            if z < 0:
                v = v.copy()
                v[0, 2] = -0.5
            before = dict(lod.drawn)
            small, big = lod.render([v])[1], full.render([v])[1]
            assert lod.drawn[n] == before[n] + 1 and sum(lod.drawn.values()) == sum(before.values()) + 1
            if z < 0:
                continue
            ys, xs = np.flatnonzero(big.any(axis=1)), np.flatnonzero(big.any(axis=0))
            size = max(ys[-1] - ys[0], xs[-1] - xs[0])
            assert (n == len(faces)) == (size > 160) and (n == quarter) == (size <= 80)
            assert (small & big).sum() / (small | big).sum() > 0.95
    finally:
        lod.close()
        full.close()


def test_body_edges_are_not_blended_with_the_black_clear_colour(body):
    """Without multisampling (the default) every drawn pixel is the body's own shade, at least the ambient
    grey; pyrender's 4 samples blend the edge pixels with the black clear colour (a dark outline)."""
    from privvid.mesh.render import AMBIENT, GREY, MeshRenderer

    out = body.smplx_model(global_orient=torch.tensor([[np.pi, 0, 0]], dtype=torch.float32),
                           transl=torch.tensor([[0.0, 0.0, 3.0]], dtype=torch.float32))
    v = out.vertices[0].detach().numpy()
    floor = int(AMBIENT * GREY[0] * 255)
    lowest = {}
    for samples in (0, 4):
        r = MeshRenderer(W, H, W, W / 2, H / 2, body.faces, samples=samples)
        try:
            color, cover = r.render([v])
            color, cover = r.render([v])   # the framebuffer made on the first render is kept
        finally:
            r.close()
        assert cover.sum() > 500
        lowest[samples] = int(color[cover].min())
    assert lowest[0] >= floor > lowest[4]


def test_renderer_vertex_normals_point_outwards():
    """Vertex normals (area-weighted sum of the faces around each vertex): on an octahedron centred
    at the origin with outward-wound faces every vertex normal is the vertex direction itself."""
    from privvid.mesh.render import MeshRenderer

    v = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], np.float32) * 2.0
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])
    r = MeshRenderer(W, H, W, W / 2, H / 2, faces)
    try:
        n = r._normals(v)
    finally:
        r.close()
    np.testing.assert_allclose(n, v / 2.0, atol=1e-6)


class _ScriptedPose:
    """A pose source that returns given landmarks, or fails on chosen frames."""

    name = "scripted"

    def __init__(self, rows, fail_frames=(), raise_frames=()):
        self.rows = rows
        self.fail, self.raise_ = set(fail_frames), set(raise_frames)
        self.calls = 0

    def reset(self):
        self.calls = 0

    def __call__(self, frame, box, track_id=-1, frame_index=None):
        i = self.calls
        self.calls += 1
        if i in self.raise_:
            raise RuntimeError("pose model crashed")
        if i in self.fail:
            return None
        r = self.rows[i]
        return PoseResult(image=r["image"], world=r["world"])

    def info(self):
        return {"name": self.name}


def _stage_inputs(rows):
    t = len(rows)
    frames = np.zeros((t, H, W, 3), np.uint8)
    frames[..., 0] = 255  # "person pixels": pure red everywhere in the original
    background = np.full((t, H, W, 3), 40, np.uint8)
    dets = []
    for r in rows:
        xy = r["image"][r["image"][:, 2] > 0, :2]
        box = np.array([[*xy.min(0) - 4, *xy.max(0) + 4]], np.float32)
        m = np.zeros((1, H, W), bool)
        x0, y0, x1, y1 = np.clip(box[0], 0, [W, H, W, H]).astype(int)
        m[0, y0:y1, x0:x1] = True
        dets.append(Detections(masks=m, boxes=box, scores=np.ones(1, np.float32),
                               track_ids=np.array([3], np.int64)))
    return frames, dets, background, np.stack([d.union() for d in dets])


def test_stage_fails_closed_and_saves_params(body, rng, tmp_path):
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=10)
    source = _ScriptedPose(rows, fail_frames={2}, raise_frames={5})
    stage = MeshStage(MeshConfig(min_frames=1), pose_source=source)
    frames, dets, background, masks = _stage_inputs(rows)
    out1, info1 = stage(frames[:6], dets[:6], background[:6], masks[:6])
    out2, info2 = stage(frames[6:], dets[6:], background[6:], masks[6:])
    out = np.concatenate([out1, out2])
    infos = info1 + info2
    assert out.shape == frames.shape and [i["frame"] for i in infos] == list(range(10))
    # never a single original (red) pixel; failed frames are exactly the background
    assert not ((out[..., 0] == 255) & (out[..., 1] == 0) & (out[..., 2] == 0)).any()
    for t in (2, 5):
        assert infos[t]["people"][0]["status"] == "failed"
        assert (out[t] == background[t]).all()
    assert "pose" in infos[5]["people"][0]["reason"]
    ok = [t for t in range(10) if t not in (2, 5)]
    for t in ok:
        p = infos[t]["people"][0]
        assert p["status"] == "ok" and p["reproj_error_rel"] < 0.05
        drawn = (out[t] != background[t]).any(-1)
        assert drawn.any() and (drawn & ~masks[t]).sum() < 0.1 * drawn.sum()
    summary = stage.finish()
    assert summary["fitted"] == 8 and summary["failed"] == 2 and summary["frames"] == 10
    assert summary["mean_reproj_error_rel"] < 0.05 and summary["jitter_mm"] is not None

    path = tmp_path / "clip.params.npz"
    stage.save_params(path)
    with np.load(path, allow_pickle=False) as p:
        assert p["frame"].tolist() == ok and set(p["track_id"].tolist()) == {3}
        n = len(ok)
        assert p["body_pose"].shape == (n, 63) and p["keypoints_2d"].shape == (n, 33, 3)
        k = p["camera_intrinsics"]
        assert k[0, 0] == W and k[0, 2] == W / 2
        # saved joints are the fitted bodies: in front of the camera, shoulders where the landmarks are
        j = p["joints"]
        assert np.isfinite(j).all() and (j[:, :22, 2] > 0).all()
        uv = np.stack([W * j[:, 16:18, 0] / j[:, 16:18, 2] + W / 2, W * j[:, 16:18, 1] / j[:, 16:18, 2] + H / 2], -1)
        kp = p["keypoints_2d"][:, 11:13, :2]
        assert np.abs(uv - kp).max() < 0.05 * max(r["box_h"] for r in rows)
    info = stage.info()
    assert info["pose_source"] == {"name": "scripted"} and info["vertices"] == body.num_vertices
    stage.close()


def test_stage_reset_starts_a_new_clip(body, rng):
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=4)
    stage = MeshStage(MeshConfig(min_frames=1), pose_source=_ScriptedPose(rows))
    frames, dets, background, masks = _stage_inputs(rows)
    stage(frames, dets, background, masks)
    assert stage.finish()["frames"] == 4
    stage.reset()
    _, info = stage(frames[:2], dets[:2], background[:2], masks[:2])
    assert info[0]["frame"] == 0 and stage.finish()["frames"] == 2
    stage.close()


def test_pose_sources_registered_and_yolo_needs_weights(tmp_path):
    assert POSE_SOURCES.names() == ["mediapipe", "yolo"]
    with pytest.raises(MissingWeights, match="missing.tflite"):
        POSE_SOURCES.create("yolo", tmp_path / "missing.tflite")


def test_mediapipe_pose_keeps_its_graphs_in_a_crowd(monkeypatch):
    """Twelve people on every frame with eight tracker graphs: the first eight get one each, the rest
    share the still-image graph; no graph is rebuilt frame after frame (it was: 272 builds of ~75 ms on
    80 frames of schoolgirls). A tracker whose person has been gone longer than ``stale`` frames goes to
    a newcomer."""
    pytest.importorskip("mediapipe")
    from privvid.mesh.pose import MediapipePose

    built = []

    class Graph:
        def __init__(self, static):
            self.static, self.closed = static, False
            built.append(self)

        def close(self):
            self.closed = True

    pose = MediapipePose(max_tracks=8, stale=5)
    monkeypatch.setattr(pose, "_make", lambda static: Graph(static))
    for frame in range(10):
        for tid in range(12):
            graph = pose._tracker(tid, frame)
            assert graph.static == (tid >= 8), (frame, tid)
    assert len(built) == 9 and pose.graphs_built == 9 and not any(g.closed for g in built)
    # people 0-7 leave; newcomer 20 waits for a tracker until one has been unused for more than 5 frames
    for frame in range(10, 20):
        graph = pose._tracker(20, frame)
        assert graph.static == (frame - 9 <= 5), frame
    assert sum(g.closed for g in built) == 1 and not pose._tracker(20, 20).static
    pose.reset()
    assert pose.graphs_built == 0 and not pose._trackers


class _PoseByFrame:
    """A pose source that answers every crop of a frame with that frame's landmarks, as BlazePose does
    for a box on a part of the person (it finds the whole person in the crop)."""

    name = "by-frame"

    def __init__(self, rows):
        self.rows = rows
        self.calls: list[tuple[int, int]] = []

    def reset(self):
        self.calls = []

    def __call__(self, frame, box, track_id=-1, frame_index=None):
        self.calls.append((int(frame_index), int(track_id)))
        r = self.rows[frame_index]
        return PoseResult(image=r["image"], world=r["world"])

    def info(self):
        return {"name": self.name}


@pytest.mark.parametrize("second", ["same box", "part", "overlap"])
def test_one_body_for_a_person_detected_twice(body, rng, second):
    """A second box on the same person (another track, lower score) gives no second body. While its box
    stays within IoU 0.8 of the first one its pose is not looked at again; a box on a part of the person
    (lying in the first one) is posed again only every DUPLICATE_RECHECK frames; a box that only overlaps
    (it could hold someone else) is posed on every frame."""
    from privvid.mesh.stage import DUPLICATE_RECHECK, MeshStage

    frames_n = 2 * DUPLICATE_RECHECK + 1
    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=frames_n)
    frames, dets, background, masks = _stage_inputs(rows)
    twice = []
    for d in dets:
        x0, y0, x1, y1 = d.boxes[0]
        w, h = x1 - x0, y1 - y0
        box = {"same box": [x0, y0 + 0.1 * h, x1, y1],          # the person but their top
               "part": [x0, y0 + 0.25 * h, x1, y1],             # their lower part
               "overlap": [x0 + 0.45 * w, y0, x1 + 0.45 * w, y1]}[second]   # half on them, half beside
        part = np.array(box, np.float32)
        m = np.zeros((1, H, W), bool)
        m[0, int(part[1]):int(part[3]), int(max(part[0], 0)):int(min(part[2], W))] = True
        twice.append(Detections(masks=np.concatenate([d.masks, m]), boxes=np.stack([d.boxes[0], part]),
                                scores=np.array([0.9, 0.4], np.float32), track_ids=np.array([3, 7], np.int64)))
    source = _PoseByFrame(rows)
    stage = MeshStage(MeshConfig(min_frames=1), pose_source=source)
    _, infos = stage(frames, twice, background, masks)
    for info in infos:
        status = {p["track_id"]: p["status"] for p in info["people"]}
        assert status == {3: "ok", 7: "duplicate"}
        assert "track 3" in next(p["reason"] for p in info["people"] if p["track_id"] == 7)
    posed = [t for t, track in source.calls if track == 7]
    if second == "same box":   # posed once, when it was found to be track 3 again, then skipped
        assert posed == [0]
    elif second == "part":
        assert posed == list(range(0, frames_n, DUPLICATE_RECHECK)) == [0, 3, 6]
    else:
        assert posed == list(range(frames_n))
    summary = stage.finish()
    assert summary["fitted"] == frames_n and summary["duplicates"] == frames_n and summary["failed"] == 0
    stage.close()


def _people(frames_dets):
    """Detections per frame from (track id, box) lists; each person's mask is their box."""
    out = []
    for people in frames_dets:
        masks = np.zeros((len(people), H, W), bool)
        for k, (_, box) in enumerate(people):
            x0, y0, x1, y1 = np.clip(np.asarray(box), 0, [W, H, W, H]).astype(int)
            masks[k, y0:y1, x0:x1] = True
        out.append(Detections(masks=masks, boxes=np.asarray([b for _, b in people], np.float32).reshape(-1, 4),
                              scores=np.linspace(0.9, 0.5, len(people)).astype(np.float32),
                              track_ids=np.asarray([tid for tid, _ in people], np.int64)))
    return out


def test_one_person_on_tracks_that_take_turns_keeps_one_body(body, rng, tmp_path):
    """The detector follows one person on track 3, adds a second box on them (track 7, from the chest down),
    then reports only that box for a while, then only track 3 again, and finally loses both and starts
    track 9 on the same spot. One body is drawn all along, fitted as one (one shape, one smoothing
    history), and the params file names it after the track that started it."""
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=10)
    frames, dets, background, masks = _stage_inputs(rows)
    whole = [d.boxes[0] for d in dets]
    part = [np.array([b[0], b[1] + 0.1 * (b[3] - b[1]), b[2], b[3]], np.float32) for b in whole]
    tracks = [[3], [3], [3, 7], [3, 7], [7], [7], [3], [9], [9], [9]]
    people = _people([[(tid, whole[t] if tid != 7 else part[t]) for tid in ids] for t, ids in enumerate(tracks)])
    stage = MeshStage(MeshConfig(min_frames=1), pose_source=_PoseByFrame(rows))
    _, infos = run_windows(stage, frames, people, background, masks, window=5)
    drawn = [[p["body"] for p in i["people"] if p["status"] == "ok"] for i in infos]
    assert drawn == [[3]] * 10
    assert [p["status"] for p in infos[2]["people"]] == ["ok", "duplicate"]
    summary = stage.finish()
    assert summary["tracks"] == 1 and summary["fitted"] == 10 and set(stage._states) == {3}
    stage.save_params(tmp_path / "p.npz")
    with np.load(tmp_path / "p.npz", allow_pickle=False) as p:
        assert set(p["track_id"].tolist()) == {3} and p["frame"].tolist() == list(range(10))
        # the body, and the detector's track it followed on each frame (track 3's duplicate on frames 2-3)
        assert p["body"].tolist() == [3] * 10
        assert p["detector_track"].tolist() == [3, 3, 3, 3, 7, 7, 3, 9, 9, 9]
    stage.close()


def test_a_track_far_away_or_long_after_starts_a_body_of_its_own(body, rng):
    """A new track gets its own body when nobody was drawn where it stands in the last frames, and two
    people never share a body: track 7 carries on track 3's body while track 3 is gone, and when both are
    back as two people (another skeleton beside) the body stays with the track that drew it last. When
    track 7 is gone again, track 3 leaves the body it began a frame ago for the older one it stands on."""
    from privvid.mesh.stage import BODY_TAKEOVER, MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=8)
    frames, dets, background, masks = _stage_inputs(rows)
    whole = [d.boxes[0] for d in dets]
    part = [np.array([b[0], b[1] + 0.1 * (b[3] - b[1]), b[2], b[3]], np.float32) for b in whole]
    gap = BODY_TAKEOVER + 1
    tracks = [[3, 7], [7], [3, 7], [3]] + [[]] * gap + [[9]] * (4 - gap)
    x0, y0, x1, y1 = whole[2]
    beside = np.array([x0 + 4, y0 + 0.3 * (y1 - y0), x1 + 4, y1 + 0.3 * (y1 - y0)], np.float32)
    people = _people([[(tid, part[t] if tid == 7 else beside if t == 2 else whole[t]) for tid in ids]
                      for t, ids in enumerate(tracks)])

    class Beside(_PoseByFrame):
        def __call__(self, frame, box, track_id=-1, frame_index=None):
            res = super().__call__(frame, box, track_id, frame_index)
            if track_id == 3 and frame_index == 2:   # now someone else: a skeleton (and box) 4 px aside, lower
                image = res.image.copy()
                image[:, :2] += [4.0, 0.3 * float(np.ptp(image[image[:, 2] > 0, 1]))]
                return PoseResult(image=image, world=res.world)
            return res

    stage = MeshStage(MeshConfig(min_frames=1), pose_source=Beside(rows))
    _, infos = stage(frames, people, background, masks)
    bodies = [{p["track_id"]: p.get("body") for p in i["people"] if p["status"] == "ok"} for i in infos]
    assert bodies[:2] == [{3: 3}, {7: 3}]
    assert bodies[2][7] == 3 and bodies[2][3] not in (3, 7, None)   # track 3 is someone else now: a new body
    assert bodies[3] == {3: 3}
    assert all(b == {9: 9} for b in bodies[4 + gap:]) and len(bodies[4 + gap:]) == 4 - gap
    stage.close()


def _moved(image, dx, first=11, conf=None):
    """Landmarks ``first``.. moved ``dx`` px sideways (a pose model guessing limbs), the others kept, with
    the face landmarks' confidence set to ``conf`` when given."""
    out = image.copy()
    out[first:, 0] += dx
    if conf is not None:
        out[:11, 2] = conf
    return out


@pytest.mark.parametrize("case", ["beside", "part", "spectator"])
def test_a_new_box_on_part_of_a_person_gives_no_second_body(body, rng, case):
    """A new, lower-scored box on a part of someone already drawn gets limbs the pose model guesses, so
    its skeleton is not the person's (``same_skeleton`` says two people), yet no second body is drawn:
    a box beside the person's centre whose pose has the person's head, or a box inside the person's box
    (here with no head seen). A spectator behind the person, whose small box lies inside the person's
    box too, gets a body of their own."""
    from privvid.mesh.stage import MeshStage, same_skeleton

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=3)
    frames, dets, background, masks = _stage_inputs(rows)
    whole = [d.boxes[0] for d in dets]
    second, images = [], {}
    for t, (r, (x0, y0, x1, y1)) in enumerate(zip(rows, whole)):
        w, h = x1 - x0, y1 - y0
        if case == "beside":
            second.append(np.array([x0 + 0.4 * w, y0, x1 + 0.4 * w, y1], np.float32))
            images[t] = _moved(r["image"], 0.2 * h)
        elif case == "part":
            second.append(np.array([x0, y0 + 0.3 * h, x1, y1], np.float32))
            images[t] = _moved(r["image"], 0.15 * h, conf=0.1)
        else:   # a small skeleton at the top of the person's box
            small = r["image"].copy()
            small[:, :2] = [x0 + 0.3 * w, y0] + 0.25 * (small[:, :2] - [x0, y0])
            second.append(np.array([x0 + 0.3 * w, y0, x0 + 0.55 * w, y0 + 0.25 * h], np.float32))
            images[t] = small
        assert not same_skeleton(rows[t]["image"], images[t])
    people = _people([[(3, whole[t]), (7, second[t])] for t in range(3)])

    class Guessing(_PoseByFrame):
        def __call__(self, frame, box, track_id=-1, frame_index=None):
            res = super().__call__(frame, box, track_id, frame_index)
            return PoseResult(image=images[frame_index], world=None) if track_id == 7 else res

    stage = MeshStage(MeshConfig(min_frames=1), pose_source=Guessing(rows))
    _, infos = stage(frames, people, background, masks)
    status = [{p["track_id"]: p["status"] for p in i["people"]} for i in infos]
    if case == "spectator":
        assert status == [{3: "ok", 7: "ok"}] * 3
    else:
        assert status == [{3: "ok", 7: "duplicate"}] * 3
    stage.close()


def test_people_drawn_for_long_keep_their_bodies_when_their_heads_meet(body, rng):
    """Two people drawn side by side for ``YOUNG_BODY`` frames then hug: their heads meet (the pose
    model puts both on one spot) while their bodies stay apart. They keep two bodies; only a young body
    gives way to a head it lies on."""
    from privvid.mesh.stage import DUPLICATE_DISTANCE, YOUNG_BODY, MeshStage, head_distance

    n = YOUNG_BODY + 2
    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=n)
    other = []
    for t, r in enumerate(rows):
        image = r["image"].copy()
        image[:, 0] -= 35
        if t >= YOUNG_BODY:
            image[:11, :2] = r["image"][:11, :2] + 2.0   # the heads meet
        other.append(image)
    assert head_distance(rows[-1]["image"], other[-1]) < DUPLICATE_DISTANCE   # the heads do meet
    frames, dets, background, masks = _stage_inputs(rows)

    def box(image):
        xy = image[image[:, 2] > 0, :2]
        return np.r_[xy.min(0) - 4, xy.max(0) + 4].astype(np.float32)

    people = _people([[(3, dets[t].boxes[0]), (5, box(other[t]))] for t in range(n)])

    class Two(_PoseByFrame):
        def __call__(self, frame, box, track_id=-1, frame_index=None):
            res = super().__call__(frame, box, track_id, frame_index)
            return PoseResult(image=other[frame_index], world=None) if track_id == 5 else res

    stage = MeshStage(MeshConfig(min_frames=1), pose_source=Two(rows))
    _, infos = run_windows(stage, frames, people, background, masks, window=6)
    drawn = [sorted(p["body"] for p in i["people"] if p["status"] == "ok") for i in infos]
    assert drawn == [[3, 5]] * n
    stage.close()


def test_which_kept_person_a_detection_is():
    """``MeshStage._twin`` rule by rule, on a skeleton whose limbs the second detection has elsewhere."""
    from privvid.mesh.stage import YOUNG_BODY, MeshStage

    a = np.zeros((33, 3), np.float32)
    a[:, 0] = np.linspace(40, 60, 33)
    a[:, 1] = np.linspace(0, 100, 33)
    a[:, 2] = 0.9
    limbs = _moved(a, 30.0)                             # the head kept, the limbs 30% of the height aside
    no_head = _moved(a, 30.0, conf=0.1)
    far = _moved(a, 30.0, first=0)                      # everything aside: someone else

    def det(image, box, age=0, score=0.5, had=1):
        return {"image": image, "box": np.asarray(box, np.float32), "age": age, "score": score, "had": had}

    old = YOUNG_BODY
    kept = [det(a, [30, 0, 70, 100], age=old, score=0.9)]
    twin = MeshStage._twin
    assert twin(kept, det(a, [100, 0, 140, 100], had=2)) is kept[0]            # the same skeleton
    assert twin(kept, det(far, [31, 1, 70, 100], age=old, had=2)) is kept[0]    # the same box (IoU >= 0.9)
    assert twin(kept, det(limbs, [50, 0, 90, 100], had=2)) is kept[0]          # young, its head on the head
    assert twin(kept, det(limbs, [50, 0, 90, 100], age=old, had=2)) is None     # both old: two people
    assert twin(kept, det(limbs, [50, 0, 90, 100], age=old, had=1)) is kept[0]  # old, but the same body
    assert twin(kept, det(no_head, [30, 30, 70, 100], had=2)) is kept[0]       # young, inside the box
    assert twin(kept, det(far, [40, 0, 52, 20], had=2)) is None                # inside, but small: a spectator
    assert twin(kept, det(far, [50, 0, 90, 100], had=2)) is None               # young, beside, another head
    near = _moved(a, 20.0, first=0)                     # head and limbs 20% of the height aside
    assert twin(kept, det(near, [40, 0, 80, 100], had=2)) is kept[0]           # young, its box 75% in the box
    assert twin(kept, det(near, [55, 0, 95, 100], had=2)) is None              # young, beside (38% in): someone else
    assert twin(kept, det(near, [40, 0, 80, 100], age=old, had=2)) is None     # both old: two people close
    # the kept one is the part: a younger or lower-scored box inside the new one's
    part = [det(no_head, [30, 30, 70, 100], age=1, score=0.9, had=3)]
    assert twin(part, det(a[::-1].copy(), [30, 0, 70, 100], age=5, score=0.5, had=4)) is part[0]
    assert twin(part, det(a[::-1].copy(), [30, 0, 70, 100], age=1, score=0.5, had=4)) is None


def test_when_a_duplicate_is_not_posed_again():
    """``MeshStage._still_twin`` rule by rule: a box within IoU 0.8 of its twin's is skipped; a box lying on
    the twin's skeleton is skipped for DUPLICATE_RECHECK - 1 frames in a row, then posed; a box half beside
    the skeleton, or on a body drawn last frame whose track is missing now, is always posed."""
    from types import SimpleNamespace

    from privvid.mesh.stage import DUPLICATE_RECHECK, MeshStage

    a = np.zeros((33, 3), np.float32)
    a[:, 0] = np.linspace(40, 60, 33)
    a[:, 1] = np.linspace(0, 100, 33)
    a[:, 2] = 0.9
    twin = {"image": a, "box": np.array([30, 0, 70, 100], np.float32)}
    same, part, beside = [31, 1, 70, 100], [40, 40, 60, 100], [50, 40, 90, 100]

    def still(state, box, lost=()):
        return MeshStage._still_twin(state, 7, np.asarray(box, np.float32), twin,
                                     [np.asarray(b, np.float32) for b in lost])

    state = SimpleNamespace(_unposed={})
    assert still(state, same) and still(state, same) and still(state, same)   # IoU >= 0.8: never re-posed
    assert [still(state, part) for _ in range(DUPLICATE_RECHECK)] == [True] * (DUPLICATE_RECHECK - 1) + [False]
    assert not still(SimpleNamespace(_unposed={}), beside)
    assert not MeshStage._still_twin(state, 7, np.asarray(same, np.float32), None, [])   # twin not kept
    lost = [[35, 30, 75, 100]]   # someone drawn last frame, their track missing now, on this box
    assert not still(SimpleNamespace(_unposed={}), same, lost)
    assert not still(SimpleNamespace(_unposed={}), part, lost)
    assert still(SimpleNamespace(_unposed={}), part, [[200, 0, 240, 100]])   # a lost body elsewhere


def test_head_distance():
    from privvid.mesh.stage import head_distance

    a = np.zeros((33, 3), np.float32)
    a[:, 1] = np.linspace(0, 100, 33)
    a[:, 2] = 0.9
    b = _moved(a, 30.0)
    assert head_distance(a, b) == 0.0
    b[:11, 0] += 5.0
    assert head_distance(a, b) == pytest.approx(5.0 / 100)
    assert head_distance(a, _moved(a, 0.0, conf=0.1)) == float("inf")   # no head seen


def test_same_skeleton_tells_one_person_from_two(rng):
    from privvid.mesh.stage import same_skeleton

    a = np.zeros((33, 3), np.float32)
    a[:, 0] = rng.uniform(100, 140, 33)
    a[:, 1] = np.linspace(40, 200, 33)
    a[:, 2] = 0.9
    near = a.copy()
    near[:, :2] += rng.normal(0, 2.0, (33, 2))          # the same person, landmarks a few px apart
    beside = a.copy()
    beside[:, 0] += 50                                  # a second person standing next to them
    assert same_skeleton(a, near) and not same_skeleton(a, beside)
    unsure = near.copy()
    unsure[6:, 2] = 0.1                                 # too few landmarks seen by both: not decided
    assert not same_skeleton(a, unsure)


def test_the_landmark_filter_smooths_a_track_and_starts_afresh_after_a_gap(rng):
    from privvid.mesh.pose import LandmarkFilter

    flt = LandmarkFilter(fps=30.0)
    base = np.zeros((33, 3), np.float32)
    base[:, 0] = np.linspace(100, 140, 33)
    base[:, 1] = np.linspace(50, 250, 33)
    base[:, 2] = 0.9
    world = rng.normal(0.0, 0.3, (33, 3)).astype(np.float32)
    first = flt(1, 0, PoseResult(image=base.copy(), world=world.copy()))
    np.testing.assert_array_equal(first.image, base)              # a new track passes as it is
    noisy, noisy_world, out = [], [], []
    for f in range(1, 40):
        img = base.copy()
        img[:, :2] += rng.normal(0.0, 0.5, (33, 2))                # a quarter of 1% of a 200 px person: jitter
        noisy.append(img)
        noisy_world.append(world + rng.normal(0.0, 0.01, (33, 3)))  # 1 cm
        out.append(flt(1, f, PoseResult(image=img, world=noisy_world[-1])))
    err_in = np.abs(np.stack(noisy)[:, :, :2] - base[:, :2]).mean()
    err_out = np.abs(np.stack([r.image for r in out])[:, :, :2] - base[:, :2]).mean()
    assert err_out < 0.7 * err_in                                  # 0.58 with this seed
    assert np.array_equal(out[-1].image[:, 2], noisy[-1][:, 2])    # confidences as given
    world_in = np.abs(np.stack(noisy_world) - world).mean()
    world_out = np.abs(np.stack([r.world for r in out]) - world).mean()
    assert world_out < 0.75 * world_in                             # 0.60 with this seed
    step = base.copy()
    step[:, 0] += 30.0                                             # a real move: followed within a few frames
    followed = [flt(1, f, PoseResult(image=step.copy(), world=None)).image for f in range(40, 45)]
    assert np.abs(followed[-1][:, 0] - step[:, 0]).max() < 1.0
    moved = base.copy()
    moved[:, 0] += 60.0
    late = flt(1, 50, PoseResult(image=moved, world=None))           # not seen on frame 49: no history
    np.testing.assert_array_equal(late.image, moved)
    assert late.world is None
    other = flt(2, 51, PoseResult(image=base.copy(), world=None))    # tracks are filtered apart
    np.testing.assert_array_equal(other.image, base)
    flt(2, 60, PoseResult(image=base.copy(), world=None))
    assert set(flt._state) == {2}                                    # a track gone for good is not kept


def test_the_stage_poses_people_from_the_detectors_landmarks(body, rng):
    """Detections that carry 2D and metric 3D landmarks (``refine=pose``) are fitted from them: the pose
    source is not called for those people."""
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=8)
    frames, dets, background, masks = _stage_inputs(rows)
    for d, r in zip(dets, rows):
        d.keypoints, d.world_keypoints = r["image"][None].copy(), r["world"][None].copy()
    source = _ScriptedPose(rows, fail_frames=set(range(8)))          # would fail every person it is asked for
    stage = MeshStage(MeshConfig(min_frames=1), pose_source=source)
    _, infos = stage(frames, dets, background, masks)
    assert source.calls == 0
    assert [i["people"][0]["status"] for i in infos] == ["ok"] * 8
    assert stage.finish()["landmarks_from_detector"] == 8
    dets[3].world_keypoints = None                                    # 2D only: the pose source is asked
    stage.reset()
    _, infos = stage(frames, dets, background, masks)
    assert source.calls == 1 and infos[3]["people"][0]["status"] == "failed"
    assert stage.finish()["landmarks_from_detector"] == 7


def test_a_person_whose_body_is_not_drawn_carries_no_body_number(body, rng):
    """A person is given a body before the fit; a fit refused after it (here: every third body judged off
    its box) leaves the person 'failed' in the sidecar, without the body number that reads as drawn."""
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=6)
    frames, dets, background, masks = _stage_inputs(rows)
    stage = MeshStage(MeshConfig(min_frames=1), pose_source=_ScriptedPose(rows))
    calls = iter(range(100))
    stage._off_box = lambda verts, box: "off its box" if next(calls) % 3 == 0 else None
    _, infos = stage(frames, dets, background, masks)
    people = [i["people"][0] for i in infos]
    assert [p["status"] for p in people] == ["failed", "ok", "ok"] * 2
    assert all("body" not in p for p in people if p["status"] == "failed")
    assert all(p["body"] == 3 for p in people if p["status"] == "ok")
    stage.close()


def test_a_person_found_in_a_few_frames_only_gets_no_body(body, rng):
    """A body is drawn once its person's fit has passed in min_frames frames, later frames of the window
    included: track 3, in all 10 frames, has a body in every one of them (its first frames too); track 8,
    found in frames 6-8 only (the scene taken for a person, say), is removed without a body and counted
    as brief; with min_frames=1 it gets one."""
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=10)
    frames, dets, background, masks = _stage_inputs(rows)
    whole = [d.boxes[0] for d in dets]
    x0, y0, x1, y1 = whole[0]
    far = [np.array([b[0] + 1.5 * (x1 - x0), b[1], b[2] + 1.5 * (x1 - x0), b[3]], np.float32) for b in whole]

    class Aside(_PoseByFrame):   # track 8 stands 1.5 box widths to the right of track 3
        def __call__(self, frame, box, track_id=-1, frame_index=None):
            res = super().__call__(frame, box, track_id, frame_index)
            if track_id == 8:
                image = res.image.copy()
                image[:, 0] += 1.5 * float(x1 - x0)
                return PoseResult(image=image, world=res.world)
            return res

    people = _people([[(3, whole[t])] + ([(8, far[t])] if 6 <= t <= 8 else []) for t in range(10)])
    for need, brief in ((5, 3), (1, 0)):
        stage = MeshStage(MeshConfig(min_frames=need), pose_source=Aside(rows))
        _, infos = run_windows(stage, frames, people, background, masks, window=5)
        status = [{p["track_id"]: p["status"] for p in i["people"]} for i in infos]
        assert all(s[3] == "ok" for s in status)
        assert [s.get(8) for s in status[6:9]] == ["brief" if need > 1 else "ok"] * 3
        assert all("body" not in p for i in infos for p in i["people"] if p["status"] == "brief")
        if need > 1:
            assert "fewer than min_frames (5)" in infos[7]["people"][1]["reason"]
        summary = stage.finish()
        assert summary["brief"] == summary["brief_never"] == brief and summary["brief_bodies"] == (1 if brief else 0)
        assert summary["fitted"] == 10 + 3 - brief and summary["failed"] == 0
        stage.close()


def test_a_body_refused_off_its_box_does_not_count_towards_min_frames(body, rng):
    """Six frames whose fits pass, five of them refused as off the person's box: the one left is a body
    passed in one frame, short-lived, and is not drawn (it counted six before)."""
    from privvid.mesh.stage import MeshStage

    fitter = Fitter(body, focal=W, cx=W / 2, cy=H / 2)
    rows, _ = _synthetic_rows(body, fitter, rng, frames=6)
    frames, dets, background, masks = _stage_inputs(rows)
    stage = MeshStage(MeshConfig(min_frames=5), pose_source=_ScriptedPose(rows))
    calls = iter(range(100))
    stage._off_box = lambda verts, box: None if next(calls) == 1 else "off its box"
    out, infos = stage(frames, dets, background, masks)
    assert [i["people"][0]["status"] for i in infos] == ["failed", "brief"] + ["failed"] * 4
    assert (out == background).all() and all(i["drawn"] == [] for i in infos)
    summary = stage.finish()
    assert summary["brief"] == summary["brief_never"] == summary["brief_bodies"] == 1
    stage.close()


def test_a_clip_of_many_short_lived_people_gets_a_note():
    """When the person-frames of bodies never drawn as short-lived reach BRIEF_SHARE of those with a body,
    the clip's sidecar says so (the cyclist clip: 79 against 131); a few of them (a crowd's flicker) do not."""
    from types import SimpleNamespace

    from privvid.anonymize.pipeline import _shortfalls
    from privvid.config import BRIEF_SHARE, AnonymizeConfig

    info = SimpleNamespace(frames=80, is_frame_folder=False)
    cfg = AnonymizeConfig(mode="mesh")
    many = {"fitted": 131, "brief": 92, "brief_bodies": 41, "brief_never": 79}
    notes = _shortfalls(info, 80, many, cfg, 0.5)
    assert len(notes) == 1 and notes[0].startswith("short-lived people: 41 people found in fewer than 5 frames")
    assert "(79 person-frames against 131 with one)" in notes[0]
    few = {"fitted": 258, "brief": 60, "brief_bodies": 12, "brief_never": int(BRIEF_SHARE * 258) - 1}
    assert _shortfalls(info, 80, few, cfg, 0.5) == []
    # people who stayed, withheld only at a window's end: no one was left without a body for good
    late = {"fitted": 5, "brief": 2, "brief_bodies": 0, "brief_never": 0}
    assert _shortfalls(info, 80, late, cfg, 0.5) == []
    assert _shortfalls(info, 80, many, AnonymizeConfig(mode="remove"), 0.5) == []
    # no body drawn at all (the renderer failed, --mesh-fallback remove): the fallback's note alone
    none = {"fitted": 0, "brief": 2, "brief_bodies": 1, "brief_never": 2, "fallback_frames": 30}
    assert [n.split(":")[0] for n in _shortfalls(info, 80, none, cfg, 0.5)] == ["mesh fallback"]
    one = {**many, "brief_bodies": 1}
    assert _shortfalls(info, 80, one, cfg, 0.5)[0].startswith("short-lived people: 1 person found")


def test_a_body_lying_across_an_upright_person_is_not_drawn() -> None:
    # vtest at 432x240: the pose model's landmarks on a walker 41 px tall gave a body 61x37 px lying across
    # the frame with a reprojection error of 0.07 of the box height, drawn and flickering
    from types import SimpleNamespace

    from privvid.mesh.stage import MeshStage

    stage = SimpleNamespace(_camera={"focal": 432.0, "cx": 216.0, "cy": 120.0, "width": 432, "height": 240})
    rng = np.random.default_rng(0)
    upright = rng.uniform([-0.25, -0.85, 4.9], [0.25, 0.85, 5.1], (500, 3))   # 0.5 m wide, 1.7 m tall, 5 m away
    lying = upright[:, [1, 0, 2]]                                             # the same body turned on its side
    box = [194.0, 47.0, 238.0, 193.0]                                         # the person: 44 x 146 px
    assert MeshStage._off_box(stage, upright, box) is None
    assert "does not fit the person's box" in MeshStage._off_box(stage, lying, box)
    # a person cut by the frame's edge: only the part on screen counts
    low = upright + [0.0, 1.2, 0.0]
    assert MeshStage._off_box(stage, low, [194.0, 150.0, 238.0, 240.0]) is None
