"""Entry point: ``privvid <command>``. Each command module adds itself with ``register(app)``."""

from __future__ import annotations

import typer

from privvid.cli import anonymize, doctor, models, shards, train, evaluate, average, curate, qa, benchmark

app = typer.Typer(
    name="privvid",
    help="Privacy-preserving action-video datasets: remove or replace people, curate, audit, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (anonymize, doctor, models, shards, train, evaluate, average, curate, qa, benchmark):
    _module.register(app)


def run() -> None:
    app()


if __name__ == "__main__":
    run()
