"""Mask2Mesh fit quality per clip: reprojection error and jitter, without and with temporal smoothing.

    python benchmarks/mesh_quality.py [--frames 72] [--size 432x240] [--window 24] [CLIPS...]

People are found exactly as `privvid anonymize --mode mesh` finds them (privvid.detect.build_mask_stream
with mesh mode's detector settings: detections, tracks, removal masks); the detector's BlazePose keypoints are
used where it has them and the stage's own pose source runs on the other person crops. Those
answers are recorded on the first run and replayed, so the smoothing settings differ only in the
fit. Reprojection error is measured on the rendered body (smplx joints projected with the stage
camera) against the visible (visibility >= 0.5) BlazePose landmarks, per group: arms (elbows,
wrists), torso (shoulders, hips), legs (knees, ankles), as a share of the person box height
(target <= 5%); "all" is the fitter's own mean over every landmark it uses (face points included).
Jitter is the mean acceleration of the 22 body joints, in mm/frame^2 (3D, camera frame) and
px/frame^2 (projected). IoU: rendered silhouette vs the fitted people's own instance masks (with the
mediapipe detector, frames where its BlazePose segmented that person).
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
from _shared import DEMO  # noqa: E402

DEFAULT_CLIPS = [
    DEMO / "sam2_juggle.mp4",
    DEMO / "propainter_test-sample1.mp4",
    DEMO / "mmaction2_demo_skeleton_two_people.mp4",
    DEMO / "propainter_test-sample0.mp4",
]


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

    def __call__(self, frame, box, track_id=-1, frame_index=None):
        if self.replay:
            res = self.log[self.i]
            self.i += 1
            return res
        res = self.inner(frame, box, track_id, frame_index)
        self.log.append(res)
        return res

    def info(self):
        return self.inner.info()


def joints_2d(records, cam):
    out = []
    for r in records:
        j = np.asarray(r["joints"])[:22]
        out.append({**r, "joints2d": np.stack([cam["focal"] * j[:, 0] / j[:, 2] + cam["cx"],
                                               cam["focal"] * j[:, 1] / j[:, 2] + cam["cy"],
                                               np.zeros(22)], 1)})
    return out


def silhouette_iou(out, background, det, info) -> list[float]:
    """IoU of the rendered bodies with the fitted people's own instance masks. With a detector that gives
    keypoints (mediapipe), only in frames where its BlazePose segmented them (it carries their
    keypoints): other frames' instances can be selfie-segmentation blobs holding several people. With one
    that gives none (the ssd default), every instance is the selfie mask of that person's own box."""
    from privvid.mesh.metrics import iou

    ok = [k for k, p in enumerate(info["people"]) if p["status"] == "ok"]
    if not ok or (det.keypoints is not None and any((det.keypoints[k][:, 2] >= 0.5).sum() < 6 for k in ok)):
        return []
    drawn = (out != background).any(-1)
    return [iou(drawn, np.any([det.masks[k] for k in ok], axis=0))]


def run_clip(path: Path, size, frames_n: int, window: int, smooths: list[float], console: Console,
             carry_grow: float | None = None):
    from privvid.config import AnonymizeConfig, DetectConfig, MeshConfig
    from privvid.detect import build_mask_stream
    from privvid.mesh.metrics import group_errors
    from privvid.mesh.people import decode
    from privvid.mesh.pose import MediapipePose
    from privvid.mesh.stage import MeshStage, jitter

    frames = decode(path, size, frames_n)
    # carry_grow is an option of the mediapipe detector: giving it runs that backend
    detect = AnonymizeConfig(mode="mesh").resolved().detect if carry_grow is None else DetectConfig(backend="mediapipe",
                                                                    options={"carry_grow": carry_grow})
    pairs = build_mask_stream(detect).run(frames)
    dets = [d for d, _ in pairs]
    masks = np.stack([m for _, m in pairs])
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
        ious = []
        for s in range(0, len(frames), window):
            out, infos = stage(frames[s:s + window], dets[s:s + window], background[s:s + window],
                               masks[s:s + window])
            for k, info in enumerate(infos):
                ious += silhouette_iou(out[k], background[s + k], dets[s + k], info)
        summary = stage.finish()
        ok = [r for r in stage._records if r["ok"] and "joints" in r]
        rel = np.array([r["err_rel"] for r in ok])
        groups = group_errors(ok, summary["camera"])
        j2d = jitter(joints_2d(ok, summary["camera"]), key="joints2d", scale=1.0)
        rows.append({
            "clip": path.name, "frames": len(frames), "smooth": smooth,
            "person_frames": summary["person_frames"], "fitted": summary["fitted"],
            "err_rel": float(rel.mean()) if len(rel) else float("nan"),
            **{f"{g}_mean": float(v.mean()) if len(v) else float("nan") for g, v in groups.items()},
            **{f"{g}_p90": float(np.percentile(v, 90)) if len(v) else float("nan") for g, v in groups.items()},
            "arms_max": float(groups["arms"].max()) if len(groups["arms"]) else float("nan"),
            "jitter_mm": summary["jitter_mm"], "jitter_px": j2d,
            "iou_mean": float(np.mean(ious)) if ious else float("nan"),
            "iou_min": float(np.min(ious)) if ious else float("nan"),
        })
    stage.close()
    return rows


def main() -> None:
    from privvid.config import parse_size

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--size", default="432x240")
    parser.add_argument("--window", type=int, default=24)
    parser.add_argument("--smooth", default="0,1", help="comma-separated smoothing strengths")
    parser.add_argument("--carry-grow", type=float, default=None,
                        help="run the mediapipe detector with this carry_grow option (default: the default "
                             "detector, ssd)")
    args = parser.parse_args()
    size = parse_size(args.size)
    smooths = [float(s) for s in args.smooth.split(",")]
    console = Console(width=200)
    clips = args.clips or DEFAULT_CLIPS
    table = Table(title=f"Mask2Mesh fit quality ({args.size}, first {args.frames} frames, window {args.window})")
    for col in ("clip", "smooth", "person-frames", "fitted", "all (fitter)", "arms mean", "arms p90",
                "arms max", "torso mean", "legs mean", "jitter mm/f^2", "jitter px/f^2", "IoU mean", "IoU min"):
        table.add_column(col, justify="right" if col != "clip" else "left")
    for clip in clips:
        if not clip.exists():
            console.print(f"[yellow]skip {clip} (not found)")
            continue
        for r in run_clip(clip, size, args.frames, args.window, smooths, console, args.carry_grow):
            fmt = lambda v, f: "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f.format(v)  # noqa
            table.add_row(r["clip"], f"{r['smooth']:g}", str(r["person_frames"]), str(r["fitted"]),
                          fmt(r["err_rel"], "{:.2%}"), fmt(r["arms_mean"], "{:.2%}"), fmt(r["arms_p90"], "{:.2%}"),
                          fmt(r["arms_max"], "{:.2%}"), fmt(r["torso_mean"], "{:.2%}"), fmt(r["legs_mean"], "{:.2%}"),
                          fmt(r["jitter_mm"], "{:.1f}"), fmt(r["jitter_px"], "{:.2f}"),
                          fmt(r["iou_mean"], "{:.3f}"), fmt(r["iou_min"], "{:.3f}"))
    console.print(table)
    from privvid.config import AnonymizeConfig

    detect = AnonymizeConfig(mode="mesh").resolved().detect
    console.print(f"detector: mesh mode's ({detect.backend}, options {detect.options}); pose: its BlazePose keypoints "
                  "where it gives them, else mediapipe BlazePose per person crop; errors are shares of the person "
                  "box height")


if __name__ == "__main__":
    sys.exit(main())
