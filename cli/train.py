"""``privvid train mae|align``: MAE pre-training and supervised alignment (PPMA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console


console = Console()
app = typer.Typer(help="Pre-train the bundled video ViT.", no_args_is_help=True)


def _log(rec: dict[str, Any]) -> None:
    if rec.get("event") == "epoch":
        extra = "".join(f" {k}={v:.3f}" for k, v in rec.items() if k.startswith("val_") and isinstance(v, float))
        console.print(f"[bold]epoch {rec['epoch']}[/bold] step {rec['step']} loss {rec['loss']:.4f} "
                      f"{rec['clips_per_s']:.1f} clips/s{extra}")
    else:
        console.print(f"  step {rec['step']} [{rec['dataset']}] loss {rec['loss']:.4f} lr {rec['lr']:.2e}",
                      highlight=False)


def _run(task: str, data: List[str], out: Path, preset: str, size: Optional[str], init: Optional[Path],
         resume: bool, device: Optional[str], **overrides: Any) -> None:
    from privvid.engine.api import run_train

    res = run_train(task, data, out, preset_name=preset, size=size, init=init, resume=resume,
                    device=device, log=_log, **{k: v for k, v in overrides.items() if v is not None})
    console.print(f"[green]done[/green]: {res.steps} steps, checkpoint in {out}")


_DATA = typer.Option(..., "--data", help="List (.txt 'path label' / .csv 'path,label'), class-per-folder "
                                         "tree or privvid shards (SHARDS:train); NAME=PATH names it. Repeat for "
                                         "several datasets.")


@app.command("mae")
def mae(
    data: List[str] = _DATA,
    out: Path = typer.Option(..., help="Run folder (checkpoint, metrics.jsonl)."),
    preset: str = typer.Option("tiny", help="tiny | paper"),
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
) -> None:
    """MAE pre-training (masked tubelet reconstruction). Run under torchrun for DDP."""
    _run("mae", data, out, preset, size, init, resume, device, epochs=epochs, batch_size=batch_size, lr=lr,
         workers=workers, seed=seed, mask=mask)


@app.command("align")
def align(
    data: List[str] = _DATA,
    out: Path = typer.Option(...),
    init: Optional[Path] = typer.Option(None, help="MAE checkpoint to align (PPMA stage 2)."),
    preset: str = typer.Option("tiny"),
    size: Optional[str] = typer.Option(None),
    epochs: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    lr: Optional[float] = typer.Option(None),
    workers: Optional[int] = typer.Option(None),
    seed: Optional[int] = typer.Option(None),
    resume: bool = typer.Option(False),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Supervised alignment: shared encoder, one linear head per --data, each batch from one dataset."""
    _run("align", data, out, preset, size, init, resume, device, epochs=epochs, batch_size=batch_size, lr=lr,
         workers=workers, seed=seed)


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="train")
