"""Class embeddings: one seeded random frame per video, frame-label pair vectors, class means.

Frame features are cached in a SQLite file keyed by encoder, video file (path, size, mtime),
and seed, so a re-run (or a run with another K or method) only reads the cache.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
import sqlite3
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from privvid.curate.encoders import ImageEncoder, TextEncoder, l2_normalize, pair_embedding
from privvid.curate.sources import CurationError, CurationSource, VideoRef
from privvid.errors import BadInput
from privvid.io.video import probe, read_frames

DECODE_SHORT_SIDE = 256  # frames are decoded small: the encoders look at 224x224


def frame_fraction(seed: int, key: str) -> float:
    """Where in the video (0..1) the random frame is: fixed by the seed and the video's key,
    so it does not depend on which other videos are in the run or their order."""
    digest = hashlib.sha256(f"{seed}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0**64


def read_frame_at(path: Path, fraction: float) -> tuple[np.ndarray, int]:
    """Decode the frame at ``fraction`` of the clip (index ``floor(fraction * frames)``).

    The container's frame count can be an estimate; a clip that ends early gives its last frame.
    Raises :class:`BadInput` for unreadable videos.
    """
    info = probe(path)
    width, height = info.display_size
    scale = min(1.0, DECODE_SHORT_SIDE / min(width, height))
    size = (max(2, round(width * scale)), max(2, round(height * scale))) if scale < 1 else None
    frames = info.frames
    if frames <= 0:  # unknown length: count by decoding (rare; short clips)
        frames = sum(1 for _ in read_frames(path, size=size, info=info))
    target = min(frames - 1, int(fraction * frames)) if frames > 0 else 0
    last, index = None, -1
    for index, frame in enumerate(read_frames(path, size=size, info=info)):
        last = frame
        if index >= target:
            break
    if last is None:
        raise BadInput("video has no decodable frame")
    return last, index


class EmbeddingCache:
    """SQLite store: key -> float32 vector. ``path=None`` keeps nothing."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path))
            self._db.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB, meta TEXT)")
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> tuple[np.ndarray, dict] | None:
        if self._db is None:
            return None
        row = self._db.execute("SELECT vec, meta FROM emb WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return np.frombuffer(row[0], dtype=np.float32).copy(), json.loads(row[1])

    def put(self, key: str, vec: np.ndarray, meta: dict) -> None:
        if self._db is not None:
            self._db.execute("INSERT OR REPLACE INTO emb VALUES (?, ?, ?)",
                             (key, np.asarray(vec, np.float32).tobytes(), json.dumps(meta)))

    def commit(self) -> None:
        if self._db is not None:
            self._db.commit()

    def close(self) -> None:
        if self._db is not None:
            self._db.commit()
            self._db.close()
            self._db = None


def _file_key(encoder: str, path: Path, seed: int) -> str:
    stat = path.stat()
    return f"img\0{encoder}\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}\0{seed}"


@dataclass
class ClassEmbeddings:
    labels: list[str]
    vectors: np.ndarray                 # (C, D) class means of the pair embeddings, L2-normalised
    counts: dict[str, int]              # videos per class (used by the selection)
    used: dict[str, int]                # videos whose frame was embedded, per class
    skipped: list[dict] = field(default_factory=list)   # unreadable videos: {label, key, path, reason}
    dropped: dict[str, str] = field(default_factory=dict)  # classes none of whose videos could be read -> why
    frames: dict[str, int] = field(default_factory=dict)  # video key -> frame index used
    encoder: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)


def embed_classes(
    source: CurationSource,
    image_encoder: ImageEncoder | None,
    text_encoder: TextEncoder | None,
    *,
    seed: int = 0,
    cache: EmbeddingCache | None = None,
    max_videos_per_class: int | None = None,
    on_error: str = "skip",
    batch: int = 32,
    progress: Callable[[int], None] | None = None,
) -> ClassEmbeddings:
    """Class-mean pair embeddings. Classes without readable videos use the label text alone
    only when the whole source has no videos (labels-only / CSV without files); otherwise a class none of
    whose videos could be read is dropped (``dropped``) with ``on_error`` skip, as its videos are."""
    if on_error not in ("skip", "fail"):
        raise ValueError("on_error must be 'skip' or 'fail'")
    if image_encoder is None and text_encoder is None:
        raise CurationError("no encoder: give an image encoder, a text encoder, or both")
    cache = cache or EmbeddingCache(None)
    labels = source.labels
    text_vecs = None
    if text_encoder is not None:
        text_vecs = dict(zip(labels, l2_normalize(text_encoder.encode(labels))))

    has_files = any(v.path is not None for videos in source.classes.values() for v in videos)
    use_images = image_encoder is not None and has_files
    if not use_images and text_encoder is None:
        raise CurationError("this source has no video files, so it needs a text encoder for the labels")

    vectors: list[np.ndarray] = []
    used: dict[str, int] = {}
    skipped: list[dict] = []
    frames_used: dict[str, int] = {}
    dropped: dict[str, str] = {}
    for label in labels:
        videos: list[VideoRef] = [v for v in source.classes[label] if v.path is not None]
        if max_videos_per_class is not None and len(videos) > max_videos_per_class:
            order = sorted(videos, key=lambda v: frame_fraction(seed + 1, v.key))
            videos = sorted(order[:max_videos_per_class], key=lambda v: v.key)
        if not use_images:
            vectors.append(text_vecs[label])  # type: ignore[index]
            used[label] = 0
            continue
        feats = _image_features(videos, image_encoder, seed, cache, on_error, skipped, frames_used, batch)
        if progress is not None:
            progress(len(videos))
        if len(feats) == 0:
            first = next((s['reason'] for s in skipped if s['label'] == label), "no video file")
            dropped[label] = f"none of its {len(videos)} video(s) could be read (first reason: {first})"
            continue
        text = np.repeat(text_vecs[label][None], len(feats), 0) if text_vecs is not None else None
        pairs = pair_embedding(np.stack(feats), text)
        vectors.append(pairs.mean(axis=0))
        used[label] = len(feats)
    cache.commit()
    info = {"image": image_encoder.info() if use_images and image_encoder else None,
            "text": text_encoder.info() if text_encoder else None,
            "pair": "concat(l2(image), l2(text)) / sqrt(2)" if use_images and text_encoder else
                    ("image only" if use_images else "label text only")}
    kept = [label for label in labels if label not in dropped]
    unreadable = Counter(s["label"] for s in skipped)
    if not kept:
        raise CurationError(f"none of the {len(labels)} classes has a readable video (class {labels[0]!r}: "
                            f"{dropped[labels[0]]})")
    return ClassEmbeddings(
        labels=kept,
        vectors=l2_normalize(np.stack(vectors)),
        # the videos a class has: its readable ones (an unreadable file does not make a class bigger)
        counts={label: source.count(label) - unreadable[label] for label in kept},
        used=used,
        skipped=skipped,
        dropped=dropped,
        frames=frames_used,
        encoder=info,
        cache={"path": str(cache.path) if cache.path else None, "hits": cache.hits, "misses": cache.misses},
    )


def _image_features(videos: Iterable[VideoRef], encoder: ImageEncoder, seed: int, cache: EmbeddingCache,
                    on_error: str, skipped: list[dict], frames_used: dict[str, int], batch: int) -> list[np.ndarray]:
    feats: list[np.ndarray] = []
    pending: list[tuple[str, VideoRef, np.ndarray, int]] = []

    def flush() -> None:
        if not pending:
            return
        out = encoder.encode([p[2] for p in pending])
        for (key, video, _, index), vec in zip(pending, out):
            cache.put(key, vec, {"frame": index})
            feats.append(vec)
            frames_used[video.key] = index
        pending.clear()

    for video in videos:
        assert video.path is not None
        try:
            key = _file_key(encoder.name, video.path, seed)
        except OSError as exc:
            _skip(video, f"cannot stat: {exc}", on_error, skipped)
            continue
        hit = cache.get(key)
        if hit is not None:
            feats.append(hit[0])
            frames_used[video.key] = int(hit[1].get("frame", -1))
            continue
        try:
            frame, index = read_frame_at(video.path, frame_fraction(seed, video.key))
        except BadInput as exc:
            _skip(video, str(exc), on_error, skipped)
            continue
        pending.append((key, video, frame, index))
        if len(pending) >= batch:
            flush()
    flush()
    return feats


def _skip(video: VideoRef, reason: str, on_error: str, skipped: list[dict]) -> None:
    if on_error == "fail":
        raise CurationError(f"unreadable video {video.path} (class {video.label!r}): {reason}")
    warnings.warn(f"skipping unreadable video {video.path}: {reason}", stacklevel=3)
    skipped.append({"label": video.label, "key": video.key, "path": str(video.path), "reason": reason})
