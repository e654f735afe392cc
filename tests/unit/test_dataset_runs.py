"""Dataset runs: bad inputs each get a reason and the run goes on; SIGKILL and resume; workers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from fakes import moving_square_frames, write_slow_then_fast, write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig
from privvid.io.video import read_frames

FAKE = DetectConfig(backend="fakes:ColorKeyDetector", dilate=3, temporal=1)
TESTS = Path(__file__).resolve().parents[1]


def make_bad_inputs(root: Path) -> None:
    frames = moving_square_frames(12)
    write_video(root / "good.mp4", frames)
    (root / "zero.mp4").write_bytes(b"")
    (root / "text.mp4").write_text("hello, I am not a video\n" * 10)
    data = write_video(root / "tmp_full.mp4", moving_square_frames(60)).read_bytes()
    (root / "tmp_full.mp4").unlink()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 4])
    write_video(root / "one frame.mp4", frames[:1])
    write_video(root / "odd size.mp4", [f[:63, :95] for f in frames], codec="mpeg4")
    write_video(root / "ünïcödé 名前.mp4", frames)
    write_video(root / "with audio.mp4", frames, audio=True)
    gray = root / "gray.mp4"
    container = av.open(str(gray), "w")
    stream = container.add_stream("libx264", rate=24)
    stream.width, stream.height, stream.pix_fmt = 96, 64, "gray"
    for f in frames:
        for p in stream.encode(av.VideoFrame.from_ndarray(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), format="gray")):
            container.mux(p)
    for p in stream.encode():
        container.mux(p)
    container.close()
    # variable frame rate: irregular timestamps
    from fractions import Fraction

    for name in ("vfr.mp4", "vfr_mkv.mkv"):   # Matroska has no frame count: its rate comes from the packets' times
        container = av.open(str(root / name), "w")
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        stream.codec_context.time_base = Fraction(1, 1000)
        t = 0
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = t, Fraction(1, 1000)
            t += 20 if i % 2 else 50
            for p in stream.encode(vf):
                container.mux(p)
        for p in stream.encode():
            container.mux(p)
        container.close()
    big = np.zeros((4320, 7680, 3), np.uint8)
    big[2000:2400, 3000:3400] = [255, 0, 255]
    write_video(root / "huge 8k.mp4", [big, big], codec="mpeg4")


def test_bad_inputs_get_reasons_and_the_run_goes_on(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_bad_inputs(src)
    summary = anonymize_dataset(src, out, AnonymizeConfig(detect=FAKE))
    status = {o.relpath: (o.status, o.reason) for o in summary.outcomes}
    for bad, words in {"zero": "empty", "text": "not a video", "truncated": ""}.items():
        assert status[bad][0] == "failed", bad
        assert words in status[bad][1] and "\n" not in status[bad][1]
        assert not (out / f"{bad}.mp4").exists()
    for good in ("good", "one frame", "odd size", "ünïcödé 名前", "with audio", "gray", "vfr", "vfr_mkv", "huge 8k"):
        assert status[good][0] == "done", (good, status[good])
        assert (out / f"{good}.mp4").exists() and (out / f"{good}.json").exists()
    with av.open(str(out / "odd size.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (94, 62)
    with av.open(str(out / "with audio.mp4")) as c:
        assert not c.streams.audio
    side = json.loads((out / "huge 8k.json").read_text())
    assert max(side["output"]["width"], side["output"]["height"]) <= 3840
    assert any("resized" in n for n in side["notes"])
    assert any("variable frame rate" in n for n in json.loads((out / "vfr.json").read_text())["notes"])
    mkv = json.loads((out / "vfr_mkv.json").read_text())
    assert any("variable frame rate" in n for n in mkv["notes"]), mkv["notes"]
    # written at the mean rate of its 20 / 50 ms steps, so the clip lasts as long as the input
    assert mkv["input"]["frames"] == 12 and 26 < mkv["output"]["fps"] < 31, mkv["output"]
    assert json.loads((out / "one frame.json").read_text())["output"]["frames"] == 1
    failed = [json.loads(line)["relpath"] for line in (out / ".privvid" / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(failed) == ["text", "truncated", "zero"]


def test_a_resize_is_noted_and_an_odd_side_is_said(tmp_path):
    write_video(tmp_path / "in" / "a.mp4", moving_square_frames(4))   # 96x64
    for size, notes in (((49, 32), ["resized from 96x64 to 48x32 (asked 49x32: H.264 needs even sides)"]),
                        ((-2, 32), [])):   # a size given as asked needs no note: the sidecar has both sizes
        out = tmp_path / f"out{size[0]}"
        summary = anonymize_dataset(tmp_path / "in", out, AnonymizeConfig(mode="blur", detect=FAKE, resize=size))
        assert summary.outcomes[0].notes == notes
        side = json.loads((out / "a.json").read_text())
        assert side["notes"] == notes and side["output"]["width"] == 48
        assert side["config"]["check"]["enabled"] is False  # what ran in blur mode, not "default"


def test_cli_exit_code_and_summary(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "ok.mp4", moving_square_frames(8))
    (src / "broken.mp4").write_bytes(b"")
    proc = subprocess.run(
        [sys.executable, "-m", "privvid.cli.main", "anonymize", str(src), str(out), "--mode", "blur",
         "--detector", "fakes:ColorKeyDetector", "--quiet"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "200"},
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 done" in proc.stdout and "1 failed" in proc.stdout and "empty file" in proc.stdout
    assert (out / "ok.mp4").exists() and not (out / "broken.mp4").exists()


def _done(out: Path) -> list[str]:
    db_path = out / ".privvid" / "ledger.sqlite"
    if not db_path.exists():
        return []
    try:
        with sqlite3.connect(db_path, timeout=5) as db:
            return [r[0] for r in db.execute("select relpath from clips where status='done'")]
    except sqlite3.OperationalError:  # the run has created the file but not its table yet
        return []


def test_sigkill_mid_run_then_resume(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(6):
        write_video(src / f"clip{i}.mp4", moving_square_frames(48))
    cmd = [sys.executable, "-m", "privvid.cli.main", "anonymize", str(src), str(out), "--quiet",
           "--detector", "fakes:SlowDetector", "--inpainter", "opencv"]
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    def partials() -> list[Path]:
        return [p for p in out.rglob("*") if p.is_file() and ".partial" in p.name]

    # kill while a clip is being encoded: after two clips are done and a temp file exists
    while (len(_done(out)) < 2 or not partials()) and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _done(out)
    assert 2 <= len(finished) < 6, "the kill must land mid-run"
    mtimes = {name: (out / f"{name}.mp4").stat().st_mtime_ns for name in finished}
    assert partials(), "the killed clip left its temp file (hidden, never under a final name)"
    visible = sorted(p.name for p in out.glob("*.mp4") if not p.name.startswith("."))
    assert visible == sorted(f"{n}.mp4" for n in finished), "no half-written clip under a final name"

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert sorted(_done(out)) == [f"clip{i}" for i in range(6)]
    for name, mtime in mtimes.items():
        assert (out / f"{name}.mp4").stat().st_mtime_ns == mtime, f"{name} was redone"
    assert not partials()
    for i in range(6):
        with av.open(str(out / f"clip{i}.mp4")) as c:
            assert sum(1 for _ in c.decode(video=0)) == 48


def test_worker_processes_match_inline(tmp_path):
    src = tmp_path / "in"
    for i in range(3):
        write_video(src / f"c{i}.mp4", moving_square_frames(10))
    cfg = AnonymizeConfig(mode="solid", detect=FAKE, save_masks=True)
    inline = anonymize_dataset(src, tmp_path / "a", cfg, workers=1)
    pooled = anonymize_dataset(src, tmp_path / "b", cfg, workers=2)
    assert [o.status for o in pooled.outcomes] == ["done"] * 3
    for i in range(3):
        a = np.load(tmp_path / "a" / f"c{i}.masks.npz")["masks"]
        b = np.load(tmp_path / "b" / f"c{i}.masks.npz")["masks"]
        assert np.array_equal(a, b)
    assert inline.frames == pooled.frames == 30


def test_several_workers_start_with_the_biggest_clips(tmp_path, monkeypatch):
    """Longest-first scheduling: with workers > 1 the jobs reach the executor biggest input first, so
    a long clip does not start last and leave the other workers idle at the end of the run."""
    import privvid.anonymize.dataset as dataset
    from privvid.runtime.executors import InlineExecutor

    src = tmp_path / "in"
    for name, n in (("a_short", 4), ("b_long", 30), ("c_mid", 12)):
        write_video(src / f"{name}.mp4", moving_square_frames(n))
    seen: list[str] = []

    class Recording(InlineExecutor):
        def map_unordered(self, fn, items, started=None):
            items = list(items)
            seen.extend(job.source.relpath for job in items)
            yield from super().map_unordered(fn, items, started)

    monkeypatch.setattr(dataset, "make_executor", lambda *a, **k: Recording())
    summary = anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(mode="solid", detect=FAKE), workers=2)
    assert sorted(o.status for o in summary.outcomes) == ["done"] * 3
    sizes = {p.stem: p.stat().st_size for p in src.iterdir()}   # clips are named by relative path, no suffix
    assert seen == sorted(sizes, key=lambda name: -sizes[name]) and seen[0] == "b_long"


def test_ray_executor_runs_clips_as_tasks(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    src = tmp_path / "in"
    for i in range(2):
        write_video(src / f"r{i}.mp4", moving_square_frames(8))
    # Ray's worker processes must be able to import the test-only backend
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        summary = anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(mode="pixelate", detect=FAKE),
                                    executor="ray")
    finally:
        ray.shutdown()
    assert [o.status for o in summary.outcomes] == ["done", "done"], [o.reason for o in summary.outcomes]
    for i in range(2):
        assert json.loads((tmp_path / "out" / f"r{i}.json").read_text())["output"]["frames"] == 8



def test_ray_tasks_left_running_are_ended_when_the_caller_stops_reading(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM in the driver: the tasks still running are killed before the run says which clips it
    left unfinished and lets go of OUT, so none of them writes there afterwards."""
    ray = pytest.importorskip("ray")
    from fakes import write_when
    from privvid.runtime.executors import RayExecutor

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    now, go = tmp_path / "now", tmp_path / "go"
    now.touch()
    try:
        jobs = [(str(tmp_path / "quick"), str(now)), (str(tmp_path / "slow1"), str(go)), (str(tmp_path / "slow2"), str(go))]
        results = RayExecutor().map_unordered(write_when, jobs)
        first = next(results)
        assert first[0] == jobs[0] and first[1] == jobs[0][0]
        results.close()   # what the run does on its way out
        go.touch()        # a task still running would write now
        time.sleep(3.0)
    finally:
        ray.shutdown()
    assert (tmp_path / "quick").exists()
    assert not (tmp_path / "slow1").exists() and not (tmp_path / "slow2").exists()


def test_an_interrupted_run_stops_its_executor_before_it_writes_the_summary(tmp_path, monkeypatch):
    import privvid.anonymize.dataset as dataset
    from privvid.runtime.executors import InlineExecutor

    src = tmp_path / "in"
    for i in range(3):
        write_video(src / f"c{i}.mp4", moving_square_frames(4))
    summary_when_closed: list[bool] = []

    class Watched(InlineExecutor):
        def map_unordered(self, fn, items, started=None):
            self.results = self._watched(fn, items, started)   # held here: only the run's own close() ends it
            return self.results

        def _watched(self, fn, items, started):
            try:
                yield from super().map_unordered(fn, items, started)
            finally:
                summary_when_closed.append((tmp_path / "out" / ".privvid" / "summary.json").exists())

    def stop(outcome):
        raise KeyboardInterrupt

    monkeypatch.setattr(dataset, "make_executor", lambda *a, **k: Watched())
    with pytest.raises(KeyboardInterrupt):
        anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(mode="solid", detect=FAKE), on_clip=stop)
    assert summary_when_closed == [False]
    doc = json.loads((tmp_path / "out" / ".privvid" / "summary.json").read_text())
    assert len(doc["unfinished"]) == 2, doc

# ---------------------------------------------------------------- native start-up logs
NOISE_LINE = ("W0000 00:00:1795436717.587575   23611 inference_feedback_manager.cc:114] Feedback manager "
              "requires a model with a single signature inference. Disabling support for feedback tensors.")


def test_quiet_native_logs_drops_startup_noise_and_keeps_everything_else(capfd, caplog) -> None:
    import logging
    import os

    from privvid.runtime.native_log import quiet_native_logs

    with caplog.at_level(logging.DEBUG, logger="privvid.native"):
        with quiet_native_logs():
            os.write(2, (NOISE_LINE + "\nINFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
                         "E1234 something really failed\n").encode())
        with pytest.raises(RuntimeError):
            with quiet_native_logs():
                os.write(2, b"written just before a crash\n")
                raise RuntimeError("boom")
    err = capfd.readouterr().err
    assert "something really failed" in err and "written just before a crash" in err
    assert "W0000" not in err and "XNNPACK" not in err
    assert any("inference_feedback_manager" in r.getMessage() for r in caplog.records)
    os.write(2, b"after\n")                   # fd 2 is the real stderr again
    assert capfd.readouterr().err == "after\n"


def test_mediapipe_graphs_start_without_native_noise(capfd, shared_data) -> None:
    """Real frames with two people, so every graph runs every model it has (the pose landmark model
    and the cascade's second tracker only start once a person is found)."""
    pytest.importorskip("mediapipe")
    from privvid.config import DetectConfig
    from privvid.detect.mediapipe_backend import MediapipeDetector

    frames = read_frames(shared_data / "demo-clips" / "mmaction2_demo_skeleton_two_people.mp4", size=(432, 240))
    frames = [next(frames) for _ in range(4)]
    capfd.readouterr()
    det = MediapipeDetector(DetectConfig())
    found = [len(det(np.full((240, 432, 3), 90, np.uint8)))] + [len(det(f)) for f in frames]
    det.close()
    assert found[0] == 0 and max(found) >= 2           # the graphs did run on people
    # a graph built now and first used later: its calculators open (and log) on their own threads
    import time

    import mediapipe as mp

    from privvid.runtime.native_log import quiet_graph

    graph = quiet_graph(mp.solutions.pose.Pose, static_image_mode=True, model_complexity=1)
    time.sleep(0.5)
    graph.close()
    err = capfd.readouterr().err
    assert "W0000" not in err and "XNNPACK" not in err, err


def test_a_matroska_file_cut_short_is_noted_as_truncated(tmp_path):
    """Matroska holds no frame count: the length it declares is its header's duration, which a cut keeps."""
    from privvid.io.video import probe

    full = write_video(tmp_path / "full.mkv", moving_square_frames(90))
    assert probe(full).frames == 90
    src = tmp_path / "in"
    src.mkdir()
    data = full.read_bytes()
    (src / "cut.mkv").write_bytes(data[: len(data) // 2])
    assert probe(src / "cut.mkv").frames == 90
    summary = anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(detect=FAKE))
    assert [o.status for o in summary.outcomes] == ["done"]
    side = json.loads((tmp_path / "out" / "cut.json").read_text())
    assert side["input"]["frames"] == 90 and side["output"]["frames"] < 85, (side["input"], side["output"])
    assert any(n.startswith("truncated input: decoded") and "of the 90 frames" in n for n in side["notes"]), side["notes"]
    # a whole file whose audio runs on past its video declares the video's own length, not the container's
    longer = write_video(tmp_path / "whole" / "audio_longer.mkv", moving_square_frames(6), audio=True)
    assert probe(longer).frames == 6
    anonymize_dataset(longer.parent, tmp_path / "out2", AnonymizeConfig(detect=FAKE))
    assert not any("truncated" in n for n in json.loads((tmp_path / "out2" / "audio_longer.json").read_text())["notes"])


def test_a_curated_subset_csv_is_anonymised_into_class_folders(tmp_path):
    from privvid.errors import ConfigError

    videos = tmp_path / "videos"
    write_video(videos / "train" / "abc_000001_000003.mp4", moving_square_frames(4))
    write_video(videos / "val" / "xyz_000000_000002.mp4", moving_square_frames(4))
    write_video(videos / "jumping" / "park" / "run1.mp4", moving_square_frames(4))
    subset = tmp_path / "cur" / "subset.csv"
    subset.parent.mkdir()
    subset.write_text("label,key,path,split\n"
                      f"tai chi,abc_000001_000003,{videos / 'train' / 'abc_000001_000003.mp4'},train\n"
                      f"jumping,jumping/park/run1,{videos / 'jumping' / 'park' / 'run1.mp4'},\n"  # a tree's key
                      "jumping,../up,../videos/val/xyz_000000_000002.mp4,\n"                   # refused
                      "jumping,xyz_000000_000002,../videos/val/xyz_000000_000002.mp4,val\n"   # relative to the list
                      "jumping,nofile_000000_000002,,val\n"                                      # annotation only
                      f"jumping,gone_000000_000002,{videos / 'gone.mp4'},val\n")
    out = tmp_path / "out"
    summary = anonymize_dataset(subset, out, AnonymizeConfig(detect=FAKE))
    assert sorted(o.relpath for o in summary.outcomes if o.status == "done") == [
        "jumping/park/run1", "jumping/xyz_000000_000002", "tai chi/abc_000001_000003"]
    assert (out / "tai chi" / "abc_000001_000003.mp4").is_file()
    reasons = " ".join(why for _, why in summary.skipped_inputs)
    assert "no video file (an annotation row only)" in reasons and "no such file (listed in subset.csv line 7)" in reasons
    assert "key '../up' cannot name a class folder" in reasons
    side = json.loads((out / "jumping" / "xyz_000000_000002.json").read_text())
    assert side["input"]["path"] == "../videos/val/xyz_000000_000002.mp4"   # the input as the list names it
    # an absolute path is recorded relative to the folder the list's absolute paths share, nowhere in full
    side = json.loads((out / "tai chi" / "abc_000001_000003.json").read_text())
    assert side["input"]["path"] == "train/abc_000001_000003.mp4"
    assert json.loads((out / "jumping" / "park" / "run1.json").read_text())["input"]["path"] == "jumping/park/run1.mp4"
    for written in [*out.rglob("*.json"), *out.rglob("*.jsonl")]:
        assert str(videos) not in written.read_text(), written
    # qa finds each clip's original through the list given as IN
    from privvid.qa.dataset import scan

    originals = {c.rel: c.original_in(subset) for c in scan(out)}
    assert originals == {"jumping/park/run1": videos / "jumping" / "park" / "run1.mp4",
                         "jumping/xyz_000000_000002": subset.parent / "../videos/val/xyz_000000_000002.mp4",
                         "tai chi/abc_000001_000003": videos / "train" / "abc_000001_000003.mp4"}
    with pytest.raises(ConfigError, match="lies inside the output folder"):   # OUT holding a listed video
        anonymize_dataset(subset, videos, AnonymizeConfig(detect=FAKE), dry_run=True)
    bad = tmp_path / "notalist.csv"
    bad.write_text("a,b\n1,2\n")
    from privvid.errors import BadInput

    with pytest.raises(BadInput, match="label and path columns"):
        anonymize_dataset(bad, tmp_path / "o2", AnonymizeConfig(detect=FAKE))


def test_a_dry_run_refuses_an_out_the_run_could_not_write_into(tmp_path):
    from privvid.errors import ConfigError

    write_video(tmp_path / "in" / "a.mp4", moving_square_frames(4))
    afile = tmp_path / "afile"
    afile.write_text("x")
    (tmp_path / "o" / ".privvid").parent.mkdir()
    (tmp_path / "o" / ".privvid").write_text("x")              # the run's state folder, a file
    for out in (afile, afile / "sub", tmp_path / "o"):
        for dry in (True, False):   # the plan says what the run says, before any clip
            with pytest.raises(ConfigError, match="cannot write into the output folder"):
                anonymize_dataset(tmp_path / "in", out, AnonymizeConfig(detect=FAKE), dry_run=dry)
    assert afile.read_text() == "x"


def test_fps_resamples_a_variable_rate_clip_by_its_frames_times(tmp_path):
    """``--fps 20`` on ten frames 100 ms apart and twenty 25 ms apart: every slow frame twice, every second fast
    one; without it all thirty once at the mean rate. The note says which."""
    src = tmp_path / "in"
    src.mkdir()
    write_slow_then_fast(src / "vfr.mp4")
    for fps, out, expected in ((20.0, tmp_path / "at20", [i // 2 for i in range(20)] + list(range(10, 30, 2)) + [29]),
                               (None, tmp_path / "kept", list(range(30)))):
        anonymize_dataset(src, out, AnonymizeConfig(detect=FAKE, mode="blur", fps=fps))
        assert [int(round(float(f.mean()) / 8)) for f in read_frames(out / "vfr.mp4")] == expected
        notes = json.loads((out / "vfr.json").read_text())["notes"]
        assert any(("resampled by the frames' own times" if fps else "every frame kept once") in n for n in notes), notes
