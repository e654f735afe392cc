"""Entry point: ``privvid <command>``. Each command module adds itself with ``register(app)``.

The one error boundary of the command line lives here (:class:`_Boundary`): commands let
privvid's errors rise, and this prints each as one line on stderr and exits with

- 2 for a bad setting or an input that cannot be used (``ConfigError``, any ``PrivvidError``,
  a ``ValueError`` from parsing an option, a missing file); privvid checks settings before any work,
  so for them this happens before a clip or a training step runs;
- 1 for anything unexpected (a bug): one line, with the traceback when ``PRIVVID_DEBUG=1``; and 1
  with "error:" for what the system refused mid-way (a full disk, a read-only mount: ``OSError``);
- 130 / 143 / 129 after Ctrl-C / SIGTERM / SIGHUP (``anonymize``: finished work is kept; the same command
  resumes).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from typer._click.exceptions import ClickException, NoArgsIsHelpError
from typer.core import TyperGroup

import privvid
from privvid.cli import anonymize, doctor, models, shards, train, evaluate, average, curate, qa, benchmark, synth
from privvid.anonymize.dataset import Terminated
from privvid.errors import PrivvidError

errors = Console(stderr=True, highlight=False, soft_wrap=True)


def _plain_flags(command: Any) -> None:
    """A flag takes no value, so ``--help`` shows none beside it (typer shows ``<bool>``, which reads as
    ``--save-masks true``, and ``true`` is then an extra argument): here and in every subcommand."""
    context = typer.Context(command, **(command.context_settings or {}))
    for param in [*command.params, command.get_help_option(context)]:
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _plain_flags(sub)


class _Boundary(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _plain_flags(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except (PrivvidError, ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                PermissionError) as exc:
            if os.environ.get("PRIVVID_DEBUG") == "1":
                raise
            errors.print(f"[red]error:[/red] {escape(_text(exc))}")
            raise typer.Exit(2) from None
        except BrokenPipeError:  # the reader went away (`privvid ... | head`): nothing left to say
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            raise typer.Exit(141) from None
        except OSError as exc:  # the system refused (a full disk, a read-only mount): not privvid's bug
            if os.environ.get("PRIVVID_DEBUG") == "1":
                raise
            errors.print(f"[red]error:[/red] {escape(_text(exc))}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:
            what = "terminated" if isinstance(exc, Terminated) else "interrupted"
            try:   # after a hang-up the terminal may be gone: the exit code still tells
                errors.print(f"[yellow]{what}[/yellow]: {_AFTER_STOP.get(ctx.invoked_subcommand or '', _STOPPED)}")
            except OSError:
                pass
            raise typer.Exit(exc.exit_code if isinstance(exc, Terminated) else 130) from None
        except Exception as exc:  # noqa: BLE001 - the boundary: one line instead of a traceback
            if os.environ.get("PRIVVID_DEBUG") == "1":
                raise
            errors.print(f"[red]internal error:[/red] {type(exc).__name__}: {escape(_text(exc))} "
                         "(PRIVVID_DEBUG=1 shows the traceback; please report it)")
            raise typer.Exit(1) from None


# what a stopped command kept, and how to go on, per command
_STOPPED = "nothing half-written is kept; run the command again"
_AFTER_STOP = {
    "anonymize": "finished clips are kept; run the same command to resume",
    "synth": "finished clips are kept; run the same command to resume",
    "train": "the last saved epoch is kept; run the same command with --resume to go on from it",
    "eval": "the last saved epoch is kept; run the same command with --resume to go on from it (a learned mix "
            "saves nothing before it ends: run it again with --overwrite)",
    "benchmark": "finished steps are kept; run the same command to go on",
}


def _text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:  # "PATH: reason", not "[Errno 20] reason: 'PATH'"
        paths = [str(name) for name in (exc.filename, exc.filename2) if name is not None]
        return f"{' -> '.join(paths)}: {exc.strerror}" if paths else exc.strerror
    text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return str(text) or type(exc).__name__


app = typer.Typer(
    name="privvid",
    cls=_Boundary,
    help="Privacy-preserving action-video datasets: remove or replace people, curate, audit, train.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"privvid {privvid.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    """Privacy-preserving action-video datasets: remove or replace people, curate, audit, train."""


for _module in (anonymize, doctor, models, shards, train, evaluate, average, curate, qa, benchmark, synth):
    _module.register(app)


def run() -> None:
    """``privvid``: the app, with a usage error (an unknown option, a missing argument) as one line on
    stderr like every other error, not click's framed box."""
    import sys

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:   # a group or command given without what it needs: its help
        typer.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc))
        sys.exit(2)
    except ClickException as exc:
        ctx = getattr(exc, "ctx", None)   # a usage error knows its command
        where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
        errors.print(f"[red]error:[/red] {escape(exc.format_message())}{escape(where)}")
        sys.exit(exc.exit_code)
    except typer.Abort:
        errors.print("[yellow]aborted[/yellow]")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    run()
