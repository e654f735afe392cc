"""Training speed of the bundled engine vs Hugging Face VideoMAE of the same size (random init).

Measures training steps (forward + backward + AdamW) in clips/s on random clips, for MAE
pre-training (90% masking, same masks for both) and supervised classification, side by side with
``transformers.VideoMAEForPreTraining`` / ``VideoMAEForVideoClassification`` built from a config
of the same size. Nothing is downloaded. With ``--loader`` it also times the PyAV DataLoader on the
shared real clips at the same clip shape (does it keep up with the training step?).

CPU:  OMP_NUM_THREADS=2 python benchmarks/engine_speed.py --sizes tiny small --frames 16 --image 112
GPU:  python benchmarks/engine_speed.py --device cuda --sizes base --frames 16 --image 224 --batch 32 --bf16 \
          --peak-tflops 989 --loader --e2e --workers 14
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from _shared import DATA
from privvid.engine.config import model_config
from privvid.engine.model import MAE, Classifier, count_flops_per_clip, make_mask


def hf_models(cfg, classes: int):
    from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification

    hc = VideoMAEConfig(image_size=cfg.image_size, patch_size=cfg.patch, num_frames=cfg.frames,
                        tubelet_size=cfg.tubelet, hidden_size=cfg.dim, num_hidden_layers=cfg.depth,
                        num_attention_heads=cfg.heads, intermediate_size=int(cfg.dim * cfg.mlp_ratio),
                        decoder_hidden_size=cfg.decoder_dim, decoder_num_hidden_layers=cfg.decoder_depth,
                        decoder_num_attention_heads=cfg.decoder_heads,
                        decoder_intermediate_size=int(cfg.decoder_dim * cfg.mlp_ratio),
                        use_mean_pooling=True, norm_pix_loss=True, num_labels=classes,
                        attn_implementation="sdpa")
    return VideoMAEForPreTraining(hc), VideoMAEForVideoClassification(hc)


def time_steps(step, steps: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def bench_size(size: str, args, device: torch.device) -> list[dict]:
    cfg = model_config(size, frames=args.frames, image_size=args.image)
    b = args.batch
    x = torch.randn(b, 3, cfg.frames, cfg.image_size, cfg.image_size, device=device)
    x_hf = x.permute(0, 2, 1, 3, 4).contiguous()
    y = torch.randint(0, 10, (b,), device=device)
    vis, masked = make_mask(cfg, torch.arange(b) + 1, 0.9, "random")
    vis, masked = vis.to(device), masked.to(device)
    bool_mask = torch.ones(b, cfg.num_tokens, dtype=torch.bool, device=device)
    bool_mask.scatter_(1, vis, False)
    amp = torch.autocast(device.type, dtype=torch.bfloat16) if args.bf16 else torch.autocast(device.type, enabled=False)

    torch.manual_seed(0)
    ours_mae, ours_cls = MAE(cfg).to(device), Classifier(cfg, {"d": 10}).to(device)
    hf_mae, hf_cls = (m.to(device) for m in hf_models(cfg, 10))
    rows = []

    def runner(model, loss_fn, compiled=False):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
        if compiled:
            model = torch.compile(model)

        def step():
            with amp:
                loss = loss_fn(model)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return step

    cases = {
        "mae": [("privvid", runner(ours_mae, lambda m: m(x, vis, masked))),
                ("hf VideoMAE", runner(hf_mae, lambda m: m(pixel_values=x_hf, bool_masked_pos=bool_mask).loss))],
        "supervised": [("privvid", runner(ours_cls, lambda m: F.cross_entropy(m(x).float(), y))),
                       ("hf VideoMAE", runner(hf_cls, lambda m: F.cross_entropy(m(pixel_values=x_hf).logits.float(), y)))],
    }
    if args.compile:
        torch.manual_seed(0)
        c_mae, c_cls = MAE(cfg).to(device), Classifier(cfg, {"d": 10}).to(device)
        cases["mae"].append(("privvid compiled", runner(c_mae, lambda m: m(x, vis, masked), True)))
        cases["supervised"].append(("privvid compiled",
                                    runner(c_cls, lambda m: F.cross_entropy(m(x).float(), y), True)))
    for task, impls in cases.items():
        flops = 3 * count_flops_per_clip(cfg, "mae" if task == "mae" else "sup", 0.9, "random")
        res = {name: 0.0 for name, _ in impls}
        for rnd in range(args.rounds):  # alternate the two, keep each one's best round (shared CPUs)
            for name, step in impls:
                res[name] = max(res[name], b / time_steps(step, args.steps, args.warmup if rnd == 0 else 0, device))
        for name, cps in res.items():
            rows.append({"size": size, "task": task, "impl": name, "clips_per_s": cps,
                         "speedup": cps / res["hf VideoMAE"], "tflops": cps * flops / 1e12,
                         "mfu": cps * flops / 1e12 / args.peak_tflops if args.peak_tflops else None})
    del ours_mae, ours_cls, hf_mae, hf_cls, cases
    return rows


def bench_loader(args) -> dict:
    from privvid.engine.config import DataConfig, TrainConfig
    from privvid.engine.data import EpochSampler, Sample, Source
    from privvid.engine.trainer import make_loader

    root = Path(args.clips)
    files = [p for p in sorted(root.iterdir()) if p.suffix in (".mp4", ".avi", ".mkv")]
    reps = max(1, args.loader_clips // len(files))
    src = Source("bench", [Sample(p, i % 2) for i, p in enumerate(files * reps)], ["a", "b"])
    data = DataConfig(frames=args.frames, stride=4, size=args.image, short_side=int(args.image * 256 / 224),
                      workers=args.workers)
    cfg = TrainConfig(data=data)
    loader = make_loader(src, cfg, True, args.batch, 0, 1,
                         sampler=EpochSampler(len(src.samples), args.batch, 0, True))
    n = 0
    t0 = None
    for i, batch in enumerate(loader):
        if i == 0:
            t0 = time.perf_counter()  # clock starts once the first batch is out (workers started)
        else:
            n += batch["video"].shape[0]
    dt = time.perf_counter() - t0
    return {"workers": args.workers, "clips": n, "clips_per_s": n / dt}


def bench_e2e(args) -> list[dict]:
    """Real training through privvid.engine.trainer.train (loader + model) on the shared clips."""
    import tempfile
    from dataclasses import replace

    from privvid.engine.config import preset
    from privvid.engine.data import Sample, Source
    from privvid.engine.trainer import train

    root = Path(args.clips)
    files = [p for p in sorted(root.iterdir()) if p.suffix in (".mp4", ".avi", ".mkv")]
    reps = max(1, args.loader_clips // len(files))
    src = Source("bench", [Sample(p, i % 2) for i, p in enumerate(files * reps)], ["a", "b"])
    out = []
    for repeats in (4, 1):
        cfg = preset("paper", "mae", args.sizes[0])
        cfg = replace(cfg, model=replace(cfg.model, frames=args.frames, image_size=args.image),
                      data=replace(cfg.data, frames=args.frames, size=args.image,
                                   short_side=int(args.image * 256 / 224), workers=args.workers),
                      optim=replace(cfg.optim, epochs=2, batch_size=args.batch, warmup_epochs=1),
                      mae=replace(cfg.mae, repeats=repeats), bf16=args.bf16, log_every=10**9)
        with tempfile.TemporaryDirectory() as tmp:
            res = train(cfg, [src], tmp, device=args.device)
        videos_per_s = res.history[-1]["clips_per_s"]  # second epoch: workers warm
        out.append({"repeats": repeats, "videos_per_s": videos_per_s, "clips_per_s": videos_per_s * repeats,
                    "steps": res.steps})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["tiny", "small"])
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--image", type=int, default=112)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=3, help="alternating timing rounds; the best is kept")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--peak-tflops", type=float, default=None, help="for model FLOPs utilisation (H100 SXM bf16 dense: 989)")
    ap.add_argument("--loader", action="store_true")
    ap.add_argument("--clips", default=str(DATA / "action-clips"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--loader-clips", type=int, default=64)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd privvid models")
    ap.add_argument("--e2e", action="store_true", help="also train MAE end to end through the engine")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    console = Console()
    console.print(f"torch {torch.__version__}, device {device}"
                  f"{' ' + torch.cuda.get_device_name() if device.type == 'cuda' else ''}, threads {torch.get_num_threads()}, "
                  f"clip {args.frames}x{args.image}x{args.image}, batch {args.batch}, bf16 {args.bf16}")
    rows = []
    for size in args.sizes:
        rows += bench_size(size, args, device)
    table = Table(title="training throughput (clips/s, fwd+bwd+AdamW)")
    for col in ("size", "task", "impl", "clips/s", "vs HF", "model TFLOP/s", "MFU"):
        table.add_column(col, justify="right" if col not in ("size", "task", "impl") else "left")
    for r in rows:
        table.add_row(r["size"], r["task"], r["impl"], f"{r['clips_per_s']:.2f}", f"{r['speedup']:.2f}x",
                      f"{r['tflops']:.2f}", f"{100 * r['mfu']:.1f}%" if r["mfu"] else "-")
    console.print(table)
    out = {"args": vars(args), "rows": rows}
    if args.loader:
        ld = bench_loader(args)
        out["loader"] = ld
        console.print(f"PyAV DataLoader, {ld['workers']} workers, {args.frames}x{args.image}^2 clips from "
                      f"{Path(args.clips).name}: {ld['clips_per_s']:.1f} clips/s over {ld['clips']} clips")
    if args.e2e:
        out["e2e"] = bench_e2e(args)
        for r in out["e2e"]:
            console.print(f"end-to-end MAE ({args.sizes[0]}, PyAV loader with {args.workers} workers, {r['repeats']} "
                          f"mask(s) per video): {r['videos_per_s']:.1f} videos/s = {r['clips_per_s']:.1f} clips/s")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
