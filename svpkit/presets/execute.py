"""Running a preset: skip the runs already FINISHED, run the rest, then compare the experiment.

Every run is tagged ``svpkit.preset`` and ``svpkit.preset_key`` (a hash of the run's options as
written); runs whose key already has a FINISHED run in the experiment are skipped, so an
interrupted preset continues where it stopped. Runs go one after another (in this process, or
each in its own with ``--subprocess``), or many at once (:mod:`svpkit.presets.backends`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rich.markup import escape
from rich.table import Table

from svpkit.contract import PRESET, Tag
from svpkit.errors import SvpkitError
from svpkit.presets.backends import Outcome, fan_out
from svpkit.presets.plan import (
    KEY_TAG,
    PRESET_TAG,
    LoopCommands,
    PlannedRun,
    Preset,
    PresetError,
    load_preset,
    problems,
)
from svpkit.presets.runner import environment, execute, start_run


class Printer(Protocol):
    """Where a preset's plan, progress and comparison go (the CLI's consoles)."""

    def print(self, *objects: Any, **options: Any) -> None: ...


def mark_done(preset: Preset) -> str | None:
    """Fill ``done_run_id`` from FINISHED runs in the experiment; the experiment id (None: not yet)."""
    from svpkit import tracking

    exp_id = tracking.experiment_id_for(preset.experiment)
    if exp_id is None:
        return None
    done: dict[str, str] = {}
    for rec in tracking.find_runs([exp_id], f"tags.`{PRESET_TAG}` = '{_quote(preset.name)}'"):
        key = rec.tags.get(KEY_TAG)
        if key and key not in done:
            done[key] = rec.run_id
    for run in preset.runs:
        run.done_run_id = done.get(run.key)
    return exp_id


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def plan_table(preset: Preset) -> Table:
    table = Table(title=f"preset {preset.name} → experiment {preset.experiment} ({len(preset.runs)} runs)")
    for col in ("#", "run", "status", "command"):
        table.add_column(col, overflow="fold")
    for run in preset.runs:
        status = f"[green]done[/] {run.done_run_id}" if run.done_run_id else "to run"
        table.add_row(str(run.index), escape(run.name), status, escape(" ".join([run.command, *run.args])))
    return table


def run_preset(
    path: str | Path,
    commands: LoopCommands,
    dry_run: bool = False,
    experiment: str | None = None,
    subprocess_runs: bool = False,
    compare: bool = True,
    parallel: int = 1,
    backend: str | None = None,
    backend_config: str | None = None,
    project: str | None = None,
    *,
    out: Printer,
    err: Printer,
) -> Preset:
    """Expand, skip what is FINISHED, run the rest in order, then compare the experiment; the plan,
    progress and comparison are printed to ``out``, the planned runs' problems to ``err``."""
    preset = load_preset(path, commands, experiment)
    found = problems(preset, commands)
    if found:
        for line in found:
            err.print(line, markup=False, highlight=False)
        raise PresetError(f"{len(found)} problem(s) in the planned runs of {preset.path} (above); nothing was run")
    # Inside `mlflow run -e experiment` that entry's own run exists already; it records the
    # plan, and the preset's runs (and the comparison) become runs of their own.
    outer_run = os.environ.get("MLFLOW_RUN_ID")
    with environment(MLFLOW_RUN_ID=None, MLFLOW_EXPERIMENT_ID=None):
        mark_done(preset)
        out.print(plan_table(preset))
        todo = [r for r in preset.runs if not r.done_run_id]
        out.print(f"{len(preset.runs) - len(todo)} already finished, {len(todo)} to run")
        if dry_run:
            return preset

        def announce(message: str) -> None:
            out.print(message, highlight=False)

        outcomes: list[Outcome] | None = None
        if parallel > 1 or backend:  # many runs at once
            outcomes = fan_out(preset, todo, parallel, backend, backend_config, project, announce)
        failures = _run_all(preset, todo, outcomes, announce, subprocess_runs, commands)
        compare_run = _compare(preset, out) if compare and any(r.done_run_id for r in preset.runs) else None
    if outer_run:
        _log_plan(outer_run, preset, compare_run)
    if failures:
        raise SvpkitError(f"{len(failures)} of {len(todo)} runs failed; first: {failures[0]}")
    return preset


def _run_all(
    preset: Preset,
    todo: list[PlannedRun],
    outcomes: list[Outcome] | None,
    announce: Callable[[str], None],
    subprocess_runs: bool,
    commands: LoopCommands,
) -> list[str]:
    """Each run's outcome, in order (``outcomes`` of runs fanned out, else run one at a time): the failures."""
    failures: list[str] = []
    for n, run in enumerate(todo, start=1):
        if outcomes is not None:
            run_id, problem = outcomes[n - 1]
        else:
            run_id = start_run(preset, run)
            announce(f"[{n}/{len(todo)}] {run.name}: run {run_id}")
            problem = execute(run, run_id, subprocess_runs, commands)
        if problem:
            failures.append(f"{run.name}: {problem}")
            announce(f"  failed: {problem}")
        else:
            run.done_run_id = run_id
    return failures


def _compare(preset: Preset, out: Printer) -> str:
    """``svpkit compare`` over the preset's experiment; the comparison run's id."""
    from svpkit.analysis import compare as comparison
    from svpkit.tracking.store import run_link

    result = comparison.compare_experiment(preset.experiment)
    for table in comparison.rich_tables(result):
        out.print(table)
    for line in comparison.summary_lines(result):
        out.print(f"note: {line}", highlight=False)
    exp_id, compare_run = comparison.log_comparison(result, f"compare-{preset.name}")
    for line in run_link(exp_id, compare_run, "comparison run"):
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    return compare_run


def _log_plan(outer_run: str, preset: Preset, compare_run: str | None) -> None:
    """The ``mlflow run -e experiment`` entry's own run: the plan, and which run each became."""
    from svpkit import tracking

    tracker = tracking.MlflowTracker(outer_run)
    tracker.set_tags({Tag.LOOP: PRESET, PRESET_TAG: preset.name, Tag.COMPARE_RUN: compare_run or "none"})
    tracker.log_params({"preset": str(preset.path), "experiment": preset.experiment, "runs": len(preset.runs)})
    tracker.log_text("preset/plan.txt", "\n".join(f"{r.name}\t{r.done_run_id or 'failed'}" for r in preset.runs))
