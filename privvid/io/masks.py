"""Streaming writer for ``<clip>.masks.npz``: a bool array ``masks`` (frames, height, width).

Frames are bit-packed into a temporary file while the clip streams, then copied into a
deflated ``.npz`` (loadable with ``numpy.load``) whose header carries the final frame count.
Memory stays at one frame; the result appears only on :meth:`commit` (atomic rename).
"""

from __future__ import annotations

import base64
import binascii
import os
import zipfile
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from privvid.io.video import temp_path


GRID = (32, 18)   # (columns, rows) of the coarse mask a sidecar records for each frame


def coarse_mask(mask: np.ndarray) -> str:
    """``mask`` on a :data:`GRID` of cells, a cell set where at least half of its pixels are: the cells
    row by row, bit-packed, base64 (96 characters)."""
    import cv2

    cells = cv2.resize(mask.astype(np.uint8) * 255, GRID, interpolation=cv2.INTER_AREA) >= 128
    return base64.b64encode(np.packbits(cells.ravel()).tobytes()).decode("ascii")


def read_coarse_mask(text: object) -> np.ndarray | None:
    """The (rows, columns) bool cells of :func:`coarse_mask`'s text; None for anything else (also text of
    another length: a grid of another size)."""
    if not isinstance(text, str):
        return None
    try:
        bits = np.unpackbits(np.frombuffer(base64.b64decode(text, validate=True), np.uint8))
    except (binascii.Error, ValueError):
        return None
    cols, rows = GRID
    return bits[:cols * rows].reshape(rows, cols).astype(bool) if bits.size == -(-cols * rows // 8) * 8 else None


class MaskWriter:
    def __init__(self, path: str | os.PathLike[str], height: int, width: int) -> None:
        self.path = Path(path)
        self.height, self.width = height, width
        self.frames = 0
        self._raw_path = temp_path(self.path, ".bits")
        self._raw = open(self._raw_path, "wb")

    def write(self, mask: np.ndarray) -> None:
        if mask.shape != (self.height, self.width):
            raise ValueError(f"mask must be ({self.height}, {self.width}), got {mask.shape}")
        self._raw.write(np.packbits(mask.astype(bool, copy=False), axis=None).tobytes())
        self.frames += 1

    def commit(self) -> Path:
        self._raw.close()
        per_frame = (self.height * self.width + 7) // 8
        tmp = temp_path(self.path)
        header = {"descr": "|b1", "fortran_order": False, "shape": (self.frames, self.height, self.width)}
        try:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
                with zf.open("masks.npy", "w", force_zip64=True) as entry, open(self._raw_path, "rb") as raw:
                    npformat.write_array_header_1_0(entry, header)
                    for _ in range(self.frames):
                        bits = np.frombuffer(raw.read(per_frame), dtype=np.uint8)
                        frame = np.unpackbits(bits, count=self.height * self.width).astype(bool)
                        entry.write(frame.tobytes())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
            self._raw_path.unlink(missing_ok=True)
        return self.path

    def abort(self) -> None:
        self._raw.close()
        self._raw_path.unlink(missing_ok=True)
