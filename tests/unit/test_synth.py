"""privvid synth: motions, determinism, resume, refusal, the engine reading the output (small renders)."""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("smplx")
pytest.importorskip("pyrender")

from privvid.errors import BadInput, ConfigError  # noqa: E402
from privvid.synth import MOTIONS, MotionParams, SynthSettings, parse_size, pose_clip, synthesize  # noqa: E402

SMALL = SynthSettings(classes=3, per_class=2, seed=0, frames=8, width=64, height=64)


@pytest.fixture(scope="module")
def renderer():
    from privvid.synth.render import SynthRenderer

    r = SynthRenderer(SMALL.width, SMALL.height)
    yield r
    r.close()


@pytest.fixture(scope="module")
def run_a(tmp_path_factory, renderer) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    summary = synthesize(out, SMALL, renderer=renderer)
    assert (summary.rendered, summary.skipped, summary.clips) == (6, 0, 6)
    return out


def _decoded(out: Path) -> dict[str, np.ndarray]:
    from privvid.io.video import read_frames

    return {p.relative_to(out).as_posix(): np.stack(list(read_frames(p))) for p in sorted(out.glob("*/*.mp4"))}


def test_joint_order_is_smplx():
    from smplx.joint_names import JOINT_NAMES

    from privvid.synth.motions import JOINTS

    assert list(JOINTS) == JOINT_NAMES[:22]


def test_motion_table_and_shapes():
    assert len(MOTIONS) >= 12 and len({m.name for m in MOTIONS}) == len(MOTIONS)
    for m in MOTIONS:
        pose = pose_clip(m, 10, MotionParams(cycles=1.5, phase=0.3, side=-1))
        assert pose.body_pose.shape == (10, 21, 3) and pose.global_orient.shape == (10, 3)
        assert pose.transl.shape == (10, 3) and np.isfinite(pose.body_pose).all()
        assert (pose.transl[:, 1] >= 0).all()          # the lift is above the floor


def test_each_motion_moves_and_differs_from_every_other(renderer):
    """Root-relative joint trajectories (smplx forward of the embedded body): every motion moves, and the
    per-joint mean and spread over a cycle differ between every pair of motions by a margin."""
    feats = {}
    for m in MOTIONS:
        _, j = renderer.forward(pose_clip(m, 16, MotionParams(cycles=1.0)), np.zeros(10))
        rel = j - j[:, :1] * np.array([1.0, 0.0, 1.0])
        assert rel.std(axis=0).max() > 0.08, m.name          # some joint moves by > 8 cm (std)
        feats[m.name] = np.concatenate([rel.mean(0).ravel(), rel.std(0).ravel()])
    gaps = {(a, b): float(np.linalg.norm(feats[a] - feats[b])) for a, b in itertools.combinations(feats, 2)}
    closest = min(gaps, key=gaps.__getitem__)
    assert gaps[closest] > 0.2, (closest, gaps[closest])


def test_side_mirrors_the_body(renderer):
    wave = MOTIONS[0]
    _, left = renderer.forward(pose_clip(wave, 6, MotionParams(side=1)), np.zeros(10))
    _, right = renderer.forward(pose_clip(wave, 6, MotionParams(side=-1)), np.zeros(10))
    # the raised wrist: the left one (joint 20) with side=1, the right one (21) mirrored with side=-1
    assert left[:, 20, 1].min() > left[:, 21, 1].max() and right[:, 21, 1].min() > right[:, 20, 1].max()
    # the mannequin is not exactly symmetric: the same heights within a few centimetres, the other side
    np.testing.assert_allclose(right[:, 21, 1], left[:, 20, 1], atol=0.08)
    assert (left[:, 20, 0] > 0.1).all() and (right[:, 21, 0] < -0.1).all()


def test_same_seed_same_clips_other_seed_other_clips(run_a, tmp_path, renderer):
    b = tmp_path / "b"
    synthesize(b, SMALL, renderer=renderer)
    a_frames, b_frames = _decoded(run_a), _decoded(b)
    assert sorted(a_frames) == sorted(b_frames) and len(a_frames) == 6
    for rel in a_frames:
        assert np.array_equal(a_frames[rel], b_frames[rel]), rel
        assert (run_a / rel).read_bytes() == (b / rel).read_bytes(), rel    # the encoder is deterministic too
    assert (run_a / "synth.json").read_text() == (b / "synth.json").read_text()
    c = tmp_path / "c"
    synthesize(c, replace(SMALL, seed=1), renderer=renderer)
    c_frames = _decoded(c)
    for rel in a_frames:
        assert np.abs(a_frames[rel].astype(int) - c_frames[rel].astype(int)).mean() > 5.0, rel


def test_output_is_an_engine_source(run_a):
    from privvid.engine.data import load_source

    assert (run_a / "classes.txt").read_text().split() == ["wave", "clap", "jump"]
    train, val = load_source(run_a / "train.csv"), load_source(run_a / "val.csv")
    assert len(train.classes) == 3 and len(val.classes) == 3
    assert len(train.samples) + len(val.samples) == 6 and len(val.samples) == 3
    assert {s.path for s in train.samples}.isdisjoint({s.path for s in val.samples})
    assert all(s.path.is_file() for s in train.samples + val.samples)
    folder = load_source(run_a)                         # the class-per-folder tree works as well
    assert sorted(folder.classes) == ["clap", "jump", "wave"] and len(folder.samples) == 6
    doc = json.loads((run_a / "synth.json").read_text())
    assert doc["complete"] and doc["settings"]["seed"] == 0 and doc["settings"]["size"] == [64, 64]
    assert doc["counts"]["wave"] == {"train": 1, "val": 1} and len(doc["clips"]) == 6
    assert {"amplitude", "cycles", "phase", "side"} <= set(doc["clips"][0]["params"])


def test_resume_skips_written_clips(run_a, renderer):
    victim = run_a / "clap" / "clap_0001.mp4"
    keep = run_a / "wave" / "wave_0000.mp4"
    before = keep.stat().st_mtime_ns
    data = victim.read_bytes()
    victim.unlink()
    summary = synthesize(run_a, SMALL, renderer=renderer)
    assert (summary.rendered, summary.skipped) == (1, 5)
    assert victim.read_bytes() == data and keep.stat().st_mtime_ns == before
    assert synthesize(run_a, SMALL, renderer=renderer).rendered == 0


def test_other_settings_refused_unless_overwrite(tmp_path, renderer):
    out = tmp_path / "o"
    small = replace(SMALL, classes=2, frames=4)
    synthesize(out, small, renderer=renderer)
    with pytest.raises(ConfigError, match="seed"):
        synthesize(out, replace(small, seed=5), renderer=renderer)
    with pytest.raises(ConfigError, match="frames"):
        synthesize(out, replace(small, frames=6), renderer=renderer)
    summary = synthesize(out, replace(small, per_class=1, seed=5), overwrite=True, renderer=renderer)
    assert summary.rendered == 2
    assert sorted(p.name for p in out.glob("*/*.mp4")) == ["clap_0000.mp4", "wave_0000.mp4"]   # stale ones gone
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        synthesize(other, small, renderer=renderer)


def test_backgrounds_folder(tmp_path, renderer):
    import cv2

    folder = tmp_path / "bg"
    folder.mkdir()
    img = np.zeros((40, 60, 3), np.uint8)
    img[:] = (0, 200, 0)          # BGR: green
    cv2.imwrite(str(folder / "green.png"), img)
    out = tmp_path / "o"
    synthesize(out, replace(SMALL, classes=2, per_class=1, frames=4, backgrounds=folder), renderer=renderer)
    doc = json.loads((out / "synth.json").read_text())
    assert {c["background"]["kind"] for c in doc["clips"]} == {"file"}
    frames = _decoded(out)["wave/wave_0000.mp4"]
    corner = frames[:, :6, :6].reshape(-1, 3).mean(0)
    assert corner[1] > 150 and corner[0] < 60 and corner[2] < 60


def test_a_run_that_fails_before_any_clip_leaves_nothing_that_binds_the_next(tmp_path, renderer):
    import cv2

    folder = tmp_path / "bg"
    folder.mkdir()
    (folder / "empty.png").touch()
    small = replace(SMALL, classes=2, per_class=1, frames=4, backgrounds=folder)
    with pytest.raises(ConfigError, match="1 empty file"):
        synthesize(tmp_path / "o", small, renderer=renderer)
    (folder / "empty.png").unlink()
    (folder / "junk.png").write_text("not an image")
    with pytest.raises(BadInput, match="not an image"):
        synthesize(tmp_path / "o", small, renderer=renderer)
    assert not (tmp_path / "o").exists()
    (folder / "junk.png").unlink()
    cv2.imwrite(str(folder / "grey.png"), np.full((40, 60, 3), 128, np.uint8))
    # the corrected command runs into the same folder without --overwrite
    assert synthesize(tmp_path / "o", small, renderer=renderer).rendered == 2

    class Broken:   # fails inside the writer, after it made the clip's class folder
        body = renderer.body

        def render(self, *args):
            return [np.zeros((8, 8, 3), np.uint8)]

    plain = replace(SMALL, classes=2, per_class=1, frames=4)
    with pytest.raises(ValueError, match=r"got uint8 \(8, 8, 3\)"):
        synthesize(tmp_path / "p", plain, renderer=Broken())
    assert not (tmp_path / "p").exists()
    assert synthesize(tmp_path / "p", plain, renderer=renderer).rendered == 2


@pytest.mark.parametrize("change", [dict(classes=1), dict(classes=len(MOTIONS) + 1), dict(per_class=0),
                                    dict(width=63), dict(height=8), dict(frames=1), dict(fps=0.0), dict(seed=-1)])
def test_bad_settings_raise_config_error(change, tmp_path):
    with pytest.raises(ConfigError):
        synthesize(tmp_path / "x", replace(SMALL, **change))
    assert not (tmp_path / "x").exists()


def test_cli_bad_settings_exit_2_before_rendering(tmp_path):
    from typer.testing import CliRunner

    from privvid.cli.main import app

    runner = CliRunner()
    listed = runner.invoke(app, ["synth", "--list"])   # the motion table needs no --out
    assert listed.exit_code == 0 and "wave" in listed.output, listed.output
    assert runner.invoke(app, ["synth", "--quiet"]).exit_code == 2
    for args in (["--classes", "1"], ["--per-class", "0"], ["--size", "64x63"], ["--size", "big"]):
        result = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--quiet", *args])
        assert result.exit_code == 2, (args, result.output)
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["synth", "--out", str(tmp_path / "x"), "--quiet", "--size", "64"])
    assert result.exit_code == 2 and "WIDTHxHEIGHT in even numbers" in result.output
    assert "-2x240" not in result.output   # the shared message offered -2 sides, which synth refuses
    with pytest.raises(ConfigError):
        parse_size("112")
