"""``privvid train mae|align``: MAE pre-training and supervised alignment (PPMA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape


console = Console()
app = typer.Typer(help="Pre-train the bundled video ViT.", no_args_is_help=True)


def _log(rec: dict[str, Any]) -> None:
    if rec.get("event") == "epoch":
        extra = "".join(f" {k}={v:.3f}" for k, v in rec.items() if k.startswith("val_") and isinstance(v, float))
        console.print(f"[bold]epoch {rec['epoch']}[/bold] step {rec['step']} loss {rec['loss']:.4f} "
                      f"{rec['clips_per_s']:.1f} clips/s{extra}")
    else:
        # dataset names are shown as typed: "[nh]" is text, not rich markup
        console.print(f"  step {rec['step']} {escape('[' + str(rec['dataset']) + ']')} loss {rec['loss']:.4f} "
                      f"lr {rec['lr']:.2e}", highlight=False)


SET = typer.Option(None, "--set", help="Any setting SECTION.FIELD=VALUE (repeat), e.g. --set mae.ratio=0.75 "
                   "--set optim.accum=4 --set precision=bf16; sections: model data optim mae sup.")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace a run already in --out (default: refuse).")
THREADS = typer.Option(None, "--threads", help="torch threads per process (default or 0: torch's choice).")
PRESET = typer.Option("tiny", "--preset", help="tiny | ppma | m2m (paper = ppma).")


def _run(task: str, data: List[str], out: Path, preset: str, size: Optional[str], init: Optional[Path],
         resume: bool, device: Optional[str], settings: Optional[List[str]] = None, overwrite: bool = False,
         threads: Optional[int] = None, **overrides: Any) -> None:
    from privvid.engine.api import run_train

    items = list(settings or []) + ([f"threads={threads}"] if threads is not None else [])
    res = run_train(task, data, out, preset_name=preset, size=size, init=init, resume=resume,
                    device=device, log=_log, overwrite=overwrite, settings=items,
                    **{k: v for k, v in overrides.items() if v is not None})
    if not res.main:   # a DDP rank other than the one that writes the run: it reports nothing
        return
    if res.note:
        console.print(f"[yellow]{escape(res.note)}[/yellow]")
    console.print(f"[green]done[/green]: {res.steps} steps, checkpoint in {escape(str(out))}")


_DATA = typer.Option(..., "--data", help="List (.txt 'path label' / .csv 'path,label'), class-per-folder "
                                         "tree or privvid shards (SHARDS:train); NAME=PATH names it. Repeat for "
                                         "several datasets.")


@app.command("mae")
def mae(
    data: List[str] = _DATA,
    out: Path = typer.Option(..., help="Run folder (checkpoint, metrics.jsonl)."),
    preset: str = PRESET,
    size: Optional[str] = typer.Option(None, help="nano | tiny | small | base (default: preset's)."),
    mask: Optional[str] = typer.Option(None, help="random | tube (default: preset's)."),
    init: Optional[Path] = typer.Option(None, help="Start the encoder from this checkpoint."),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None, help="Global batch (split over DDP ranks)."),
    lr: Optional[float] = typer.Option(None),
    workers: Optional[int] = typer.Option(None, help="DataLoader workers per process."),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False, help="Continue the run in --out exactly where it stopped."),
    device: Optional[str] = typer.Option(None, help="cpu | cuda (default: cuda if available)."),
    settings: Optional[List[str]] = SET,
    overwrite: bool = OVERWRITE,
    threads: Optional[int] = THREADS,
) -> None:
    """MAE pre-training (masked tubelet reconstruction). Run under torchrun for DDP."""
    _run("mae", data, out, preset, size, init, resume, device, settings, overwrite, threads, epochs=epochs,
         batch_size=batch_size, lr=lr, workers=workers, seed=seed, mask=mask)


@app.command("align")
def align(
    data: List[str] = _DATA,
    out: Path = typer.Option(...),
    init: Optional[Path] = typer.Option(None, help="MAE checkpoint to align (PPMA stage 2)."),
    preset: str = PRESET,
    size: Optional[str] = typer.Option(None),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    workers: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False),
    device: Optional[str] = typer.Option(None),
    settings: Optional[List[str]] = SET,
    overwrite: bool = OVERWRITE,
    threads: Optional[int] = THREADS,
) -> None:
    """Supervised alignment: shared encoder, one linear head per --data, each batch from one dataset."""
    _run("align", data, out, preset, size, init, resume, device, settings, overwrite, threads, epochs=epochs,
         batch_size=batch_size, lr=lr, workers=workers, seed=seed)




checkpoints = typer.Typer(help="Encoder checkpoints in and out: HF transformers VideoMAE, VideoMAE .pth and "
                          "mmaction2 VisionTransformer .pth.",
                          no_args_is_help=True)


@checkpoints.command("import")
def import_command(
    source: Path = typer.Argument(..., help="An HF VideoMAE folder (config.json + model.safetensors), a "
                                  "VideoMAE .pth or an mmaction2 .pth checkpoint (read without running code)."),
    out: Path = typer.Option(..., "--out", help="privvid checkpoint folder to write (use it as --init)."),
    frames: Optional[int] = typer.Option(None, help=".pth only: clip length the model was trained on (default: "
                                         "what a privvid export records, else 16)."),
    image_size: Optional[int] = typer.Option(None, help=".pth only: frame size the model was trained on (default: "
                                             "what a privvid export records, else 224)."),
    heads: Optional[int] = typer.Option(None, help=".pth only: attention heads (default: width / 64, as ViT-S/B/L)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a checkpoint already in --out."),
    trust_model_files: bool = typer.Option(False, "--trust-model-files", help="Read a .pth / .bin that holds more "
                                           "than tensors with the full pickle reader (it can run code: only for a "
                                           "file from a source you trust). Off: tensors only, nothing runs."),
) -> None:
    """Import a pre-trained VideoMAE encoder."""
    from privvid.engine.convert import import_checkpoint

    done = import_checkpoint(source, out, frames, image_size, heads, overwrite, trust_model_files)
    console.print(f"[green]imported[/green] into {escape(str(done))}")


@checkpoints.command("export")
def export_command(
    run: Path = typer.Argument(..., help="A privvid checkpoint folder."),
    fmt: str = typer.Option(..., "--format", help="hf (a transformers folder) | videomae (.pth) | mmaction (.pth "
                            "with backbone.* keys, and <name>.backbone.py with the backbone config)"),
    out: Path = typer.Option(..., "--out"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a file or an HF folder already at --out."),
) -> None:
    """Export the encoder for HF transformers, the VideoMAE code base or mmaction2."""
    from privvid.engine.convert import export_checkpoint

    done, note = export_checkpoint(run, out, fmt, overwrite)
    console.print(f"[green]exported[/green] to {escape(str(done))}")
    if note:
        console.print(f"[yellow]note[/yellow]: {escape(note)}", highlight=False)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="train")
    main.add_typer(checkpoints, name="checkpoint")
