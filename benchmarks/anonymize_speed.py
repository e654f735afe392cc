"""End-to-end speed of `privvid anonymize` with the per-stage split and the decode+encode floor.

    python benchmarks/anonymize_speed.py [--mode remove] [--size 432x240|native] [--workers 2]
        [--detectors ssd,ssd-upright,mediapipe] [CLIPS...]

For each clip it times, in the same run: the floor (decode + resize + H.264 encode, no
processing), privvid one clip at a time (frames/s and where the time goes, from the
sidecar timings; "check" is the written-frame check), and the whole set with --workers N
processes (throughput on all cores), once per detector: ``ssd`` is the default, ``mediapipe`` the
previous default, side by side in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, DetectConfig, InpaintConfig
from privvid.io import VideoWriter, output_size, probe, read_frames

from _shared import DATA, DEMO, compared_settings, fill_settings, size_arg

DEFAULT_CLIPS = [
    DEMO / "sam2_juggle.mp4",
    DEMO / "propainter_test-sample1.mp4",
    DEMO / "mmaction2_demo_skeleton_two_people.mp4",
    DATA / "davis-inpaint-examples" / "schoolgirls" / "video.mp4",
]


def floor(path: Path, size: tuple[int, int] | None, out: Path) -> tuple[int, float]:
    info = probe(path)
    width, height = output_size(info, size)
    start = time.perf_counter()
    writer = VideoWriter(out, width, height, info.fps)
    for frame in read_frames(path, (width, height), info=info):
        writer.write(frame)
    writer.commit()
    return writer.frames, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--mode", default="remove")
    parser.add_argument("--size", default="432x240", help="WxH, or 'native' (each clip at its own size)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copies", type=int, default=3, help="copies of each clip in the dataset run")
    parser.add_argument("--detectors", default="ssd,mediapipe",
                        help="comma list of detector backends to compare, or names of the compared settings "
                             f"({', '.join([*compared_settings(), *fill_settings()])})")
    args = parser.parse_args()
    clips = args.clips or [c for c in DEFAULT_CLIPS if c.exists()]
    if not clips:
        sys.exit("no clips: pass paths, or keep ../shared/data beside the checkout")
    size = size_arg(args.size)
    console = Console(width=150)  # the table stays whole when printed to a file
    lines = []
    compared, fills = compared_settings(), fill_settings()
    for backend in args.detectors.split(","):
        if backend in fills:   # the default detector with another fill
            det, fill = DetectConfig(), fills[backend][1]
        else:
            det, fill = compared[backend][1] if backend in compared else DetectConfig(backend=backend), InpaintConfig()
        cfg = AnonymizeConfig(mode=args.mode, resize=size, detect=det, inpaint=fill)
        lines.append(run(console, clips, size, cfg, args, backend))
    for line in lines:
        console.print(line)


def run(console: Console, clips: list[Path], size: tuple[int, int] | None, cfg: AnonymizeConfig, args: argparse.Namespace,
        backend: str) -> str:
    table = Table(title=f"privvid anonymize --mode {args.mode} at {args.size}, detector {backend}, one clip at a time")
    for col in ("clip", "frames", "floor fps", "privvid fps", "decode", "detect", "compose", "check", "encode",
                "other"):
        table.add_column(col, justify="right" if col != "clip" else "left")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        total_frames = 0
        for i, clip in enumerate(clips):
            frames, floor_s = floor(clip, size, tmp / f"floor{i}.mp4")
            anonymize_dataset(clip, tmp / f"warm{i}", cfg, workers=1)  # warm-up: model loading is not throughput
            summary = anonymize_dataset(clip, tmp / f"timed{i}", cfg, workers=1)
            outcome = summary.outcomes[0]
            if outcome.status != "done":
                sys.exit(f"{clip.name}: {outcome.reason}")
            side = json.loads(next((tmp / f"timed{i}").glob("*.json")).read_text())
            t = side["timings"]
            total = t["total"]
            stages = {k: t.get(k, 0.0) for k in ("decode", "detect", "compose", "check", "encode")}
            other = total - sum(stages.values())
            table.add_row(clip.name, str(frames), f"{frames / floor_s:.1f}", f"{frames / total:.1f}",
                          *(f"{1000 * v / frames:.1f} ms" for v in stages.values()), f"{1000 * other / frames:.1f} ms")
            total_frames += frames
        console.print(table)
        # throughput of the whole set with N worker processes (what a dataset run sees)
        src = tmp / "set"
        src.mkdir()
        for copy in range(args.copies):
            for i, clip in enumerate(clips):
                (src / f"{copy}_{i}_{clip.name}").symlink_to(clip)
        start = time.perf_counter()  # process start and model loading are part of a run
        summary = anonymize_dataset(src, tmp / "pool", cfg, workers=args.workers)
        elapsed = time.perf_counter() - start
        done = sum(o.frames for o in summary.outcomes if o.status == "done")
        busy = sum(o.seconds for o in summary.outcomes if o.status == "done")
        floor_total = 0.0
        floor_frames = 0
        for i, clip in enumerate(clips):
            f, s = floor(clip, size, tmp / f"floor_again{i}.mp4")
            floor_frames += f
            floor_total += s
    line = (
        f"[bold]{backend}: dataset run, {len(summary.outcomes)} clips, {done} frames, --workers {args.workers}: "
        f"{done / elapsed:.1f} frames/s wall clock (process start and model loading included), "
        f"{args.workers * done / busy:.1f} frames/s from the clips' own processing times; "
        f"decode+encode floor on one core: {floor_frames / floor_total:.1f} frames/s[/bold]"
    )
    console.print(line)
    return line


if __name__ == "__main__":
    main()
