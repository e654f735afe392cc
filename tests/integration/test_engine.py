"""Engine on real clips: tiny clips cut from ../shared/data/action-clips (8 classes, 9 videos)."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from privvid.engine import checkpoint as ckpt
from privvid.engine.average import learned_mix_probe
from privvid.engine.clips import cut_clips
from privvid.engine.config import EngineError, preset
from privvid.engine.data import _frame_count, clip_indices, decode_clip, load_source
from privvid.io.video import frame_rgb
from privvid.engine.model import Classifier
from privvid.engine.trainer import evaluate, train

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def clips(shared_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("engine_clips")
    cut_clips(shared_data / "action-clips", out, size=64, frames=16, per_video=3)
    return out


def small_cfg(task: str, **optim):
    cfg = preset("tiny", task, "nano")
    data = replace(cfg.data, frames=8, stride=2, size=64, short_side=64, scale=(0.7, 1.0), workers=0)
    o = replace(cfg.optim, **{"epochs": 2, "batch_size": 6, "warmup_epochs": 1, **optim})
    return replace(cfg, data=data, optim=o, log_every=1000)


def states_equal(a: Path, b: Path) -> bool:
    sa, sb = ckpt.load_weights(a), ckpt.load_weights(b)
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_seek_decoding_matches_sequential_decoding(shared_data):
    import av

    videos = [p for p in sorted((shared_data / "action-clips").iterdir()) if p.suffix in (".mp4", ".avi", ".mkv")]
    assert len(videos) >= 5
    for path in videos:
        clip = decode_clip(path, 8, 4, 48, np.random.default_rng(3))
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            n, _ = _frame_count(s, c)
            decoded = list(c.decode(s))
            frames = [frame_rgb(f, clip.shape[2], 48) for f in decoded]
        # the fast conversion stays within a grey level or two of swscale's
        f = decoded[len(decoded) // 2]
        diff = np.abs(frame_rgb(f, f.width, f.height).astype(int) - f.to_ndarray(format="rgb24")).mean()
        assert diff < 2.5, (path.name, diff)
        idx = clip_indices(n, 8, 4, np.random.default_rng(3))
        ref = np.stack([frames[min(i, len(frames) - 1)] for i in idx])
        assert np.array_equal(clip, ref), path.name


@pytest.fixture(scope="session")
def trained(clips, tmp_path_factory):
    """A nano model trained from scratch on the 18 training clips (8 classes)."""
    src = load_source(clips / "train.csv")
    cfg = small_cfg("ft", epochs=25, lr=4e-3, weight_decay=0.0)
    cfg = replace(cfg, sup=replace(cfg.sup, label_smoothing=0.0))
    out = tmp_path_factory.mktemp("trained") / "ft"
    res = train(cfg, [src], out, device="cpu")
    return src, cfg, out, res


def test_tiny_model_overfits_real_clips(trained):
    src, cfg, out, res = trained
    assert src.num_classes == 8
    assert res.history[-1]["loss"] < 0.5 * res.history[0]["loss"]
    model = Classifier(cfg.model, {src.name: src.num_classes})
    model.load_state_dict(ckpt.load_weights(out))
    acc = evaluate(model, src, cfg, torch.device("cpu"))
    assert acc["n"] == len(src.samples)
    assert acc["top1"] >= 0.9


def test_mae_loss_falls(clips, tmp_path):
    src = load_source(clips / "train.csv", require_labels=False)
    cfg = small_cfg("mae", epochs=8, lr=2e-3)
    res = train(cfg, [src], tmp_path / "mae", device="cpu")
    losses = [h["loss"] for h in res.history]
    # VideoMAE's per-channel patch target starts near 1 (unit variance per patch and channel); 8 short epochs
    # on these clips bring it down by 3.8% (1.038 -> 0.998), the earlier pooled target by more
    assert losses[-1] < 0.98 * losses[0], losses
    pooled = train(replace(cfg, mae=replace(cfg.mae, target="pooled")), [src], tmp_path / "pooled", device="cpu")
    pl = [h["loss"] for h in pooled.history]
    assert pl[-1] < pl[0] - 0.05, pl


@pytest.mark.parametrize("task", ["mae", "align"])
def test_resume_is_bit_exact(clips, tmp_path, task):
    a = load_source(clips / "train.csv", name="real", require_labels=task != "mae")
    sources = [a]
    cfg = small_cfg(task, epochs=2)
    if task == "align":  # two datasets, mixup/cutmix, drop-path: every random draw must replay
        sources.append(load_source(clips / "val.csv", name="other"))
        cfg = replace(cfg, model=replace(cfg.model, drop_path=0.1),
                      sup=replace(cfg.sup, mixup=0.8, cutmix=1.0, label_smoothing=0.1))
    train(cfg, sources, tmp_path / "full", device="cpu")
    train(cfg, sources, tmp_path / "split", device="cpu", stop_after_epoch=1)
    assert not states_equal(tmp_path / "full", tmp_path / "split")  # half-way differs
    # what a run killed after its checkpoint leaves: steps logged past it, a line cut mid-write
    log = tmp_path / "split" / "metrics.jsonl"
    saved = max(json.loads(line)["step"] for line in log.read_text().splitlines())
    with open(log, "a") as handle:
        handle.write(json.dumps({"step": saved + 1, "epoch": 1, "loss": 9.0}) + "\n" + '{"step": ')
    train(cfg, sources, tmp_path / "split", device="cpu", resume=True)
    assert states_equal(tmp_path / "full", tmp_path / "split")

    def logged(folder):   # every record once, as an uninterrupted run logs it
        return [(r.get("event"), r["step"], r["epoch"]) for r in map(json.loads, (folder / "metrics.jsonl").read_text().splitlines())]

    assert logged(tmp_path / "split") == logged(tmp_path / "full")


def _ddp_worker(rank: int, world: int, init_file: str, train_csv: str, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        cfg = small_cfg("ft", epochs=1, batch_size=4)
        cfg = replace(cfg, sup=replace(cfg.sup, mixup=0.0, cutmix=0.0), precision="fp32")
        train(cfg, [load_source(train_csv)], out, device="cpu")
    finally:
        dist.destroy_process_group()


def test_ddp_two_processes_match_one(clips, tmp_path):
    import torch.multiprocessing as mp

    cfg = small_cfg("ft", epochs=1, batch_size=4)
    # an equivalence test: fp32 (bf16 autocast rounds differently with other batch splits)
    cfg = replace(cfg, sup=replace(cfg.sup, mixup=0.0, cutmix=0.0), precision="fp32")
    train(cfg, [load_source(clips / "train.csv")], tmp_path / "single", device="cpu")
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(clips / "train.csv"), str(tmp_path / "ddp")),
             nprocs=2, join=True)
    one, two = ckpt.load_weights(tmp_path / "single"), ckpt.load_weights(tmp_path / "ddp")
    start = Classifier(cfg.model, {"train": 8}).state_dict()
    # AdamW divides by sqrt(v): float reduction-order noise in near-zero gradients shows up at ~1e-5,
    # so compare each tensor's gap between the runs with how far training moved it
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-3, atol=1e-4)
    gap = torch.cat([(two[k] - one[k]).flatten() for k in one]).norm()
    moved = torch.cat([(one[k] - start[k]).flatten() for k in one if k in start]).norm()
    assert moved > 0.1 and gap < 1e-3 * moved, (gap, moved)


def test_learned_alpha_prefers_the_useful_model(trained, tmp_path):
    src, cfg, good, _ = trained
    # the other model: same architecture, untrained
    torch.manual_seed(123)
    ckpt.save_checkpoint(tmp_path / "random", Classifier(cfg.model, {src.name: src.num_classes}),
                         {"task": "ft", "arch": cfg.model.arch(), "train_config": cfg.to_dict(), "heads": {}})
    lp = small_cfg("lp", epochs=6, lr=3e-2)
    res = learned_mix_probe([tmp_path / "random", good], lp, src, None, out=tmp_path / "mix")
    alpha = res["alpha"][0]
    assert abs(sum(alpha) - 1) < 1e-5
    assert alpha[1] > 0.6, alpha  # started at 0.5
    lw = learned_mix_probe([tmp_path / "random", good], lp, src, None, layerwise=True)
    assert len(lw["alpha"]) == cfg.model.depth + 2
    assert np.mean([row[1] for row in lw["alpha"]]) > 0.55, lw["alpha"]
    meta = ckpt.read_meta(tmp_path / "mix")
    assert meta["alpha"] == res["alpha"]


def test_bad_inputs_fail_before_training(clips, tmp_path):
    bad_list = tmp_path / "bad.csv"
    bad_list.write_text(f"path,label\n{clips / 'train.csv'},a\n{tmp_path / 'nope.mp4'},b\n")
    with pytest.raises(EngineError, match="missing file"):
        load_source(bad_list)
    one_class = tmp_path / "one.txt"
    rows = [line.split(",")[0] for line in (clips / "train.csv").read_text().splitlines()[1:3]]
    one_class.write_text("".join(f"{clips / r} 0\n" for r in rows))
    with pytest.raises(EngineError, match="single class"):
        load_source(one_class)
    # an MAE checkpoint of another size cannot initialise this model
    cfg = small_cfg("mae", epochs=1)
    src = load_source(clips / "train.csv", require_labels=False)
    train(cfg, [src], tmp_path / "nano", device="cpu")
    other = preset("tiny", "ft", "tiny")
    other = replace(other, data=cfg.data, model=replace(other.model, frames=8, image_size=64))
    with pytest.raises(EngineError, match="another architecture"):
        train(other, [load_source(clips / "train.csv")], tmp_path / "x", init=tmp_path / "nano", device="cpu")


def test_a_run_folder_is_resumed_only_as_the_run_it_holds(clips, tmp_path):
    """--resume never trains over an average, nor goes on with other data; one run at a time writes into a
    folder; flat data trains MAE and is refused, in one line, by supervised training."""
    import shutil

    from privvid.engine.average import average_checkpoints
    from privvid.runtime.lock import OutputLocked, RunLock

    cfg = small_cfg("mae", epochs=2)
    src = load_source(clips / "train.csv", require_labels=False)
    train(cfg, [src], tmp_path / "a", device="cpu", stop_after_epoch=1)
    assert not (tmp_path / "a" / ".lock").exists()                   # released and removed with the run
    with pytest.raises(EngineError, match="started on other data"):
        train(cfg, [load_source(clips / "val.csv", require_labels=False)], tmp_path / "a", device="cpu", resume=True)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    average_checkpoints([tmp_path / "a", tmp_path / "b"], [0.5, 0.5], tmp_path / "avg")
    before = (tmp_path / "avg" / "model.safetensors").read_bytes()
    with pytest.raises(EngineError, match="holds an average of checkpoints, not a run that can be resumed"):
        train(cfg, [src], tmp_path / "avg", device="cpu", resume=True)
    assert (tmp_path / "avg" / "model.safetensors").read_bytes() == before
    with RunLock(tmp_path / "a", ".lock", folder=tmp_path / "a"):       # as another process holding the folder
        with pytest.raises(OutputLocked, match="another privvid run is writing into"):
            train(cfg, [src], tmp_path / "a", device="cpu", resume=True)
    with pytest.raises(EngineError, match="mae.ratio"):                # refused before a folder is made
        train(replace(cfg, mae=replace(cfg.mae, ratio=2.0)), [src], tmp_path / "never", device="cpu")
    assert not (tmp_path / "never").exists()
    flat = tmp_path / "flat"
    flat.mkdir()
    for i, line in enumerate((clips / "train.csv").read_text().splitlines()[1:4]):
        shutil.copyfile(clips / line.split(",")[0], flat / f"clip{i}.mp4")
    assert train(replace(cfg, optim=replace(cfg.optim, epochs=1, batch_size=3)),
                 [load_source(flat, require_labels=False)], tmp_path / "flat_mae", device="cpu").steps == 1
    with pytest.raises(EngineError, match="3 of 3 clips have no class"):
        load_source(flat)


def test_cli_train_eval_average(clips, tmp_path):
    from typer.testing import CliRunner

    from privvid.cli.main import app

    runner = CliRunner()
    common = ["--epochs", "1", "--batch-size", "6", "--workers", "1"]
    r = runner.invoke(app, ["train", "mae", "--data", str(clips), "--preset", "tiny", "--size", "nano",
                            "--out", str(tmp_path / "mae"), *common])
    assert r.exit_code == 0, r.output
    # the folder tree carries train.csv/val.csv beside the class folders; the tree itself has 8 classes
    r = runner.invoke(app, ["train", "align", "--init", str(tmp_path / "mae"), "--data", f"a={clips / 'train.csv'}",
                            "--data", f"b={clips / 'val.csv'}", "--out", str(tmp_path / "ppma"), *common])
    assert r.exit_code == 0, r.output
    assert set(ckpt.read_meta(tmp_path / "ppma")["heads"]) == {"a", "b"}
    r = runner.invoke(app, ["eval", "lp", "--init", str(tmp_path / "ppma"), "--train", str(clips / "train.csv"),
                            "--val", str(clips / "val.csv"), "--out", str(tmp_path / "lp"), *common])
    assert r.exit_code == 0, r.output
    assert "top1" in r.output and "LP trained on train" in r.output   # the table names the data by its source's name
    r = runner.invoke(app, ["average", str(tmp_path / "mae"), str(tmp_path / "ppma"), "--weights", "0.3,0.7",
                            "--out", str(tmp_path / "avg")])
    assert r.exit_code == 0, r.output
    w_mae, w_ppma, w_avg = (ckpt.load_weights(tmp_path / n) for n in ("mae", "ppma", "avg"))
    k = "encoder.blocks.0.fc1.weight"
    torch.testing.assert_close(w_avg[k], 0.3 * w_mae[k] + 0.7 * w_ppma[k])
    r = runner.invoke(app, ["train", "align", "--data", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "z")])
    assert r.exit_code == 2 and "does not exist" in " ".join(r.output.split())


def test_benchmark_protocol_table(clips, tmp_path, monkeypatch):
    from rich.console import Console

    from privvid.benchmark.protocol import Protocol, run_protocol
    from privvid.benchmark.table import results_table

    proto = Protocol.from_dict({
        "name": "t", "preset": "tiny", "size": "nano", "eval_epochs": 1, "eval_batch_size": 6, "workers": 0,
        "recipes": [{"name": "scratch", "stages": [{"task": "scratch"}]},
                    {"name": "mae", "stages": [{"task": "mae", "data": ["train.csv"], "epochs": 1}]}],
        "tasks": [{"name": "clips", "train": "train.csv", "val": "val.csv"}],
    }, base=clips)
    res = run_protocol(proto, tmp_path)
    assert set(res["rows"]) == {"scratch", "mae"}
    for row in res["rows"].values():
        assert set(row) == {"clips/ft", "clips/lp"} and all(0 <= v <= 1 for v in row.values())
    b = res["bias"]["clips"]
    assert b["M_rnd"] == pytest.approx(1 / 8)
    assert b["B"] == pytest.approx(np.log2(b["M"] / b["M_rnd"]))
    # a re-run takes the bias from its record too (it decodes every clip of the task)
    from privvid.benchmark import protocol

    computed = []
    monkeypatch.setattr(protocol, "representation_bias", lambda *args, **kwargs: computed.append(args) or {})
    again = run_protocol(proto, tmp_path)
    assert computed == [] and again["bias"] == res["bias"] and again["steps"]["run"] == 0
    console = Console(record=True, width=120)
    console.print(results_table(res))
    text = console.export_text()
    assert "scratch" in text and "FT" in text and "log2" in text
    with pytest.raises(EngineError, match="unknown stage"):
        Protocol.from_dict({"recipes": [{"name": "x", "stages": [{"task": "dance"}]}], "tasks": []})
