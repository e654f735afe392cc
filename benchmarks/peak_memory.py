"""Peak memory of `privvid anonymize` as clips get longer (it must stay flat: streaming).

    python benchmarks/peak_memory.py [--source CLIP] [--seconds 20 120 600] [--size 1280x720]
        [--fill-lines 720 0]

Builds long clips by looping a real clip (re-encoded at --size), anonymises each in a fresh
process, and prints that process's peak RSS (VmHWM) next to the clip length.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privvid.config import parse_size
from privvid.io import VideoWriter, probe, read_frames

from _shared import DEMO


CHILD = """
import sys, time
from privvid.anonymize import anonymize_dataset
from privvid.config import AnonymizeConfig, InpaintConfig
start = time.perf_counter()
fill = InpaintConfig(work_lines=int(sys.argv[4])) if len(sys.argv) > 4 else InpaintConfig()
s = anonymize_dataset(sys.argv[1], sys.argv[2], AnonymizeConfig(mode=sys.argv[3], inpaint=fill))
o = s.outcomes[0]
assert o.status == "done", o.reason
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's at the fork and survives exec (the
# parent read every frame of the source clip to loop it), VmHWM is this program's own
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(o.frames, time.perf_counter() - start, peak)
"""


def loop_clip(source: Path, dst: Path, seconds: float, size: tuple[int, int]) -> int:
    info = probe(source)
    frames = [f for f in read_frames(source, size)]
    writer = VideoWriter(dst, size[0], size[1], info.fps, crf=23, preset="ultrafast")
    target = int(seconds * info.fps)
    i = 0
    while writer.frames < target:
        # play forwards then backwards so the loop has no jump cut
        cycle = frames + frames[-2:0:-1]
        writer.write(cycle[i % len(cycle)])
        i += 1
    writer.commit()
    return writer.frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEMO / "sam2_juggle.mp4")
    parser.add_argument("--seconds", type=float, nargs="+", default=[20, 120])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--mode", default="remove")
    parser.add_argument("--fill-lines", type=int, nargs="*", default=[],
                        help="InpaintConfig.work_lines of each run on each clip (0 = the fill at the frame's own "
                             "size); default: the default config only")
    args = parser.parse_args()
    size = parse_size(args.size)
    table = Table(title=f"peak RSS of one anonymize process, --mode {args.mode}, {args.size}")
    for col in ("clip length", "fill lines", "frames", "frames/s", "peak RSS"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.seconds:
            clip = Path(tmp) / f"long_{int(seconds)}s.mp4"
            loop_clip(args.source, clip, seconds, size)
            for lines in args.fill_lines or [None]:
                extra = [] if lines is None else [str(lines)]
                proc = subprocess.run([sys.executable, "-c", CHILD, str(clip), str(Path(tmp) / f"out{seconds}_{lines}"),
                                       args.mode, *extra], capture_output=True, text=True, check=True)
                frames, elapsed, rss_kb = proc.stdout.split()[-3:]
                table.add_row(f"{seconds:g} s", "default" if lines is None else str(lines), frames,
                              f"{int(frames) / float(elapsed):.1f}", f"{int(rss_kb) / 1024:.0f} MiB")
            clip.unlink()
    Console().print(table)


if __name__ == "__main__":
    main()
