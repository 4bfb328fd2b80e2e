"""The ``svpkit`` command line (typer + rich).

- :mod:`~svpkit.cli.base`: the app, its consoles and the one error boundary of every command;
- :mod:`~svpkit.cli.options`: the options several commands share, declared once;
- :mod:`~svpkit.cli.listing`: ``plugins|models|selectors|datasets list``, ``models options``;
- :mod:`~svpkit.cli.runs`, :mod:`~svpkit.cli.loops`, :mod:`~svpkit.cli.tables`: ``active-learning``,
  ``core-set``, ``train``;
- :mod:`~svpkit.cli.analysis`: ``compare``, ``correlate``, ``run PRESET``;
- :mod:`~svpkit.cli.labeling`: ``query``, ``label``, ``export`` (labeling your own data).
- :mod:`~svpkit.cli.suggest`: ``suggest-proxy`` (which proxy agrees with the target).
"""

# Each module registers its commands; the loop commands first (the order of `svpkit --help`).
from svpkit.cli import loops  # noqa: F401

# isort: split
from svpkit.cli import analysis, labeling, listing, suggest  # noqa: F401
from svpkit.cli.base import app, main

__all__ = ["app", "main"]
