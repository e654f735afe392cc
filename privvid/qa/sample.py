"""``privvid qa sample``: a seeded, class-balanced sample of anonymised clips for manual review.

PPMA reviewed 4 random clips per class, Mask2Mesh 5. For each sampled clip the QA folder gets
a few frames of the original and of the anonymised video at the same relative times (JPEG),
so the review page can show them side by side without decoding video in the browser.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from privvid.errors import BadInput
from privvid.io.video import probe, read_frames
from privvid.qa.dataset import AnonClip, QAError, scan

SAMPLE_FILE = "sample.json"
MEDIA_DIR = "media"


def _class_rng(seed: int, label: str) -> np.random.Generator:
    """One generator per class, so adding or removing another class changes nothing here."""
    digest = hashlib.sha256(f"{seed}\0{label}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def choose(clips: list[AnonClip], per_class: int, seed: int) -> list[AnonClip]:
    """``per_class`` clips of each class (all of a smaller class), sorted by class then path."""
    if per_class < 1:
        raise QAError(f"--per-class must be at least 1, got {per_class}")
    by_class: dict[str, list[AnonClip]] = {}
    for clip in clips:
        by_class.setdefault(clip.label, []).append(clip)
    chosen = []
    for label in sorted(by_class):
        members = sorted(by_class[label], key=lambda c: c.rel)
        take = min(per_class, len(members))
        picks = _class_rng(seed, label).choice(len(members), size=take, replace=False)
        chosen.extend(sorted((members[i] for i in picks), key=lambda c: c.rel))
    return chosen


def frame_positions(count: int, n: int) -> list[int]:
    """``n`` frame indices at the centres of ``n`` equal slices of a clip of ``count`` frames."""
    count = max(1, count)
    return [min(count - 1, int((i + 0.5) / n * count)) for i in range(n)]


def grab_frames(path: Path, n: int, size: tuple[int, int] | None = None) -> list[np.ndarray]:
    """``n`` frames spread over the clip (resized to ``size`` = (w, h) when given)."""
    info = probe(path)
    count = info.frames
    if count <= 0:
        count = sum(1 for _ in read_frames(path, info=info))
    wanted = frame_positions(count, n)
    found: dict[int, np.ndarray] = {}
    last = None
    last_needed = max(wanted)
    for index, frame in enumerate(read_frames(path, size=size, info=info)):
        last = frame
        if index in wanted:
            found[index] = frame
        if index >= last_needed:
            break
    if last is None:
        raise BadInput("video has no decodable frame")
    # a container that over-estimated its length: the missing tail repeats the last frame
    return [found.get(i, last) for i in wanted]


def _thumb_size(width: int, height: int, thumb_height: int) -> tuple[int, int]:
    w = max(2, round(width * thumb_height / height))
    return w - w % 2, thumb_height - thumb_height % 2


def _write_jpeg(path: Path, frame: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise QAError(f"cannot encode {path}")
    path.write_bytes(data.tobytes())


@dataclass
class SampleSummary:
    out: Path
    items: list[dict[str, Any]]
    classes: dict[str, int]          # class -> clips available
    short_classes: dict[str, int]    # classes with fewer clips than asked


def sample(root: str | os.PathLike[str], out: str | os.PathLike[str], per_class: int = 4, seed: int = 0,
           frames: int = 6, thumb_height: int = 180, progress: Callable[[int], None] | None = None,
           originals: str | os.PathLike[str] | None = None) -> SampleSummary:
    """``originals``: the input folder given to anonymize (sidecars name each input relative to it)."""
    root, out = Path(root), Path(out)
    base = Path(originals) if originals is not None else None
    if frames < 1:
        raise QAError(f"--frames must be at least 1, got {frames}")
    clips = scan(root)
    chosen = choose(clips, per_class, seed)
    counts: dict[str, int] = {}
    for clip in clips:
        counts[clip.label] = counts.get(clip.label, 0) + 1
    media = out / MEDIA_DIR
    media.mkdir(parents=True, exist_ok=True)
    items = []
    for number, clip in enumerate(chosen):
        item_id = f"{number:04d}"
        original = clip.original_in(base)
        item: dict[str, Any] = {
            "id": item_id, "class": clip.label, "rel": clip.rel, "mode": clip.mode,
            "anonymised": str(clip.video.resolve()),
            "original": str(original) if original else None,
            "anonymised_frames": [], "original_frames": [], "problems": [],
        }
        try:
            anon = grab_frames(clip.video, frames)
        except BadInput as exc:
            item["problems"].append(f"anonymised clip unreadable: {exc}")
            anon = []
        size = (anon[0].shape[1], anon[0].shape[0]) if anon else None
        if anon:
            size = _thumb_size(size[0], size[1], thumb_height)
            import cv2

            anon = [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in anon]
        for i, frame in enumerate(anon):
            name = f"{MEDIA_DIR}/{item_id}_anon_{i:02d}.jpg"
            _write_jpeg(out / name, frame)
            item["anonymised_frames"].append(name)
        if original is None:
            item["problems"].append("original unknown: the sidecar names the input relative to the folder given "
                                    "to anonymize; pass --originals IN")
        elif not original.exists():
            item["problems"].append(f"original not found: {original}")
        else:
            try:
                for i, frame in enumerate(grab_frames(original, frames, size)):
                    name = f"{MEDIA_DIR}/{item_id}_orig_{i:02d}.jpg"
                    _write_jpeg(out / name, frame)
                    item["original_frames"].append(name)
            except BadInput as exc:
                item["problems"].append(f"original unreadable: {exc}")
        items.append(item)
        if progress is not None:
            progress(1)
    short = {label: n for label, n in counts.items() if n < per_class}
    doc = {
        "dataset": str(root.resolve()), "seed": seed, "per_class": per_class, "frames": frames,
        "classes": counts, "short_classes": short, "items": items,
    }
    tmp = out / f".{SAMPLE_FILE}.partial"
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / SAMPLE_FILE)
    return SampleSummary(out, items, counts, short)


def load_sample(folder: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(folder) / SAMPLE_FILE
    if not path.is_file():
        raise QAError(f"{path} not found; run `privvid qa sample DATASET --out {folder}` first")
    return json.loads(path.read_text(encoding="utf-8"))
