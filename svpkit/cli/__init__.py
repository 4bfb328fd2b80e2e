"""The ``svpkit`` command line (typer + rich).

- :mod:`~svpkit.cli.base`: the app, its consoles and the one error boundary of every command;
- :mod:`~svpkit.cli.options`: the options several commands share, declared once;
- :mod:`~svpkit.cli.listing`: ``plugins|models|selectors|datasets list``, ``models options``;
- :mod:`~svpkit.cli.runs`, :mod:`~svpkit.cli.loops`, :mod:`~svpkit.cli.tables`: ``active-learning``,
  ``core-set``, ``train``;
- :mod:`~svpkit.cli.analysis`: ``compare``, ``correlate``, ``run PRESET``;
- :mod:`~svpkit.cli.labeling`: ``query``, ``label``, ``export`` (labeling your own data).
"""

import sys

# Each module registers its commands; the loop commands first (the order of `svpkit --help`).
from svpkit.cli import loops  # noqa: F401

# isort: split
from svpkit.cli import analysis, labeling, listing  # noqa: F401
from svpkit.cli.base import app

__all__ = ["app", "main"]


def main() -> None:
    """The ``svpkit`` console script: plugin commands first, then the command line."""
    from svpkit.plugins import get_plugins

    try:
        get_plugins().register_commands(app)
    except Exception as exc:  # a broken plugin must not take the CLI down
        print(f"warning: plugin commands not loaded: {exc}", file=sys.stderr)
    app()
