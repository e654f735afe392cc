"""``privvid eval ft|lp``: downstream fine-tuning and linear probing (top-1 / top-5)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


console = Console()
app = typer.Typer(help="Transfer a pre-trained encoder to a downstream task.", no_args_is_help=True)


def _log(rec: dict[str, Any]) -> None:
    if "alpha" in rec:
        alpha = rec["alpha"]
        shown = alpha[0] if len(alpha) == 1 else f"{len(alpha)} layers"
        console.print(f"epoch {rec['epoch']} loss {rec['loss']:.4f} alpha {shown}", highlight=False)
    elif rec.get("event") == "epoch":
        console.print(f"epoch {rec['epoch']} loss {rec['loss']:.4f} {rec['clips_per_s']:.1f} clips/s")


def _run(mode: str, init: List[Path], train: str, val: str, out: Optional[Path], preset: str, learn_mix: bool,
         layerwise: bool, device: Optional[str], settings: Optional[List[str]] = None, overwrite: bool = False,
         threads: Optional[int] = None, resume: bool = False, **overrides: Any) -> None:
    from privvid.engine.api import run_eval

    items = list(settings or []) + ([f"threads={threads}"] if threads is not None else [])
    res = run_eval(mode, init, train, val, out, preset_name=preset, learn_mix=learn_mix, layerwise=layerwise,
                   device=device, log=_log, overwrite=overwrite, resume=resume, settings=items,
                   **{k: v for k, v in overrides.items() if v is not None})
    if not res.get("main", True):   # a DDP rank other than the one that writes the run
        return
    if res.get("note"):
        console.print(f"[yellow]{escape(res['note'])}[/yellow]")
    table = Table(title=f"{mode.upper()} trained on {escape(res['train'])}, accuracy on the val list")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for k in ("top1", "top5"):
        table.add_row(k, f"{100 * res['eval'][k]:.1f}%")
    table.add_row("val clips", str(res["eval"]["n"]))
    console.print(table)
    if "alpha" in res:
        at = Table(title="learned mixing proportions (softmax)")
        at.add_column("layer")
        for r in _short_names([Path(r) for r in res["runs"]]):
            at.add_column(escape(r), justify="right")
        rows = res["alpha"]
        for i, row in enumerate(rows):
            name = "all" if len(rows) == 1 else ("patch_embed" if i == 0 else
                                                 "norm" if i == len(rows) - 1 else f"block {i - 1}")
            at.add_row(name, *[f"{a:.3f}" for a in row])
        console.print(at)


def _short_names(paths: list[Path]) -> list[str]:
    """The checkpoints' folder names, with as many parent folders as it takes to tell them apart
    (``RandA/1_align`` and ``TubeAB/1_align``, not ``1_align`` twice)."""
    for depth in range(1, max(len(p.parts) for p in paths) + 1):
        names = ["/".join(p.parts[-depth:]) for p in paths]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _command(mode: str):
    def command(
        init: List[Path] = typer.Option(..., help="Pre-trained checkpoint; repeat with --learn-mix."),
        train: str = typer.Option(..., help="Downstream train list (.csv/.txt), folder tree, shards or "
                                  "ppma:<task>:train."),
        val: str = typer.Option(..., help="Downstream val list (or ppma:<task>:val)."),
        out: Optional[Path] = typer.Option(None, help="Where the tuned checkpoint and eval.json go."),
        preset: str = typer.Option("tiny", help="tiny | ppma | m2m (paper = ppma)."),
        learn_mix: bool = typer.Option(False, help="lp: learn softmax proportions over several --init."),
        layerwise: bool = typer.Option(False, help="With --learn-mix: one proportion per layer."),
        epochs: Optional[int] = typer.Option(None),
        batch_size: Optional[int] = typer.Option(None),
        lr: Optional[float] = typer.Option(None),
        workers: Optional[int] = typer.Option(None),
        seed: Optional[int] = typer.Option(None),
        device: Optional[str] = typer.Option(None),
        settings: Optional[List[str]] = typer.Option(None, "--set", help="Any setting SECTION.FIELD=VALUE (repeat), "
                                                     "e.g. --set data.clips_per_video=5 --set optim.layer_decay=0.75."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out."),
        resume: bool = typer.Option(False, "--resume", help="Continue the run in --out from its last saved epoch "
                                    "(not with --learn-mix)."),
        threads: Optional[int] = typer.Option(None, "--threads", help="torch threads per process."),
    ) -> None:
        _run(mode, init, train, val, out, preset, learn_mix, layerwise, device, settings, overwrite, threads, resume,
             epochs=epochs, batch_size=batch_size, lr=lr, workers=workers, seed=seed)

    command.__doc__ = ("Fine-tune the whole network (AdamW, warmup + cosine, max lr 2e-3)." if mode == "ft" else
                       "Linear probe on frozen features (max lr 1.6e-2); --learn-mix learns weight proportions.")
    return command


app.command("ft")(_command("ft"))
app.command("lp")(_command("lp"))


def register(main: typer.Typer) -> None:
    main.add_typer(app, name="eval")
