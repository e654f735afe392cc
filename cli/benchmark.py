"""``privvid benchmark run``: SynAPT-style transfer benchmark (pre-train recipes x downstream FT/LP)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from privvid.errors import PrivvidError

console = Console()
app = typer.Typer(help="Pre-train, transfer and tabulate (SynAPT protocol).", no_args_is_help=True)


@app.command("run")
def run(
    protocol: Optional[Path] = typer.Argument(None, help="Protocol JSON (recipes, tasks, preset); see docs/engine.md."),
    out: Path = typer.Option(Path("runs/benchmark"), help="Where runs and results.json go."),
    tiny: Optional[Path] = typer.Option(None, help="Instead of a protocol: the tiny demo on this folder of "
                                                   "labelled clips (e.g. ../shared/data/action-clips)."),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Run every recipe's stages, FT + LP on every task, and print the table with each task's bias B."""
    from privvid.benchmark.protocol import Protocol, run_protocol, tiny_protocol
    from privvid.benchmark.table import results_table

    if tiny is not None:
        proto = tiny_protocol(tiny, out / "data")
    elif protocol is not None:
        proto = Protocol.load(protocol)
    else:
        raise PrivvidError("give a protocol file or --tiny CLIPS_DIR")
    res = run_protocol(proto, out, device=device, log=lambda s: console.print(f"[dim]{s}[/dim]"))
    console.print(results_table(res))
    for task, b in res["bias"].items():
        if "error" in b:
            console.print(f"bias of {task} not computed: {b['error']}")
        else:
            console.print(f"{task}: M = {100 * b['M']:.1f}% (ImageNet frame features + linear probe), "
                          f"M_rnd = {100 * b['M_rnd']:.1f}%, B = {b['B']:.2f}")
    console.print(f"results: {out / 'results.json'}")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="benchmark")
