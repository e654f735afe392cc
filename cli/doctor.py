"""``privvid doctor``: report backends, versions, weights and the GL platform."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from privvid.config import SAM_MODELS
from privvid.errors import ConfigError
from privvid.runtime.doctor import run_checks

console = Console()


def doctor(
    weights: Optional[Path] = typer.Option(None, help="Check a yolo weights file."),
    sam_weights: Optional[Path] = typer.Option(None, help="Check a segment-anything checkpoint."),
    sam_model: Optional[str] = typer.Option(None, "--sam-model", help="The --sam-weights checkpoint's architecture "
                                            "(vit_b | vit_l | vit_h; default vit_b), as anonymize's --sam-model."),
    body_model: Optional[Path] = typer.Option(None, help="Check an SMPL-X model file."),
    no_gl: bool = typer.Option(False, "--no-gl", help="Skip the offscreen rendering check."),
    trust_model_files: bool = typer.Option(False, "--trust-model-files", help="Load pickle-based model files "
                                           "(they can run code), as anonymize does with the same flag."),
) -> None:
    """Show what this installation can do. Model files given are loaded as anonymize loads them."""
    if sam_model is not None:
        if sam_weights is None:
            raise ConfigError("--sam-model names the architecture of --sam-weights: give the checkpoint too")
        if sam_model not in SAM_MODELS:
            raise ConfigError(f"unknown SAM model {sam_model!r}; choose one of: {', '.join(SAM_MODELS)}")
    checks = run_checks({"yolo": weights, "sam": sam_weights, "body model": body_model}, gl=not no_gl,
                        trust=trust_model_files, sam_model=sam_model or "vit_b")
    table = Table(title="privvid doctor")
    for column in ("area", "name", "ok", "detail"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.area, c.name, "[green]yes[/]" if c.ok else "[red]no[/]", escape(c.detail))
    console.print(table)
    required = [c for c in checks if not c.ok and c.area in ("weights", "render")]
    if required:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command()(doctor)
