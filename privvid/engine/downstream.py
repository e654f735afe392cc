"""The six downstream tasks of the PPMA / SynAPT benchmark, as a catalogue of what the user provides.

privvid ships none of these datasets (their licences and sizes forbid it) nor their split files. A
task is read from the user's copy: ``ROOT/<task>/`` holding the task's videos (or frame folders) and
PPMA's split lists ``train.csv`` / ``val.csv`` (``path;label`` per line, paths relative to ``ROOT``, as
in PPMA's ``data/splits/<task>/``). ``ROOT`` is ``$PRIVVID_DOWNSTREAM`` (or the ``root`` given to the API). A spec
is ``ppma:<task>:<split>``, e.g. ``privvid eval ft --train ppma:ucf101:train --val ppma:ucf101:val``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from privvid.engine.config import EngineError


@dataclass(frozen=True)
class Task:
    name: str
    title: str
    classes: int
    clips: dict[str, int]        # clips per split in PPMA's lists
    source: str                  # where a user gets the videos
    folder: str                  # the folder under ROOT the list paths start with (documentation)


CATALOGUE: dict[str, Task] = {t.name: t for t in (
    Task("ucf101", "UCF101", 101, {"train": 9537, "val": 3783}, "https://www.crcv.ucf.edu/data/UCF101.php",
         "<class>/v_<name> (frame folders or videos)"),
    Task("hmdb51", "HMDB51", 51, {"train": 3570, "val": 1530},
         "https://serre-lab.clps.brown.edu/resource/hmdb-a-large-human-motion-database/", "<class>/<name>"),
    Task("mini_ssv2", "Mini-SSV2", 87, {"val": 11798},
         "https://developer.qualcomm.com/software/ai-datasets/something-something",
         "something2something-v2/videos/<id>.webm"),
    Task("diving48", "Diving48", 48, {"train": 15026, "val": 1969},
         "http://www.svcl.ucsd.edu/projects/resound/dataset.html", "diving48/videos/<id>.mp4"),
    Task("ikea_furniture", "IkeaFA", 12, {"train": 1780, "val": 162}, "https://tengdahan.github.io/ikea.html",
         "ikea_furniture/videos/<class>/<clip>.MP4"),
    Task("uav", "UAV-Human", 155, {"train": 16284, "val": 6190}, "https://github.com/sutdcv/UAV-Human",
         "uav_human/videos/<clip>.avi"),
)}


def parse_spec(spec: str) -> tuple[Task, str]:
    parts = spec.split(":")
    if len(parts) != 3 or parts[0] != "ppma":
        raise EngineError(f"a downstream task is ppma:<task>:<split>, got {spec!r}")
    task = CATALOGUE.get(parts[1])
    if task is None:
        raise EngineError(f"unknown downstream task {parts[1]!r}; the catalogue has: {', '.join(CATALOGUE)}")
    if parts[2] not in ("train", "val", "test"):
        raise EngineError(f"split must be train, val or test, got {parts[2]!r}")
    return task, parts[2]


def task_root(task: Task, root: str | os.PathLike[str] | None) -> Path:
    base = root if root is not None else os.environ.get("PRIVVID_DOWNSTREAM")
    if not base:
        raise EngineError(f"{task.title} ({task.classes} classes) is read from your own copy: set "
                          f"$PRIVVID_DOWNSTREAM to a folder holding {task.name}/train.csv and "
                          f"{task.name}/val.csv (PPMA's data/splits/{task.name}/ lists) and the videos they name "
                          f"({task.folder}, paths relative to that folder); get the videos from {task.source}")
    return Path(base)


def downstream_source(spec: str, root: str | os.PathLike[str] | None = None):  # noqa: ANN201 - Source
    """The Source of ``ppma:<task>:<split>`` from the user's copy, with the catalogue's class count."""
    from privvid.engine.data import Source, _list_source, _resolve

    task, split = parse_spec(spec)
    base = task_root(task, root)
    lists = [base / task.name / f"{split}.csv", base / task.name / "splits" / f"{split}.csv"]
    found = next((p for p in lists if p.is_file()), None)
    if found is None:
        raise EngineError(f"{task.title}: no split list {lists[0]} (copy PPMA's data/splits/{task.name}/{split}.csv "
                          f"there; its paths are relative to {base})")
    src = _list_source(found, base, csv_format=True)
    samples = []
    for sample in src.samples:
        if not sample.path.exists():
            # UCF101 / HMDB51 lists name <class>/<clip> without the task folder: look inside it too
            inner = _resolve(base / task.name, sample.path.relative_to(base).as_posix())
            if inner.exists():
                sample = replace(sample, path=inner)
        samples.append(sample)
    src = Source(src.name, samples, src.classes)
    labels = [s.label for s in src.samples]
    # the lists hold label indices: the task has all of its classes whichever ones a list happens to use
    if labels and max(labels) >= task.classes:
        raise EngineError(f"{found}: label {max(labels)} is outside {task.title}'s {task.classes} classes")
    return Source(f"{task.name}-{split}", src.samples, [str(i) for i in range(task.classes)])
