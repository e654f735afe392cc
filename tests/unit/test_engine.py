"""Engine pieces on small generated inputs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from privvid.engine import checkpoint as ckpt
from privvid.engine.average import average_checkpoints, parse_weights
from privvid.engine.config import EngineError, TrainConfig, model_config, preset
from privvid.engine.data import EpochSampler, load_source
from privvid.engine.model import MAE, Classifier, VideoViT, make_mask, patchify, sincos_3d
from privvid.engine.trainer import lr_at, mix_batch
from privvid.errors import MissingWeights

NANO = model_config("nano", frames=8, image_size=64)


def test_tube_and_random_masks():
    keys = torch.tensor([1, 2, 3])
    t, h, w = NANO.grid
    vis, masked = make_mask(NANO, keys, 0.75, "tube")
    assert vis.shape == (3, t * round(h * w * 0.25)) and masked.shape[1] == NANO.num_tokens - vis.shape[1]
    for row in vis:  # same spatial positions in every time step
        space = row.view(t, -1) % (h * w)
        assert (space == space[0]).all()
    assert torch.equal(make_mask(NANO, keys, 0.75, "tube")[0], vis)  # a key gives one mask
    assert not torch.equal(vis[0], vis[1])
    vis_r, masked_r = make_mask(NANO, keys, 0.9, "random")
    assert vis_r.shape[1] == round(NANO.num_tokens * 0.1)
    both = torch.cat([vis_r, masked_r], 1).sort(1).values
    assert torch.equal(both, torch.arange(NANO.num_tokens).expand(3, -1))


def test_patchify_order_matches_patch_embedding():
    enc = VideoViT(NANO)
    x = torch.randn(2, 3, 8, 64, 64)
    conv = enc.patch_embed(x).flatten(2).transpose(1, 2)
    w = enc.patch_embed.weight  # (dim, 3, pt, p, p) -> patchify layout (pt, p, p, 3)
    lin = patchify(x, NANO) @ w.permute(0, 2, 3, 4, 1).reshape(w.shape[0], -1).T + enc.patch_embed.bias
    torch.testing.assert_close(conv, lin, rtol=1e-4, atol=1e-4)
    vis, masked = make_mask(NANO, torch.tensor([4, 5]), 0.75, "random")
    full = patchify(x, NANO)
    for index in (vis, masked):  # selected tokens, copied straight from the clip
        assert torch.equal(patchify(x, NANO, index), torch.gather(full, 1, index[..., None].expand(-1, -1, full.shape[-1])))
    # embedding only the visible tokens = embedding all of them and keeping the visible ones
    every = enc.embed(x)
    torch.testing.assert_close(enc.embed(x, vis), torch.gather(every, 1, vis[..., None].expand(-1, -1, every.shape[-1])),
                               rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="tokens"):
        enc.embed(torch.randn(1, 3, 8, 48, 64), vis[:1])


@pytest.mark.parametrize("tokens", [20, 200])
def test_cpu_bf16_attention_paths_match_the_fused_kernel(tokens):
    """Short sequences take two matrix products, long ones the fp32 kernel; both give sdpa's result and gradient."""
    from privvid.engine.model import Attention

    torch.manual_seed(0)
    attn = Attention(64, 4)
    x = torch.randn(2, tokens, 64, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = attn(x)
    ours.float().square().sum().backward()
    g_ours = x.grad.clone()
    x.grad = None
    b, n, d = x.shape
    qkv = attn.qkv(x).view(b, n, 3, 4, d // 4).permute(2, 0, 3, 1, 4)
    ref = attn.proj(torch.nn.functional.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(b, n, d))
    ref.square().sum().backward()
    torch.testing.assert_close(ours.float(), ref, rtol=0.05, atol=0.03)
    assert torch.nn.functional.cosine_similarity(g_ours.flatten(), x.grad.flatten(), dim=0) > 0.99


def test_positions_are_fixed_and_distinct():
    pos = sincos_3d(64, NANO.grid)
    assert pos.shape == (NANO.num_tokens, 64)
    d = torch.cdist(pos, pos) + torch.eye(len(pos)) * 10
    assert d.min() > 1e-3
    enc = VideoViT(NANO)
    assert not any("pos" in n for n, _ in enc.named_parameters())  # not learnable
    torch.testing.assert_close(enc.pos[0], pos)


def test_mae_loss_targets_masked_patches_normalised():
    torch.manual_seed(0)
    mae = MAE(NANO)
    x = torch.randn(2, 3, 8, 64, 64)
    vis, masked = make_mask(NANO, torch.tensor([5, 6]), 0.9, "random")
    loss = mae(x, vis, masked).item()
    assert loss > 0.5  # untrained: about the variance of the normalised targets (1)
    t, h, w = NANO.grid

    def unpatch(p):
        return p.view(2, t, h, w, 2, 16, 16, 3).permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(x.shape)

    p = patchify(x, NANO)
    torch.testing.assert_close(patchify(unpatch(p), NANO), p)
    shifted = p.clone()
    shifted[0, masked[0, 0]] += 5.0  # a constant offset vanishes in a per-patch normalised target
    assert abs(mae(unpatch(shifted), vis, masked).item() - loss) < 2e-6
    noisy = p.clone()
    noisy[0, masked[0, 0]] += 3 * torch.randn(p.shape[-1])  # new content in a masked patch: new target
    assert abs(mae(unpatch(noisy), vis, masked).item() - loss) > 1e-5
    raw = mae(unpatch(shifted), vis, masked, norm_pix=False).item()
    assert raw != pytest.approx(mae(x, vis, masked, norm_pix=False).item(), rel=1e-4)


def test_classifier_heads_and_pooling():
    model = Classifier(NANO, {"train": 5, "synthetic": 3})
    x = torch.randn(2, 3, 8, 64, 64)
    assert model(x, "train").shape == (2, 5) and model(x, "synthetic").shape == (2, 3)
    assert model(x).shape == (2, 5)


def test_warmup_cosine_schedule():
    cfg = preset("paper", "ft")
    spe = 10
    assert lr_at(0, spe, cfg) == pytest.approx(cfg.optim.start_lr)
    warm = int(cfg.optim.warmup_epochs * spe)
    assert lr_at(warm, spe, cfg) == pytest.approx(2e-3)
    assert lr_at(cfg.optim.epochs * spe, spe, cfg) == pytest.approx(cfg.optim.min_lr)
    assert lr_at(warm + 5, spe, cfg) < lr_at(warm, spe, cfg)
    assert preset("paper", "lp").optim.lr == pytest.approx(1.6e-2)
    assert preset("paper", "mae").mae.repeats * preset("paper", "mae").optim.batch_size == 128


def test_config_json_round_trip():
    cfg = preset("tiny", "align", "nano")
    again = TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(EngineError, match="unknown preset"):
        preset("huge", "mae")


def test_mix_batch_targets():
    cfg = preset("paper", "align")
    x = torch.randn(4, 3, 8, 32, 32)
    y = torch.tensor([0, 1, 2, 3])
    seen_changed = False
    for seed in range(6):
        xm, target = mix_batch(x, y, 5, cfg, np.random.default_rng(seed))
        torch.testing.assert_close(target.sum(1), torch.ones(4))
        assert (target.argmax(1) < 5).all()
        seen_changed |= not torch.equal(xm, x)
    assert seen_changed
    plain = replace(cfg, sup=replace(cfg.sup, mixup=0.0, cutmix=0.0, label_smoothing=0.0))
    xm, target = mix_batch(x, y, 5, plain, np.random.default_rng(0))
    assert torch.equal(xm, x) and torch.equal(target.argmax(1), y) and target.max() == 1


def test_ddp_shards_cover_the_global_batch():
    single = list(EpochSampler(20, 8, seed=3))
    r0 = list(EpochSampler(20, 8, seed=3, rank=0, world=2))
    r1 = list(EpochSampler(20, 8, seed=3, rank=1, world=2))
    assert len(single) == 16 and len(r0) == len(r1) == 8
    merged = [item for b in range(2) for item in r0[4 * b:4 * b + 4] + r1[4 * b:4 * b + 4]]
    assert merged == single  # same clips and keys, split per global batch
    s = EpochSampler(20, 8, seed=3)
    s.set_epoch(1)
    assert list(s) != single
    s.set_epoch(0, skip_batches=1)
    assert list(s) == single[8:]


def _write_videos(root: Path, names: list[str]) -> None:
    for n in names:
        p = root / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_sources_lists_csv_and_folders(tmp_path):
    _write_videos(tmp_path, ["a/x.mp4", "a/y.mp4", "b/z.mp4"])
    (tmp_path / "list.txt").write_text("a/x.mp4 0\na/y.mp4 0\nb/z.mp4 1\n")
    (tmp_path / "list.csv").write_text("path,label\na/x.mp4,walk\nb/z.mp4,run\n")
    (tmp_path / "videomae.csv").write_text("a/x.mp4 0\nb/z.mp4 1\n")
    txt = load_source(tmp_path / "list.txt")
    assert [s.label for s in txt.samples] == [0, 0, 1] and txt.num_classes == 2
    csv_src = load_source(tmp_path / "list.csv")
    assert csv_src.classes == ["run", "walk"] and [s.label for s in csv_src.samples] == [1, 0]
    assert load_source(tmp_path / "videomae.csv").samples[1].path == tmp_path / "b/z.mp4"
    tree = load_source(tmp_path, name="nh")
    assert tree.name == "nh" and tree.classes == ["a", "b"] and len(tree.samples) == 3


def test_source_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EngineError, match="empty"):
        load_source(tmp_path / "empty")
    _write_videos(tmp_path, ["only/x.mp4", "only/y.mp4"])
    (tmp_path / "one.txt").write_text("only/x.mp4 3\nonly/y.mp4 3\n")
    with pytest.raises(EngineError, match="single class"):
        load_source(tmp_path / "one.txt")
    assert len(load_source(tmp_path / "one.txt", require_labels=False).samples) == 2  # fine for MAE
    (tmp_path / "gone.txt").write_text("only/x.mp4 0\nonly/missing.mp4 1\n")
    with pytest.raises(EngineError, match="missing.mp4"):
        load_source(tmp_path / "gone.txt")


def _save(path: Path, model, cfg) -> None:
    ckpt.save_checkpoint(path, model, {"task": "ft", "arch": cfg.arch(), "heads": {"d": ["a", "b"]},
                                       "train_config": TrainConfig(model=cfg).to_dict()})


def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(0)
    model = Classifier(NANO, {"d": 2})
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(1, 3, 8, 64, 64)).sum().backward()
    opt.step()
    ckpt.save_checkpoint(tmp_path / "run", model, {"task": "ft", "arch": NANO.arch()}, opt, {"epoch": 1, "step": 1})
    weights = ckpt.load_weights(tmp_path / "run")
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    opt2 = torch.optim.AdamW(Classifier(NANO, {"d": 2}).parameters(), lr=1e-3)
    progress = ckpt.restore_optimizer(tmp_path / "run", opt2)
    assert progress == {"epoch": 1, "step": 1}
    sa, sb = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        a, b = sa[i], sb[i]
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])
    with pytest.raises(EngineError, match="another architecture"):
        ckpt.encoder_state(tmp_path / "run", model_config("tiny"))
    with pytest.raises(MissingWeights, match="model.safetensors.*privvid checkpoint import"):
        ckpt.read_meta(tmp_path / "nowhere")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "model.safetensors").write_bytes(b"x")
    (tmp_path / "foreign" / "config.json").write_text('{"format": "other"}')
    with pytest.raises(EngineError, match="not a privvid engine checkpoint.*privvid checkpoint import SOURCE"):
        ckpt.read_meta(tmp_path / "foreign")


def test_fixed_average_equals_hand_computed(tmp_path):
    runs = []
    for i in range(3):
        torch.manual_seed(i)
        _save(tmp_path / f"r{i}", Classifier(NANO, {"d": 2}), NANO)
        runs.append(tmp_path / f"r{i}")
    w = parse_weights("0.25,0.25,0.5", 3)
    average_checkpoints(runs, w, tmp_path / "avg")
    states = [ckpt.load_weights(r) for r in runs]
    avg = ckpt.load_weights(tmp_path / "avg")
    assert set(avg) == set(states[0])
    for k in avg:
        torch.testing.assert_close(avg[k], 0.25 * states[0][k] + 0.25 * states[1][k] + 0.5 * states[2][k])
    assert ckpt.read_meta(tmp_path / "avg")["weights"] == w
    with pytest.raises(EngineError, match="sum to 1"):
        parse_weights("0.5,0.6,0.1", 3)
    torch.manual_seed(9)
    _save(tmp_path / "other", Classifier(model_config("tiny", frames=8, image_size=64), {"d": 2}),
          model_config("tiny", frames=8, image_size=64))
    with pytest.raises(EngineError, match="another architecture"):
        average_checkpoints([runs[0], tmp_path / "other"], [0.5, 0.5], tmp_path / "bad")


def test_no_checkpoint_command_writes_over_its_input_or_an_earlier_run_unasked(tmp_path):
    """average / checkpoint import / export: --out that is an input is refused always; a checkpoint or a file
    already there only with --overwrite (which also drops the old run's training state)."""
    import os
    import stat

    from typer.testing import CliRunner

    from privvid.cli.main import app
    from privvid.engine.convert import export_checkpoint, import_checkpoint

    runs = []
    for i in range(2):
        torch.manual_seed(i)
        _save(tmp_path / f"r{i}", Classifier(NANO, {"d": 2}), NANO)
        runs.append(tmp_path / f"r{i}")
    before = (runs[0] / "model.safetensors").read_bytes()
    with pytest.raises(EngineError, match="the input"):
        average_checkpoints(runs, [0.5, 0.5], runs[0], overwrite=True)
    assert (runs[0] / "model.safetensors").read_bytes() == before
    average_checkpoints(runs, [0.5, 0.5], tmp_path / "avg")
    (tmp_path / "avg" / "state.json").write_text("{}")   # as if a training run had been there
    with pytest.raises(EngineError, match="already holds a checkpoint; pass --overwrite"):
        average_checkpoints(runs, [0.25, 0.75], tmp_path / "avg")
    average_checkpoints(runs, [0.25, 0.75], tmp_path / "avg", overwrite=True)
    assert ckpt.read_meta(tmp_path / "avg")["weights"] == [0.25, 0.75]
    assert not (tmp_path / "avg" / "state.json").exists()
    mode = stat.S_IMODE(os.stat(tmp_path / "avg" / "model.safetensors").st_mode)
    assert mode == 0o666 & ~_umask()   # as readable as the run's other files (the writer makes it 0600)

    for fmt, target in (("videomae", runs[0] / "model.safetensors"), ("hf", runs[0])):
        with pytest.raises(EngineError, match="the input"):
            export_checkpoint(runs[0], target, fmt, overwrite=True)
    assert (runs[0] / "model.safetensors").read_bytes() == before
    export_checkpoint(runs[0], tmp_path / "hf", "hf")
    with pytest.raises(EngineError, match="already holds"):
        export_checkpoint(runs[1], tmp_path / "hf", "hf")
    export_checkpoint(runs[0], tmp_path / "v.pth", "videomae")
    with pytest.raises(EngineError, match="already holds a file"):
        export_checkpoint(runs[0], tmp_path / "v.pth", "videomae")
    with pytest.raises(EngineError, match="the input"):
        import_checkpoint(tmp_path / "hf", tmp_path / "hf", frames=8, image_size=64)
    with pytest.raises(EngineError, match="already holds a checkpoint"):
        import_checkpoint(tmp_path / "hf", runs[1], frames=8, image_size=64)
    with pytest.raises(EngineError, match="pass .*hf"):
        import_checkpoint(tmp_path / "hf" / "model.safetensors", tmp_path / "x")
    with pytest.raises(EngineError, match="privvid checkpoint already"):
        import_checkpoint(runs[0], tmp_path / "y")
    result = CliRunner().invoke(app, ["average", str(runs[0]), str(runs[1]), "--out", str(runs[1])])
    assert result.exit_code == 2 and "the input" in result.output, result.output
    # --overwrite clears an old run's state only once the inputs are read: a failing command leaves it whole
    (tmp_path / "avg" / "state.json").write_text("{}")
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(EngineError, match="cannot read"):
        import_checkpoint(tmp_path / "junk.pth", tmp_path / "avg", overwrite=True)
    assert (tmp_path / "avg" / "state.json").is_file()
    # an input inside what --overwrite clears (best/), or an --out of the other kind, is refused
    _save(runs[0] / "best", Classifier(NANO, {"d": 2}), NANO)
    with pytest.raises(EngineError, match="holds, the input"):
        average_checkpoints([runs[0] / "best", runs[1]], [0.5, 0.5], runs[0], overwrite=True)
    assert (runs[0] / "best" / "model.safetensors").is_file()
    with pytest.raises(EngineError, match="is a file"):
        average_checkpoints(runs, [0.5, 0.5], tmp_path / "v.pth", overwrite=True)
    with pytest.raises(EngineError, match="is a folder"):
        export_checkpoint(runs[0], tmp_path / "avg", "videomae", overwrite=True)


def test_a_pickle_or_junk_given_as_a_checkpoint_is_refused_in_one_line(tmp_path):
    import pickle

    from typer.testing import CliRunner

    from privvid.cli.main import app

    class Payload:
        def __reduce__(self):
            return (print, ("PAYLOAD-RAN",))

    torch.save({"model": Payload()}, tmp_path / "evil.pth")          # what a .pth with a payload looks like
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"model": Payload()}, protocol=2))
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    for name, words in (("evil.pth", "objects other than tensors"), ("evil.pkl", "objects other than tensors"),
                        ("junk.pth", "cannot read")):
        result = CliRunner().invoke(app, ["checkpoint", "import", str(tmp_path / name), "--out", str(tmp_path / "o")])
        assert result.exit_code == 2 and words in result.output and "PAYLOAD-RAN" not in result.output, result.output
        assert "internal error" not in result.output and not (tmp_path / "o").exists()


def test_training_settings_out_of_range_are_refused_before_any_work(tmp_path):
    cfg = preset("tiny", "mae")
    for change, words in ((dict(mae=replace(cfg.mae, ratio=0.0)), "mae.ratio"),
                          (dict(mae=replace(cfg.mae, ratio=1.0)), "mae.ratio"),
                          (dict(optim=replace(cfg.optim, epochs=0)), "epochs"),
                          (dict(model=replace(cfg.model, depth=0)), "model.depth"),
                          (dict(model=replace(cfg.model, heads=5)), "equal heads"),
                          (dict(model=replace(cfg.model, decoder_heads=5)), "decoder_heads"),
                          (dict(log_every=0), "log_every"), (dict(save_every_epochs=0), "save_every_epochs"),
                          (dict(data=replace(cfg.data, clips_per_video=0)), "clips_per_video"),
                          (dict(data=replace(cfg.data, randaug_m=999)), "randaug_m"),
                          (dict(data=replace(cfg.data, scale=(0.9, 0.1))), "data.scale"),
                          (dict(data=replace(cfg.data, erase=7.0)), "data.erase"),
                          (dict(sup=replace(cfg.sup, label_smoothing=2.0)), "label_smoothing"),
                          (dict(task="dance"), "task must be")):
        with pytest.raises(EngineError, match=words):
            replace(cfg, **change).check()
    assert cfg.check() is cfg
    from privvid.engine.config import apply_overrides

    for item, words in (("model.size=base", "--size sets it"), ("task=ft", "the command sets it")):
        with pytest.raises(EngineError, match=words):
            apply_overrides(cfg, [item])
    from privvid.engine.trainer import resolve_device

    with pytest.raises(EngineError, match="not a device"):
        resolve_device("tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="no CUDA device"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_ppma_semicolon_lists_with_frame_folders_and_stems(tmp_path):
    """PPMA's downstream lists: ``path;label``, paths to frame folders or to videos named by their stem."""
    import cv2

    from privvid.engine.config import DataConfig
    from privvid.engine.data import ClipDataset

    _write_videos(tmp_path, ["walk/v_a.avi"])
    frames = tmp_path / "run" / "v_b"
    frames.mkdir(parents=True)
    for i in range(10):
        cv2.imwrite(str(frames / f"img_{i:05d}.jpg"), np.full((48, 64, 3), 20 * i, np.uint8))
    (tmp_path / "train.csv").write_text("walk/v_a;0\nrun/v_b;1\n")
    src = load_source(tmp_path / "train.csv")
    assert [s.path.name for s in src.samples] == ["v_a.avi", "v_b"] and [s.label for s in src.samples] == [0, 1]
    data = ClipDataset(src, DataConfig(frames=4, stride=2, size=32, short_side=32), train=False)
    clip = data[1]["video"]
    assert tuple(clip.shape) == (4, 32, 32, 3)
    # centred clip of 4 frames at stride 2 out of 10: frames 1, 3, 5, 7 (grey levels 20 * i)
    assert [int(round(float(f.float().mean()))) for f in clip] == [20, 60, 100, 140]


def test_downstream_catalogue_reads_the_users_copy(tmp_path, monkeypatch):
    from privvid.engine.downstream import CATALOGUE

    assert {t: CATALOGUE[t].classes for t in CATALOGUE} == {"ucf101": 101, "hmdb51": 51, "mini_ssv2": 87,
                                                           "diving48": 48, "ikea_furniture": 12, "uav": 155}
    monkeypatch.delenv("PRIVVID_DOWNSTREAM", raising=False)
    with pytest.raises(EngineError, match="PRIVVID_DOWNSTREAM.*ucf101/train.csv"):
        load_source("ppma:ucf101:train")
    monkeypatch.setenv("PRIVVID_DOWNSTREAM", str(tmp_path))
    with pytest.raises(EngineError, match="no split list"):
        load_source("ppma:diving48:val")
    with pytest.raises(EngineError, match="unknown downstream task"):
        load_source("ppma:kinetics:val")
    _write_videos(tmp_path / "ucf101", ["Biking/v_Biking_g01_c01.avi", "YoYo/v_YoYo_g01_c01.avi"])
    (tmp_path / "ucf101" / "train.csv").write_text("Biking/v_Biking_g01_c01;10\nYoYo/v_YoYo_g01_c01;100\n")
    src = load_source("ppma:ucf101:train")
    assert src.num_classes == 101 and [s.label for s in src.samples] == [10, 100]
    assert all(s.path.is_file() for s in src.samples)
    (tmp_path / "ucf101" / "val.csv").write_text("Biking/v_Biking_g01_c01;101\nYoYo/v_YoYo_g01_c01;100\n")
    with pytest.raises(EngineError, match="outside UCF101's 101 classes"):
        load_source("ppma:ucf101:val")


def test_curated_subset_csv_trains_as_is(tmp_path):
    """curate's subset.csv (label,key,path columns) is a source without editing."""
    _write_videos(tmp_path, ["v/a.mp4", "v/b.mp4", "v/c.mp4"])
    (tmp_path / "subset.csv").write_text("label,key,path\nwalk,a,v/a.mp4\nrun,b,v/b.mp4\nwalk,c,v/c.mp4\n")
    src = load_source(tmp_path / "subset.csv")
    assert src.classes == ["run", "walk"] and [s.label for s in src.samples] == [1, 0, 1]
    assert [s.path.name for s in src.samples] == ["a.mp4", "b.mp4", "c.mp4"]


def test_a_tensor_file_the_system_refuses_leaves_no_temporary_file_and_names_the_target(tmp_path, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    def full_disk(file, mode="r", *args, **kwargs):
        if "w" in mode and ".partial" in str(file):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", full_disk)
    with pytest.raises(OSError, match="No space left on device") as info:
        ckpt.write_tensors(tmp_path / "model.safetensors", {"a": torch.zeros(2)})
    assert info.value.filename == str(tmp_path / "model.safetensors") and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["hf", "videomae"])
def test_an_imported_checkpoint_of_another_clip_shape_serves_as_init(tmp_path, fmt):
    """An 8-frame, 64 px encoder exported and imported back: --init takes its clip shape from it (the import
    recorded the default 16 x 224 clips, and every run from it was refused)."""
    from privvid.engine.api import make_config
    from privvid.engine.convert import export_checkpoint, import_checkpoint

    torch.manual_seed(0)
    _save(tmp_path / "run", Classifier(NANO, {"d": 2}), NANO)
    exported, _ = export_checkpoint(tmp_path / "run", tmp_path / ("hf" if fmt == "hf" else "v.pth"), fmt)
    imported = import_checkpoint(exported, tmp_path / "imported", frames=8, image_size=64)
    data = TrainConfig.from_dict(ckpt.read_meta(imported)["train_config"]).data
    assert (data.frames, data.size, data.short_side) == (8, 64, 72)
    for task in ("lp", "align"):
        cfg = make_config("ppma", task, init=imported)
        assert (cfg.data.frames, cfg.data.size, cfg.model.frames, cfg.model.image_size) == (8, 64, 8, 64)
        cfg.check()
    # an import recorded before the fix (the defaults' clips) is read by its model's shape too
    meta = ckpt.read_meta(imported)
    meta["train_config"]["data"].update(frames=16, size=224, short_side=256)
    (imported / "config.json").write_text(json.dumps(meta))
    cfg = make_config("ppma", "lp", init=imported)
    assert (cfg.data.frames, cfg.data.size, cfg.data.short_side) == (8, 64, 72)


def test_a_checkpoint_missing_an_encoder_weight_is_refused_by_export_and_average(tmp_path):
    """A damaged checkpoint lacking one encoder weight: export ended in a KeyError and left an empty --out; the
    average skipped the weight and wrote a checkpoint nothing could load. Both are refused, naming the weight;
    a checkpoint given twice to the average is refused too."""
    from privvid.engine.convert import export_checkpoint
    from safetensors.torch import load_file, save_file

    for i in range(2):
        torch.manual_seed(i)
        _save(tmp_path / f"r{i}", Classifier(NANO, {"d": 2}), NANO)
    weights = load_file(str(tmp_path / "r1" / "model.safetensors"))
    del weights["encoder.blocks.0.attn.proj.bias"]
    save_file(weights, str(tmp_path / "r1" / "model.safetensors"))
    with pytest.raises(EngineError, match=r"encoder of .*r1 does not fit the model: missing \['blocks.0.attn.proj.bias'\]"):
        export_checkpoint(tmp_path / "r1", tmp_path / "hf", "hf")
    assert not (tmp_path / "hf").exists()
    with pytest.raises(EngineError, match=r"missing \['blocks.0.attn.proj.bias'\]"):
        average_checkpoints([tmp_path / "r0", tmp_path / "r1"], [0.5, 0.5], tmp_path / "avg")
    assert not (tmp_path / "avg" / "model.safetensors").exists()
    with pytest.raises(EngineError, match="given twice"):
        average_checkpoints([tmp_path / "r0", tmp_path / "x" / ".." / "r0"], [0.5, 0.5], tmp_path / "avg2")


class _Marker:
    """An object a pickle names by class: what the weights-only reader refuses."""


def test_pth_files_beyond_tensors_are_read_only_when_trusted(tmp_path):
    """The VideoMAE code base saves its settings (an argparse.Namespace) beside the weights: read without
    running anything. A file holding any other object is refused with the way through (--trust-model-files, or
    saving the weights alone), and read with ``trust``. A plain pickle is named as such."""
    import argparse
    import pickle

    from privvid.engine.convert import export_checkpoint, import_checkpoint, load_tensors

    torch.manual_seed(0)
    _save(tmp_path / "run", Classifier(NANO, {"d": 2}), NANO)
    exported, _ = export_checkpoint(tmp_path / "run", tmp_path / "v.pth", "videomae")
    state = torch.load(exported, weights_only=True)["model"]
    torch.save({"model": state, "args": argparse.Namespace(model="vit_small", num_frames=8)}, tmp_path / "ns.pth")
    done = import_checkpoint(tmp_path / "ns.pth", tmp_path / "from_ns", frames=8, image_size=64, heads=NANO.heads)
    assert ckpt.read_meta(done)["task"] == "imported"
    torch.save({"model": state, "extra": _Marker()}, tmp_path / "odd.pth")
    with pytest.raises(EngineError, match="holds objects other than tensors.*--trust-model-files"):
        import_checkpoint(tmp_path / "odd.pth", tmp_path / "from_odd", frames=8, image_size=64, heads=NANO.heads)
    assert not (tmp_path / "from_odd" / "model.safetensors").exists()
    import_checkpoint(tmp_path / "odd.pth", tmp_path / "from_odd", frames=8, image_size=64, heads=NANO.heads,
                      trust=True)
    assert (tmp_path / "from_odd" / "model.safetensors").is_file()
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"model": state}, f)
    for trust in (False, True):   # torch.load cannot read one either way
        with pytest.raises(EngineError, match="a plain pickle, not a file torch.save wrote"):
            load_tensors(tmp_path / "plain.pkl", trust=trust)
