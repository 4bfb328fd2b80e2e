"""Pairing compared runs (the paper's Table 1): runs → blocks of rows of cells, proxy/baseline pairs.

A *proxy* run and a *baseline* run (role ``baseline``: the selector model is the target itself)
belong together when they share the data set, training-set size, selector, budget levels (active
learning) or subset size (core-set), seed and target model. The data-selection speed-up at a
budget level is the baseline's cumulative selection seconds at that step divided by the proxy's.
Runs of the ``random`` role are the reference row of their block. Proxy runs without a baseline
are kept with their errors and listed as unpaired, never dropped.

A cell's error is the mean over seeds with its 95 % t-interval (:mod:`~svpkit.analysis.stats`;
one seed: no interval); a row's speed-up is the mean of its per-seed ratios. Every row but the
random one gets paired differences per seed (seeds present on both sides) at each level and of
its normalised area under the error-vs-labeled curve: selector − random, and for proxy rows
proxy − baseline (the baseline row of the same selector); its verdict reads the latter two.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field

from svpkit.analysis.stats import (
    DEFAULT_TOLERANCE,
    Interval,
    PairedDifference,
    normalised_auc,
    paired_differences,
    t_interval,
    verdict,
)
from svpkit.contract import ACTIVE_LEARNING, CORE_SET

COMPARED_LOOPS = (ACTIVE_LEARNING.name, CORE_SET.name)


@dataclass
class ComparedRun:
    """What the comparison needs from one run (see the run contract in the README)."""

    run_id: str
    name: str
    loop: str
    role: str
    dataset: str
    selector: str
    selector_model: str
    target_model: str
    seed: str
    budgets: str  # active learning: canonical labeled counts; core-set: the subset size
    train_size: str
    proxy_epochs: str
    start_time: int
    errors: dict[int, float] = field(default_factory=dict)  # level -> target test error
    worst_class: dict[int, float] = field(default_factory=dict)  # level -> error on the worst class
    selection: dict[int, float] = field(default_factory=dict)  # level -> selection seconds so far
    end_to_end: dict[int, float] = field(default_factory=dict)  # core-set only
    environment: str = ""  # hardware, CPU capability, numerics, math libraries (analysis.environments)

    @property
    def pair_key(self) -> tuple[str, ...]:
        return (self.loop, self.dataset, self.train_size, self.selector, self.budgets, self.seed, self.target_model)

    @property
    def block_key(self) -> tuple[str, ...]:
        budgets = self.budgets if self.loop == ACTIVE_LEARNING.name else ""
        return (self.loop, self.dataset, self.train_size, self.target_model, budgets)

    @property
    def levels(self) -> list[int]:
        return sorted(set(self.errors) | set(self.selection))


@dataclass
class Pair:
    """One proxy run against its baseline at one level."""

    proxy_run_id: str
    baseline_run_id: str
    selector: str
    method: str
    seed: str
    level: int
    proxy_seconds: float
    baseline_seconds: float

    @property
    def speedup(self) -> float:
        return self.baseline_seconds / self.proxy_seconds if self.proxy_seconds > 0 else math.inf


def _interval(values: Iterable[float]) -> Interval | None:
    """The t-interval of ``values``; None for none, no interval when one is infinite (a 0 s proxy)."""
    found = list(values)
    if not found:
        return None
    if not all(math.isfinite(v) for v in found):
        return Interval(statistics.fmean(found), None, len(found))
    return t_interval(found)


@dataclass
class Cell:
    """One row at one level: values per seed, and the paired differences against other rows."""

    errors: dict[str, float] = field(default_factory=dict)  # seed -> target test error
    worst_class: dict[str, float] = field(default_factory=dict)  # seed -> error on the worst class
    speedups: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)
    vs_random: PairedDifference | None = None  # error − the random row's, per seed
    vs_baseline: PairedDifference | None = None  # proxy rows: error − the baseline row's, per seed

    @property
    def error(self) -> Interval | None:
        return _interval(self.errors.values())

    @property
    def worst_class_error(self) -> Interval | None:
        return _interval(self.worst_class.values())

    @property
    def speedup(self) -> Interval | None:
        return _interval(self.speedups)


@dataclass
class Row:
    selector: str
    method: str  # the selector model (with its epochs when one model runs at several)
    role: str
    run_ids: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)
    cells: dict[int, Cell] = field(default_factory=dict)
    auc: Interval | None = None  # normalised area under the error-vs-labeled curve, over seeds
    auc_vs_random: PairedDifference | None = None
    auc_vs_baseline: PairedDifference | None = None
    verdict: str = "reference"  # stats.verdict for every row but the random one

    @property
    def label(self) -> str:
        if self.role == "random":
            return "random"
        return f"{self.selector} · {self.method}" + (" (baseline)" if self.role == "baseline" else "")

    def cell(self, level: int) -> Cell:
        return self.cells.setdefault(level, Cell())

    @property
    def error_levels(self) -> list[int]:
        return sorted(level for level, cell in self.cells.items() if cell.errors)

    def auc_by_seed(self, levels: list[int]) -> dict[str, float]:
        """Per seed, the normalised AUC over ``levels`` (seeds missing one of them are left out)."""
        out = {}
        for seed in self.seeds:
            errors = [self.cells[lvl].errors.get(seed) if lvl in self.cells else None for lvl in levels]
            if levels and all(e is not None for e in errors):
                # The normalised area does not depend on the scale of x: counts over the largest one.
                out[seed] = normalised_auc(levels, [e for e in errors if e is not None], max(levels))
        return out


@dataclass
class Block:
    """Runs that share a data set, target and budget levels: one table."""

    loop: str
    dataset: str
    train_size: str
    target_model: str
    budgets: str
    levels: list[int]
    rows: list[Row]
    pairs: list[Pair]
    missing_baseline: list[ComparedRun]
    has_random: bool

    @property
    def title(self) -> str:
        kind = "active learning" if self.loop == ACTIVE_LEARNING.name else "core-set selection"
        return f"{kind}: {self.dataset} ({self.train_size} training examples), target {self.target_model}"

    def fraction(self, level: int, scale: int = 1) -> float | None:
        """``level`` as a fraction of the training set times ``scale`` (100: percent); None when
        the training-set size is not a number."""
        try:
            return scale * level / int(self.train_size)
        except (ValueError, ZeroDivisionError):
            return None

    def level_label(self, level: int) -> str:
        """``10%`` for a level of 10 % of the training set (the count is in :attr:`levels_note`)."""
        percent = self.fraction(level, 100)
        return str(level) if percent is None else f"{percent:.3g}%"

    @property
    def levels_note(self) -> str:
        noun = "labeled examples" if self.loop == ACTIVE_LEARNING.name else "examples kept"
        return f"{noun}: " + ", ".join(f"{self.level_label(lvl)} = {lvl:,}" for lvl in self.levels)


@dataclass
class Comparison:
    experiment_id: str
    experiment_name: str
    blocks: list[Block]
    ignored: list[tuple[str, str, str]]  # (run id, run name, why)
    notes: list[str] = field(default_factory=list)  # e.g. runs from different environments

    @property
    def pairs(self) -> list[Pair]:
        return [p for b in self.blocks for p in b.pairs]

    @property
    def missing_baseline(self) -> list[ComparedRun]:
        return [r for b in self.blocks for r in b.missing_baseline]

    @property
    def compared_run_ids(self) -> list[str]:
        return [rid for b in self.blocks for row in b.rows for rid in row.run_ids]


def compare_records(records: Iterable[ComparedRun], experiment_id: str = "", experiment_name: str = "") -> Comparison:
    """Group runs into blocks and rows, pair proxies with baselines, aggregate over seeds."""
    ignored: list[tuple[str, str, str]] = []
    newest: dict[tuple[str, ...], ComparedRun] = {}
    for rec in sorted(records, key=lambda r: r.start_time):
        ident = (*rec.pair_key, rec.role, rec.selector_model, rec.proxy_epochs)
        if ident in newest:
            old = newest[ident]
            ignored.append((old.run_id, old.name, f"superseded by the newer run {rec.run_id} with the same settings"))
        newest[ident] = rec
    blocks: dict[tuple[str, ...], list[ComparedRun]] = {}
    for rec in newest.values():
        blocks.setdefault(rec.block_key, []).append(rec)
    return Comparison(
        experiment_id=experiment_id,
        experiment_name=experiment_name,
        blocks=[_build_block(runs) for _, runs in sorted(blocks.items())],
        ignored=ignored,
    )


def _method_labels(runs: list[ComparedRun]) -> dict[str, str]:
    """Selector-model labels; a model trained at several epoch counts (with any options) gets its
    epochs appended: ``fasttext-5ep`` and ``fasttext[lr=0.5]-25ep``."""
    epochs: dict[str, set[str]] = {}

    def model(r: ComparedRun) -> str:
        return r.selector_model.partition("[")[0]

    for r in runs:
        epochs.setdefault(model(r), set()).add(r.proxy_epochs)
    labels = {}
    for r in runs:
        several = len(epochs[model(r)]) > 1 and r.proxy_epochs
        labels[r.run_id] = f"{r.selector_model}-{r.proxy_epochs}ep" if several else r.selector_model
    return labels


def _add_values(row: Row, rec: ComparedRun) -> None:
    row.run_ids.append(rec.run_id)
    row.seeds.append(rec.seed)
    for level, err in rec.errors.items():
        row.cell(level).errors[rec.seed] = err
    for level, worst in rec.worst_class.items():
        row.cell(level).worst_class[rec.seed] = worst
    for level, sec in rec.selection.items():
        row.cell(level).seconds.append(sec)
    for level, value in rec.end_to_end.items():
        row.cell(level).end_to_end.append(value)


def _pairs(rec: ComparedRun, base: ComparedRun, method: str) -> list[Pair]:
    """The proxy run ``rec`` against its baseline at every level both logged a selection time."""
    return [
        Pair(
            proxy_run_id=rec.run_id,
            baseline_run_id=base.run_id,
            selector=rec.selector,
            method=method,
            seed=rec.seed,
            level=level,
            proxy_seconds=rec.selection[level],
            baseline_seconds=base.selection[level],
        )
        for level in sorted(set(rec.selection) & set(base.selection))
    ]


def _build_block(runs: list[ComparedRun]) -> Block:
    first = runs[0]
    labels = _method_labels(runs)
    baselines = {r.pair_key: r for r in runs if r.role == "baseline"}
    rows: dict[tuple[str, str, str], Row] = {}
    pairs: list[Pair] = []
    missing: list[ComparedRun] = []
    for rec in sorted(runs, key=lambda r: (r.selector, labels[r.run_id], _seed_order(r.seed))):
        method = "—" if rec.role == "random" else labels[rec.run_id]
        row = rows.setdefault((rec.selector, method, rec.role), Row(rec.selector, method, rec.role))
        _add_values(row, rec)
        if rec.role == "proxy":
            base = baselines.get(rec.pair_key)
            if base is None:
                missing.append(rec)
                continue
            for pair in _pairs(rec, base, method):
                pairs.append(pair)
                row.cell(pair.level).speedups.append(pair.speedup)
        elif rec.role == "baseline":
            for level in rec.selection:
                row.cell(level).speedups.append(1.0)
    role_order = {"random": 0, "baseline": 1, "proxy": 2}
    ordered = sorted(rows.values(), key=lambda r: (r.role != "random", r.selector, role_order.get(r.role, 3), r.method))
    add_statistics(ordered)
    return Block(
        loop=first.loop,
        dataset=first.dataset,
        train_size=first.train_size,
        target_model=first.target_model,
        budgets=first.budgets if first.loop == ACTIVE_LEARNING.name else "",
        levels=sorted({level for rec in runs for level in rec.levels}),
        rows=ordered,
        pairs=pairs,
        missing_baseline=missing,
        has_random=any(r.role == "random" for r in runs),
    )


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.lstrip("-").isdigit() else (0, seed)


def _level_difference(row: Row, other: Row | None, level: int) -> PairedDifference | None:
    """``row`` − ``other`` at ``level``, per shared seed; None without the other row or its level."""
    if other is None or level not in other.cells or not other.cells[level].errors:
        return None
    return paired_differences(row.cells[level].errors, other.cells[level].errors)


def _auc_difference(row: Row, other: Row | None) -> PairedDifference | None:
    """``row`` − ``other`` of the normalised AUC over the levels both have, per shared seed."""
    if other is None:
        return None
    levels = sorted(set(row.error_levels) & set(other.error_levels))
    return paired_differences(row.auc_by_seed(levels), other.auc_by_seed(levels)) if levels else None


def add_statistics(rows: list[Row], tolerance: float = DEFAULT_TOLERANCE) -> None:
    """Each row's AUC; for every row but the random one its paired differences and its verdict."""
    reference = next((r for r in rows if r.role == "random"), None)
    for row in rows:
        aucs = row.auc_by_seed(row.error_levels)
        row.auc = t_interval(list(aucs.values())) if aucs else None
        if row.role == "random":
            continue
        baseline = None
        if row.role == "proxy":
            baseline = next((r for r in rows if r.role == "baseline" and r.selector == row.selector), None)
        for level, cell in row.cells.items():
            if cell.errors:
                cell.vs_random = _level_difference(row, reference, level)
                cell.vs_baseline = _level_difference(row, baseline, level)
        row.auc_vs_random = _auc_difference(row, reference)
        row.auc_vs_baseline = _auc_difference(row, baseline)
        row.verdict = verdict(
            row.auc_vs_random.interval if row.auc_vs_random else None,
            row.auc_vs_baseline.interval if row.auc_vs_baseline else None,
            tolerance,
        )
