"""One declaration per setting: the typed field of a settings object, with its help.

A setting is a field of a settings dataclass (:class:`~svpkit.api.args.ActiveLearningArgs`, ...)
declared with :func:`setting`: its type and default are the field's, its help and its command-line
spelling the field's metadata. Everything else is derived from it (:mod:`svpkit.api.entries`): the
typer options of each command, both MLproject files, the keys a preset may set and the options
table of docs/options.md. Options a command takes beside its settings object (``--resume``,
``--quiet``, ...) are declared the same way as :class:`Declared` rows.

Adding an option to a loop is one :func:`setting` in its settings object plus its use in the loop.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Optional, Union, get_args, get_origin

from svpkit.contract import format_options

Scalar = Union[str, int, float, bool, None]
"""What the command line gives a setting: text, a number, a switch or nothing."""
_TEXT_TYPES = (str, int, float, bool)
_KEY = "setting"


@dataclass(frozen=True)
class Declared:
    """One option as the command line, MLproject entries, presets and the docs show it."""

    name: str
    default: Scalar
    """As the command line writes it (``"0.1,0.2"``, ``"false"``, ``None``)."""
    kind: type
    """What typer reads: ``str``, ``int``, ``float`` or ``bool`` (a flag)."""
    optional: bool
    help: str
    decls: tuple[str, ...] = ()
    """The typer spellings (``("--quiet", "-q")``); empty: ``--name-with-dashes`` (and ``--no-…`` for a flag)."""
    mlproject: bool = True
    """False: not an MLproject parameter (flags, what MLflow sets itself)."""

    @property
    def flag(self) -> str:
        return self.decls[0] if self.decls else "--" + self.name.replace("_", "-")

    @property
    def is_flag(self) -> bool:
        return self.kind is bool

    @property
    def mlproject_default(self) -> str:
        """The MLproject's text for the default: ``0`` for a count not given, ``""`` for other nothing."""
        if self.default is None:
            return "0" if self.kind is int else ""
        return text_of(self.default)


def setting(default: object, help: str, *, decls: tuple[str, ...] = (), mlproject: bool = True) -> typing.Any:
    """A settings field: ``default`` (a mutable one is copied per object), ``help`` as ``--help``
    and docs/options.md show it, ``decls`` its typer spellings when not ``--field-name``."""
    meta = {_KEY: (help, decls, mlproject)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def declared(cls: type) -> list[Declared]:
    """The options of settings class ``cls``, in field order (every field must be a :func:`setting`)."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in fields(cls):
        if _KEY not in f.metadata:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with svpkit.api.declare.setting")
        help_text, decls, mlproject = f.metadata[_KEY]
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc,operator]
        kind, optional = _text_type(hints[f.name], default)
        shown = default if kind is not str or default is None else text_of(default)
        rows.append(Declared(f.name, shown, kind, optional, help_text, decls, mlproject and kind is not bool))
    return rows


def text_of(value: object) -> str:
    """A value as the command line writes it: ``true``, ``0.1,0.2``, ``dim=50``, ``0.5``."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, Mapping):
        return format_options(value)
    if isinstance(value, Sequence) and not isinstance(value, str):
        return ",".join(text_of(v) for v in value)
    return str(value)


def _text_type(hint: object, default: object) -> tuple[type, bool]:
    """What the command line reads for a field of type ``hint``: one of str/int/float/bool, and
    whether it may be left out. A union with ``str`` (sizes, switches, options) reads text."""
    if hint in _TEXT_TYPES:
        assert isinstance(hint, type)
        return hint, False
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        optional = len(members) < len(get_args(hint))
        if len(members) == 1 and members[0] in _TEXT_TYPES:
            return members[0], optional
        return str, optional or default is None
    return str, default is None


def typer_type(row: Declared) -> object:
    """The annotation typer reads for ``row``."""
    return Optional[row.kind] if row.optional else row.kind
