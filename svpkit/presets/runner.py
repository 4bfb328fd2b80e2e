"""Running one planned run inside its pre-created MLflow run: in this process, or as a subprocess.

Every run of a preset is created first, tagged with the preset and the run's key; the loop then
continues it (``MLFLOW_RUN_ID``): through the Python API in this process, or the loop command in a
child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from svpkit.contract import Tag
from svpkit.errors import SvpkitError
from svpkit.presets.plan import KEY_TAG, PRESET_TAG, LoopCommands, PlannedRun, Preset

_INTERRUPT_CODES = {130, 143, -2, -15}


class PresetInterrupted(SvpkitError):
    """SIGINT/SIGTERM during a run: stop the preset (finished runs are kept and skipped next time)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def preset_tags(preset: Preset, run: PlannedRun) -> dict[str, str]:
    """The tags that tie a run to its preset (finished keys are skipped next time)."""
    return {PRESET_TAG: preset.name, KEY_TAG: run.key, Tag.PRESET_FILE: str(preset.path)}


def start_run(preset: Preset, run: PlannedRun) -> str:
    """Create the run (tagged with the preset and key); the loop command continues it."""
    from svpkit import tracking

    exp_id = tracking.ensure_experiment(preset.experiment)
    return tracking.client().create_run(exp_id, run_name=run.name, tags=preset_tags(preset, run)).info.run_id


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables within the block."""
    old = {k: os.environ.get(k) for k in values}

    def apply(settings: dict[str, str | None]) -> None:
        for k, v in settings.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    try:
        apply(dict(values))
        yield
    finally:
        apply(old)


def run_subprocess(run: PlannedRun, run_id: str, tracking_uri: str, **env: str) -> tuple[int, str | None]:
    """``python -m svpkit <command> ... --quiet`` in run ``run_id``: its exit code and error line (None: ok)."""
    child = dict(os.environ, MLFLOW_RUN_ID=run_id, MLFLOW_TRACKING_URI=tracking_uri, **env)
    child.pop("MLFLOW_EXPERIMENT_ID", None)
    proc = subprocess.run(
        [sys.executable, "-m", "svpkit", run.command, *run.args, "--quiet"],
        env=child,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if proc.returncode == 0:
        return 0, None
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")] or proc.stderr.splitlines()[-1:]
    return proc.returncode, lines[-1] if lines else f"exit code {proc.returncode}"


def execute(run: PlannedRun, run_id: str, subprocess_runs: bool, commands: LoopCommands) -> str | None:
    """Run one planned run inside ``run_id``; the error line when it failed, else None.

    In this process the run goes through the Python API (:func:`svpkit.api.loops.run_loop`) with
    the command's parsed parameters; ``subprocess_runs``: ``python -m svpkit`` in a child process.
    """
    from svpkit import tracking

    if subprocess_runs:
        returncode, problem = run_subprocess(run, run_id, tracking.client().tracking_uri)
        if returncode in _INTERRUPT_CODES:
            raise PresetInterrupted(_interrupted(run), 128 + abs(returncode) % 128)
        return problem
    from svpkit.api.loops import run_loop
    from svpkit.signals import interrupts_end_runs

    with environment(MLFLOW_RUN_ID=run_id, MLFLOW_EXPERIMENT_ID=None):
        try:
            with interrupts_end_runs():
                run_loop(run.loop, commands.parse(run.loop, run.args))
        except KeyboardInterrupt as exc:
            raise PresetInterrupted(_interrupted(run), 128 + int(getattr(exc, "signum", 2))) from None
        except Exception as exc:  # the run failed: FAILED with its reason, the preset goes on
            tracking.fail_run(run_id, exc)
            message = str(exc).strip().splitlines()
            return f"error: {message[0] if message else type(exc).__name__}"
    return None


def _interrupted(run: PlannedRun) -> str:
    return f"interrupted during run {run.name}; run the preset again to continue (finished runs are skipped)"
