"""One training loop for MAE pre-training, supervised alignment, fine-tuning and linear probing.

Determinism: every random choice is drawn from a seed derived from (run seed, epoch, position) or
(run seed, step): clip crops and MAE masks from the sample's key (see ``data.EpochSampler``), mixup /
cutmix and drop-path from the step. A run stopped after any epoch and resumed continues bit for bit,
and 2-process DDP sees the same clips, crops and masks as one process with the same global batch.
"""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from privvid.engine import checkpoint as ckpt
from privvid.engine.config import EngineError, TrainConfig
from privvid.engine.data import ClipDataset, EpochSampler, Source, item_key, split_sources, to_model_input
from privvid.engine.model import MAE, Classifier, make_mask


# ----------------------------------------------------------------------------- distributed


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: torch.device | None = None) -> Dist:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA); no-op for one process."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    use_cuda = torch.cuda.is_available() and (device is None or device.type == "cuda")
    dist.init_process_group("nccl" if use_cuda else "gloo")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if use_cuda:
        torch.cuda.set_device(local)
    return Dist(dist.get_rank(), dist.get_world_size(), local)


# ----------------------------------------------------------------------------- schedule


def lr_at(step: int, steps_per_epoch: int, cfg: TrainConfig) -> float:
    """Linear warmup from start_lr to lr, then cosine down to min_lr (per step)."""
    o = cfg.optim
    warm = int(round(o.warmup_epochs * steps_per_epoch))
    total = max(1, o.epochs * steps_per_epoch)
    if step < warm:
        return o.start_lr + (o.lr - o.start_lr) * step / warm
    progress = (step - warm) / max(1, total - warm)
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: nn.Module, weight_decay: float, only: Callable[[str], bool] | None = None) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if only is not None and not only(name):
            p.requires_grad_(False)
            continue
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name.endswith("mask_token") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


# ----------------------------------------------------------------------------- mixing


def mix_batch(x: torch.Tensor, y: torch.Tensor, n_classes: int, cfg: TrainConfig,
              rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (same box on every frame) with label smoothing; returns soft targets."""
    s = cfg.sup
    ls = s.label_smoothing
    target = F.one_hot(y, n_classes).float() * (1 - ls) + ls / n_classes
    use_mix, use_cut = s.mixup > 0, s.cutmix > 0
    if not (use_mix or use_cut) or rng.random() >= s.mix_prob or x.shape[0] < 2:
        return x, target
    cut = use_cut and (not use_mix or rng.random() < 0.5)
    lam = float(rng.beta(s.cutmix, s.cutmix) if cut else rng.beta(s.mixup, s.mixup))
    if cut:
        h, w = x.shape[-2:]
        rh, rw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        y0, y1 = max(cy - rh // 2, 0), min(cy + rh // 2, h)
        x0, x1 = max(cx - rw // 2, 0), min(cx + rw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x.flip(0)[..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = x * lam + x.flip(0) * (1 - lam)
    return x, target * lam + target.flip(0) * (1 - lam)


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: Classifier, source: Source, cfg: TrainConfig, device: torch.device, head: str | None = None,
             features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """Top-1 / top-5 on centre clips of every video in ``source``."""
    model.eval()
    loader = make_loader(source, cfg, train=False, batch=max(1, cfg.optim.batch_size), rank=0, world=1)
    correct1 = correct5 = total = 0
    amp = _autocast(device, cfg)
    for batch in loader:
        x = to_model_input(batch["video"], device)
        with amp:
            if features is not None:
                logits = model.head(head)(features(x))
            else:
                logits = model(x, head)
        y = batch["label"].to(device)
        top = logits.float().topk(min(5, logits.shape[1]), dim=1).indices
        correct1 += (top[:, 0] == y).sum().item()
        correct5 += (top == y[:, None]).any(1).sum().item()
        total += len(y)
    return {"top1": correct1 / total, "top5": correct5 / total, "n": total}


# ----------------------------------------------------------------------------- loaders


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


def make_loader(source: Source, cfg: TrainConfig, train: bool, batch: int, rank: int, world: int,
                sampler: EpochSampler | None = None, device: torch.device | None = None) -> DataLoader:
    ds = ClipDataset(source, cfg.data, train=train)
    if sampler is None:
        sampler = EpochSampler(len(ds), batch * world, cfg.seed, shuffle=train, rank=rank, world=world,
                               drop_last=train)
    workers = cfg.data.workers
    return DataLoader(ds, batch_size=batch, sampler=sampler, num_workers=workers,
                      pin_memory=device is not None and device.type == "cuda",
                      worker_init_fn=_worker_init if workers else None,
                      persistent_workers=train and workers > 0, prefetch_factor=4 if workers else None)


# ----------------------------------------------------------------------------- training


@dataclass
class RunResult:
    out: Path
    steps: int
    history: list[dict[str, Any]] = field(default_factory=list)
    eval: dict[str, float] | None = None


def _autocast(device: torch.device, cfg: TrainConfig):
    if device.type == "cuda" and cfg.bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def build_model(cfg: TrainConfig, sources: Sequence[Source]) -> nn.Module:
    if cfg.task == "mae":
        return MAE(cfg.model)
    return Classifier(cfg.model, split_sources(sources))


def _meta(cfg: TrainConfig, sources: Sequence[Source], progress: dict[str, Any],
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"task": cfg.task, "arch": cfg.model.arch(), "train_config": cfg.to_dict(),
            "heads": {s.name: s.classes for s in sources} if cfg.task != "mae" else {},
            "progress": progress, **(extra or {})}


def _interleave(counts: list[int], seed: int, epoch: int) -> list[int]:
    """Which dataset each step of an epoch draws its batch from (every batch from one dataset)."""
    order = [i for i, c in enumerate(counts) for _ in range(c)]
    if len(counts) > 1:
        g = torch.Generator().manual_seed(item_key(seed, epoch, -2))
        order = [order[i] for i in torch.randperm(len(order), generator=g).tolist()]
    return order


def train(cfg: TrainConfig, sources: Sequence[Source], out: str | Path, *, init: str | Path | None = None,
          val: Source | None = None, resume: bool = False, device: str | torch.device | None = None,
          stop_after_epoch: int | None = None, console: Any = None,
          log: Callable[[dict[str, Any]], None] | None = None) -> RunResult:
    """Train ``cfg.task`` on ``sources`` (align: one head per source) and write checkpoints to ``out``."""
    out = Path(out)
    dev = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dd = setup_distributed(dev)
    if dev.type == "cuda" and dd.world > 1:
        dev = torch.device("cuda", dd.local_rank)
    if not sources:
        raise EngineError("no training data given")
    if cfg.task in ("ft", "lp") and len(sources) != 1:
        raise EngineError(f"{cfg.task} trains on one dataset, got {len(sources)}")
    if cfg.model.frames != cfg.data.frames or cfg.model.image_size != cfg.data.size:
        raise EngineError(f"model expects {cfg.model.frames}x{cfg.model.image_size}^2 clips, "
                          f"data gives {cfg.data.frames}x{cfg.data.size}^2")
    local_batch = cfg.optim.batch_size // dd.world
    if cfg.optim.batch_size % dd.world:
        raise EngineError(f"global batch {cfg.optim.batch_size} is not divisible by {dd.world} processes")

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, sources)
    if init is not None:
        ckpt.load_into(model.encoder, ckpt.encoder_state(Path(init), cfg.model), f"encoder of {init}")
    elif cfg.task == "lp":
        raise EngineError("linear probing needs --init (a pre-trained checkpoint)")

    only = (lambda n: n.startswith("heads.")) if cfg.task == "lp" else None
    groups = param_groups(model, cfg.optim.weight_decay, only)
    optimizer = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas)

    start_epoch, step = 0, 0
    if resume and (out / "state.json").is_file():
        meta = ckpt.read_meta(out)
        if meta.get("task") != cfg.task:
            raise EngineError(f"{out} holds a {meta.get('task')} run; cannot resume it as {cfg.task}")
        ckpt.check_arch(meta, cfg.model, out)
        ckpt.load_into(model, ckpt.load_weights(out), f"weights in {out}")
        progress = ckpt.restore_optimizer(out, optimizer)
        start_epoch, step = int(progress["epoch"]), int(progress["step"])

    model.to(dev)
    for group in optimizer.state.values():
        for k, v in group.items():
            if torch.is_tensor(v) and k != "step":
                group[k] = v.to(dev)
    train_model: nn.Module = model
    if dd.world > 1:
        train_model = nn.parallel.DistributedDataParallel(
            model, device_ids=[dev.index] if dev.type == "cuda" else None,
            find_unused_parameters=cfg.task == "align" and len(sources) > 1)
    if cfg.compile:
        train_model = torch.compile(train_model)

    samplers = [EpochSampler(len(s.samples), cfg.optim.batch_size, cfg.seed + 1000 * i, True, dd.rank, dd.world)
                for i, s in enumerate(sources)]
    loaders = [make_loader(s, cfg, True, local_batch, dd.rank, dd.world, sampler=smp, device=dev)
               for s, smp in zip(sources, samplers)]
    counts = [smp.batches_per_epoch() for smp in samplers]
    steps_per_epoch = sum(counts)
    names = [s.name for s in sources]

    result = RunResult(out, step)
    metrics_file = out / "metrics.jsonl"
    if dd.main:
        out.mkdir(parents=True, exist_ok=True)
    amp = _autocast(dev, cfg)
    last_epoch = cfg.optim.epochs if stop_after_epoch is None else min(stop_after_epoch, cfg.optim.epochs)

    for epoch in range(start_epoch, last_epoch):
        train_model.train()
        if cfg.task == "lp":
            model.encoder.eval()  # frozen features (no drop-path)
        for smp in samplers:
            smp.set_epoch(epoch)
        iters = [iter(ld) for ld in loaders]
        t0, seen, losses = time.perf_counter(), 0, []
        for which in _interleave(counts, cfg.seed, epoch):
            batch = next(iters[which])
            lr = lr_at(step, steps_per_epoch, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr
            torch.manual_seed(item_key(cfg.seed, 10_000 + dd.rank, step))  # drop-path draws
            x = to_model_input(batch["video"], dev)
            with amp:
                if cfg.task == "mae":
                    keys = batch["key"]
                    if cfg.mae.repeats > 1:
                        x = x.repeat_interleave(cfg.mae.repeats, 0)
                        keys = torch.tensor([item_key(int(k), 0, 0, r) for k in keys.tolist()
                                             for r in range(cfg.mae.repeats)])
                    visible, masked = make_mask(cfg.model, keys, cfg.mae.ratio, cfg.mae.mask)
                    loss = train_model(x, visible.to(dev), masked.to(dev), cfg.mae.norm_pix)
                else:
                    y = batch["label"].to(dev)
                    rng = np.random.default_rng(item_key(cfg.seed, 20_000 + dd.rank, step))
                    x, target = mix_batch(x, y, sources[which].num_classes, cfg, rng)
                    logits = train_model(x, names[which])
                    loss = torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()
            if not torch.isfinite(loss):
                raise EngineError(f"loss became {loss.item()} at step {step}; lower the learning rate")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.optim.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            optimizer.step()
            step += 1
            seen += x.shape[0] if cfg.task != "mae" else batch["video"].shape[0]
            losses.append(loss.item())
            if dd.main and (step % cfg.log_every == 0 or step == 1):
                rec = {"step": step, "epoch": epoch, "dataset": names[which], "loss": losses[-1], "lr": lr,
                       "clips_per_s": seen * dd.world / (time.perf_counter() - t0)}
                with open(metrics_file, "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
                if log:
                    log(rec)
        epoch_rec: dict[str, Any] = {"epoch": epoch + 1, "step": step, "loss": float(np.mean(losses)),
                                     "clips_per_s": seen * dd.world / (time.perf_counter() - t0)}
        if val is not None and dd.main and cfg.task != "mae" and epoch + 1 == last_epoch:
            epoch_rec.update({f"val_{k}": v for k, v in evaluate(model, val, cfg, dev).items()})
        result.history.append(epoch_rec)
        if dd.main:
            with open(metrics_file, "a") as fh:
                fh.write(json.dumps({"event": "epoch", **epoch_rec}) + "\n")
            if log:
                log({"event": "epoch", **epoch_rec})
            if (epoch + 1) % cfg.save_every_epochs == 0 or epoch + 1 == last_epoch:
                ckpt.save_checkpoint(out, model, _meta(cfg, sources, {"epoch": epoch + 1, "step": step}),
                                     optimizer, {"epoch": epoch + 1, "step": step})
        if dd.world > 1:
            dist.barrier()
    result.steps = step
    if val is not None and cfg.task != "mae" and result.history and "val_top1" in result.history[-1]:
        result.eval = {k[4:]: v for k, v in result.history[-1].items() if k.startswith("val_")}
        if dd.main:
            (out / "eval.json").write_text(json.dumps(result.eval, indent=2))
    return result
