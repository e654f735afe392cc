"""Mask2Mesh fit quality per clip: reprojection error and jitter, without and with temporal smoothing.

    python benchmarks/mesh_quality.py [--frames 72] [--size 432x240] [--window 24] [CLIPS...]

People are found with the detect stage's mediapipe backend when it is installed, else with the
int8 YOLO11n-pose weights in ../shared/weights (boxes + tracks). Pose landmarks are computed once
per clip and replayed, so the smoothing settings differ only in the fit. Reprojection error is the
mean pixel distance of confident landmarks divided by the person box height (target <= 5%);
jitter is the mean acceleration of the 22 body joints, in mm/frame^2 (3D, camera frame) and
px/frame^2 (projected).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

os.environ.setdefault("OMP_NUM_THREADS", "2")
ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PRIVVID_SHARED", ROOT.parent / "shared"))
DEFAULT_CLIPS = [
    SHARED / "data" / "demo-clips" / "sam2_juggle.mp4",
    SHARED / "data" / "demo-clips" / "propainter_test-sample1.mp4",
    SHARED / "data" / "demo-clips" / "mmaction2_demo_skeleton_two_people.mp4",
    SHARED / "data" / "demo-clips" / "propainter_test-sample0.mp4",
]
WEIGHTS = SHARED / "weights" / "yolo11n-pose_int8.tflite"


class ReplayPose:
    """Records a pose source's answers on the first run, replays them afterwards."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.log: list = []
        self.replay = False
        self.i = 0

    def reset(self) -> None:
        self.i = 0
        if not self.replay:
            self.inner.reset()

    def __call__(self, frame, box, track_id=-1):
        if self.replay:
            res = self.log[self.i]
            self.i += 1
            return res
        res = self.inner(frame, box, track_id)
        self.log.append(res)
        return res

    def info(self):
        return self.inner.info()


def make_detector():
    try:
        from privvid.config import DetectConfig
        from privvid.detect import DETECTORS

        return DETECTORS.create("mediapipe", DetectConfig()), "privvid.detect mediapipe"
    except Exception:
        from privvid.mesh.people import YoloPoseDetector

        return YoloPoseDetector(WEIGHTS), "yolo11n-pose int8 (mesh helper)"


def joints_2d(records, cam):
    out = []
    for r in records:
        j = np.asarray(r["joints"])[:22]
        out.append({**r, "joints2d": np.stack([cam["focal"] * j[:, 0] / j[:, 2] + cam["cx"],
                                               cam["focal"] * j[:, 1] / j[:, 2] + cam["cy"],
                                               np.zeros(22)], 1)})
    return out


def run_clip(path: Path, size, frames_n: int, window: int, smooths: list[float], console: Console):
    from privvid.config import MeshConfig
    from privvid.mesh.people import decode
    from privvid.mesh.pose import MediapipePose
    from privvid.mesh.stage import MeshStage, jitter

    frames = decode(path, size, frames_n)
    detector, det_name = make_detector()
    dets = [detector(f) for f in frames]
    for d in dets:   # the stage runs its own pose source per crop
        d.keypoints = None
    masks = np.stack([d.union() for d in dets])
    background = np.zeros_like(frames)
    pose = ReplayPose(MediapipePose())
    rows = []
    stage = None
    for smooth in smooths:
        cfg = MeshConfig(smooth=smooth)
        if stage is None:
            stage = MeshStage(cfg, pose_source=pose)
        else:
            stage.cfg = cfg
            pose.replay = True
        stage.reset()
        for s in range(0, len(frames), window):
            stage(frames[s:s + window], dets[s:s + window], background[s:s + window], masks[s:s + window])
        summary = stage.finish()
        ok = [r for r in stage._records if r["ok"] and "joints" in r]
        rel = np.array([r["err_rel"] for r in ok])
        j2d = jitter(joints_2d(ok, summary["camera"]), key="joints2d", scale=1.0)
        rows.append({
            "clip": path.name, "frames": len(frames), "smooth": smooth, "detector": det_name,
            "person_frames": summary["person_frames"], "fitted": summary["fitted"],
            "err_rel": float(rel.mean()) if len(rel) else float("nan"),
            "err_p90": float(np.percentile(rel, 90)) if len(rel) else float("nan"),
            "within5": float((rel <= 0.05).mean()) if len(rel) else float("nan"),
            "jitter_mm": summary["jitter_mm"], "jitter_px": j2d,
        })
    stage.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--size", default="432x240")
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--smooth", default="0,1", help="comma-separated smoothing strengths")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    smooths = [float(s) for s in args.smooth.split(",")]
    console = Console(width=200)
    clips = args.clips or DEFAULT_CLIPS
    table = Table(title=f"Mask2Mesh fit quality ({args.size}, first {args.frames} frames, window {args.window})")
    for col in ("clip", "smooth", "person-frames", "fitted", "reproj err / box h (mean)", "p90",
                "<= 5%", "jitter mm/f^2", "jitter px/f^2"):
        table.add_column(col, justify="right" if col != "clip" else "left")
    detector_names = set()
    for clip in clips:
        if not clip.exists():
            console.print(f"[yellow]skip {clip} (not found)")
            continue
        for r in run_clip(clip, size, args.frames, args.window, smooths, console):
            detector_names.add(r["detector"])
            fmt = lambda v, f: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f.format(v)  # noqa
            table.add_row(r["clip"], f"{r['smooth']:g}", str(r["person_frames"]), str(r["fitted"]),
                          fmt(r["err_rel"], "{:.2%}"), fmt(r["err_p90"], "{:.2%}"), fmt(r["within5"], "{:.0%}"),
                          fmt(r["jitter_mm"], "{:.1f}"), fmt(r["jitter_px"], "{:.2f}"))
    console.print(table)
    console.print(f"detector: {', '.join(sorted(detector_names))}; pose: mediapipe BlazePose per crop")


if __name__ == "__main__":
    sys.exit(main())
