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


def check_out_file(path: str | os.PathLike[str], flag: str) -> None:
    """Refuse, before any work, an output file that could not be written where it is asked for: a
    folder of that name, or a file standing where one of its folders would be made."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; name a file")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(f"{flag} {path}: {parent} is a file, not a folder")
            break


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        tmp.write_bytes(data)
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
