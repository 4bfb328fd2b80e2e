"""Name → spec registries with wildcard listing and did-you-mean errors."""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from svpkit.errors import UnknownNameError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    spec: T
    plugin: str
    distribution: str


class ConflictError(Exception):
    """Two plugins registered the same name."""


class Registry(Generic[T]):
    """Specs of one kind (``model``, ``selector``, ``dataset``) keyed by name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def add(self, name: str, spec: T, plugin: str, distribution: str) -> None:
        if name in self._entries:
            old = self._entries[name]
            raise ConflictError(
                f"{self.kind} {name!r} is registered by both {old.distribution} "
                f"(plugin {old.plugin}) and {distribution} (plugin {plugin})"
            )
        self._entries[name] = Entry(name, spec, plugin, distribution)

    def put(self, name: str, spec: T, plugin: str, distribution: str) -> None:
        """Add ``name``, or replace it when ``distribution`` holds it already (an in-process
        registration that a notebook makes again); a ConflictError when another distribution holds it."""
        old = self._entries.get(name)
        if old is not None and old.distribution != distribution:
            raise ConflictError(f"{self.kind} {name!r} is registered by {old.distribution} (plugin {old.plugin})")
        self._entries[name] = Entry(name, spec, plugin, distribution)

    def get(self, name: str) -> T:
        return self.entry(name).spec

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownNameError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, list(self._entries), n=1, cutoff=0.5)
        if not close:
            lowered = {n.lower().replace("-", "_"): n for n in self._entries}
            key = name.lower().replace("-", "_")
            close = [lowered[k] for k in lowered if k.startswith(key) or key.startswith(k)][:1]
        hint = f"; did you mean {close[0]!r}?" if close else ""
        known = ", ".join(sorted(self._entries)[:12])
        more = "" if close else f" (known: {known}{', …' if len(self._entries) > 12 else ''})"
        return f"unknown {self.kind} {name!r}{hint}{more}"

    def names(self, pattern: str | None = None) -> list[str]:
        names = sorted(self._entries)
        if pattern:
            names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        return names

    def entries(self, pattern: str | None = None) -> list[Entry[T]]:
        return [self._entries[n] for n in self.names(pattern)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
