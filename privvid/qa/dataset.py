"""Read an anonymised dataset written by ``privvid anonymize``: every ``<rel>.mp4`` with its
``<rel>.json`` sidecar (whose ``input.path`` is the original clip), or, for the audit, every video
file in it."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from privvid.errors import PrivvidError
from privvid.io import layout
from privvid.io.layout import VIDEO_SUFFIX as OUTPUT_SUFFIX, layout_of

FLAT_CLASS = "(all)"   # class of clips directly under the root (flat trees)


class QAError(PrivvidError):
    """A QA input is missing or malformed."""


@dataclass(frozen=True)
class AnonClip:
    rel: str                  # relative path without .mp4 (other videos keep their extension), POSIX
    label: str                # first path component of rel, or FLAT_CLASS
    video: Path               # the anonymised mp4 (or, scanning everything, any video file)
    sidecar: dict[str, Any]
    has_sidecar: bool = True  # False: no <rel>.json next to it, so privvid anonymize did not write it
    problem: str = ""         # written in part: its sidecar cannot be read (``sidecar`` then empty) or its video is gone

    @property
    def original(self) -> Path | None:
        return self.original_in(None)

    def original_in(self, originals: Path | None) -> Path | None:
        """The input clip: sidecars hold its path relative to the input root (``originals``, the IN
        given to anonymize); the absolute path only with --record-paths (or from older privvid)."""
        side = self.sidecar.get("input") or {}
        side = side if isinstance(side, dict) else {}
        path = side.get("path") if isinstance(side.get("path"), str) else None
        if originals is not None and Path(originals).suffix.lower() == ".csv" and Path(originals).is_file():
            # a list given to anonymize as IN: each clip's video is the row its output name came from
            return _listed_videos(Path(originals).resolve()).get(str(side.get("relpath") or self.rel))
        if originals is not None and path and not Path(path).is_absolute():
            originals = Path(originals)
            return originals if originals.is_file() else originals / path
        if isinstance(side.get("absolute_path"), str) and side["absolute_path"]:
            return Path(side["absolute_path"])
        return Path(path) if path and Path(path).is_absolute() else None

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
    """The class of a clip, as :mod:`privvid.io.layout` defines it (split/class/clip trees included)."""
    return layout_of(rel)[1] or FLAT_CLASS


def scan(root: str | os.PathLike[str], everything: bool = False) -> list[AnonClip]:
    """All clips with a readable sidecar, sorted by relative path, and those written in part (``problem``: a
    sidecar that cannot be read, or one whose video is gone), so that one damaged clip is named, not the end of
    the run. An mp4 without a sidecar is not a finished privvid output and is left out, unless
    ``everything``: then every video file (:data:`VIDEO_EXTENSIONS`) under ``root`` is a clip, those
    without a sidecar (``has_sidecar`` False; any extension but ``.mp4``) with an empty one.
    Hidden files and folders and the ``.privvid`` state folder are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise QAError(f"{root} is a file; give the folder privvid anonymize wrote" if root.is_file()
                      else f"anonymised dataset not found: {root}")
    finished, damaged = layout.read_tree(root, strict=False)
    clips = [AnonClip(c.rel, c.label or FLAT_CLASS, c.video, c.sidecar.raw) for c in finished]
    clips += [AnonClip(rel, class_of(rel), video, side, problem=why) for rel, video, why, side in damaged]
    if everything:
        known = {c.video for c in clips}
        for video in layout.all_videos(root):
            if video in known:
                continue
            # an mp4 keeps privvid's rel (no extension); another video keeps its extension, so
            # a.mp4 and a.avi side by side stay two clips
            rel = video.relative_to(root).as_posix()
            rel = rel[: -len(OUTPUT_SUFFIX)] if rel.endswith(OUTPUT_SUFFIX) else rel
            clips.append(AnonClip(rel, class_of(rel), video, {}, has_sidecar=False))
    clips.sort(key=lambda c: c.rel)
    if not clips:
        if everything:
            raise QAError(f"{root} holds no video files")
        raise QAError(f"{root} holds no anonymised clips (<name>.mp4 with a <name>.json sidecar); "
                      "is it an output folder of privvid anonymize?")
    return clips


@functools.lru_cache(maxsize=4)
def _listed_videos(listing: Path) -> dict[str, Path]:
    """A CSV list given to anonymize as IN: output name (``<label>/<key>``) -> the video it lists."""
    from privvid.io.discover import discover

    return {clip.relpath: clip.path for clip in discover(listing).clips}
