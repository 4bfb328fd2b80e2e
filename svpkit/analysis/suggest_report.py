"""``svpkit suggest-proxy``, the report: per-seed rows → the table sorted by cost, the recommendation, the run.

A candidate's cost is its mean train + score seconds on the pilot; its projected selection
speed-up is the target's mean seconds over its own (the target selecting for itself). Agreement
cells are mean ± 95 % t-interval half-width over seeds (:func:`svpkit.analysis.stats.t_interval`).
The run (``svpkit.loop=suggest_proxy``) holds the table as CSV and Markdown (also the description),
``summary.json`` (what ``--json`` prints), per-candidate metrics and the agreement vs speed-up
scatter with the Pareto front (:func:`svpkit.analysis.suggest.pareto_front`).
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from svpkit import plots
from svpkit.analysis.stats import Interval, format_cell, t_interval
from svpkit.analysis.suggest import Candidate, CandidateResult, Recommendation, pareto_front, recommend
from svpkit.contract import SUGGEST_PROXY, Artifact, Tag, compare_metric
from svpkit.loops.suggest import SeedRow

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

    from svpkit.protocols import Tracker

COLUMNS = ("candidate", "seconds", "speed-up", "top-k overlap", "random", "Spearman", "test error")


@dataclass(frozen=True)
class Row:
    """One candidate over seeds."""

    result: CandidateResult
    seconds: float
    error: Interval
    random_overlap: float


@dataclass(frozen=True)
class SuggestReport:
    """The table (rows sorted by cost, cheapest first), the target's own numbers and the recommendation."""

    dataset: str
    selector: str
    target: str
    pilot: int
    k: int
    seeds: list[int]
    rows: list[Row]
    target_seconds: float
    target_error: Interval
    recommendation: Recommendation
    min_overlap: float
    min_spearman: float
    seed_rows: list[SeedRow]


def summarise(
    seed_rows: Sequence[SeedRow],
    candidates: Sequence[Candidate],
    meta: dict[str, Any],
    min_overlap: float,
    min_spearman: float,
) -> SuggestReport:
    """The report of :func:`svpkit.loops.suggest.run_suggest`'s rows; ``meta``: dataset, selector, target, pilot, k."""
    target_seconds = statistics.fmean({r.seed: r.target_seconds for r in seed_rows}.values())
    rows = []
    for candidate in candidates:
        mine = [r for r in seed_rows if r.candidate == candidate.text]
        seconds = statistics.fmean(r.seconds for r in mine)
        result = CandidateResult(
            candidate,
            t_interval([r.top_k_overlap for r in mine]),
            t_interval([r.spearman for r in mine]),
            target_seconds / seconds if seconds > 0 else float("inf"),
        )
        random = statistics.fmean(r.random_overlap for r in mine)
        rows.append(Row(result, seconds, t_interval([r.error for r in mine]), random))
    rows.sort(key=lambda r: r.seconds)
    return SuggestReport(
        **meta,
        seeds=sorted({r.seed for r in seed_rows}),
        rows=rows,
        target_seconds=target_seconds,
        target_error=t_interval(list({r.seed: r.target_error for r in seed_rows}.values())),
        recommendation=recommend([r.result for r in rows], min_overlap, min_spearman),
        min_overlap=min_overlap,
        min_spearman=min_spearman,
        seed_rows=list(seed_rows),
    )


def cells(report: SuggestReport) -> list[list[str]]:
    """The table's cells, one list per candidate (:data:`COLUMNS`), then the target's own line."""
    lines = [
        [
            r.result.candidate.text,
            f"{r.seconds:.2f}",
            f"{r.result.speedup:.1f}×",
            format_cell(r.result.overlap, scale=1.0, digits=3),
            f"{r.random_overlap:.3f}",
            format_cell(r.result.spearman, scale=1.0, digits=3),
            format_cell(r.error) + " %",
        ]
        for r in report.rows
    ]
    target = [f"{report.target} (target)", f"{report.target_seconds:.2f}", "1.0×", "—", "—", "—"]
    return [*lines, [*target, format_cell(report.target_error) + " %"]]


def headline(report: SuggestReport) -> str:
    return (
        f"suggest-proxy on {report.dataset}: {report.selector} for target {report.target}, pilot {report.pilot}, "
        f"k = {report.k}, seeds {', '.join(map(str, report.seeds))}; thresholds: top-k overlap ≥ "
        f"{report.min_overlap:g}, Spearman ≥ {report.min_spearman:g}"
    )


def markdown(report: SuggestReport) -> str:
    lines = [f"**{headline(report)}**", "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in cells(report)]
    return "\n".join([*lines, "", f"Recommendation: {report.recommendation.message}", ""])


def csv_text(report: SuggestReport) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(cells(report))
    return buffer.getvalue()


def rich_table(report: SuggestReport) -> Table:
    from rich.table import Table

    table = Table(title=headline(report), title_justify="left")
    for i, name in enumerate(COLUMNS):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in cells(report):
        table.add_row(*row)
    return table


def as_json(report: SuggestReport) -> dict[str, object]:
    """What ``--json`` prints and ``suggest/summary.json`` holds."""
    choice = report.recommendation.choice
    return {
        "loop": SUGGEST_PROXY,
        "dataset": report.dataset,
        "selector": report.selector,
        "target": report.target,
        "pilot": report.pilot,
        "k": report.k,
        "seeds": report.seeds,
        "min_overlap": report.min_overlap,
        "min_spearman": report.min_spearman,
        "target_seconds": report.target_seconds,
        "target_error": asdict(report.target_error),
        "candidates": [
            {
                "candidate": r.result.candidate.text,
                "seconds": r.seconds,
                "speedup": r.result.speedup,
                "top_k_overlap": asdict(r.result.overlap),
                "random_overlap": r.random_overlap,
                "spearman": asdict(r.result.spearman),
                "test_error": asdict(r.error),
            }
            for r in report.rows
        ],
        "recommendation": None if choice is None else choice.candidate.text,
        "message": report.recommendation.message,
        "per_seed": [asdict(r) for r in report.seed_rows],
    }


def figure(report: SuggestReport) -> Figure:
    """Top-k overlap against projected speed-up, the Pareto front joined, the threshold dashed."""
    points = [(r.result.overlap.mean, r.result.speedup) for r in report.rows]
    front = sorted(pareto_front(points), key=lambda i: points[i][1])
    fig, ax = plots.plt.subplots(figsize=(6, 4), dpi=100)
    ax.scatter([p[1] for p in points], [p[0] for p in points], color="tab:blue", label="candidates")
    for r, (overlap, speedup) in zip(report.rows, points):
        ax.annotate(r.result.candidate.text, (speedup, overlap), textcoords="offset points", xytext=(4, 4))
    ax.plot(
        [points[i][1] for i in front], [points[i][0] for i in front], "o-", color="tab:orange", label="Pareto front"
    )
    ax.axhline(report.min_overlap, linestyle="--", color="grey", label="--min-overlap")
    ax.axhline(statistics.fmean(r.random_overlap for r in report.rows), linestyle=":", color="red", label="random")
    ax.set_xlabel("projected selection speed-up over the target (×)")
    ax.set_ylabel("top-k overlap with the target")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title(f"{report.dataset}: proxies for {report.target} ({report.selector})")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def tags(report: SuggestReport) -> dict[str, str]:
    return {
        Tag.LOOP: SUGGEST_PROXY,
        Tag.DATASET: report.dataset,
        Tag.SELECTOR: report.selector,
        Tag.TARGET_MODEL: report.target,
    }


def log_report(tracker: Tracker, report: SuggestReport, params: dict[str, object]) -> None:
    """The table (CSV, Markdown, description), summary, per-candidate metrics and the figure."""
    tracker.log_params(params)
    table = markdown(report)
    tracker.set_tags({Tag.NOTE: table})
    tracker.log_text(Artifact.SUGGEST_TABLE_MD, table)
    tracker.log_text(Artifact.SUGGEST_TABLE_CSV, csv_text(report))
    tracker.log_json(Artifact.SUGGEST_SUMMARY, as_json(report))
    for r in report.rows:
        name = r.result.candidate.text
        metrics = {
            "top_k_overlap": r.result.overlap.mean,
            "spearman": r.result.spearman.mean,
            "seconds": r.seconds,
            "speedup": r.result.speedup,
            "test_error": r.error.mean,
        }
        tracker.log_metrics({compare_metric("suggest", name, key): v for key, v in metrics.items()}, step=0)
    fig = figure(report)
    tracker.log_figure(fig, Artifact.SUGGEST_FIGURE)
    plots.close(fig)


def dumps(report: SuggestReport) -> str:
    return json.dumps(as_json(report), indent=2)
