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


def test_help_shows_no_value_beside_a_flag():
    """A flag takes no value: typer showed <bool> beside it (and --help), which reads as `--save-masks true`."""
    for command in (["anonymize", "--help"], ["qa", "audit", "--help"]):
        proc = run(*command)
        assert proc.returncode == 0, proc.stderr
        lines = {line.split()[1]: line for line in proc.stdout.splitlines() if line.startswith("\u2502 --")}
        assert "<bool>" not in proc.stdout and "--help" in lines, proc.stdout
        assert "<int>" in lines["--frames" if "audit" in command else "--workers"]   # options with a value keep it


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


def test_doctor_loads_the_model_files_it_is_given_as_anonymize_does(tmp_path):
    # a file that exists is not yet a model: doctor said "yes" for junk that anonymize refuses
    from privvid.runtime.doctor import weight_checks

    junk, empty, pickle_like = tmp_path / "junk.tflite", tmp_path / "empty.npz", tmp_path / "w.pt"
    junk.write_text("junk")
    empty.touch()
    pickle_like.write_text("junk")
    got = {c.name: c for c in weight_checks({"yolo": junk, "body model": empty})}
    assert not got["yolo"].ok and "not a format privvid recognises" in got["yolo"].detail
    assert not got["body model"].ok and "not a readable .npz" in got["body model"].detail
    [pickled] = weight_checks({"yolo": pickle_like})
    assert not pickled.ok and "--trust-model-files" in pickled.detail
    proc = run("doctor", "--no-gl", "--body-model", str(empty))
    [row] = [ln for ln in proc.stdout.splitlines() if "│ body model " in ln]
    assert proc.returncode == 1 and "│ no " in row, proc.stdout


def test_doctor_refuses_a_sam_model_it_cannot_check_and_names_a_file_that_is_no_checkpoint(tmp_path):
    """--sam-model was accepted whatever it said (exit 0); a video renamed .pth got torch's advice to load it
    unsafely."""
    for args, said in ((["--sam-model", "vit_q", "--sam-weights", str(tmp_path / "s.pth")], "unknown SAM model 'vit_q'"),
                       (["--sam-model", "vit_l"], "--sam-model names the architecture of --sam-weights")):
        proc = run("doctor", "--no-gl", *args)
        assert proc.returncode == 2 and said in proc.stderr, (args, proc.stdout, proc.stderr)
    video = tmp_path / "clip.pth"
    video.write_bytes(b"\x00\x00\x00\x20ftypisom" + bytes(200))
    from privvid.runtime.doctor import weight_checks

    [check] = weight_checks({"sam": video})
    assert not check.ok and "is not a PyTorch checkpoint (neither a zip archive nor a pickle)" in check.detail, check
    assert "weights_only" not in check.detail, check.detail


def test_unknown_mode_is_a_usage_error(tmp_path):
    proc = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--mode", "sparkle")
    # one line on stderr, no traceback, nothing created
    assert proc.returncode == 2 and "sparkle" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
    typo = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--mode", "mesj")
    assert typo.returncode == 2 and "unknown mode 'mesj' (did you mean 'mesh'?)" in typo.stderr, typo.stderr
    upper = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--mode", "BLUR")
    assert upper.returncode == 2 and "unknown mode 'BLUR' (did you mean 'blur'?)" in upper.stderr, upper.stderr
    align = run("anonymize", str(tmp_path), str(tmp_path / "out"), "--temporal-align", "sideways")
    assert align.returncode == 2 and "temporal_align must be flow or none" in align.stderr, align.stderr
    assert not (tmp_path / "out").exists()


def test_settings_that_could_only_fail_later_are_refused_first(tmp_path):
    """Each is exit 2 with one line on stderr, no traceback, nothing written."""
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(6)))
    cur = ["curate", "--labels-only", str(labels), "--k", "2", "--out", str(tmp_path / "cur"), "--no-cache"]
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "results.json").write_text("{}")
    train = ["train", "mae", "--data", str(tmp_path), "--size", "nano", "--out", str(tmp_path / "t")]
    cases = [
        (cur + ["--random-draws", "0"], "--random-draws must be at least 1"),
        (cur + ["--restarts", "0"], "--restarts must be at least 1"),
        (cur + ["--embed-per-class", "0"], "--embed-per-class must be at least 1"),
        (cur + ["--image-encoder", "foo"], "clip, none"),
        (["benchmark", "report", str(tmp_path / "results")], "not the results of privvid benchmark run"),
        (train + ["--device", "tpu0"], "not a device torch knows"),
        (train + ["--set", "mae.ratio=1.5"], "mae.ratio"),
        (train + ["--set", "optim.lr=inf"], "optim.lr must be a finite number"),
        (train + ["--set", "optim.warmup_epochs=inf"], "optim.warmup_epochs must be a finite"),
        (train + ["--set", "optim.min_lr=-inf"], "optim.min_lr must be a finite"),
        (train + ["--set", "data.scale=0.5,inf"], "data.scale must be a finite"),
        (train + ["--threads", "-1"], "threads must be 0"),
        (["eval", "lp", "--init", str(tmp_path), "--train", str(tmp_path), "--val", str(tmp_path), "--layerwise",
          "--out", str(tmp_path / "t")], "needs --learn-mix"),
    ]
    for args, words in cases:
        proc = run(*args)
        assert proc.returncode == 2 and words in proc.stderr, (args, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not (tmp_path / "cur").exists() and not (tmp_path / "t").exists()


def test_a_refusal_of_the_system_is_one_line_naming_the_path(tmp_path, monkeypatch):
    import errno

    from typer.testing import CliRunner

    import privvid.shards
    from privvid.cli.main import app

    afile = tmp_path / "afile"
    afile.write_text("x")
    proc = run("synth", "--out", str(afile / "sub"))           # a path through a file: a bad setting, exit 2
    assert proc.returncode == 2 and f"error: {afile / 'sub'}" in proc.stderr and ": Not a directory" in proc.stderr, proc.stderr
    assert "Errno" not in proc.stderr and afile.read_text() == "x"

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "lists" / "train.txt"))

    monkeypatch.setattr(privvid.shards, "export", full_disk)    # the system refusing mid-way is not a bug of privvid
    result = CliRunner().invoke(app, ["export", str(tmp_path), "--format", "csv", "--out", str(tmp_path / "lists")])
    assert result.exit_code == 1 and "internal error" not in result.output, result.output
    assert f"{tmp_path / 'lists' / 'train.txt'}: No space left on device" in result.output


def test_an_error_is_printed_as_written_not_read_as_markup(tmp_path):
    proc = run("average", str(tmp_path / "a"), str(tmp_path / "b"), "--weights", "nan,nan", "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and "(got [nan, nan], sum nan)" in proc.stderr, proc.stderr

