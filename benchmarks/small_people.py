"""Small people (a surveillance view): how many YOLO-found pedestrians the removal mask covers.

    python benchmarks/small_people.py [--video /usr/share/doc/opencv-doc/examples/data/vtest.avi]
        [--size 432x240] [--step 10] [--tiles ssd,mediapipe,mediapipe:3x2/4]
        [--weights ../shared/weights/yolov8n-seg_full_integer_quant.tflite]
    python benchmarks/small_people.py --consecutive --tiles ssd,ssd:none,mediapipe,mediapipe:3x2/4

vtest.avi (Debian opencv-doc, 768x576, 795 frames) shows ~6 pedestrians a few dozen pixels tall.
Every ``--step``-th frame is decoded at ``--size``; the int8 YOLOv8n-seg is the reference (person
masks with score >= 0.5, duplicates overlapping by more than half dropped). For each embedded-detector setting (the default, then values of the
backend's ``tiles`` option) the sampled frames go through the streaming chain (detect -> track -> dilation) with
``temporal=0`` (sampled frames are 0.4 s apart, a temporal union across them would mean nothing), and
a reference person counts as covered when >= 95% of its pixels are inside the removal mask.
Columns: covered share, mean cover, removed share of the frame, wall and CPU ms/frame of the chain.

``--consecutive`` runs the chain as the pipeline does instead: on EVERY frame, with the default
``temporal`` union, and scores the removal masks of every ``--step``-th frame against the reference.
That is the mode in which ``COLSxROWS/K`` settings (tiles on every K-th frame only,
the ``tile_every`` option) can be judged, since the union covers the frames between.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from privvid.config import MEDIAPIPE_AS_MEASURED, DetectConfig, parse_size  # noqa: E402
from privvid.detect import build_mask_stream  # noqa: E402
from privvid.io.video import read_frames  # noqa: E402
from _shared import YOLO_SEG, compared_settings  # noqa: E402

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
MIN_COVER = 0.95
REF_SCORE = 0.5


def sample(video: Path, size: tuple[int, int], step: int) -> list[np.ndarray]:
    return [f for i, f in enumerate(read_frames(video, size=size)) if i % step == 0]


def setting(spec: str, temporal: int | None) -> tuple[str, DetectConfig]:
    """'ssd' -> the default; 'ssd:none' / 'ssd:3x2/2' -> its tiles off / 3x2 on every 2nd frame;
    a name of ``compared_settings()`` (ssd-union, ssd-vote2, ssd-idle0, ...) -> that setting; 'mediapipe' -> the
    previous default (fixed 11 px dilation); 'mediapipe:3x2/4' -> with its tiles."""
    backend, _, tiles_spec = spec.strip().partition(":")
    tiles, _, every = tiles_spec.partition("/")
    extra = {} if temporal is None else {"temporal": temporal}
    compared = compared_settings()
    if backend in compared and backend != "mediapipe" and not tiles_spec:  # what other benchmarks compare too
        label, cfg = compared[backend]
        return label.split(" (")[0], replace(cfg, **extra)
    if backend == "ssd":
        opts = {}
        if tiles:
            opts["tiles"] = tiles
        if every:
            opts["tile_every"] = int(every)
        name = "ssd (default)" if not opts else "ssd " + ",".join(f"{k}={v}" for k, v in opts.items())
        return name, DetectConfig(options=opts, **extra)
    if backend == "mediapipe":
        cfg = DetectConfig(backend="mediapipe", **MEDIAPIPE_AS_MEASURED,
                           options={"tiles": tiles or None, "tile_every": int(every or 1)}, **extra)
        name = "mediapipe (previous default)" if not tiles else f"mediapipe tiles={tiles}" + (
            f" every {every}" if every else "")
        return name, cfg
    raise SystemExit(f"unknown setting {spec!r}: ssd[:TILES[/K]], {', '.join(compared)} "
                     "or mediapipe[:TILES[/K]]")


def distinct(masks: list[np.ndarray], scores: list[float]) -> list[np.ndarray]:
    """Drop duplicate reference masks: one overlapping an already kept (higher-scoring) mask by more
    than half of the smaller of the two is the same person (the int8 YOLO often returns such pairs)."""
    kept: list[np.ndarray] = []
    for k in np.argsort(scores)[::-1]:
        m = masks[k]
        if all((m & q).sum() <= 0.5 * min(m.sum(), q.sum()) for q in kept):
            kept.append(m)
    return kept


def reference_masks(frames: list[np.ndarray], weights: Path) -> list[list[np.ndarray]]:
    stream = build_mask_stream(DetectConfig(backend="yolo", weights=weights, temporal=0, dilate=0,
                                                options={"refine": False}))
    out = []
    for f in frames:
        (dets, _), = stream.push(f)
        keep = [(m, float(s)) for m, s in zip(dets.masks, dets.scores) if s >= REF_SCORE and m.any()]
        out.append(distinct([m for m, _ in keep], [s for _, s in keep]))
    return out


def removal_masks(cfg: DetectConfig, frames: list[np.ndarray]) -> tuple[list[np.ndarray], float, float]:
    stream = build_mask_stream(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    outs = stream.run(frames)
    wall = (time.perf_counter() - t0) / len(frames) * 1000
    cpu = (time.process_time() - c0) / len(frames) * 1000
    close = getattr(stream.detector, "close", None)
    if close is not None:
        close()
    return [rem for _, rem in outs], wall, cpu


def coverage(refs: list[list[np.ndarray]], removals: list[np.ndarray]) -> tuple[int, int, float]:
    """(people covered >= MIN_COVER, people, mean cover)."""
    covers = [float((m & rem).sum() / m.sum()) for ms, rem in zip(refs, removals) for m in ms]
    return sum(c >= MIN_COVER for c in covers), len(covers), float(np.mean(covers)) if covers else 0.0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--video", type=Path, default=VTEST)
    ap.add_argument("--size", default="432x240")
    ap.add_argument("--step", type=int, default=10)
    ap.add_argument("--tiles", default="ssd,mediapipe,mediapipe:3x2/4",
                    help="comma list of BACKEND[:COLSxROWS[/K]] (K = tiles on every K-th frame; 'none' = no tiles)")
    ap.add_argument("--consecutive", action="store_true",
                    help="run the chain on every frame with the default temporal union; score every --step-th")
    ap.add_argument("--weights", type=Path,
                    default=YOLO_SEG)
    args = ap.parse_args(argv)
    console = Console(width=150)
    if not args.video.is_file():
        console.print(f"[red]{args.video} not found[/red] (Debian package opencv-doc, see scripts/setup.sh)")
        return 2
    size = parse_size(args.size)
    frames = sample(args.video, size, 1 if args.consecutive else args.step)
    scored = frames[::args.step] if args.consecutive else frames
    refs = reference_masks(scored, args.weights)
    how = (f"chain on all {len(frames)} frames (temporal={DetectConfig().temporal}), scored every {args.step}th"
           if args.consecutive else f"every {args.step}th frame ({len(frames)} frames, temporal=0)")
    table = Table(title=f"small people: {args.video.name} at {args.size}, {how}, reference {args.weights.name} "
                        f"score >= {REF_SCORE}")
    for col in ("setting", "ref people", f"covered >= {int(MIN_COVER * 100)}%", "share", "mean cover",
                "removed % frame", "ms/frame", "cpu ms"):
        table.add_column(col, justify="left" if col == "setting" else "right")
    for spec in args.tiles.split(","):
        name, cfg = setting(spec, None if args.consecutive else 0)
        removals, wall, cpu = removal_masks(cfg, frames)
        if args.consecutive:
            removals = removals[::args.step]
        ok, n, mean = coverage(refs, removals)
        removed = float(np.mean([r.mean() for r in removals]))
        table.add_row(name, str(n), str(ok),
                      f"{100 * ok / max(n, 1):.1f}%", f"{100 * mean:.1f}%", f"{100 * removed:.1f}",
                      f"{wall:.1f}", f"{cpu:.1f}")
    console.print(table)
    console.print(f"cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
