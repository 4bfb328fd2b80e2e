"""What a finished core-set run reports: its result, ``timings.json``, ``summary.json`` and the figure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from svpkit import plots
from svpkit.contract import CORE_SET, Artifact, Metric
from svpkit.data.base import Dataset
from svpkit.loops.reference import FullReference
from svpkit.loops.train import TrainOutcome
from svpkit.models.base import ModelSpec
from svpkit.protocols import Tracker
from svpkit.selectors.base import Ranking, SelectorSpec

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class CoreSetResult:
    ranking: Ranking
    subset: np.ndarray
    proxy_train_seconds: float
    ranking_seconds: float
    proxy_error: float | None
    target: TrainOutcome
    full: FullReference | None

    @property
    def selection_seconds(self) -> float:
        return self.proxy_train_seconds + self.ranking_seconds

    @property
    def end_to_end_seconds(self) -> float:
        return self.selection_seconds + self.target.train_seconds

    @property
    def speedup(self) -> float | None:
        if self.full is None or self.end_to_end_seconds <= 0:
            return None
        return self.full.train_seconds / self.end_to_end_seconds


def log_summary(
    tracker: Tracker,
    result: CoreSetResult,
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    target: ModelSpec,
) -> None:
    n, m = len(dataset.train), int(result.subset.size)
    timings: dict[str, object] = {
        "proxy_train_seconds": result.proxy_train_seconds,
        "ranking_seconds": result.ranking_seconds,
        "selection_seconds": result.selection_seconds,
        "target_train_seconds": result.target.train_seconds,
        "end_to_end_seconds": result.end_to_end_seconds,
    }
    if result.full is not None:
        tracker.log_metrics(
            {Metric.FULL_TRAIN_SECONDS: result.full.train_seconds, Metric.FULL_ERROR: result.full.test_error}, step=n
        )
        timings["full_train_seconds"] = result.full.train_seconds
        timings["full_source"] = result.full.source
        if result.speedup is not None:
            tracker.log_metrics({Metric.END_TO_END_SPEEDUP: result.speedup}, step=m)
            timings["end_to_end_speedup"] = result.speedup
    tracker.log_json(Artifact.TIMINGS, timings)
    tracker.log_json(
        Artifact.SUMMARY,
        {
            "loop": CORE_SET.name,
            "dataset": dataset.describe(),
            "selector": selector.name,
            "selector_model": proxy.name if selector.needs else None,
            "target_model": target.name,
            "subset_size": m,
            "keep_fraction": m / n,
            "seed_points": int(result.ranking.seeds.size),
            "proxy_error": result.proxy_error,
            "target_error": result.target.test_error,
            "full_error": result.full.test_error if result.full else None,
            "full_source": result.full.source if result.full else None,
            "end_to_end_speedup": result.speedup,
            **{k: v for k, v in timings.items() if k.endswith("seconds")},
        },
    )
    fig = ranking_figure(result, selector.name, proxy.name, target.name, dataset.name)
    tracker.log_figure(fig, Artifact.CORE_SET_FIGURE)
    plots.close(fig)


def ranking_figure(result: CoreSetResult, selector: str, proxy: str, target: str, dataset: str) -> Figure:
    """Left: score distribution of kept vs dropped examples. Right: test error and seconds."""
    fig, (ax_s, ax_e) = plots.plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    scores = result.ranking.scores
    kept = np.zeros(scores.size, dtype=bool)
    kept[result.subset] = True
    finite = np.isfinite(scores)
    bins = np.histogram_bin_edges(scores[finite], bins=30) if finite.any() else 10
    ax_s.hist([scores[finite & kept], scores[finite & ~kept]], bins=bins, stacked=True, label=["kept", "dropped"])
    infinite = int((~finite & kept).sum())
    ax_s.set_title(f"{selector} scores from {proxy}" + (f" (+{infinite} at +inf, kept)" if infinite else ""))
    ax_s.set_xlabel("score (higher = kept sooner)")
    ax_s.set_ylabel("training examples")
    ax_s.legend()
    labels = [f"target on {result.subset.size}"]
    errors = [100 * result.target.test_error]
    seconds = [result.end_to_end_seconds]
    if result.full is not None:
        labels.append(f"target on all {scores.size}")
        errors.append(100 * result.full.test_error)
        seconds.append(result.full.train_seconds)
    bars = ax_e.bar(labels, errors, color=["tab:blue", "tab:gray"][: len(labels)])
    for bar, s in zip(bars, seconds):
        ax_e.annotate(f"{s:.1f} s", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    ax_e.set_ylabel("top-1 test error (%)  [labels: end-to-end seconds]")
    ax_e.set_title(f"{dataset}: {target}" + (f", speed-up {result.speedup:.2f}x" if result.speedup else ""))
    fig.tight_layout()
    return fig
