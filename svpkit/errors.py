"""Errors that the CLI turns into one clear line and a non-zero exit."""

from __future__ import annotations


class SvpkitError(Exception):
    """A user-facing error: bad input, missing data, unknown names.

    The CLI prints ``str(error)`` on one line and exits with ``exit_code``; no traceback.
    """

    exit_code = 2


class UnknownNameError(SvpkitError, KeyError):
    """A registry lookup failed (with a did-you-mean suggestion in the message)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(SvpkitError):
    """A data set is missing, truncated or malformed."""


class ConfigError(SvpkitError):
    """Parameters that cannot describe a run (budgets, fractions, sizes)."""
