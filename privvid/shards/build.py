"""Shards of an anonymised dataset: WebDataset tars per split, a manifest, a datasheet; verify; export.

``build(OUT, out=SHARDS)`` reads the clips :func:`privvid.io.layout.scan` finds and writes into SHARDS:

- ``<name>-<split>-000000.tar``: WebDataset shards, one split each, each sample ``<key>.mp4`` (the
  clip) + ``<key>.json`` (path, label, label index, split, sidecar); keys are the clip's relative path
  with dots escaped (:func:`shard_key`), so they are unique and stable;
- ``manifest.json``: format version, class index, counts per class and split, every shard with its
  split, clip count, size and sha256, privvid versions, modes and the parameters the sidecars share;
- ``manifest.jsonl``: one line per clip (shard, key, path, label, split, frames, sha256 ...);
- ``classes.txt`` and ``datasheet.md`` (what was removed or replaced and how, QA results when the
  dataset has them).

Splits come from a ``split/class/clip`` tree, from ``--split-from subset.csv`` (its ``split``
column, rows matched by clip name), or are drawn per class (``val_fraction``, seeded). Every file is
written atomically; ``verify`` re-checks all of it; ``export`` turns shards into mmaction2 / VideoMAE /
CSV lists with the videos beside them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
import tarfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import privvid
from privvid.config import FILL_MODES, LITTLE_SCENE
from privvid.errors import BadInput, ConfigError, PrivvidError
from privvid.io.atomic import write_text_atomic
from privvid.io.layout import SPLIT_NAMES, OutputClip, scan
from privvid.io.video import temp_path

FORMAT = "privvid-shards"
FORMAT_VERSION = 1
SPLITS = ("train", "val", "test")


class ShardError(PrivvidError):
    """A shard set that does not verify."""


@dataclass(frozen=True)
class Entry:
    relpath: str      # of the .mp4, relative to the dataset root
    label: str
    sidecar: dict[str, Any]
    split: str | None = None


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
    """Every finished clip under ``root``, labelled by the dataset layout (the first folder is the class;
    ``split/class/clip`` trees give split and class)."""
    clips: list[OutputClip] = scan(root)
    if not clips:
        raise BadInput(f"no anonymised clips (video + privvid sidecar) under {root}")
    return [Entry(c.video_rel, c.label, c.sidecar.raw, c.split) for c in clips]


def parse_shard_size(text: str | int) -> tuple[int, int]:
    """``"256"`` / ``"256MB"`` -> (bytes, 0); ``"100clips"`` -> (0, 100 clips)."""
    spec = str(text).strip().lower().replace(" ", "")
    try:
        if spec.endswith("clips"):
            count = int(spec[:-5])
            if count < 1:
                raise ValueError
            return 0, count
        number = float(spec[:-2] if spec.endswith("mb") else spec)
        if number <= 0:
            raise ValueError
        return int(number * (1 << 20)), 0
    except ValueError:
        raise ConfigError(f"--shard-size wants megabytes (256, 256MB) or a clip count (100clips), got {text!r}") from None


def _splits_from_csv(path: Path, entries: list[Entry]) -> tuple[dict[str, str], list[str]]:
    """relpath -> split from a CSV with ``split`` and ``key`` or ``path`` columns (curate's subset.csv), and
    the rows (key or path) that match no clip of the dataset."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows, lines = [], []   # each row and the file line it ends on (blank lines and quoted breaks count)
            for row in reader:
                rows.append(row)
                lines.append(reader.line_num)
    except OSError as exc:
        raise ConfigError(f"cannot read --split-from {path}: {exc}") from None
    if not rows or "split" not in rows[0]:
        raise ConfigError(f"--split-from {path} needs a 'split' column (and 'key' or 'path')")
    by_path: dict[str, str] = {}   # relative path without suffix -> split
    by_stem: dict[str, set[str]] = {}
    rows_of: dict[str, set[int]] = defaultdict(set)   # a path or a stem -> the rows naming it
    names: dict[int, str] = {}
    unknown: dict[str, int] = {}   # a split value none of SPLIT_NAMES -> the line of its first row
    with_split = 0
    for number, row in enumerate(rows):
        value = (row.get("split") or "").strip()
        split = SPLIT_NAMES.get(value.lower())
        if split is None:
            if value:
                unknown.setdefault(value, lines[number])
            continue
        with_split += 1
        for column in ("path", "key"):
            value = (row.get(column) or "").strip().replace("\\", "/")
            if value:
                p = PurePosixPath(value)
                by_path[str(p.with_suffix(""))] = split
                by_stem.setdefault(p.stem, set()).add(split)
                rows_of[str(p.with_suffix(""))].add(number)
                rows_of[p.stem].add(number)
                names.setdefault(number, value)
    if unknown:
        raise ConfigError(f"--split-from {path}: split " + ", ".join(f"{value!r} (line {line})" for value, line
                                                               in list(unknown.items())[:3])
                          + f" is none of {', '.join(sorted(SPLIT_NAMES))}; rename it in the CSV")
    if not with_split:
        raise ConfigError(f"--split-from {path}: no row has a split (the 'split' column is empty)")
    if not names:
        raise ConfigError(f"--split-from {path} needs a 'key' or 'path' column naming each clip")
    matched: set[int] = set()
    out = {}
    stem_count = Counter(PurePosixPath(e.relpath).stem for e in entries)
    for e in entries:
        source = str((e.sidecar.get("input") or {}).get("path") or "")
        candidates = [str(PurePosixPath(e.relpath).with_suffix("")), str(PurePosixPath(source).with_suffix(""))]
        hit = next((c for c in candidates if c and c in by_path), None)
        split = by_path[hit] if hit is not None else None
        if split is not None:
            matched |= rows_of[hit]
        else:
            # a bare name (curate's key column) only when it names one split unambiguously
            stem = PurePosixPath(e.relpath).stem
            stems = by_stem.get(stem, set())
            split = next(iter(stems)) if len(stems) == 1 and stem_count[stem] == 1 else None
            if split is not None:
                matched |= rows_of[stem]
        if split is not None:
            out[e.relpath] = split
    return out, [names[n] for n in sorted(names) if n not in matched]


def split_entries(entries: list[Entry], val_fraction: float, seed: int,
                  given: dict[str, str] | None = None) -> dict[str, list[Entry]]:
    """Split per clip: ``given`` (from a CSV), else the tree's split, else a stratified, seeded draw of
    ``val_fraction`` of each class (a class with one clip stays in train)."""
    if not 0 <= val_fraction < 1:
        raise ConfigError("val fraction must be in [0, 1)")
    splits: dict[str, list[Entry]] = defaultdict(list)
    rest: dict[str, list[Entry]] = defaultdict(list)
    for e in entries:
        split = (given or {}).get(e.relpath) if given is not None else e.split
        if given is not None and split is None:
            continue  # not in the CSV: not part of the dataset
        if split is not None:
            splits[split].append(e)
        else:
            rest[e.label].append(e)
    rng = random.Random(seed)
    for label in sorted(rest):
        items = sorted(rest[label], key=lambda e: e.relpath)
        rng.shuffle(items)
        n_val = min(int(round(len(items) * val_fraction)), len(items) - 1) if len(items) > 1 else 0
        splits["val"].extend(items[:n_val])
        splits["train"].extend(items[n_val:])
    return {k: sorted(splits[k], key=lambda e: e.relpath) for k in SPLITS if splits.get(k)}


def build(root: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, name: str = "privvid",
          val_fraction: float = 0.0, seed: int = 0, shard_size: int | str = 256 << 20,
          split_from: str | os.PathLike[str] | None = None, webdataset: bool = True) -> dict[str, Any]:
    """Write shards, manifest.json / manifest.jsonl, classes.txt and datasheet.md for the dataset at ``root``
    into ``out`` (default ``root/shards``). Returns the manifest."""
    root = Path(root)
    out = Path(out) if out is not None else root / "shards"
    max_bytes, max_clips = parse_shard_size(shard_size) if isinstance(shard_size, str) else (int(shard_size), 0)
    entries = collect(root)
    given, unmatched = _splits_from_csv(Path(split_from), entries) if split_from is not None else (None, [])
    splits = split_entries(entries, val_fraction, seed, given)
    if not splits:
        raise ConfigError(f"no clip of {root} is listed in {split_from}")
    used = [e for items in splits.values() for e in items]
    classes = sorted({e.label for e in used if e.label})
    index = {label: i for i, label in enumerate(classes)}
    out.mkdir(parents=True, exist_ok=True)
    # a rebuild must not leave an earlier build's shards beside its own (a glob of *.tar would read both):
    # those of this name, and those the earlier manifest names under another name; never another file
    for old in [*out.glob(f"{name}-*.tar"), *(out / file for file in _earlier_shards(out))]:
        old.unlink(missing_ok=True)

    shards: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    for split, items in splits.items():
        if webdataset:
            shards += _write_shards(root, out, name, split, items, index, max_bytes, max_clips, rows)
        else:
            rows += [_row(root, e, split, index, None) for e in items]
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
        "created": time.strftime("%Y-%m-%d"), "privvid_version": privvid.__version__,
        "classes": classes,
        "clips": len(used),
        "frames": sum(int(e.sidecar["output"]["frames"]) for e in used),
        "per_class": dict(sorted(Counter(e.label for e in used).items())),
        "splits": {split: len(items) for split, items in splits.items()},
        "per_split_class": {split: dict(sorted(Counter(e.label for e in items).items()))
                            for split, items in splits.items()},
        "shards": shards,
        "seed": seed, "val_fraction": val_fraction,
        "split_source": "csv" if given is not None else ("tree" if any(e.split for e in used) else "drawn"),
        "privvid_versions": sorted({e.sidecar["privvid_version"] for e in used}),
        "modes": sorted({e.sidecar["mode"] for e in used}),
        "parameters": _parameters(used),
        "left_out": len(entries) - len(used),
        # rows of --split-from that name no clip of the dataset (a stale or other subset)
        "split_from_unmatched": unmatched,
        # classes of the drawn split with too few clips for --val to draw one (one clip, or a share that
        # rounds to none): in train only
        "no_val_classes": sorted({e.label for e in entries if e.split is None}
                                 - {e.label for e in splits.get("val", [])}) if given is None and val_fraction > 0
        else [],
    }
    write_text_atomic(out / "manifest.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    write_text_atomic(out / "classes.txt", "".join(f"{c}\n" for c in classes))
    write_text_atomic(out / "manifest.json", json.dumps(manifest, indent=1, ensure_ascii=False))
    write_text_atomic(out / "datasheet.md", datasheet(manifest, root, used))
    return manifest


def _earlier_shards(out: Path) -> list[str]:
    """The shard files the manifest already in ``out`` names (plain names of .tar files; none when it cannot
    be read)."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        files = [str(shard["file"]) for shard in manifest.get("shards", [])]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return []
    return [f for f in files if f.endswith(".tar") and f == Path(f).name and not f.startswith(".")]


def _row(root: Path, e: Entry, split: str, index: dict[str, int], shard: str | None) -> dict[str, Any]:
    side = e.sidecar
    return {"shard": shard, "key": shard_key(e.relpath), "path": e.relpath, "label": e.label,
            "label_index": index.get(e.label, -1), "split": split, "frames": side["output"]["frames"],
            "fps": side["output"]["fps"], "width": side["output"]["width"], "height": side["output"]["height"],
            "sha256": _sha256(root / e.relpath), "input_sha256": side["input"].get("sha256"),
            "mode": side["mode"], "person_coverage_mean": (side.get("coverage") or {}).get("mean")}


def _parameters(entries: list[Entry]) -> dict[str, Any]:
    """What the sidecars say about how people were removed, summarised (value -> clip count)."""
    def count(values: list[Any]) -> dict[str, int]:
        return dict(sorted(Counter(json.dumps(v) if not isinstance(v, str) else v for v in values).items()))

    configs = [e.sidecar.get("config") or {} for e in entries]
    checks = [e.sidecar.get("check") or {} for e in entries]
    return {
        "detector": count([(c.get("detect") or {}).get("backend") for c in configs]),
        "inpainter": count([(c.get("inpaint") or {}).get("backend") for c in configs
                            if c.get("mode") in FILL_MODES]),
        "resize": count([c.get("resize") for c in configs]),
        "check": count([ch.get("name", "off") if ch else "off" for ch in checks]),
        "frames_checked": sum(int(ch.get("frames_checked") or 0) for ch in checks),
        "frames_flagged_by_check": sum(int(ch.get("frames_flagged") or 0) for ch in checks),
        # clips with little scene left (more than LITTLE_SCENE of the frame anonymised on average)
        "little_scene": sorted(e.relpath for e in entries
                               if float((e.sidecar.get("coverage") or {}).get("mean") or 0.0) > LITTLE_SCENE),
        "body_model": count([((e.sidecar.get("backends") or {}).get("composer") or {}).get("mesh", {})
                             .get("body_model") for e in entries if e.sidecar.get("mode") == "mesh"]),
    }


def _write_shards(root: Path, folder: Path, name: str, split: str, entries: list[Entry], index: dict[str, int],
                  max_bytes: int, max_clips: int, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    written: list[dict[str, Any]] = []
    tar: tarfile.TarFile | None = None
    tmp: Path | None = None
    size = count = 0

    def shard_name() -> str:
        return f"{name}-{split}-{len(written):06d}.tar"

    def close() -> None:
        nonlocal tar, tmp
        if tar is not None and tmp is not None:
            tar.close()
            final = folder / shard_name()
            os.replace(tmp, final)
            written.append({"file": final.name, "split": split, "clips": count, "bytes": final.stat().st_size,
                            "sha256": _sha256(final)})
        tar, tmp = None, None

    for e in entries:
        video = (root / e.relpath).read_bytes()
        if tar is not None and ((max_bytes and size + len(video) > max_bytes) or (max_clips and count >= max_clips)):
            close()
        if tar is None:
            tmp = temp_path(folder / shard_name())
            tar = tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT)
            size = count = 0
        key = shard_key(e.relpath)
        meta = {"path": e.relpath, "label": e.label, "label_index": index.get(e.label, -1), "split": split,
                "sidecar": e.sidecar}
        for suffix, payload in (("mp4", video), ("json", json.dumps(meta, ensure_ascii=False).encode())):
            info = tarfile.TarInfo(f"{key}.{suffix}")
            info.size = len(payload)
            info.mtime = 0
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(payload))
        rows.append(_row(root, e, split, index, shard_name()))
        size += len(video)
        count += 1
    close()
    return written


def datasheet(manifest: dict[str, Any], root: Path, used: list[Entry]) -> str:
    """A Markdown datasheet generated from the manifest (and the dataset's QA results, when present)."""
    p = manifest["parameters"]
    lines = [f"# Datasheet: {manifest['name']}", "",
             f"Generated by privvid {manifest['privvid_version']} on {manifest['created']} from the sidecars of "
             f"{manifest['clips']} clips ({manifest['frames']} frames).", "",
             "## Composition", "", "| split | clips |", "|---|---|"]
    lines += [f"| {split} | {n} |" for split, n in manifest["splits"].items()]
    lines += ["", f"{len(manifest['classes'])} classes; clips per class:", "", "| class | clips |", "|---|---|"]
    lines += [f"| {label or '(none)'} | {n} |" for label, n in manifest["per_class"].items()]
    lines += ["", "## What was done to the people in it", ""]
    modes = {"remove": "every detected person segmented and inpainted away (No-Human data)",
             "mesh": "every person removed, then replaced by a plain gender-neutral rendered body (Mask2Mesh)",
             "blur": "people blurred", "pixelate": "people pixelated", "solid": "people painted over in grey"}
    lines += [f"- mode `{m}`: {modes.get(m, m)}" for m in manifest["modes"]]
    lines += [f"- detector: {_counts(p['detector'])}", f"- inpainter: {_counts(p['inpainter']) or 'none'}",
              f"- output size: {_counts(p['resize'])}",
              f"- written-frame check: {_counts(p['check'])}; {p['frames_flagged_by_check']} of "
              f"{p['frames_checked']} checked frames mended"]
    if p["body_model"]:
        lines.append(f"- body model: {_counts(p['body_model'])}")
    little = p.get("little_scene") or []
    lines.append(f"- clips with little scene left (over {100 * LITTLE_SCENE:.0f}% of the frame anonymised on "
                 f"average): {len(little)} of {manifest['clips']}"
                 + (" (" + ", ".join(f"`{rel}`" for rel in little[:5]) + (", ..." if len(little) > 5 else "") + ")"
                    if little else ""))
    lines += ["- audio, container metadata and encoder tags removed; inputs are named by their path relative to "
              "the input folder and their sha256", ""]
    lines += ["## Quality assurance", "", audit_line(root, [e.relpath for e in used]), ""]
    return "\n".join(lines)


def audit_line(root: Path, packaged: list[str]) -> str:
    """What ``privvid qa audit`` (its per-clip CSV in ``root/.privvid``) said about the packaged clips
    (their paths relative to ``root``). Only those count: the audit also checks every other video under
    the folder (an export's copies, say) and flags those that have no sidecar."""
    path = root / ".privvid" / "audit.csv"
    if not path.is_file():
        return "- no automatic audit found (run `privvid qa audit` on the dataset, then rebuild)"
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = {row["rel"]: row for row in csv.DictReader(handle)}
        checkers = json.loads(path.with_suffix(".json").read_text(encoding="utf-8")).get("checkers", {})
    except (ValueError, KeyError, OSError):
        return f"- automatic audit: {path.name} or {path.with_suffix('.json').name} cannot be read"
    # the audit names a privvid clip by its path without ".mp4"
    seen = [rows[rel[: -len(".mp4")]] for rel in packaged if rel[: -len(".mp4")] in rows]
    flagged = [row["rel"] for row in seen if row.get("flagged") == "True"]
    text = (f"- automatic audit (`privvid qa audit`, person checker {checkers.get('person')}, face checker "
            f"{checkers.get('face')}): {len(flagged)} of the {len(seen)} packaged clips it checked flagged")
    if flagged:
        text += " (" + ", ".join(f"`{rel}`" for rel in flagged[:5]) + (", ..." if len(flagged) > 5 else "") + ")"
    if len(seen) < len(packaged):
        text += f"; {len(packaged) - len(seen)} packaged clip(s) not in the audit (audit again, then rebuild)"
    return text


def _counts(values: dict[str, int]) -> str:
    return ", ".join(f"`{k}` ({n})" for k, n in values.items())


# ----------------------------------------------------------------------------- verify

def verify(folder: str | os.PathLike[str]) -> list[str]:
    """Every problem of a shard folder, one line each (empty: it verifies): hashes and sizes against the
    manifest, clip counts, readable (not truncated) tars, member names (no absolute paths, no ``..``, no
    links), every sample a complete mp4 + json pair, classes.txt and manifest.jsonl against them."""
    return _verify(Path(folder))[0]


Seen = dict[tuple[str, str], dict[str, Any]]   # (shard file, sample key) -> its json's fields, its video's sha256


def _verify(folder: Path) -> tuple[list[str], Seen]:
    """:func:`verify`, with what it read of each sample (export lists the clips from it)."""
    if not folder.is_dir():
        raise BadInput(f"shard folder not found: {folder}")
    if not (folder / "manifest.json").is_file():
        made = (folder / ".privvid" / "summary.json").is_file()   # anonymize's own record of a run
        hint = f" (it is an output folder of privvid anonymize: privvid shards build {folder} first)" if made else ""
        return [f"no manifest.json: not a shard folder written by privvid shards build{hint}"], {}
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"manifest.json: cannot be read ({exc})"], {}
    if manifest.get("format") != FORMAT:
        return ["manifest.json: not a privvid shard manifest"], {}
    problems: list[str] = []
    listed = {str(s.get("file", "")) for s in manifest.get("shards", [])}
    problems += [f"{p.name}: a tar the manifest does not list (left from another build?)"
                 for p in sorted(folder.glob("*.tar")) if p.name not in listed]
    total = 0
    seen: Seen = {}
    for shard in manifest.get("shards", []):
        name = str(shard.get("file", ""))
        path = folder / name
        if "/" in name or name.startswith(".") or not path.is_file():
            problems.append(f"{name}: missing")
            continue
        if path.stat().st_size != shard.get("bytes"):
            problems.append(f"{name}: {path.stat().st_size} bytes, the manifest says {shard.get('bytes')} (truncated?)")
        if _sha256(path) != shard.get("sha256"):
            problems.append(f"{name}: sha256 differs from the manifest (the file changed or is corrupt)")
        clips, bad = _check_tar(path, seen)
        problems += [f"{name}: {b}" for b in bad]
        if clips != shard.get("clips"):
            problems.append(f"{name}: {clips} clips, the manifest says {shard.get('clips')}")
        total += clips
    if manifest.get("shards") and total != manifest.get("clips"):
        problems.append(f"the shards hold {total} clips, the manifest says {manifest.get('clips')}")
    return problems + _check_lists(folder, manifest, seen), seen


def _check_lists(folder: Path, manifest: dict[str, Any], seen: Seen) -> list[str]:
    """classes.txt against the manifest; manifest.jsonl's rows against the samples in the shards (each sample
    once, with the path, class, split and video hash its shard holds)."""
    problems: list[str] = []
    try:
        classes = (folder / "classes.txt").read_text(encoding="utf-8").splitlines()
        if classes != list(manifest.get("classes", [])):
            problems.append("classes.txt: differs from the manifest's classes (the class index of every list)")
    except OSError:
        problems.append("classes.txt: missing")
    try:
        lines = (folder / "manifest.jsonl").read_text(encoding="utf-8").splitlines()
    except OSError:
        return problems + ["manifest.jsonl: missing"]
    split_of = {str(s.get("file", "")): s.get("split") for s in manifest.get("shards", [])}
    unreadable = {name for name in split_of if not (folder / name).is_file() or "/" in name or name.startswith(".")}
    listed: set[tuple[str, str]] = set()
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            where = (str(row["shard"]), str(row["key"])) if row.get("shard") is not None else None
        except (ValueError, KeyError, TypeError):
            problems.append(f"manifest.jsonl line {number}: not a clip row")
            continue
        if where is None or where[0] in unreadable:
            continue   # no shards (--no-webdataset: the clips stay in the dataset), or a shard named missing above
        if where in listed:
            problems.append(f"manifest.jsonl line {number}: {where[1]} of {where[0]} listed twice")
        listed.add(where)
        sample = seen.get(where)
        if sample is None:
            if where[0] in split_of:
                problems.append(f"manifest.jsonl line {number}: {where[1]} is not in {where[0]}")
            continue
        meta = sample.get("meta") or {}
        for field in ("path", "label", "label_index", "split"):
            if row.get(field) != meta.get(field):
                problems.append(f"manifest.jsonl line {number}: {field} {row.get(field)!r}, the shard's sample says "
                                f"{meta.get(field)!r}")
        if row.get("split") != split_of.get(where[0]):
            problems.append(f"manifest.jsonl line {number}: split {row.get('split')!r}, its shard is "
                            f"{split_of.get(where[0])!r}")
        if row.get("sha256") != sample.get("sha256"):
            problems.append(f"manifest.jsonl line {number}: sha256 differs from the video in {where[0]}")
    problems += [f"{file}: sample {key} is not in manifest.jsonl" for file, key in sorted(set(seen) - listed)]
    if len(lines) != manifest.get("clips"):
        problems.append(f"manifest.jsonl: {len(lines)} rows, the manifest says {manifest.get('clips')} clips")
    return problems


def _sample_key(member: str) -> str:
    """A tar member's sample: its name without the suffix (``key.mp4`` / ``key.json`` -> ``key``)."""
    name = PurePosixPath(member)
    return str(name.parent / name.name.partition(".")[0])


def _check_tar(path: Path, seen: Seen | None = None) -> tuple[int, list[str]]:
    """Clips and problems of one shard; ``seen`` gets each sample's json and its video's sha256 by (file, key)."""
    bad: list[str] = []
    samples: dict[str, set[str]] = defaultdict(set)
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                name = member.name
                if not _safe_rel(name):
                    bad.append(f"unsafe member name {name!r}")
                    continue
                if not member.isfile():
                    bad.append(f"member {name!r} is not a regular file (link or folder)")
                    continue
                key, _, suffix = PurePosixPath(name).name.partition(".")
                samples[str(PurePosixPath(name).parent / key)].add(suffix)
                handle = tar.extractfile(member)
                data = handle.read() if handle else b""
                if len(data) != member.size:
                    bad.append(f"member {name!r} is cut short")
                elif seen is not None:
                    entry = seen.setdefault((path.name, _sample_key(name)), {})
                    if suffix == "mp4":
                        entry["sha256"] = hashlib.sha256(data).hexdigest()
                    elif suffix == "json":
                        try:   # only what the clip list is checked against: a sidecar is kilobytes a clip
                            meta = json.loads(data)
                            entry["meta"] = {k: meta.get(k) for k in ("path", "label", "label_index", "split")}
                        except (ValueError, AttributeError):
                            bad.append(f"member {name!r} is not JSON")
    except (tarfile.TarError, OSError, EOFError) as exc:
        bad.append(f"not a readable tar ({type(exc).__name__}: {exc}); truncated?")
    for key, suffixes in sorted(samples.items()):
        if suffixes != {"mp4", "json"}:
            bad.append(f"sample {key!r} has {sorted(suffixes)}, wants mp4 + json")
    return sum(1 for s in samples.values() if "mp4" in s), bad


# ----------------------------------------------------------------------------- export

def _listed_path(rel: str, fmt: str) -> str:
    """The clip's path under the export's videos/: as in the dataset for csv (quoted as needed); for the
    space-separated lists (mmaction2 and VideoMAE split each line on spaces), with every space as _."""
    if fmt == "csv":
        if "\n" in rel or "\r" in rel:
            raise ShardError(f"clip path {rel!r} cannot be written to a csv list (a line break)")
        return rel
    return "".join("_" if ch.isspace() else ch for ch in rel)


EXPORT_RECORD = ".privvid-export.json"   # in an export's folder: the videos it wrote, for the next export there


def _safe_rel(rel: Any) -> bool:
    parts = PurePosixPath(str(rel)).parts
    return bool(parts) and not PurePosixPath(str(rel)).is_absolute() and ".." not in parts


def _extract(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, sha256: str | None) -> None:
    """One video out of its shard, streamed and renamed into place (kept when the same video is there:
    its size and its sha256, which verify read from the shard)."""
    import shutil

    if target.is_file() and target.stat().st_size == member.size and sha256 is not None \
            and _sha256(target) == sha256:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target)
    try:
        handle = tar.extractfile(member)
        with open(tmp, "wb") as dst:
            if handle is not None:
                shutil.copyfileobj(handle, dst, 1 << 20)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def export(folder: str | os.PathLike[str], fmt: str, out: str | os.PathLike[str],
           root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Lists for another tool from a verified shard folder. The clips are extracted under ``out/videos``
    and every list names them relative to the list file (mmaction2 with ``data_prefix`` = ``out``; csv),
    or, for VideoMAE (whose loader opens the paths as given), by absolute path under ``root`` (default:
    ``out`` resolved). mmaction: ``{split}.txt`` ``path label``; videomae: ``train.csv``, ``val.csv``,
    ``test.csv`` (``path label``, space separated, no header; test = val when there is no test split);
    csv: ``{split}.csv`` with a ``path,label,class`` header."""
    if fmt not in ("mmaction", "videomae", "csv"):
        raise ConfigError(f"unknown export format {fmt!r}; choose mmaction, videomae or csv")
    folder, out = Path(folder), Path(out)
    if root is not None and fmt != "videomae":
        raise ConfigError(f"--root is read by --format videomae only (the {fmt} lists name clips relative to OUT)")
    if root is not None and not Path(root).is_absolute():
        raise ConfigError(f"--root {root} is relative: the videomae lists name clips by absolute path; give the "
                          "absolute folder the videos will be under (or leave --root out: OUT, resolved)")
    if out.resolve() == folder.resolve():
        raise ConfigError(f"--out {out} is the shard folder itself: its classes.txt would be replaced; export into "
                          "another folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder for the lists and the videos")
    problems, seen = _verify(folder)
    if problems:
        raise ShardError(f"{folder} does not verify: " + "; ".join(problems[:5]))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    unlabelled = sum(n for label, n in manifest.get("per_class", {}).items() if label not in manifest["classes"])
    if unlabelled and fmt != "csv":
        raise ShardError(f"{unlabelled} clip(s) of {folder} have no class (a flat dataset: IN/clip.mp4 instead of "
                         f"IN/class/clip.mp4): {fmt} lists need a class index for every clip; anonymize a "
                         "class-per-folder tree, or export --format csv")
    base = Path(root) if root is not None else out.resolve()
    if fmt == "videomae" and any(ch.isspace() for ch in base.as_posix()):
        raise ConfigError(f"the videomae lists name clips by absolute path, space separated, and {base} holds a space: "
                          "export to a folder without one, or give --root")
    # first the clips' names, from what verify read (every refusal before anything is written), then the
    # videos, one member at a time
    split_of = {shard["file"]: shard["split"] for shard in manifest["shards"]}
    plan: dict[tuple[str, str], str] = {}           # (shard file, sample key) -> path under out/videos
    lists: dict[str, list[tuple[str, int, str]]] = defaultdict(list)
    named: dict[str, str] = {}
    for where, sample in seen.items():
        meta = sample["meta"]
        rel = _listed_path(meta["path"], fmt)
        if named.setdefault(rel, meta["path"]) != meta["path"]:
            raise ShardError(f"clips {named[rel]!r} and {meta['path']!r} would both be {rel!r} in a {fmt} list "
                             "(spaces become _); rename one of them")
        plan[where] = rel
        lists[split_of[where[0]]].append((f"videos/{rel}", int(meta["label_index"]), meta["label"]))
    for file in split_of:
        with tarfile.open(folder / file) as tar:
            for member in tar:
                where = (file, _sample_key(member.name))
                if member.name.endswith(".mp4") and where in plan:
                    _extract(tar, member, out / "videos" / plan[where], seen[where].get("sha256"))
    # the videos an earlier export left that these lists do not name (a glob of videos/ would mix two sets):
    # only those it recorded as its own, never a file privvid did not write there
    videos = out / "videos"
    record = out / EXPORT_RECORD
    try:
        earlier = json.loads(record.read_text(encoding="utf-8")).get("videos", []) if record.is_file() else []
    except (OSError, ValueError, AttributeError):
        earlier = []
    keep = set(plan.values())
    old_videos = [videos / rel for rel in sorted({str(r) for r in earlier} - keep)
                  if _safe_rel(rel) and (videos / rel).is_file()]
    for path in old_videos:
        path.unlink()
        for folder_left in path.parents:   # the class folders it leaves empty
            if folder_left == videos or not folder_left.is_relative_to(videos) or any(folder_left.iterdir()):
                break
            folder_left.rmdir()
    written = []
    for split, items in lists.items():
        items.sort()
        if fmt == "mmaction":
            written.append(write_text_atomic(out / f"{split}.txt", "".join(f"{p} {i}\n" for p, i, _ in items)))
        elif fmt == "videomae":
            body = "".join(f"{(base / p).as_posix()} {i}\n" for p, i, _ in items)
            written.append(write_text_atomic(out / f"{split}.csv", body))
        else:
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            writer.writerow(["path", "label", "class"])
            writer.writerows(items)
            written.append(write_text_atomic(out / f"{split}.csv", buffer.getvalue()))
    if fmt == "videomae":
        for wanted, fallback in (("val", "test"), ("test", "val")):
            if wanted not in lists and fallback in lists:
                written.append(write_text_atomic(out / f"{wanted}.csv", (out / f"{fallback}.csv").read_text()))
    write_text_atomic(out / "classes.txt", "".join(f"{c}\n" for c in manifest["classes"]))
    write_text_atomic(record, json.dumps({"format": fmt, "shards": str(folder), "videos": sorted(keep)}, indent=1))
    # a list an earlier export left for a split this one does not have would put its clips in two splits
    suffix = ".txt" if fmt == "mmaction" else ".csv"
    lists_here = [out / f"{split}{suffix}" for split in ("train", "val", "test")]
    stale = [path for path in lists_here if path not in written and path.is_file()]
    for path in stale:
        path.unlink()
    warnings = []
    if fmt == "videomae" and not {"val", "test"} & lists.keys():
        warnings.append("no val or test split: VideoMAE's fine-tuning reads val.csv and test.csv as well as "
                        "train.csv; build the shards with --val (or a split tree / --split-from) for them")
    return {"format": fmt, "lists": [p.name for p in written], "clips": sum(len(v) for v in lists.values()),
            "warnings": warnings,
            "videos": str(out / "videos"), "removed": [p.name for p in stale],
            "removed_videos": [p.relative_to(videos).as_posix() for p in old_videos]}
