"""Speed of curation (cold vs cached embeddings) and of the QA sample / audit on real clips.

    OMP_NUM_THREADS=1 python benchmarks/curate_qa_speed.py [--frames 16] [--tiles 2]

Curation: a class-per-folder tree whose classes are the real clips in ../shared/data/action-clips
(each clip linked as one video of its own class), K = half the classes. It times, in one run,
the cold run (decode one frame per video + EfficientNet-Lite0 + MiniLM + k-means + report), the
cached re-run, and the floor of that cold run (decoding the same frames only).
QA: the same clips as an 'anonymised' dataset (the originals themselves): `qa sample` and
`qa audit` (MediaPipe pose + face on --frames frames per clip).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from privvid.curate import CurateConfig, curate, load_source
from privvid.curate.embed import frame_fraction, read_frame_at
from privvid.qa import AuditConfig, audit, sample

from _shared import DATA

CLIPS = sorted(p for p in (DATA / "action-clips").iterdir() if p.suffix in (".mp4", ".avi", ".mkv"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=16, help="audit: frames checked per clip")
    parser.add_argument("--tiles", type=int, default=2, help="audit: N x N crops also checked (1 = off)")
    args = parser.parse_args()
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tree, anon = tmp / "tree", tmp / "anon"
        for clip in CLIPS:
            label = clip.stem.split("__")[0]
            for root in (tree, anon):
                (root / label).mkdir(parents=True, exist_ok=True)
            os.symlink(clip, tree / label / clip.name)
            os.symlink(clip, anon / label / (clip.stem + ".mp4"))
            (anon / label / (clip.stem + ".json")).write_text(json.dumps(
                {"privvid_version": "bench", "mode": "remove", "input": {"path": str(clip)}, "backends": {"detector": {"name": "mediapipe"}}}))
        src = load_source(tree)
        k = max(1, len(src.labels) // 2)
        cfg = CurateConfig(k=k, cache=tmp / "cache.sqlite", random_draws=100)

        start = time.perf_counter()
        for videos in src.classes.values():
            for v in videos:
                read_frame_at(v.path, frame_fraction(cfg.seed, v.key))
        decode_s = time.perf_counter() - start
        start = time.perf_counter()
        curate(src, tmp / "out1", cfg)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        res = curate(src, tmp / "out2", cfg)
        warm_s = time.perf_counter() - start
        n = sum(len(v) for v in src.classes.values())

        start = time.perf_counter()
        sampled = sample(anon, tmp / "qa", per_class=4, seed=0, frames=6)
        sample_s = time.perf_counter() - start
        start = time.perf_counter()
        result = audit(anon, AuditConfig(frames=args.frames, tiles=args.tiles))
        audit_s = time.perf_counter() - start

    table = Table(title=f"curation of {len(src.labels)} classes / {n} real videos (K={k}); QA on {len(sampled.items)} clips")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    table.add_column("per video/clip (s)", justify="right")
    table.add_row("floor: decode one frame per video", f"{decode_s:.2f}", f"{decode_s / n:.3f}")
    table.add_row("curate, cold (decode + encoders + k-means + report)", f"{cold_s:.2f}", f"{cold_s / n:.3f}")
    table.add_row(f"curate, cached re-run ({res.cache['hits']} hits, {res.cache['misses']} misses)",
                  f"{warm_s:.2f}", f"{warm_s / n:.3f}")
    table.add_row("qa sample (6 frames original + anonymised)", f"{sample_s:.2f}", f"{sample_s / len(sampled.items):.3f}")
    table.add_row(f"qa audit ({args.frames} frames, pose + face, tiles {args.tiles})", f"{audit_s:.2f}", f"{audit_s / len(result.rows):.3f}")
    console.print(table)
    flagged = sum(r.flagged for r in result.rows)
    console.print(f"audit flagged {flagged} of {len(result.rows)} un-anonymised real clips")
    for row in result.rows:
        console.print(f"  {row.rank:2d} {row.rel}: person {row.person_hits}/{row.frames_checked}, "
                      f"face {row.face_hits}/{row.frames_checked}, flagged={row.flagged}")


if __name__ == "__main__":
    main()
