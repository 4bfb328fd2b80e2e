"""The ``svpkit`` typer app, its consoles, and the one error boundary every command runs in."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Optional, TypeVar, cast

import click
import typer
import typer.core
from rich.console import Console

from svpkit.errors import SvpkitError

if TYPE_CHECKING:
    from svpkit.plugins import Plugins

# Wide tables when piped (rich assumes 80 columns without a terminal), folded rather than cut.
out = Console(width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, soft_wrap=True)
_STATE = {"debug": bool(os.environ.get("SVPKIT_DEBUG"))}
F = TypeVar("F", bound=Callable[..., Any])
try:  # typer 0.24 and later parse with a vendored copy of click
    from typer._click.exceptions import UsageError as _VendoredUsageError

    USAGE_ERRORS: tuple[type[Exception], ...] = (click.UsageError, _VendoredUsageError)
except ImportError:  # pragma: no cover - older typer uses click itself
    USAGE_ERRORS = (click.UsageError,)


def error_boundary(func: Callable[..., Any]) -> Callable[..., Any]:
    """One clear line on stderr and a non-zero exit instead of a traceback (unless --debug).

    A command marked :func:`uses_store` first probes a tracking server. SIGTERM ends an open run
    as KILLED, like Ctrl-C; inside ``mlflow run`` the entry's run is marked FAILED with the reason.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from svpkit.signals import interrupts_end_runs

        try:
            if getattr(func, "uses_store", False):
                from svpkit.tracking.store import probe

                probe()
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


def uses_store(func: F) -> F:
    """Mark a command that reads or writes the tracking store: a tracking server that does not
    answer is its error before it starts (:func:`svpkit.tracking.store.probe`)."""
    func.uses_store = True  # type: ignore[attr-defined]
    return func


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

    def invoke(self, ctx: Any) -> Any:
        """Usage errors of every command under the group (an unknown option or command, a value
        of the wrong type, a missing argument) are one ``error:`` line and exit code 2 as well."""
        try:
            return super().invoke(ctx)
        except USAGE_ERRORS as caught:
            exc = cast(click.UsageError, caught)  # the vendored class has the same interface
            where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
            print(f"error: {exc.format_message()} (see '{where} --help')", file=sys.stderr)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="svpkit",
    help="Selection via Proxy: choose training data with a cheap proxy model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    cls=GuardedGroup,
)
COMPLETE_VAR = "_SVPKIT_COMPLETE"
"""Set by the shell completion scripts (``svpkit --install-completion``)."""


def _print_version(value: bool) -> None:
    if value:
        import importlib.metadata

        print(f"svpkit {importlib.metadata.version('svpkit')}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print svpkit's version and exit."
    ),
) -> None:
    if debug:
        _STATE["debug"] = True


def main(argv: Optional[list[str]] = None) -> None:
    """The ``svpkit`` console script.

    Plugins are imported only when needed (some import torch and a model zoo, seconds): a plugin's
    commands are added only when the command asked for is not a built-in one, so ``svpkit
    --help``, ``--version``, completion and built-in commands start without them; the built-in
    commands that need the registries load the plugins themselves (:func:`plugins`). The root
    help names the installed plugin distributions from their metadata instead.
    """
    from svpkit.plugins import distributions

    args = sys.argv[1:] if argv is None else argv
    command = next((a for a in (args if COMPLETE_VAR not in os.environ else _completed_words()) if a[:1] != "-"), None)
    if command is None:
        installed = distributions()
        if installed:
            app.info.epilog = (
                f"Plugins: {', '.join(installed)}. Their commands load when called; svpkit plugins list shows them."
            )
    elif command not in builtin_commands():
        try:
            plugins().register_commands(app)
        except Exception as exc:  # a broken plugin must not take the CLI down
            print(f"warning: plugin commands not loaded: {exc}", file=sys.stderr)
    app(args=args)


def _completed_words() -> list[str]:
    """During shell completion: the words of the command line before the one being completed."""
    if "COMP_WORDS" in os.environ:  # bash
        words = os.environ["COMP_WORDS"].split()
        return words[1 : int(os.environ.get("COMP_CWORD") or len(words))]
    line = os.environ.get("_TYPER_COMPLETE_ARGS", "")  # zsh, fish, PowerShell
    words = line.split()
    return words[1:] if line.endswith(" ") else words[1:-1]


def builtin_commands() -> set[str]:
    """The names of svpkit's own commands and command groups."""
    from svpkit.plugins import command_names

    return command_names(app)


def plugins() -> Plugins:
    """The process-wide plugin set (loaded on first use)."""
    from svpkit.plugins import get_plugins

    return get_plugins()


def print_run_link(experiment_id: str, run_id: str) -> None:
    """The last lines of every command that logs a run: its id and where to see it."""
    from svpkit.tracking.store import run_link

    for line in run_link(experiment_id, run_id):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
