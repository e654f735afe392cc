"""The anonymised-dataset format, owned here and nowhere else.

``privvid anonymize IN OUT`` writes, for each clip, ``OUT/<rel>.mp4`` and its sidecar
``OUT/<rel>.json`` (plus ``<rel>.masks.npz`` / ``<rel>.params.npz`` when asked), and keeps its run
state in ``OUT/.privvid/``. ``<rel>`` mirrors the input's relative path, which fixes the layout:

- ``<class>/<clip>`` (Kinetics): the class is the first folder, at any depth below it
  (``arm_wrestling/part1/c`` is class ``arm_wrestling``);
- ``<split>/<class>/<clip>`` where the first folder is ``train``, ``val``, ``validation`` or ``test``:
  split, then class;
- ``<clip>`` directly under OUT: no class (:data:`NO_CLASS`).

A sidecar is a :class:`Sidecar`: a JSON object with ``schema`` (:data:`SCHEMA_VERSION`); sidecars
written before the field existed (privvid 0.1 without ``schema``) read as version 1; a newer schema
is refused with a message. :func:`scan` is the one reader every consumer (qa, shards, engine) uses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from privvid.errors import BadInput

STATE_DIR = ".privvid"
SCHEMA_VERSION = 2
VIDEO_SUFFIX = ".mp4"
SIDECAR_SUFFIX = ".json"
OUTPUT_SUFFIXES = {"video": ".mp4", "sidecar": ".json", "masks": ".masks.npz", "params": ".params.npz"}
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test"}
NO_CLASS = ""


def output_paths(out_root: Path, relpath: str) -> dict[str, Path]:
    """Where the outputs of the clip ``relpath`` go under ``out_root``."""
    base = Path(out_root) / relpath
    return {kind: base.with_name(base.name + suffix) for kind, suffix in OUTPUT_SUFFIXES.items()}


def layout_of(rel: str) -> tuple[str | None, str]:
    """``rel`` (POSIX, without suffix) -> (split or None, class or NO_CLASS)."""
    parts = rel.split("/")
    if len(parts) >= 3 and parts[0].lower() in SPLIT_NAMES:
        return SPLIT_NAMES[parts[0].lower()], parts[1]
    return None, parts[0] if len(parts) > 1 else NO_CLASS


class SidecarError(BadInput):
    """A sidecar that privvid cannot read (not JSON, not an object, a newer schema)."""


@dataclass(frozen=True)
class Sidecar:
    """A clip's provenance record as read back (the full JSON stays in ``raw``)."""

    schema: int
    privvid_version: str
    mode: str
    input: dict[str, Any]
    output: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.output.get("frames") or 0)

    @property
    def coverage_mean(self) -> float | None:
        value = (self.raw.get("coverage") or {}).get("mean")
        return float(value) if value is not None else None

    @classmethod
    def from_dict(cls, doc: Any, where: str = "sidecar") -> "Sidecar":
        if not isinstance(doc, dict):
            raise SidecarError(f"{where} is not a JSON object")
        if "privvid_version" not in doc:
            raise SidecarError(f"{where} was not written by privvid anonymize (no privvid_version)")
        try:
            schema = int(doc.get("schema", 1))
        except (TypeError, ValueError):
            raise SidecarError(f"{where}: schema must be a whole number, got {doc.get('schema')!r}") from None
        for key in ("input", "output"):
            if not isinstance(doc.get(key) or {}, dict):
                raise SidecarError(f"{where}: {key} must be a JSON object, got {type(doc[key]).__name__}")
        if schema > SCHEMA_VERSION:
            raise SidecarError(f"{where} has schema {schema}; this privvid reads up to {SCHEMA_VERSION}: "
                               "upgrade privvid")
        return cls(schema, str(doc["privvid_version"]), str(doc.get("mode", "?")), dict(doc.get("input") or {}),
                   dict(doc.get("output") or {}), doc)

    @classmethod
    def read(cls, path: Path) -> "Sidecar":
        try:
            doc = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise SidecarError(f"sidecar {path} is not valid JSON: {exc}") from None
        except OSError as exc:
            raise SidecarError(f"sidecar {path} cannot be read: {exc.strerror or exc}") from None
        return cls.from_dict(doc, f"sidecar {path}")


@dataclass(frozen=True)
class OutputClip:
    """One finished clip of an anonymised dataset."""

    rel: str                     # relative path without suffix, POSIX
    video: Path
    sidecar: Sidecar
    label: str                   # class (NO_CLASS for clips directly under the root)
    split: str | None            # from a split/class/clip tree, else None

    @property
    def video_rel(self) -> str:
        return self.rel + VIDEO_SUFFIX


def linked_inside(path: Path, root: Path) -> bool:
    """``path`` is a link to a folder of the tree at ``root`` (resolved): that folder is read under its own
    name, so the link is not followed."""
    if not path.is_symlink():
        return False
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):   # a dangling link or a loop of links
        return False
    return target == root or root in target.parents


def _walk(root: Path) -> Iterator[Path]:
    """Every file under ``root``, following linked folders but never into a folder twice (a link back up the
    tree would loop, one to a folder already read would count its clips twice): a link to a folder of the
    tree is not followed (that folder is read under its own name), one to a folder outside it is, once."""
    inside = Path(root).resolve()
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        try:
            info = here.stat()
        except OSError:
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            dirnames[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != STATE_DIR
                             and not linked_inside(here / d, inside))
        for name in sorted(filenames):
            if not name.startswith("."):
                yield here / name


def scan(root: str | os.PathLike[str], strict: bool = True) -> list[OutputClip]:
    """Every finished clip under ``root`` (a video with its sidecar), sorted by ``rel``. A sidecar that
    cannot be read is an error (``strict``) or the clip is left out; a video without a sidecar is not a
    finished output and is left out."""
    return read_tree(root, strict)[0]


Damaged = tuple[str, Path, str, dict[str, Any]]   # (rel, video, why, sidecar): a clip written in part


def read_tree(root: str | os.PathLike[str], strict: bool = True) -> tuple[list[OutputClip], list[Damaged]]:
    """:func:`scan`'s finished clips, and, in one walk with them (``strict`` False), those privvid anonymize
    wrote only in part: ``(rel, video, why, sidecar)`` for an ``.mp4`` whose sidecar cannot be read
    (``sidecar`` empty) and for a sidecar whose ``.mp4`` is gone (``video`` is then the path it would have).
    A JSON file that is no privvid sidecar is not a clip."""
    root = Path(root)
    if not root.is_dir():
        raise BadInput(f"anonymised dataset not found: {root}")
    clips: list[OutputClip] = []
    damaged: list[Damaged] = []
    for path in _walk(root):
        if path.name.endswith(VIDEO_SUFFIX):
            sidecar_path = path.with_name(path.name[: -len(VIDEO_SUFFIX)] + SIDECAR_SUFFIX)
            if not sidecar_path.is_file():
                continue
            rel = path.relative_to(root).as_posix()[: -len(VIDEO_SUFFIX)]
            try:
                sidecar = Sidecar.read(sidecar_path)
            except SidecarError as exc:
                if strict:
                    raise
                damaged.append((rel, path, str(exc), {}))
                continue
            split, label = layout_of(rel)
            clips.append(OutputClip(rel, path, sidecar, label, split))
        elif path.name.endswith(SIDECAR_SUFFIX) and not strict:
            video = path.with_name(path.name[: -len(SIDECAR_SUFFIX)] + VIDEO_SUFFIX)
            if video.exists():
                continue
            try:
                side_doc = Sidecar.read(path)
            except SidecarError:
                continue   # some other JSON file (a list, a manifest)
            if side_doc.input:
                damaged.append((path.relative_to(root).as_posix()[: -len(SIDECAR_SUFFIX)], video,
                                f"video missing: sidecar {path.name} is there, {video.name} is not", side_doc.raw))
    clips.sort(key=lambda c: c.rel)
    return clips, damaged


def all_videos(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Every video file under ``root`` (any extension privvid reads), finished outputs or not."""
    from privvid.io.video import VIDEO_EXTENSIONS

    for path in _walk(Path(root)):
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            yield path
