"""``privvid benchmark run|report``: the PPMA / Mask2Mesh / SynAPT protocol (recipes x downstream FT/LP)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from privvid.errors import ConfigError

console = Console()
app = typer.Typer(help="Pre-train, transfer and tabulate (SynAPT protocol).", no_args_is_help=True)


@app.command("run")
def run(
    protocol: Optional[Path] = typer.Argument(None, help="Protocol file (JSON or YAML: recipes, tasks, preset); "
                                              "see docs/benchmark.md."),
    preset: Optional[str] = typer.Option(None, "--preset", help="smoke (every stage on tiny data made here) | "
                                         "paper (the papers' protocol; needs --dataset)."),
    dataset: Optional[List[str]] = typer.Option(None, "--dataset", help="paper: NAME=PATH for real, nh, m2m, synth."),
    clips: Optional[Path] = typer.Option(None, help="smoke: the labelled real clips (default: "
                                         "$PRIVVID_SHARED/data/action-clips, else ../shared/data/action-clips "
                                         "beside the checkout)."),
    out: Path = typer.Option(Path("runs/benchmark"), help="Where runs, results.json, table.md and results.png go."),
    tiny: Optional[Path] = typer.Option(None, help="The older minutes-long demo on this folder of labelled clips."),
    device: Optional[str] = typer.Option(None),
) -> None:
    """Run every recipe (finished steps are cached: a re-run or a killed run continues), FT + LP on every task,
    and print the table with each task's representation bias B."""
    from privvid.benchmark.protocol import Protocol, out_lock, run_protocol, tiny_protocol
    from privvid.benchmark.table import results_table

    def say(text: str) -> None:
        console.print(f"[dim]{escape(text)}[/dim]")

    given = sum(x is not None for x in (protocol, preset, tiny))
    if given != 1:
        raise ConfigError("give exactly one of: a protocol file, --preset smoke|paper, --tiny CLIPS_DIR")
    if device is not None:   # before the smoke preset builds its data (minutes)
        from privvid.engine.trainer import resolve_device

        resolve_device(device)
    if preset is not None and preset not in ("smoke", "paper"):
        raise ConfigError(f"unknown protocol preset {preset!r}; choose smoke or paper")
    with out_lock(out):   # before --tiny and the smoke preset make their data in OUT/data
        if tiny is not None:
            proto = tiny_protocol(tiny, out / "data")
        elif preset is not None:
            from privvid.benchmark import presets

            if preset == "smoke":
                proto = presets.smoke(out / "data", clips if clips is not None else presets.default_clips(), say)
            else:
                pairs = [d.partition("=") for d in dataset or []]
                if any(not sep for _, sep, _ in pairs):
                    raise ConfigError("--dataset wants NAME=PATH")
                proto = presets.paper({k: v for k, _, v in pairs})
        else:
            assert protocol is not None
            proto = Protocol.load(protocol)
        res = run_protocol(proto, out, device=device, log=say, lock=False)
    console.print(results_table(res))
    _bias(res)
    console.print(f"{res['steps']['run']} step(s) run, {res['steps']['cached']} cached; results: "
                  f"{escape(str(out / 'results.json'))}, {escape(str(out / 'table.md'))}, {escape(str(out / 'results.png'))}")


def _bias(res: dict) -> None:
    from privvid.benchmark.table import bias_cell, proportion_lines, top5_note

    note = top5_note(res)
    if note:
        console.print(escape(note[0].upper() + note[1:]), highlight=False)
    for line in proportion_lines(res):
        console.print(escape(line), highlight=False)
    for task, b in res["bias"].items():
        if "error" in b:
            console.print(f"bias of {escape(task)} not computed: {escape(b['error'])}")
        else:
            console.print(f"{escape(task)}: M = {100 * b['M']:.1f}% (ImageNet frame features + linear probe), "
                          f"M_rnd = {100 * b['M_rnd']:.1f}%, B = {bias_cell(b)}")


@app.command("report")
def report(folder: Path = typer.Argument(..., help="A finished benchmark folder (with results.json).")) -> None:
    """Redraw table.md and results.png from results.json, and print the table."""
    import json

    from privvid.benchmark.table import results_table, write_report

    paths = write_report(folder)
    res = json.loads((folder / "results.json").read_text())
    console.print(results_table(res))
    _bias(res)
    console.print(f"wrote {escape(str(paths['table']))} and {escape(str(paths['plot']))}")


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="benchmark")
