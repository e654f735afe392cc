"""Scale-out of `privvid anonymize`: clips/s with 1 and 2 workers, local processes and Ray, in one run.

    python benchmarks/scaling.py [--clips 48] [--frames 48] [--size 216x120] [--mode remove]

The clips are the first FRAMES frames of the real demo clips (repeated to make CLIPS clips). Each
configuration anonymises the same set into a fresh output folder with the embedded default; start-up
(spawning workers, loading models) is included, as a user would see it; for Ray the seconds spent
starting the local cluster (``ray.init``) are shown too, with the efficiency on an already running
cluster (``--ray-address``), where that start is not part of a run. Efficiency = (clips/s with 2)
/ (2 x clips/s with 1) for the same executor: 1.0 would be perfect scaling. A run pays a fixed few
seconds (workers, imports, models, the cluster) that short runs cannot hide: 48 clips (~1-2 minutes per
configuration) is the default, 16 clips show the start-up. "cores busy" (local only):
CPU seconds of the run's processes per wall second, i.e. how much of the machine one worker already uses.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, parse_size
from privvid.io import VideoWriter, read_frames

from _shared import DEMO

SOURCES = ["sam2_juggle.mp4", "mmaction2_demo_skeleton_two_people.mp4", "propainter_test-sample1.mp4",
           "propainter_test-sample0.mp4"]


def make_clips(folder: Path, count: int, frames: int, size: tuple[int, int]) -> None:
    for i in range(count):
        name = SOURCES[i % len(SOURCES)]
        taken = []
        for frame in read_frames(DEMO / name, size):
            taken.append(frame)
            if len(taken) == frames:
                break
        with VideoWriter(folder / f"c{i:02d}_{name}", size[0], size[1], 25) as writer:
            for frame in taken:
                writer.write(frame)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (local worker pools)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(src: Path, out: Path, cfg: AnonymizeConfig, workers: int,
          executor: str) -> tuple[float, int, float, float]:
    """(seconds, frames, CPU seconds of our processes, seconds of those spent starting a local Ray cluster)."""
    cpu0 = _cpu()
    start = time.perf_counter()
    cluster = 0.0
    if executor == "ray":
        import ray

        ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        cluster = time.perf_counter() - start
        try:
            summary = anonymize_dataset(src, out, cfg, executor="ray")
        finally:
            ray.shutdown()
    else:
        summary = anonymize_dataset(src, out, cfg, workers=workers)
    seconds = time.perf_counter() - start
    bad = [o for o in summary.outcomes if o.status != "done"]
    if bad:
        raise SystemExit(f"{executor} x{workers}: {bad[0].relpath} {bad[0].status}: {bad[0].reason}")
    return seconds, summary.frames, _cpu() - cpu0, cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=48)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--size", default="216x120")
    parser.add_argument("--mode", default="remove")
    parser.add_argument("--executors", default="local,ray")
    args = parser.parse_args()
    size = parse_size(args.size)
    cfg = AnonymizeConfig(mode=args.mode)
    table = Table(title=f"--mode {args.mode}: {args.clips} clips x {args.frames} frames at {args.size}, "
                        f"{os.cpu_count()} CPUs (start-up included)")
    for col in ("executor", "workers", "seconds", "clips/s", "frames/s", "efficiency 1->2", "cores busy",
                "cluster start s", "efficiency 1->2 on a running cluster"):
        table.add_column(col, justify="left" if col == "executor" else "right")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        src = tmp / "in"
        src.mkdir()
        make_clips(src, args.clips, args.frames, size)
        for executor in args.executors.split(","):
            rates, warm = {}, {}
            for workers in (1, 2):
                seconds, frames, cpu, cluster = timed(src, tmp / f"out-{executor}-{workers}", cfg, workers, executor)
                rates[workers] = args.clips / seconds
                warm[workers] = args.clips / (seconds - cluster)
                eff = f"{rates[2] / (2 * rates[1]):.0%}" if workers == 2 else ""
                busy = f"{cpu / seconds:.2f}" if executor == "local" else "-"  # Ray workers are not our children
                # with --ray-address a cluster is already running: its start-up is not the run's
                warm_eff = f"{warm[2] / (2 * warm[1]):.0%}" if workers == 2 and executor == "ray" else ""
                table.add_row(executor, str(workers), f"{seconds:.1f}", f"{rates[workers]:.2f}",
                              f"{frames / seconds:.1f}", eff, busy, f"{cluster:.1f}" if executor == "ray" else "-",
                              warm_eff)
    Console().print(table)


if __name__ == "__main__":
    main()
