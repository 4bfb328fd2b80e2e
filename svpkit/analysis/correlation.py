"""Rank correlation between the rankings that different runs produced (paper Figs 3, 8–13).

Every core-set run logs a score per training example (``ranking/scores.npy``, higher = kept
sooner) and its order (``ranking/order.npy``); every active-learning run logs the scores of the
round's pool (``rounds/<k>/scores.npy``, pool = training indices not labeled before round k, in
ascending order). :func:`correlate` restricts all of them to the examples they share and computes
Spearman and Pearson correlation matrices with :mod:`scipy.stats` and overlap@k — how many of the
top-k examples of two rankings coincide.

Infinite scores (never-learned examples under forgetting events, k-center seeds) keep their rank:
+∞ becomes one more than the largest finite score of that run (−∞ one less than the smallest)
before correlating, so Spearman is unchanged and Pearson stays defined.

Analysis-only module: it reads runs through :mod:`svpkit.tracking` only.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from scipy import stats

from svpkit import plots, tracking
from svpkit.analysis.environments import environment_label, mixed_environments_note
from svpkit.contract import (
    ACTIVE_LEARNING,
    CORE_SET,
    CORRELATE,
    Artifact,
    Metric,
    Tag,
    correlation_artifact,
    round_artifact,
    selector_model_label,
)
from svpkit.errors import ConfigError, DataError

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.table import Table

    from svpkit.protocols import Tracker

RANKING_LOOPS = (CORE_SET.name, ACTIVE_LEARNING.name)


@dataclass
class RankingSource:
    """One run's ranking. ``scores`` align with ``indices`` (training indices, ascending);
    ``order`` lists the same indices best first (by default: scores descending, stable)."""

    label: str
    indices: np.ndarray
    scores: np.ndarray
    order: np.ndarray | None = None
    run_id: str = ""
    experiment_id: str = ""
    dataset: str = ""
    digest: str = ""
    train_size: int = 0
    environment: str = ""  # hardware, CPU capability, numerics, math libraries (analysis.environments)

    def __post_init__(self) -> None:
        self.indices = np.asarray(self.indices, dtype=np.int64)
        self.scores = np.asarray(self.scores, dtype=np.float64)
        if self.indices.shape != self.scores.shape:
            raise DataError(f"{self.label}: {self.scores.size} scores for {self.indices.size} examples")
        if np.isnan(self.scores).any():
            raise DataError(f"{self.label}: scores contain NaN")
        if self.order is None:
            self.order = self.indices[np.argsort(-self.scores, kind="stable")]
        self.order = np.asarray(self.order, dtype=np.int64)

    def scores_at(self, indices: np.ndarray) -> np.ndarray:
        """Scores of ``indices`` (all covered by this source), infinities mapped to finite ends."""
        pos = np.searchsorted(self.indices, indices)
        return finite_scores(self.scores[pos])

    def top(self, shared: np.ndarray, k: int) -> np.ndarray:
        """The first ``k`` shared examples in this ranking's order."""
        assert self.order is not None
        return self.order[np.isin(self.order, shared)][:k]


@dataclass
class RankingSet:
    sources: list[RankingSource]
    shared: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if len(self.sources) < 2:
            raise ConfigError(f"rank correlation needs at least two rankings, got {len(self.sources)}")
        shared = self.sources[0].indices
        for s in self.sources[1:]:
            shared = np.intersect1d(shared, s.indices, assume_unique=True)
        if shared.size < 2:
            raise DataError(f"the rankings share {shared.size} examples; at least two are needed")
        self.shared = shared

    @property
    def num_shared(self) -> int:
        return int(self.shared.size)


class OverlapRow(TypedDict):  # how many of two rankings' top k examples are shared
    a: str
    b: str
    k: int
    overlap: int
    fraction: float


@dataclass
class CorrelationReport:
    labels: list[str]
    run_ids: list[str]
    spearman: np.ndarray
    pearson: np.ndarray
    overlap: list[OverlapRow]
    num_shared: int
    dataset: str = ""
    digest: str = ""
    round: int | None = None
    notes: list[str] = field(default_factory=list)  # e.g. rankings from different environments

    def tags(self) -> dict[str, str]:
        return {
            Tag.LOOP: CORRELATE,
            Tag.DATASET: self.dataset,
            Tag.RUNS: ",".join(self.run_ids)[:5000],
        }

    def params(self) -> dict[str, object]:
        return {
            "runs": ",".join(self.run_ids),
            "labels": "; ".join(self.labels),
            "num_shared": self.num_shared,
            "k": ",".join(sorted({str(r["k"]) for r in self.overlap}, key=int)),
            "round": "" if self.round is None else self.round,
            "dataset_digest": self.digest,
        }


def finite_scores(scores: np.ndarray) -> np.ndarray:
    """+∞ → max finite + 1 and −∞ → min finite − 1 (order-preserving; 0 ± 1 if none is finite)."""
    out = np.asarray(scores, dtype=np.float64).copy()
    finite = np.isfinite(out)
    if finite.all():
        return out
    hi = out[finite].max() if finite.any() else 0.0
    lo = out[finite].min() if finite.any() else 0.0
    out[np.isposinf(out)] = hi + 1.0
    out[np.isneginf(out)] = lo - 1.0
    return out


def parse_k(text: str, num_shared: int) -> list[int]:
    """``"100,0.5"`` → [100, half of the shared examples]; each k in 1..num_shared."""
    ks: list[int] = []
    for token in (t.strip() for t in text.replace(";", ",").split(",")):
        if not token:
            continue
        try:
            value = float(token)
        except ValueError:
            raise ConfigError(f"k {token!r} is not a number") from None
        if "." in token or "e" in token.lower():
            if not 0 < value <= 1:
                raise ConfigError(f"k {token} is outside (0, 1] (give a fraction, or a whole count)")
            count = max(1, int(round(value * num_shared)))
        else:
            count = int(value)
            if not 1 <= count <= num_shared:
                raise ConfigError(f"k {count} must be between 1 and the {num_shared} shared examples")
        ks.append(count)
    if not ks:
        raise ConfigError("no k given for overlap@k")
    return sorted(set(ks))


def correlate(rankings: RankingSet, ks: list[int], round_no: int | None = None) -> CorrelationReport:
    """Spearman and Pearson matrices (scipy.stats) on the shared examples, and overlap@k."""
    sources = rankings.sources
    shared = rankings.shared
    values = [s.scores_at(shared) for s in sources]
    m = len(sources)
    spearman = np.eye(m)
    pearson = np.eye(m)
    for i in range(m):
        for j in range(i + 1, m):
            spearman[i, j] = spearman[j, i] = float(stats.spearmanr(values[i], values[j]).statistic)
            pearson[i, j] = pearson[j, i] = float(stats.pearsonr(values[i], values[j]).statistic)
    overlap: list[OverlapRow] = []
    for k in ks:
        tops = [set(s.top(shared, k).tolist()) for s in sources]
        for i in range(m):
            for j in range(i + 1, m):
                common = len(tops[i] & tops[j])
                overlap.append(
                    {
                        "a": sources[i].label,
                        "b": sources[j].label,
                        "k": k,
                        "overlap": common,
                        "fraction": common / k,
                    }
                )
    return CorrelationReport(
        labels=[s.label for s in sources],
        run_ids=[s.run_id for s in sources],
        spearman=spearman,
        pearson=pearson,
        overlap=overlap,
        num_shared=rankings.num_shared,
        dataset=sources[0].dataset,
        digest=sources[0].digest,
        round=round_no,
        notes=[n for n in [mixed_environments_note({s.run_id: s.environment for s in sources}, "rankings")] if n],
    )


# -- reading runs ----------------------------------------------------------------------------
def load_rankings(run_ids: list[str], experiment: str | None, filter_string: str, round_no: int = 1) -> RankingSet:
    """The rankings of the named runs plus those an experiment search finds (validated)."""
    experiment = experiment or None
    records = [tracking.get_run_record(r) for r in dict.fromkeys(run_ids)]
    for r in records:
        loop = r.tags.get(Tag.LOOP)
        if loop not in RANKING_LOOPS:
            raise ConfigError(
                f"run {r.run_id} is a {loop or 'non-svpkit'!r} run; correlate reads core_set or active_learning runs"
            )
    if not run_ids or experiment or filter_string:
        exp_id = tracking.experiment_id_for(experiment)
        if exp_id is None:
            raise ConfigError(f"experiment {experiment!r} does not exist")
        seen = {r.run_id for r in records}
        for r in tracking.find_runs([exp_id], filter_string):
            if r.run_id not in seen and r.tags.get(Tag.LOOP) in RANKING_LOOPS:
                records.append(r)
                seen.add(r.run_id)
    if len(records) < 2:
        raise ConfigError(
            f"rank correlation needs at least two finished core_set/active_learning runs, found {len(records)}"
        )
    if round_no < 1:
        raise ConfigError(f"round {round_no} must be at least 1")
    _check_same_data(records)
    labels = _labels(records, round_no)
    return RankingSet([_load_source(r, label, round_no) for r, label in zip(records, labels)])


def _check_same_data(records: list[tracking.RunRecord]) -> None:
    keys = {(r.params.get("dataset_digest"), r.params.get("train_size")) for r in records}
    if len(keys) > 1:
        described = ", ".join(
            f"{r.run_id[:8]}: {r.tags.get(Tag.DATASET)} ({r.params.get('train_size')} training examples, "
            f"digest {r.params.get('dataset_digest')})"
            for r in records
        )
        raise DataError(f"the runs are over different data sets or sizes: {described}")


def _labels(records: list[tracking.RunRecord], round_no: int) -> list[str]:
    labels = []
    for r in records:
        t = r.tags
        model = selector_model_label(t, r.params, missing="?")
        label = f"{model} {t.get(Tag.SELECTOR, '?')} s{t.get(Tag.SEED, '?')}"
        if t.get(Tag.LOOP) == ACTIVE_LEARNING.name:
            label += f" AL r{round_no}"
        labels.append(label)
    for i, label in enumerate(labels):
        if labels.count(label) > 1:
            labels[i] = f"{label} {records[i].run_id[:6]}"
    return labels


def _load_source(record: tracking.RunRecord, label: str, round_no: int) -> RankingSource:
    n = int(record.params["train_size"])
    common = dict(
        label=label,
        run_id=record.run_id,
        experiment_id=record.experiment_id,
        dataset=record.tags.get(Tag.DATASET, ""),
        digest=record.params.get("dataset_digest", ""),
        train_size=n,
        environment=environment_label(record.tags),
    )
    if record.tags.get(Tag.LOOP) == CORE_SET.name:
        scores = tracking.load_run_array(record.run_id, Artifact.RANKING_SCORES)
        order = tracking.load_run_array(record.run_id, Artifact.RANKING_ORDER)
        if scores.shape != (n,) or order.shape != (n,):
            raise DataError(f"run {record.run_id}: ranking arrays do not cover its {n} training examples")
        return RankingSource(indices=np.arange(n), scores=scores, order=order, **common)  # type: ignore[arg-type]
    scores = tracking.load_run_array(record.run_id, round_artifact(round_no, "scores.npy"))
    labeled = tracking.load_run_array(record.run_id, round_artifact(round_no - 1, "labeled.npy"))
    mask = np.ones(n, dtype=bool)
    mask[np.asarray(labeled, dtype=np.int64)] = False
    pool = np.flatnonzero(mask)
    if pool.size != scores.size:
        raise DataError(f"run {record.run_id}: round {round_no} has {scores.size} scores for a pool of {pool.size}")
    return RankingSource(indices=pool, scores=scores, **common)  # type: ignore[arg-type]


# -- output ----------------------------------------------------------------------------------
def matrix_csv(labels: list[str], matrix: np.ndarray) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["", *labels])
    for label, row in zip(labels, matrix):
        writer.writerow([label, *(f"{v:.6f}" for v in row)])
    return buf.getvalue()


def overlap_csv(rows: list[OverlapRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["a", "b", "k", "overlap", "fraction"])
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def rich_tables(report: CorrelationReport) -> list[Table]:
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for name, matrix in (("Spearman", report.spearman), ("Pearson", report.pearson)):
        table = Table(title=f"{name} correlation on {report.num_shared} shared examples")
        table.add_column("")
        for label in report.labels:  # labels such as fasttext[dim=50] are text, not rich markup
            table.add_column(escape(label), justify="right", overflow="fold")
        for label, row in zip(report.labels, matrix):
            table.add_row(escape(label), *(f"{v:.3f}" for v in row))
        tables.append(table)
    table = Table(title="overlap@k: shared examples among both rankings' top k")
    for col in ("ranking a", "ranking b", "k", "overlap", "fraction"):
        table.add_column(col, justify="right" if col in ("k", "overlap", "fraction") else "left", overflow="fold")
    for row in report.overlap:
        table.add_row(escape(row["a"]), escape(row["b"]), str(row["k"]), str(row["overlap"]), f"{row['fraction']:.3f}")
    tables.append(table)
    return tables


def heatmap(report: CorrelationReport) -> Figure:
    m = len(report.labels)
    size = max(4.0, 1.0 + 0.9 * m)
    fig, axes = plots.plt.subplots(1, 2, figsize=(2 * size + 1, size), dpi=100)
    for ax, (name, matrix) in zip(axes, (("Spearman", report.spearman), ("Pearson", report.pearson))):
        image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(m), report.labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(m), report.labels, fontsize=8)
        for i in range(m):
            for j in range(m):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8)
        ax.set_title(f"{name} ({report.num_shared} examples)")
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


def log_report(tracker: Tracker, report: CorrelationReport) -> None:
    """Params, mean off-diagonal correlations, CSV/JSON matrices, overlap table and heatmap."""
    tracker.log_params(report.params())
    if report.notes:
        tracker.log_text(Artifact.CORRELATION_NOTES, "\n".join(report.notes) + "\n")
    m = len(report.labels)
    off = ~np.eye(m, dtype=bool)
    tracker.log_metrics(
        {
            Metric.MEAN_SPEARMAN: float(np.nanmean(report.spearman[off])),
            Metric.MEAN_PEARSON: float(np.nanmean(report.pearson[off])),
            Metric.NUM_SHARED: float(report.num_shared),
        },
        step=0,
    )
    for name, matrix in (("spearman", report.spearman), ("pearson", report.pearson)):
        tracker.log_text(correlation_artifact(name, "csv"), matrix_csv(report.labels, matrix))
        tracker.log_json(
            correlation_artifact(name, "json"),
            {
                "labels": report.labels,
                "run_ids": report.run_ids,
                "matrix": [[None if np.isnan(v) else float(v) for v in row] for row in matrix],
            },
        )
    tracker.log_text(Artifact.OVERLAP_CSV, overlap_csv(report.overlap))
    tracker.log_json(Artifact.OVERLAP_JSON, report.overlap)
    tracker.log_json(
        Artifact.SUMMARY,
        {"loop": CORRELATE, "labels": report.labels, "run_ids": report.run_ids, "num_shared": report.num_shared},
    )
    fig = heatmap(report)
    tracker.log_figure(fig, Artifact.CORRELATION_HEATMAP)
    plots.close(fig)
