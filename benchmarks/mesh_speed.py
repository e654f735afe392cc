"""Mask2Mesh speed: frames/s end to end and per stage at 432x240 on this machine (2 cores).

    python benchmarks/mesh_speed.py [--frames 72] [--size 432x240] [--window 24] [CLIPS...]

Stages, timed one after the other on the same frames: decode (PyAV + resize), detect (the pipeline's
detection chain, privvid.detect.build_mask_stream with mesh mode's detector settings), inpaint (the
registered 'propagate' inpainter on the union masks, window by window), mesh (pose per crop, fit,
smplx body vertices, pyrender EGL render + composite, reported separately) and H.264 encode. The
reference rows in the same table: the decode + encode floor and the issue's 12 frames/s target.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from _shared import DEMO  # noqa: E402

DEFAULT_CLIPS = [
    DEMO / "sam2_juggle.mp4",
    DEMO / "mmaction2_demo_skeleton_two_people.mp4",
    DEMO / "propainter_test-sample1.mp4",
]
TARGET_FPS = 12.0


def encode(frames: np.ndarray, fps: float = 24.0) -> float:
    """Time the pipeline's own encoder (privvid.io.VideoWriter) on the composited frames."""
    from privvid.io import VideoWriter

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        writer = VideoWriter(Path(tmp) / "out.mp4", frames.shape[2], frames.shape[1], fps)
        for f in frames:
            writer.write(f)
        writer.commit()
    return time.perf_counter() - start


def bench_clip(path: Path, size, frames_n: int, window: int) -> dict:
    import torch

    from privvid.config import InpaintConfig, MeshConfig
    from privvid.inpaint import INPAINTERS
    from privvid.mesh import MeshStage
    from privvid.mesh.people import decode

    torch.set_num_threads(2)
    t = {}
    start = time.perf_counter()
    video = decode(path, size, frames_n)
    t["decode"] = time.perf_counter() - start
    from privvid.config import AnonymizeConfig
    from privvid.detect import build_mask_stream

    # the pipeline's own detection chain in mesh mode: detector + tracker + removal masks (temporal union,
    # dilation)
    detect = AnonymizeConfig(mode="mesh").resolved().detect
    stream = build_mask_stream(detect)
    det_name = f"privvid.detect {detect.backend} {detect.options} (+ tracker, removal masks)"
    stream.reset()
    stream.push(video[0])  # load/warm-up outside the timing
    stream.reset()
    start = time.perf_counter()
    pairs = stream.run(video)
    t["detect"] = time.perf_counter() - start
    dets = [d for d, _ in pairs]
    masks = np.stack([m for _, m in pairs])

    inpainter = INPAINTERS.create("propagate", InpaintConfig())
    inpainter.reset()
    start = time.perf_counter()
    background = np.concatenate([inpainter(video[s:s + window], masks[s:s + window])
                                 for s in range(0, len(video), window)])
    t["inpaint"] = time.perf_counter() - start

    stage = MeshStage(MeshConfig())
    # warm-up (renderer/EGL context, mediapipe graph, model load) outside the timing
    stage(video[:2], dets[:2], background[:2], masks[:2])
    stage.reset()
    start = time.perf_counter()
    out = np.concatenate([stage(video[s:s + window], dets[s:s + window], background[s:s + window],
                                masks[s:s + window])[0] for s in range(0, len(video), window)])
    mesh_total = time.perf_counter() - start
    summary = stage.finish()
    for k, v in stage.timings.items():
        t[f"mesh.{k}"] = v
    t["mesh.other"] = max(mesh_total - sum(stage.timings.values()), 0.0)
    t["encode"] = encode(out)
    stage.close()
    return {"clip": path.name, "frames": len(video), "t": t, "detector": det_name,
            "people": summary["person_frames"], "fitted": summary["fitted"]}


def main() -> None:
    from privvid.config import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--size", default="432x240")
    parser.add_argument("--window", type=int, default=24)
    args = parser.parse_args()
    size = parse_size(args.size)
    console = Console(width=200)
    results = [bench_clip(c, size, args.frames, args.window) for c in (args.clips or DEFAULT_CLIPS) if c.exists()]
    stages = ["decode", "detect", "inpaint", "mesh.pose", "mesh.fit", "mesh.body_model", "mesh.render",
              "mesh.other", "encode"]
    table = Table(title=f"Mask2Mesh speed at {args.size}, {os.cpu_count()} cores (ms per frame; last rows frames/s)")
    table.add_column("stage")
    for r in results:
        table.add_column(f"{r['clip']}\n{r['frames']} fr, {r['people']} person-fr", justify="right")
    for s in stages:
        table.add_row(s, *[f"{1000 * r['t'].get(s, 0.0) / r['frames']:.1f}" for r in results])
    fps = lambda r, keys: r["frames"] / max(sum(r["t"].get(k, 0.0) for k in keys), 1e-9)  # noqa: E731
    mesh_keys = [s for s in stages if s.startswith("mesh.")]
    table.add_row("[bold]mesh stage only, frames/s", *[f"{fps(r, mesh_keys):.1f}" for r in results])
    table.add_row("[bold]end to end, frames/s", *[f"{fps(r, stages):.1f}" for r in results])
    table.add_row("reference: decode+encode floor, frames/s", *[f"{fps(r, ['decode', 'encode']):.1f}"
                                                               for r in results])
    table.add_row("reference: issue target, frames/s", *[f"{TARGET_FPS:.0f}" for _ in results])
    console.print(table)
    console.print(f"detector: {', '.join(sorted({r['detector'] for r in results}))}; "
                  f"pose: mediapipe BlazePose per person crop; renderer: pyrender {os.environ['PYOPENGL_PLATFORM']}")


if __name__ == "__main__":
    sys.exit(main())
