"""The papers' recipes and the engine features they need, on small generated clips: presets field by field,
--set, multi-view testing, layer-wise decay, the VideoMAE target, gradient accumulation, checkpointing,
precision, overwrite refusal, periodic validation, logs, and HF / VideoMAE checkpoints round-tripped."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from fakes import moving_square_frames, write_video
from privvid.engine.config import EngineError, apply_overrides, model_config, preset
from privvid.engine.data import Source, load_source
from privvid.engine.model import Classifier, VideoViT, mae_target

NANO = model_config("nano", frames=4, image_size=32)


def _tiny(task: str, **changes):
    cfg = preset("tiny", task, "nano")
    data = replace(cfg.data, frames=4, stride=1, size=32, short_side=32, workers=0)
    # fp32: these tests compare runs and hand computations exactly (auto picks bf16 on bf16-capable CPUs)
    cfg = replace(cfg, model=replace(cfg.model, frames=4, image_size=32), data=data, log_every=1, precision="fp32")
    return apply_overrides(cfg, changes)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    lines = []
    for label in range(3):
        for i in range(4):
            frames = moving_square_frames(8, width=48, height=36, size=8 + 4 * label)
            frames = [np.clip(f.astype(int) + int(rng.integers(-20, 20)), 0, 255).astype(np.uint8) for f in frames]
            path = write_video(root / f"c{label}" / f"v{i}.mp4", frames)
            lines.append(f"{path.relative_to(root)} {label}")
    (root / "all.txt").write_text("\n".join(lines) + "\n")
    (root / "val_missing.txt").write_text("c0/v0.mp4 0\nc2/v0.mp4 2\n")   # class 1 absent
    return root


def test_presets_follow_the_papers_field_by_field():
    ppma = {t: preset("ppma", t) for t in ("mae", "align", "ft", "lp")}
    m2m = {t: preset("m2m", t) for t in ("mae", "align", "ft", "lp")}
    # PPMA Appendix A.1.1: 32 videos x 4 masks = 128, random 90%, lr 8e-4 from 5e-7 over 10 of 200 epochs
    mae = ppma["mae"]
    assert (mae.optim.batch_size, mae.mae.repeats, mae.mae.mask, mae.mae.ratio) == (32, 4, "random", 0.9)
    assert (mae.optim.lr, mae.optim.start_lr, mae.optim.warmup_epochs, mae.optim.epochs) == (8e-4, 5e-7, 10, 200)
    assert (mae.model.dim, mae.model.depth, mae.data.frames, mae.data.size, mae.model.tubelet, mae.model.patch) == (
        768, 12, 16, 224, 2, 16)
    # A.1.2: 50 epochs, 6 warm-up, lr 2e-3, batch 128, RandAugment + erasing + mixup + cutmix
    al = ppma["align"]
    assert (al.optim.epochs, al.optim.warmup_epochs, al.optim.lr, al.optim.batch_size) == (50, 6, 2e-3, 128)
    assert (al.data.randaug_n, al.data.randaug_m, al.data.erase, al.sup.mixup, al.sup.cutmix) == (4, 7, 0.25, 0.8, 1.0)
    # A.2: 30 epochs, batch 32, FT lr 2e-3 / LP 1.6e-2; weight decay 1e-4, layer decay 0.75, 2 clips x 3 crops
    ft, lp = ppma["ft"], ppma["lp"]
    assert (ft.optim.epochs, ft.optim.batch_size, ft.optim.lr, lp.optim.lr) == (30, 32, 2e-3, 1.6e-2)
    assert (ft.optim.weight_decay, ft.optim.layer_decay, ft.data.clips_per_video, ft.data.crops) == (1e-4, 0.75, 2, 3)
    assert lp.sup.linear_probe and lp.optim.layer_decay == 1.0
    # Mask2Mesh's table: tube 90%, batch 128 (one mask per clip), lr 8e-4, 200 (10) + 50 (6) epochs, 30 FT/LP
    m = m2m["mae"]
    assert (m.mae.mask, m.mae.ratio, m.mae.repeats, m.optim.batch_size, m.optim.lr) == ("tube", 0.9, 1, 128, 8e-4)
    assert (m.optim.epochs, m.optim.warmup_epochs) == (200, 10)
    assert (m2m["align"].optim.epochs, m2m["align"].optim.warmup_epochs, m2m["align"].optim.lr) == (50, 6, 2e-3)
    assert m2m["ft"].optim.epochs == m2m["lp"].optim.epochs == 30
    assert (m2m["ft"].data.clips_per_video, m2m["ft"].data.crops) == (5, 3)
    assert (m.model.decoder_depth, m.model.decoder_dim) == (4, 384)   # 4 decoder blocks, 384 wide
    assert preset("paper", "ft") == ppma["ft"]


def test_every_field_is_settable_and_bad_settings_are_named():
    cfg = apply_overrides(preset("tiny", "mae"), ["mae.ratio=0.75", "optim.accum=2", "precision=bf16",
                                                  "model.grad_checkpoint=true", "optim.betas=0.9,0.99",
                                                  "optim.clip_grad=1.0", "threads=1"])
    assert (cfg.mae.ratio, cfg.optim.accum, cfg.precision, cfg.model.grad_checkpoint) == (0.75, 2, "bf16", True)
    assert cfg.optim.betas == (0.9, 0.99) and cfg.optim.clip_grad == 1.0 and cfg.threads == 1
    for bad, words in (("optim.nope=1", "no field 'nope'"), ("mae.mask=stripes", "random, tube"),
                       ("optim.lr=fast", "not a valid float"), ("zzz.a=1", "SECTION"), ("optim.lr", "FIELD=VALUE")):
        with pytest.raises(EngineError, match=words):
            apply_overrides(cfg, [bad])


def test_multi_view_testing_averages_the_views_softmax(clips):
    from privvid.engine.data import ClipDataset
    from privvid.engine.trainer import evaluate, predict

    src = load_source(clips / "all.txt")
    cfg = _tiny("ft", **{"data.clips_per_video": 2, "data.crops": 3, "data.short_side": 40})
    torch.manual_seed(0)
    model = Classifier(cfg.model, {src.name: src.num_classes}).eval()
    probs, labels = predict(model, src, cfg, torch.device("cpu"))
    by_hand = torch.zeros_like(probs)
    for view in range(6):
        ds = ClipDataset(src, cfg.data, train=False, view=view)
        x = torch.stack([ds[i]["video"] for i in range(len(ds))])
        from privvid.engine.data import to_model_input

        with torch.no_grad():
            by_hand += model(to_model_input(x, torch.device("cpu"))).softmax(-1)
    by_hand /= 6
    torch.testing.assert_close(probs, by_hand, rtol=1e-5, atol=1e-6)
    views = {tuple(ClipDataset(src, cfg.data, train=False, view=v)[0]["video"].float().mean(dim=(0, 3)).shape)
             for v in range(6)}
    assert views == {(32, 32)}
    crops = [ClipDataset(src, cfg.data, train=False, view=v)[0]["video"] for v in range(3)]
    assert not torch.equal(crops[0], crops[2]), "the three crops see different parts of the frame"
    res = evaluate(model, src, cfg, torch.device("cpu"))
    assert res["views"] == 6 and res["top1"] == pytest.approx(float((probs.argmax(1) == labels).float().mean()))


def test_layer_wise_decay_gives_each_block_its_lr():
    from privvid.engine.trainer import param_groups

    model = Classifier(NANO, {"d": 3})
    groups = param_groups(model, 0.05, layer_decay=0.5, depth=NANO.depth)
    scale = {}
    for g in groups:
        for p in g["params"]:
            name = next(n for n, q in model.named_parameters() if q is p)
            scale[name] = g["lr_scale"]
    depth = NANO.depth  # 2 blocks: embedding 0.5^3, block 0 0.5^2, block 1 0.5^1, head and norms 1
    assert scale["encoder.patch_embed.weight"] == pytest.approx(0.5 ** (depth + 1))
    assert scale["encoder.blocks.0.fc1.weight"] == pytest.approx(0.5 ** depth)
    assert scale["encoder.blocks.1.attn.qkv.bias"] == pytest.approx(0.5)
    assert scale["heads.h_d.weight"] == scale["encoder.norm.weight"] == 1.0
    assert all(g["weight_decay"] == 0.0 for g in groups if any(p.ndim <= 1 for p in g["params"]))


def test_videomae_target_normalises_each_patch_per_channel():
    from privvid.engine.data import MEAN, STD

    torch.manual_seed(0)
    pixels = torch.rand(1, 3, 4, 32, 32)                       # [0, 1]
    x = (pixels * 255 - MEAN.view(1, 3, 1, 1, 1)) / STD.view(1, 3, 1, 1, 1)
    target = mae_target(x, NANO, True, "videomae")
    # patch 0: frames 0-1, rows 0-15, cols 0-15; its red channel normalised on its own
    red = pixels[0, 0, :2, :16, :16].reshape(-1)
    expect = (red - red.mean()) / (red.std(unbiased=True) + 1e-6)
    torch.testing.assert_close(target[0, 0].view(-1, 3)[:, 0], expect, rtol=1e-4, atol=1e-4)
    pooled = mae_target(x, NANO, True, "pooled")
    assert not torch.allclose(pooled, target)


def test_gradient_accumulation_matches_the_full_batch_step(clips, tmp_path):
    from privvid.engine.trainer import train

    src = load_source(clips / "all.txt")
    base = _tiny("mae", **{"optim.batch_size": 4, "optim.epochs": 1, "optim.warmup_epochs": 0,
                           "mae.repeats": 1, "optim.lr": 1e-3})
    one = train(base, [src], tmp_path / "a", stop_after_epoch=1, device="cpu")
    two = train(apply_overrides(base, ["optim.accum=2"]), [src], tmp_path / "b", stop_after_epoch=1, device="cpu")
    assert one.steps == two.steps == 3
    from privvid.engine import checkpoint as ckpt

    a, b = ckpt.load_weights(tmp_path / "a"), ckpt.load_weights(tmp_path / "b")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)


def test_activation_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = VideoViT(NANO).train()
    ckpted = VideoViT(replace(NANO, grad_checkpoint=True)).train()
    ckpted.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    plain(x).square().mean().backward()
    ckpted(x).square().mean().backward()
    for (n, p), (_, q) in zip(plain.named_parameters(), ckpted.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-5, atol=1e-6, msg=n)


def test_bf16_on_cpu_trains_and_fp16_needs_cuda(clips, tmp_path):
    from privvid.engine.trainer import cpu_has_fast_bf16, precision_of, train

    auto = apply_overrides(_tiny("mae"), ["precision=auto"])
    assert precision_of(torch.device("cpu"), auto) == ("bf16" if cpu_has_fast_bf16() else "fp32")
    assert precision_of(torch.device("cpu"), apply_overrides(auto, ["bf16=false"])) == "fp32"

    src = load_source(clips / "all.txt")
    cfg = _tiny("mae", **{"optim.batch_size": 4, "optim.epochs": 1, "precision": "bf16"})
    assert train(cfg, [src], tmp_path / "bf16", device="cpu").steps == 3
    if not torch.cuda.is_available():
        with pytest.raises(EngineError, match="CUDA"):
            train(apply_overrides(cfg, ["precision=fp16"]), [src], tmp_path / "fp16", device="cpu")


def test_a_finished_run_is_not_overwritten_and_validation_keeps_the_best(clips, tmp_path):
    from privvid.engine.api import align_classes
    from privvid.engine.trainer import train

    src = load_source(clips / "all.txt", name="d")
    val = align_classes(load_source(clips / "val_missing.txt", require_labels=False), src)
    assert val.classes == src.classes and [s.label for s in val.samples] == [0, 2]
    cfg = _tiny("ft", **{"optim.batch_size": 4, "optim.epochs": 2, "val_every": 1})
    res = train(cfg, [src], tmp_path / "run", val=val, device="cpu", init=None)
    assert (tmp_path / "run" / "best" / "config.json").is_file() and "best" in res.eval
    best = json.loads((tmp_path / "run" / "best" / "config.json").read_text())["best"]
    history = [r for r in res.history if "val_top1" in r]
    assert len(history) == 2 and best["top1"] == max(r["val_top1"] for r in history)
    csv_lines = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,step,loss") and len(csv_lines) == 3
    assert (tmp_path / "run" / "curves.png").stat().st_size > 1000
    with pytest.raises(EngineError, match="--resume.*--overwrite"):
        train(cfg, [src], tmp_path / "run", val=val, device="cpu")
    again = train(cfg, [src], tmp_path / "run", val=val, device="cpu", overwrite=True)
    assert again.steps == 6
    # resumed after its last epoch (an interrupt after the last save): no epoch runs, its evaluation is kept
    done = train(cfg, [src], tmp_path / "run", val=val, device="cpu", resume=True)
    assert not done.history and done.eval == json.loads((tmp_path / "run" / "eval.json").read_text())
    assert done.eval["top1"] == again.eval["top1"]
    bad = Source("v", val.samples, ["0", "1", "2", "3", "4"])
    with pytest.raises(EngineError, match="up to 4"):
        align_classes(bad, src)
    named = Source("v", val.samples, ["walk", "run", "jump"])   # names against the train list's (numeric) labels
    with pytest.raises(EngineError, match=r"not among the train classes \(3: 0, 1, 2\); the train list's labels are "
                                          "indices"):
        align_classes(named, src)


def test_hf_videomae_round_trip(tmp_path):
    transformers = pytest.importorskip("transformers")
    from privvid.engine.convert import from_hf, hf_config, load_hf, save_hf, to_hf

    cfg = replace(NANO, pos_embed="sincos1d")
    torch.manual_seed(0)
    hf = transformers.VideoMAEModel(transformers.VideoMAEConfig(**{k: v for k, v in hf_config(cfg).items()
                                                                    if k not in ("model_type", "architectures")}))
    hf.eval()
    with torch.no_grad():                   # give the biases values (a fresh HF model has them at zero)
        for name, p in hf.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.1)
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        theirs = hf(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state
    mcfg, enc = from_hf(hf.state_dict(), hf_config(cfg))
    ours = VideoViT(mcfg).eval()
    ours.load_state_dict(enc)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs, rtol=1e-5, atol=1e-5)
    # and back: privvid -> HF folder -> transformers.from_pretrained gives the same features
    with torch.no_grad():
        for p in ours.parameters():
            p.add_(0.01 * torch.randn_like(p))
        mine = ours(x)
    save_hf(tmp_path / "hf", ours.state_dict(), mcfg)
    again = transformers.VideoMAEModel.from_pretrained(str(tmp_path / "hf")).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(pixel_values=x.permute(0, 2, 1, 3, 4)).last_hidden_state, mine,
                                   rtol=1e-5, atol=1e-5)
    back_cfg, back = load_hf(tmp_path / "hf")
    assert back_cfg.arch() == mcfg.arch()
    for k, v in ours.state_dict().items():
        if not k.endswith("attn.qkv.bias"):
            torch.testing.assert_close(back[k], v)
    assert set(to_hf(ours.state_dict(), mcfg)) == set(hf.state_dict())


def test_videomae_pth_round_trip_through_the_cli(tmp_path):
    from typer.testing import CliRunner

    from privvid.cli.main import app
    from privvid.engine.convert import save_videomae

    from privvid.engine import checkpoint as ckpt
    from privvid.engine.config import TrainConfig

    runner = CliRunner()
    for pos in ("sincos1d", "sincos3d"):   # the VideoMAE code's table, and privvid's default
        cfg = replace(NANO, pos_embed=pos)
        torch.manual_seed(1)
        model = VideoViT(cfg).eval()
        save_videomae(tmp_path / f"{pos}.pth", model.state_dict(), cfg)
        # heads, frames, size and table come from what privvid's export records (the weights do not say them)
        result = runner.invoke(app, ["checkpoint", "import", str(tmp_path / f"{pos}.pth"), "--out",
                                     str(tmp_path / f"imported_{pos}")])
        assert result.exit_code == 0, result.output
        meta = ckpt.read_meta(tmp_path / f"imported_{pos}")
        mcfg = TrainConfig.from_dict(meta["train_config"]).model
        assert (mcfg.heads, mcfg.frames, mcfg.image_size, mcfg.pos_embed) == (NANO.heads, NANO.frames, NANO.image_size, pos)
        back = VideoViT(mcfg).eval()
        back.load_state_dict(ckpt.encoder_state(tmp_path / f"imported_{pos}", mcfg))
        x = torch.randn(1, 3, NANO.frames, NANO.image_size, NANO.image_size)
        with torch.no_grad():
            torch.testing.assert_close(back(x), model(x), rtol=1e-5, atol=1e-5)
        result = runner.invoke(app, ["checkpoint", "export", str(tmp_path / f"imported_{pos}"), "--format",
                                     "videomae", "--out", str(tmp_path / f"again_{pos}.pth")])
        assert result.exit_code == 0, result.output
        assert ("features differ there until fine-tuned" in " ".join(result.output.split())) == (pos == "sincos3d")
        state = torch.load(tmp_path / f"again_{pos}.pth", weights_only=True)["model"]
        assert "blocks.0.attn.q_bias" in state and "blocks.0.mlp.fc1.weight" in state
    # sizes given win over the record; a record of the wrong kind is one line, not a traceback
    result = runner.invoke(app, ["checkpoint", "import", str(tmp_path / "sincos1d.pth"), "--out", str(tmp_path / "given"),
                                 "--frames", "8", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    mcfg = TrainConfig.from_dict(ckpt.read_meta(tmp_path / "given")["train_config"]).model
    assert (mcfg.frames, mcfg.image_size, mcfg.heads) == (8, 64, NANO.heads)
    raw = torch.load(tmp_path / "sincos1d.pth", weights_only=True)
    for bad in ({"img_size": [32]}, {"num_frames": 0}, {"num_heads": 3}, {"num_frames": "8"}):
        torch.save({"model": raw["model"], "privvid": {**raw["privvid"], **bad}}, tmp_path / "bad.pth")
        result = runner.invoke(app, ["checkpoint", "import", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2 and "Traceback" not in result.output, (bad, result.output)
        assert not (tmp_path / "bad").exists()
    # a VideoMAE code base checkpoint (no record of privvid's) is read with the flags given
    torch.save({"model": torch.load(tmp_path / "sincos1d.pth", weights_only=True)["model"]}, tmp_path / "plain.pth")
    result = runner.invoke(app, ["checkpoint", "import", str(tmp_path / "plain.pth"), "--out", str(tmp_path / "plain"),
                                 "--frames", "8", "--image-size", "64", "--heads", "4"])
    assert result.exit_code == 0, result.output
    mcfg = TrainConfig.from_dict(ckpt.read_meta(tmp_path / "plain")["train_config"]).model
    assert (mcfg.heads, mcfg.frames, mcfg.image_size, mcfg.pos_embed) == (4, 8, 64, "sincos1d")


def test_settings_follow_the_declared_types_and_resume_keeps_the_recipe(clips, tmp_path):
    from privvid.engine.trainer import train

    cfg = apply_overrides(preset("ppma", "ft"), ["optim.warmup_epochs=2.5", "optim.clip_grad=1.0"])
    assert cfg.optim.warmup_epochs == 2.5 and apply_overrides(cfg, ["optim.clip_grad=none"]).optim.clip_grad is None
    for bad in (["data.scale=0.3"], {"optim.epochs": 2.7}):
        with pytest.raises(EngineError, match="not a valid"):
            apply_overrides(cfg, bad)
    src = load_source(clips / "all.txt")
    run = _tiny("mae", **{"optim.batch_size": 4, "optim.epochs": 2})
    train(run, [src], tmp_path / "r", stop_after_epoch=1, device="cpu")
    with pytest.raises(EngineError, match="mae.target"):
        train(apply_overrides(run, ["mae.target=pooled"]), [src], tmp_path / "r", resume=True, device="cpu")
    done = train(apply_overrides(run, ["optim.epochs=3"]), [src], tmp_path / "r", resume=True, device="cpu")
    assert done.steps == 9 and done.note is None and done.main
    # resumed with fewer epochs than it has done: nothing trains, and the caller is told so
    again = train(apply_overrides(run, ["optim.epochs=2"]), [src], tmp_path / "r", resume=True, device="cpu")
    assert again.steps == 9 and again.note is not None and "has done 3 epochs, --epochs asks for 2" in again.note


def _mmaction_vit_forward(state: dict, backbone: dict, x: torch.Tensor) -> torch.Tensor:
    """mmaction2's ``VisionTransformer`` (vit_mae.py) computation, written from its module structure and read
    from the checkpoint by mmaction2's key names: tokens after the final norm (use_mean_pooling=False)."""
    import torch.nn.functional as F

    p = {k[len("backbone."):]: v for k, v in state.items()}
    d, heads = backbone["embed_dims"], backbone["num_heads"]
    t, s = backbone["tubelet_size"], backbone["patch_size"]
    x = F.conv3d(x, p["patch_embed.projection.weight"], p["patch_embed.projection.bias"], stride=(t, s, s))
    x = x.flatten(2).transpose(1, 2) + p["pos_embed"]
    b, n, _ = x.shape
    for i in range(backbone["depth"]):
        q = f"blocks.{i}."
        h = F.layer_norm(x, (d,), p[q + "norm1.weight"], p[q + "norm1.bias"], eps=1e-6)
        bias = torch.cat([p[q + "attn.q_bias"], torch.zeros(d), p[q + "attn.v_bias"]])
        qkv = F.linear(h, p[q + "attn.qkv.weight"], bias).reshape(b, n, 3, heads, -1).permute(2, 0, 3, 1, 4)
        attn = ((qkv[0] * (d // heads) ** -0.5) @ qkv[1].transpose(-2, -1)).softmax(-1)
        x = x + F.linear((attn @ qkv[2]).transpose(1, 2).reshape(b, n, d), p[q + "attn.proj.weight"],
                         p[q + "attn.proj.bias"])
        h = F.layer_norm(x, (d,), p[q + "norm2.weight"], p[q + "norm2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, p[q + "mlp.layers.0.0.weight"], p[q + "mlp.layers.0.0.bias"]))
        x = x + F.linear(h, p[q + "mlp.layers.1.weight"], p[q + "mlp.layers.1.bias"])
    return F.layer_norm(x, (d,), p["norm.weight"], p["norm.bias"], eps=1e-6)


@pytest.mark.parametrize("pos", ["sincos1d", "sincos3d"])
def test_mmaction_export_computes_the_same_features_and_imports_back(tmp_path, pos):
    from typer.testing import CliRunner

    from privvid.cli.main import app
    from privvid.engine import checkpoint as ckpt
    from privvid.engine.config import TrainConfig
    from privvid.engine.convert import import_checkpoint, mmaction_backbone, save_mmaction

    cfg = replace(NANO, pos_embed=pos)
    torch.manual_seed(2)
    model = VideoViT(cfg).eval()
    with torch.no_grad():
        for name, prm in model.named_parameters():
            if name.endswith("bias"):
                prm.normal_(0, 0.1)
        model.blocks[0].attn.qkv.bias[cfg.dim:2 * cfg.dim] = 0.0   # mmaction2 has no k bias (it cannot matter)
    path = save_mmaction(tmp_path / "vit.pth", model.state_dict(), cfg)
    raw = torch.load(path, weights_only=True)
    backbone = mmaction_backbone(cfg)
    x = torch.randn(2, 3, cfg.frames, cfg.image_size, cfg.image_size)
    with torch.no_grad():
        torch.testing.assert_close(_mmaction_vit_forward(raw["state_dict"], backbone, x), model(x),
                                   rtol=1e-5, atol=1e-5)
    assert all(k.startswith("backbone.") for k in raw["state_dict"])
    config_text = (tmp_path / "vit.backbone.py").read_text()
    scope: dict = {}
    exec(compile(config_text, "vit.backbone.py", "exec"), {"dict": dict}, scope)   # our own file: a dict literal
    assert scope["backbone"] == backbone and backbone["type"] == "VisionTransformer"
    # back into privvid: the same encoder, its position table recognised
    import_checkpoint(path, tmp_path / "imported")
    meta = ckpt.read_meta(tmp_path / "imported")
    mcfg = TrainConfig.from_dict(meta["train_config"]).model
    assert mcfg.pos_embed == pos and mcfg.arch() == cfg.arch()
    back = VideoViT(mcfg).eval()
    back.load_state_dict(ckpt.encoder_state(tmp_path / "imported", mcfg))
    with torch.no_grad():
        torch.testing.assert_close(back(x), model(x), rtol=1e-5, atol=1e-5)
    result = CliRunner().invoke(app, ["checkpoint", "export", str(tmp_path / "imported"), "--format", "mmaction",
                                      "--out", str(tmp_path / "again.pth")])
    assert result.exit_code == 0, result.output
    again = torch.load(tmp_path / "again.pth", weights_only=True)["state_dict"]
    for k, v in raw["state_dict"].items():
        torch.testing.assert_close(again[k], v, rtol=1e-6, atol=1e-6)
