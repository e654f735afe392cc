"""The anonymize pipeline and dataset runner on generated clips with a colour-keyed fake detector."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import av
import numpy as np
import pytest

from fakes import MAGENTA, moving_square_frames, write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig, InpaintConfig

FAKE = DetectConfig(backend="fakes:ColorKeyDetector", dilate=3, temporal=1)


def cfg(mode: str = "remove", **kw) -> AnonymizeConfig:
    return AnonymizeConfig(mode=mode, detect=kw.pop("detect", FAKE), **kw)


def decode(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def magenta_pixels(frame: np.ndarray) -> int:
    return int((np.abs(frame.astype(int) - MAGENTA).sum(axis=2) < 120).sum())


@pytest.fixture
def clip(tmp_path):
    return write_video(tmp_path / "in" / "walk.mp4", moving_square_frames(30), fps=24)


def test_mesh_mode_gives_the_ssd_detector_pose_instances_unless_told_otherwise():
    # mesh mode draws one body per person: the ssd detector's instances come from the pose model there
    def runs(c: AnonymizeConfig) -> dict:
        return c.resolved().detect.options

    assert runs(AnonymizeConfig(mode="mesh")) == {"refine": "pose"}
    assert runs(replace(AnonymizeConfig(), mode="mesh")) == {"refine": "pose"}
    assert runs(AnonymizeConfig()) == {}                                # remove mode: the selfie instances
    assert runs(AnonymizeConfig(mode="blur")) == {}
    mesh = AnonymizeConfig(mode="mesh", detect=DetectConfig(options={"refine": "none", "tiles": "3x2"}))
    assert runs(mesh) == {"refine": "none", "tiles": "3x2"}             # the user's setting wins
    assert runs(AnonymizeConfig(mode="mesh", detect=DetectConfig(options={"tiles": "3x2"}))) == {
        "refine": "pose", "tiles": "3x2"}
    for backend in ("mediapipe", "yolo", "sam"):                        # other backends: their own defaults
        assert runs(AnonymizeConfig(mode="mesh", detect=DetectConfig(backend=backend))) == {}
    # what was asked is kept apart from what the mode adds: a mesh config turned into another mode or
    # backend carries no refine along (sam would refuse it)
    asked = AnonymizeConfig(mode="mesh")
    assert asked.detect.options == {} and runs(replace(asked, mode="remove")) == {}
    assert runs(replace(asked, detect=replace(asked.detect, backend="sam"))) == {}
    assert asked.resolved().resolved() == asked.resolved()
    # the run's fingerprint follows what runs: mesh mode with refine=pose said or not is the same run
    from privvid.anonymize.dataset import params_hash

    said = AnonymizeConfig(mode="mesh", detect=DetectConfig(options={"refine": "pose"}))
    assert params_hash(asked) == params_hash(said) != params_hash(replace(asked, mode="remove"))


@pytest.mark.parametrize("mode", ["remove", "blur", "pixelate", "solid"])
def test_modes_remove_every_person_pixel(tmp_path, clip, mode):
    out = tmp_path / "out"
    summary = anonymize_dataset(clip, out, cfg(mode, save_masks=True))
    assert [o.status for o in summary.outcomes] == ["done"]
    frames = decode(out / "walk.mp4")
    assert len(frames) == 30 and frames[0].shape == (64, 96, 3)
    assert sum(magenta_pixels(f) for f in frames) == 0
    masks = np.load(out / "walk.masks.npz")["masks"]
    assert masks.shape == (30, 64, 96) and masks.dtype == bool
    originals = moving_square_frames(30)
    square = np.stack([magenta_pixels(f) > 0 for f in originals])
    person = np.stack([(np.abs(f.astype(int) - MAGENTA).sum(axis=2) < 90) for f in originals])
    assert square.all() and masks[person].all(), "every person pixel must be in the saved mask"
    side = json.loads((out / "walk.json").read_text())
    assert side["mode"] == mode and side["output"]["frames"] == 30 and side["output"]["audio"] is False
    assert side["input"]["sha256"] and len(side["coverage"]["per_frame"]) == 30
    assert 0 < side["coverage"]["min"] <= side["coverage"]["mean"] <= side["coverage"]["max"] < 0.2
    assert side["coverage"]["frames_without_person"] == 0
    assert {"decode", "detect", "compose", "encode", "total"} <= set(side["timings"])


def test_solid_mode_paints_the_mask(tmp_path, clip):
    out = tmp_path / "out"
    anonymize_dataset(clip, out, cfg("solid", solid_color=(0, 255, 0), save_masks=True))
    frame = decode(out / "walk.mp4")[10]
    mask = np.load(out / "walk.masks.npz")["masks"][10]
    inner = np.zeros_like(mask)
    ys, xs = np.nonzero(mask)
    inner[ys.min() + 3: ys.max() - 3, xs.min() + 3: xs.max() - 3] = True
    assert np.abs(frame[inner].astype(int) - [0, 255, 0]).mean() < 20


def test_remove_restores_background(tmp_path, clip):
    """The square walks, so the background under it is seen in other frames: propagation
    must bring it back much closer than the person colour."""
    out = tmp_path / "out"
    anonymize_dataset(clip, out, cfg("remove", save_masks=True))
    frames = decode(out / "walk.mp4")
    originals = moving_square_frames(30)
    later = originals[-1]  # square is at the right end, so the left part is clean background
    truth_region = np.zeros(later.shape[:2], bool)
    truth_region[24:40, 4:20] = True  # where the square stood in frame 0
    error = np.abs(frames[0][truth_region].astype(int) - later[truth_region].astype(int)).mean()
    person_error = np.abs(MAGENTA.astype(int) - later[truth_region].astype(int)).mean()
    assert error < person_error / 4


def test_injected_backend_failure_writes_nothing(tmp_path, clip):
    out = tmp_path / "out"
    summary = anonymize_dataset(clip, out, cfg(detect=replace(FAKE, backend="fakes:FailingDetector")))
    [outcome] = summary.outcomes
    assert outcome.status == "failed" and "injected backend failure" in outcome.reason
    assert [p.name for p in out.iterdir()] == [".privvid"], "a failed clip leaves no file under out/"
    record = json.loads((out / ".privvid" / "quarantine.jsonl").read_text().splitlines()[0])
    assert record["relpath"] == "walk" and "injected" in record["reason"]


def test_invalid_backend_output_is_quarantined(tmp_path, clip):
    out = tmp_path / "out"
    bad = cfg(inpaint=InpaintConfig(backend="fakes:WrongShapeInpainter"))
    [outcome] = anonymize_dataset(clip, out, bad).outcomes
    assert outcome.status == "failed" and "expected uint8" in outcome.reason
    assert not (out / "walk.mp4").exists()


def test_clip_timeout_quarantines(tmp_path, clip):
    out = tmp_path / "out"
    slow = cfg(detect=replace(FAKE, backend="fakes:SlowDetector"))
    [outcome] = anonymize_dataset(clip, out, slow, clip_timeout=1.0).outcomes
    assert outcome.status == "failed" and "timed out" in outcome.reason
    assert not (out / "walk.mp4").exists()


def test_resume_skips_done_and_redoes_on_new_parameters(tmp_path):
    src = tmp_path / "in"
    for name in ("a", "b"):
        write_video(src / "cls" / f"{name}.mp4", moving_square_frames(12))
    out = tmp_path / "out"
    first = anonymize_dataset(src, out, cfg())
    assert [o.status for o in first.outcomes] == ["done", "done"]
    mtime = (out / "cls" / "a.mp4").stat().st_mtime_ns
    second = anonymize_dataset(src, out, cfg())
    assert [o.status for o in second.outcomes] == ["skipped", "skipped"]
    assert (out / "cls" / "a.mp4").stat().st_mtime_ns == mtime
    third = anonymize_dataset(src, out, cfg("blur"))
    assert [o.status for o in third.outcomes] == ["done", "done"]
    # a deleted output is redone even though the ledger says done
    (out / "cls" / "b.mp4").unlink()
    fourth = anonymize_dataset(src, out, cfg("blur"))
    assert [o.status for o in fourth.outcomes] == ["skipped", "done"]
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        assert db.execute("select count(*) from clips where status='done'").fetchone()[0] == 2


def test_output_inside_input_is_refused(tmp_path, clip):
    with pytest.raises(Exception, match="must not be inside"):
        anonymize_dataset(clip.parent, clip.parent / "out", cfg())
