"""``privvid shards``: manifests, mmaction2/VideoMAE lists and WebDataset shards."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from privvid.shards import build

console = Console()
app = typer.Typer(help="Package an anonymised dataset for training.", no_args_is_help=True)


@app.command("build")
def build_command(
    root: Path = typer.Argument(..., help="An output folder of privvid anonymize."),
    out: Optional[Path] = typer.Option(None, help="Where to write (default: ROOT)."),
    name: str = typer.Option("privvid", help="Shard name prefix, e.g. nh-kinetics150."),
    val: float = typer.Option(0.0, help="Fraction of each class held out as a val split."),
    seed: int = typer.Option(0),
    shard_mb: int = typer.Option(256, help="Target shard size in MiB."),
    webdataset: bool = typer.Option(True, help="Also write WebDataset tar shards."),
) -> None:
    """Write manifest.jsonl/.json, classes.txt, mmaction_*.txt, videomae_*.csv and shards/*.tar."""
    summary = build(root, out, name=name, val_fraction=val, seed=seed, shard_size=shard_mb << 20,
                    webdataset=webdataset)
    table = Table(title=f"{summary['name']}: {summary['clips']} clips, {summary['frames']} frames")
    table.add_column("class")
    table.add_column("clips", justify="right")
    for label, count in summary["per_class"].items():
        table.add_row(label or "(none)", str(count))
    console.print(table)
    console.print(f"splits {summary['splits']}, {len(summary['shards'])} shard(s), modes {summary['modes']}")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="shards")
