"""The ``svpkit`` typer app, its consoles, and the one error boundary every command runs in."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import typer
import typer.core
from rich.console import Console

from svpkit.errors import SvpkitError

# Wide tables when piped (rich assumes 80 columns without a terminal), folded rather than cut.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)
_STATE = {"debug": bool(os.environ.get("SVPKIT_DEBUG"))}


def error_boundary(func: Callable[..., Any]) -> Callable[..., Any]:
    """One clear line on stderr and a non-zero exit instead of a traceback (unless --debug).

    SIGTERM ends an open run as KILLED, like Ctrl-C; inside ``mlflow run`` the entry's run is
    marked FAILED with the reason.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from svpkit.signals import interrupts_end_runs

        try:
            with interrupts_end_runs():
                return func(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except KeyboardInterrupt as exc:
            signum = getattr(exc, "signum", 2)
            run_id = getattr(exc, "run_id", None)
            where = f"; run {run_id} is KILLED, continue it with --resume {run_id}" if run_id else ""
            print(f"error: interrupted by {'SIGTERM' if signum == 15 else 'SIGINT'}{where}", file=sys.stderr)
            raise typer.Exit(128 + signum) from None
        except Exception as exc:
            from svpkit import tracking

            tracking.fail_env_run(exc)
            if _STATE["debug"]:
                raise
            if isinstance(exc, SvpkitError):
                message, code = str(exc), exc.exit_code
            else:
                message, code = f"{type(exc).__name__}: {exc} (run with --debug for the traceback)", 1
            first = message.strip().splitlines()[0] if message.strip() else type(exc).__name__
            print(f"error: {first}", file=sys.stderr)
            raise typer.Exit(code) from None

    return wrapper


def _guard(commands: Iterable[Any]) -> None:
    for command in commands:
        if isinstance(command, typer.core.TyperGroup):
            _guard(command.commands.values())
        elif command.callback is not None:
            command.callback = error_boundary(command.callback)


class GuardedGroup(typer.core.TyperGroup):
    """The root command group: every command under it, at any depth, runs in :func:`error_boundary`.

    Applied when typer builds the group, so commands that plugins add through the
    ``register_commands`` hook get the same boundary as the built-in ones.
    """

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        _guard(self.commands.values())


app = typer.Typer(
    name="svpkit",
    help="Selection via Proxy: choose training data with a cheap proxy model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=GuardedGroup,
)


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors.")) -> None:
    if debug:
        _STATE["debug"] = True


def plugins() -> Any:
    """The process-wide plugin set."""
    from svpkit.plugins import get_plugins

    return get_plugins()


def print_run_link(experiment_id: str, run_id: str) -> None:
    """The last line of every command that logs a run: its id and where to see it."""
    from svpkit import tracking

    out.print(f"run {run_id}: {tracking.runs_url(experiment_id, run_id)}")
