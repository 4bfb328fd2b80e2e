"""Cross-run comparison (the paper's Table 1): pair proxy runs with their baseline, compute speed-ups.

An analysis-only module: it reads finished runs with :func:`mlflow.search_runs` and logs the
comparison through :mod:`svpkit.tracking`. The loops never see it.

Pairing (DESIGN.md): a *proxy* run and a *baseline* run (role ``baseline``: the selector model is
the target itself) belong together when they share the data set, training-set size, selector,
budget levels (active learning) or subset size (core-set), seed and target model. The data-selection
speed-up at a budget level is the baseline's cumulative selection seconds at that step divided by
the proxy's (``selection/cumulative_seconds``; core-set: ``selection/total_seconds``). Runs of the
``random`` role are the reference row of their block. Proxy runs without a baseline are shown with
their errors and listed as unpaired, never dropped. Runs tagged ``svpkit.loop=compare`` (and anything
that is neither an active-learning nor a core-set run) are not compared.

Means and standard deviations are over seeds (sample standard deviation, 0 for one seed); a
row's speed-up is the mean of its per-seed ratios.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from svpkit import plots  # selects matplotlib's headless backend before pyplot is imported
from svpkit.errors import SvpkitError
from svpkit.loops.tracker import run_setting, selector_model_label
from svpkit.models.options import model_label

AL_LOOP = "active_learning"
CORE_SET_LOOP = "core_set"
COMPARE_LOOP = "compare"
COMPARED_LOOPS = (AL_LOOP, CORE_SET_LOOP)

_AL_ERROR = "target/test_error"
_AL_SELECTION = "selection/cumulative_seconds"
_CS_SELECTION = "selection/total_seconds"
_CS_END_TO_END = "core_set/end_to_end_speedup"


class CompareError(SvpkitError):
    """Nothing to compare, or the experiment does not exist."""


@dataclass
class RunRecord:
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
    selection: dict[int, float] = field(default_factory=dict)  # level -> selection seconds so far
    end_to_end: dict[int, float] = field(default_factory=dict)  # core-set only

    @property
    def pair_key(self) -> tuple[str, ...]:
        return (self.loop, self.dataset, self.train_size, self.selector, self.budgets, self.seed, self.target_model)

    @property
    def block_key(self) -> tuple[str, ...]:
        budgets = self.budgets if self.loop == AL_LOOP else ""
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


@dataclass
class Cell:
    errors: list[float] = field(default_factory=list)
    speedups: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    end_to_end: list[float] = field(default_factory=list)

    @staticmethod
    def _mean_std(values: Sequence[float]) -> tuple[float, float] | None:
        if not values:
            return None
        return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0

    @property
    def error(self) -> tuple[float, float] | None:
        return self._mean_std(self.errors)

    @property
    def speedup(self) -> tuple[float, float] | None:
        return self._mean_std(self.speedups)


@dataclass
class Row:
    selector: str
    method: str  # the selector model (with its epochs when one model runs at several)
    role: str
    run_ids: list[str] = field(default_factory=list)
    seeds: list[str] = field(default_factory=list)
    cells: dict[int, Cell] = field(default_factory=dict)

    @property
    def label(self) -> str:
        if self.role == "random":
            return "random"
        return f"{self.selector} · {self.method}" + (" (baseline)" if self.role == "baseline" else "")

    def cell(self, level: int) -> Cell:
        return self.cells.setdefault(level, Cell())


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
    missing_baseline: list[RunRecord]
    has_random: bool

    @property
    def title(self) -> str:
        kind = "active learning" if self.loop == AL_LOOP else "core-set selection"
        return f"{kind}: {self.dataset} ({self.train_size} training examples), target {self.target_model}"

    def level_label(self, level: int) -> str:
        """``10%`` for a level of 10 % of the training set (the count is in :attr:`levels_note`)."""
        try:
            return f"{100 * level / int(self.train_size):.3g}%"
        except (ValueError, ZeroDivisionError):
            return str(level)

    @property
    def levels_note(self) -> str:
        noun = "labeled examples" if self.loop == AL_LOOP else "examples kept"
        return f"{noun}: " + ", ".join(f"{self.level_label(lvl)} = {lvl:,}" for lvl in self.levels)


@dataclass
class Comparison:
    experiment_id: str
    experiment_name: str
    blocks: list[Block]
    ignored: list[tuple[str, str, str]]  # (run id, run name, why)

    @property
    def pairs(self) -> list[Pair]:
        return [p for b in self.blocks for p in b.pairs]

    @property
    def missing_baseline(self) -> list[RunRecord]:
        return [r for b in self.blocks for r in b.missing_baseline]

    @property
    def compared_run_ids(self) -> list[str]:
        return [rid for b in self.blocks for row in b.rows for rid in row.run_ids]


# -- reading runs -----------------------------------------------------------------------------
def resolve_experiment(experiment: str | None) -> tuple[str, str]:
    """(id, name) of the experiment to compare: by name or id; else the one ``mlflow run`` set."""
    c = MlflowClient()
    try:
        if experiment is None:
            env_id = os.environ.get("MLFLOW_EXPERIMENT_ID")
            if env_id:
                env_exp = c.get_experiment(env_id)
                return env_exp.experiment_id, env_exp.name
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "svpkit"
        exp = c.get_experiment_by_name(experiment)
        if exp is None and experiment.isdigit():
            exp = c.get_experiment(experiment)
    except SvpkitError:
        raise
    except Exception as exc:
        raise CompareError(f"cannot read experiment {experiment!r} from {mlflow.get_tracking_uri()!r}: {exc}") from exc
    if exp is None:
        raise CompareError(f"no experiment named {experiment!r} in {mlflow.get_tracking_uri()!r}")
    return exp.experiment_id, exp.name


def load_runs(experiment_id: str) -> tuple[list[RunRecord], list[tuple[str, str, str]]]:
    """The experiment's finished active-learning and core-set runs, and the runs left out (with why)."""
    frame = mlflow.search_runs(experiment_ids=[experiment_id], max_results=50000, output_format="pandas")
    records: list[RunRecord] = []
    ignored: list[tuple[str, str, str]] = []
    client = MlflowClient()
    for row in frame.to_dict("records"):  # type: ignore[union-attr]
        tags = {k[5:]: v for k, v in row.items() if k.startswith("tags.") and isinstance(v, str)}
        params = {k[7:]: v for k, v in row.items() if k.startswith("params.") and isinstance(v, str)}
        metrics = {k[8:]: v for k, v in row.items() if k.startswith("metrics.") and _is_number(v)}
        run_id, name = str(row["run_id"]), tags.get("mlflow.runName", "")
        loop = tags.get("svpkit.loop")
        if loop not in COMPARED_LOOPS:
            continue  # compare runs, preset drivers, plain training runs: not part of the comparison
        if row["status"] != "FINISHED":
            ignored.append((run_id, name, f"status {row['status']}"))
            continue
        missing = [t for t in ("svpkit.role", "svpkit.selector", "svpkit.target_model", "svpkit.seed") if t not in tags]
        if missing:
            ignored.append((run_id, name, f"missing tags {', '.join(missing)}"))
            continue
        rec = RunRecord(
            run_id=run_id,
            name=name,
            loop=str(loop),
            role=tags["svpkit.role"],
            dataset=tags.get("svpkit.dataset", params.get("dataset", "?")),
            selector=tags["svpkit.selector"],
            # A model run with options is another model here (svpkit.models.options.model_label).
            selector_model=selector_model_label(tags, params),
            target_model=model_label(tags["svpkit.target_model"], run_setting(tags, params, "target_options")),
            seed=tags["svpkit.seed"],
            budgets=tags.get("svpkit.budgets" if loop == AL_LOOP else "svpkit.subset_size", ""),
            train_size=params.get("train_size", "?"),
            proxy_epochs=run_setting(tags, params, "proxy_epochs"),
            start_time=int(row["start_time"].timestamp() * 1000) if row.get("start_time") is not None else 0,
        )
        if loop == AL_LOOP:
            rec.errors = _history(client, run_id, _AL_ERROR)
            rec.selection = _history(client, run_id, _AL_SELECTION)
        else:
            try:
                level = int(float(rec.budgets))
            except ValueError:
                ignored.append((run_id, name, f"subset size {rec.budgets!r} is not a number"))
                continue
            if _AL_ERROR in metrics:
                rec.errors = {level: float(metrics[_AL_ERROR])}
            if _CS_SELECTION in metrics:
                rec.selection = {level: float(metrics[_CS_SELECTION])}
            if _CS_END_TO_END in metrics:
                rec.end_to_end = {level: float(metrics[_CS_END_TO_END])}
        if not rec.levels:
            ignored.append((run_id, name, "no target error or selection time logged"))
            continue
        records.append(rec)
    return records, ignored


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))


def _history(client: MlflowClient, run_id: str, key: str) -> dict[int, float]:
    return {int(m.step): float(m.value) for m in client.get_metric_history(run_id, key)}


# -- pairing ----------------------------------------------------------------------------------
def compare_records(records: Iterable[RunRecord], experiment_id: str = "", experiment_name: str = "") -> Comparison:
    """Group runs into blocks and rows, pair proxies with baselines, aggregate over seeds."""
    ignored: list[tuple[str, str, str]] = []
    newest: dict[tuple[str, ...], RunRecord] = {}
    for rec in sorted(records, key=lambda r: r.start_time):
        ident = (*rec.pair_key, rec.role, rec.selector_model, rec.proxy_epochs)
        if ident in newest:
            old = newest[ident]
            ignored.append((old.run_id, old.name, f"superseded by the newer run {rec.run_id} with the same settings"))
        newest[ident] = rec
    blocks: dict[tuple[str, ...], list[RunRecord]] = {}
    for rec in newest.values():
        blocks.setdefault(rec.block_key, []).append(rec)
    return Comparison(
        experiment_id=experiment_id,
        experiment_name=experiment_name,
        blocks=[_build_block(runs) for _, runs in sorted(blocks.items())],
        ignored=ignored,
    )


def _method_labels(runs: list[RunRecord]) -> dict[str, str]:
    """Selector-model labels; a model trained at several epoch counts (with any options) gets its
    epochs appended: ``fasttext-5ep`` and ``fasttext[lr=0.5]-25ep``."""
    epochs: dict[str, set[str]] = {}

    def model(r: RunRecord) -> str:
        return r.selector_model.partition("[")[0]

    for r in runs:
        epochs.setdefault(model(r), set()).add(r.proxy_epochs)
    labels = {}
    for r in runs:
        several = len(epochs[model(r)]) > 1 and r.proxy_epochs
        labels[r.run_id] = f"{r.selector_model}-{r.proxy_epochs}ep" if several else r.selector_model
    return labels


def _build_block(runs: list[RunRecord]) -> Block:
    first = runs[0]
    labels = _method_labels(runs)
    baselines = {r.pair_key: r for r in runs if r.role == "baseline"}
    rows: dict[tuple[str, str, str], Row] = {}
    pairs: list[Pair] = []
    missing: list[RunRecord] = []
    levels: set[int] = set()
    for rec in sorted(runs, key=lambda r: (r.selector, labels[r.run_id], _seed_order(r.seed))):
        method = "—" if rec.role == "random" else labels[rec.run_id]
        row = rows.setdefault((rec.selector, method, rec.role), Row(rec.selector, method, rec.role))
        row.run_ids.append(rec.run_id)
        row.seeds.append(rec.seed)
        levels.update(rec.levels)
        for level, err in rec.errors.items():
            row.cell(level).errors.append(err)
        for level, sec in rec.selection.items():
            row.cell(level).seconds.append(sec)
        for level, value in rec.end_to_end.items():
            row.cell(level).end_to_end.append(value)
        if rec.role == "proxy":
            base = baselines.get(rec.pair_key)
            if base is None:
                missing.append(rec)
                continue
            for level in sorted(set(rec.selection) & set(base.selection)):
                pair = Pair(
                    proxy_run_id=rec.run_id,
                    baseline_run_id=base.run_id,
                    selector=rec.selector,
                    method=method,
                    seed=rec.seed,
                    level=level,
                    proxy_seconds=rec.selection[level],
                    baseline_seconds=base.selection[level],
                )
                pairs.append(pair)
                row.cell(level).speedups.append(pair.speedup)
        elif rec.role == "baseline":
            for level in rec.selection:
                row.cell(level).speedups.append(1.0)
    role_order = {"random": 0, "baseline": 1, "proxy": 2}
    ordered = sorted(rows.values(), key=lambda r: (r.role != "random", r.selector, role_order.get(r.role, 3), r.method))
    return Block(
        loop=first.loop,
        dataset=first.dataset,
        train_size=first.train_size,
        target_model=first.target_model,
        budgets=first.budgets if first.loop == AL_LOOP else "",
        levels=sorted(levels),
        rows=ordered,
        pairs=pairs,
        missing_baseline=missing,
        has_random=any(r.role == "random" for r in runs),
    )


def _seed_order(seed: str) -> tuple[int, str]:
    return (int(seed), "") if seed.lstrip("-").isdigit() else (0, seed)


def compare_experiment(experiment: str | None = None) -> Comparison:
    """Read and compare the runs of one experiment."""
    exp_id, exp_name = resolve_experiment(experiment)
    records, ignored = load_runs(exp_id)
    if not records:
        raise CompareError(
            f"experiment {exp_name!r} has no finished active-learning or core-set runs to compare"
            + (f" ({len(ignored)} left out, e.g. {ignored[0][1] or ignored[0][0]}: {ignored[0][2]})" if ignored else "")
        )
    result = compare_records(records, exp_id, exp_name)
    result.ignored = ignored + result.ignored
    return result


# -- rendering --------------------------------------------------------------------------------
def _pct(value: tuple[float, float] | None) -> str:
    if value is None:
        return "—"
    mean, std = value
    return f"{100 * mean:.1f} ± {100 * std:.1f}"


def _times(value: tuple[float, float] | None) -> str:
    if value is None:
        return "—"
    return "∞" if math.isinf(value[0]) else f"{value[0]:.1f}×"


def _speedup_text(block: Block, row: Row, level: int) -> str:
    if row.role == "random":
        return ""
    if row.role == "proxy" and any(r.run_id in row.run_ids for r in block.missing_baseline):
        if not row.cell(level).speedups:
            return "no baseline"
    return _times(row.cell(level).speedup)


def block_table_rows(block: Block) -> tuple[list[str], list[list[str]]]:
    """Header and rows in the paper's Table 1 layout: error and speed-up per budget level."""
    header = ["selector", "selector model", "seeds"]
    for level in block.levels:
        header += [f"error {block.level_label(level)}", f"speed-up {block.level_label(level)}"]
    if block.loop == CORE_SET_LOOP:
        header += ["end-to-end speed-up"]
    body = []
    for row in block.rows:
        line = [row.selector, row.method + (" (baseline)" if row.role == "baseline" else ""), str(len(row.seeds))]
        for level in block.levels:
            line += [_pct(row.cell(level).error), _speedup_text(block, row, level)]
        if block.loop == CORE_SET_LOOP:
            e2e = [v for c in row.cells.values() for v in c.end_to_end]
            line += [f"{statistics.fmean(e2e):.1f}×" if e2e else "—"]
        body.append(line)
    return header, body


def to_markdown(result: Comparison) -> str:
    out = [f"# svpkit comparison of experiment `{result.experiment_name}`", ""]
    out.append(
        "Target test error (%, mean ± std over seeds) and data-selection speed-up "
        "(baseline's selection seconds / proxy's, mean over seeds) per labeled-set size."
    )
    for block in result.blocks:
        header, body = block_table_rows(block)
        out += ["", f"## {block.title}", "", f"{block.levels_note}.", ""]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(" --- " for _ in header) + "|")
        out += ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]
        if not block.has_random:
            out += ["", "No random-selection runs in this block (no reference row)."]
    missing = result.missing_baseline
    if missing:
        out += ["", "## Proxy runs without a baseline", ""]
        out += [f"- `{r.run_id}` {r.name}: {r.selector} via {r.selector_model}, seed {r.seed}" for r in missing]
    if result.ignored:
        out += ["", "## Runs left out", ""]
        out += [f"- `{rid}` {name}: {why}" for rid, name, why in result.ignored]
    return "\n".join(out) + "\n"


def to_csv(result: Comparison) -> str:
    """Long form: one line per block, row and level."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        [
            "loop",
            "dataset",
            "train_size",
            "target_model",
            "budgets",
            "selector",
            "selector_model",
            "role",
            "level",
            "labeled_fraction",
            "seeds",
            "error_mean",
            "error_std",
            "speedup_mean",
            "speedup_std",
            "selection_seconds_mean",
            "end_to_end_speedup_mean",
        ]
    )
    for b in result.blocks:
        for row in b.rows:
            for level in b.levels:
                cell = row.cells.get(level, Cell())
                err, spd = cell.error, cell.speedup
                try:
                    frac = f"{level / int(b.train_size):.6g}"
                except (ValueError, ZeroDivisionError):
                    frac = ""
                w.writerow(
                    [
                        b.loop,
                        b.dataset,
                        b.train_size,
                        b.target_model,
                        b.budgets,
                        row.selector,
                        row.method,
                        row.role,
                        level,
                        frac,
                        len(cell.errors) or len(cell.seconds),
                        "" if err is None else f"{err[0]:.6g}",
                        "" if err is None else f"{err[1]:.6g}",
                        "" if spd is None else f"{spd[0]:.6g}",
                        "" if spd is None else f"{spd[1]:.6g}",
                        f"{statistics.fmean(cell.seconds):.6g}" if cell.seconds else "",
                        f"{statistics.fmean(cell.end_to_end):.6g}" if cell.end_to_end else "",
                    ]
                )
    return buf.getvalue()


def pairs_csv(result: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(
        ["proxy_run_id", "baseline_run_id", "selector", "selector_model", "seed", "level", "proxy_seconds"]
        + ["baseline_seconds", "speedup"]
    )
    for p in result.pairs:
        w.writerow(
            [p.proxy_run_id, p.baseline_run_id, p.selector, p.method, p.seed, p.level, f"{p.proxy_seconds:.6g}"]
            + [f"{p.baseline_seconds:.6g}", f"{p.speedup:.6g}"]
        )
    return buf.getvalue()


def rich_tables(result: Comparison) -> list[Any]:
    from rich.markup import escape
    from rich.table import Table

    tables = []
    for block in result.blocks:
        header, body = block_table_rows(block)
        # Labels such as vdcnn9[max_length=256] are text, not rich markup.
        table = Table(
            title=escape(block.title),
            caption=escape(f"error: target test error %, mean ± std over seeds; {block.levels_note}"),
        )
        for i, col in enumerate(header):
            table.add_column(escape(col), justify="left" if i < 2 else "right", overflow="fold")
        for line in body:
            table.add_row(*map(escape, line))
        tables.append(table)
    return tables


# -- figures ----------------------------------------------------------------------------------
def error_figure(block: Block) -> Any:
    """Target error against labeled fraction per method; random as the dashed reference."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    for row in block.rows:
        pts = [(lvl, row.cells[lvl].error) for lvl in block.levels if lvl in row.cells and row.cells[lvl].error]
        if not pts:
            continue
        xs = [_fraction(block, lvl) for lvl, _ in pts]
        means = [100 * e[0] for _, e in pts if e]
        stds = [100 * e[1] for _, e in pts if e]
        style = {"linestyle": "--", "color": "black"} if row.role == "random" else {"marker": "o"}
        ax.plot(xs, means, label=row.label, **style)  # type: ignore[arg-type]
        ax.fill_between(xs, [m - s for m, s in zip(means, stds)], [m + s for m, s in zip(means, stds)], alpha=0.15)
    ax.set_xlabel("labeled examples (% of training set)" if block.loop == AL_LOOP else "subset (% of training set)")
    ax.set_ylabel("target top-1 test error (%)")
    ax.set_title(f"{block.dataset}: target {block.target_model}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def speedup_figure(block: Block) -> Any:
    """Data-selection speed-up per level, one bar per proxy method (mean over seeds)."""
    import matplotlib.pyplot as plt

    rows = [r for r in block.rows if r.role == "proxy" and any(c.speedups for c in r.cells.values())]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=100)
    width = 0.8 / max(1, len(rows))
    for i, row in enumerate(rows):
        xs, ys, errs = [], [], []
        for j, lvl in enumerate(block.levels):
            spd = row.cells.get(lvl, Cell()).speedup
            if spd is not None and math.isfinite(spd[0]):
                xs.append(j + (i - (len(rows) - 1) / 2) * width)
                ys.append(spd[0])
                errs.append(spd[1])
        ax.bar(xs, ys, width=width, yerr=errs, label=row.label, capsize=2)
    ax.axhline(1.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xticks(range(len(block.levels)), [block.level_label(lvl) for lvl in block.levels], fontsize=8)
    ax.set_ylabel("data-selection speed-up over the baseline (×)")
    ax.set_title(f"{block.dataset}: selection speed-up, target {block.target_model}", fontsize=10)
    if rows:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _fraction(block: Block, level: int) -> float:
    try:
        return 100.0 * level / int(block.train_size)
    except (ValueError, ZeroDivisionError):
        return float(level)


# -- logging ----------------------------------------------------------------------------------
def _metric_key(*parts: str) -> str:
    return "/".join(re.sub(r"[^A-Za-z0-9_.\- ]", "_", p) for p in parts)


def log_comparison(result: Comparison, run_name: str | None = None) -> tuple[str, str]:
    """Log tables, figures and per-level metrics to a new ``svpkit.loop=compare`` run; (experiment id, run id)."""
    from svpkit import tracking

    tags = {
        COMPARE_LOOP_TAG: COMPARE_LOOP,
        "svpkit.compared_runs": str(len(result.compared_run_ids)),
        "svpkit.unpaired_runs": str(len(result.missing_baseline)),
    }
    markdown = to_markdown(result)
    # The run's description (rendered on its overview page in the MLflow UI).
    tags["mlflow.note.content"] = markdown[:7900]
    with tracking.tracked_run(result.experiment_name or None, run_name or "compare", tags) as tracker:
        tracker.log_params({"experiment": result.experiment_name, "blocks": len(result.blocks)})
        tracker.log_text("comparison/table.md", markdown)
        tracker.log_text("comparison/table.csv", to_csv(result))
        tracker.log_text("comparison/pairs.csv", pairs_csv(result))
        tracker.log_json(
            "comparison/summary.json",
            {
                "experiment": result.experiment_name,
                "compared_runs": result.compared_run_ids,
                "missing_baseline": [r.run_id for r in result.missing_baseline],
                "ignored": [{"run_id": i, "name": n, "why": w} for i, n, w in result.ignored],
            },
        )
        many = len(result.blocks) > 1
        for i, block in enumerate(result.blocks):
            suffix = f"_{i}" if many else ""
            for name, make in (("error_vs_labeled", error_figure), ("speedup", speedup_figure)):
                fig = make(block)
                tracker.log_figure(fig, f"figures/compare_{name}{suffix}.png")
                plots.close(fig)
            for row in block.rows:
                for level, cell in row.cells.items():
                    metrics = {}
                    prefix = [f"block{i}"] if many else []
                    what = [row.selector] if row.role == "random" else [row.selector, row.method]
                    err, spd = cell.error, cell.speedup
                    if err is not None:
                        metrics[_metric_key(*prefix, "error", *what)] = err[0]
                    if spd is not None and row.role == "proxy" and math.isfinite(spd[0]):
                        metrics[_metric_key(*prefix, "speedup", *what)] = spd[0]
                    if metrics:
                        tracker.log_metrics(metrics, step=level)
    return tracker.experiment_id, tracker.run_id


COMPARE_LOOP_TAG = "svpkit.loop"


def summary_lines(result: Comparison) -> list[str]:
    lines = []
    for r in result.missing_baseline:
        lines.append(
            f"no baseline for proxy run {r.run_id} ({r.name}: {r.selector} via {r.selector_model}, seed {r.seed})"
        )
    for block in result.blocks:
        if not block.has_random:
            lines.append(f"no random-selection reference runs for {block.title}")
    for rid, name, why in result.ignored:
        lines.append(f"left out {rid} ({name}): {why}")
    return lines


def as_json(result: Comparison) -> str:
    header_rows = []
    for block in result.blocks:
        header, body = block_table_rows(block)
        header_rows.append({"title": block.title, "header": header, "rows": body})
    return json.dumps({"experiment": result.experiment_name, "tables": header_rows}, indent=2)
