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

import contextlib
import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

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
    stages: list[Stage] = field(default_factory=list)
    average: dict[str, Any] | None = None       # {"of": [recipe names], "weights": "0.5,0.5"}: a fixed mix row
    learned_mix: dict[str, Any] | None = None   # {"of": [...], "layerwise": false}: an LP row with learned alpha


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
    seed: int = 0
    datasets: dict[str, str] = field(default_factory=dict)       # names stages may use for their data

    @classmethod
    def from_dict(cls, d: dict[str, Any], base: Path | None = None) -> "Protocol":
        """A protocol from its JSON / YAML mapping. A key it does not know is an error (a misspelt ``epoch``
        would otherwise run the preset's epochs), as are a value of the wrong type and an ``average`` /
        ``learned_mix`` row that mixes a later row or a learned-mix row. Keys starting with ``_`` are
        comments."""
        if not isinstance(d, dict):
            raise EngineError(f"a protocol is a mapping (recipes, tasks, preset ...), got {type(d).__name__}")
        _known_keys(d, _TOP_KEYS, "the protocol")

        def path(p: str) -> str:
            if p.startswith("ppma:"):
                return p
            q = Path(p)
            return str(q if q.is_absolute() or base is None else base / q)

        datasets = {k: path(v) for k, v in dict(d.get("datasets", {})).items()}

        def data_spec(s: str) -> str:
            if s in datasets:
                return f"{s}={datasets[s]}"
            if "=" in s and not Path(s).exists():
                name, p = s.split("=", 1)
                return f"{name}={datasets.get(p, path(p))}"
            return path(s)

        try:
            recipes = []
            for r in d["recipes"]:
                where = f"recipe {r.get('name', len(recipes) + 1)!r}"
                _known_keys(r, _RECIPE_KEYS, where)
                stages = []
                for i, st in enumerate(r.get("stages", [])):
                    at = f"{where}, stage {i + 1}"
                    _known_keys(st, _STAGE_KEYS, at)
                    stages.append(Stage(st["task"], [data_spec(x) for x in st.get("data", [])],
                                        _whole(st.get("epochs"), f"{at}: epochs"),
                                        _whole(st.get("batch_size"), f"{at}: batch_size"),
                                        dict(st.get("settings", {}))))
                average, mix = r.get("average"), r.get("learned_mix")
                if average is not None:
                    _known_keys(average, ("of", "weights"), f"{where}: average")
                if mix is not None:
                    _known_keys(mix, ("of", "layerwise"), f"{where}: learned_mix")
                    if mix.get("layerwise") is None:   # YAML's "layerwise:" with no value
                        mix = {**mix, "layerwise": False}
                    if not isinstance(mix["layerwise"], bool):
                        raise EngineError(f"{where}: learned_mix.layerwise is true or false, got "
                                          f"{mix['layerwise']!r}")
                recipes.append(Recipe(r["name"], stages, average, mix))
            tasks = []
            for t in d["tasks"]:
                _known_keys(t, ("name", "train", "val"), f"task {t.get('name', len(tasks) + 1)!r}")
                tasks.append(Task(t["name"], path(t["train"]), path(t["val"])))
        except KeyError as exc:
            raise EngineError(f"protocol is missing a field: {exc}") from None
        except (TypeError, AttributeError):
            raise EngineError("protocol: 'recipes' and 'tasks' must be lists of objects (see docs/benchmark.md)") from None
        names = [r.name for r in recipes]
        for what, name in [*(("recipe", n) for n in names), *(("task", t.name) for t in tasks)]:
            parts = str(name).replace("\\", "/").split("/")
            if (not isinstance(name, str) or not name.strip() or name.startswith(("/", "\\"))
                    or any(part in (".", "..") for part in parts) or (what == "task" and len(parts) > 1)):
                raise EngineError(f"{what} name {name!r}: names folders under OUT, so it is a non-empty name "
                                  f"without {'/' if what == 'task' else 'a leading /'}, '.' or '..' parts")
        if len(set(names)) != len(names):
            raise EngineError("protocol recipes need unique names")
        if len({t.name for t in tasks}) != len(tasks):
            raise EngineError("protocol tasks need unique names")
        for number, r in enumerate(recipes):
            kinds = sum(bool(x) for x in (r.stages, r.average, r.learned_mix))
            if kinds != 1:
                raise EngineError(f"recipe {r.name!r}: give exactly one of stages, average or learned_mix")
            for s in r.stages:
                if s.task not in ("mae", "align", "scratch"):
                    raise EngineError(f"recipe {r.name!r}: unknown stage {s.task!r} (mae | align | scratch)")
            mix = r.average or r.learned_mix
            if mix is not None:
                of = mix.get("of", [])
                if not isinstance(of, list) or not all(isinstance(x, str) for x in of):
                    raise EngineError(f"recipe {r.name!r}: 'of' is a list of recipe names, got {of!r}")
                unknown = [x for x in of if x not in names or x == r.name]
                if len(of) < 2 or unknown:
                    raise EngineError(f"recipe {r.name!r}: 'of' needs two or more other recipes (unknown: {unknown})")
                earlier = {x.name: x for x in recipes[:number]}
                later = [x for x in of if x not in earlier]
                if later:
                    raise EngineError(f"recipe {r.name!r} mixes {later}, which must come earlier in the protocol "
                                      "(their checkpoints are made first)")
                mixes = [x for x in of if earlier[x].learned_mix]
                if mixes:
                    raise EngineError(f"recipe {r.name!r} mixes {mixes}: a learned_mix row is a linear probe per "
                                      "task, not a checkpoint; mix the rows it mixes instead")
            if r.average is not None:
                weights = r.average.get("weights")
                if isinstance(weights, list):   # [0.5, 0.5], as YAML users write it: the same as "0.5,0.5"
                    weights = ",".join(str(w) for w in weights)
                if weights is not None:
                    if not isinstance(weights, str):
                        raise EngineError(f"recipe {r.name!r}: weights are a list or a comma-separated string of "
                                          f"numbers, got {weights!r}")
                    from privvid.engine.average import parse_weights

                    try:
                        parse_weights(weights, len(r.average["of"]))
                    except EngineError as exc:
                        raise EngineError(f"recipe {r.name!r}: {exc}") from None
                    r.average = {**r.average, "weights": weights}
        bias = d.get("bias", True)
        if not isinstance(bias, bool):
            raise EngineError(f"the protocol's bias is true or false, got {bias!r}")
        seed = _whole(d.get("seed"), "the protocol's seed", least=0) or 0   # null (YAML "seed:") is the default
        modes = d.get("modes", ["ft", "lp"])
        if not isinstance(modes, (list, tuple)) or not modes or any(m not in ("ft", "lp") for m in modes):
            raise EngineError(f"the protocol's modes are a list of ft and lp, got {modes!r}")
        return cls(d.get("name", "benchmark"), recipes, tasks, d.get("preset", "tiny"), d.get("size"),
                   tuple(modes), _whole(d.get("eval_epochs"), "eval_epochs"),
                   _whole(d.get("eval_batch_size"), "eval_batch_size"), bias,
                   _whole(d.get("workers"), "workers", least=0), dict(d.get("eval_settings", {})), seed, datasets)

    @classmethod
    def load(cls, file: str | Path) -> "Protocol":
        """A protocol from JSON, or from YAML when PyYAML is installed (``.yaml`` / ``.yml``)."""
        file = Path(file)
        text = file.read_text()
        if file.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise EngineError("a YAML protocol needs PyYAML (pip install pyyaml); or write it as JSON") from None
            try:
                doc = yaml.safe_load(text)
            except yaml.YAMLError as exc:  # one line: where the parser stopped and why
                mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
                where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
                reason = problem or " ".join(str(exc).split())
                raise EngineError(f"{file} is not valid YAML: {where}{reason}") from None
        else:
            try:
                doc = json.loads(text)
            except json.JSONDecodeError as exc:
                raise EngineError(f"{file} is not valid JSON: {exc}") from None
        return cls.from_dict(doc, base=file.parent)


_TOP_KEYS = ("name", "recipes", "tasks", "preset", "size", "modes", "eval_epochs", "eval_batch_size", "bias",
             "workers", "eval_settings", "seed", "datasets")
_RECIPE_KEYS = ("name", "stages", "average", "learned_mix")
_STAGE_KEYS = ("task", "data", "epochs", "batch_size", "settings")


def _known_keys(doc: Any, known: tuple[str, ...], where: str) -> None:
    if not isinstance(doc, dict):
        raise EngineError(f"{where} is a mapping ({', '.join(known)}), got {doc!r}")
    unknown = [k for k in doc if not (isinstance(k, str) and (k in known or k.startswith("_")))]
    if unknown:
        import difflib

        hints = [f"{k!r} (did you mean {close[0]!r}?)" if (close := difflib.get_close_matches(str(k), known, 1))
                 else repr(k) for k in unknown]
        raise EngineError(f"{where}: unknown key {', '.join(hints)}; known: {', '.join(known)} "
                          "(keys starting with _ are comments)")


def _whole(value: Any, what: str, least: int = 1) -> int | None:
    """An optional whole-number setting: None stays None; anything but an int of at least ``least`` is an error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise EngineError(f"{what} must be a whole number of at least {least}, got {value!r}")
    return value


def representation_bias(task: Task, encoder: str = "efficientnet-lite0", seed: int = 0) -> dict[str, float]:
    """SynAPT's B = log2(M / M_rnd) with M from a linear probe on frozen ImageNet frame features."""
    from sklearn.linear_model import LogisticRegression

    from privvid.curate.encoders import IMAGE_ENCODERS
    from privvid.engine.api import align_classes, parse_data
    from privvid.engine.data import decode_clip, load_source

    enc = IMAGE_ENCODERS.create(encoder)
    tr = parse_data(task.train)
    # the val clips' labels as the train list numbers its classes (a val list lacking a class numbers the
    # rest otherwise), as the FT / LP runs read them
    va = align_classes(load_source(task.val, require_labels=False), tr)

    def feats(src) -> np.ndarray:
        frames = [decode_clip(s.path, 1, 1, 256, None)[0] for s in src.samples]
        return enc.encode(frames)

    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(feats(tr), [s.label for s in tr.samples])
    pred = clf.predict(feats(va))
    m = float(np.mean(pred == np.array([s.label for s in va.samples])))
    m_rnd = 1.0 / tr.num_classes
    return {"M": m, "M_rnd": m_rnd, "B": math.log2(m / m_rnd) if m > 0 else None}   # M = 0: B is -inf (None in JSON)


def _fingerprint(spec: str) -> Any:
    """What a data spec's results depend on besides its path: the list file's bytes (or a folder's listing
    with sizes and times), so clips regenerated at the same path do not reuse stale results."""
    path = Path(spec.split("=", 1)[1] if "=" in spec and not Path(spec).exists() else spec)
    try:
        if path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if path.is_dir():
            stats = ((p, p.stat()) for p in path.rglob("*") if p.is_file() and ".privvid" not in p.parts)
            return sorted((str(p.relative_to(path)), st.st_size, st.st_mtime_ns) for p, st in stats)[:10_000]
    except OSError:
        return None
    return None


def _key(doc: Any) -> str:
    from privvid import __version__

    return hashlib.sha256(json.dumps({"doc": doc, "privvid": __version__}, sort_keys=True,
                                     default=str).encode()).hexdigest()[:16]


def _cached(folder: Path, key: str) -> dict[str, Any] | None:
    """The recorded result of a finished step whose inputs hash to ``key``, else None."""
    try:
        done = json.loads((folder / "done.json").read_text())
    except (OSError, ValueError):
        return None
    return done if done.get("key") == key else None


def _finish(folder: Path, key: str, result: dict[str, Any] | None = None) -> None:
    from privvid.io.atomic import write_text_atomic

    write_text_atomic(folder / "done.json", json.dumps({"key": key, **(result or {})}, indent=1))


def check_protocol(proto: Protocol, device: str | None = None) -> None:
    """What every step would fail on, before the first one runs (a paper protocol trains for days before
    its downstream tasks are read): the device, something to run, and every data source it names."""
    from privvid.engine.api import align_classes, make_config, parse_data
    from privvid.engine.trainer import resolve_device

    if device is not None:
        resolve_device(device)
    if not proto.recipes or not proto.tasks:
        raise EngineError("a protocol needs at least one recipe and one task")
    # every step's settings, as the step will build them
    for recipe in proto.recipes:
        for i, st in enumerate(recipe.stages):
            if st.task != "scratch":
                try:
                    make_config(proto.preset, st.task, proto.size, epochs=st.epochs, batch_size=st.batch_size,
                                settings=st.settings).check()
                except EngineError as exc:
                    raise EngineError(f"recipe {recipe.name!r}, stage {i + 1} ({st.task}): {exc}") from None
    for mode in proto.modes:
        try:
            make_config(proto.preset, mode, proto.size, epochs=proto.eval_epochs, batch_size=proto.eval_batch_size,
                        settings=proto.eval_settings).check()
        except EngineError as exc:
            raise EngineError(f"the {mode} evaluations (eval_settings): {exc}") from None
    # labels are read where the step reads them: align stages and the tasks' train lists (MAE and the
    # val lists take unlabelled or one-class data)
    labelled = {d for r in proto.recipes for st in r.stages if st.task == "align" for d in st.data}
    labelled |= {t.train for t in proto.tasks}
    specs = [d for r in proto.recipes for st in r.stages for d in st.data]
    specs += [t.train for t in proto.tasks] + [t.val for t in proto.tasks]
    sources = {spec: parse_data(spec, require_labels=spec in labelled) for spec in dict.fromkeys(specs)}
    for task in proto.tasks:   # each val list against its train list, as the evaluation reads it
        align_classes(sources[task.val], sources[task.train])


def run_protocol(proto: Protocol, out: str | Path, device: str | None = None,
                 log: Callable[[str], None] | None = None, lock: bool = True) -> dict[str, Any]:
    """Run every recipe's stages (a stage starts from the previous one's checkpoint), then FT / LP each on every
    task; averaging rows mix finished recipes' checkpoints, learned-mix rows probe with learned proportions.

    Every step (stage, average, FT, LP) is cached under ``out`` with a key over everything it depends on
    (its settings, its data, the key of the checkpoint it starts from, the protocol's seed): a re-run skips
    finished steps, a killed run redoes only the step it was in. Every row is seeded (the same command twice
    gives the same table). One run at a time writes into ``out`` (:func:`out_lock`; ``lock`` False: the caller
    holds it, having taken it before it made the protocol's data there)."""
    check_protocol(proto, device)
    out = Path(out)
    with out_lock(out) if lock else contextlib.nullcontext():
        return _run_protocol(proto, out, device, log or (lambda s: None))


@contextlib.contextmanager
def out_lock(out: str | Path) -> Iterator[None]:
    """One benchmark run per OUT (``OUT/.privvid/lock``): a second is refused before it writes anything there
    (each step's own lock came only at that step, after the cached steps were printed)."""
    from privvid.runtime.lock import one_writer

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EngineError(f"{out} is a file; a benchmark run is written into a folder")
    with one_writer(out, out / ".privvid"):
        yield


def _run_protocol(proto: Protocol, out: Path, device: str | None, say: Callable[[str], None]) -> dict[str, Any]:
    from privvid.engine.api import run_average, run_eval, run_train
    from privvid.engine.checkpoint import save_checkpoint
    from privvid.engine.config import preset
    from privvid.engine.model import Classifier

    import torch

    results: dict[str, Any] = {"protocol": proto.name, "rows": {}, "top5": {}, "bias": {}, "seed": proto.seed,
                               "alpha": {}, "classes": {}, "steps": {"run": 0, "cached": 0}}
    ov = {k: v for k, v in (("epochs", proto.eval_epochs), ("batch_size", proto.eval_batch_size),
                            ("workers", proto.workers), ("seed", proto.seed)) if v is not None}
    ov_key = {k: v for k, v in ov.items() if k != "workers"}   # results do not depend on the loader workers
    resolved = {t: preset(proto.preset, t, proto.size).to_dict() for t in ("mae", "align", "ft", "lp")}
    checkpoints: dict[str, tuple[Path, str]] = {}   # recipe -> (checkpoint, its key)

    def step(folder: Path, key: str, what: str, fn: Callable[[], dict[str, Any] | None]) -> dict[str, Any]:
        done = _cached(folder, key)
        if done is not None:
            results["steps"]["cached"] += 1
            say(f"{what}: cached")
            return done
        say(what)
        result = fn() or {}
        _finish(folder, key, result)
        results["steps"]["run"] += 1
        return result

    for recipe in proto.recipes:
        if recipe.stages:
            init: Path | None = None
            key = _key({"seed": proto.seed, "preset": proto.preset, "size": proto.size})
            for i, st in enumerate(recipe.stages):
                stage_out = out / "stages" / recipe.name / f"{i}_{st.task}"
                key = _key({"after": key, "stage": st.__dict__, "data": [_fingerprint(d) for d in st.data],
                            "recipe": resolved.get(st.task if st.task != "scratch" else "mae")})
                if st.task == "scratch":
                    def scratch(stage_out: Path = stage_out) -> None:
                        cfg = preset(proto.preset, "mae", proto.size)
                        torch.manual_seed(proto.seed)   # the reference row is seeded like every other
                        save_checkpoint(stage_out, Classifier(cfg.model, {}),
                                        {"task": "scratch", "arch": cfg.model.arch(), "train_config": cfg.to_dict(),
                                         "heads": {}, "progress": {}})
                    step(stage_out, key, f"{recipe.name}: scratch", scratch)
                else:
                    sov = {k: v for k, v in (("epochs", st.epochs), ("batch_size", st.batch_size),
                                             ("workers", proto.workers), ("seed", proto.seed)) if v is not None}

                    def stage(st: Stage = st, stage_out: Path = stage_out, init: Path | None = init,
                              sov: dict[str, Any] = sov) -> None:
                        run_train(st.task, st.data, stage_out, preset_name=proto.preset,
                                  size=proto.size if init is None else None, init=init, device=device,
                                  overwrite=True, settings=st.settings, **sov)
                    step(stage_out, key, f"{recipe.name}: {st.task} on {', '.join(st.data)}", stage)
                init = stage_out
            assert init is not None
            checkpoints[recipe.name] = (init, key)
        elif recipe.average:
            of = recipe.average["of"]
            missing = [x for x in of if x not in checkpoints]
            if missing:
                raise EngineError(f"recipe {recipe.name!r} averages {missing}, which must come earlier in the protocol")
            folder = out / "stages" / recipe.name / "average"
            weights = recipe.average.get("weights")
            key = _key({"average": [checkpoints[x][1] for x in of], "weights": weights})
            step(folder, key, f"{recipe.name}: average of {', '.join(of)}",
                 lambda folder=folder, of=of, weights=weights: run_average([checkpoints[x][0] for x in of],
                                                                           weights, folder, True) and None)
            checkpoints[recipe.name] = (folder, key)

        row: dict[str, float] = {}
        row5: dict[str, float] = {}
        for task in proto.tasks:
            for mode in proto.modes:
                if recipe.learned_mix:
                    if mode != "lp":
                        continue
                    of = recipe.learned_mix["of"]
                    inits = [checkpoints[x][0] for x in of]
                    key = _key({"mix": [checkpoints[x][1] for x in of], "task": task.__dict__, "ov": ov_key,
                                "layerwise": recipe.learned_mix.get("layerwise", False), "set": proto.eval_settings,
                                "data": [_fingerprint(task.train), _fingerprint(task.val)], "recipe": resolved["lp"]})
                else:
                    inits = [checkpoints[recipe.name][0]]
                    key = _key({"init": checkpoints[recipe.name][1], "task": task.__dict__, "mode": mode, "ov": ov_key,
                                "set": proto.eval_settings, "recipe": resolved[mode],
                                "data": [_fingerprint(task.train), _fingerprint(task.val)]})
                folder = out / "evals" / recipe.name / f"{mode}_{task.name}"

                def evaluate(mode: str = mode, task: Task = task, folder: Path = folder,
                             inits: list[Path] = inits, recipe: Recipe = recipe) -> dict[str, Any]:
                    res = run_eval(mode, inits, task.train, task.val, folder, preset_name=proto.preset,
                                   device=device, overwrite=True, settings=proto.eval_settings,
                                   learn_mix=bool(recipe.learned_mix),
                                   layerwise=bool((recipe.learned_mix or {}).get("layerwise", False)), **ov)
                    ev = res["eval"]
                    return {"top1": ev["top1"], "top5": ev["top5"], "n": ev["n"], "classes": ev.get("classes"),
                            "alpha": res.get("alpha")}
                res = step(folder, key, f"{recipe.name}: {mode} on {task.name}", evaluate)
                row[f"{task.name}/{mode}"] = res["top1"]
                row5[f"{task.name}/{mode}"] = res["top5"]
                if res.get("classes") is not None:   # top-5 of five classes or fewer is always 100%: not shown
                    results["classes"][task.name] = res["classes"]
                if recipe.learned_mix:   # the proportions it learned (one list per layer group)
                    results["alpha"].setdefault(recipe.name, {})[task.name] = {
                        "of": list(recipe.learned_mix["of"]), "alpha": res.get("alpha")}
        results["rows"][recipe.name] = row
        results["top5"][recipe.name] = row5
    if proto.bias:
        for task in proto.tasks:   # cached like a step: it decodes every clip of the task once
            folder = out / "bias" / task.name
            key = _key({"bias": task.__dict__, "seed": proto.seed, "method": "efficientnet-lite0 mid-frame logistic",
                        "data": [_fingerprint(task.train), _fingerprint(task.val)]})
            done = _cached(folder, key)
            if done is not None:
                results["bias"][task.name] = {k: v for k, v in done.items() if k != "key"}
                continue
            say(f"bias of {task.name}")
            try:
                results["bias"][task.name] = representation_bias(task, seed=proto.seed)
            except Exception as exc:  # the bias row is optional; say why it is missing
                results["bias"][task.name] = {"error": str(exc)}
            else:
                _finish(folder, key, results["bias"][task.name])
    from privvid.benchmark.table import write_report
    from privvid.io.atomic import write_text_atomic

    write_text_atomic(out / "results.json", json.dumps(results, indent=2))
    write_report(out)
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
