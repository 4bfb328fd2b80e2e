"""What every loop command does with a finished run: its report, then its id and link.

The run itself is :mod:`svpkit.api` (resume, validation, data, the tracked run); under torchrun
only rank 0 prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from svpkit.cli.base import print_run_link

if TYPE_CHECKING:
    from svpkit.api.flow import RunResult

R = TypeVar("R")


def report_run(ran: RunResult[R], report: Callable[[R], None]) -> None:
    """``report(result)`` and the run's link, on rank 0 (other ranks' runs have no id)."""
    if ran.run_id:
        report(ran.result)
        print_run_link(str(ran.experiment_id), ran.run_id)
