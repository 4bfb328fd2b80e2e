"""A comparison's figures: target error against labeled fraction, and selection speed-ups.

Bands and error bars are 95 % t-intervals over seeds (none where a level has one seed)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from svpkit.analysis.pairing import Block, Cell
from svpkit.analysis.stats import Interval
from svpkit.contract import ACTIVE_LEARNING
from svpkit.plots import plt

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _percent(block: Block, level: int) -> float:
    percent = block.fraction(level, 100)
    return float(level) if percent is None else percent


def _half_width(interval: Interval) -> float:
    return 0.0 if interval.half_width is None or not math.isfinite(interval.half_width) else interval.half_width


def error_figure(block: Block) -> Figure:
    """Target error against labeled fraction per method, with 95 % interval bands; random dashed."""
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for row in block.rows:
        pts = [(lvl, e) for lvl in block.levels if lvl in row.cells and (e := row.cells[lvl].error) is not None]
        if not pts:
            continue
        xs = [_percent(block, lvl) for lvl, _ in pts]
        means = [100 * e.mean for _, e in pts]
        widths = [100 * _half_width(e) for _, e in pts]
        style = {"linestyle": "--", "color": "black"} if row.role == "random" else {"marker": "o"}
        (line,) = ax.plot(xs, means, label=row.label, **style)  # type: ignore[arg-type]
        lows, highs = [m - w for m, w in zip(means, widths)], [m + w for m, w in zip(means, widths)]
        ax.fill_between(xs, lows, highs, alpha=0.15, color=line.get_color())
    ax.set_xlabel(
        "labeled examples (% of training set)" if block.loop == ACTIVE_LEARNING.name else "subset (% of training set)"
    )
    ax.set_ylabel("target top-1 test error (%), 95 % t-interval band")
    ax.set_title(f"{block.dataset}: target {block.target_model}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def speedup_figure(block: Block) -> Figure:
    """Data-selection speed-up per level, one bar per proxy method (mean over seeds, 95 % interval)."""
    rows = [r for r in block.rows if r.role == "proxy" and any(c.speedups for c in r.cells.values())]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs, ys, errs = [], [], []
        for j, lvl in enumerate(block.levels):
            spd = row.cells.get(lvl, Cell()).speedup
            if spd is not None and math.isfinite(spd.mean):
                xs.append(j + (i - (len(rows) - 1) / 2) * width)
                ys.append(spd.mean)
                errs.append(_half_width(spd))
        ax.bar(xs, ys, width=width, yerr=errs, label=row.label, capsize=2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(block.levels)), [block.level_label(lvl) for lvl in block.levels], fontsize=8)
    ax.set_ylabel("data-selection speed-up over the baseline (×)")
    ax.set_title(f"{block.dataset}: selection speed-up, target {block.target_model}", fontsize=10)
    if rows:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
