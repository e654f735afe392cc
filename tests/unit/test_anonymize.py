"""The anonymize pipeline and dataset runner on generated clips with a colour-keyed fake detector."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from dataclasses import replace

import av
import numpy as np
import pytest

from fakes import MAGENTA, moving_square_frames, write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig, InpaintConfig
from privvid.errors import ConfigError

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
    # where each frame was anonymised, coarsely (what qa audit reads): the saved masks, frame for frame
    from privvid.io.masks import coarse_mask

    # (blur, pixelate and solid keep the people's shape there; remove mode spends no time on it)
    assert side["coverage"].get("grid") == (None if mode == "remove" else [coarse_mask(m) for m in masks])
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



def _scene(height: int) -> np.ndarray:
    """A frame with fine detail at a fixed share of its height (bars 1/40 of it wide), at any size."""
    import cv2

    small = np.zeros((240, 432, 3), np.uint8)
    small[:, (np.arange(432) // 6) % 2 == 1] = 255
    small[100:140, 150:280] = (40, 200, 90)
    return cv2.resize(small, (height * 432 // 240, height), interpolation=cv2.INTER_NEAREST)


@pytest.mark.parametrize("mode", ["blur", "pixelate"])
def test_blur_and_pixelate_hide_as_much_at_1080_lines_as_at_240(mode):
    """Their sizes are shares of the frame's height: the 1080-line result scaled to 240 lines is the 240-line
    result (a blur of a fixed 51 px left 1080-line detail four times sharper)."""
    import cv2

    from privvid.anonymize.modes import MODES

    composer = MODES.create(mode, AnonymizeConfig(mode=mode))
    low = composer.replacement(_scene(240)).astype(float)
    high = cv2.resize(composer.replacement(_scene(1080)), (432, 240), interpolation=cv2.INTER_AREA).astype(float)
    scene = _scene(240).astype(float)
    assert np.abs(low - scene).mean() > 40          # the detail is gone at 240 lines ...
    assert np.abs(high - scene).mean() > 40         # ... and at 1080
    assert np.abs(high - low).mean() < 6, np.abs(high - low).mean()
    composer(np.stack([_scene(1080)]), [None], np.zeros((1, 1080, 1944), bool), slice(0, 1))
    size = composer.info()
    assert size == ({"name": "blur", "size": 0.21, "kernel": 227} if mode == "blur"
                    else {"name": "pixelate", "size": 0.067, "block": 72}), size
    portrait = np.ascontiguousarray(_scene(1080).transpose(1, 0, 2))   # 1080 wide, 1944 high: its twin's sizes
    composer(portrait[None], [None], np.zeros((1, 1944, 1080), bool), slice(0, 1))
    assert composer.info() == size, composer.info()


def test_blur_pixel_and_colour_settings_are_checked_and_read_by_their_mode_only(tmp_path, clip):
    from typer.testing import CliRunner

    from privvid.cli.main import app

    runner = CliRunner()
    out = tmp_path / "out"
    for args, said in ((["--mode", "blur", "--blur-size", "0"], "--blur-size is a share of the frame's shorter side"),
                       (["--mode", "pixelate", "--pixel-size", "2"], "--pixel-size is a share"),
                       (["--mode", "solid", "--solid-color", "0,300,0"], "three whole numbers 0..255"),
                       (["--mode", "solid", "--solid-color", "green"], "--solid-color must be R,G,B"),
                       (["--mode", "remove", "--blur-size", "0.3"], "--blur-size is read by --mode blur only"),
                       (["--mode", "blur", "--solid-color", "0,0,0"], "--solid-color is read by --mode solid only"),
                       (["--mode", "blur", "--pixel-size", "0.067"], "--pixel-size is read by --mode pixelate only")):
        result = runner.invoke(app, ["anonymize", str(clip), str(out), *args])
        assert result.exit_code == 2, (args, result.output)
        assert said in " ".join(result.output.split()), (args, result.output)
        assert not out.exists()
    assert AnonymizeConfig(mode="solid", solid_color=[0, np.uint8(255), 0]).solid_color == (0, 255, 0)  # Python
    with pytest.raises(ConfigError):
        AnonymizeConfig(mode="blur", blur_size=True)
    with pytest.raises(ConfigError, match="--pixel-size is read by --mode pixelate only"):   # a Python caller's
        anonymize_dataset(clip, tmp_path / "py", cfg("blur", pixel_size=0.1))
    assert not (tmp_path / "py").exists()
    anonymize_dataset(clip, out, cfg("blur"))
    assert json.loads((out / "walk.json").read_text())["backends"]["composer"]["kernel"] == 51   # at least 51 px
    anonymize_dataset(clip, tmp_path / "large", cfg("blur", resize=(864, 576)))
    side = json.loads((tmp_path / "large" / "walk.json").read_text())
    assert side["backends"]["composer"] == {"name": "blur", "size": 0.21, "kernel": 121}, side["backends"]  # 0.21 x 576

def test_fps_is_a_frame_folders_rate_and_a_video_files_resampling(tmp_path, clip):
    """A frame folder has no rate: --fps shows every frame at it. A video file is resampled, and its sidecar
    still counts the frames decoded from the file (not those written), with no truncation note."""
    import cv2

    folder = tmp_path / "frames" / "walk"
    folder.mkdir(parents=True)
    for i, frame in enumerate(moving_square_frames(16)):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    anonymize_dataset(folder, tmp_path / "out_folder", cfg("solid", fps=12.0))
    side = json.loads((tmp_path / "out_folder" / "walk.json").read_text())
    assert len(decode(tmp_path / "out_folder" / "walk.mp4")) == 16
    assert side["input"]["frames_decoded"] == 16 and side["input"]["fps"] == 12.0 and side["output"]["fps"] == 12.0
    anonymize_dataset(clip, tmp_path / "out_video", cfg("solid", fps=12.0))
    side = json.loads((tmp_path / "out_video" / "walk.json").read_text())
    assert len(decode(tmp_path / "out_video" / "walk.mp4")) == 15   # 30 frames at 24 fps, shown at 12
    assert side["input"]["frames_decoded"] == 30 and side["output"]["frames"] == 15
    assert not any("truncated" in note for note in side["notes"])


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


def test_clip_timeout_is_not_taken_for_a_failure_a_part_of_the_clip_handles(tmp_path, clip):
    # a part that catches every Exception of its own and carries on (mesh mode drops a body it cannot fit)
    # must not swallow the timeout: the clip fails at its limit instead of finishing with no limit
    out = tmp_path / "out"
    slow = cfg(detect=replace(FAKE, backend="fakes:SwallowingSlowDetector"))
    started = time.perf_counter()
    [outcome] = anonymize_dataset(clip, out, slow, clip_timeout=0.5).outcomes
    assert outcome.status == "failed" and "timed out after 0.5 s" in outcome.reason, outcome
    assert time.perf_counter() - started < 1.4      # 30 frames at 0.05 s would take 1.5 s and more
    assert not (out / "walk.mp4").exists()


def test_clip_timeout_waits_while_a_module_is_imported(tmp_path, monkeypatch):
    # an alarm that lands inside an import would leave the module half-imported for every later clip of
    # the process: the handler tries again a moment later instead
    from privvid.anonymize import dataset

    (tmp_path / "pv_frame_probe.py").write_text("import sys\nFRAME = sys._getframe()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import pv_frame_probe

    armed: list[float] = []
    monkeypatch.setattr(dataset.signal, "setitimer", lambda which, seconds: armed.append(seconds))
    handler = dataset._alarm_handler(2.0)
    assert handler(0, pv_frame_probe.FRAME) is None and armed == [dataset._ALARM_RETRY_S]
    with pytest.raises(dataset.ClipTimeout, match="timed out after 2 s"):
        handler(0, sys._getframe())


def test_a_timeout_in_the_clean_up_is_still_the_clips_failure(tmp_path, clip, monkeypatch):
    # the alarm can go off after the clip's own code, while its failure is recorded: it must not leave the
    # worker (there it would reach the parent as an exception and end the run)
    from privvid.anonymize import dataset

    calls = []

    def remove(*args, **kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise dataset.ClipTimeout("timed out after 5 s")
        return ""

    def broken(*args, **kwargs):
        raise ValueError("the clip's own failure")

    monkeypatch.setattr(dataset, "anonymize_clip", broken)
    monkeypatch.setattr(dataset, "_remove_outputs", remove)
    job = dataset._Job(dataset.ClipSource(clip, "walk", "walk.mp4"), tmp_path / "out", cfg(), "x", 5.0)
    outcome = dataset._run_job(job)
    assert outcome.status == "failed" and outcome.reason == "timed out after 5 s" and len(calls) == 2


def test_resume_skips_done_and_redoes_on_new_parameters(tmp_path):
    src = tmp_path / "in"
    for name in ("a", "b"):   # an odd size: the note says how it was made even
        write_video(src / "cls" / f"{name}.mp4", moving_square_frames(12, width=65, height=47))
    out = tmp_path / "out"
    first = anonymize_dataset(src, out, cfg())
    assert [o.status for o in first.outcomes] == ["done", "done"]
    mtime = (out / "cls" / "a.mp4").stat().st_mtime_ns
    second = anonymize_dataset(src, out, cfg())
    assert [o.status for o in second.outcomes] == ["skipped", "skipped"]
    assert (out / "cls" / "a.mp4").stat().st_mtime_ns == mtime
    # a finished clip's notes and coverage stay in the resumed run's table and summary.json (they were empty)
    assert first.outcomes[0].notes and [o.notes for o in second.outcomes] == [o.notes for o in first.outcomes]
    assert [o.coverage_mean for o in second.outcomes] == pytest.approx([o.coverage_mean for o in first.outcomes])
    side = out / "cls" / "a.json"   # an edited sidecar does not end a resumed run (its notes are then unknown)
    side.write_text(json.dumps({**json.loads(side.read_text()), "coverage": [1]}))
    assert [o.status for o in anonymize_dataset(src, out, cfg()).outcomes] == ["skipped", "skipped"]
    third = anonymize_dataset(src, out, cfg("blur"))
    assert [o.status for o in third.outcomes] == ["done", "done"]
    # a deleted output is redone even though the ledger says done
    (out / "cls" / "b.mp4").unlink()
    fourth = anonymize_dataset(src, out, cfg("blur"))
    assert [o.status for o in fourth.outcomes] == ["skipped", "done"]
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        assert db.execute("select count(*) from clips where status='done'").fetchone()[0] == 2


def test_a_deleted_mask_file_is_written_again_on_resume(tmp_path, clip):
    out = tmp_path / "out"
    with_masks = replace(cfg(), save_masks=True)
    assert [o.status for o in anonymize_dataset(clip, out, with_masks).outcomes] == ["done"]
    (out / "walk.masks.npz").unlink()
    again = anonymize_dataset(clip, out, with_masks).outcomes
    assert [o.status for o in again] == ["done"] and (out / "walk.masks.npz").is_file()
    assert [o.status for o in anonymize_dataset(clip, out, with_masks).outcomes] == ["skipped"]


def test_a_ray_address_nothing_answers_at_is_refused_before_any_work(tmp_path, clip):
    import socket

    from privvid.errors import ConfigError

    with socket.socket() as s:     # a port nothing listens on once closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=f"no Ray cluster answers at 127.0.0.1:{port}"):
        anonymize_dataset(clip, out, cfg(), executor="ray", ray_address=f"127.0.0.1:{port}")
    with pytest.raises(ConfigError, match="HOST:PORT"):
        anonymize_dataset(clip, out, cfg(), executor="ray", ray_address="nowhere")
    with pytest.raises(ConfigError, match="--executor ray only"):
        anonymize_dataset(clip, out, cfg(), ray_address="auto")
    assert not out.exists()


def test_output_inside_input_is_refused(tmp_path, clip):
    with pytest.raises(Exception, match="must not be inside"):
        anonymize_dataset(clip.parent, clip.parent / "out", cfg())


class _LaggingStream:
    """A stand-in mask stream: frame i's result (its number as a one-pixel mask) comes ``lag`` frames late;
    it says its look-ahead is ``delay`` (the store's room is planned from it)."""

    def __init__(self, lag: int, delay: int, extra: int = 0) -> None:
        from privvid.detect.base import Detections

        self.lag, self.delay, self.extra, self.seen, self.Detections = lag, delay, extra, [], Detections

    def _out(self, frame: np.ndarray):
        mask = np.zeros(frame.shape[:2], bool)
        mask.flat[int(frame[0, 0, 0])] = True
        return self.Detections.empty(*frame.shape[:2]), mask

    def push(self, frame: np.ndarray):
        self.seen.append(frame)
        k = len(self.seen) - 1 - self.lag
        return [self._out(self.seen[k])] if k >= 0 else []

    def flush(self):
        done = max(0, len(self.seen) - self.lag)
        return [self._out(f) for f in self.seen[done:]] + [self._out(self.seen[-1])] * self.extra


class _RecordingComposer:
    context = 2

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], slice, np.ndarray]] = []

    def __call__(self, frames, detections, masks, core):
        # every mask holds its own frame's number: the window's frames and masks stay paired
        assert [int(np.flatnonzero(m)[0]) for m in masks] == [int(f[0, 0, 0]) for f in frames]
        # the left context was the core of the window before: it has that window's widened masks (as the
        # written-frame check widens them in place), so what was refilled there is no source now
        assert all(m.flat[-1] for m in masks[:core.start])
        assert not any(m.flat[-1] for m in masks[core.start:])
        self.calls.append(([int(f[0, 0, 0]) for f in frames], core, frames))
        masks[core, -1, -1] = True
        return frames[core] + 1, [{} for _ in range(core.stop - core.start)]


@pytest.mark.parametrize("lag,delay", [(3, 3), (3, 0), (40, 0)])
def test_windows_are_views_of_one_store_with_their_context_in_order(lag, delay):
    # (3, 0) and (40, 0): a detector that holds frames back longer than it says (up to the whole clip)
    # makes the store grow rather than lose a frame
    from privvid.anonymize.pipeline import _anonymised, _Timer

    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(37)]
    composer = _RecordingComposer()
    # what is yielded is used before the next window is made (the masks are views of the store)
    out = [(f.copy(), m.copy(), i) for f, m, i in _anonymised(
        iter(frames), _LaggingStream(lag, delay), composer, AnonymizeConfig(inpaint=InpaintConfig(window=5)),
        _Timer())]
    assert [int(f[0, 0, 0]) for f, _, _ in out] == [i + 1 for i in range(37)]
    assert [int(np.flatnonzero(m)[0]) for _, m, _ in out] == list(range(37))
    assert all(m[-1, -1] for _, m, _ in out)   # what is yielded is the widened mask
    written = []
    for numbers, core, _ in composer.calls:
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))   # consecutive frames
        assert core.start == min(2, numbers[0])                              # the left context
        written += numbers[core]
        assert numbers[-1] == min(36, numbers[core][-1] + 2)                 # the right context
    assert written == list(range(37))
    # the windows are slices of one array (of a new one after the store grew)
    bases = {id(arr.base) for _, _, arr in composer.calls}
    assert len(bases) == 1 or delay < lag


def test_a_detector_with_too_many_or_too_few_results_fails_the_clip():
    from privvid.anonymize.pipeline import _anonymised, _Timer
    from privvid.errors import BackendFailure

    frames = [np.full((6, 8, 3), i, np.uint8) for i in range(9)]
    c = AnonymizeConfig(inpaint=InpaintConfig(window=5))
    with pytest.raises(BackendFailure, match="more results"):
        list(_anonymised(iter(frames), _LaggingStream(2, 2, extra=1), _RecordingComposer(), c, _Timer()))

    class Short(_LaggingStream):
        def flush(self):
            return super().flush()[:-2]

    with pytest.raises(BackendFailure, match="no result for 2 frame"):
        list(_anonymised(iter(frames), Short(2, 2), _RecordingComposer(), c, _Timer()))

    class Ghost(_LaggingStream):   # results for frames it was never given
        def flush(self):
            return [self._out(frames[0])]

    with pytest.raises(BackendFailure, match="more results"):
        list(_anonymised(iter([]), Ghost(0, 0), _RecordingComposer(), c, _Timer()))

    class NotDetections(_LaggingStream):
        def _out(self, frame):
            return "people", super()._out(frame)[1]

    with pytest.raises(BackendFailure, match="returned str"):
        list(_anonymised(iter(frames), NotDetections(0, 0), _RecordingComposer(), c, _Timer()))


def test_the_pipeline_holds_a_window_of_frames_once(tmp_path):
    # a window's frames are views of the one store the decoded frames go to, not a second copy, and its
    # people are held as crops: in blur mode (whose composer returns a copy of the window's core) the
    # traced peak stays under 75 frames' worth at --window 24 (store 26 frames, the composer's copy 24, the
    # removal masks a third of a frame each; stacked copies of the decoded frames and full instance masks
    # read 106.9 frames' worth, one store with full instance masks 77.8, one store and crops 70.3)
    import tracemalloc

    from fakes import moving_square_frames, write_video

    w, h = 640, 480
    write_video(tmp_path / "in" / "a.mp4", moving_square_frames(80, w, h, 60), fps=24)
    tracemalloc.start()
    try:
        s = anonymize_dataset(tmp_path / "in", tmp_path / "out", cfg("blur", inpaint=InpaintConfig(window=24)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert s.outcomes[0].status == "done"
    assert peak / (w * h * 3) < 75
