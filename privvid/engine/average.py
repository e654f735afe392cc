"""Weight averaging of pre-trained encoders: fixed proportions, and proportions learned with a linear probe.

Fixed: ``theta = sum_i w_i theta_i`` over the tensors every checkpoint shares (the encoder at least).
Learned (PPMA Table 5/6): ``alpha = softmax(a)`` over checkpoints (or one softmax per layer: patch
embedding, each block, final norm), trained together with a linear head; the encoder runs with the
mixed weights through ``torch.func.functional_call`` so gradients reach ``a``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from privvid.engine import checkpoint as ckpt
from privvid.engine.config import EngineError, TrainConfig
from privvid.engine.data import EpochSampler, Source, to_model_input
from privvid.engine.model import Classifier
from privvid.engine.trainer import evaluate, lr_at, make_loader, resolve_device
from privvid.io.atomic import write_text_atomic


def parse_weights(text: str | None, n: int) -> list[float]:
    if text is None:
        return [1.0 / n] * n
    try:
        w = [float(v) for v in text.split(",")]
    except ValueError:
        raise EngineError(f"--weights {text!r} is not a comma-separated list of numbers") from None
    if len(w) != n:
        raise EngineError(f"{len(w)} weights for {n} checkpoints")
    if not all(math.isfinite(v) and v >= 0 for v in w) or not math.isclose(sum(w), 1.0, abs_tol=1e-6):
        raise EngineError(f"weights must be >= 0 and sum to 1 (got {w}, sum {sum(w):g})")
    return w


def _common_arch(runs: Sequence[Path]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if len(runs) < 2:
        raise EngineError("averaging needs at least two checkpoints")
    seen: dict[Path, Path] = {}
    for r in runs:
        if r.resolve() in seen:
            raise EngineError(f"{r} is given twice (as {seen[r.resolve()]} before): to weigh a checkpoint more, "
                              "give it once with --weights")
        seen[r.resolve()] = r
    metas = [ckpt.read_meta(r) for r in runs]
    arch = metas[0].get("arch")
    for r, m in zip(runs[1:], metas[1:]):
        if m.get("arch") != arch:
            raise EngineError(f"checkpoint {r} has another architecture ({m.get('arch')} vs {arch} in {runs[0]})")
    return metas, arch


def average_checkpoints(runs: Sequence[str | Path], weights: Sequence[float], out: str | Path,
                        overwrite: bool = False) -> dict[str, Any]:
    runs = [Path(r) for r in runs]
    out = ckpt.claim_output(out, tuple(runs), overwrite, "the average")
    metas, arch = _common_arch(runs)
    states = [ckpt.load_weights(r) for r in runs]
    # every encoder whole: a weight one of them lacks would be left out of the average, which nothing then loads
    model = TrainConfig.from_dict(metas[0].get("train_config", {})).model
    for run, state in zip(runs, states):
        ckpt.encoder_of(state, model, run)
    shared = [k for k in states[0] if all(k in s and s[k].shape == states[0][k].shape for s in states[1:])]
    avg = {}
    for k in shared:
        if states[0][k].is_floating_point():
            acc = torch.zeros_like(states[0][k], dtype=torch.float64)
            for w, s in zip(weights, states):
                acc += w * s[k].double()
            avg[k] = acc.to(states[0][k].dtype)
        else:
            avg[k] = states[0][k]
    ckpt.clear_run_state(out)   # an earlier run's state (the inputs are read: nothing is lost if they fail)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_tensors(out / "model.safetensors", avg)
    train_cfg = metas[0].get("train_config", {})
    # class names travel only for heads every checkpoint shares (same dataset names and sizes)
    heads = {n: c for n, c in metas[0].get("heads", {}).items()
             if all(m.get("heads", {}).get(n) == c for m in metas[1:])}
    meta = {"format": ckpt.FORMAT, "task": "average", "arch": arch, "train_config": train_cfg, "heads": heads,
            "sources": [str(r) for r in runs], "weights": list(weights), "progress": {}}
    ckpt.write_json(out / "config.json", meta)
    return {"out": str(out), "tensors": len(avg), "weights": list(weights)}


def layer_group(name: str, depth: int) -> int:
    """Index of a parameter's layer: 0 patch embedding, 1..depth blocks, depth+1 final norm."""
    if name.startswith("blocks."):
        return 1 + int(name.split(".")[1])
    if name.startswith("norm."):
        return depth + 1
    return 0


class MixedEncoder(nn.Module):
    """Holds N frozen encoder states and mixing logits; ``params()`` gives the mixed weights."""

    def __init__(self, states: Sequence[dict[str, torch.Tensor]], depth: int, layerwise: bool) -> None:
        super().__init__()
        self.names = list(states[0])
        self.n = len(states)
        self.depth = depth
        self.layerwise = layerwise
        for i, name in enumerate(self.names):
            self.register_buffer(f"stack_{i}", torch.stack([s[name].float() for s in states]), persistent=False)
        rows = depth + 2 if layerwise else 1
        self.logits = nn.Parameter(torch.zeros(rows, self.n))

    def alpha(self) -> torch.Tensor:
        return torch.softmax(self.logits, dim=-1)

    def params(self) -> dict[str, torch.Tensor]:
        a = self.alpha()
        out = {}
        for i, name in enumerate(self.names):
            row = a[layer_group(name, self.depth)] if self.layerwise else a[0]
            stack = getattr(self, f"stack_{i}")
            out[name] = torch.tensordot(row, stack, dims=([0], [0]))
        return out


def learned_mix_probe(runs: Sequence[str | Path], cfg: TrainConfig, train_src: Source, val: Source | None,
                      out: str | Path | None = None, layerwise: bool = False, device: str | None = None,
                      log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Linear probe on an encoder whose weights are a learned softmax mix of ``runs``."""
    runs = [Path(r) for r in runs]
    _common_arch(runs)
    dev = resolve_device(device)
    states = [ckpt.encoder_state(r, cfg.model) for r in runs]
    torch.manual_seed(cfg.seed)
    model = Classifier(cfg.model, {train_src.name: train_src.num_classes})
    ckpt.load_into(model.encoder, states[0], f"encoder of {runs[0]}")  # shapes checked once
    for p in model.parameters():
        p.requires_grad_(False)
    head = model.head(train_src.name)
    for p in head.parameters():
        p.requires_grad_(True)
    mixer = MixedEncoder(states, cfg.model.depth, layerwise)
    model.to(dev).eval()
    mixer.to(dev)
    opt = torch.optim.AdamW([{"params": list(head.parameters()), "weight_decay": cfg.optim.weight_decay},
                             {"params": [mixer.logits], "weight_decay": 0.0}], lr=cfg.optim.lr,
                            betas=cfg.optim.betas)
    batch = cfg.optim.batch_size
    sampler = EpochSampler(len(train_src.samples), batch, cfg.seed, True)
    loader = make_loader(train_src, cfg, True, batch, 0, 1, sampler=sampler, device=dev)
    steps_per_epoch = sampler.batches_per_epoch()
    step = 0
    history = []

    def feats(x: torch.Tensor) -> torch.Tensor:
        tokens = functional_call(model.encoder, mixer.params(), (x,))
        return model.fc_norm(tokens.mean(1))

    for epoch in range(cfg.optim.epochs):
        sampler.set_epoch(epoch)
        t0, losses = time.perf_counter(), []
        for b in loader:
            lr = lr_at(step, steps_per_epoch, cfg)
            for g in opt.param_groups:
                g["lr"] = lr
            x = to_model_input(b["video"], dev)
            y = b["label"].to(dev)
            logits = head(feats(x))
            loss = F.cross_entropy(logits, y, label_smoothing=cfg.sup.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            losses.append(loss.item())
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "alpha": mixer.alpha().detach().cpu().tolist(),
               "seconds": time.perf_counter() - t0}
        history.append(rec)
        if log:
            log(rec)
    alpha = mixer.alpha().detach().cpu()
    with torch.no_grad():
        mixed = {k: v.detach().cpu() for k, v in mixer.params().items()}
    model.encoder.load_state_dict(mixed)
    result: dict[str, Any] = {"alpha": alpha.tolist(), "runs": [str(r) for r in runs], "layerwise": layerwise,
                              "history": history}
    if val is not None:
        result["eval"] = evaluate(model, val, cfg, dev, head=train_src.name)
    if out is not None:
        out = Path(out)
        meta = {"task": "lp-mix", "arch": cfg.model.arch(), "train_config": cfg.to_dict(),
                "heads": {train_src.name: train_src.classes}, "sources": [str(r) for r in runs],
                "alpha": alpha.tolist(), "layerwise": layerwise, "progress": {"step": step}}
        ckpt.clear_run_state(out)
        ckpt.save_checkpoint(out, model.cpu(), meta)
        write_text_atomic(out / "eval.json", json.dumps({k: v for k, v in result.items() if k != "history"}, indent=2))
        # the learned proportions after every epoch, for plots of how the mix moved
        write_text_atomic(out / "alpha.jsonl", "".join(json.dumps(rec) + "\n" for rec in history))
    return result
