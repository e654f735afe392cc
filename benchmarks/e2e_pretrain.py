"""End-to-end MAE pre-training throughput, loader plus step, on privvid's own anonymised clips:
privvid's pipeline against the VideoMAE recipe's (decord loading + HF VideoMAE) at the same size and settings.

    python benchmarks/e2e_pretrain.py [--clips 8] [--size tiny] [--frames 16] [--image 112] [--batch 4]
        [--steps 12] [--workers 1]

Both pipelines read the same anonymised clips (the demo clips through `privvid anonymize --mode remove
--resize -2x128`), sample 16 frames at stride 4, random-resized-crop to the same size, mask 90% of the
tubelets at random and train one AdamW step per batch of a model of the same size:

* privvid: the engine's DataLoader (PyAV, seek to the key frame, OpenCV colour conversion and crops), its MAE
  and its optimizer (fused AdamW), in the precision `auto` picks (bf16 autocast on CPUs with bf16 instructions);
* VideoMAE recipe: decord `VideoReader.get_batch` at the sampled indices, resize + crop with torch, into
  `transformers.VideoMAEForPreTraining` (norm_pix_loss, sdpa), fp32 as the VideoMAE code runs off-GPU.

Printed beside the end-to-end clips/s: each model's step alone on synthetic tensors, and each loader
alone, so the bottleneck is visible. Start-up is excluded (warm-up steps); decord is needed
(`pip install decord`).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset

from _shared import DEMO
from privvid.engine.config import MAEConfig, OptimConfig, TrainConfig, model_config, preset
from privvid.engine.data import MEAN, STD, EpochSampler, Source, Sample, to_model_input
from privvid.engine.model import MAE, make_mask
from privvid.engine.trainer import _autocast, make_loader, make_optimizer, param_groups, precision_of

SOURCES = ["sam2_juggle.mp4", "mmaction2_demo_skeleton_two_people.mp4", "propainter_test-sample1.mp4",
           "propainter_test-sample0.mp4", "sam2_coffee_hands.mp4"]


def anonymised_clips(folder: Path, count: int) -> list[Path]:
    from privvid.anonymize import anonymize_dataset
    from privvid.config import AnonymizeConfig, parse_size
    from privvid.io import VideoWriter, read_frames

    src = folder / "in"
    src.mkdir(parents=True)
    for i in range(count):
        name = SOURCES[i % len(SOURCES)]
        frames = [f for _, f in zip(range(96), read_frames(DEMO / name))]
        h, w = frames[0].shape[:2]
        with VideoWriter(src / f"c{i:02d}.mp4", w - w % 2, h - h % 2, 25) as writer:
            for f in frames:
                writer.write(np.ascontiguousarray(f[: h - h % 2, : w - w % 2]))
    cfg = AnonymizeConfig(mode="remove", resize=parse_size("-2x128"))
    anonymize_dataset(src, folder / "out", cfg, workers=2)
    return sorted(p for p in (folder / "out").glob("*.mp4"))


class DecordClips(Dataset):
    """The VideoMAE recipe's loading: decord reads the sampled frames, torch resizes and crops them."""

    def __init__(self, paths: list[Path], frames: int, stride: int, size: int, short_side: int) -> None:
        self.paths, self.frames, self.stride, self.size, self.short = paths, frames, stride, size, short_side

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        import decord

        rng = np.random.default_rng(i)
        vr = decord.VideoReader(str(self.paths[i]), num_threads=1)
        span = (self.frames - 1) * self.stride + 1
        start = int(rng.integers(0, max(1, len(vr) - span + 1)))
        idx = np.minimum(start + np.arange(self.frames) * self.stride, len(vr) - 1)
        video = torch.from_numpy(vr.get_batch(idx.tolist()).asnumpy()).permute(0, 3, 1, 2).float()  # T C H W
        h, w = video.shape[-2:]
        scale = self.short / min(h, w)
        video = F.interpolate(video, size=(round(h * scale), round(w * scale)), mode="bilinear", align_corners=False)
        h, w = video.shape[-2:]
        area = h * w * rng.uniform(0.5, 1.0)
        ch = cw = int(min(h, w, math.sqrt(area)))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        video = F.interpolate(video[..., y0:y0 + ch, x0:x0 + cw], size=(self.size, self.size), mode="bilinear",
                              align_corners=False)
        video = (video - MEAN.view(1, 3, 1, 1)) / STD.view(1, 3, 1, 1)
        return video  # T C H W, as HF VideoMAE takes it


def hf_mae(cfg):
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    return VideoMAEForPreTraining(VideoMAEConfig(
        image_size=cfg.image_size, patch_size=cfg.patch, num_frames=cfg.frames, tubelet_size=cfg.tubelet,
        hidden_size=cfg.dim, num_hidden_layers=cfg.depth, num_attention_heads=cfg.heads,
        intermediate_size=int(cfg.dim * cfg.mlp_ratio), decoder_hidden_size=cfg.decoder_dim,
        decoder_num_hidden_layers=cfg.decoder_depth, decoder_num_attention_heads=cfg.decoder_heads,
        decoder_intermediate_size=int(cfg.decoder_dim * cfg.mlp_ratio), norm_pix_loss=True,
        attn_implementation="sdpa"))


def timed(batches, step, steps: int, warmup: int) -> float:
    it = iter(batches)
    for _ in range(warmup):
        step(next(it))
    t0 = time.perf_counter()
    for _ in range(steps):
        step(next(it))
    return time.perf_counter() - t0


def forever(loader):
    while True:
        yield from loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--size", default="tiny")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--image", type=int, default=112)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    device = torch.device("cpu")
    mcfg = model_config(args.size, frames=args.frames, image_size=args.image)
    base = preset("tiny", "mae", args.size)
    cfg = TrainConfig(task="mae", model=mcfg, data=base.data.__class__(frames=args.frames, stride=4, size=args.image,
                                                                      short_side=int(args.image * 1.15),
                                                                      workers=args.workers),
                      optim=OptimConfig(batch_size=args.batch), mae=MAEConfig(mask="random", ratio=0.9))
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        paths = anonymised_clips(Path(tmp), args.clips)
        b = args.batch
        torch.manual_seed(0)
        ours = MAE(mcfg)
        opt = make_optimizer(param_groups(ours, cfg.optim.weight_decay, None, 1.0, mcfg.depth), cfg)
        amp = _autocast(device, cfg)
        theirs = hf_mae(mcfg)
        opt_hf = torch.optim.AdamW(theirs.parameters(), lr=1e-4)
        keys = torch.arange(b) + 1
        vis, masked = make_mask(mcfg, keys, 0.9, "random")
        bool_mask = torch.ones(b, mcfg.num_tokens, dtype=torch.bool)
        bool_mask.scatter_(1, vis, False)

        def our_step(video: torch.Tensor) -> None:
            with amp:
                loss = ours(video, vis[: len(video)], masked[: len(video)], True, "videomae")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        def hf_step(video: torch.Tensor) -> None:
            loss = theirs(pixel_values=video, bool_masked_pos=bool_mask[: len(video)]).loss
            opt_hf.zero_grad(set_to_none=True)
            loss.backward()
            opt_hf.step()

        src = Source("anon", [Sample(p, 0) for p in paths], ["x"])
        sampler = EpochSampler(len(paths), b, 0, True, drop_last=True)
        ours_loader = make_loader(src, cfg, True, b, 0, 1, sampler=sampler)
        hf_loader = DataLoader(DecordClips(paths, args.frames, 4, args.image, int(args.image * 1.15)), batch_size=b,
                               shuffle=True, drop_last=True, num_workers=args.workers,
                               persistent_workers=args.workers > 0)
        n = args.steps
        synth = torch.randn(b, 3, args.frames, args.image, args.image)
        rows = []
        t_ours_step = timed(iter(lambda: synth, None), our_step, n, args.warmup)
        t_hf_step = timed(iter(lambda: synth.permute(0, 2, 1, 3, 4).contiguous(), None), hf_step, n, args.warmup)
        t_ours_load = timed(forever(ours_loader), lambda batch: None, n, args.warmup)
        t_hf_load = timed(forever(hf_loader), lambda batch: None, n, args.warmup)
        t_ours = timed(forever(ours_loader), lambda batch: our_step(to_model_input(batch["video"], device)), n,
                       args.warmup)
        t_hf = timed(forever(hf_loader), hf_step, n, args.warmup)
        for name, e2e, step, load in (("privvid (PyAV loader + engine, " + precision_of(device, cfg) + ")",
                                       t_ours, t_ours_step, t_ours_load),
                                      ("VideoMAE recipe (decord + HF VideoMAE, fp32)", t_hf, t_hf_step, t_hf_load)):
            rows.append((name, n * b / e2e, n * b / step, n * b / load))
    table = Table(title=f"MAE pre-training end to end, ViT-{args.size} {args.frames}x{args.image}^2, batch {b}, "
                        f"{args.workers} loader worker(s), {len(paths)} anonymised clips, {torch.get_num_threads()} threads")
    for col in ("pipeline", "end to end clips/s", "step alone (synthetic) clips/s", "loader alone clips/s", "vs recipe"):
        table.add_column(col, justify="left" if col == "pipeline" else "right")
    for name, e2e, step, load in rows:
        table.add_row(name, f"{e2e:.2f}", f"{step:.2f}", f"{load:.2f}", f"{e2e / rows[1][1]:.2f}x")
    console.print(table)


if __name__ == "__main__":
    main()
