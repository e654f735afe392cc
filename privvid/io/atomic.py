"""Atomic file writes: write a hidden temporary sibling, then rename it into place.

A reader (or a resumed run) sees either the old file or the complete new one, never a
half-written file, even if the process is killed mid-write.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from privvid.errors import ConfigError
from privvid.io.video import temp_path


def file_in_the_way(path: str | os.PathLike[str]) -> Path | None:
    """The file standing where one of ``path``'s folders would be made, or None."""
    above = next((p for p in Path(path).parents if p.exists()), None)
    return above if above is not None and not above.is_dir() else None


def check_out_file(path: str | os.PathLike[str], flag: str) -> None:
    """Refuse, before any work, an output file that could not be written where it is asked for: a
    folder of that name, or a file standing where one of its folders would be made."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name a file")
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise ConfigError(f"{flag} {path}: {blocking} is a file, not a folder")


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    """``data`` to ``path`` through a hidden temporary sibling; a write the system refuses is named by
    ``path`` (not by the sibling), and leaves nothing behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        try:
            with open(tmp, "wb") as handle:
                handle.write(data)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def savez_atomic(path: str | os.PathLike[str], compressed: bool = False, **arrays: Any) -> Path:
    """``numpy.savez`` (or ``savez_compressed``) to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, ".npz")
    try:
        (np.savez_compressed if compressed else np.savez)(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
