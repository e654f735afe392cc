"""Shards, verify and export on generated anonymised datasets, read back by the real consumers' code
paths: the webdataset package, mmaction2's and VideoMAE's list parsing, privvid's engine."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import av
import pytest

from fakes import moving_square_frames, write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig
from privvid.errors import ConfigError
from privvid.shards import build, export, shard_key, verify

CFG = AnonymizeConfig(mode="solid", detect=DetectConfig(backend="fakes:ColorKeyDetector"))


def _dataset(tmp_path: Path, layout: dict[str, int]) -> Path:
    src, out = tmp_path / "in", tmp_path / "out"
    for rel, n in layout.items():
        write_video(src / rel, moving_square_frames(n))
    assert anonymize_dataset(src, out, CFG).count("done") == len(layout)
    return out


def test_labels_follow_the_layout_and_each_shard_holds_one_split(tmp_path):
    out = _dataset(tmp_path, {"arm/part1/c.mp4": 6, "arm/part2/d.mp4": 6, "tai_chi/part1/a.mp4": 6,
                              "tai_chi/part1/b.mp4": 6, "tai_chi/e.mp4": 6})
    manifest = build(out, tmp_path / "shards", val_fraction=0.34, seed=3, shard_size="1clips", name="nh")
    assert manifest["classes"] == ["arm", "tai_chi"]              # not "part1"
    assert manifest["per_class"] == {"arm": 2, "tai_chi": 3}
    assert manifest["splits"] == {"train": 3, "val": 2} and manifest["clips"] == 5 and manifest["frames"] == 30
    assert len(manifest["shards"]) == 5 and all(s["clips"] == 1 for s in manifest["shards"])
    for shard in manifest["shards"]:
        assert shard["file"].startswith(f"nh-{shard['split']}-")
        with tarfile.open(tmp_path / "shards" / shard["file"]) as tar:
            metas = [json.loads(tar.extractfile(m).read()) for m in tar if m.name.endswith(".json")]
        assert {m["split"] for m in metas} == {shard["split"]}
    assert verify(tmp_path / "shards") == []
    sheet = (tmp_path / "shards" / "datasheet.md").read_text()
    assert "mode `solid`" in sheet and "| arm | 2 |" in sheet
    rows = [json.loads(x) for x in (tmp_path / "shards" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all(len(r["sha256"]) == 64 and r["shard"] for r in rows)


def test_a_clip_with_little_scene_left_is_noted_and_named_in_the_datasheet(tmp_path):
    """A clip the mode anonymised almost whole (a close-up) is no scene to train on: said per clip, named per set."""
    from fakes import MAGENTA

    src, out = tmp_path / "in", tmp_path / "out"
    write_video(src / "jump" / "scene.mp4", moving_square_frames(6))
    closeup = [f.copy() for f in moving_square_frames(6)]
    for f in closeup:
        f[:, 4:] = MAGENTA                      # the "person" fills all but a 4-px strip of the frame
    write_video(src / "jump" / "closeup.mp4", closeup)
    assert anonymize_dataset(src, out, CFG).count("done") == 2
    notes = json.loads((out / "jump" / "closeup.json").read_text())["notes"]
    assert any(n.startswith("little scene left:") and "painted over" in n for n in notes), notes
    assert not any("little scene" in n for n in json.loads((out / "jump" / "scene.json").read_text())["notes"])
    manifest = build(out, tmp_path / "shards", val_fraction=0)
    assert manifest["parameters"]["little_scene"] == ["jump/closeup.mp4"]
    sheet = (tmp_path / "shards" / "datasheet.md").read_text()
    assert "little scene left (over 90% of the frame anonymised on average): 1 of 2 (`jump/closeup.mp4`)" in sheet


def test_split_trees_and_split_csv(tmp_path):
    out = _dataset(tmp_path, {"train/jump/a.mp4": 4, "train/run/b.mp4": 4, "val/jump/c.mp4": 4, "val/run/d.mp4": 4})
    manifest = build(out, tmp_path / "s1")
    assert manifest["classes"] == ["jump", "run"] and manifest["splits"] == {"train": 2, "val": 2}
    assert manifest["split_source"] == "tree"
    subset = tmp_path / "subset.csv"
    subset.write_text("label,key,path,split\njump,a,x/a.mp4,val\nrun,d,y/d.mp4,train\n")
    picked = build(out, tmp_path / "s2", split_from=subset)
    assert picked["splits"] == {"train": 1, "val": 1} and picked["left_out"] == 2


def test_shard_keys_stay_unique_when_names_differ_only_in_dots(tmp_path):
    assert shard_key("c/a.b.mp4") != shard_key("c/a_b.mp4") and "." not in shard_key("c/a.b.mp4")
    assert shard_key("c/a%2eb.mp4") != shard_key("c/a.b.mp4")
    out = _dataset(tmp_path, {"jumping/a.b.mp4": 4, "jumping/a_b.mp4": 4})
    manifest = build(out, tmp_path / "shards")
    with tarfile.open(tmp_path / "shards" / manifest["shards"][0]["file"]) as tar:
        keys = [n.rsplit(".", 1)[0] for n in tar.getnames() if n.endswith(".mp4")]
    assert len(keys) == 2 and len(set(keys)) == 2


def test_the_webdataset_package_reads_every_clip(tmp_path):
    wds = pytest.importorskip("webdataset")
    out = _dataset(tmp_path, {"jump/a.mp4": 5, "jump/b.mp4": 7, "run/c.mp4": 6})
    manifest = build(out, tmp_path / "shards", shard_size="2clips")
    urls = [str(tmp_path / "shards" / s["file"]) for s in manifest["shards"]]
    frames = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        with av.open(io.BytesIO(sample["mp4"])) as container:
            frames[meta["path"]] = sum(1 for _ in container.decode(video=0))
    assert frames == {"jump/a.mp4": 5, "jump/b.mp4": 7, "run/c.mp4": 6}


def test_verify_names_each_problem(tmp_path):
    out = _dataset(tmp_path, {"jump/a.mp4": 4, "run/b.mp4": 4})
    folder = tmp_path / "shards"
    manifest = build(out, folder)
    shard = folder / manifest["shards"][0]["file"]
    good = shard.read_bytes()
    flipped = bytearray(good)
    flipped[700] ^= 0xFF
    shard.write_bytes(bytes(flipped))
    assert any("sha256" in p for p in verify(folder))
    shard.write_bytes(good[: len(good) // 2])
    problems = verify(folder)
    assert any("truncated" in p for p in problems) and any("bytes" in p for p in problems)
    with tarfile.open(shard, "w") as tar:   # a member that would escape an extraction folder
        info = tarfile.TarInfo("../x.mp4")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert any("unsafe member name '../x.mp4'" in p for p in verify(folder))


def _mmaction_parse(list_file: Path, data_prefix: Path) -> list[tuple[Path, int]]:
    """As mmaction2's VideoDataset.load_data_list reads an ann_file: split on the delimiter (a space),
    first field the filename joined to data_prefix, the rest the label(s)."""
    items = []
    for line in list_file.read_text().splitlines():
        fields = line.strip().split(" ")
        filename, label = fields[0], [int(x) for x in fields[1:]]
        items.append((data_prefix / filename, label[0]))
    return items


def test_exports_load_the_way_their_consumers_read_them(tmp_path, monkeypatch):
    pd = pytest.importorskip("pandas")
    out = _dataset(tmp_path, {"jump/a.mp4": 4, "jump/b.mp4": 4, "run/c.mp4": 4, "run/d.mp4": 4})
    folder = tmp_path / "shards"
    build(out, folder, val_fraction=0.5, seed=0)
    lists = tmp_path / "lists"
    export(folder, "mmaction", lists)
    for split in ("train", "val"):
        items = _mmaction_parse(lists / f"{split}.txt", lists)
        assert len(items) == 2 and all(p.is_file() for p, _ in items)
        assert sorted(label for _, label in items) == [0, 1]
    export(folder, "videomae", tmp_path / "vm")
    monkeypatch.chdir(tmp_path / "in")   # VideoMAE opens the paths as given, from wherever it runs
    for name in ("train.csv", "val.csv", "test.csv"):
        table = pd.read_csv(tmp_path / "vm" / name, header=None, delimiter=" ")
        assert len(table) == 2 and all(Path(p).is_file() for p in table.values[:, 0])
        assert sorted(table.values[:, 1].tolist()) == [0, 1]
    # without a val or test split VideoMAE's fine-tuning has no val.csv / test.csv to read: said
    build(out, tmp_path / "train_only", val_fraction=0.0)
    result = export(tmp_path / "train_only", "videomae", tmp_path / "vm_train")
    assert result["lists"] == ["train.csv"] and "no val or test split" in result["warnings"][0]
    assert export(folder, "videomae", tmp_path / "vm")["warnings"] == []
    with pytest.raises(ConfigError, match="--root data/videos is relative"):
        export(folder, "videomae", tmp_path / "vm_rel", root="data/videos")
    export(folder, "csv", tmp_path / "c")
    table = pd.read_csv(tmp_path / "c" / "train.csv")
    assert list(table.columns) == ["path", "label", "class"]
    assert all((tmp_path / "c" / p).is_file() for p in table["path"])


def test_a_second_export_leaves_no_list_of_the_first_and_a_flat_dataset_is_refused(tmp_path):
    from privvid.shards.build import ShardError

    out = _dataset(tmp_path, {"jump/a.mp4": 4, "jump/b.mp4": 4, "run/c.mp4": 4, "run/d.mp4": 4})
    lists = tmp_path / "lists"
    build(out, tmp_path / "split", val_fraction=0.5, seed=0)
    export(tmp_path / "split", "mmaction", lists)
    assert (lists / "val.txt").is_file()
    build(out, tmp_path / "all", val_fraction=0.0, seed=0)        # rebuilt without a val split
    result = export(tmp_path / "all", "mmaction", lists)
    assert result["removed"] == ["val.txt"] and not (lists / "val.txt").exists()
    assert len((lists / "train.txt").read_text().splitlines()) == 4   # every clip once, in one split
    assert result["removed_videos"] == []
    # a video of the same size but other bytes is no copy of the shard's: extracted again
    video = lists / "videos" / "jump" / "a.mp4"
    good = video.read_bytes()
    video.write_bytes(bytes(255 - b for b in good))
    export(tmp_path / "all", "mmaction", lists)
    assert video.read_bytes() == good
    # another dataset exported into the same folder: no video the first export wrote stays beside the new
    # lists; a file privvid did not write there is the user's and stays
    (lists / "videos" / "raw").mkdir()
    (lists / "videos" / "raw" / "interview_original.mp4").write_bytes(b"the user's")
    other = _dataset(tmp_path / "other", {"swim/e.mp4": 4, "swim/f.mp4": 4})
    build(other, tmp_path / "other_shards", val_fraction=0.0, seed=0)
    result = export(tmp_path / "other_shards", "mmaction", lists)
    assert sorted(result["removed_videos"]) == ["jump/a.mp4", "jump/b.mp4", "run/c.mp4", "run/d.mp4"]
    assert sorted(p.relative_to(lists / "videos").as_posix() for p in (lists / "videos").rglob("*")) == [
        "raw", "raw/interview_original.mp4", "swim", "swim/e.mp4", "swim/f.mp4"]
    flat = _dataset(tmp_path / "flat", {"a.mp4": 4, "b.mp4": 4})
    build(flat, tmp_path / "flat_shards", val_fraction=0.0, seed=0)
    for fmt in ("mmaction", "videomae"):
        with pytest.raises(ShardError, match="2 clip.*no class"):
            export(tmp_path / "flat_shards", fmt, tmp_path / f"flat_{fmt}")
        assert not (tmp_path / f"flat_{fmt}").exists()           # refused before anything is written
    assert export(tmp_path / "flat_shards", "csv", tmp_path / "flat_csv")["clips"] == 2
    # --root is the videomae lists' only; the shard folder itself is no place for an export
    with pytest.raises(ConfigError, match="--root is read by --format videomae only"):
        export(tmp_path / "all", "mmaction", tmp_path / "x", root=tmp_path)
    with pytest.raises(ConfigError, match="the shard folder itself"):
        export(tmp_path / "all", "csv", tmp_path / "all" / ".." / "all")
    (tmp_path / "a_file").write_text("keep")
    with pytest.raises(ConfigError, match="a_file is a file"):
        export(tmp_path / "all", "csv", tmp_path / "a_file")
    assert (tmp_path / "a_file").read_text() == "keep"
    assert not (tmp_path / "x").exists() and (tmp_path / "all" / "classes.txt").is_file()


def test_the_engine_trains_from_shards(tmp_path):
    from privvid.engine.api import run_train
    from privvid.engine.data import ClipDataset, load_source

    out = _dataset(tmp_path, {f"{c}/{i}.mp4": 8 for c in ("jump", "run") for i in range(3)})
    folder = tmp_path / "shards"
    build(out, folder, val_fraction=0.34, seed=1)
    src = load_source(f"{folder}:train")
    assert src.classes == ["jump", "run"] and len(src.samples) == 4 and all(s.offset > 0 for s in src.samples)
    # what `privvid eval` titles its table with: the shards' name and the split (was ":train")
    assert src.name == f"{json.loads((folder / 'manifest.json').read_text()).get('name') or 'shards'}-train"
    from privvid.engine.config import DataConfig

    item = ClipDataset(src, DataConfig(frames=4, stride=1, size=32, short_side=32), train=False)[0]
    assert tuple(item["video"].shape) == (4, 32, 32, 3)
    res = run_train("align", [f"{folder}:train"], tmp_path / "run", preset_name="tiny", epochs=1, batch_size=2,
                    workers=0)
    assert res.steps >= 1


def test_the_engine_reads_an_output_folder_by_its_layout(tmp_path):
    from privvid.engine.data import load_source

    out = _dataset(tmp_path, {"train/jump/a.mp4": 4, "train/run/b.mp4": 4, "val/jump/c.mp4": 4,
                              "val/run/nested/d.mp4": 4})
    train = load_source(f"{out}:train")
    assert train.classes == ["jump", "run"] and [s.path.name for s in train.samples] == ["a.mp4", "b.mp4"]
    val = load_source(f"{out}:val")
    assert [(s.path.name, s.label) for s in val.samples] == [("c.mp4", 0), ("d.mp4", 1)]
    assert load_source(out).classes == ["jump", "run"]   # not "train" and "val"


def test_sidecar_schema_and_layout():
    from privvid.io.layout import SCHEMA_VERSION, Sidecar, SidecarError, layout_of

    old = Sidecar.from_dict({"privvid_version": "0.1.0", "mode": "remove", "output": {"frames": 3}})
    assert old.schema == 1 and old.frames == 3
    with pytest.raises(SidecarError, match="upgrade privvid"):
        Sidecar.from_dict({"privvid_version": "9", "schema": SCHEMA_VERSION + 1})
    with pytest.raises(SidecarError, match="not written by privvid"):
        Sidecar.from_dict({"mode": "remove"})
    assert layout_of("arm/part1/c") == (None, "arm") and layout_of("Val/jump/x") == ("val", "jump")
    assert layout_of("clip") == (None, "") and layout_of("train/x") == (None, "train")
    from privvid.qa.dataset import FLAT_CLASS, class_of

    assert class_of("train/jump/x") == "jump" and class_of("clip") == FLAT_CLASS   # qa labels the same way


def test_split_from_matches_whole_paths_and_a_draw_never_empties_train():
    from privvid.shards.build import Entry, _splits_from_csv, split_entries

    def e(rel: str) -> Entry:
        return Entry(rel, rel.split("/")[0], {"input": {"path": rel}})

    entries = [e("jump/clip001.mp4"), e("run/clip001.mp4"), e("walk/clip001.mp4"), e("walk/solo.mp4")]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        csv_path = Path(tmp) / "subset.csv"
        csv_path.write_text("label,key,path,split\njump,clip001,jump/clip001.mp4,train\nrun,clip001,run/clip001.mp4,val\n"
                            "walk,solo,x/solo.mp4,val\nswim,gone,swim/gone.mp4,train\n")
        splits, unmatched = _splits_from_csv(csv_path, entries)
        # a split privvid does not know is refused (the rows were dropped, and blamed on the dataset)
        csv_path.write_text('label,key,split\njump,clip001,train\n\n"r\nun",clip001,validate\nwalk,solo,validate\n')
        with pytest.raises(ConfigError, match=r"split 'validate' \(line 5\) is none of"):   # a blank, a quoted break
            _splits_from_csv(csv_path, entries)
        csv_path.write_text("label,key,split\njump,clip001,\n")
        with pytest.raises(ConfigError, match="the 'split' column is empty"):
            _splits_from_csv(csv_path, entries)
        csv_path.write_text("label,split\njump,train\n")
        with pytest.raises(ConfigError, match="needs a 'key' or 'path' column"):
            _splits_from_csv(csv_path, entries)
    assert splits == {"jump/clip001.mp4": "train", "run/clip001.mp4": "val", "walk/solo.mp4": "val"}
    assert unmatched == ["swim/gone.mp4"]          # a listed clip the dataset does not hold is named
    drawn = split_entries([e("a/0.mp4"), e("a/1.mp4")] + [e(f"b/{i}.mp4") for i in range(4)], 0.75, 0)
    assert {x.label for x in drawn["train"]} == {"a", "b"}


def test_a_rebuild_leaves_no_old_shards_and_verify_names_unlisted_tars(tmp_path):
    out = _dataset(tmp_path, {"jump/a.mp4": 4, "run/b.mp4": 4})
    build(out, tmp_path / "s", shard_size="1clips")
    assert len(list((tmp_path / "s").glob("*.tar"))) == 2
    build(out, tmp_path / "s")                               # one shard now
    assert len(list((tmp_path / "s").glob("*.tar"))) == 1 and verify(tmp_path / "s") == []
    (tmp_path / "s" / "other-train-000000.tar").write_bytes(b"")
    assert any("does not list" in p for p in verify(tmp_path / "s"))
    # under another --name the earlier build's shards (named by its manifest) go too; a tar it never
    # wrote stays, and verify still names it
    build(out, tmp_path / "s", name="renamed")
    tars = sorted(p.name for p in (tmp_path / "s").glob("*.tar"))
    assert tars == ["other-train-000000.tar", "renamed-train-000000.tar"], tars


class _NoHits:
    name = "no-hits"

    def __call__(self, frame):
        return []

    def close(self):
        pass


def test_the_datasheet_counts_the_audit_of_the_packaged_clips_only(tmp_path):
    """An export inside the dataset (the default `shards build --out` is there) leaves copies without
    sidecars that the audit checks and flags; the datasheet speaks of the clips it packages."""
    from privvid.qa import AuditConfig, audit, audit_output, summary, write_audit

    out = _dataset(tmp_path, {"jump/a.mp4": 4, "run/b.mp4": 4})
    build(out, out / "shards", val_fraction=0.0)
    export(out / "shards", "mmaction", out / "lists")          # out/lists/videos/...: two more videos
    result = audit(out, AuditConfig(frames=2), checkers=(_NoHits(), None))
    assert len(result.rows) == 4 and len(result.flagged) == 2   # the copies: no sidecar
    path = write_audit(result, audit_output(out))
    path.with_suffix(".json").write_text(json.dumps(summary(result)))
    build(out, out / "shards", val_fraction=0.0)
    sheet = (out / "shards" / "datasheet.md").read_text()
    assert "0 of the 2 packaged clips it checked flagged" in sheet and "no-hits" in sheet
    (out / "run" / "b.mp4").rename(out / "run" / "c.mp4")     # a packaged clip the audit never saw
    (out / "run" / "b.json").rename(out / "run" / "c.json")
    build(out, out / "shards", val_fraction=0.0)
    sheet = (out / "shards" / "datasheet.md").read_text()
    assert "0 of the 1 packaged clips it checked flagged; 1 packaged clip(s) not in the audit" in sheet


def test_the_audit_writes_into_a_folder_privvid_made_only(tmp_path):
    from privvid.qa import audit_output

    out = _dataset(tmp_path, {"jump/a.mp4": 4})
    assert audit_output(out) == out / ".privvid" / "audit.csv"
    with pytest.raises(ConfigError, match="--out"):
        audit_output(tmp_path / "in")                          # the input folder: no sidecars
    assert audit_output(tmp_path / "in", tmp_path / "a.csv") == tmp_path / "a.csv"
    assert not (tmp_path / "in" / ".privvid").exists()


def test_verify_of_a_folder_that_is_not_shards_says_what_it_is(tmp_path):
    out = _dataset(tmp_path, {"jump/a.mp4": 4})
    assert verify(out) == [f"no manifest.json: not a shard folder written by privvid shards build (it is an output "
                           f"folder of privvid anonymize: privvid shards build {out} first)"]
    assert verify(tmp_path / "in") == ["no manifest.json: not a shard folder written by privvid shards build"]


def test_a_linked_folder_is_read_once_and_a_missing_shard_folder_is_not_found(tmp_path):
    """An output tree with a link back up it (a loop) and a second link to a class folder: each clip is
    packaged once, under its real folder's name; verify of a folder that is not there is a bad input."""
    from privvid.errors import BadInput

    out = _dataset(tmp_path, {"jump/a.mp4": 4, "run/b.mp4": 4})
    (out / "jump" / "loop").symlink_to(out, target_is_directory=True)
    (out / "aaa_again").symlink_to(out / "run", target_is_directory=True)   # sorts first
    (out / "jump" / "zz_link").symlink_to(out / "run", target_is_directory=True)   # walked before run/ itself
    manifest = build(out, tmp_path / "shards", val_fraction=0.0)
    assert manifest["clips"] == 2 and manifest["per_class"] == {"jump": 1, "run": 1}
    with pytest.raises(BadInput, match="not found"):
        verify(tmp_path / "nowhere")


def test_a_val_draw_that_leaves_classes_without_val_says_so(tmp_path):
    from typer.testing import CliRunner

    from privvid.cli.main import app

    out = _dataset(tmp_path, {"jump/a.mp4": 4, "run/b.mp4": 4, "run/c.mp4": 4})
    manifest = build(out, tmp_path / "shards", val_fraction=0.5)
    assert manifest["splits"] == {"train": 2, "val": 1} and manifest["no_val_classes"] == ["jump"]
    assert build(out, tmp_path / "shards", val_fraction=0.0)["no_val_classes"] == []
    cli = CliRunner().invoke(app, ["shards", "build", str(out), "--out", str(tmp_path / "s2"), "--val", "0.5"])
    assert cli.exit_code == 0 and "1 class(es) have no val clip" in cli.output and "jump" in cli.output, cli.output
    single = _dataset(tmp_path / "single", {"jump/a.mp4": 4, "run/b.mp4": 4})
    cli = CliRunner().invoke(app, ["shards", "build", str(single), "--out", str(tmp_path / "s3"), "--val", "0.5"])
    assert cli.exit_code == 0 and "no val split was drawn" in cli.output, cli.output


def test_spaces_in_clip_names_become_underscores_in_the_space_separated_lists(tmp_path):
    out = _dataset(tmp_path, {"tai chi/clip one.mp4": 4, "tai chi/clip_two.mp4": 4, "run/c.mp4": 4})
    build(out, tmp_path / "shards", val_fraction=0.0, seed=0)
    export(tmp_path / "shards", "mmaction", tmp_path / "mm")
    items = _mmaction_parse(tmp_path / "mm" / "train.txt", tmp_path / "mm")   # one path and one label per line
    assert sorted(p.relative_to(tmp_path / "mm").as_posix() for p, _ in items) == [
        "videos/run/c.mp4", "videos/tai_chi/clip_one.mp4", "videos/tai_chi/clip_two.mp4"]
    assert all(p.is_file() for p, _ in items)
    export(tmp_path / "shards", "csv", tmp_path / "c")          # csv quotes what it must: names kept
    assert (tmp_path / "c" / "videos" / "tai chi" / "clip one.mp4").is_file()
    with pytest.raises(ConfigError, match="holds a space"):    # VideoMAE's absolute paths: refused before writing
        export(tmp_path / "shards", "videomae", tmp_path / "v m")
    assert not (tmp_path / "v m").exists()
    # two clips that would share a listed name are refused before a video is written
    clash = _dataset(tmp_path / "clash", {"a/x y.mp4": 4, "a/x_y.mp4": 4})
    build(clash, tmp_path / "clash_shards", val_fraction=0.0, seed=0)
    from privvid.shards.build import ShardError

    with pytest.raises(ShardError, match="would both be 'a/x_y.mp4'"):
        export(tmp_path / "clash_shards", "mmaction", tmp_path / "clash_mm")
    assert not (tmp_path / "clash_mm" / "videos").exists()


def test_verify_reads_the_clip_list_and_the_class_list_against_the_shards(tmp_path):
    out = _dataset(tmp_path, {"jump/a.mp4": 4, "run/b.mp4": 4, "run/c.mp4": 4})
    folder = tmp_path / "shards"
    build(out, folder, val_fraction=0.0, seed=0)
    assert verify(folder) == []
    rows = (folder / "manifest.jsonl").read_text().splitlines()
    edited = [json.loads(r) for r in rows]
    edited[0]["label"], edited[0]["label_index"] = "run", 1            # a clip moved to another class
    edited[1]["sha256"] = "0" * 64
    (folder / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in edited[:2]) + "not json\n")
    (folder / "classes.txt").write_text("run\njump\n")
    problems = verify(folder)
    assert "classes.txt: differs from the manifest's classes (the class index of every list)" in problems
    assert any("line 1: label 'run', the shard's sample says 'jump'" in p for p in problems)
    assert any("line 1: label_index 1, the shard's sample says 0" in p for p in problems)
    assert any("line 2: sha256 differs" in p for p in problems)
    assert any("line 3: not a clip row" in p for p in problems)
    key = edited[2]["key"]
    assert any(p.endswith(f"sample {key} is not in manifest.jsonl") for p in problems)
    (folder / "manifest.jsonl").unlink()
    assert "manifest.jsonl: missing" in verify(folder)
