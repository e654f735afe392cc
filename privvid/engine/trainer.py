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
from privvid.io.atomic import write_text_atomic


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


def layer_id(name: str, depth: int) -> int:
    """0 for the patch embedding, i + 1 for encoder block i, depth + 1 for everything after the blocks
    (final norm, fc_norm, heads, the MAE decoder)."""
    if name.startswith("encoder.patch_embed") or name == "encoder.pos":
        return 0
    if name.startswith("encoder.blocks."):
        return int(name.split(".")[2]) + 1
    return depth + 1


def param_groups(model: nn.Module, weight_decay: float, only: Callable[[str], bool] | None = None,
                 layer_decay: float = 1.0, depth: int = 0) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and the mask token; with ``layer_decay`` < 1 one group
    per layer and decay kind whose ``lr_scale`` is ``layer_decay ** (depth + 1 - layer)`` (layer-wise decay)."""
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if only is not None and not only(name):
            p.requires_grad_(False)
            continue
        if not p.requires_grad:
            continue
        no_decay = p.ndim <= 1 or name.endswith("mask_token")
        layer = layer_id(name, depth) if layer_decay != 1.0 else 0
        key = (layer, no_decay)
        if key not in groups:
            scale = layer_decay ** (depth + 1 - layer) if layer_decay != 1.0 else 1.0
            groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay, "lr_scale": scale}
        groups[key]["params"].append(p)
    if layer_decay == 1.0:  # the two groups in their historical order (decay first): resumable old runs
        return [groups.get((0, False), {"params": [], "weight_decay": weight_decay, "lr_scale": 1.0}),
                groups.get((0, True), {"params": [], "weight_decay": 0.0, "lr_scale": 1.0})]
    return [groups[k] for k in sorted(groups)]


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


def views_of(cfg: TrainConfig) -> int:
    return max(1, cfg.data.clips_per_video) * max(1, cfg.data.crops)


@torch.no_grad()
def predict(model: Classifier, source: Source, cfg: TrainConfig, device: torch.device, head: str | None = None,
            features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(softmax probabilities averaged over the ``clips_per_video x crops`` test views (N, C), labels (N,))."""
    model.eval()
    total: torch.Tensor | None = None
    labels = torch.tensor([s.label for s in source.samples])
    amp = _autocast(device, cfg)
    for view in range(views_of(cfg)):
        loader = make_loader(source, cfg, train=False, batch=max(1, cfg.optim.batch_size), rank=0, world=1,
                             view=view)
        rows = []
        for batch in loader:
            x = to_model_input(batch["video"], device)
            with amp:
                logits = model.head(head)(features(x)) if features is not None else model(x, head)
            rows.append((batch["index"], logits.float().softmax(-1).cpu()))
        probs = torch.zeros(len(source.samples), rows[0][1].shape[1])
        for index, p in rows:
            probs[index] = p
        total = probs if total is None else total + probs
    assert total is not None
    return total / views_of(cfg), labels


def evaluate(model: Classifier, source: Source, cfg: TrainConfig, device: torch.device, head: str | None = None,
             features: Callable[[torch.Tensor], torch.Tensor] | None = None) -> dict[str, float]:
    """Top-1 / top-5 of every video in ``source``, its test views' softmax averaged."""
    probs, y = predict(model, source, cfg, device, head, features)
    top = probs.topk(min(5, probs.shape[1]), dim=1).indices
    return {"top1": float((top[:, 0] == y).float().mean()), "top5": float((top == y[:, None]).any(1).float().mean()),
            "n": len(y), "views": views_of(cfg), "classes": int(probs.shape[1])}


# ----------------------------------------------------------------------------- loaders


def make_optimizer(groups: list[dict[str, Any]], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with its fused kernel (one pass over every parameter, on CPU and CUDA: on a ViT-tiny MAE step on
    two CPU cores the optimizer step goes from ~11 ms to ~4 ms)."""
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas, fused=True)


def _worker_init(_: int) -> None:
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)


def make_loader(source: Source, cfg: TrainConfig, train: bool, batch: int, rank: int, world: int,
                sampler: EpochSampler | None = None, device: torch.device | None = None, view: int = 0) -> DataLoader:
    ds = ClipDataset(source, cfg.data, train=train, view=view)
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
    main: bool = True            # this process writes the run (rank 0 of DDP, or alone): it reports it
    note: str | None = None      # what the caller should hear besides "done" (a resume with nothing left to do)


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AVX512-BF16 or AMX), with which bf16 autocast trains
    1.2-1.8x faster than fp32 (docs/engine.md); without them bf16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def precision_of(device: torch.device, cfg: TrainConfig) -> str:
    """The precision a run uses: ``auto`` is bf16 (when ``bf16``) on CUDA and on CPUs with bf16 instructions,
    fp32 elsewhere."""
    if cfg.precision == "auto":
        fast = device.type == "cuda" or (device.type == "cpu" and cpu_has_fast_bf16())
        return "bf16" if cfg.bf16 and fast else "fp32"
    if cfg.precision == "fp16" and device.type != "cuda":
        raise EngineError("precision fp16 needs a CUDA device (on CPU use bf16 or fp32)")
    if cfg.precision not in ("bf16", "fp16", "fp32"):
        raise EngineError(f"unknown precision {cfg.precision!r}; choose auto, bf16, fp16 or fp32")
    return cfg.precision


def _autocast(device: torch.device, cfg: TrainConfig):
    kind = precision_of(device, cfg)
    if kind == "fp32":
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if kind == "bf16" else torch.float16)


def build_model(cfg: TrainConfig, sources: Sequence[Source]) -> nn.Module:
    if cfg.task == "mae":
        return MAE(cfg.model)
    return Classifier(cfg.model, split_sources(sources))


def _meta(cfg: TrainConfig, sources: Sequence[Source], data: list[dict[str, Any]], progress: dict[str, Any],
          extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"task": cfg.task, "arch": cfg.model.arch(), "train_config": cfg.to_dict(),
            "heads": {s.name: s.classes for s in sources} if cfg.task != "mae" else {},
            "data": data, "progress": progress, **(extra or {})}


def _task_of(out: Path) -> str:
    try:
        task = json.loads((out / "config.json").read_text()).get("task")
    except (OSError, ValueError, AttributeError):
        return "a checkpoint"
    names = {"average": "an average of checkpoints", "imported": "an imported encoder", "lp-mix": "a learned mix"}
    return names.get(str(task), f"a {task} checkpoint")


def _interleave(counts: list[int], seed: int, epoch: int) -> list[int]:
    """Which dataset each step of an epoch draws its batch from (every batch from one dataset)."""
    order = [i for i, c in enumerate(counts) for _ in range(c)]
    if len(counts) > 1:
        g = torch.Generator().manual_seed(item_key(seed, epoch, -2))
        order = [order[i] for i in torch.randperm(len(order), generator=g).tolist()]
    return order


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``device`` as a torch device (None: CUDA where there is one, else the CPU); a name torch does not know,
    or CUDA where there is none, is a setting error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise EngineError(f"--device {device!r} is not a device torch knows: cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError(f"--device {device}: no CUDA device is available here (use --device cpu)")
    if dev.type not in ("cpu", "cuda"):
        raise EngineError(f"--device {device}: privvid trains on cpu or cuda")
    return dev


def train(cfg: TrainConfig, sources: Sequence[Source], out: str | Path, *, init: str | Path | None = None,
          val: Source | None = None, resume: bool = False, device: str | torch.device | None = None,
          stop_after_epoch: int | None = None, console: Any = None,
          log: Callable[[dict[str, Any]], None] | None = None, overwrite: bool = False) -> RunResult:
    """Train ``cfg.task`` on ``sources`` (align: one head per source) and write checkpoints to ``out``.

    A folder that already holds a run is continued with ``resume``, replaced with ``overwrite``, and refused
    otherwise (a finished checkpoint is never overwritten by accident). One run at a time writes into ``out``
    (``out/.lock``, held by the main process of a DDP run); a run that fails before writing anything leaves
    no folder behind."""
    from privvid.runtime.lock import one_writer

    out = Path(out)
    cfg.check()
    if out.exists() and not out.is_dir():
        raise EngineError(f"--out {out} is a file; a run is written into a folder")
    if not _main_process():   # a DDP rank other than the main one writes nothing
        return _train(cfg, sources, out, init, val, resume, device, stop_after_epoch, log, overwrite)
    with one_writer(out, out, ".lock"):
        return _train(cfg, sources, out, init, val, resume, device, stop_after_epoch, log, overwrite)


def _main_process() -> bool:
    """Whether this process writes the run: rank 0 of a DDP group (one already set up, or torchrun's
    environment), or a process on its own."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or int(os.environ.get("RANK", "0")) == 0
    except ValueError:
        return True


def data_identity(sources: Sequence[Source]) -> list[dict[str, Any]]:
    """What a run was trained on, to tell a resume on other data: per source its name, clip count and a digest
    of its clips' file names and labels (not their folders: a dataset moved since is the same data)."""
    import hashlib

    rows = []
    for s in sources:
        digest = hashlib.sha256()
        for sample in s.samples:
            digest.update(f"{sample.path.name}\t{sample.label}\t{sample.offset}\n".encode())
        rows.append({"name": s.name, "clips": len(s.samples), "digest": digest.hexdigest()[:16]})
    return rows


def _same_data(saved: list[dict[str, Any]] | None, now: list[dict[str, Any]], out: Path) -> None:
    if not saved:
        return   # a run written before the data was recorded
    if [(d["clips"], d["digest"]) for d in saved] != [(d["clips"], d["digest"]) for d in now]:
        shown = "; ".join(f"{d['name']!r} {d['clips']} clips" for d in saved)
        given = "; ".join(f"{d['name']!r} {d['clips']} clips" for d in now)
        raise EngineError(f"{out} was started on other data ({shown}; now {given}); resume with the same --data "
                          "or start a new run")


def _train(cfg: TrainConfig, sources: Sequence[Source], out: Path, init: str | Path | None, val: Source | None,
           resume: bool, device: str | torch.device | None, stop_after_epoch: int | None,
           log: Callable[[dict[str, Any]], None] | None, overwrite: bool) -> RunResult:
    if not resume and not overwrite and (out / "config.json").is_file():
        raise EngineError(f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it")
    if resume and not overwrite and (out / "config.json").is_file() and not (out / "state.json").is_file():
        task = _task_of(out)
        raise EngineError(f"{out} holds {task}, not a run that can be resumed (it has no state.json); train into "
                          "another --out, or pass --overwrite to replace it")
    if overwrite and not resume:
        ckpt.clear_run_state(out)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if cfg.optim.accum < 1 or cfg.optim.batch_size % cfg.optim.accum:
        raise EngineError(f"batch {cfg.optim.batch_size} must split into accum={cfg.optim.accum} equal micro-batches")
    dev = resolve_device(device)
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
    accum = cfg.optim.accum
    micro = cfg.optim.batch_size // accum          # global clips per micro-batch
    local_batch = micro // dd.world
    if micro % dd.world:
        raise EngineError(f"global micro-batch {micro} (batch {cfg.optim.batch_size} / accum {accum}) is not "
                          f"divisible by {dd.world} processes")

    torch.manual_seed(cfg.seed)
    model = build_model(cfg, sources)
    if init is not None:
        ckpt.load_into(model.encoder, ckpt.encoder_state(Path(init), cfg.model), f"encoder of {init}")
    elif cfg.task == "lp":
        raise EngineError("linear probing needs --init (a pre-trained checkpoint)")

    only = (lambda n: n.startswith("heads.")) if cfg.task == "lp" else None
    groups = param_groups(model, cfg.optim.weight_decay, only, cfg.optim.layer_decay, cfg.model.depth)
    optimizer = make_optimizer(groups, cfg)

    start_epoch, step = 0, 0
    resumed_note: str | None = None
    data = data_identity(sources)   # once a run: every checkpoint records it
    if resume and (out / "state.json").is_file():
        meta = ckpt.read_meta(out)
        if meta.get("task") != cfg.task:
            raise EngineError(f"{out} holds a {meta.get('task')} run; cannot resume it as {cfg.task}")
        ckpt.check_arch(meta, cfg.model, out)
        _same_recipe(meta.get("train_config", {}), cfg, out)
        _same_data(meta.get("data"), data, out)
        ckpt.load_into(model, ckpt.load_weights(out), f"weights in {out}")
        progress = ckpt.restore_optimizer(out, optimizer)
        start_epoch, step = int(progress["epoch"]), int(progress["step"])
        if start_epoch >= cfg.optim.epochs:
            resumed_note = (f"nothing trained: the run in {out} has done {start_epoch} epochs, --epochs asks for "
                            f"{cfg.optim.epochs} (a larger --epochs extends it)")

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

    samplers = [EpochSampler(len(s.samples), micro, cfg.seed + 1000 * i, True, dd.rank, dd.world)
                for i, s in enumerate(sources)]
    loaders = [make_loader(s, cfg, True, local_batch, dd.rank, dd.world, sampler=smp, device=dev)
               for s, smp in zip(sources, samplers)]
    # whole optimizer steps per dataset and epoch; each step is `accum` micro-batches of one dataset
    counts = [smp.batches_per_epoch() // accum for smp in samplers]
    if not all(counts):
        raise EngineError(f"a dataset gives fewer than accum={accum} micro-batches of {micro} clips per epoch")
    steps_per_epoch = sum(counts)
    names = [s.name for s in sources]
    kind = precision_of(dev, cfg)
    scaler = torch.amp.GradScaler("cuda") if kind == "fp16" else None
    logs = RunLogs(out, dd.main, step)
    best: dict[str, Any] | None = _best_so_far(out) if resume else None

    result = RunResult(out, step)
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
            lr = lr_at(step, steps_per_epoch, cfg)
            for g in optimizer.param_groups:
                g["lr"] = lr * g.get("lr_scale", 1.0)
            optimizer.zero_grad(set_to_none=True)
            step_loss = 0.0
            for part in range(accum):
                batch = next(iters[which])
                torch.manual_seed(item_key(cfg.seed, 10_000 + dd.rank, step * accum + part))  # drop-path draws
                x = to_model_input(batch["video"], dev)
                sync = nullcontext()
                if dd.world > 1 and part < accum - 1 and hasattr(train_model, "no_sync"):
                    sync = train_model.no_sync()  # all-reduce the gradients once per optimizer step
                with sync:
                    with amp:
                        if cfg.task == "mae":
                            keys = batch["key"]
                            if cfg.mae.repeats > 1:
                                x = x.repeat_interleave(cfg.mae.repeats, 0)
                                keys = torch.tensor([item_key(int(k), 0, 0, r) for k in keys.tolist()
                                                     for r in range(cfg.mae.repeats)])
                            visible, masked = make_mask(cfg.model, keys, cfg.mae.ratio, cfg.mae.mask)
                            loss = train_model(x, visible.to(dev), masked.to(dev), cfg.mae.norm_pix, cfg.mae.target)
                        else:
                            y = batch["label"].to(dev)
                            rng = np.random.default_rng(item_key(cfg.seed, 20_000 + dd.rank, step * accum + part)
                                                        if accum > 1 else item_key(cfg.seed, 20_000 + dd.rank, step))
                            x, target = mix_batch(x, y, sources[which].num_classes, cfg, rng)
                            logits = train_model(x, names[which])
                            loss = torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()
                    if not torch.isfinite(loss):
                        raise EngineError(f"loss became {loss.item()} at step {step}; lower the learning rate")
                    scaled = loss / accum
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                step_loss += loss.item() / accum
                seen += x.shape[0] if cfg.task != "mae" else batch["video"].shape[0]
            if scaler is not None:
                scaler.unscale_(optimizer)
            if cfg.optim.clip_grad:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.clip_grad)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            losses.append(step_loss)
            if step % cfg.log_every == 0 or step == 1:
                shown = _mean_over_ranks(step_loss, dd, dev)  # every rank's loss, not only rank 0's
                if dd.main:
                    rec = {"step": step, "epoch": epoch, "dataset": names[which], "loss": shown, "lr": lr,
                           "clips_per_s": seen * dd.world / (time.perf_counter() - t0)}
                    logs.write(rec)
                    if log:
                        log(rec)
        epoch_loss = _mean_over_ranks(float(np.mean(losses)), dd, dev)
        epoch_rec: dict[str, Any] = {"epoch": epoch + 1, "step": step, "loss": epoch_loss,
                                     "clips_per_s": seen * dd.world / (time.perf_counter() - t0)}
        validate = val is not None and cfg.task != "mae" and (
            epoch + 1 == last_epoch or (cfg.val_every > 0 and (epoch + 1) % cfg.val_every == 0))
        if validate and dd.main:
            assert val is not None
            epoch_rec.update({f"val_{k}": v for k, v in evaluate(model, val, cfg, dev).items()})
        result.history.append(epoch_rec)
        if dd.main:
            logs.write({"event": "epoch", **epoch_rec})
            if log:
                log({"event": "epoch", **epoch_rec})
            if (epoch + 1) % cfg.save_every_epochs == 0 or epoch + 1 == last_epoch:
                ckpt.save_checkpoint(out, model, _meta(cfg, sources, data, {"epoch": epoch + 1, "step": step}),
                                     optimizer, {"epoch": epoch + 1, "step": step})
            if "val_top1" in epoch_rec and (best is None or epoch_rec["val_top1"] > best["top1"]):
                best = {"epoch": epoch + 1, "top1": epoch_rec["val_top1"], "top5": epoch_rec["val_top5"]}
                ckpt.save_checkpoint(out / "best", model, _meta(cfg, sources, data,
                                                                {"epoch": epoch + 1, "step": step}, {"best": best}))
            logs.plot()
        if dd.world > 1:
            dist.barrier()
    result.steps = step
    result.main, result.note = dd.main, resumed_note
    logs.close()
    if val is not None and cfg.task != "mae" and result.history and "val_top1" in result.history[-1]:
        result.eval = {k[4:]: v for k, v in result.history[-1].items() if k.startswith("val_")}
        if best is not None:
            result.eval["best"] = best
        if dd.main:
            (out / "eval.json").write_text(json.dumps(result.eval, indent=2))
    elif val is not None and cfg.task != "mae" and not result.history and (out / "eval.json").is_file():
        # resumed after its last epoch: nothing ran, the evaluation is the one that run wrote
        try:
            result.eval = json.loads((out / "eval.json").read_text())
        except ValueError:
            result.eval = None
    return result


# settings a resumed run may change: how long it runs, how it loads, logs and saves (not what it computes)
RESUMABLE_CHANGES = {"optim.epochs", "data.workers", "threads", "log_every", "save_every_epochs", "val_every",
                     "compile"}


def _same_recipe(saved: dict[str, Any], cfg: TrainConfig, out: Path) -> None:
    """Resume only with the recipe the run was started with (a newer preset, e.g. one with layer-wise decay or
    another MAE target, must not change a run halfway)."""
    if not saved:
        return
    flat_saved, flat_now = _flatten(saved), _flatten(cfg.to_dict())
    diff = sorted(k for k in flat_now if k in flat_saved and flat_saved[k] != flat_now[k]
                  and k not in RESUMABLE_CHANGES)
    if diff:
        shown = ", ".join(f"{k}: run {flat_saved[k]!r} vs now {flat_now[k]!r}" for k in diff[:6])
        raise EngineError(f"{out} was started with other settings ({shown}); resume with the same ones "
                          "(--set SECTION.FIELD=VALUE) or start a new run")


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in doc.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = list(v) if isinstance(v, tuple) else v
    return out


def _mean_over_ranks(value: float, dd: Dist, device: torch.device) -> float:
    if dd.world <= 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return float(t.item()) / dd.world


def _best_so_far(out: Path) -> dict[str, Any] | None:
    try:
        return ckpt.read_meta(out / "best").get("best")
    except Exception:  # noqa: BLE001 - no best checkpoint yet
        return None


class RunLogs:
    """metrics.jsonl (every record), metrics.csv (epoch records), TensorBoard events when the package is
    installed, and curves.png (loss per epoch, val top-1 when measured) redrawn after each epoch."""

    def __init__(self, out: Path, main: bool, start_step: int = 0) -> None:
        """``start_step``: the optimizer step the run starts from (a resumed run's checkpoint). What an
        earlier run logged after it (a run killed between checkpoints, or its last line cut mid-write) is
        dropped: the resumed run logs those steps again."""
        self.out, self.main = out, main
        self.epochs: list[dict[str, Any]] = []
        self._tb: Any = None
        if not main:
            return
        out.mkdir(parents=True, exist_ok=True)
        path = out / "metrics.jsonl"
        if path.is_file():   # a resumed run: keep the earlier epochs for the csv and plot
            kept: list[str] = []
            lines = path.read_text().splitlines()
            for line in lines:
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                step = rec.get("step", 0) if isinstance(rec, dict) else None
                if not isinstance(step, (int, float)) or not step <= start_step:
                    continue   # not a record, or logged after the checkpoint the run resumes from
                kept.append(line)
                if rec.get("event") == "epoch":
                    self.epochs.append(rec)
            if len(kept) != len(lines):
                write_text_atomic(path, "".join(line + "\n" for line in kept))
                if self.epochs:
                    self._csv()
                else:
                    (out / "metrics.csv").unlink(missing_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            # a resumed run's events from its checkpoint on replace what the killed run wrote past it
            self._tb = SummaryWriter(str(out / "tb"), purge_step=start_step or None)
        except Exception:  # noqa: BLE001 - tensorboard is optional
            self._tb = None

    def write(self, rec: dict[str, Any]) -> None:
        if not self.main:
            return
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if rec.get("event") == "epoch":
            self.epochs.append(rec)
            self._csv()
        if self._tb is not None:
            step = int(rec["step"])
            for k, v in rec.items():
                if isinstance(v, (int, float)) and k not in ("step", "epoch"):
                    self._tb.add_scalar(("epoch/" if rec.get("event") == "epoch" else "step/") + k, v, step)

    def _csv(self) -> None:
        import csv

        columns = sorted({k for r in self.epochs for k in r if k != "event"},
                         key=lambda k: (("epoch", "step", "loss").index(k) if k in ("epoch", "step", "loss") else 3, k))
        tmp = self.out / ".metrics.csv.tmp"
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for r in self.epochs:
                writer.writerow({k: r.get(k, "") for k in columns})
        os.replace(tmp, self.out / "metrics.csv")

    def plot(self) -> None:
        if not self.main or not self.epochs:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["epoch"] for r in self.epochs], [r["loss"] for r in self.epochs], "o-", label="train loss")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        acc = [(r["epoch"], r["val_top1"]) for r in self.epochs if "val_top1" in r]
        if acc:
            ax2 = ax.twinx()
            ax2.plot(*zip(*acc), "s--", color="tab:orange", label="val top-1")
            ax2.set_ylabel("val top-1")
            ax2.set_ylim(0, 1)
        ax.set_title(self.out.name)
        fig.tight_layout()
        fig.savefig(self.out / ".curves.png.tmp.png", dpi=100)
        plt.close(fig)
        os.replace(self.out / ".curves.png.tmp.png", self.out / "curves.png")

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
