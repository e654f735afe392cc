"""Checkpoints: safetensors tensors + JSON metadata; never pickles.

A run folder holds

* ``config.json``   format tag, task, the full TrainConfig, model architecture, heads and their classes
* ``model.safetensors``  model weights (encoder.*, heads.*, decoder_* for MAE)
* ``state.safetensors`` + ``state.json``  what exact resume needs: optimizer moments, step counters,
  RNG state, epoch / batch position (tensors and plain JSON only).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save

from privvid.engine.config import ARCH_DEFAULTS, EngineError, ModelConfig
from privvid.errors import MissingWeights
from privvid.io.atomic import file_in_the_way, write_bytes_atomic, write_text_atomic

FORMAT = "privvid-engine/1"


def write_json(path: Path, data: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """A safetensors file, serialised here and written atomically with the run's other files' mode (the
    library's own file writer makes it private, 0600)."""
    write_bytes_atomic(path, save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata))


# what a run folder holds besides its weights and config.json: a new checkpoint written over it drops them
RUN_STATE = ("metrics.jsonl", "metrics.csv", "eval.json", "state.json", "state.safetensors", "curves.png",
             "alpha.jsonl")
RUN_DIRS = ("best", "tb")


def clear_run_state(out: Path) -> None:
    """Remove what an earlier run left in ``out`` besides its weights and config (they are rewritten); nothing
    when ``out`` is no folder."""
    if not out.is_dir():
        return
    import shutil

    for name in RUN_STATE:
        (out / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(out / name, ignore_errors=True)


def not_an_input(out: str | Path, inputs: tuple[str | Path, ...], what: str = "a checkpoint") -> None:
    """Refuse an ``out`` that is one of ``inputs``, holds one where a checkpoint writes or an old run's state
    is cleared, or is one of those files of an input run."""
    target = Path(out).resolve()
    written = {"model.safetensors", "config.json", *RUN_STATE}
    for given in inputs:
        src = Path(given).resolve()
        inside = src.relative_to(target).parts if target in src.parents else ()
        if src == target or (len(inside) == 1 and inside[0] in written) or (inside and inside[0] in RUN_DIRS) \
                or (target.parent == src and target.name in written):
            raise EngineError(f"--out {out} is, or holds, the input {given}: writing {what} there would destroy it; "
                              "choose another --out")


def claim_output(out: str | Path, inputs: tuple[str | Path, ...] = (), overwrite: bool = False,
                 what: str = "a checkpoint", folder: bool = True) -> Path:
    """Check, before any work, that writing ``what`` to ``out`` (a run folder, or with ``folder=False`` a file)
    destroys nothing by accident: ``out`` is never one of the ``inputs``, nor a folder that holds one where a
    checkpoint writes or its old state is cleared (``best/``, ``tb/``, the state files); a checkpoint or a file
    already there is replaced only with ``overwrite``. Nothing is removed here: the caller clears the old
    state (:func:`clear_run_state`) once its inputs have been read."""
    out = Path(out)
    not_an_input(out, inputs, what)
    blocking = file_in_the_way(out)
    if blocking is not None:
        raise EngineError(f"--out {out}: {blocking} is a file, not a folder")
    if folder and out.is_file():
        raise EngineError(f"--out {out} is a file; {what} is a folder")
    if not folder and out.is_dir():
        raise EngineError(f"--out {out} is a folder; {what} is a file (e.g. {out / 'encoder.pth'})")
    if out.is_file() or (out.is_dir() and ((out / "config.json").exists() or (out / "model.safetensors").exists())):
        if not overwrite:
            raise EngineError(f"{out} already holds {'a file' if out.is_file() else 'a checkpoint'}; pass "
                              "--overwrite to replace it or choose another --out")
    return out


def save_checkpoint(out: Path, model: torch.nn.Module, meta: dict[str, Any],
                    optimizer: torch.optim.Optimizer | None = None,
                    progress: dict[str, Any] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items()}
    write_tensors(out / "model.safetensors", state)
    if optimizer is not None:
        tensors, info = optimizer_to_flat(optimizer)
        tensors["rng.torch"] = torch.get_rng_state()
        info["progress"] = progress or {}
        info["numpy_rng"] = _np_state()
        write_tensors(out / "state.safetensors", tensors)
        write_json(out / "state.json", info)
    write_json(out / "config.json", {"format": FORMAT, **meta})


def _np_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"name": name, "keys": keys.tolist(), "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)}


def _set_np_state(s: dict[str, Any]) -> None:
    np.random.set_state((s["name"], np.array(s["keys"], dtype=np.uint32), s["pos"], s["has_gauss"], s["cached"]))


# an HF / VideoMAE / mmaction2 checkpoint given where a privvid one is wanted
_IMPORT_HINT = ("; an HF VideoMAE folder or a VideoMAE / mmaction2 .pth becomes one with "
                "`privvid checkpoint import SOURCE --out FOLDER`")


def read_meta(run: Path) -> dict[str, Any]:
    run = Path(run)
    cfg = run / "config.json"
    if not (run / "model.safetensors").is_file() or not cfg.is_file():
        raise MissingWeights("privvid checkpoint (model.safetensors + config.json)", run,
                             "Pass a folder written by `privvid train` / `privvid eval` / `privvid average`"
                             + _IMPORT_HINT + ".")
    try:
        meta = json.loads(cfg.read_text())
    except json.JSONDecodeError as exc:
        raise EngineError(f"{cfg} is not valid JSON: {exc}") from None
    if meta.get("format") != FORMAT:
        raise EngineError(f"{run} is not a privvid engine checkpoint (format {meta.get('format')!r}, want {FORMAT!r})"
                          + _IMPORT_HINT)
    return meta


def load_weights(run: Path) -> dict[str, torch.Tensor]:
    read_meta(run)
    try:
        return load_file(str(Path(run) / "model.safetensors"))
    except Exception as exc:
        raise EngineError(f"cannot read {Path(run) / 'model.safetensors'}: {exc}") from None


def check_arch(meta: dict[str, Any], cfg: ModelConfig, run: Path) -> None:
    theirs = meta.get("arch", {})
    ours = cfg.arch()
    diff = {k: (theirs.get(k, ARCH_DEFAULTS.get(k)), v) for k, v in ours.items()
            if theirs.get(k, ARCH_DEFAULTS.get(k)) != v}
    if diff:
        what = ", ".join(f"{k}: checkpoint {a} vs model {b}" for k, (a, b) in diff.items())
        raise EngineError(f"checkpoint {run} has another architecture ({what})")


def encoder_state(run: Path, cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` weights of any privvid checkpoint, checked against ``cfg``'s architecture."""
    meta = read_meta(run)
    check_arch(meta, cfg, run)
    return encoder_of(load_weights(run), cfg, run)


def encoder_of(weights: dict[str, torch.Tensor], cfg: ModelConfig, run: Path) -> dict[str, torch.Tensor]:
    """The ``encoder.*`` part of a checkpoint's weights (without the prefix), every weight of ``cfg``'s encoder
    there and of its shape."""
    enc = {k[len("encoder."):]: v for k, v in weights.items() if k.startswith("encoder.")}
    if not enc:
        raise EngineError(f"checkpoint {run} holds no encoder weights")
    check_fits(encoder_shapes(cfg), enc, f"encoder of {run}")
    return enc


def encoder_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Each weight of ``cfg``'s encoder and its shape (read from a model built for it, once per architecture)."""
    return dict(_encoder_shapes(cfg))


@functools.lru_cache(maxsize=4)
def _encoder_shapes(cfg: ModelConfig) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from privvid.engine.model import VideoViT

    return tuple((k, tuple(v.shape)) for k, v in VideoViT(cfg).state_dict().items())


def check_fits(own: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor], what: str) -> None:
    """EngineError naming what ``state`` lacks, has too many of, or has of another shape than ``own``."""
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    bad = [k for k in own if k in state and own[k] != tuple(state[k].shape)]
    if missing or extra or bad:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}")
        if extra:
            parts.append(f"unexpected {extra[:4]}")
        if bad:
            parts.append(f"shape mismatch {[(k, tuple(state[k].shape), own[k]) for k in bad[:4]]}")
        raise EngineError(f"{what} does not fit the model: {'; '.join(parts)}")


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    check_fits({k: tuple(v.shape) for k, v in module.state_dict().items()}, state, what)
    module.load_state_dict(state)


# ----------------------------------------------------------------------------- optimizer state


def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"opt.{pid}.{k}"] = v
            else:
                scalars.setdefault(str(pid), {})[k] = v
    groups = json.loads(json.dumps(sd["param_groups"], default=lambda o: list(o) if isinstance(o, tuple) else str(o)))
    return tensors, {"param_groups": groups, "scalars": scalars}


def restore_optimizer(run: Path, opt: torch.optim.Optimizer) -> dict[str, Any]:
    """Load optimizer moments and RNG state; return the saved progress dict."""
    run = Path(run)
    if not (run / "state.safetensors").is_file() or not (run / "state.json").is_file():
        raise MissingWeights("resume state (state.safetensors + state.json)", run,
                             "Resume needs a run folder written by `privvid train` (not an averaged checkpoint).")
    tensors = load_file(str(run / "state.safetensors"))
    info = json.loads((run / "state.json").read_text())
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    for pid, sc in info["scalars"].items():
        state.setdefault(int(pid), {}).update(sc)
    groups = info["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    current = opt.state_dict()["param_groups"]
    if [len(g["params"]) for g in current] != [len(g["params"]) for g in groups]:
        raise EngineError(f"optimizer state in {run} does not fit this model (other parameter groups)")
    opt.load_state_dict({"state": state, "param_groups": groups})
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    if "numpy_rng" in info:
        _set_np_state(info["numpy_rng"])
    return info.get("progress", {})
