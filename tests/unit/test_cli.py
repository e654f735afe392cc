"""The command line: every command is registered; doctor reports what this installation can do."""

from __future__ import annotations

import os
import subprocess
import sys

ENV = {**os.environ, "COLUMNS": "200"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "privvid.cli.main", *args], capture_output=True, text=True, env=ENV)


def test_help_lists_every_command():
    proc = run("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("anonymize", "doctor", "shards", "curate", "qa", "train", "eval", "average", "benchmark"):
        assert command in proc.stdout, command


def test_doctor_reports_backends_weights_and_gl(tmp_path):
    missing = tmp_path / "nope.pt"
    proc = run("doctor", "--weights", str(missing))
    # a weights file that is not there is a failed check: exit 1, and the path is named
    assert proc.returncode == 1
    assert str(missing) in proc.stdout.replace("\n", "")
    for line in ("mediapipe", "propagate", "remove", "mesh", "embedded body model"):
        assert line in proc.stdout
    gl = [ln for ln in proc.stdout.splitlines() if "pyrender" in ln]
    assert gl and "yes" in gl[0], proc.stdout


def test_unknown_mode_is_a_usage_error(tmp_path):
    proc = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--mode", "sparkle")
    # one line on stderr, no traceback, nothing created
    assert proc.returncode == 2 and "sparkle" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    typo = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--mode", "mesj")
    assert typo.returncode == 2 and "unknown mode 'mesj' (did you mean 'mesh'?)" in typo.stderr, typo.stderr
    align = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--temporal-align", "sideways")
    assert align.returncode == 2 and "temporal_align must be flow or none" in align.stderr, align.stderr
    assert not (tmp_path / "out").exists()
