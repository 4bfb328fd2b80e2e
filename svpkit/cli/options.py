"""The options of the commands, generated from the settings declarations (:mod:`svpkit.api.entries`).

A command that starts runs takes ``**values``: :func:`takes_settings` gives it the typer options of
its declaration (the settings object's fields, then its own options, then the run's), so an option
is declared once, with its help and default, beside the field the Python API takes.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Annotated, Any, Optional, TypeVar

import typer

from svpkit.api.declare import Declared, typer_type

# -- listings ----------------------------------------------------------------------------------
Json = Annotated[bool, typer.Option("--json")]
Pattern = Annotated[Optional[str], typer.Argument()]
RunName = Annotated[Optional[str], typer.Option()]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def parameter(row: Declared) -> inspect.Parameter:
    """The typer parameter of one declared option."""
    annotation = Annotated[typer_type(row), typer.Option(*row.decls, help=row.help or None)]  # type: ignore[valid-type]
    return inspect.Parameter(row.name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=row.default)


def takes_settings(command: str) -> Callable[[F], F]:
    """A command taking ``**values``: the options :data:`svpkit.api.entries.COMMANDS` declares for ``command``."""
    from svpkit.api.entries import COMMANDS

    def declare(func: F) -> F:
        params = [parameter(row) for row in COMMANDS[command].options()]
        func.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        return func

    return declare


def settings_of(cls: type[T], values: Mapping[str, Any]) -> T:
    """The settings object ``cls`` of a command's values (as the command line gives them)."""
    return cls(**{f.name: values[f.name] for f in fields(cls)})  # type: ignore[arg-type]
