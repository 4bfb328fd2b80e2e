"""Figures that runs log (matplotlib, headless)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def error_curve(
    labeled: Sequence[int],
    series: dict[str, Sequence[float]],
    n_train: int,
    title: str,
) -> Figure:
    """Test error (%) against labeled fraction, one line per series."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    fractions = [100.0 * n / n_train for n in labeled]
    for name, errors in series.items():
        points = [(f, 100.0 * e) for f, e in zip(fractions, errors) if e == e]
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    return _finished(fig, ax, ("labeled examples (% of training set)", "top-1 test error (%)"), title)


def stacked_seconds(labeled: Sequence[int], parts: dict[str, Sequence[float]], title: str) -> Figure:
    """Per-round seconds stacked by phase (train / inference / selection)."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    bottom = [0.0] * len(labeled)
    xs = [str(n) for n in labeled]
    for name, values in parts.items():
        ax.bar(xs, values, bottom=bottom, label=name)
        bottom = [b + v for b, v in zip(bottom, values)]
    return _finished(fig, ax, ("labeled examples after the round", "seconds"), title, grid=False)


def criterion_curve(
    labeled: Sequence[int], series: dict[str, Sequence[float]], title: str, threshold: tuple[str, float] | None
) -> Figure:
    """Stopping criteria against the labeled count, one line per criterion; the ``--stop-when``
    threshold as a dashed line."""
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for name, values in series.items():
        points = [(n, v) for n, v in zip(labeled, values) if v == v]
        if points:
            ax.plot(*zip(*points), marker="o", label=name)
    if threshold is not None:
        ax.axhline(threshold[1], linestyle="--", color="grey", label=f"--stop-when {threshold[0]} {threshold[1]:g}")
    return _finished(fig, ax, ("labeled examples", "criterion"), title)


def _finished(fig: Figure, ax: Axes, labels: tuple[str, str], title: str, grid: bool = True) -> Figure:
    """The figure with its axis labels, title, legend (and a light grid), laid out."""
    ax.set_xlabel(labels[0])
    ax.set_ylabel(labels[1])
    ax.set_title(title)
    if grid:
        ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def close(fig: Figure) -> None:
    plt.close(fig)
