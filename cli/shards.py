"""``privvid shards build|verify`` and ``privvid export``: package an anonymised dataset for training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console()
app = typer.Typer(help="Package an anonymised dataset for training.", no_args_is_help=True)


@app.command("build")
def build_command(
    root: Path = typer.Argument(..., help="An output folder of privvid anonymize."),
    out: Optional[Path] = typer.Option(None, help="Shard folder to write (default: ROOT/shards)."),
    name: str = typer.Option("privvid", help="Shard name prefix, e.g. nh-kinetics150."),
    split_from: Optional[Path] = typer.Option(None, "--split-from", help="A CSV with a split column (and key or "
                                              "path), e.g. curate's subset.csv; clips it does not list are left out."),
    val: float = typer.Option(0.0, help="Without a split tree or --split-from: share of each class drawn as val."),
    seed: int = typer.Option(0),
    shard_size: str = typer.Option("256MB", "--shard-size", help="Target shard size: megabytes (256MB) or clips "
                                   "(100clips)."),
) -> None:
    """WebDataset tars per split, manifest.json(l), classes.txt and datasheet.md."""
    from privvid.shards import build

    manifest = build(root, out, name=name, val_fraction=val, seed=seed, shard_size=shard_size, split_from=split_from)
    table = Table(title=f"{escape(manifest['name'])}: {manifest['clips']} clips, {manifest['frames']} frames")
    table.add_column("class")
    for split in manifest["splits"]:
        table.add_column(split, justify="right")
    for label in manifest["per_class"]:
        table.add_row(escape(label) if label else "(none)", *(str(manifest["per_split_class"][s].get(label, 0)) for s in manifest["splits"]))
    console.print(table)
    console.print(f"{len(manifest['shards'])} shard(s) in {escape(str(out or root / 'shards'))}; modes "
                  f"{escape(str(manifest['modes']))}"
                  + (f"; {manifest['left_out']} clip(s) not in {escape(str(split_from))}" if manifest["left_out"] else ""))
    unmatched = manifest.get("split_from_unmatched") or []
    if unmatched:
        console.print(f"[yellow]warning:[/yellow] {len(unmatched)} row(s) of {escape(str(split_from))} name no clip of "
                      f"{escape(str(root))} (not anonymised, or failed?), e.g. {escape(', '.join(unmatched[:3]))}; "
                      "manifest.json lists them (split_from_unmatched)", highlight=False)
    short = manifest["no_val_classes"]
    if short:
        what = "no val split was drawn" if "val" not in manifest["splits"] else f"{len(short)} class(es) have no val clip"
        console.print(f"[yellow]warning:[/yellow] {what}: with --val {val:g} these classes have too few clips to "
                      f"draw one and stay in train: {escape(', '.join(short[:8]))}{' ...' if len(short) > 8 else ''}",
                      highlight=False)


@app.command("verify")
def verify_command(folder: Path = typer.Argument(..., help="A shard folder (with manifest.json).")) -> None:
    """Check hashes, sizes, clip counts, member names and tar integrity; exit 1 on any problem."""
    from privvid.shards import verify

    problems = verify(folder)
    for line in problems:
        console.print(f"[red]problem:[/red] {escape(line)}", highlight=False)
    if problems:
        raise typer.Exit(1)
    console.print(f"[green]{escape(str(folder))} verifies[/green]")


def export_command(
    folder: Path = typer.Argument(..., help="A shard folder written by privvid shards build."),
    fmt: str = typer.Option(..., "--format", help="mmaction | videomae | csv"),
    out: Path = typer.Option(..., "--out", help="Folder for the lists and the extracted videos."),
    root: Optional[Path] = typer.Option(None, help="videomae: the folder the absolute paths start from "
                                        "(default: OUT as given, resolved)."),
) -> None:
    """Lists another tool loads, with the videos extracted beside them."""
    from privvid.shards import export

    result = export(folder, fmt, out, root)
    console.print(f"{result['clips']} clips: {', '.join(result['lists'])} in {escape(str(out))}, videos in "
                  f"{escape(str(result['videos']))}")
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
    if result["removed"]:
        console.print(f"removed the earlier export's {', '.join(result['removed'])} (a split this export has not)")
    if result["removed_videos"]:
        console.print(f"removed {len(result['removed_videos'])} video(s) of an earlier export that these lists do "
                      "not name")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="shards")
    main.command("export")(export_command)
