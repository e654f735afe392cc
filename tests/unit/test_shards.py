"""Manifests, lists and WebDataset shards from an anonymised tree."""

from __future__ import annotations

import json
import tarfile

from fakes import moving_square_frames, write_video
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig
from privvid.shards import build


def test_build_lists_and_shards(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    for label, n in (("jumping", 3), ("running", 2)):
        for i in range(n):
            write_video(src / label / f"v.{i}.mp4", moving_square_frames(6))
    cfg = AnonymizeConfig(mode="solid", detect=DetectConfig(backend="fakes:ColorKeyDetector"))
    assert anonymize_dataset(src, out, cfg).count("done") == 5
    summary = build(out, val_fraction=0.34, seed=3, shard_size=1)  # 1 byte: one clip per shard
    assert summary["classes"] == ["jumping", "running"]
    assert summary["per_class"] == {"jumping": 3, "running": 2}
    assert summary["splits"] == {"train": 3, "val": 2}
    assert summary["frames"] == 30 and len(summary["shards"]) == 5
    train = (out / "mmaction_train.txt").read_text().splitlines()
    val = (out / "mmaction_val.txt").read_text().splitlines()
    assert len(train) + len(val) == 5 and not set(train) & set(val)
    for line in train + val:
        path, label = line.rsplit(" ", 1)
        assert (out / path).exists()
        assert label == str(["jumping", "running"].index(path.split("/")[0]))
    assert (out / "videomae_train.csv").read_text().splitlines() == train
    manifest = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    assert {m["split"] for m in manifest} == {"train", "val"} and all(len(m["sha256"]) == 64 for m in manifest)
    # same seed -> same split; another seed may differ but stays stratified
    assert build(out, val_fraction=0.34, seed=3, webdataset=False)["splits"] == summary["splits"]
    with tarfile.open(out / "shards" / summary["shards"][0]) as tar:
        names = tar.getnames()
        assert len(names) == 2 and names[0].endswith(".mp4") and names[1].endswith(".json")
        assert names[0].rsplit(".", 1)[0] == names[1].rsplit(".", 1)[0]
        assert "." not in names[0].rsplit(".", 1)[0], "webdataset keys must not contain dots"
        meta = json.loads(tar.extractfile(names[1]).read())
        assert meta["label"] in ("jumping", "running") and meta["sidecar"]["mode"] == "solid"
        assert tar.extractfile(names[0]).read() == (out / meta["path"]).read_bytes()


def test_shard_keys_stay_unique_when_names_differ_only_in_dots(tmp_path):
    from privvid.shards.build import shard_key

    assert shard_key("c/a.b.mp4") != shard_key("c/a_b.mp4") and "." not in shard_key("c/a.b.mp4")
    assert shard_key("c/a%2eb.mp4") != shard_key("c/a.b.mp4")
    src, out = tmp_path / "in", tmp_path / "out"
    for name in ("a.b.mp4", "a_b.mp4"):
        write_video(src / "jumping" / name, moving_square_frames(4))
    cfg = AnonymizeConfig(mode="solid", detect=DetectConfig(backend="fakes:ColorKeyDetector"))
    anonymize_dataset(src, out, cfg)
    summary = build(out, val_fraction=0.0, seed=0)
    keys = []
    for shard in summary["shards"]:
        with tarfile.open(out / "shards" / shard) as tar:
            keys += [n.rsplit(".", 1)[0] for n in tar.getnames() if n.endswith(".mp4")]
    assert len(keys) == 2 and len(set(keys)) == 2
