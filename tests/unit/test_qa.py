"""QA: dataset scan, seeded balanced sampling, verdict validation, Wilson intervals and reports."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from privvid.cli.main import app
from privvid.qa import QAError, choose, report, sample, scan, wilson
from privvid.qa.dataset import FLAT_CLASS, AnonClip
from privvid.qa.sample import frame_positions, grab_frames
from privvid.qa.sheet import validate_verdicts, write_sheet
from privvid.io.video import VideoWriter


def _clip(path: Path, value: int, frames: int = 8, size=(48, 32)) -> Path:
    """Frame i has brightness value + 10 i."""
    w, h = size
    with VideoWriter(path, w, h, 10) as writer:
        for i in range(frames):
            writer.write(np.full((h, w, 3), min(255, value + 10 * i), np.uint8))
    return path


def _anon_dataset(root: Path, originals: Path, layout: dict[str, int]) -> Path:
    """An anonymised-looking dataset: per class ``n`` mp4 + sidecar pointing at an original."""
    for label, n in layout.items():
        for i in range(n):
            rel = f"{label}/clip{i}" if label else f"clip{i}"
            original = _clip(originals / f"{rel}.mp4", 100, size=(96, 64))
            _clip(root / f"{rel}.mp4", 20)
            (root / f"{rel}.json").write_text(json.dumps({
                "privvid_version": "test", "mode": "remove", "input": {"path": str(original.resolve())},
                "backends": {"detector": {"name": "mediapipe"}}}))
    return root


def _cut_clip(path: Path) -> Path:
    """A 40-frame clip of noise (every frame costs bytes, so a cut loses frames) cut to its first quarter: the
    header still says 40 frames."""
    rng = np.random.default_rng(0)
    with VideoWriter(path, 64, 48, 10) as writer:
        for _ in range(40):
            writer.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 4])
    return path


def _fake(label: str, n: int) -> list[AnonClip]:
    return [AnonClip(f"{label}/c{i:02d}", label, Path(f"/x/{label}/c{i:02d}.mp4"), {}) for i in range(n)]


def test_choose_is_balanced_and_deterministic_per_seed() -> None:
    clips = _fake("a", 10) + _fake("b", 7) + _fake("c", 2)
    first = choose(clips, 4, seed=0)
    assert [c.rel for c in first] == [c.rel for c in choose(list(reversed(clips)), 4, seed=0)]
    per_class = {label: sum(c.label == label for c in first) for label in "abc"}
    assert per_class == {"a": 4, "b": 4, "c": 2}
    draws = {tuple(c.rel for c in choose(clips, 4, seed=s)) for s in range(8)}
    assert len(draws) > 1
    # a class's draw does not change when another class is added
    a_only = [c.rel for c in first if c.label == "a"]
    with_more = choose(clips + _fake("d", 5), 4, seed=0)
    assert [c.rel for c in with_more if c.label == "a"] == a_only
    with pytest.raises(QAError, match="at least 1"):
        choose(clips, 0, 0)


def test_frame_positions_cover_the_clip() -> None:
    assert frame_positions(60, 6) == [5, 15, 25, 35, 45, 55]
    assert frame_positions(3, 6) == [0, 1, 2]   # each frame once: a finding is not counted twice
    assert frame_positions(0, 2) == [0]


def test_scan_reads_class_tree_and_flat_tree(tmp_path: Path) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 2, "run": 1})
    _clip(root / "run" / "no_sidecar.mp4", 0)         # not a finished output
    (root / ".privvid").mkdir()
    _clip(root / ".privvid" / "tmp.mp4", 0)
    clips = scan(root)
    assert [(c.rel, c.label) for c in clips] == [("jump/clip0", "jump"), ("jump/clip1", "jump"), ("run/clip0", "run")]
    assert clips[0].original.is_file() and clips[0].removal_detector == "mediapipe"
    flat = scan(_anon_dataset(tmp_path / "flat", tmp_path / "orig2", {"": 2}))
    assert [c.label for c in flat] == [FLAT_CLASS, FLAT_CLASS]
    with pytest.raises(QAError, match="no anonymised clips"):
        scan(tmp_path / "orig")
    # a damaged sidecar is that clip's problem, named, not the end of the scan (it ended every qa command)
    (root / "run" / "clip0.json").write_text("{not json")
    clips = {c.rel: c for c in scan(root)}
    assert set(clips) == {"jump/clip0", "jump/clip1", "run/clip0"} and clips["jump/clip0"].problem == ""
    assert "not valid JSON" in clips["run/clip0"].problem and clips["run/clip0"].sidecar == {}
    with pytest.raises(QAError, match="is a file; give the folder"):
        scan(root / "jump" / "clip0.mp4")


def test_sample_extracts_matching_original_and_anonymised_frames(tmp_path: Path) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 3, "run": 1})
    res = sample(root, tmp_path / "qa", per_class=2, seed=5, frames=4, thumb_height=32)
    assert [i["class"] for i in res.items] == ["jump", "jump", "run"]
    assert res.short_classes == {"run": 1}
    import cv2

    item = res.items[0]
    assert len(item["original_frames"]) == len(item["anonymised_frames"]) == 4 and not item["problems"]
    orig = [cv2.imread(str(tmp_path / "qa" / f)) for f in item["original_frames"]]
    anon = [cv2.imread(str(tmp_path / "qa" / f)) for f in item["anonymised_frames"]]
    assert all(o.shape == a.shape == (32, 48, 3) for o, a in zip(orig, anon))
    # frames 1, 3, 5, 7 of 8: brightness 100+10i (original) and 20+10i (anonymised)
    np.testing.assert_allclose([o.mean() for o in orig], [110, 130, 150, 170], atol=4)
    np.testing.assert_allclose([a.mean() for a in anon], [30, 50, 70, 90], atol=4)
    again = sample(root, tmp_path / "qa2", per_class=2, seed=5, frames=4, thumb_height=32)
    assert [i["rel"] for i in again.items] == [i["rel"] for i in res.items]
    doc = json.loads((tmp_path / "qa" / "sample.json").read_text())
    assert doc["seed"] == 5 and doc["per_class"] == 2 and len(doc["items"]) == 3


@pytest.mark.parametrize("name", ["verdicts-ann.json", "verdicts.json"])   # the second: `qa serve` without --reviewer
def test_a_new_sample_over_verdicts_of_another_is_refused(tmp_path: Path, name: str) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 3, "run": 2})
    qa = tmp_path / "qa"
    first = sample(root, qa, per_class=2, seed=5, frames=2, thumb_height=32)
    (qa / name).write_text(json.dumps({"verdicts": {"0000": {"verdict": "pass"}}}))
    sample(root, qa, per_class=2, seed=5, frames=2, thumb_height=32)          # the same sample again: fine
    with pytest.raises(QAError, match=f"{name}.*id 0000 was"):
        sample(root, qa, per_class=2, seed=5, frames=2, thumb_height=32, order="random")
    assert [i["rel"] for i in json.loads((qa / "sample.json").read_text())["items"]] == [
        i["rel"] for i in first.items]                                        # nothing was overwritten


def test_sample_records_missing_or_unreadable_originals(tmp_path: Path) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 2})
    (tmp_path / "orig" / "jump" / "clip0.mp4").unlink()
    (tmp_path / "orig" / "jump" / "clip1.mp4").write_bytes(b"garbage")
    res = sample(root, tmp_path / "qa", per_class=2, seed=0, frames=2)
    problems = {i["rel"]: i["problems"] for i in res.items}
    assert "original not found" in problems["jump/clip0"][0]
    assert "original unreadable" in problems["jump/clip1"][0]
    assert all(len(i["anonymised_frames"]) == 2 for i in res.items)


def test_grab_frames_tolerates_overestimated_length(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses
    import importlib

    from privvid.qa.sample import grab_indexed_frames

    sample_module = importlib.import_module("privvid.qa.sample")  # the package's `sample` is the function

    clip = _clip(tmp_path / "c.mp4", 0, frames=3)
    frames = grab_frames(clip, 3)
    assert [round(float(f.mean()) / 10) for f in frames] == [0, 1, 2]
    # a container that says 9 frames but holds 3: the tail is the last frame with its own index, once (a
    # frame checked twice would count what the audit finds on it twice)
    real = sample_module.probe
    monkeypatch.setattr(sample_module, "probe", lambda p: dataclasses.replace(real(p), frames=9))
    got = grab_indexed_frames(clip, 3)
    assert [i for i, _ in got] == [1, 2] and [round(float(f.mean()) / 10) for _, f in got] == [1, 2]


def test_wilson_matches_hand_computed_values() -> None:
    z = 1.959963984540054
    # all failures: upper bound z^2 / (n + z^2); all successes: lower bound n / (n + z^2)
    assert wilson(0, 10) == pytest.approx((0.0, z * z / (10 + z * z)), abs=1e-12)
    assert wilson(10, 10)[0] == pytest.approx(10 / (10 + z * z), abs=1e-12)
    low, high = wilson(8, 10)          # textbook example: 0.490 - 0.943
    assert (round(low, 3), round(high, 3)) == (0.490, 0.943)
    low, high = wilson(578, 600)       # PPMA-sized QA: 96.3% of 600 clips
    p, n = 578 / 600, 600
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert (low, high) == pytest.approx((centre - half, centre + half), abs=1e-12)
    assert low < p < high
    assert wilson(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson(3, 2)


def _verdicts(path: Path, reviewer: str, entries: dict[str, tuple[str, str]],
              rels: dict[str, str] | None = None) -> Path:
    path.write_text(json.dumps({"reviewer": reviewer, "verdicts": {
        k: {"class": c, "rel": (rels or {}).get(k, f"{c}/{k}"), "verdict": v, "note": ""}
        for k, (c, v) in entries.items()}}))
    return path


def test_report_counts_per_class_and_unanimous_clips(tmp_path: Path) -> None:
    one = _verdicts(tmp_path / "r1.json", "ann", {
        "0000": ("jump", "pass"), "0001": ("jump", "pass"), "0002": ("jump", "person_visible"),
        "0003": ("run", "pass"), "0004": ("run", "artefact")})
    rep = report([one])
    assert rep["reviews"]["passed"] == 3 and rep["reviews"]["n"] == 5
    assert rep["per_class"]["jump"]["rate"] == pytest.approx(2 / 3)
    assert rep["per_class"]["jump"]["ci95"] == pytest.approx(list(wilson(2, 3)))
    assert rep["per_class"]["run"]["counts"] == {"pass": 1, "person_visible": 0, "artefact": 1, "occlusion": 0}
    two = _verdicts(tmp_path / "r2.json", "bo", {
        "0000": ("jump", "pass"), "0001": ("jump", "occlusion"), "0003": ("run", "pass")})
    both = report([one, two])
    assert both["reviews"]["passed"] == 5 and both["reviews"]["n"] == 8
    # clips 0000 and 0003 passed by everyone who saw them; 0001, 0002, 0004 did not
    assert (both["clips"]["passed"], both["clips"]["n"]) == (2, 5)
    sample_doc = {"items": [{"id": f"{i:04d}"} for i in range(7)]}
    assert report([one], sample_doc)["unreviewed"] == ["0005", "0006"]


def test_report_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(QAError, match="not found"):
        report([tmp_path / "nope.json"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"verdicts": {"0000": {"class": "a", "verdict": "maybe"}}}))
    with pytest.raises(QAError, match="verdict must be one of"):
        report([bad])
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"verdicts": {}}))
    with pytest.raises(QAError, match="no verdicts"):
        report([empty])


def test_report_refuses_verdicts_of_another_sample_a_file_twice_and_a_csv_that_is_no_audit(tmp_path: Path) -> None:
    # clip ids (0000, 0001, ...) name other clips in another sample: merging them made a kappa of nothing
    def save(name: str, sample: dict, rel: str = "jump/a") -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"reviewer": name, "sample": sample, "verdicts": {
            "0000": {"class": "jump", "rel": rel, "verdict": "pass"}}}))
        return path

    ours = {"dataset": "/d", "seed": 0, "per_class": 4}
    ann, bob = save("ann", ours), save("bob", ours)
    zed = save("zed", {"dataset": "/other", "seed": 7, "per_class": 9}, rel="run/b")
    assert report([ann, bob])["agreement"]["cohen"]["ann / bob"]["clips"] == 1
    with pytest.raises(QAError, match="zed.json holds verdicts on another sample than .*ann.json"):
        report([ann, zed])
    sample_doc = {**ours, "items": [{"id": "0000", "class": "jump", "rel": "jump/a"}]}
    with pytest.raises(QAError, match="another sample than --sample"):
        report([zed], sample_doc)
    # the same sample after its dataset moved (the folder's name is kept) is the same sample
    assert report([save("later", {**ours, "dataset": "/mnt/new/d"})], sample_doc)["reviews"]["n"] == 1
    moved = save("moved", ours, rel="jump/other")
    with pytest.raises(QAError, match="clip 0000 is jump/other there and jump/a in --sample"):
        report([moved], sample_doc)
    with pytest.raises(QAError, match="given twice"):
        report([ann, tmp_path / "." / "ann.json"])
    # a copy under another name: the same reviewer twice (it was counted as "ann (1)" and "ann (2)")
    shutil.copyfile(ann, tmp_path / "ann copy.json")
    with pytest.raises(QAError, match="both hold reviewer 'ann'"):
        report([ann, tmp_path / "ann copy.json"])
    # drawn again with another seed over saved verdicts (qa sample allows it when the ids keep their clips):
    # the same clips under the same ids are the same sample
    reseeded = {**sample_doc, "seed": 1}
    assert report([ann, bob], reseeded)["reviews"]["n"] == 2
    assert report([ann, save("cy", {**ours, "seed": 1})])["reviews"]["n"] == 2
    # ... but not another dataset with the same clip names (a blur and a remove output of one input), nor
    # ids the other side does not have
    with pytest.raises(QAError, match="another sample"):
        report([ann, save("dee", {**ours, "dataset": "/d_blur"})])
    with pytest.raises(QAError, match="another sample"):
        report([ann], {**reseeded, "items": [{"id": "0001", "class": "jump", "rel": "jump/a"}]})
    not_audit = tmp_path / "clip.mp4"
    not_audit.write_bytes(b"\x00\x01 not a csv")
    with pytest.raises(QAError, match="not a qa audit CSV"):
        report([ann], audit_csv=not_audit)
    other = tmp_path / "audit.csv"
    other.write_text("rank,rel,flagged,reason\n1,run/zz,True,person hits\n")
    with pytest.raises(QAError, match="covers none of the reviewed clips"):
        report([ann], audit_csv=other)
    # the same clip names in an output of another mode are other clips: told by the sample or the verdicts
    blurred = tmp_path / "blurred.csv"
    blurred.write_text("rank,rel,mode,flagged,reason\n1,jump/a,blur,False,\n")
    with pytest.raises(QAError, match="is of blur clips, the reviewed clip 0000 .jump/a. is a remove clip"):
        report([ann], {**sample_doc, "items": [{**sample_doc["items"][0], "mode": "remove"}]}, audit_csv=blurred)
    with_mode = tmp_path / "with_mode.json"
    with_mode.write_text(json.dumps({"reviewer": "m", "sample": ours, "verdicts": {
        "0000": {"class": "jump", "rel": "jump/a", "mode": "remove", "verdict": "pass"}}}))
    with pytest.raises(QAError, match="is of blur clips"):
        report([with_mode], audit_csv=blurred)
    assert report([ann], audit_csv=blurred)["audit"][0]["audit_flagged"] is False   # no mode known: as before
    blurred.write_text("rank,rel,mode,flagged,reason\n1,jump/a,remove,True,person on 2/16 frames\n")
    assert report([with_mode], audit_csv=blurred)["audit"][0]["audit_flagged"] is True


def test_validate_verdicts_fills_class_from_the_sample() -> None:
    sample_doc = {"dataset": "/d", "seed": 1, "per_class": 4,
                  "items": [{"id": "0000", "class": "jump", "rel": "jump/a"}]}
    doc = validate_verdicts({"reviewer": "x", "verdicts": {"0000": {"verdict": "occlusion", "note": "hand"}}}, sample_doc)
    assert doc["verdicts"]["0000"]["class"] == "jump" and doc["verdicts"]["0000"]["note"] == "hand"
    assert doc["verdicts"]["0000"]["mode"] == ""   # the sample's mode, kept with the verdict (none given here)
    with_mode = {**sample_doc, "items": [{**sample_doc["items"][0], "mode": "blur"}]}
    assert validate_verdicts({"verdicts": {"0000": {"verdict": "pass"}}}, with_mode)["verdicts"]["0000"]["mode"] == "blur"
    with pytest.raises(QAError, match="unknown clip"):
        validate_verdicts({"verdicts": {"0009": {"verdict": "pass"}}}, sample_doc)
    with pytest.raises(QAError, match="must be one of"):
        validate_verdicts({"verdicts": {"0000": {"verdict": "fine"}}}, sample_doc)


def test_sheet_embeds_items_and_cli_report(tmp_path: Path) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 2})
    runner = CliRunner()
    result = runner.invoke(app, ["qa", "sample", str(root), "--per-class", "1", "--seed", "0", "--out", str(tmp_path / "qa")])
    assert result.exit_code == 0, result.output
    page = write_sheet(tmp_path / "qa").read_text()
    item = json.loads((tmp_path / "qa" / "sample.json").read_text())["items"][0]
    assert item["rel"] in page and item["original_frames"][0] in page
    # a clip named like markup stays data: "<!--<script>" in the inline JSON swallowed the page's own script
    doc = json.loads((tmp_path / "qa" / "sample.json").read_text())
    doc["items"][0]["rel"] = "jump/<!--<script>x"
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "sample.json").write_text(json.dumps(doc))
    odd = write_sheet(tmp_path / "odd").read_text()
    block = odd.split('<script id="qa-data" type="application/json">', 1)[1].split("</script>", 1)[0]
    assert "<" not in block and json.loads(block)["items"][0]["rel"] == "jump/<!--<script>x"
    assert odd.count("<script") == page.count("<script")
    for verdict in ("pass", "person_visible", "artefact", "occlusion"):
        assert f'"{verdict}"' in page
    verdicts = _verdicts(tmp_path / "v.json", "ann", {item["id"]: ("jump", "person_visible")},
                         rels={item["id"]: item["rel"]})
    # outputs that cannot be written are refused before the report is printed
    for flag, where, words in (("--json", tmp_path / "qa", "is a folder"),
                               ("--markdown", tmp_path / "v.json" / "rep.md", "is a file, not a folder")):
        result = runner.invoke(app, ["qa", "report", str(verdicts), "--sample", str(tmp_path / "qa"), flag, str(where)])
        assert result.exit_code == 2 and words in result.output and "QA verdicts" not in result.output, result.output
    result = runner.invoke(app, ["qa", "report", str(verdicts), "--sample", str(tmp_path / "qa"),
                                 "--json", str(tmp_path / "new" / "rep.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "new" / "rep.json").read_text())["reviews"]["passed"] == 0
    result = runner.invoke(app, ["qa", "sheet", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "qa sample" in result.output


def test_audit_crops_cover_the_frame_with_overlap() -> None:
    from privvid.qa.audit import crops

    frame = np.arange(100 * 160 * 3, dtype=np.uint32).reshape(100, 160, 3)
    assert crops(frame, 1) == []
    tiles = crops(frame, 2)
    assert len(tiles) == 4
    covered = np.zeros((100, 160), bool)
    for crop, share in tiles:
        assert crop.shape[:2] == (60, 96) and share == pytest.approx(0.36)
        # locate each crop by its first pixel value
        y, x = divmod(int(crop[0, 0, 0]) // 3, 160)
        covered[y:y + 60, x:x + 96] = True
    assert covered.all()


def test_removal_detector_name_from_either_sidecar_layout() -> None:
    flat = AnonClip("a/b", "a", Path("x.mp4"), {"backends": {"detector": {"name": "yolo"}}})
    chain = AnonClip("a/b", "a", Path("x.mp4"), {"backends": {"detector": {
        "backend": "mediapipe", "detector": {"name": "mediapipe", "models": []}, "tracker": {"name": "iou"}}}})
    assert flat.removal_detector == "yolo" and chain.removal_detector == "mediapipe"
    assert AnonClip("a", "(all)", Path("x.mp4"), {}).removal_detector is None


def test_scan_everything_includes_videos_without_a_sidecar(tmp_path: Path) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})
    _clip(root / "jump" / "dropped.mp4", 0)
    shutil.copyfile(root / "jump" / "dropped.mp4", root / "run.MKV")
    (root / "jump" / ".hidden.mp4").write_bytes(b"x")
    (root / ".privvid").mkdir()
    _clip(root / ".privvid" / "tmp.mp4", 0)
    (root / "jump" / "notes.txt").write_text("not a video")
    clips = scan(root, everything=True)
    assert [(c.rel, c.label, c.has_sidecar) for c in clips] == [
        ("jump/clip0", "jump", True), ("jump/dropped", "jump", False), ("run.MKV", FLAT_CLASS, False)]
    assert [c.rel for c in scan(root)] == ["jump/clip0"]  # the sample still takes privvid outputs only
    (tmp_path / "empty").mkdir()
    with pytest.raises(QAError, match="no video files"):
        scan(tmp_path / "empty", everything=True)


class _NoHits:
    """A checker that never finds anything (the audit's logic without MediaPipe)."""

    name = "none-found"

    def __call__(self, frame: np.ndarray) -> list[tuple[float, float]]:
        return []

    def close(self) -> None:
        pass


def test_audit_flags_a_video_without_a_sidecar_and_the_cli_exits_1(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import importlib

    from privvid.qa import AuditConfig, audit

    audit_module = importlib.import_module("privvid.qa.audit")  # the package's `audit` is the function

    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 2})
    shutil.copyfile(tmp_path / "orig" / "jump" / "clip0.mp4", root / "jump" / "raw_copy.mp4")  # no sidecar
    result = audit(root, AuditConfig(frames=2), checkers=(_NoHits(), None))
    rows = {r.rel: r for r in result.rows}
    assert set(rows) == {"jump/clip0", "jump/clip1", "jump/raw_copy"}
    raw = rows["jump/raw_copy"]
    assert raw.flagged and not raw.sidecar and raw.rank == 1 and raw.frames_checked == 2
    assert "no sidecar" in raw.reason and "raw file" in raw.reason
    assert not rows["jump/clip0"].flagged and rows["jump/clip0"].sidecar and rows["jump/clip0"].reason == ""

    monkeypatch.setattr(audit_module, "make_checkers", lambda cfg: (_NoHits(), None))
    runner = CliRunner()
    out = tmp_path / "audit.csv"
    cli = runner.invoke(app, ["qa", "audit", str(root), "--frames", "2", "--out", str(out)])
    assert cli.exit_code == 1 and "internal error" not in cli.output, cli.output
    with open(out, newline="") as handle:
        csv_rows = {r["rel"]: r for r in csv.DictReader(handle)}
    assert csv_rows["jump/raw_copy"]["flagged"] == "True" and "no sidecar" in csv_rows["jump/raw_copy"]["reason"]
    assert json.loads(out.with_suffix(".json").read_text())["without_sidecar"] == 1
    (root / "jump" / "raw_copy.mp4").unlink()
    clean = runner.invoke(app, ["qa", "audit", str(root), "--frames", "2", "--out", str(out)])
    assert clean.exit_code == 0, clean.output
    # the input folder holds no sidecar: the audit does not write into it unless told where
    raw = runner.invoke(app, ["qa", "audit", str(tmp_path / "orig"), "--frames", "2"])
    assert raw.exit_code == 2 and "--out" in raw.output and not (tmp_path / "orig" / ".privvid").exists(), raw.output
    told = runner.invoke(app, ["qa", "audit", str(tmp_path / "orig"), "--frames", "2", "--out", str(tmp_path / "r.csv")])
    assert told.exit_code == 1 and (tmp_path / "r.csv").is_file(), told.output   # raw clips: all flagged


def test_sample_finds_originals_from_the_input_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sidecars name each input relative to anonymize's IN (never its absolute path): `--originals IN`
    tells the sample where the originals are; without it each clip says what is missing."""
    from fakes import moving_square_frames, write_video
    from privvid.anonymize import anonymize_dataset
    from privvid.config import AnonymizeConfig, DetectConfig

    src, out = tmp_path / "in", tmp_path / "out"
    for label in ("jump", "run"):
        write_video(src / label / "a.mp4", moving_square_frames(6))
    anonymize_dataset(src, out, AnonymizeConfig(mode="blur", detect=DetectConfig(backend="fakes:ColorKeyDetector")))
    monkeypatch.chdir(tmp_path)
    found = sample(out, tmp_path / "qa", per_class=1, seed=0, frames=2, originals=Path("in"))   # relative IN
    assert all(len(i["original_frames"]) == 2 and not i["problems"] for i in found.items)
    # sample.json names the original so that it is found from anywhere (the page is served from elsewhere)
    assert all(Path(i["original"]) == (src / i["class"] / "a.mp4").resolve() for i in found.items)
    unknown = sample(out, tmp_path / "qa2", per_class=1, seed=0, frames=2)
    assert all("--originals" in i["problems"][0] for i in unknown.items)


def test_kappa_against_hand_computed_examples() -> None:
    from privvid.qa.report import cohen_kappa, fleiss_kappa

    # two reviewers, 10 clips: agree on 7 (5 pass, 2 person_visible); p_o = 0.7
    a = ["pass"] * 6 + ["person_visible"] * 4
    b = ["pass"] * 5 + ["person_visible"] + ["person_visible"] * 2 + ["pass"] * 2
    # marginals: a pass 0.6 / pv 0.4, b pass 0.7 / pv 0.3 -> p_e = 0.42 + 0.12 = 0.54; kappa = 0.16 / 0.46
    assert cohen_kappa(a, b) == pytest.approx(0.16 / 0.46)
    assert cohen_kappa(["pass"] * 3, ["pass"] * 3) is None
    # Fleiss: 3 clips x 3 reviewers, categories pass / artefact
    ratings = [["pass", "pass", "pass"], ["pass", "pass", "artefact"], ["artefact", "artefact", "artefact"]]
    # P_i = 1, 1/3, 1 -> P_bar = 7/9; p_pass = 5/9, p_art = 4/9 -> P_e = 41/81; kappa = (63/81 - 41/81) / (40/81)
    assert fleiss_kappa(ratings) == pytest.approx(22 / 40)


def test_report_with_three_reviewers_merges_lists_ties_and_sets_the_audit_beside(tmp_path: Path) -> None:
    from privvid.qa.report import report, report_markdown

    def save(name: str, verdicts: dict[str, str]) -> Path:
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps({"reviewer": name, "verdicts": {
            clip: {"class": "c", "rel": f"c/{clip}", "verdict": v} for clip, v in verdicts.items()}}))
        return path

    files = [save("ann", {"1": "pass", "2": "pass", "3": "person_visible", "4": "pass"}),
             save("bob", {"1": "pass", "2": "artefact", "3": "person_visible", "4": "occlusion"}),
             save("cy", {"1": "pass", "2": "pass", "3": "pass"})]
    audit = tmp_path / "audit.csv"
    audit.write_text("rank,rel,flagged,reason\n1,c/3,True,person hits\n2,c/2,False,\n3,c/1,False,\n4,c/4,False,\n")
    rep = report(files, audit_csv=audit)
    ag = rep["agreement"]
    assert {k: (v["passed"], v["n"]) for k, v in ag["per_reviewer"].items()} == {"ann": (3, 4), "bob": (1, 4),
                                                                                "cy": (3, 3)}
    assert ag["merged"] == {"1": "pass", "2": "pass", "3": "person_visible"} and ag["ties"] == ["4"]
    assert [d["clip"] for d in ag["disagreements"]] == ["2", "3", "4"]
    assert ag["fleiss"]["clips"] == 3 and ag["cohen"]["ann / bob"]["clips"] == 4
    assert rep["clips"]["passed"] == 1 and rep["reviews"]["n"] == 11 and rep["reviews"]["passed"] == 7
    flags = {b["clip"]: b["audit_flagged"] for b in rep["audit"]}
    # clip 4 is a tie between a pass and a fail: the audit passed it, so it is listed beside clip 3's kind
    assert flags == {"1": False, "2": False, "3": True, "4": False} and rep["audit_missed"] == ["4"]
    text = report_markdown(rep)
    assert "| ann | 75.0% (3/4)" in text and "ties to adjudicate: 4" in text and "Fleiss' kappa" in text
    assert "disagree on: 3 (2, 3, 4)" in text and "the audit passed (4)" in text
    assert "| 4 | `c/4` | pass, occlusion | tie | passed |" in text
    assert "| 3 | `c/3` | person_visible, person_visible, pass | person_visible | flagged: person hits |" in text


class _PersonAt:
    """A person checker that finds one person at a fixed box (shares of the frame) on the whole frame."""

    name = "fixed-person"

    def __init__(self, box: tuple[float, float, float, float]) -> None:
        self.box = box

    def __call__(self, frame: np.ndarray) -> list[tuple]:
        return [(0.9, 0.1, self.box)] if frame.shape[1] == 48 else []   # whole frame only, not the tiles

    def close(self) -> None:
        pass


def test_audit_of_a_mesh_clip_does_not_count_the_drawn_body_as_a_person(tmp_path: Path) -> None:
    from privvid.qa import AuditConfig, audit
    from privvid.qa.audit import on_body

    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})
    side_path = root / "jump" / "clip0.json"
    side = json.loads(side_path.read_text())
    # the body was drawn in the left half of the 48x32 frame on every frame
    side.update(mode="mesh", output={"width": 48, "height": 32},
                mesh={"per_frame": [{"frame": i, "people": [], "drawn": [[2, 4, 22, 30]]} for i in range(8)]})
    side_path.write_text(json.dumps(side))
    # a green scene with the grey body drawn there
    scene = np.zeros((32, 48, 3), np.uint8)
    scene[:] = (40, 140, 60)
    body = scene.copy()
    body[6:28, 6:18] = (150, 150, 150)

    def write(frame: np.ndarray) -> None:
        with VideoWriter(root / "jump" / "clip0.mp4", 48, 32, 10) as writer:
            for _ in range(8):
                writer.write(frame)

    write(body)
    cfg = AuditConfig(frames=4, face=False, tiles=1)
    on_mannequin = audit(root, cfg, checkers=(_PersonAt((0.1, 0.2, 0.45, 0.9)), None)).rows[0]
    assert not on_mannequin.flagged and on_mannequin.person_hits == 0 and on_mannequin.person_on_body == 4
    beside = audit(root, cfg, checkers=(_PersonAt((0.55, 0.2, 0.95, 0.9)), None)).rows[0]
    assert beside.flagged and beside.person_hits == 4 and beside.person_on_body == 0
    # a real person (coloured: skin, clothes) standing where the body was drawn is a person, not the mannequin
    person = scene.copy()
    person[6:12, 8:16] = (200, 150, 120)
    person[12:28, 6:18] = (30, 60, 160)
    write(person)
    standing_there = audit(root, cfg, checkers=(_PersonAt((0.1, 0.2, 0.45, 0.9)), None)).rows[0]
    assert standing_there.flagged and standing_there.person_hits == 4 and standing_there.person_on_body == 0
    # in a black-and-white clip nothing tells them apart: a person on a body is taken for it, as before
    write(np.full((32, 48, 3), 120, np.uint8))
    grey_clip = audit(root, cfg, checkers=(_PersonAt((0.1, 0.2, 0.45, 0.9)), None)).rows[0]
    assert not grey_clip.flagged and grey_clip.person_on_body == 4
    write(body)
    # the same hit on a remove clip counts: only a mesh clip's drawn bodies explain a person
    side["mode"] = "remove"
    side_path.write_text(json.dumps(side))
    removed = audit(root, cfg, checkers=(_PersonAt((0.1, 0.2, 0.45, 0.9)), None)).rows[0]
    assert removed.flagged and removed.person_hits == 4
    # a hit that only grazes a body, or has no box, is a person
    assert not on_body((0.9, 0.1, (0.3, 0.0, 0.9, 1.0)), [(0.0, 0.0, 0.4, 1.0)])
    assert not on_body((0.9, 0.1), [(0.0, 0.0, 1.0, 1.0)])


def test_the_coarse_mask_of_a_frame_reads_back() -> None:
    from privvid.io.masks import GRID, coarse_mask, read_coarse_mask

    mask = np.zeros((240, 432), bool)
    mask[30:120, 54:108] = True        # cells 4-5 .. 7 across (13.5 px each), rows 2 .. 8 (13.3 px each)
    mask[200:203, 300:303] = True      # 9 pixels: under half of any cell
    cells = read_coarse_mask(coarse_mask(mask))
    assert cells is not None and cells.shape == (GRID[1], GRID[0])
    rows, cols = np.nonzero(cells)
    assert set(rows) == set(range(2, 9)) and set(cols) == set(range(4, 8))
    assert len(coarse_mask(mask)) == 96 and read_coarse_mask(coarse_mask(np.ones((7, 5), bool))).all()
    for bad in ("not base64!", "AAAA", coarse_mask(mask) + "AAAA", 12, None):
        assert read_coarse_mask(bad) is None


def test_audit_of_a_blurred_pixelated_or_filled_clip_does_not_count_the_person_it_kept(tmp_path: Path) -> None:
    """Blur, pixelate and solid keep the person's shape where they were: a person found on the region the
    clip anonymised (its sidecar's coarse grid) is that, not a person left in the frame; a face still counts
    there, except under a solid fill."""
    from privvid.io.masks import coarse_mask
    from privvid.qa import AuditConfig, audit

    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})
    side_path = root / "jump" / "clip0.json"
    side = json.loads(side_path.read_text())
    mask = np.zeros((32, 48), bool)
    mask[4:30, 2:22] = True            # the left of the frame was anonymised on every frame
    side.update(output={"width": 48, "height": 32}, config={"check": {"enabled": False}},
                coverage={"per_frame": [float(mask.mean())] * 8, "grid": [coarse_mask(mask)] * 8})
    cfg = AuditConfig(frames=4, tiles=1)
    on_left, on_right = _PersonAt((0.1, 0.2, 0.45, 0.9)), _PersonAt((0.55, 0.2, 0.95, 0.9))
    for mode in ("blur", "pixelate", "solid"):
        side_path.write_text(json.dumps({**side, "mode": mode}))
        kept = audit(root, cfg, checkers=(on_left, None)).rows[0]
        assert (kept.flagged, kept.person_hits, kept.person_on_cover, kept.check) == (False, 0, 4, "n/a"), mode
        left = audit(root, cfg, checkers=(on_right, None)).rows[0]
        assert (left.flagged, left.person_hits, left.person_on_cover) == (True, 4, 0), mode
        face = audit(root, cfg, checkers=(None, on_left)).rows[0]
        assert face.face_hits == (0 if mode == "solid" else 4), mode
    # remove mode: a person on the removed region is one the fill put back, and counts
    side_path.write_text(json.dumps({**side, "mode": "remove"}))
    assert audit(root, cfg, checkers=(on_left, None)).rows[0].person_hits == 4
    # a sidecar without the grid (written before it was recorded): every hit counts, as before; so does
    # one whose grid disagrees with the coverage beside it (an edited sidecar: the whole frame "anonymised"
    # while nothing was), or has another number of frames, and a hit whose box is not a number
    everything = coarse_mask(np.ones((32, 48), bool))
    for coverage in ({}, {"per_frame": [0.0] * 8, "grid": [everything] * 8},
                     {"per_frame": [float(mask.mean())] * 4, "grid": [coarse_mask(mask)] * 8}):
        side_path.write_text(json.dumps({**side, "mode": "pixelate", "coverage": coverage}))
        assert audit(root, cfg, checkers=(on_left, None)).rows[0].person_hits == 4, coverage
    side_path.write_text(json.dumps({**side, "mode": "solid"}))
    nan = audit(root, cfg, checkers=(_PersonAt((float("nan"), 0.2, 0.45, 0.9)), None)).rows[0]
    assert (nan.person_hits, nan.person_on_cover) == (4, 0)


def test_drawn_boxes_are_the_rendered_pieces() -> None:
    from privvid.mesh.stage import drawn_boxes

    cover = np.zeros((20, 30), bool)
    cover[2:10, 3:8] = True
    cover[12:18, 20:29] = True
    cover[0, 29] = True                  # a stray pixel is no body
    assert drawn_boxes(cover) == [[3, 2, 8, 10], [20, 12, 29, 18]]


def _mesh_clip(root: Path, head: tuple[int, int, int], background: tuple[int, int, int]) -> Path:
    """A 48x32 mesh-mode clip: a grey body drawn at [2, 4, 22, 30] on ``background``, a ``head`` patch."""
    path = root / "clip.mp4"
    with VideoWriter(path, 48, 32, 10) as writer:
        for _ in range(8):
            frame = np.full((32, 48, 3), background, np.uint8)
            frame[4:30, 2:22] = 150
            frame[6:14, 9:17] = head
            writer.write(frame)
    (root / "clip.json").write_text(json.dumps({
        "privvid_version": "test", "mode": "mesh", "output": {"width": 48, "height": 32},
        "mesh": {"per_frame": [{"frame": i, "people": [], "drawn": [[2, 4, 22, 30]]} for i in range(8)]}}))
    return path


def test_audit_of_a_mesh_clip_takes_only_a_grey_face_on_a_body_for_its_head(tmp_path: Path) -> None:
    from privvid.qa import AuditConfig, audit

    face = _PersonAt((0.2, 0.2, 0.35, 0.4))                 # the head patch
    cases = {"grey head": ((150, 150, 150), (0, 128, 128), 0),
             "skin": ((200, 150, 120), (0, 128, 128), 4),    # a real face on the body's box counts
             "black and white": ((150, 150, 150), (90, 90, 90), 4)}
    for name, (head, background, counted) in cases.items():
        root = tmp_path / name.replace(" ", "_")
        root.mkdir()
        _mesh_clip(root, head, background)
        row = audit(root, AuditConfig(frames=4, tiles=1), checkers=(None, face)).rows[0]
        assert (row.face_hits, row.face_on_body) == (counted, 4 - counted), name


def test_audit_maps_a_crops_boxes_onto_the_frame() -> None:
    from privvid.qa.audit import _check

    class InCrops:
        def __call__(self, frame):
            return [] if frame.shape[:2] == (32, 48) else [(0.9, 0.5, (0.5, 0.5, 1.0, 1.0))]

    found = _check(InCrops(), np.zeros((32, 48, 3), np.uint8), 2)
    # 2 x 2 crops of 19 x 29 px at y 0 / 13 and x 0 / 19: each hit holds the crop's lower right quarter
    boxes = sorted(tuple(round(v, 3) for v in hit[2]) for hit in found)
    assert boxes == [(0.302, 0.297, 0.604, 0.594), (0.302, 0.703, 0.604, 1.0),
                     (0.698, 0.297, 1.0, 0.594), (0.698, 0.703, 1.0, 1.0)]
    assert all(hit[1] == pytest.approx(0.5 * 19 * 29 / (32 * 48)) for hit in found)


def test_audit_and_sample_refuse_settings_that_would_check_nothing(tmp_path: Path) -> None:
    """A threshold of 1 or more counts no detection (every clip would pass), 0 or less every one; no tiles
    checks no frame; a thumbnail height of 0 cannot be drawn. Each is exit 2 before any clip."""
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})
    runner = CliRunner()
    for args in (["--threshold", "5"], ["--threshold", "1"], ["--threshold", "-1"], ["--tiles", "0"], ["--top", "-1"]):
        cli = runner.invoke(app, ["qa", "audit", str(root), "--frames", "2", "--out", str(tmp_path / "a.csv"), *args])
        assert cli.exit_code == 2, (args, cli.output)
        assert args[0] in cli.output
    assert not (tmp_path / "a.csv").exists()
    for args in (["--height", "0"], ["--height", "-5"], ["--height", "1"], ["--originals", str(tmp_path / "nowhere")]):
        cli = runner.invoke(app, ["qa", "sample", str(root), "--out", str(tmp_path / "qa"), *args])
        assert cli.exit_code == 2 and args[0] in cli.output, cli.output
    assert not (tmp_path / "qa").exists()


def test_a_short_clip_is_sampled_and_audited_one_frame_once(tmp_path: Path) -> None:
    """More frames asked for than the clip has: each frame once (a finding on one frame is one hit)."""
    from privvid.qa import AuditConfig, audit

    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})   # 8 frames a clip
    res = sample(root, tmp_path / "qa", per_class=1, seed=0, frames=50, thumb_height=32)
    assert len(res.items[0]["anonymised_frames"]) == 8 and len(res.items[0]["original_frames"]) == 8

    class _OneFrame:
        """A person on the first frame only (brightness 20 + 10 i: frame 0 is the darkest)."""
        name = "one"

        def __call__(self, frame: np.ndarray) -> list[tuple[float, float]]:
            return [(0.9, 0.1)] if frame.mean() < 25 else []

        def close(self) -> None:
            pass

    row = audit(root, AuditConfig(frames=16, tiles=1), checkers=(_OneFrame(), None)).rows[0]
    assert row.frames_checked == 8 and row.person_hits == 1 and not row.flagged
    assert row.person_frames == "0" and row.face_frames == ""   # where to look, in the CSV
    # a clip shorter than --min-hits is flagged when every frame of it has a finding
    short = tmp_path / "short"
    _anon_dataset(short, tmp_path / "orig_short", {"jump": 1})
    _clip(short / "jump" / "clip0.mp4", 20, frames=1)
    row = audit(short, AuditConfig(frames=16, tiles=1, min_hits=2), checkers=(_OneFrame(), None)).rows[0]
    assert row.frames_checked == 1 and row.person_hits == 1 and row.flagged
    assert row.reason == "person on 1/1 frames (0)", row.reason


def test_clips_written_in_part_are_flagged_by_the_audit_and_named_by_the_sample(tmp_path: Path) -> None:
    # a deleted video passed the audit unseen ("0 of 2 clips flagged" for 3 written); a damaged sidecar
    # stopped the audit and the sample at the first error; odd sidecar fields were internal errors
    from privvid.qa import AuditConfig, audit

    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 2, "run": 2})
    (root / "jump" / "clip1.mp4").unlink()                      # the video is gone, its sidecar stays
    (root / "run" / "clip0.json").write_text('{"broken": ')     # a damaged sidecar
    odd = json.loads((root / "run" / "clip1.json").read_text())
    (root / "run" / "clip1.json").write_text(json.dumps({**odd, "input": {"path": 5}}))
    (root / "notes.json").write_text('{"any": "other JSON"}')   # not a sidecar: not a clip
    rows = {r.rel: r for r in audit(root, AuditConfig(frames=2), checkers=(_NoHits(), None)).rows}
    assert set(rows) == {"jump/clip0", "jump/clip1", "run/clip0", "run/clip1"}
    gone, damaged = rows["jump/clip1"], rows["run/clip0"]
    assert gone.flagged and gone.in_part and "video missing" in gone.reason and gone.frames_checked == 0
    assert damaged.flagged and damaged.in_part and "not valid JSON" in damaged.reason and damaged.frames_checked == 2
    assert not rows["jump/clip0"].flagged and not rows["run/clip1"].flagged
    from privvid.qa import summary

    assert summary(audit(root, AuditConfig(frames=2), checkers=(_NoHits(), None)))["written_in_part"] == 2
    # the sample takes them too, each card naming its problem; input.path 5 is an unknown original
    result = sample(root, tmp_path / "qa", per_class=2, frames=2, preview_seconds=0)
    items = {i["rel"]: i for i in result.items}
    assert any("video missing" in p for p in items["jump/clip1"]["problems"])
    assert items["jump/clip1"]["anonymised_frames"] == []
    assert items["jump/clip1"]["original"] is not None   # its sidecar is read: the original is known
    assert any("not valid JSON" in p for p in items["run/clip0"]["problems"])
    assert any("original unknown" in p for p in items["run/clip1"]["problems"])
    assert items["jump/clip0"]["problems"] == []
    # a sidecar whose input is not an object is that clip's problem too
    (root / "run" / "clip1.json").write_text(json.dumps({**odd, "input": "x"}))
    assert "input must be a JSON object" in {c.rel: c for c in scan(root)}["run/clip1"].problem


def test_the_sample_names_a_cut_clip_and_is_never_written_into_the_dataset(tmp_path: Path) -> None:
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})
    _cut_clip(root / "jump" / "clip0.mp4")
    item = sample(root, tmp_path / "qa", per_class=1, frames=8, preview_seconds=0).items[0]
    assert any("anonymised clip: decoding stopped after frame" in p for p in item["problems"]), item["problems"]
    # the QA folder holds frames of the originals: inside the dataset it would be shared with it
    for inside in (root, root / "jump", root / "qa"):
        with pytest.raises(QAError, match="inside the dataset"):
            sample(root, inside, per_class=1)
    assert not (root / "qa").exists() and not (root / "jump" / "media").exists()
    cli = CliRunner().invoke(app, ["qa", "sample", str(root), "--out", str(root / "qa")])
    assert cli.exit_code == 2 and "inside the dataset" in " ".join(cli.output.split()), cli.output


def test_a_sample_file_that_is_not_one_is_named(tmp_path: Path) -> None:
    from privvid.qa.sample import load_sample

    (tmp_path / "qa").mkdir()
    for text in ('{"items": 5}', "[1, 2]", '{"items": [{"id": 1}]}', "{nope"):
        (tmp_path / "qa" / "sample.json").write_text(text)
        with pytest.raises(QAError, match="sample.json is not"):
            load_sample(tmp_path / "qa")
    cli = CliRunner().invoke(app, ["qa", "sheet", str(tmp_path / "qa")])
    assert cli.exit_code == 2 and "internal error" not in cli.output, cli.output
    (tmp_path / "data" / ".privvid").mkdir(parents=True)
    with pytest.raises(QAError, match="is an anonymised dataset, not a QA folder"):
        load_sample(tmp_path / "data")


def test_audit_flags_a_clip_that_decodes_only_in_part(tmp_path: Path) -> None:
    from privvid.qa import AuditConfig, audit

    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 1})
    _cut_clip(root / "jump" / "cut.mp4")
    (root / "jump" / "cut.json").write_text((root / "jump" / "clip0.json").read_text())
    rows = {r.rel: r for r in audit(root, AuditConfig(frames=8), checkers=(_NoHits(), None)).rows}
    assert rows["jump/cut"].flagged and "decoding stopped after frame" in rows["jump/cut"].reason, rows["jump/cut"]
    assert not rows["jump/clip0"].flagged


def test_the_audit_names_its_own_flag_for_a_missing_person_model(tmp_path):
    """`qa audit --person yolo` without a model file: the message names --person-weights (the audit's
    flag), not anonymize's --weights."""
    from fakes import moving_square_frames, write_video

    write_video(tmp_path / "set" / "a.mp4", moving_square_frames(4))
    result = CliRunner().invoke(app, ["qa", "audit", str(tmp_path / "set"), "--person", "yolo", "--out",
                                      str(tmp_path / "audit.csv")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "--person-weights" in text and " --weights" not in text, text
    assert "no YOLO segmentation weights given" in text, text   # was "not found at (no --weights given)"
    # an unknown checker names every choice, pose and none included
    result = CliRunner().invoke(app, ["qa", "audit", str(tmp_path / "set"), "--person", "foo", "--out",
                                      str(tmp_path / "audit.csv")])
    text = " ".join(result.output.split())
    assert result.exit_code == 2 and "--person must be pose, none or a detector backend" in text, text


def test_a_stopped_sample_leaves_the_qa_folder_as_it_was(tmp_path: Path) -> None:
    # Ctrl-C kept the frames and previews of the clips drawn so far (originals among them) with no sample.json
    root = _anon_dataset(tmp_path / "out", tmp_path / "orig", {"jump": 2, "run": 2})
    qa = tmp_path / "qa"

    def stop(_: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sample(root, qa, per_class=2, frames=2, preview_seconds=0, progress=stop)
    assert not qa.exists() or sorted(p.name for p in qa.iterdir()) == [], list(qa.rglob("*"))
    first = sample(root, qa, per_class=2, frames=2, preview_seconds=0)
    before = {p.relative_to(qa): p.read_bytes() for p in qa.rglob("*") if p.is_file()}
    assert len(first.items) == 4 and any(p.parts[0] == "media" for p in before)
    with pytest.raises(KeyboardInterrupt):
        sample(root, qa, per_class=2, frames=3, preview_seconds=0, progress=stop)
    after = {p.relative_to(qa): p.read_bytes() for p in qa.rglob("*") if p.is_file()}
    assert after == before   # the earlier sample, its media and sample.json, untouched
    again = sample(root, qa, per_class=1, frames=3, preview_seconds=0)   # a finished run replaces it whole
    media = sorted(p.name for p in (qa / "media").iterdir())
    assert len(again.items) == 2 and len(media) == 2 * 2 * 3
    assert sorted(p.name for p in qa.iterdir()) == ["media", "sample.json"]   # no staging folder, no lock left
    # a media/ folder that no sample lists is not replaced (a finished sample replaced it whole)
    mine = tmp_path / "project"
    (mine / "media").mkdir(parents=True)
    (mine / "media" / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(QAError, match="holds a media/ folder that no sample.json lists"):
        sample(root, mine, per_class=1, frames=2, preview_seconds=0)
    assert (mine / "media" / "holiday.jpg").read_bytes() == b"x"
    # one run at a time writes into a QA folder
    from privvid.runtime.lock import OutputLocked, RunLock

    with RunLock(qa, ".sample.lock", folder=qa, remove=True):
        with pytest.raises(OutputLocked, match="another privvid run is writing into"):
            sample(root, qa, per_class=1, frames=2, preview_seconds=0)
