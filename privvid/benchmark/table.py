"""Paper-style results table: rows = pre-training recipes, columns = downstream task x FT/LP top-1."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def results_table(results: dict[str, Any]) -> Table:
    rows: dict[str, dict[str, float]] = results["rows"]
    cols = sorted({c for r in rows.values() for c in r}, key=lambda c: (c.split("/")[0], c.split("/")[1] != "ft"))
    table = Table(title=f"{results.get('protocol', 'benchmark')}: top-1 (%)")
    table.add_column("pre-training")
    for c in cols:
        task, mode = c.split("/")
        table.add_column(f"{task}\n{mode.upper()}", justify="right")
    table.add_column("mean", justify="right")
    for name, row in rows.items():
        vals = [row.get(c) for c in cols]
        present = [v for v in vals if v is not None]
        table.add_row(name, *[f"{100 * v:.1f}" if v is not None else "-" for v in vals],
                      f"{100 * sum(present) / len(present):.1f}" if present else "-")
    bias = results.get("bias") or {}
    if bias:
        cells = []
        for c in cols:
            b = bias.get(c.split("/")[0], {})
            cells.append(f"{b['B']:.2f}" if "B" in b else "n/a")
        table.add_row("[italic]bias B = log2(M/M_rnd)[/italic]", *cells, "")
    return table
