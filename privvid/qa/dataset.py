"""Read an anonymised dataset written by ``privvid anonymize``: every ``<rel>.mp4`` with its
``<rel>.json`` sidecar (whose ``input.path`` is the original clip)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privvid.errors import PrivvidError

STATE_DIR = ".privvid"
FLAT_CLASS = "(all)"   # class of clips directly under the root (flat trees)


class QAError(PrivvidError):
    """A QA input is missing or malformed."""


@dataclass(frozen=True)
class AnonClip:
    rel: str                  # relative path without extension, POSIX
    label: str                # first path component of rel, or FLAT_CLASS
    video: Path               # the anonymised mp4
    sidecar: dict[str, Any]

    @property
    def original(self) -> Path | None:
        path = (self.sidecar.get("input") or {}).get("path")
        return Path(path) if path else None

    @property
    def mode(self) -> str:
        return str(self.sidecar.get("mode", "?"))

    @property
    def removal_detector(self) -> str | None:
        det = (self.sidecar.get("backends") or {}).get("detector")
        # info() of a bare backend ({"name": ...}) or of the detection chain
        # ({"backend": ..., "detector": {"name": ...}, "tracker": ...})
        while isinstance(det, dict):
            name = det.get("name") or det.get("backend")
            if isinstance(name, str):
                return name
            det = det.get("detector")
        return det if isinstance(det, str) else None


def class_of(rel: str) -> str:
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else FLAT_CLASS


def scan(root: str | os.PathLike[str]) -> list[AnonClip]:
    """All clips with a readable sidecar, sorted by relative path. An mp4 without a sidecar is
    not a finished privvid output and is left out; a sidecar that is not JSON is an error."""
    root = Path(root)
    if not root.is_dir():
        raise QAError(f"anonymised dataset not found: {root}")
    clips = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != STATE_DIR)
        for name in sorted(filenames):
            if name.startswith(".") or not name.endswith(".mp4"):
                continue
            video = Path(dirpath) / name
            sidecar_path = video.with_suffix(".json")
            if not sidecar_path.is_file():
                continue
            try:
                sidecar = json.loads(sidecar_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise QAError(f"sidecar {sidecar_path} is not valid JSON: {exc}") from None
            rel = video.relative_to(root).as_posix()[: -len(".mp4")]
            clips.append(AnonClip(rel, class_of(rel), video, sidecar))
    clips.sort(key=lambda c: c.rel)
    if not clips:
        raise QAError(f"{root} holds no anonymised clips (<name>.mp4 with a <name>.json sidecar); "
                      "is it an output folder of privvid anonymize?")
    return clips
