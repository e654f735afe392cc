"""``privvid average``: fixed-proportion weight averaging of checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape


console = Console()


def average(
    runs: List[Path] = typer.Argument(..., help="Checkpoint folders of one architecture."),
    weights: Optional[str] = typer.Option(None, help="Comma-separated proportions summing to 1 (default: equal)."),
    out: Path = typer.Option(..., help="Folder for the averaged checkpoint."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a checkpoint already in --out."),
) -> None:
    """Average the weights the checkpoints share (the encoder at least) in fixed proportions."""
    from privvid.engine.api import run_average

    res = run_average(runs, weights, out, overwrite)
    console.print(f"averaged {res['tensors']} tensors with weights {res['weights']} -> {escape(str(res['out']))}")


def register(main: typer.Typer) -> None:
    main.command("average")(average)
