"""Continuing a run after a crash, Ctrl-C or SIGTERM (``--resume RUN_ID``).

The loops save their state to the run itself after every finished round (active learning) or
stage (core-set) as a new artifact ``state/<round>.json`` (:func:`svpkit.contract.state_artifact`): a crash while writing can only lose the
newest file, never the last good one. Every state carries the command's ``invocation`` (the
arguments the run was started with), so ``--resume RUN_ID`` needs nothing else: it reloads the
same data set and models and continues in the same MLflow run from the last finished round.

All randomness is derived from ``(seed, role, round)`` (:func:`svpkit.runtime.derive_seed`), so the
RNG "state" to restore is the seed itself: a resumed run picks the same indices and, on CPU,
reaches the same metrics as a run that was never interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from svpkit.contract import ACTIVE_LEARNING, CORE_SET, Tag
from svpkit.errors import ConfigError
from svpkit.tracking.reader import get_run_record, load_run_state

_COMMANDS = {loop.name: loop.command for loop in (ACTIVE_LEARNING, CORE_SET)}
"""The resumable loops and their commands."""


@dataclass
class ResumePoint:
    """The newest saved state of a run that is to be continued."""

    run_id: str
    loop: str
    status: str
    state: dict[str, Any]
    tags: dict[str, str]

    @property
    def invocation(self) -> dict[str, object]:
        return dict(self.state.get("invocation") or {})

    @property
    def round(self) -> int:
        return int(self.state.get("round", 0))


def find_resume_point(run_id: str, loop: str) -> ResumePoint:
    """Check that run ``run_id`` can be continued by ``loop`` and return its newest state.

    One clear error when the run does not exist, belongs to another loop, has finished, or
    stopped before its first state was saved.
    """
    record = get_run_record(run_id)
    command = _COMMANDS.get(loop, loop)
    run_loop = record.tags.get(Tag.LOOP)
    if run_loop != loop:
        if run_loop in _COMMANDS:
            hint = f"; resume it with `svpkit {_COMMANDS[run_loop]} --resume {run_id}`"
        else:
            hint = ""
        what = f"a {run_loop} run" if run_loop else "not an svpkit run"
        raise ConfigError(f"run {run_id} is {what}, so `svpkit {command} --resume` cannot continue it{hint}")
    if record.status == "FINISHED":
        raise ConfigError(f"run {run_id} has already finished; there is nothing to resume")
    state = load_run_state(run_id)
    if state is None or state.get("loop") != loop or "invocation" not in state:
        raise ConfigError(f"run {run_id} has no saved state to resume from (it stopped before its first round)")
    return ResumePoint(run_id=run_id, loop=loop, status=record.status, state=state, tags=dict(record.tags))
