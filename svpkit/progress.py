"""Progress reporting for long work: rich bars on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def task(self, description: str, total: int | None) -> AbstractContextManager[Advance]:
        """Context manager yielding ``advance(n)`` for a unit of work of ``total`` steps."""
        ...

    def log(self, message: str) -> None: ...

    def __enter__(self) -> Progress: ...

    def __exit__(self, *exc: object) -> None: ...


def _no_advance(n: int = 1) -> None:
    pass


class NullProgress:
    """Reports nothing (tests, ``--quiet``, no terminal)."""

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Advance]:
        yield _no_advance

    def log(self, message: str) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class RichProgress:
    """Rich progress bars on stderr: one line for the whole run, one for the work in hand."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            ProgressColumn,
            Task,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _RichProgress
        from rich.text import Text

        class Rate(ProgressColumn):
            """Steps per second of the task (examples/s of a pass, epochs/s of a fit)."""

            def render(self, task: Task) -> Text:
                speed = task.finished_speed or task.speed
                if speed is None:
                    return Text("")
                return Text(f"{speed:,.0f}/s" if speed >= 10 else f"{speed:.2f}/s", style="progress.data.speed")

        self.console = Console(stderr=True)
        self._progress = _RichProgress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            Rate(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Advance]:
        task_id = self._progress.add_task(description, total=total)

        def advance(n: int = 1) -> None:
            self._progress.advance(task_id, n)

        try:
            yield advance
        finally:
            self._progress.remove_task(task_id)

    def log(self, message: str) -> None:
        self._progress.console.log(message)


def make_progress(quiet: bool) -> NullProgress | RichProgress:
    """Rich bars when stderr is a terminal and not ``quiet``."""
    if quiet or not sys.stderr.isatty():
        return NullProgress()
    return RichProgress()


_CURRENT: ContextVar[Progress | None] = ContextVar("svpkit_progress", default=None)


@contextmanager
def shown(progress: Progress) -> Iterator[Progress]:
    """Make ``progress`` the one :func:`current` returns inside the block (data loading: listing
    and statistics passes report there without a progress argument in every loader)."""
    token = _CURRENT.set(progress)
    try:
        yield progress
    finally:
        _CURRENT.reset(token)


def current() -> Progress:
    """The progress of the enclosing :func:`shown` block, else one that reports nothing."""
    found = _CURRENT.get()
    return found if found is not None else NullProgress()


@contextmanager
def current_or_new() -> Iterator[Progress]:
    """The progress of the enclosing :func:`shown` block (quiet there stays quiet), else new bars."""
    found = _CURRENT.get()
    if found is not None:
        yield found
        return
    with make_progress(False) as bars:
        yield bars
