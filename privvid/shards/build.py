"""Dataset manifests, mmaction2 / VideoMAE lists and WebDataset shards from an anonymised tree.

Reads what ``privvid anonymize`` wrote (``<clip>.mp4`` + ``<clip>.json``) and writes:

- ``manifest.jsonl``: one line per clip (path, label, label index, frames, fps, size, sha256 of
  the output and of the input, mode, mask coverage) plus ``manifest.json`` with the dataset
  summary (counts per class, classes, privvid versions, modes);
- ``classes.txt``: class names, line number = label index;
- ``mmaction_<split>.txt``: ``relative/path.mp4 label_index`` (mmaction2 VideoDataset lists);
- ``videomae_<split>.csv``: ``relative/path.mp4 label_index`` (VideoMAE's space-separated csv);
- ``shards/<name>-000000.tar``: WebDataset tar shards, each sample ``<key>.mp4`` + ``<key>.json``.

Splits are deterministic per seed and stratified by class. Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import tarfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privvid.errors import PrivvidError
from privvid.io.atomic import write_text_atomic
from privvid.io.discover import STATE_DIR
from privvid.io.video import temp_path


@dataclass(frozen=True)
class Entry:
    relpath: str      # of the .mp4, relative to the dataset root
    label: str
    sidecar: dict[str, Any]


def shard_key(relpath: str) -> str:
    """The WebDataset key of a clip: WebDataset groups a sample's files by the name before the first dot,
    so dots are escaped, reversibly (``%`` -> ``%25``, ``.`` -> ``%2e``): ``a.b`` and ``a_b`` stay two keys."""
    stem = relpath[: -len(".mp4")] if relpath.endswith(".mp4") else relpath
    return stem.replace("%", "%25").replace(".", "%2e")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def collect(root: str | os.PathLike[str]) -> list[Entry]:
    """Every anonymised clip under ``root`` that has both its video and its sidecar."""
    root = Path(root)
    entries = []
    for sidecar in sorted(root.rglob("*.json")):
        if STATE_DIR in sidecar.relative_to(root).parts or sidecar.name.startswith("."):
            continue
        video = sidecar.with_suffix(".mp4")
        if not video.exists():
            continue
        try:
            data = json.loads(sidecar.read_text())
        except json.JSONDecodeError:
            continue
        if "privvid_version" not in data:
            continue
        rel = video.relative_to(root).as_posix()
        parts = rel.split("/")
        label = parts[-2] if len(parts) > 1 else ""
        entries.append(Entry(rel, label, data))
    if not entries:
        raise PrivvidError(f"no anonymised clips (video + privvid sidecar) under {root}")
    return entries


def split_entries(entries: list[Entry], val_fraction: float, seed: int) -> dict[str, list[Entry]]:
    """Stratified, seeded train/val split (a class with one clip goes to train)."""
    if not 0 <= val_fraction < 1:
        raise ValueError("val fraction must be in [0, 1)")
    by_class: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        by_class[entry.label].append(entry)
    rng = random.Random(seed)
    splits: dict[str, list[Entry]] = {"train": [], "val": []}
    for label in sorted(by_class):
        items = sorted(by_class[label], key=lambda e: e.relpath)
        rng.shuffle(items)
        n_val = int(round(len(items) * val_fraction)) if len(items) > 1 else 0
        splits["val"].extend(items[:n_val])
        splits["train"].extend(items[n_val:])
    return {k: sorted(v, key=lambda e: e.relpath) for k, v in splits.items() if v}


def build(root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, name: str = "privvid",
          val_fraction: float = 0.0, seed: int = 0, shard_size: int = 256 << 20,
          webdataset: bool = True) -> dict[str, Any]:
    """Write manifests, lists and (optionally) WebDataset shards for the dataset at ``root``."""
    root = Path(root)
    out = Path(out) if out is not None else root
    out.mkdir(parents=True, exist_ok=True)
    entries = collect(root)
    classes = sorted({e.label for e in entries if e.label})
    index = {label: i for i, label in enumerate(classes)}
    splits = split_entries(entries, val_fraction, seed)
    split_of = {e.relpath: split for split, items in splits.items() for e in items}

    lines = []
    for e in entries:
        side = e.sidecar
        lines.append(json.dumps({
            "path": e.relpath,
            "label": e.label,
            "label_index": index.get(e.label, -1),
            "split": split_of[e.relpath],
            "frames": side["output"]["frames"],
            "fps": side["output"]["fps"],
            "width": side["output"]["width"],
            "height": side["output"]["height"],
            "sha256": _sha256(root / e.relpath),
            "input_sha256": side["input"]["sha256"],
            "mode": side["mode"],
            "person_coverage_mean": side["coverage"]["mean"],
        }, ensure_ascii=False))
    write_text_atomic(out / "manifest.jsonl", "\n".join(lines) + "\n")
    write_text_atomic(out / "classes.txt", "".join(f"{c}\n" for c in classes))
    for split, items in splits.items():
        body = "".join(f"{e.relpath} {index.get(e.label, -1)}\n" for e in items)
        write_text_atomic(out / f"mmaction_{split}.txt", body)
        write_text_atomic(out / f"videomae_{split}.csv", body)

    shards: list[str] = []
    if webdataset:
        shards = _write_shards(root, out / "shards", name, entries, index, split_of, shard_size)
    summary = {
        "name": name,
        "clips": len(entries),
        "classes": classes,
        "per_class": dict(sorted(Counter(e.label for e in entries).items())),
        "splits": {k: len(v) for k, v in splits.items()},
        "modes": sorted({e.sidecar["mode"] for e in entries}),
        "privvid_versions": sorted({e.sidecar["privvid_version"] for e in entries}),
        "frames": sum(e.sidecar["output"]["frames"] for e in entries),
        "shards": shards,
        "seed": seed,
    }
    write_text_atomic(out / "manifest.json", json.dumps(summary, indent=1, ensure_ascii=False))
    return summary


def _write_shards(root: Path, folder: Path, name: str, entries: list[Entry], index: dict[str, int],
                  split_of: dict[str, str], shard_size: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    tar: tarfile.TarFile | None = None
    tmp: Path | None = None
    size = 0

    def close() -> None:
        nonlocal tar, tmp
        if tar is not None and tmp is not None:
            tar.close()
            final = folder / f"{name}-{len(written):06d}.tar"
            os.replace(tmp, final)
            written.append(final.name)
        tar, tmp = None, None

    for e in entries:
        video = (root / e.relpath).read_bytes()
        if tar is not None and size + len(video) > shard_size:
            close()
        if tar is None:
            tmp = temp_path(folder / f"{name}-{len(written):06d}.tar")
            tar = tarfile.open(tmp, "w")
            size = 0
        key = shard_key(e.relpath)
        meta = {"path": e.relpath, "label": e.label, "label_index": index.get(e.label, -1),
                "split": split_of[e.relpath], "sidecar": e.sidecar}
        for suffix, payload in (("mp4", video), ("json", json.dumps(meta, ensure_ascii=False).encode())):
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(payload)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(payload))
        size += len(video)
    close()
    return written
