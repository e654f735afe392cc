"""Cut small labelled clips out of longer videos (tests, the tiny benchmark preset, demos).

``cut_clips`` reads a folder of videos and a ``labels.csv`` (``file,label,...``), cuts ``per_video``
non-overlapping segments of ``frames`` frames from each video, resizes them to ``size`` x ``size``
(centre square) and writes ``out/<label>/<stem>_<k>.mp4`` (a class-per-folder tree), plus
``out/train.csv`` / ``out/val.csv`` lists (the last segment of each video goes to val).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from privvid.engine.config import EngineError


def read_labels(labels_csv: Path) -> dict[str, str]:
    with open(labels_csv, newline="") as fh:
        return {row["file"]: row["label"] for row in csv.DictReader(fh)}


def _write(path: Path, frames: np.ndarray, fps: int = 15) -> None:
    from privvid.io import VideoWriter

    writer = VideoWriter(path, frames.shape[2], frames.shape[1], fps)
    for arr in frames:
        writer.write(arr)
    writer.commit()


def cut_clips(src: Path, out: Path, size: int = 64, frames: int = 16, per_video: int = 3,
              labels_csv: Path | None = None, max_videos: int | None = None) -> dict[str, list[tuple[Path, str]]]:
    import av

    src, out = Path(src), Path(out)
    labels = read_labels(labels_csv or src / "labels.csv")
    split: dict[str, list[tuple[Path, str]]] = {"train": [], "val": []}
    names = [n for n in sorted(labels) if (src / n).is_file()]
    if max_videos:
        names = names[:max_videos]
    if not names:
        raise EngineError(f"no labelled video files in {src}")
    for name in names:
        with av.open(str(src / name)) as c:
            s = c.streams.video[0]
            w, h = s.codec_context.width, s.codec_context.height
            scale = size / min(w, h)
            ow, oh = max(size, round(w * scale)), max(size, round(h * scale))
            decoded = [f.to_ndarray(width=ow, height=oh, format="rgb24") for f in c.decode(s)]
        arr = np.stack(decoded)
        y0, x0 = (oh - size) // 2, (ow - size) // 2
        arr = arr[:, y0:y0 + size, x0:x0 + size]
        seg = len(arr) // per_video
        if seg < frames:
            raise EngineError(f"{name} has {len(arr)} frames, too few for {per_video} x {frames}")
        label = labels[name]
        for k in range(per_video):
            start = k * seg + (seg - frames) // 2
            rel = Path(label.replace(" ", "_")) / f"{Path(name).stem}_{k}.mp4"
            _write(out / rel, arr[start:start + frames])
            split["val" if k == per_video - 1 else "train"].append((rel, label))
    for part, rows in split.items():
        with open(out / f"{part}.csv", "w", newline="") as fh:
            w_ = csv.writer(fh)
            w_.writerow(["path", "label"])
            for rel, label in rows:
                w_.writerow([str(rel), label])
    return split
