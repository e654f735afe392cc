"""Find the clips of a dataset: one video, a frame folder, a folder of videos, or a class-per-folder tree."""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path

from privvid.errors import BadInput
from privvid.io.layout import STATE_DIR, linked_inside
from privvid.io.video import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, list_frame_files

# the longest output name privvid writes is "<stem>.params.npz"; file systems allow 255 bytes a name
_LONGEST_SUFFIX = len(".params.npz")
MAX_NAME_BYTES = 255 - _LONGEST_SUFFIX


@dataclass(frozen=True)
class ClipSource:
    """One input clip and where its outputs go, relative to the output root."""

    path: Path           # video file or frame folder
    relpath: str         # output stem relative to the output root, POSIX style, without suffix
    input_rel: str = ""  # the input's path relative to the input root (POSIX), for provenance

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
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # inputs privvid will not read, and why
    renamed: list[tuple[str, str]] = field(default_factory=list)   # (input, output stem) given a unique name


def _bad_name(name: str) -> str | None:
    """Why a file name cannot be a clip (dataset lists are one path per line), or None."""
    bad = [c for c in name if ord(c) < 32 or ord(c) == 127]
    if bad:
        what = "a newline" if "\n" in bad or "\r" in bad else "a control character"
        return f"its name holds {what}, which dataset lists and exports cannot hold; rename it"
    return None


def _refuse_bad_name(path: Path) -> None:
    """A clip given alone as IN whose name a folder walk would skip: the same reason, as the error."""
    why = _bad_name(path.name)
    if why:
        raise BadInput(f"input {path.name!r}: {why}")


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder")):
        if test(mode):
            return name
    return "not a regular file"


def _is_frame_folder(folder: Path, ignored: list[Path] | None = None) -> bool:
    """A folder of image files (and no sub-folders or videos): one clip. Other regular files in it (a stray
    ``notes.txt``) do not stop it being one; they are listed in ``ignored``."""
    try:
        entries = [p for p in folder.iterdir() if not p.name.startswith(".")]
    except OSError:
        return False
    images: list[Path] = []
    others: list[Path] = []
    for p in entries:
        try:
            mode = p.stat().st_mode
        except OSError:  # a dangling symlink or a link loop: not a frame; the folder is still a clip
            others.append(p)
            continue
        if stat.S_ISDIR(mode) or p.suffix.lower() in VIDEO_EXTENSIONS:
            return False
        (images if stat.S_ISREG(mode) and p.suffix.lower() in IMAGE_EXTENSIONS else others).append(p)
    if not images:
        return False
    if ignored is not None:
        ignored.extend(sorted(others))
    return True


def _walk(root: Path, found: list[Path], ignored: list[Path], skipped: list[tuple[Path, str]],
          exclude: Path | None = None) -> None:
    """Every video file and frame folder under ``root``, following symlinked folders (Kinetics trees are
    often symlink farms) but never into a folder twice (a link back up the tree): a link to a folder of the
    tree is not followed (that folder is read under its own name, wherever the link lies), one to a folder
    outside it is, once. ``exclude`` (the output folder, resolved) is never walked, even through a link."""
    in_tree = root.resolve()
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        here = Path(dirpath)
        if exclude is not None:
            real = here.resolve()
            if real == exclude or exclude in real.parents:
                skipped.append((here, "the output folder (reached through a link): never read as input"))
                dirnames[:] = []
                continue
        try:
            info = here.stat()
        except OSError as exc:
            skipped.append((here, f"cannot read the folder: {exc.strerror or exc}"))
            dirnames[:] = []
            continue
        if (info.st_dev, info.st_ino) in seen:
            skipped.append((here, "a link to a folder already searched (a symlink loop?)"))
            dirnames[:] = []
            continue
        seen.add((info.st_dev, info.st_ino))
        keep = []
        for d in sorted(dirnames, key=lambda name: ((here / name).is_symlink(), name)):
            if d.startswith(".") or d == STATE_DIR:
                continue
            if (reason := _bad_name(d)) is not None:
                skipped.append((here / d, reason))
                continue
            if linked_inside(here / d, in_tree):
                skipped.append((here / d, "a link to a folder already searched (read under its own name)"))
                continue
            if _is_frame_folder(here / d, ignored):
                found.append(here / d)
            else:
                keep.append(d)
        dirnames[:] = keep
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = here / name
            if path.suffix.lower() not in VIDEO_EXTENSIONS:
                ignored.append(path)
                continue
            if (reason := _bad_name(name)) is not None:
                skipped.append((path, reason))
                continue
            try:
                mode = path.stat().st_mode
            except OSError as exc:
                skipped.append((path, f"cannot be read: {exc.strerror or exc} (a broken symlink?)"))
                continue
            if not stat.S_ISREG(mode):
                skipped.append((path, f"{_kind(mode)}, not a regular file: only regular files are read"))
                continue
            found.append(path)


def _once(root: Path, found: list[Path], skipped: list[tuple[Path, str]]) -> None:
    """One clip per video file: of the names a file is found under (links, hard links), the one that is no
    link is kept, else the first by path; the others are skipped (the same video in two classes or splits)."""
    names: dict[tuple[int, int], list[Path]] = {}
    for path in found:
        try:
            info = path.stat()
        except OSError:   # gone since the walk: reading it will say so, for that clip alone
            continue
        if stat.S_ISREG(info.st_mode) and info.st_ino:   # (a file system that gives no inodes says 0 for all)
            names.setdefault((info.st_dev, info.st_ino), []).append(path)
    drop = set()
    for paths in names.values():
        if len(paths) > 1:
            keep = min(paths, key=lambda p: (p.is_symlink(), p.relative_to(root).as_posix()))
            for other in paths:
                if other != keep:
                    drop.add(other)
                    skipped.append((other, f"the same file as {keep.relative_to(root).as_posix()} (read once)"))
    found[:] = [p for p in found if p not in drop]


def _short(stem: str, rel: str) -> str:
    """``stem`` with its last component cut to fit a file name, made unique by a hash of the input path."""
    head, _, name = stem.rpartition("/")
    tag = "~" + hashlib.sha1(rel.encode()).hexdigest()[:8]
    raw = name.encode()
    if len(raw) > MAX_NAME_BYTES:
        name = raw[: MAX_NAME_BYTES - len(tag) - 8].decode("utf-8", "ignore")
    return f"{head}/{name}{tag}" if head else f"{name}{tag}"


def _unique_names(items: list[tuple[Path, str, str]]) -> tuple[list[ClipSource], list[tuple[str, str]]]:
    """(path, input relpath, stem) -> clips with output stems unique even on a case-insensitive file
    system, and stable (a clip's name depends only on the names beside it, never on processing order):
    stems that collide keep their extension (``a.avi``, ``a.mp4``); what still collides (``x.avi`` beside
    ``x.mp4`` and ``x.avi.mp4``), or is too long for a file name, gets a hash of its input path."""
    counts: dict[str, int] = {}
    for _, _, stem in items:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    first = [(path, rel, rel if counts[stem.casefold()] > 1 and not path.is_dir() else stem)
             for path, rel, stem in items]
    counts = {}
    for _, _, name in first:
        counts[name.casefold()] = counts.get(name.casefold(), 0) + 1
    clips, renamed = [], []
    for (path, rel, name), (_, _, stem) in zip(first, items):
        long = len(name.rpartition("/")[2].encode()) > MAX_NAME_BYTES
        if counts[name.casefold()] > 1 or long:
            name = _short(name, rel)
        if name != stem:  # kept its extension or got a hash: the user is told
            renamed.append((rel, name))
        clips.append(ClipSource(path, name, rel))
    if len({c.relpath.casefold() for c in clips}) != len(clips):  # hash collision: cannot happen in practice
        raise BadInput("two inputs map to the same output name even after renaming; rename one of them")
    clips.sort(key=lambda c: c.relpath)
    return clips, renamed


def discover(root: str | os.PathLike[str], exclude: str | os.PathLike[str] | None = None,
             once: bool = False) -> Discovery:
    """List the clips under ``root`` in a stable order.

    - a file: that clip (whatever its extension: reading it decides whether it is a video); it must be a
      regular file (a FIFO would block the run)
    - a folder of images: one frame-folder clip
    - otherwise every video file (by extension) and every image folder below it, mirrored by relative
      path; symlinked folders are followed (once each); hidden entries and privvid's state folder are
      skipped; what is not a regular file, or has a name lists cannot hold, is listed in ``skipped``.
    Output names replace the extension with nothing (the writer adds ``.mp4``); inputs that would
    collide keep their extensions or get a short hash (``renamed``). ``once`` (anonymize): a video file found
    under several names in a folder (links, hard links) is one clip (:func:`_once`); a curation tree keeps
    every name (a clip linked into a second class is a clip of that class too).
    """
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"input not found: {root}")
    mode = root.stat().st_mode
    if not stat.S_ISDIR(mode) and root.suffix.lower() == ".csv":
        return _list_discovery(root)
    if not stat.S_ISDIR(mode):
        if not stat.S_ISREG(mode):
            raise BadInput(f"input {root} is {_kind(mode)}: privvid reads regular files and folders only")
        _refuse_bad_name(root)
        clips, renamed = _unique_names([(root, root.name, root.stem)])
        return Discovery(clips, [], [], renamed)
    ignored: list[Path] = []
    if _is_frame_folder(root, ignored):
        _refuse_bad_name(root)
        return Discovery([ClipSource(root, root.name, root.name)], ignored)

    found: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    _walk(root, found, ignored, skipped, Path(exclude).resolve() if exclude is not None else None)
    if once:
        _once(root, found, skipped)
    items = []
    for path in found:
        rel = path.relative_to(root).as_posix()
        items.append((path, rel, rel if path.is_dir() else rel[: -len(path.suffix)]))
    clips, renamed = _unique_names(items)
    return Discovery(clips, ignored, skipped, renamed)


def _list_discovery(listing: Path) -> Discovery:
    """A CSV list with ``label`` and ``path`` columns (``privvid curate``'s subset.csv): each row's video,
    written as ``<label>/<key>`` (the key column, else the file's stem), so OUT is a class-per-folder tree.
    Relative paths resolve against the list's folder; rows without a file, or whose file is missing, are
    skipped with the reason."""
    import csv

    try:
        with open(listing, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or ())
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise BadInput(f"list {listing} cannot be read: {exc}") from None
    if not {"label", "path"} <= columns:
        raise BadInput(f"a CSV given as IN is a list of clips with label and path columns (privvid curate's "
                       f"subset.csv); {listing.name} has {', '.join(sorted(columns)) or 'no header'}")
    items: list[tuple[Path, str, str]] = []
    skipped: list[tuple[Path, str]] = []
    given: dict[Path, str] = {}
    for number, row in enumerate(rows, 2):
        label, text = (row.get("label") or "").strip(), (row.get("path") or "").strip()
        video = Path(text) if text else None
        if video is not None and not video.is_absolute():
            video = listing.parent / video
        key = (row.get("key") or "").strip() or (video.stem if video is not None else "")
        # a folder source's key is the clip's path in its tree, <label>/.../<stem>: written under the label once
        parts = key.split("/")
        if len(parts) > 1 and parts[0] == label:
            parts = parts[1:]
        where = Path(f"{listing.name}:{number}")
        if video is None:
            skipped.append((where, f"{label}/{key}: no video file (an annotation row only)"))
        elif not label or not key or "/" in label or any(part in ("", ".", "..") or "\\" in part
                                                         for part in (label, *parts)):
            skipped.append((where, f"label {label!r} / key {key!r} cannot name a class folder and a file"))
        elif why := _bad_name(label) or _bad_name(key):
            skipped.append((where, why))
        elif not video.is_file():
            skipped.append((video, f"no such file (listed in {listing.name} line {number})"))
        else:
            name = "/".join((label, *parts))
            items.append((video, name, name))
            given[video] = text
    # an absolute path is named relative to the folder all the listed absolute paths share (a class tree's
    # root, as for a folder given as IN), else by its file name
    absolute = [os.path.normpath(video) for video, text in given.items() if Path(text).is_absolute()]
    common = Path(os.path.commonpath([os.path.dirname(p) for p in absolute])) if absolute else None
    for video, text in given.items():
        given[video] = _listed_input(text, video, common)
    clips, renamed = _unique_names(items)
    # provenance: each clip's input as the list names it
    return Discovery([replace(c, input_rel=given[c.path]) for c in clips], [], skipped, renamed)


def _listed_input(text: str, video: Path, common: Path | None) -> str:
    """A listed video's path for provenance: as the list names it when that is relative, else relative to
    ``common`` (the folder the list's absolute paths share) unless that is the file system's root, else its
    file name alone (an absolute path names the machine and its users; ``--record-paths`` records it)."""
    if not Path(text).is_absolute():
        return Path(text).as_posix()
    if common is None or common == Path(common.anchor):
        return video.name
    return Path(os.path.normpath(video)).relative_to(common).as_posix()


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
