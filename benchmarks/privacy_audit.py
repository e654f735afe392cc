"""Privacy the way an adversary measures it: an independent detector on the written output.

    python benchmarks/privacy_audit.py [--size 432x240|native] [--clips vtest,schoolgirls,dance-twirl,breakdance,two-people]
        [--settings ssd,mediapipe] [--yolo-masks] [--max-frames 300] [--stride 1]
    python benchmarks/privacy_audit.py --clips path/to/clip.mp4,path/to/frames/ --settings ssd

Each clip goes through ``privvid anonymize --mode remove`` (the library call the CLI makes, with
masks saved) once per detector setting, side by side in one run: ``ssd`` is the default,
``mediapipe`` the previous default. The int8 YOLOv8n-seg in ../shared/weights (conf 0.35, the
reference a privvid user does not run) then counts people in the input frames and in the written
frames at the same size:

* found in output / input - the people still visible (target <= 5%);
* centre in mask - people found in the output whose box centre lies inside the removal mask
  (pasted back or smeared into a person shape; with ``--yolo-masks`` the clip is also anonymised
  with the YOLO detector itself, so its masks cover the people it finds: target <= 2%);
* check - frames the written-frame check flagged and mended / of which it painted a box solid;
* removed - mean share of the frame in the removal mask; fps - the clip's own frames/s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from privvid.config import MEDIAPIPE_AS_MEASURED, AnonymizeConfig, DetectConfig, InpaintConfig  # noqa: E402
from privvid.io.discover import ClipSource  # noqa: E402
from privvid.io.video import read_frames  # noqa: E402
from _shared import DATA, DEMO, YOLO_SEG, compared_settings, fill_settings, size_arg  # noqa: E402

VTEST = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
CLIPS = {
    "vtest": VTEST,
    "schoolgirls": DATA / "davis-inpaint-examples" / "schoolgirls" / "video.mp4",
    "dogs-jump": DATA / "davis-inpaint-examples" / "dogs-jump" / "video.mp4",
    "dance-twirl": DATA / "davis2016-person" / "JPEGImages" / "480p" / "dance-twirl",
    "breakdance": DATA / "davis2016-person" / "JPEGImages" / "480p" / "breakdance",
    "parkour": DATA / "davis2016-person" / "JPEGImages" / "480p" / "parkour",
    "two-people": DEMO / "mmaction2_demo_skeleton_two_people.mp4",
    "juggler": DEMO / "sam2_juggle.mp4",
    "tai-chi": DATA / "action-clips" / "k400_tai_chi__mmskeleton.mp4",   # one person who never leaves the spot
}
REF_CONF = 0.35


def settings(names: list[str], weights: Path) -> list[tuple[str, DetectConfig, InpaintConfig]]:
    """(label, detector, fill) of each named setting."""
    fills = {name: (label, DetectConfig(), fill) for name, (label, fill) in fill_settings().items()}
    table = {
        "ssd": ("ssd (default)", DetectConfig()),
        "ssd-notiles": ("ssd tiles=none", DetectConfig(options={"tiles": "none"})),
        **compared_settings(),
        "mediapipe-tiles": ("mediapipe tiles=3x2/4", DetectConfig(backend="mediapipe", **MEDIAPIPE_AS_MEASURED,
                                                                   options={"tiles": "3x2", "tile_every": 4})),
        "yolo": (f"yolo {weights.name}", DetectConfig(backend="yolo", weights=weights, min_score=REF_CONF)),
    }
    return [fills[n] if n in fills else (*table[n], InpaintConfig()) for n in names]


class Reference:
    """The adversary: int8 YOLOv8n-seg person boxes, score >= REF_CONF, duplicates merged."""

    def __init__(self, weights: Path) -> None:
        from privvid.detect.yolo_backend import YoloDetector

        self.det = YoloDetector(DetectConfig(backend="yolo", weights=weights, min_score=REF_CONF,
                                            options={"refine": False}))  # the raw model, nothing of privvid

    def boxes(self, frame: np.ndarray) -> np.ndarray:
        from privvid.detect.litert_models import nms

        d = self.det(frame)
        keep = [i for i, s in enumerate(d.scores) if s >= REF_CONF]
        if not keep:
            return np.zeros((0, 4), np.float32)
        b, s = d.boxes[keep], d.scores[keep]
        return b[nms(b, s, 0.5, 0.8)]


def frames_of(path: Path, size: tuple[int, int] | None, limit: int, stride: int) -> list[np.ndarray]:
    out = []
    for i, f in enumerate(read_frames(path, size=size)):
        if i >= limit:
            break
        out.append(f)
    return out[::stride]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="432x240",
                    help="WxH both inputs and outputs are scored at, or 'native' (each clip at its own size, not resized)")
    ap.add_argument("--clips", default="vtest,schoolgirls,dance-twirl,breakdance,two-people",
                    help=f"comma-separated names ({', '.join(CLIPS)}) or paths of videos / frame folders")
    ap.add_argument("--settings", default="ssd,mediapipe")
    ap.add_argument("--yolo-masks", action="store_true", help="also anonymise with the yolo detector (masks that "
                    "cover what the reference finds) and score people pasted back inside them")
    ap.add_argument("--max-frames", type=int, default=300, help="frames of each clip anonymised and scored")
    ap.add_argument("--stride", type=int, default=1, help="score every k-th frame")
    ap.add_argument("--weights", type=Path, default=YOLO_SEG)
    ap.add_argument("--no-check", action="store_true", help="turn the written-frame check off (to see its effect)")
    ap.add_argument("--filled-score", type=float, default=None, help="the check's filled_score (default: its own)")
    ap.add_argument("--filled-whole", type=float, default=None,
                    help="the check's filled_whole (default: its own; 1 = a finding in the filled region always "
                         "refills its whole box, the rule until 2026-12-06)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--ssd-options", default="{}", help="JSON options for the ssd setting, e.g. '{\"score\": 0.2}'")
    args = ap.parse_args(argv)
    console = Console(width=160)
    if not args.weights.is_file():
        console.print(f"[red]reference weights {args.weights} not found[/red]")
        return 2
    size = size_arg(args.size)
    names = [n for n in args.settings.split(",") if n] + (["yolo"] if args.yolo_masks else [])
    configs = settings(names, args.weights)
    ssd_opts = json.loads(args.ssd_options)
    if ssd_opts:
        configs = [(f"{label} {ssd_opts}", replace(cfg, options={**cfg.options, **ssd_opts}), fill)
                   if cfg.backend == "ssd" else (label, cfg, fill) for label, cfg, fill in configs]
    ref = Reference(args.weights)
    from privvid.anonymize.check import CheckConfig
    from privvid.anonymize.pipeline import anonymize_clip

    check_cfg = CheckConfig(**{k: v for k, v in (("filled_score", args.filled_score),
                                                 ("filled_whole", args.filled_whole)) if v is not None})
    rule = "check off" if args.no_check else f"check filled_whole {check_cfg.filled_whole}"
    table = Table(title=f"independent audit ({args.weights.name}, conf {REF_CONF}) of --mode remove at "
                        f"{'native size' if size is None else f'{size[0]}x{size[1]}'}, first {args.max_frames} frames ({rule})")
    for col in ("clip", "detector", "frames", "people in input", "found in output", "share", "centre in mask",
                "share ", "check flagged / solid", "removed %", "fps"):
        table.add_column(col, justify="left" if col in ("clip", "detector") else "right")
    results = []
    totals: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="privvid-audit-") as tmp:
        for name in [c for c in args.clips.split(",") if c]:
            path = CLIPS.get(name, Path(name))   # a name above, or a video file / frame folder of your own
            clip = name if name in CLIPS else path.name
            if not path.exists():
                console.print(f"[yellow]{clip}: {path} not found, skipped[/yellow]")
                continue
            inputs = frames_of(path, size, args.max_frames, args.stride)
            in_boxes = [ref.boxes(f) for f in inputs]
            n_in = int(sum(len(b) for b in in_boxes))
            for label, det, fill in configs:
                cfg = AnonymizeConfig(mode="remove", resize=size, save_masks=True, detect=det, inpaint=fill,
                                      check=CheckConfig(enabled=False) if args.no_check else check_cfg)
                out_root = Path(tmp) / f"{clip}-{len(results)}"
                res = anonymize_clip(_limited(path, args.max_frames, Path(tmp)), out_root, cfg)
                outs = frames_of(res.output, size, args.max_frames, args.stride)
                masks = np.load(res.output.with_name(res.output.name[:-4] + ".masks.npz"))["masks"][::args.stride]
                found = centre = 0
                for frame, mask in zip(outs, masks):
                    boxes = ref.boxes(frame)
                    found += len(boxes)
                    for x0, y0, x1, y1 in boxes:
                        cx, cy = int((x0 + x1) / 2), int((y0 + y1) / 2)
                        if 0 <= cy < mask.shape[0] and 0 <= cx < mask.shape[1] and mask[cy, cx]:
                            centre += 1
                side = json.loads(res.output.with_name(res.output.name[:-4] + ".json").read_text())
                flagged = side.get("check", {}).get("frames_flagged", 0)
                solid = side.get("check", {}).get("totals", {}).get("solid", 0)
                removed = float(masks.mean()) * 100
                fps = res.frames / max(res.seconds, 1e-9)
                t = totals.setdefault(label, [0, 0, 0])
                t[0] += n_in
                t[1] += found
                t[2] += centre
                results.append(dict(clip=clip, detector=label, frames=len(outs), people_in=n_in, found_out=found,
                                    centre_in_mask=centre, check_flagged=flagged, check_solid=solid,
                                    removed_pct=removed, fps=fps))
                table.add_row(clip, label, str(len(outs)), str(n_in), str(found), f"{100 * found / max(n_in, 1):.1f}%",
                              str(centre), f"{100 * centre / max(n_in, 1):.1f}%", f"{flagged} / {solid}", f"{removed:.1f}",
                              f"{fps:.1f}")
                console.print(f"[dim]{clip} / {label}: done[/dim]")
            table.add_section()
    for label, (n_in, found, centre) in totals.items():
        table.add_row("all", label, "", str(n_in), str(found), f"{100 * found / max(n_in, 1):.1f}%", str(centre),
                      f"{100 * centre / max(n_in, 1):.1f}%", "", "", "")
    console.print(table)
    console.print(f"cores: {os.cpu_count()}, load average at end: {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _limited(path: Path, limit: int, tmp: Path) -> ClipSource:
    """The clip as a ClipSource; frame folders and videos longer than ``limit`` frames are cut to a
    temporary H.264 copy of their first ``limit`` frames (the anonymiser sees what is scored)."""
    from privvid.io.video import VideoWriter, probe

    info = probe(path)
    if info.frames and info.frames <= limit and path.is_file():
        return ClipSource(path, path.stem)
    cut = tmp / f"cut-{path.stem}.mp4"
    if not cut.exists():
        writer = VideoWriter(cut, info.width - info.width % 2, info.height - info.height % 2, info.fps or 25, crf=12)
        try:
            for i, f in enumerate(read_frames(path, size=(info.width - info.width % 2, info.height - info.height % 2))):
                if i >= limit:
                    break
                writer.write(f)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
    return ClipSource(cut, path.stem)


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
