"""Paper-style results: rows = pre-training recipes, columns = downstream task x FT / LP (top-1, top-5), means.

``results_table`` (the rich table the CLI prints) and ``markdown_table`` are laid out like the papers' Table 1:
each task's FT and LP top-1 with top-5 beside it (not for a task of five classes or fewer, whose top-5 is
always 100%), then the FT, LP and overall means, the bias row;
``write_report(DIR)`` writes ``table.md`` and ``results.png`` from ``DIR/results.json`` (what
``privvid benchmark report DIR`` redraws).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table


def _columns(results: dict[str, Any]) -> list[str]:
    rows: dict[str, dict[str, float]] = results["rows"]
    tasks: list[str] = []
    for r in rows.values():
        for c in r:
            if c.split("/")[0] not in tasks:
                tasks.append(c.split("/")[0])
    modes = ("ft", "lp")
    return [f"{t}/{m}" for t in tasks for m in modes if any(f"{t}/{m}" in r for r in rows.values())]


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _pct(v: float | None) -> str:
    return f"{100 * v:.1f}" if v is not None else "-"


def _no_top5(results: dict[str, Any]) -> dict[str, int]:
    """The tasks whose top-5 says nothing (five classes or fewer: always 100%) and their class counts."""
    return {t: n for t, n in (results.get("classes") or {}).items() if n is not None and n <= 5}


def _cells(results: dict[str, Any], name: str, cols: list[str]) -> list[str]:
    """A row's top-1 / top-5 per column (top-1 alone where top-5 is missing or says nothing), then the FT, LP
    and overall means of top-1."""
    row = results["rows"][name]
    top5 = (results.get("top5") or {}).get(name) or {}
    hidden = _no_top5(results)
    cells = []
    for c in cols:
        t1, t5 = row.get(c), top5.get(c)
        cells.append(f"{_pct(t1)} / {_pct(t5)}" if t5 is not None and c.split("/")[0] not in hidden else _pct(t1))
    ft = _mean([row.get(c) for c in cols if c.endswith("/ft")])
    lp = _mean([row.get(c) for c in cols if c.endswith("/lp")])
    return [*cells, _pct(ft), _pct(lp), _pct(_mean([row.get(c) for c in cols]))]


def bias_cell(b: dict[str, Any]) -> str:
    """A task's B to two places; ``-inf`` where the frame probe got nothing right (M = 0, B recorded as None)."""
    if "B" not in b:
        return "n/a"
    return "-inf" if b["B"] is None else f"{b['B']:.2f}"


def proportion_lines(results: dict[str, Any]) -> list[str]:
    """One line per learned-mix row and task: the proportions it learned per mixed recipe (their mean over the
    layers for a layer-wise mix)."""
    lines = []
    for name, tasks in (results.get("alpha") or {}).items():
        for task, got in tasks.items():
            alpha = got.get("alpha") or []
            if not alpha:
                continue
            per = [sum(layer[i] for layer in alpha) / len(alpha) for i in range(len(got["of"]))]
            parts = ", ".join(f"{recipe} {p:.3f}" for recipe, p in zip(got["of"], per))
            layers = f" (mean over {len(alpha)} layer groups)" if len(alpha) > 1 else ""
            lines.append(f"{name} on {task}: learned proportions {parts}{layers}")
    return lines


def results_table(results: dict[str, Any]) -> Table:
    """The table ``table.md`` holds, for the terminal: top-1 / top-5 per task and mode, then the means."""
    cols = _columns(results)
    table = Table(title=f"{escape(str(results.get('protocol', 'benchmark')))}: top-1 / top-5 (%)")
    table.add_column("pre-training")
    for c in cols:
        task, mode = c.split("/")
        table.add_column(f"{escape(task)}\n{mode.upper()}", justify="right")
    for head in ("mean\nFT", "mean\nLP", "mean"):
        table.add_column(head, justify="right")
    for name in results["rows"]:
        table.add_row(escape(name), *_cells(results, name, cols))
    bias = results.get("bias") or {}
    if bias:
        cells = [bias_cell(bias.get(c.split("/")[0], {})) for c in cols]
        table.add_row("[italic]bias B = log2(M/M_rnd)[/italic]", *cells, "", "", "")
    return table


def top5_note(results: dict[str, Any]) -> str | None:
    """Which tasks' top-5 the tables leave out, or None."""
    hidden = _no_top5(results)
    if not hidden:
        return None
    names = ", ".join(f"{t} ({n} classes)" for t, n in hidden.items())
    return f"top-5 is not shown for {names}: with five classes or fewer it is always 100%"


def markdown_table(results: dict[str, Any]) -> str:
    """Table 1 layout: one column pair per task and mode (top-1 / top-5), then mean FT, mean LP, mean."""
    cols = _columns(results)
    head = ["pre-training"] + [f"{c.split('/')[0]} {c.split('/')[1].upper()}" for c in cols] + [
        "mean FT", "mean LP", "mean"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in results["rows"]:
        lines.append("| " + " | ".join([name, *_cells(results, name, cols)]) + " |")
    bias = results.get("bias") or {}
    if bias:
        cells = [bias_cell(bias.get(c.split("/")[0], {})) for c in cols]
        lines.append("| *bias B = log2(M / M_rnd)* | " + " | ".join(cells) + " | | | |")
    note = (f"\nTop-1 / top-5 accuracy (%) on each task's val list; seed {results.get('seed', 0)}; "
            f"protocol `{results.get('protocol', 'benchmark')}`.\n")
    hidden = top5_note(results)
    if hidden:
        note += f"The {hidden}.\n"
    mixes = proportion_lines(results)
    if mixes:
        note += "\n" + "".join(f"- {line}\n" for line in mixes)
    return "\n".join(lines) + "\n" + note


def plot(results: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows: dict[str, dict[str, float]] = results["rows"]
    cols = _columns(results)
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(cols) * max(1, len(rows)) / 2), 4))
    width = 0.8 / max(1, len(rows))
    x = np.arange(len(cols))
    for i, (name, row) in enumerate(rows.items()):
        ax.bar(x + i * width, [100 * (row.get(c) or 0) for c in cols], width, label=name)
    ax.set_xticks(x + width * (len(rows) - 1) / 2, [f"{c.split('/')[0]}\n{c.split('/')[1].upper()}" for c in cols])
    ax.set_ylabel("top-1 (%)")
    ax.set_ylim(0, 100)
    ax.set_title(results.get("protocol", "benchmark"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(folder: str | Path) -> dict[str, Path]:
    """``table.md`` and ``results.png`` from ``folder/results.json``."""
    from privvid.engine.config import EngineError
    from privvid.io.atomic import write_text_atomic

    folder = Path(folder)
    try:
        results = json.loads((folder / "results.json").read_text())
    except (OSError, ValueError) as exc:
        raise EngineError(f"{folder} has no readable results.json ({exc}); run privvid benchmark run first") from None
    if not isinstance(results, dict) or not isinstance(results.get("rows"), dict):
        raise EngineError(f"{folder}/results.json is not the results of privvid benchmark run (no rows); run it first")
    return {"table": write_text_atomic(folder / "table.md", markdown_table(results)),
            "plot": plot(results, folder / "results.png")}
