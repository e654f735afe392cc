"""High-level entry points used by the CLI and the benchmark runner."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from privvid.engine import checkpoint as ckpt
from privvid.engine.average import average_checkpoints, learned_mix_probe, parse_weights
from privvid.engine.config import EngineError, TrainConfig, apply_overrides, preset, short_side_for
from privvid.engine.data import Source, load_source
from privvid.engine.trainer import RunResult, resolve_device, train


def parse_data(spec: str | Path, root: str | Path | None = None, require_labels: bool = True) -> Source:
    """``PATH`` or ``NAME=PATH`` (the name labels the dataset's head; default: the file/folder name)."""
    text = str(spec)
    name = None
    if "=" in text and not Path(text).exists():
        name, text = text.split("=", 1)
    return load_source(text, root=root, name=name, require_labels=require_labels)


def make_config(preset_name: str, task: str, size: str | None = None, *, init: str | Path | None = None,
                epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                workers: int | None = None, seed: int | None = None, mask: str | None = None,
                settings: Any = None) -> TrainConfig:
    """A preset, with the model/clip shape taken from ``init`` when one is given."""
    cfg = preset(preset_name, task, size)
    if init is not None:
        meta = ckpt.read_meta(Path(init))
        prev = TrainConfig.from_dict(meta.get("train_config", {}))
        if size is not None and prev.model.size != size:
            raise EngineError(f"--size {size} differs from the checkpoint's {prev.model.size} ({init})")
        model = replace(prev.model, drop_path=cfg.model.drop_path)
        # the clip shape is the model's (an imported checkpoint's data section was the defaults' until
        # 2026-12-08: an 8-frame or 112 px import then asked for 16 x 224 clips)
        frames, side = prev.model.frames, prev.model.image_size
        short = prev.data.short_side if prev.data.size == side else short_side_for(side)
        data = replace(cfg.data, frames=frames, size=side, short_side=max(short, side), stride=prev.data.stride)
        cfg = replace(cfg, model=model, data=data)
    o = cfg.optim
    cfg = replace(cfg, optim=replace(o, epochs=epochs if epochs is not None else o.epochs,
                                     batch_size=batch_size if batch_size is not None else o.batch_size,
                                     lr=lr if lr is not None else o.lr))
    if workers is not None:
        cfg = replace(cfg, data=replace(cfg.data, workers=workers))
    if seed is not None:
        cfg = replace(cfg, seed=seed)
    if mask is not None:
        cfg = replace(cfg, mae=replace(cfg.mae, mask=mask))
    if settings:
        cfg = apply_overrides(cfg, settings)  # --set SECTION.FIELD=VALUE, last: it wins over everything
    return cfg


def run_train(task: str, data: Sequence[str | Path], out: str | Path, *, preset_name: str = "tiny",
              size: str | None = None, init: str | Path | None = None, resume: bool = False,
              device: str | None = None, log: Callable[[dict[str, Any]], None] | None = None,
              overwrite: bool = False, **overrides: Any) -> RunResult:
    if task not in ("mae", "align"):
        raise EngineError(f"unknown training task {task!r}; choose mae or align")
    if not data:
        raise EngineError("give at least one --data")
    cfg = make_config(preset_name, task, size, init=init, **overrides).check()   # settings before any data is read
    resolve_device(device)
    sources = [parse_data(d, require_labels=task != "mae") for d in data]
    return train(cfg, sources, out, init=init, resume=resume, device=device, log=log, overwrite=overwrite)


def run_eval(mode: str, inits: Sequence[str | Path], train_list: str | Path, val_list: str | Path,
             out: str | Path | None, *, preset_name: str = "tiny", learn_mix: bool = False,
             layerwise: bool = False, device: str | None = None,
             log: Callable[[dict[str, Any]], None] | None = None, overwrite: bool = False, resume: bool = False,
             **overrides: Any) -> dict[str, Any]:
    """Fine-tune (ft) or linear-probe (lp) ``inits`` on a downstream train list; top-1/top-5 on val."""
    if mode not in ("ft", "lp"):
        raise EngineError(f"unknown evaluation {mode!r}; choose ft or lp")
    if not inits:
        raise EngineError("give --init (a pre-trained checkpoint)")
    if layerwise and not learn_mix:
        raise EngineError("--layerwise sets the learned mix's proportions per layer: it needs --learn-mix")
    cfg = make_config(preset_name, mode, init=inits[0], **overrides).check()   # settings before any data is read
    resolve_device(device)
    train_src = parse_data(train_list)
    val_src = align_classes(load_source(val_list, require_labels=False), train_src)   # errors name the val list
    if learn_mix or len(inits) > 1:
        if mode != "lp" or not learn_mix:
            raise EngineError("several --init need --learn-mix with `eval lp` (or combine them with `privvid average`)")
        if resume:
            raise EngineError("a learned mix (--learn-mix) does not resume: run it again with --overwrite")
        if out is not None:
            ckpt.claim_output(out, tuple(inits), overwrite, "the learned mix")
        mixed = learned_mix_probe(inits, cfg, train_src, val_src, out=out, layerwise=layerwise, device=device, log=log)
        return {**mixed, "train": train_src.name}
    if out is None:
        raise EngineError("give --out for the fine-tuned / probed checkpoint")
    ckpt.not_an_input(out, tuple(inits), f"the {mode} run")
    res = train(cfg, [train_src], out, init=inits[0], val=val_src, device=device, log=log, overwrite=overwrite,
                resume=resume)
    if not res.main:   # a DDP rank other than the one that validates and writes the run: nothing to report
        return {"eval": None, "history": res.history, "out": str(out), "train": train_src.name, "main": False,
                "note": None}
    if res.eval is None:
        raise EngineError(f"the run in {out} has no epoch left and no eval.json (it stopped before its evaluation "
                          "was written): run it again with --overwrite")
    return {"eval": res.eval, "history": res.history, "out": str(out), "train": train_src.name, "main": res.main,
            "note": res.note}


def align_classes(val: Source, train: Source) -> Source:
    """``val`` with the train source's class index: a val list may lack some classes (a small split often
    does), but every class it names must be one the model was trained on; a label index must be in range."""
    from privvid.engine.data import Sample

    unlabelled = sum(s.label < 0 for s in val.samples)
    if unlabelled:
        raise EngineError(f"val dataset {val.name!r}: {unlabelled} clips have no class (a flat dataset); a val list "
                          "needs a class per clip")
    numeric = train.classes == [str(i) for i in range(len(train.classes))]
    if val.classes == train.classes:
        return val
    if numeric and val.classes == [str(i) for i in range(len(val.classes))]:
        if len(val.classes) > len(train.classes):
            raise EngineError(f"val labels go up to {len(val.classes) - 1}; the train list has "
                              f"{len(train.classes)} classes")
        return Source(val.name, val.samples, train.classes)
    index = {c: i for i, c in enumerate(train.classes)}
    unknown = sorted(set(val.classes) - set(index))
    if unknown:
        shown = ", ".join(train.classes[:8]) + (f" and {len(train.classes) - 8} more" if len(train.classes) > 8 else "")
        raise EngineError(f"val classes {unknown[:5]} are not among the train classes ({len(train.classes)}: {shown})"
                          + ("; the train list's labels are indices, the val list's names: give both alike"
                             if numeric else ""))
    samples = [Sample(s.path, index[val.classes[s.label]], s.offset, s.size) for s in val.samples]
    return Source(val.name, samples, train.classes)


def run_average(runs: Sequence[str | Path], weights: str | None, out: str | Path,
                overwrite: bool = False) -> dict[str, Any]:
    return average_checkpoints(runs, parse_weights(weights, len(runs)), out, overwrite)
