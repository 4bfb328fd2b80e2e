"""Ctrl-C and SIGTERM end a run cleanly: KILLED, with its last finished round kept for ``--resume``.

Python turns SIGINT into :class:`KeyboardInterrupt` but lets SIGTERM kill the process on the spot,
which would leave the MLflow run RUNNING forever. While a run is open, SIGTERM raises
:class:`Terminated` (a ``KeyboardInterrupt``) instead, so the same clean-up path runs for both.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (or SIGINT) while a run was open."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """The shell convention: 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    # A second SIGTERM (systemd, Kubernetes) must not cut the clean-up short; SIGKILL still works.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(signum)


@contextmanager
def interrupts_end_runs() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Terminated` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _raise)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
