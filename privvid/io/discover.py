"""Find the clips of a dataset: one video, a frame folder, a folder of videos, or a class-per-folder tree."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from privvid.io.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_frame_files

STATE_DIR = ".privvid"


@dataclass(frozen=True)
class ClipSource:
    """One input clip and where its outputs go, relative to the output root."""

    path: Path           # video file or frame folder
    relpath: str         # output stem relative to the output root, POSIX style, without suffix

    @property
    def is_frame_folder(self) -> bool:
        return self.path.is_dir()

    @property
    def label(self) -> str | None:
        """Class name for class-per-folder trees (the first path component), else None."""
        parts = self.relpath.split("/")
        return parts[0] if len(parts) > 1 else None


@dataclass(frozen=True)
class Discovery:
    clips: list[ClipSource]
    ignored: list[Path]  # files that are neither videos nor frames


def _is_frame_folder(folder: Path) -> bool:
    entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    return bool(entries) and all(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in entries)


def discover(root: str | os.PathLike[str]) -> Discovery:
    """List the clips under ``root`` in a stable order.

    - a file: that clip (whatever its extension: reading it decides whether it is a video)
    - a folder holding only images: one frame-folder clip
    - otherwise every video file (by extension) and every image-only folder below it,
      mirrored by relative path; hidden entries and privvid's state folder are skipped.
    Output names replace the extension with nothing (the writer adds ``.mp4``); two inputs
    that would collide (``a.avi`` and ``a.mp4``) keep their extensions in the name.
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"input not found: {root}")
    if root.is_file():
        return Discovery([ClipSource(root, root.stem)], [])
    if _is_frame_folder(root):
        return Discovery([ClipSource(root, root.name)], [])

    found: list[Path] = []
    ignored: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != STATE_DIR)
        frame_dirs = [d for d in dirnames if _is_frame_folder(here / d)]
        found.extend(here / d for d in frame_dirs)
        dirnames[:] = [d for d in dirnames if d not in frame_dirs]
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.suffix.lower() in VIDEO_EXTENSIONS:
                found.append(path)
            else:
                ignored.append(path)

    stems: dict[str, int] = {}
    rels = []
    for path in found:
        rel = path.relative_to(root).as_posix()
        stem = rel if path.is_dir() else rel[: -len(path.suffix)]
        rels.append((path, rel, stem))
        stems[stem] = stems.get(stem, 0) + 1
    clips = [ClipSource(path, rel if stems[stem] > 1 else stem) for path, rel, stem in rels]
    clips.sort(key=lambda c: c.relpath)
    return Discovery(clips, ignored)


def content_hash(path: Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file, or of a frame folder (names and bytes of every frame in order)."""
    digest = hashlib.sha256()
    files = list_frame_files(path) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.name.encode() + b"\0")
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()
