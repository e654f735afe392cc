"""Ray scale-out on a real local Ray instance, real clips and the embedded default: a Ray worker killed
mid-run loses nothing (Ray retries its task; fail-closed writes leave no half file), and a re-run
resumes from the same ledger."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import av
import pytest

from fakes import write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig
from privvid.io import read_frames

pytestmark = pytest.mark.slow

CLIPS = ("sam2_juggle.mp4", "mmaction2_demo_skeleton_two_people.mp4", "propainter_test-sample1.mp4")
FRAMES = 48  # a few seconds a clip: long enough to kill its worker inside it


def _short_clips(shared_data: Path, folder: Path) -> None:
    for name in CLIPS:
        frames = []
        for frame in read_frames(shared_data / "demo-clips" / name, (216, 120)):
            frames.append(frame)
            if len(frames) == FRAMES:
                break
        write_video(folder / name, frames)


def _task_workers() -> list[int]:
    """Ray worker processes running a clip (Ray titles them after the task's function)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::_run_job"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def test_ray_run_survives_a_killed_worker_and_resumes(shared_data, tmp_path):
    ray = pytest.importorskip("ray")
    src, out = tmp_path / "in", tmp_path / "out"
    _short_clips(shared_data, src)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    killed: list[int] = []
    result: dict = {}
    try:
        run = threading.Thread(target=lambda: result.update(summary=anonymize_dataset(
            src, out, AnonymizeConfig(mode="remove"), executor="ray")))
        run.start()
        deadline = time.time() + 240
        seen: dict[int, float] = {}
        while time.time() < deadline and not killed and run.is_alive():
            now = time.time()
            for pid in _task_workers():
                seen.setdefault(pid, now)
                if now - seen[pid] >= 1.0:   # into its clip: models loaded, frames being written
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    break
            time.sleep(0.1)
        run.join(timeout=600)
    finally:
        ray.shutdown()
    assert killed, "a Ray worker was killed mid-run"
    summary = result["summary"]
    assert [o.status for o in summary.outcomes] == ["done"] * 3, [o.reason for o in summary.outcomes]
    for name in CLIPS:
        stem = name[: -len(".mp4")]
        with av.open(str(out / f"{stem}.mp4")) as container:
            assert sum(1 for _ in container.decode(video=0)) == FRAMES
    assert not [p for p in out.rglob("*") if ".partial" in p.name and not p.name.startswith(".")]
    with sqlite3.connect(out / ".privvid" / "ledger.sqlite") as db:
        assert {s for (s,) in db.execute("select status from clips")} == {"done"}
    # the same command again: everything is already done, nothing is redone
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    again = anonymize_dataset(src, out, AnonymizeConfig(mode="remove"))
    assert {o.status for o in again.outcomes} == {"skipped"}
    assert mtimes == {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
