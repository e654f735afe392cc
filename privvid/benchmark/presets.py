"""Shipped protocols: ``smoke`` (every stage for real on tiny data, on this 2-core machine) and ``paper``
(the papers' protocol, for GPUs).

``smoke`` makes its own data in ``DATA``: the labelled real clips of ``../shared/data/action-clips`` cut into
short temporal segments (the last segment of each video is val), their No-Human version (``privvid anonymize
--mode remove``) and Mask2Mesh version (``--mode mesh``) made by privvid itself, and a small synthetic set
(``privvid synth``). Recipes: Scratch; MAE-Align on real, No-Human and synthetic data; PPMA (MAE on
No-Human, align on No-Human + synthetic); SMPLy Private (MAE and align on Mask2Mesh); their fixed 50/50
weight average and a learned mix (LP). The downstream task is the real clips themselves, FT and LP.

``paper`` names the papers' data by placeholders the user binds (``--dataset nh=/data/nh-kinetics ...``):
``real``, ``nh``, ``m2m``, ``synth`` for pre-training and the six PPMA downstream tasks (``ppma:<task>``,
from ``$PRIVVID_DOWNSTREAM``), with the ``ppma`` engine preset.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Callable

from privvid.benchmark.protocol import Protocol
from privvid.engine.config import EngineError

RECIPES: list[dict[str, Any]] = [
    {"name": "Scratch", "stages": [{"task": "scratch"}]},
    {"name": "MAE-Align real", "stages": [{"task": "mae", "data": ["real"]}, {"task": "align", "data": ["real"]}]},
    {"name": "MAE-Align No-Human", "stages": [{"task": "mae", "data": ["nh"]}, {"task": "align", "data": ["nh"]}]},
    {"name": "MAE-Align Synthetic", "stages": [{"task": "mae", "data": ["synth"]},
                                              {"task": "align", "data": ["synth"]}]},
    {"name": "PPMA", "stages": [{"task": "mae", "data": ["nh"]}, {"task": "align", "data": ["nh", "synth"]}]},
    {"name": "SMPLy Private", "stages": [{"task": "mae", "data": ["m2m"]}, {"task": "align", "data": ["m2m"]}]},
    {"name": "avg(PPMA, SMPLy Private)", "average": {"of": ["PPMA", "SMPLy Private"], "weights": "0.5,0.5"}},
    {"name": "learned mix(PPMA, SMPLy Private)", "learned_mix": {"of": ["PPMA", "SMPLy Private"]}},
]
PPMA_TASKS = ("ucf101", "hmdb51", "mini_ssv2", "diving48", "ikea_furniture", "uav")


def _relist(src: Path, dst: Path, name: str) -> None:
    """``src/name`` (path,label rows) -> ``dst/name`` naming the anonymised copies (same relative paths)."""
    with open(src / name, newline="") as fh:
        rows = list(csv.reader(fh))
    with open(dst / name, "w", newline="") as fh:
        writer = csv.writer(fh)
        for row in rows:
            if row and row[0] != "path" and not (dst / row[0]).is_file():
                raise EngineError(f"{dst / row[0]} was not written (anonymisation failed for it?)")
            writer.writerow(row)


def default_clips() -> Path:
    """The smoke preset's labelled real clips: ``$PRIVVID_SHARED/data/action-clips``, else the shared folder
    beside this checkout (``<checkout>/../shared/data/action-clips``), wherever the command runs from."""
    import os

    shared = os.environ.get("PRIVVID_SHARED")
    if shared:
        return Path(shared) / "data" / "action-clips"
    beside = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "action-clips"
    # an install outside a checkout (site-packages): the shared folder beside the working folder, as before
    return beside if beside.is_dir() else Path("../shared/data/action-clips")


def smoke(data: str | Path, clips_root: str | Path, say: Callable[[str], None] | None = None) -> Protocol:
    """The smoke protocol, its data made in ``data`` (reused when already there)."""
    from privvid.anonymize import anonymize_dataset
    from privvid.config import AnonymizeConfig
    from privvid.engine.clips import cut_clips

    say = say or (lambda s: None)
    data, clips_root = Path(data), Path(clips_root)
    real = data / "real"
    if not (real / "val.csv").is_file() and not clips_root.is_dir():
        raise EngineError(f"the smoke preset's labelled clips are not at {clips_root}: pass --clips DIR (a folder "
                          "of labelled clips, as ../shared/data/action-clips), or set PRIVVID_SHARED")
    if not (real / "val.csv").is_file():
        say("smoke data: cutting the labelled real clips into segments")
        cut_clips(clips_root, real, size=64, frames=16, per_video=4)
    for mode, folder in (("remove", data / "nh"), ("mesh", data / "m2m")):
        if not (folder / "val.csv").is_file():
            say(f"smoke data: anonymize --mode {mode}")
            summary = anonymize_dataset(real, folder, AnonymizeConfig(mode=mode), workers=1)
            failed = summary.failed
            if failed:
                raise EngineError(f"anonymize --mode {mode} failed on {failed[0].relpath}: {failed[0].reason}")
            for name in ("train.csv", "val.csv"):
                _relist(real, folder, name)
    synth = data / "synth"
    if not (synth / "val.csv").is_file():
        say("smoke data: privvid synth")
        from privvid.synth import SynthSettings, synthesize

        synthesize(synth, SynthSettings(classes=6, per_class=8, frames=16, width=64, height=64, seed=0))
    doc = {
        "name": "smoke", "preset": "tiny", "size": "nano", "seed": 0, "workers": 0,
        "eval_epochs": 4, "eval_batch_size": 6,
        "datasets": {"real": str(real / "train.csv"), "nh": str(data / "nh" / "train.csv"),
                     "m2m": str(data / "m2m" / "train.csv"), "synth": str(synth / "train.csv")},
        "recipes": [_with_epochs(r, 3) for r in RECIPES],
        "tasks": [{"name": "action-clips", "train": str(real / "train.csv"), "val": str(real / "val.csv")}],
    }
    return Protocol.from_dict(doc)


def _with_epochs(recipe: dict[str, Any], epochs: int) -> dict[str, Any]:
    if "stages" not in recipe:
        return recipe
    return {**recipe, "stages": [{**s, "epochs": epochs} if s["task"] != "scratch" else s for s in recipe["stages"]]}


def paper(datasets: dict[str, str]) -> Protocol:
    """The papers' protocol: MAE 200 epochs, align 50, FT / LP 30 on the six PPMA tasks (engine preset ppma)."""
    missing = [k for k in ("real", "nh", "m2m", "synth") if k not in datasets]
    if missing:
        raise EngineError(f"the paper protocol needs --dataset NAME=PATH for {', '.join(missing)} (real Kinetics-150, "
                          "No-Human and Mask2Mesh versions written by privvid anonymize, and a synthetic set)")
    doc = {"name": "paper", "preset": "ppma", "size": "base", "seed": 0, "datasets": datasets, "recipes": RECIPES,
           "tasks": [{"name": t, "train": f"ppma:{t}:train", "val": f"ppma:{t}:val"} for t in PPMA_TASKS]}
    return Protocol.from_dict(doc)
