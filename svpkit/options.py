"""Declared options and their text form, shared by models, selectors and data sets.

A model, a selector or a data set declares its options (:class:`Option`: name, type, default,
help); on the command line they are one string (``"size=64,stream=auto"``, :func:`parse_options_text`),
checked against the declaration (:func:`check_known`, :meth:`Option.convert`) before any run exists.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from svpkit.errors import ConfigError

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """One declared option. ``default`` None means "decided later" (e.g. per device or per machine)."""

    name: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    def convert(self, value: Any, owner: str, kind: str = "model") -> Any:
        """``value`` (a string from the command line, or already typed) as this option's type;
        ``owner`` and ``kind`` name its holder in errors (``option 'size' of data set 'imagefolder'``)."""
        where = f"option {self.name!r} of {kind} {owner!r}"
        text = str(value).strip()
        try:
            if self.type is bool:
                if isinstance(value, bool):
                    return value
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise ValueError
            if self.type in (int, float):
                if isinstance(value, bool):
                    raise ValueError
                number = int(text) if self.type is int else float(text)
                if self.minimum is not None and not number >= self.minimum:
                    raise ConfigError(f"{where} must be at least {self.minimum:g}, got {text}")
                return number
        except ValueError:
            raise ConfigError(f"{where} must be {_TYPE_WORDS[self.type]}, got {text!r}") from None
        if self.choices and text not in self.choices:
            raise ConfigError(f"{where} must be one of {', '.join(self.choices)}, got {text!r}")
        return text


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def check_known(flag: str, owner: str, name: str, known: Collection[str]) -> None:
    """Raise for an option ``name`` that ``owner`` (``model 'x'``, ``selector 'y'``) does not declare (did-you-mean)."""
    if name in known:
        return
    if not known:
        raise ConfigError(f"{flag}: {owner} takes no options (got {name!r})")
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{flag}: {owner} has no option {name!r}{hint}; it takes {', '.join(sorted(known))}")


def parse_options_text(text: str | None, flag: str) -> dict[str, str]:
    """``"a=1,b=x"`` → ``{"a": "1", "b": "x"}`` (whitespace around names and values is dropped)."""
    out: dict[str, str] = {}
    if text is None or not text.strip():
        return out
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or not name or not value.strip():
            raise ConfigError(f"{flag} takes name=value pairs separated by commas, got {item.strip()!r}")
        if name in out:
            raise ConfigError(f"{flag} sets {name!r} twice")
        out[name] = value.strip()
    return out


ModelOption = Option
"""A model's or a selector's option (the same declaration data sets use)."""
