"""Mask quality of the detect backends on DAVIS ground truth: IoU, person-pixel leak, ms/frame.

    python benchmarks/mask_quality.py [--data ../shared/data] [--size 432x240]
        [--weights ../shared/weights/yolov8n-seg_full_integer_quant.tflite] [--sam-weights sam_vit_b.pth]
        [--variants default,old,pose1,pass1,selfie] [--sequences parkour,dance-twirl,...]
    python benchmarks/mask_quality.py --variants default,old --weights none --speed-clips CLIP...

Every backend runs through the same streaming chain the pipeline uses
(privvid.detect.stream.MaskStream: detection -> tracking -> temporal union -> dilation).
Metrics per sequence (all frames, at --size; the GT is resized with nearest neighbour):

* IoU inst  - IoU of the union of the INSTANCE masks with the GT (the segmentation quality);
* IoU best  - IoU of the single instance that matches the GT best in each frame (the usual instance
              IoU: a bystander right beside the person does not count against it, one merged into the
              person's instance does);
* IoU raw   - the same for every person pixel the detector reports (instances + extra);
* IoU rem   - the same for the final dilated, temporally unioned REMOVAL mask;
* leak      - share of GT person pixels NOT covered by the removal mask (what the issue targets);
* worst     - the worst single frame's leak;
* outside   - removal mask outside the GT, as a share of the frame (scene lost; on sequences with
              unannotated bystanders it includes them, rightly removed).

IoU "bystanders ignored": dance-twirl and breakdance have unannotated spectators. For the
IoU columns, predicted instances (and connected blobs, for raw/removal) that do not touch
the GT at all are left out, so finding a bystander is not counted as an error. Leak needs no
such rule. kite-surf, paragliding-launch and horsejump-high annotate the kite / glider /
horse with the person, so their leak and IoU overstate person misses.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from privvid.config import MEDIAPIPE_AS_MEASURED, DetectConfig, parse_size  # noqa: E402
from privvid.detect import build_mask_stream  # noqa: E402
from _shared import DATA, YOLO_SEG, compared_settings  # noqa: E402

DAVIS16 = ["parkour", "dance-twirl", "breakdance", "kite-surf", "paragliding-launch", "horsejump-high"]
INSTANCE_SEQS = {"schoolgirls": [1, 3, 5, 7], "dogs-jump": [3]}  # person ids (others: bags, dogs)
PERSON_ONLY = ["parkour", "dance-twirl", "breakdance"]


def load_sequence(data: Path, name: str, size: tuple[int, int]):
    """(frames RGB uint8, GT person masks bool) at ``size`` (w, h)."""
    w, h = size
    if name in INSTANCE_SEQS:
        import av

        with av.open(str(data / "davis-inpaint-examples" / name / "video.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        gts = [np.isin(np.array(Image.open(p)), INSTANCE_SEQS[name])
               for p in sorted(glob.glob(str(data / "davis-inpaint-examples" / name / "masks" / "*.png")))]
    else:
        root = data / "davis2016-person"
        frames = [np.array(Image.open(p).convert("RGB"))
                  for p in sorted(glob.glob(str(root / "JPEGImages/480p" / name / "*.jpg")))]
        gts = [np.array(Image.open(p)) > 0 for p in sorted(glob.glob(str(root / "Annotations/480p" / name / "*.png")))]
    n = min(len(frames), len(gts))
    frames = [f if f.shape[:2] == (h, w) else cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in frames[:n]]
    gts = [g if g.shape == (h, w) else cv2.resize(g.view(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST) > 0
           for g in gts[:n]]
    return frames, gts


def touching_gt(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Connected blobs of ``pred`` that overlap the GT (bystander blobs dropped)."""
    if not pred.any():
        return pred
    _, lab = cv2.connectedComponents(pred.view(np.uint8), connectivity=8)
    keep = np.unique(lab[pred & gt])
    return np.isin(lab, keep[keep > 0])


def run_backend(cfg: DetectConfig, frames, gts):
    stream = build_mask_stream(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    outs = stream.run(frames)
    wall = (time.perf_counter() - t0) / len(frames) * 1000
    cpu = (time.process_time() - c0) / len(frames) * 1000
    acc = dict(ii=0, iu=0, bi=0, bu=0, ri=0, ru=0, mi=0, mu=0, leak=0, gt=0, outside=0.0)
    worst = 0.0
    for (dets, removal), gt in zip(outs, gts):
        inst = np.zeros_like(gt)
        for m in dets.masks:
            if (m & gt).any():
                inst |= m
        pairs = [(int((m & gt).sum()), int((m | gt).sum())) for m in dets.masks]
        bi, bu = max(pairs, key=lambda t: t[0] / max(t[1], 1), default=(0, int(gt.sum())))
        acc["bi"] += bi
        acc["bu"] += bu
        raw = touching_gt(dets.union(), gt)
        rem = touching_gt(removal, gt)
        for key, pred in (("i", inst), ("r", raw), ("m", rem)):
            acc[key + "i"] += int((pred & gt).sum())
            acc[key + "u"] += int((pred | gt).sum())
        missed = int((gt & ~removal).sum())
        acc["leak"] += missed
        acc["gt"] += int(gt.sum())
        acc["outside"] += float((removal & ~gt).mean())
        if gt.sum():
            worst = max(worst, missed / gt.sum())
    return dict(
        iou_inst=acc["ii"] / max(acc["iu"], 1), iou_best=acc["bi"] / max(acc["bu"], 1), iou_raw=acc["ri"] / max(acc["ru"], 1),
        iou_rem=acc["mi"] / max(acc["mu"], 1), leak=acc["leak"] / max(acc["gt"], 1), worst=worst,
        outside=acc["outside"] / max(len(frames), 1),
        ms=wall, cpu_ms=cpu, frames=len(frames), info=stream.info(),
    )


def speed_table(console: Console, clips: list[Path], size: tuple[int, int], configs) -> int:
    """CPU and wall ms/frame of each configuration's whole chain on real clips, side by side."""
    from privvid.io.video import read_frames

    table = Table(title=f"detect chain cost at {size[0]}x{size[1]} on clips (no GT)")
    for col in ("clip", "backend", "frames", "ms/frame", "cpu ms", "removed % of frame"):
        table.add_column(col, justify="left" if col in ("clip", "backend") else "right")
    totals: dict[str, list[float]] = {}
    for clip in clips:
        frames = list(read_frames(clip, size=size))
        for label, cfg in configs:
            stream = build_mask_stream(cfg)
            t0, c0 = time.perf_counter(), time.process_time()
            outs = stream.run(frames)
            wall = (time.perf_counter() - t0) / len(frames) * 1000
            cpu = (time.process_time() - c0) / len(frames) * 1000
            area = 100 * float(np.mean([r.mean() for _, r in outs]))
            totals.setdefault(label, []).extend([cpu] * len(frames))
            table.add_row(clip.name, label, str(len(frames)), f"{wall:.1f}", f"{cpu:.1f}", f"{area:.1f}")
        table.add_section()
    for label, v in totals.items():
        table.add_row("all (frame-weighted)", label, str(len(v)), "", f"{np.mean(v):.1f}", "")
    console.print(table)
    console.print(f"cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.2f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--size", default="432x240", help="WxH the frames are resized to (the pipeline's output size)")
    ap.add_argument("--weights", type=Path, default=YOLO_SEG,
                    help="YOLO seg weights (yolo rows are skipped when the file is missing)")
    ap.add_argument("--sam-weights", type=Path, default=None, help="SAM checkpoint (sam rows only when given)")
    ap.add_argument("--sequences", default=",".join(DAVIS16 + list(INSTANCE_SEQS)))
    ap.add_argument("--speed-clips", nargs="*", type=Path, default=None,
                    help="instead of DAVIS quality: time the chain (cpu ms/frame, crops per frame) of each variant "
                         "on these videos (no GT needed), e.g. the demo clips benchmarks/anonymize_speed.py uses")
    ap.add_argument("--variants", default="default,mediapipe",
                    help="default (the ssd backend); ssd variants: ssd-notiles (no tiles), ssd-tiles1 (tiles every "
                         "frame), ssd-tiles3 (tiles every 3rd frame), ssd-vote2 (temporal_vote=2: the neighbours' vote), ssd-fixed (fixed 11 px dilation), ssd-t0 (no temporal union), ssd-before (a 3 px minimum dilation instead of 3%% of the frame height: the default until 2026-12-01), ssd-shadow (shadow=0.5), ssd-refine (refine=pose: each tall person's instance by BlazePose's mask; mesh mode's default), ssd-selfie (refine=none, remove mode's default, said explicitly), ssd-refine-box (refine=pose without following the landmarks: the pose model on the box's crop each frame), ssd-raw-region (refine=pose, the followed region from the raw alignment points: the rule until 2026-12-06), ssd-upright (no turned pass: the default until 2026-12-02), ssd-union (neighbour masks not moved by optical flow and fully grown: the default until 2026-12-05), ssd-tiles2x1, ssd-tiles3x1, ssd-idle0 (tiles on every 2nd frame: the default until 2026-12-06); mediapipe (the previous default, fixed 11 px "
                         "dilation) and its variants: old (the default before the crop pass: pose every frame, "
                         "crops=0, i.e. the first measurements in docs/mask_quality.md); pose1 (default with pose on "
                         "every frame); single (one pose person per frame, the default before the pose cascade); "
                         "carry0 / carry25 (carry_grow 0 / 0.25); tiles4 (tiles 3x2 on every 4th frame); "
                         "pass1 (one crop pass); selfie (pose_every=0: selfie + crops); crops0 (selfie only, no crops, "
                         "no pose)")
    args = ap.parse_args(argv)
    size = parse_size(args.size)
    ssd = DetectConfig()
    base = DetectConfig(backend="mediapipe", **MEDIAPIPE_AS_MEASURED)

    def mp(**options: object) -> DetectConfig:  # the mediapipe baseline with some of its options changed
        return replace(base, options=options)

    configs: list[tuple[str, DetectConfig]] = []
    variants = {"default": ("ssd (default)", ssd),
                "ssd-notiles": ("ssd tiles=none", replace(ssd, options={"tiles": "none"})),
                "ssd-tiles1": ("ssd tiles every frame", replace(ssd, options={"tile_every": 1})),
                "ssd-tiles3": ("ssd tiles every 3rd frame", replace(ssd, options={"tile_every": 3})),
                "ssd-fixed": ("ssd fixed 11 px dilation", replace(ssd, dilate_rel=0.0)),
                "ssd-t0": ("ssd temporal=0 (no union over frames)", replace(ssd, temporal=0)),
                "ssd-before": ("ssd 3 px minimum dilation (before 2026-12-01)", replace(ssd, dilate_min_frame=0.0)),
                "ssd-shadow": ("ssd shadow=0.5 (cast shadows removed too)", replace(ssd, options={"shadow": 0.5})),
                "ssd-refine-box": ("ssd refine=pose refine_track=false (the pose model on the box's crop each frame: "
                                   "refine until 2026-12-06)",
                                   replace(ssd, options={"refine": "pose", "refine_track": False})),
                **compared_settings(),
                "old": ("mediapipe old default (pose_every=1, crops=0)", mp(pose_every=1, crops=0)),
                "pose1": ("mediapipe pose_every=1", mp(pose_every=1)),
                "single": ("mediapipe pose_people=1 (no cascade)", mp(pose_people=1)),
                "carry0": ("mediapipe carry_grow=0 (whole blobs)", mp(carry_grow=0.0)),
                "carry25": ("mediapipe carry_grow=0.25", mp(carry_grow=0.25)),
                "tiles4": ("mediapipe tiles=3x2 every 4th frame", mp(tiles="3x2", tile_every=4)),
                "pass1": ("mediapipe crop_passes=1", mp(crop_passes=1)),
                "selfie": ("mediapipe pose_every=0 (selfie+crops)", mp(pose_every=0)),
                "crops0": ("mediapipe selfie only (no crops)", mp(pose_every=0, crops=0))}
    for v in args.variants.split(","):
        if v:
            configs.append(variants[v])
    if args.weights and args.weights.is_file():
        configs.append((f"yolo {args.weights.name}", replace(base, backend="yolo", weights=args.weights)))
    if args.sam_weights:
        sam = replace(base, backend="sam", sam_weights=args.sam_weights)
        configs.append((f"sam on {sam.sam_base}", sam))

    console = Console(width=170)
    if args.speed_clips:
        return speed_table(console, args.speed_clips, size, configs)
    table = Table(title=f"mask quality at {size[0]}x{size[1]} (temporal=+-{base.temporal}; ssd: dilation "
                        f"{ssd.dilate_rel} x person height; mediapipe: dilate={base.dilate} px)")
    for col in ("sequence", "backend", "frames", "IoU inst", "IoU best", "IoU raw", "IoU rem", "leak %", "worst %", "outside %",
                "ms/frame", "cpu ms"):
        table.add_column(col, justify="left" if col in ("sequence", "backend") else "right")
    summary: dict[str, list[dict]] = {}
    for seq in args.sequences.split(","):
        frames, gts = load_sequence(args.data, seq, size)
        for label, cfg in configs:
            r = run_backend(cfg, frames, gts)
            summary.setdefault(label, []).append(dict(r, seq=seq))
            table.add_row(seq, label, str(r["frames"]), f"{r['iou_inst']:.3f}", f"{r['iou_best']:.3f}",
                          f"{r['iou_raw']:.3f}",
                          f"{r['iou_rem']:.3f}", f"{100 * r['leak']:.2f}", f"{100 * r['worst']:.1f}",
                          f"{100 * r['outside']:.1f}", f"{r['ms']:.1f}", f"{r['cpu_ms']:.1f}")
            console.print(f"[dim]{seq} / {label}: done[/dim]")
        table.add_section()
    console.print(table)

    agg = Table(title="means: person-only (parkour, dance-twirl, breakdance) and person-mask sequences")
    for col in ("backend", "IoU inst (person-only)", "IoU best (person-only)", "leak % (person-only)", "worst % (person-only)",
                "leak % (+schoolgirls, dogs-jump)", "outside % parkour", "ms/frame (all)", "cpu ms (all)"):
        agg.add_column(col, justify="left" if col == "backend" else "right")
    for label, rows in summary.items():
        po = [r for r in rows if r["seq"] in PERSON_ONLY]
        pm = [r for r in rows if r["seq"] in PERSON_ONLY or r["seq"] in INSTANCE_SEQS]
        agg.add_row(label,
                    f"{np.mean([r['iou_inst'] for r in po]):.3f}" if po else "-",
                    f"{np.mean([r['iou_best'] for r in po]):.3f}" if po else "-",
                    f"{100 * np.mean([r['leak'] for r in po]):.2f}" if po else "-",
                    f"{100 * max(r['worst'] for r in po):.1f}" if po else "-",
                    f"{100 * np.mean([r['leak'] for r in pm]):.2f}" if pm else "-",
                    "".join(f"{100 * r['outside']:.1f}" for r in rows if r["seq"] == "parkour") or "-",
                    f"{np.mean([r['ms'] for r in rows]):.1f}", f"{np.mean([r['cpu_ms'] for r in rows]):.1f}")
    console.print(agg)
    console.print(f"cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # mediapipe graphs can hang interpreter shutdown
