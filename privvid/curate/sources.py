"""Where curation gets its classes and videos from.

Three kinds of SOURCE:

- a class-per-folder tree (Kinetics layout ``ROOT/<class>/<video>``; a ``train/``-style split
  level above the classes is not assumed: the first path component is the class);
- an annotation CSV with the Kinetics columns ``label, youtube_id, time_start, time_end, split``,
  with ``video_root`` naming where the downloaded clips are (``<youtube_id>_<start>_<end>.<ext>``
  anywhere below it). Without ``video_root`` only the video counts per class are known;
- a list of class names, one per line (``--labels-only``): no videos at all.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

from privvid.errors import PrivvidError
from privvid.io.discover import discover
from privvid.io.video import VIDEO_EXTENSIONS


class CurationError(PrivvidError):
    """The curation input or its options cannot give a selection."""


@dataclass(frozen=True)
class VideoRef:
    """One video of a class: a readable file, or only an annotation row when no file was found."""

    label: str
    path: Path | None
    key: str                       # stable id: relative path, or youtube_id_start_end
    row: dict[str, str] | None = None


@dataclass
class CurationSource:
    kind: str                                  # tree | csv | labels
    origin: str                                # what the user passed
    classes: dict[str, list[VideoRef]]         # label -> videos, labels sorted
    missing: list[str] = field(default_factory=list)   # annotation rows with no file (csv)
    counts: dict[str, int] = field(default_factory=dict)  # videos per class (annotation counts for csv)
    unclassed: list[str] = field(default_factory=list)   # tree: videos directly under the root (no class)

    @property
    def labels(self) -> list[str]:
        return list(self.classes)

    def count(self, label: str) -> int:
        return self.counts.get(label, len(self.classes[label]))


def read_class_names(path: str | os.PathLike[str], what: str) -> list[tuple[int, str]]:
    """(line number, name) of each class name in a one-per-line list (``what``: how errors name the file);
    blank lines and ``#`` comments are ignored; a file that cannot be read or names none is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CurationError(f"cannot read {what} {path}: {exc}") from None
    names = [(number, line.strip()) for number, line in enumerate(text.splitlines(), 1)
             if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise CurationError(f"{what} {path} holds no class names")
    return names


def load_labels(path: str | os.PathLike[str]) -> CurationSource:
    """One class name per line; blank lines and ``#`` comments are ignored; duplicates are errors."""
    path = Path(path)
    if not path.is_file():
        raise CurationError(f"label list not found: {path}")
    labels: list[str] = []
    for number, name in read_class_names(path, "label list"):
        if name in labels:
            raise CurationError(f"{path}:{number}: class {name!r} is listed twice")
        labels.append(name)
    return CurationSource("labels", str(path), {label: [] for label in sorted(labels)},
                          counts={label: 0 for label in labels})


def load_tree(root: str | os.PathLike[str]) -> CurationSource:
    """A class-per-folder tree. Every first-level folder is a class; an empty one is an error."""
    root = Path(root)
    if not root.is_dir():
        raise CurationError(f"source folder not found: {root}")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not class_dirs:
        raise CurationError(
            f"{root} has no class folders; expected ROOT/<class>/<video> (a Kinetics-style tree)"
        )
    classes: dict[str, list[VideoRef]] = {d.name: [] for d in class_dirs}
    unclassed = []
    for clip in discover(root).clips:
        label = clip.label
        if label is None:
            unclassed.append(Path(clip.path).name)   # a video directly under ROOT belongs to no class
            continue
        classes[label].append(VideoRef(label, clip.path, clip.relpath))
    empty = [label for label, videos in classes.items() if not videos]
    if empty:
        raise CurationError(
            f"{len(empty)} class folder(s) hold no videos: {', '.join(empty[:10])}"
            f"{' ...' if len(empty) > 10 else ''}; remove them or add videos"
        )
    return CurationSource("tree", str(root), classes, unclassed=unclassed)


_CSV_COLUMNS = ("label", "youtube_id", "time_start", "time_end")


def kinetics_stem(row: dict[str, str]) -> str:
    """``<youtube_id>_<start:06d>_<end:06d>``, the file name Kinetics downloaders use."""
    try:
        start, end = int(float(row["time_start"])), int(float(row["time_end"]))
    except ValueError:
        raise CurationError(f"bad time_start/time_end in row {row}") from None
    return f"{row['youtube_id']}_{start:06d}_{end:06d}"


def load_csv(path: str | os.PathLike[str], video_root: str | os.PathLike[str] | None = None,
             split: str | None = None) -> CurationSource:
    """A Kinetics annotation CSV, optionally resolved to files under ``video_root``."""
    path = Path(path)
    if not path.is_file():
        raise CurationError(f"annotation CSV not found: {path}")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [c.strip() for c in (reader.fieldnames or [])]
        missing_cols = [c for c in _CSV_COLUMNS if c not in header]
        if missing_cols:
            raise CurationError(
                f"{path} lacks column(s) {', '.join(missing_cols)}; expected "
                "label,youtube_id,time_start,time_end,split (the Kinetics annotation format)"
            )
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    if split is not None:
        rows = [row for row in rows if row.get("split") == split]
    if not rows:
        raise CurationError(f"{path} holds no annotation rows" + (f" for split {split!r}" if split else ""))

    index: dict[str, Path] = {}
    if video_root is not None:
        video_root = Path(video_root)
        if not video_root.is_dir():
            raise CurationError(f"video root not found: {video_root}")
        for dirpath, dirnames, filenames in os.walk(video_root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                stem, ext = os.path.splitext(name)
                if ext.lower() in VIDEO_EXTENSIONS:
                    index.setdefault(stem, Path(dirpath) / name)

    classes: dict[str, list[VideoRef]] = {}
    counts: dict[str, int] = {}
    missing: list[str] = []
    for row in rows:
        label = row["label"]
        if not label:
            raise CurationError(f"{path}: a row has an empty label: {row}")
        stem = kinetics_stem(row)
        counts[label] = counts.get(label, 0) + 1
        classes.setdefault(label, [])
        if video_root is None:
            classes[label].append(VideoRef(label, None, stem, row))
            continue
        file = index.get(stem) or index.get(row["youtube_id"])
        if file is None:
            missing.append(stem)
            continue
        classes[label].append(VideoRef(label, file, stem, row))
    if video_root is not None:
        empty = sorted(label for label, videos in classes.items() if not videos)
        if empty:
            raise CurationError(
                f"{len(empty)} class(es) have no video under {video_root}: {', '.join(empty[:10])}"
                f"{' ...' if len(empty) > 10 else ''}"
            )
        counts = {label: len(videos) for label, videos in classes.items()}
    ordered = {label: classes[label] for label in sorted(classes)}
    return CurationSource("csv", str(path), ordered, missing=missing, counts=counts)


def load_source(source: str | os.PathLike[str] | None, *, video_root: str | os.PathLike[str] | None = None,
                labels_only: str | os.PathLike[str] | None = None, split: str | None = None) -> CurationSource:
    """Dispatch on what the user gave: ``labels_only`` file, a CSV, or a folder tree."""
    if labels_only is not None:
        if source is not None:
            raise CurationError("give either SOURCE or --labels-only, not both")
        return load_labels(labels_only)
    if source is None:
        raise CurationError("give a SOURCE (class-per-folder tree or annotation CSV) or --labels-only FILE")
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return load_csv(source, video_root, split)
    if video_root is not None:
        raise CurationError("--video-root only applies to an annotation CSV SOURCE")
    if source.is_file():
        raise CurationError(f"{source} is a file but not a .csv annotation file")
    return load_tree(source)
