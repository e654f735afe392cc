"""``privvid anonymize``: remove, replace or blur every person in a clip or a whole dataset."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from privvid.anonymize import anonymize_dataset
from privvid.config import FILL_MODES, MEDIAPIPE_AS_MEASURED, parse_size, preset, refuse_other_modes
from privvid.errors import ConfigError
from privvid.runtime import RunProgress

# piped output (a log file, CI) keeps whole clip names instead of wrapping them at 80 columns
console = Console() if sys.stdout.isatty() else Console(width=100_000, soft_wrap=True)
warnings = Console(stderr=True, highlight=False, soft_wrap=True)


def anonymize(
    input_path: Path = typer.Argument(..., metavar="IN", help="A video, a frame folder, a folder of videos or a "
                                      "class-per-folder tree."),
    out: Path = typer.Argument(..., metavar="OUT", help="Output root; relative paths of the input are mirrored."),
    mode: str = typer.Option("remove", help="remove | mesh | blur | pixelate | solid"),
    preset_name: str = typer.Option("tiny", "--preset", help="tiny (CPU defaults), paper (432x240 as in Mask2Mesh) or "
                                     "scene (more of the scene kept around people, about two thirds of the speed)."),
    resize: Optional[str] = typer.Option(None, help="Output size WxH, e.g. 432x240; -2x240 = height 240 with the "
                                         "aspect ratio kept (default: keep the size)."),
    fps: Optional[float] = typer.Option(None, help="Output frame rate (default: keep). A video is resampled to it; a frame folder (no rate of its own, 24 fps by default) keeps every frame, shown at it."),
    crf: int = typer.Option(18, help="H.264 quality (lower = better, larger)."),
    gop: int = typer.Option(16, help="Key-frame interval of the output, in frames (short = fast seeking)."),
    save_masks: bool = typer.Option(False, "--save-masks", help="Also write <clip>.masks.npz (bool masks T,H,W)."),
    save_params: bool = typer.Option(False, "--save-params", help="mesh: also write <clip>.params.npz."),
    detector: Optional[str] = typer.Option(None, help="Detector backend: ssd (default: multi-person, embedded), "
                                           "mediapipe (the previous default), yolo, sam."),
    detect_opt: Optional[list[str]] = typer.Option(None, "--detect-opt", help="A detector option NAME=VALUE (repeat "
                                                   "it), e.g. --detect-opt tiles=3x2 (ssd, mediapipe) or "
                                                   "crop_passes=1 (mediapipe); see docs/anonymize.md."),
    check: Optional[bool] = typer.Option(None, "--check/--no-check", help="Look at every written frame again for "
                                         "people and faces and mend them (default: on for remove and mesh)."),
    weights: Optional[Path] = typer.Option(None, help="yolo: ultralytics segmentation weights (implies --detector "
                                           "yolo; with --sam-weights, SAM refines its boxes)."),
    sam_weights: Optional[Path] = typer.Option(None, help="sam: segment-anything checkpoint (implies --detector "
                                               "sam)."),
    sam_model: Optional[str] = typer.Option(None, help="sam: the checkpoint's architecture, vit_b (default), vit_l "
                                            "or vit_h."),
    sam_base: Optional[str] = typer.Option(None, help="sam: the detector whose boxes SAM refines (default ssd; "
                                           "yolo with --weights)."),
    detect_tiles: Optional[str] = typer.Option(None, "--detect-tiles", help="Also search COLSxROWS overlapping tiles "
                                               "for small people (ssd: default 2x2, 'none' = off; mediapipe: off by "
                                               "default)."),
    tile_every: Optional[int] = typer.Option(None, "--tile-every", min=1, help="Run the tiles on every K-th frame "
                                             "(ssd default 2, mediapipe default 4)."),
    temporal_align: Optional[str] = typer.Option(None, "--temporal-align", help="How the +-2 frame union places "
                                                 "the neighbours' masks: flow (default: moved onto the person by "
                                                 "optical flow) or none (where they lie; mediapipe's default)."),
    temporal_vote: Optional[int] = typer.Option(None, "--temporal-vote", help="With flow: a neighbour's pixel next to "
                                                "a person the frame found is removed where this many neighbours "
                                                "hold it, or in a thick piece (default 1: any neighbour; 2 keeps "
                                                "more scene)."),
    work_lines: Optional[int] = typer.Option(None, "--work-lines", min=0, help="Detect and fill on frames scaled "
                                             "down until their shorter side is at most this long; masks and fills "
                                             "are scaled back up, the output keeps its size (default 720; 0 = at "
                                             "the frame's own size, slower on large frames)."),
    pose_people: Optional[int] = typer.Option(None, "--pose-people", min=1, help="mediapipe: people its BlazePose "
                                              "cascade follows per frame (default 3; 1 = fastest, one person); "
                                              "same as --detect-opt pose_people=N."),
    inpainter: Optional[str] = typer.Option(None, help="Inpainting backend: propagate (default), opencv."),
    body_model: Optional[Path] = typer.Option(None, help="mesh: SMPL-X model file (.npz); default embedded mannequin."),
    gender: str = typer.Option("neutral", help="mesh: neutral | male | female (needs those model files)."),
    pose_weights: Optional[Path] = typer.Option(None, help="mesh: ultralytics pose weights instead of mediapipe."),
    workers: int = typer.Option(1, help="Clips processed in parallel."),
    executor: str = typer.Option("local", help="local (processes) or ray."),
    ray_address: Optional[str] = typer.Option(None, help="Ray cluster address (executor ray)."),
    clip_timeout: Optional[float] = typer.Option(None, help="Quarantine a clip that takes longer (seconds)."),
    trust_model_files: bool = typer.Option(False, "--trust-model-files", help="Load pickle-based model files "
                                           "(.pt/.pth/.pkl: they can run code). Off: only .tflite/.onnx/.npz."),
    mesh_faces: Optional[int] = typer.Option(None, "--mesh-faces", help="mesh: draw each body with at most this "
                                             "many triangles (default 16000; a body at most 160 / 80 px on screen gets a half / "
                                             "a quarter of them, at least 1000; 0 = the full mesh for every body)."),
    mesh_min_frames: Optional[int] = typer.Option(None, "--mesh-min-frames", help="mesh: a person gets a body "
                                                  "once it has passed every check in this many frames (default 5; "
                                                  "people seen for fewer are removed, without a body; 1 = every fit)."),
    mesh_fallback: Optional[str] = typer.Option(None, "--mesh-fallback", help="mesh: 'remove' writes a clip whose "
                                                "bodies cannot be drawn as remove mode (said in its sidecar) "
                                                "instead of failing it."),
    blur_size: Optional[float] = typer.Option(None, "--blur-size", help="blur: the blur's width as a share of the "
                                              "frame's shorter side, at least 51 px (default 0.21: 51 px at 240 lines, 227 at 1080)."),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", help="pixelate: a block's side as a share of "
                                               "the frame's shorter side, at least 16 px (default 0.067: 16 px at 240 lines, 72 at 1080)."),
    solid_color: Optional[str] = typer.Option(None, "--solid-color", help="solid: the fill's colour as R,G,B "
                                              "(default 128,128,128)."),
    record_paths: bool = typer.Option(False, "--record-paths", help="Also keep each input's absolute path in "
                                      "the sidecars and the ledger (default: relative to IN, and its hash)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would be processed (and which inputs are "
                                 "skipped, and why); write nothing."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Anonymise IN into OUT. Re-running the same command resumes; failed clips are quarantined."""
    cfg = preset(preset_name)
    if detector is None and (sam_weights is not None or sam_model is not None or sam_base is not None):
        detector = "sam"
    backend = detector or ("yolo" if weights is not None else cfg.detect.backend)
    if backend == "sam" and sam_base is None and weights is not None:
        sam_base = "yolo"
    if backend != "sam" and (sam_model is not None or sam_base is not None):
        raise ConfigError(f"--sam-model and --sam-base are for --detector sam, not {backend}")
    # a preset's detector options are its backend's: another backend starts from its own defaults
    options = dict(cfg.detect.options) if backend == cfg.detect.backend else {}
    options.update(parse_options(detect_opt or []))
    # the shortcut flags are options of the backend (ssd, mediapipe; sam hands them to its base detector),
    # which refuses a name it does not have before any clip runs
    options.update(_given(tiles=detect_tiles, tile_every=tile_every, pose_people=pose_people))
    flat: dict[str, Any] = {}
    if backend == "mediapipe":
        flat.update(MEDIAPIPE_AS_MEASURED)
    if temporal_align is not None:
        flat["temporal_align"] = temporal_align
    if temporal_vote is not None:
        flat["temporal_vote"] = temporal_vote
    if work_lines is not None:
        flat["work_lines"] = work_lines
    detect = replace(cfg.detect, backend=backend, options=options, trust_model_files=trust_model_files,
                     **_given(weights=weights, sam_weights=sam_weights, sam_model=sam_model, sam_base=sam_base),
                     **flat)
    if inpainter is not None and mode not in FILL_MODES:
        raise ConfigError(f"--inpainter is read by --mode remove and mesh only, not by --mode {mode}")
    inpaint = replace(cfg.inpaint, **_given(backend=inpainter, work_lines=work_lines))
    mesh = replace(cfg.mesh, body_model=body_model, gender=gender, save_params=save_params,
                   trust_model_files=trust_model_files, fallback=mesh_fallback,
                   **_given(pose_weights=pose_weights, render_faces=mesh_faces, min_frames=mesh_min_frames))
    if pose_weights is not None:
        mesh = replace(mesh, pose_backend="yolo")
    # given at its default too (preflight sees only other values)
    refuse_other_modes(mode, list(_given(blur_size=blur_size, pixel_size=pixel_size, solid_color=solid_color)))
    checks = cfg.check if check is None else replace(cfg.check, enabled=check)
    cfg = replace(cfg, mode=mode, detect=detect, inpaint=inpaint, mesh=mesh, save_masks=save_masks, crf=crf, gop=gop,
                  check=checks, record_paths=record_paths, **_given(resize=parse_size(resize) if resize else None, fps=fps,
                                                                    blur_size=blur_size, pixel_size=pixel_size,
                                                                    solid_color=_color(solid_color)))
    if dry_run:
        _print_plan(anonymize_dataset(input_path, out, cfg, workers=workers, executor=executor,
                                      ray_address=ray_address, clip_timeout=clip_timeout, dry_run=True))
        return
    with RunProgress(0, f"anonymize --mode {mode}", enabled=not quiet) as progress:
        summary = anonymize_dataset(
            input_path, out, cfg, workers=workers, executor=executor, ray_address=ray_address,
            clip_timeout=clip_timeout,
            on_start=progress.set_total,
            on_clip=lambda o: progress.advance(o.frames),
            on_warning=lambda text: warnings.print(f"[yellow]warning:[/yellow] {escape(text)}"),
        )
    _print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["tiles=3x2", "score=0.3"]`` -> {"tiles": "3x2", "score": 0.3} (numbers and true/false parsed)."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--detect-opt wants NAME=VALUE, got {item!r}")
        value: object = text.strip()
        low = text.strip().lower()
        if low in ("true", "false"):
            value = low == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(text)
                    break
                except ValueError:
                    continue
        out[name.strip()] = value
    return out


def _color(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        raise ConfigError(f"--solid-color must be R,G,B with whole numbers 0..255, got {text!r}") from None


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _print_summary(summary) -> None:  # noqa: ANN001 - RunSummary
    table = Table(title=f"privvid anonymize -> {escape(str(summary.out_root))}")
    table.add_column("clip")
    table.add_column("status")
    table.add_column("frames", justify="right")
    table.add_column("frames/s", justify="right")
    table.add_column("person px", justify="right")
    table.add_column("reason / notes")
    style = {"done": "green", "skipped": "cyan", "failed": "red"}
    for o in summary.outcomes:
        rate = f"{o.frames / o.seconds:.1f}" if o.status == "done" and o.seconds else ""
        cov = f"{100 * o.coverage_mean:.1f}%" if o.coverage_mean is not None else ""
        table.add_row(escape(o.relpath), f"[{style[o.status]}]{o.status}[/]", str(o.frames or ""), rate, cov,
                      escape(o.reason or "; ".join(o.notes)))
    console.print(table)
    _print_skipped(summary)
    failed = summary.count("failed")
    where = f" (quarantined, see {escape(str(summary.out_root))}/.privvid/quarantine.jsonl)" if failed else ""
    console.print(
        f"{summary.count('done')} done, {summary.count('skipped')} already done, {failed} failed{where}; "
        f"{len(summary.ignored)} non-video files ignored; {summary.seconds:.1f} s; "
        f"summary for scripts: {escape(str(summary.out_root))}/.privvid/summary.json"
    )


def _print_skipped(summary) -> None:  # noqa: ANN001 - RunSummary
    for path, reason in summary.skipped_inputs:
        console.print(f"[yellow]skipped input[/yellow] {escape(str(path))}: {escape(str(reason))}", highlight=False)


def _print_plan(summary) -> None:  # noqa: ANN001 - RunSummary
    table = Table(title=f"privvid anonymize --dry-run -> {escape(str(summary.out_root))}")
    table.add_column("clip")
    table.add_column("input")
    table.add_column("would")
    table.add_column("why")
    for o in summary.outcomes:
        would = {"planned": "run", "failed": "quarantine"}.get(o.status, "skip (done)")
        table.add_row(escape(o.relpath), escape(str(o.source)), would, escape(o.reason or ""))
    console.print(table)
    _print_skipped(summary)
    from privvid.anonymize.dataset import renamed_lines

    if summary.live:
        console.print(f"[yellow]another run is writing into {escape(str(summary.out_root))} now[/yellow] "
                      f"({escape(summary.live)}): this plan is of its progress so far", highlight=False)
    for line in renamed_lines(summary.out_root, summary.renamed):
        console.print(f"[yellow]renamed[/yellow] {escape(line)}", highlight=False)
    quarantine = f"{summary.count('failed')} would be quarantined, " if summary.count("failed") else ""
    console.print(f"{summary.count('planned')} would run, {quarantine}{summary.count('skipped')} already done, "
                  f"{len(summary.skipped_inputs)} inputs skipped, {len(summary.ignored)} non-video files ignored; "
                  "nothing was written")


def register(app: typer.Typer) -> None:
    app.command()(anonymize)
