"""``privvid synth``: render procedural action clips of the embedded mannequin body."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from privvid.errors import ConfigError
from privvid.runtime import RunProgress

console = Console()


def synth(
    out: Optional[Path] = typer.Option(None, "--out", help="Output folder: <class>/<class>_NNNN.mp4, classes.txt, "
                                       "train.csv, val.csv, synth.json (needed unless --list)."),
    classes: int = typer.Option(12, help="Number of action classes: the first N motions of the table "
                                "(privvid synth --list shows it)."),
    per_class: int = typer.Option(50, "--per-class", help="Clips per class."),
    seed: int = typer.Option(0, help="Seed: the same seed and settings give the same clips."),
    frames: int = typer.Option(32, help="Frames per clip."),
    size: str = typer.Option("112x112", help="Frame size WIDTHxHEIGHT (even numbers)."),
    fps: float = typer.Option(25.0, help="Frame rate written into the clips."),
    backgrounds: Optional[Path] = typer.Option(None, "--backgrounds", help="A folder of images and/or videos "
                                               "(e.g. people-free clips of `privvid anonymize --mode remove`): "
                                               "backgrounds are random crops of them instead of procedural ones."),
    val_fraction: float = typer.Option(0.2, "--val-fraction", help="Share of each class's clips listed in "
                                       "val.csv (a seeded draw)."),
    crf: int = typer.Option(18, help="H.264 quality (lower = better, larger)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run with other settings in OUT "
                                   "(its clips are deleted) or write into a non-empty folder."),
    list_motions: bool = typer.Option(False, "--list", help="Print the motion table and exit."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar."),
) -> None:
    """Render a synthetic action dataset. Re-running the same command resumes it."""
    from privvid.synth import SynthSettings, parse_size, synthesize
    from privvid.synth.motions import MOTIONS

    if list_motions:
        for i, m in enumerate(MOTIONS):
            console.print(f"{i:2d}  {m.name:<13} {m.about}")
        return
    if out is None:
        raise ConfigError("give --out FOLDER (where the clips go)")
    try:
        width, height = parse_size(size)
    except ConfigError:   # its message offers -2 sides, which synth has no input to take an aspect from
        raise ConfigError(f"--size must be WIDTHxHEIGHT in even numbers, e.g. 112x112, got {size!r}") from None
    settings = SynthSettings(classes=classes, per_class=per_class, seed=seed, frames=frames, width=width,
                             height=height, fps=fps, val_fraction=val_fraction, crf=crf, backgrounds=backgrounds)
    settings.validate()
    with RunProgress(0, "synth", enabled=not quiet) as progress:
        summary = synthesize(out, settings, overwrite=overwrite, on_start=progress.set_total,
                             on_clip=progress.advance)
    rate = summary.frames / summary.seconds if summary.seconds > 0 else 0.0
    console.print(f"{summary.clips} clips of {len(summary.classes)} classes in {escape(str(summary.out))}: "
                  f"{summary.rendered} rendered, {summary.skipped} already there "
                  f"({summary.seconds:.1f} s, {rate:.1f} frames/s)")


def register(main: typer.Typer) -> None:
    main.command("synth")(synth)
