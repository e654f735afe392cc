"""SynAPT-style transfer benchmark: pre-training recipes x downstream tasks (FT / LP top-1).

A protocol (JSON) names

* ``recipes``: each a list of stages run in order, every stage starting from the previous one's
  checkpoint: ``{"task": "mae", "data": ["list.csv"]}``, ``{"task": "align", "data": [...]}``,
  or ``{"task": "scratch"}`` (random initialisation, the reference row);
* ``tasks``: downstream tasks ``{"name": ..., "train": "train.csv", "val": "val.csv"}``;
* ``preset`` (tiny | ppma | m2m), ``size`` and optional per-stage ``epochs`` / ``batch_size`` and
  ``settings`` (any field, ``{"mae.ratio": 0.75, "optim.lr": 1e-3}``, as ``--set``), and ``eval_settings``
  for every FT / LP run.

The runner trains every recipe once, fine-tunes and linear-probes it on every task, and computes
each task's representation bias ``B = log2(M / M_rnd)`` (SynAPT): ``M`` is the val top-1 of a
linear classifier on frozen ImageNet image features of each clip's middle frame, ``M_rnd`` chance.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from privvid.engine.config import EngineError


@dataclass
class Stage:
    task: str
    data: list[str] = field(default_factory=list)
    epochs: int | None = None
    batch_size: int | None = None
    settings: dict[str, Any] = field(default_factory=dict)   # "section.field": value, as --set


@dataclass
class Recipe:
    name: str
    stages: list[Stage]


@dataclass
class Task:
    name: str
    train: str
    val: str


@dataclass
class Protocol:
    name: str
    recipes: list[Recipe]
    tasks: list[Task]
    preset: str = "tiny"
    size: str | None = None
    modes: tuple[str, ...] = ("ft", "lp")
    eval_epochs: int | None = None
    eval_batch_size: int | None = None
    bias: bool = True
    workers: int | None = None
    eval_settings: dict[str, Any] = field(default_factory=dict)   # for every FT / LP run

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path | None = None) -> "Protocol":
        def path(p: str) -> str:
            q = Path(p)
            return str(q if q.is_absolute() or base is None else base / q)

        def data_spec(s: str) -> str:
            if "=" in s and not Path(s).exists():
                name, p = s.split("=", 1)
                return f"{name}={path(p)}"
            return path(s)

        try:
            recipes = [Recipe(r["name"], [Stage(s["task"], [data_spec(x) for x in s.get("data", [])],
                                                s.get("epochs"), s.get("batch_size"), dict(s.get("settings", {})))
                                          for s in r["stages"]])
                       for r in d["recipes"]]
            tasks = [Task(t["name"], path(t["train"]), path(t["val"])) for t in d["tasks"]]
        except (KeyError, TypeError) as exc:
            raise EngineError(f"protocol is missing a field: {exc}") from None
        for r in recipes:
            for s in r.stages:
                if s.task not in ("mae", "align", "scratch"):
                    raise EngineError(f"recipe {r.name!r}: unknown stage {s.task!r} (mae | align | scratch)")
        return cls(d.get("name", "benchmark"), recipes, tasks, d.get("preset", "tiny"), d.get("size"),
                   tuple(d.get("modes", ("ft", "lp"))), d.get("eval_epochs"), d.get("eval_batch_size"),
                   d.get("bias", True), d.get("workers"), dict(d.get("eval_settings", {})))

    @classmethod
    def load(cls, file: str | Path) -> "Protocol":
        file = Path(file)
        try:
            return cls.from_dict(json.loads(file.read_text()), base=file.parent)
        except json.JSONDecodeError as exc:
            raise EngineError(f"{file} is not valid JSON: {exc}") from None


def representation_bias(task: Task, encoder: str = "efficientnet-lite0", seed: int = 0) -> dict[str, float]:
    """SynAPT's B = log2(M / M_rnd) with M from a linear probe on frozen ImageNet frame features."""
    from sklearn.linear_model import LogisticRegression

    from privvid.curate.encoders import IMAGE_ENCODERS
    from privvid.engine.data import decode_clip, load_source

    enc = IMAGE_ENCODERS.create(encoder)
    tr = load_source(task.train)
    va = load_source(task.val, name=tr.name)

    def feats(src) -> np.ndarray:
        frames = [decode_clip(s.path, 1, 1, 256, None)[0] for s in src.samples]
        return enc.encode(frames)

    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(feats(tr), [s.label for s in tr.samples])
    pred = clf.predict(feats(va))
    m = float(np.mean(pred == np.array([s.label for s in va.samples])))
    m_rnd = 1.0 / tr.num_classes
    return {"M": m, "M_rnd": m_rnd, "B": math.log2(m / m_rnd) if m > 0 else float("-inf")}


def run_protocol(proto: Protocol, out: str | Path, device: str | None = None,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    from privvid.engine.api import run_eval, run_train
    from privvid.engine.checkpoint import save_checkpoint
    from privvid.engine.config import preset
    from privvid.engine.model import Classifier

    out = Path(out)
    say = log or (lambda s: None)
    results: dict[str, Any] = {"protocol": proto.name, "rows": {}, "bias": {}}
    ov = {k: v for k, v in (("epochs", proto.eval_epochs), ("batch_size", proto.eval_batch_size),
                            ("workers", proto.workers)) if v is not None}
    for recipe in proto.recipes:
        init: Path | None = None
        for i, st in enumerate(recipe.stages):
            stage_out = out / recipe.name / f"{i}_{st.task}"
            if st.task == "scratch":
                cfg = preset(proto.preset, "mae", proto.size)
                save_checkpoint(stage_out, Classifier(cfg.model, {}),
                                {"task": "scratch", "arch": cfg.model.arch(), "train_config": cfg.to_dict(),
                                 "heads": {}, "progress": {}})
            else:
                say(f"{recipe.name}: {st.task} on {', '.join(st.data)}")
                sov = {k: v for k, v in (("epochs", st.epochs), ("batch_size", st.batch_size),
                                         ("workers", proto.workers)) if v is not None}
                run_train(st.task, st.data, stage_out, preset_name=proto.preset,
                          size=proto.size if init is None else None, init=init, device=device, overwrite=True,
                          settings=st.settings, **sov)
            init = stage_out
        row: dict[str, float] = {}
        for task in proto.tasks:
            for mode in proto.modes:
                say(f"{recipe.name}: {mode} on {task.name}")
                res = run_eval(mode, [init], task.train, task.val, out / recipe.name / f"{mode}_{task.name}",
                               preset_name=proto.preset, device=device, overwrite=True,
                               settings=proto.eval_settings, **ov)
                row[f"{task.name}/{mode}"] = res["eval"]["top1"]
        results["rows"][recipe.name] = row
    if proto.bias:
        for task in proto.tasks:
            try:
                results["bias"][task.name] = representation_bias(task)
            except Exception as exc:  # the bias row is optional; say why it is missing
                results["bias"][task.name] = {"error": str(exc)}
    (out / "results.json").write_text(json.dumps(results, indent=2))
    return results


def tiny_protocol(clips_root: str | Path, work: str | Path) -> Protocol:
    """A minutes-long demo on the shared action clips: cut small clips, 3 recipes, 1 task."""
    from privvid.engine.clips import cut_clips

    work = Path(work)
    cut_clips(Path(clips_root), work / "clips", size=64, frames=16, per_video=3)
    tr, va = str(work / "clips" / "train.csv"), str(work / "clips" / "val.csv")
    recipes = [
        Recipe("scratch", [Stage("scratch")]),
        Recipe("mae", [Stage("mae", [tr], epochs=4)]),
        Recipe("mae+align", [Stage("mae", [tr], epochs=4), Stage("align", [f"clips={tr}"], epochs=4)]),
    ]
    return Protocol("tiny-action-clips", recipes, [Task("action-clips", tr, va)], preset="tiny", size="nano",
                    eval_epochs=4, eval_batch_size=6)
