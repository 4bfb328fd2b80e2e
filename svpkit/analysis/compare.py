"""``svpkit compare``: read an experiment's runs, pair them (:mod:`~svpkit.analysis.pairing`), render
(:mod:`~svpkit.analysis.report`, :mod:`~svpkit.analysis.figures`) and log a ``svpkit.loop=compare`` run.

An analysis-only module: it reads finished runs and logs the comparison through
:mod:`svpkit.tracking`. The loops never see it. The speed-up at a level uses
``selection/cumulative_seconds`` (active learning) or ``selection/total_seconds`` (core-set); the
worst class next to the error is ``target/worst_class_error`` (absent for runs that did not log it).
Runs tagged ``svpkit.loop=compare`` (and anything that is neither an active-learning nor a
core-set run) are not compared.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from svpkit import plots, tracking
from svpkit.analysis.environments import environment_label, mixed_environments_note
from svpkit.analysis.figures import error_figure, speedup_figure
from svpkit.analysis.pairing import COMPARED_LOOPS, Block, ComparedRun, Comparison, compare_records
from svpkit.analysis.report import (
    as_json,
    comparison_numbers,
    pairs_csv,
    rich_tables,
    summary_lines,
    to_csv,
    to_markdown,
)
from svpkit.analysis.stats import WORSE_THAN_RANDOM
from svpkit.contract import (
    ACTIVE_LEARNING,
    COMPARE,
    Artifact,
    Metric,
    Tag,
    compare_figure,
    compare_metric,
    model_label,
    run_setting,
    selector_label,
    selector_model_label,
)
from svpkit.errors import SvpkitError

if TYPE_CHECKING:
    from svpkit.protocols import Tracker

__all__ = [
    "CompareError",
    "as_json",
    "compare_experiment",
    "load_runs",
    "log_comparison",
    "rich_tables",
    "summary_lines",
]

_REQUIRED_TAGS = (Tag.ROLE, Tag.SELECTOR, Tag.TARGET_MODEL, Tag.SEED)
_AL_ERROR = Metric.TARGET_ERROR
_WORST_CLASS = Metric.WORST_CLASS_ERROR
_AL_SELECTION = Metric.SELECTION_CUMULATIVE_SECONDS
_CS_SELECTION = Metric.SELECTION_TOTAL_SECONDS
_CS_END_TO_END = Metric.END_TO_END_SPEEDUP
_MAX_RUNS = 50000


class CompareError(SvpkitError):
    """Nothing to compare."""


def load_runs(experiment_id: str) -> tuple[list[ComparedRun], list[tuple[str, str, str]]]:
    """The experiment's finished active-learning and core-set runs, and the runs left out (with why)."""
    records: list[ComparedRun] = []
    ignored: list[tuple[str, str, str]] = []
    for run in tracking.find_runs([experiment_id], finished_only=False, max_results=_MAX_RUNS):
        if run.tags.get(Tag.LOOP) not in COMPARED_LOOPS:
            continue  # compare runs, preset drivers, plain training runs: not part of the comparison
        compared = _compared_run(run)
        if isinstance(compared, str):
            ignored.append((run.run_id, run.tags.get("mlflow.runName", ""), compared))
        else:
            records.append(compared)
    return records, ignored


def _compared_run(run: tracking.RunRecord) -> ComparedRun | str:
    """The run as the comparison sees it, or why it is left out."""
    tags, params = run.tags, run.params
    if run.status != "FINISHED":
        return f"status {run.status}"
    missing = [t for t in _REQUIRED_TAGS if t not in tags]
    if missing:
        return f"missing tags {', '.join(missing)}"
    loop = tags[Tag.LOOP]
    rec = ComparedRun(
        run_id=run.run_id,
        name=tags.get("mlflow.runName", ""),
        loop=loop,
        role=tags[Tag.ROLE],
        dataset=tags.get(Tag.DATASET, params.get("dataset", "?")),
        selector=selector_label(tags, params),
        # A model run with options is another model here (svpkit.contract.model_label).
        selector_model=selector_model_label(tags, params),
        target_model=model_label(tags[Tag.TARGET_MODEL], run_setting(tags, params, "target_options")),
        seed=tags[Tag.SEED],
        budgets=tags.get(Tag.BUDGETS if loop == ACTIVE_LEARNING.name else Tag.SUBSET_SIZE, ""),
        train_size=params.get("train_size", "?"),
        proxy_epochs=run_setting(tags, params, "proxy_epochs"),
        start_time=run.start_time,
        environment=environment_label(tags),
    )
    if loop == ACTIVE_LEARNING.name:
        rec.errors = tracking.metric_history(run.run_id, _AL_ERROR)
        rec.worst_class = tracking.metric_history(run.run_id, _WORST_CLASS)
        rec.selection = tracking.metric_history(run.run_id, _AL_SELECTION)
    else:
        try:
            level = int(float(rec.budgets))
        except ValueError:
            return f"subset size {rec.budgets!r} is not a number"
        rec.errors = _final_value(run, _AL_ERROR, level)
        rec.worst_class = _final_value(run, _WORST_CLASS, level)
        rec.selection = _final_value(run, _CS_SELECTION, level)
        rec.end_to_end = _final_value(run, _CS_END_TO_END, level)
    if not rec.levels:
        return "no target error or selection time logged"
    return rec


def _final_value(run: tracking.RunRecord, key: str, level: int) -> dict[int, float]:
    """``{level: value}`` of a metric the run logged once (none when it is missing or NaN)."""
    value = run.metrics.get(key)
    return {} if value is None or math.isnan(value) else {level: float(value)}


def compare_experiment(experiment: str | None = None) -> Comparison:
    """Read and compare the runs of one experiment."""
    exp_id, exp_name = tracking.resolve_experiment(experiment)
    records, ignored = load_runs(exp_id)
    if not records:
        raise CompareError(
            f"experiment {exp_name!r} has no finished active-learning or core-set runs to compare"
            + (f" ({len(ignored)} left out, e.g. {ignored[0][1] or ignored[0][0]}: {ignored[0][2]})" if ignored else "")
        )
    result = compare_records(records, exp_id, exp_name)
    result.ignored = ignored + result.ignored
    compared = set(result.compared_run_ids)
    note = mixed_environments_note({r.run_id: r.environment for r in records if r.run_id in compared})
    result.notes += [note] if note else []
    return result


def _log_block(tracker: Tracker, block: Block, index: int, many: bool) -> None:
    """A block's figures, and its per-level error and speed-up metrics (``step`` = level)."""
    suffix = f"_{index}" if many else ""
    for name, make in (("error_vs_labeled", error_figure), ("speedup", speedup_figure)):
        fig = make(block)
        tracker.log_figure(fig, compare_figure(name, suffix))
        plots.close(fig)
    prefix = [f"block{index}"] if many else []
    for row in block.rows:
        what = [row.selector] if row.role == "random" else [row.selector, row.method]
        for level, cell in row.cells.items():
            metrics = {}
            err, spd = cell.error, cell.speedup
            if err is not None:
                metrics[compare_metric(*prefix, "error", *what)] = err.mean
            if spd is not None and row.role == "proxy" and math.isfinite(spd.mean):
                metrics[compare_metric(*prefix, "speedup", *what)] = spd.mean
            if metrics:
                tracker.log_metrics(metrics, step=level)


def verdict_tags(result: Comparison) -> dict[str, str]:
    """``svpkit.verdicts`` (each compared row's label and verdict) and ``svpkit.worse_than_random`` (a count)."""
    rows = [(b, r) for b in result.blocks for r in b.rows if r.role != "random"]
    many = len(result.blocks) > 1
    text = "; ".join(f"{f'block {result.blocks.index(b)}: ' if many else ''}{r.label}: {r.verdict}" for b, r in rows)
    worse = sum(r.verdict == WORSE_THAN_RANDOM for _, r in rows)
    return {Tag.VERDICTS: text[:5000], Tag.WORSE_THAN_RANDOM: str(worse)}


def log_comparison(result: Comparison, run_name: str | None = None) -> tuple[str, str]:
    """Log tables, figures and per-level metrics to a new ``svpkit.loop=compare`` run; (experiment id, run id)."""
    markdown = to_markdown(result)
    tags = {
        Tag.LOOP: COMPARE,
        Tag.COMPARED_RUNS: str(len(result.compared_run_ids)),
        Tag.UNPAIRED_RUNS: str(len(result.missing_baseline)),
        **verdict_tags(result),
        # The run's description (rendered on its overview page in the MLflow UI).
        Tag.NOTE: markdown[:7900],
    }
    with tracking.tracked_run(result.experiment_name or None, run_name or "compare", tags) as tracker:
        tracker.log_params({"experiment": result.experiment_name, "blocks": len(result.blocks)})
        tracker.log_text(Artifact.COMPARE_TABLE_MD, markdown)
        tracker.log_text(Artifact.COMPARE_TABLE_CSV, to_csv(result))
        tracker.log_text(Artifact.COMPARE_PAIRS_CSV, pairs_csv(result))
        tracker.log_json(
            Artifact.COMPARE_SUMMARY,
            {
                "experiment": result.experiment_name,
                "compared_runs": result.compared_run_ids,
                "missing_baseline": [r.run_id for r in result.missing_baseline],
                "ignored": [{"run_id": i, "name": n, "why": w} for i, n, w in result.ignored],
                **comparison_numbers(result),
            },
        )
        for i, block in enumerate(result.blocks):
            _log_block(tracker, block, i, len(result.blocks) > 1)
    return tracker.experiment_id, tracker.run_id
