"""A comparison as text: markdown, CSV, rich tables, JSON and one-line notes.

Errors are shown in percent and carried in JSON and CSV as fractions (0.123 is 12.3 %). A cell
shows the mean over seeds with the half-width of its 95 % t-interval and the number of seeds
(``12.3 ± 1.4 (n=3)``; one seed: ``12.3 (n=1)``), and the worst class's error when the runs
logged it. Under each table: the paired differences (selector − random, proxy − baseline) and
the rule of the verdict column (:data:`~svpkit.analysis.stats.VERDICT_RULES`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from typing import TYPE_CHECKING

from svpkit.analysis.pairing import Block, Cell, Comparison, Row
from svpkit.analysis.stats import (
    DEFAULT_CONFIDENCE,
    DEFAULT_TOLERANCE,
    VERDICT_RULES,
    Interval,
    PairedDifference,
    format_cell,
    level_verdict,
    seeds_needed,
)
from svpkit.contract import CORE_SET

if TYPE_CHECKING:
    from rich.table import Table

_CSV_COLUMNS = [
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
    "error_low",
    "error_high",
    "worst_class_error_mean",
    "minus_random_mean",
    "minus_random_low",
    "minus_random_high",
    "minus_baseline_mean",
    "minus_baseline_low",
    "minus_baseline_high",
    "speedup_mean",
    "selection_seconds_mean",
    "end_to_end_speedup_mean",
    "verdict",
]
_ERROR_NOTE = (
    "Error: target test error (%), mean ± half-width of the 95 % t-interval over seeds, n seeds "
    "(one seed: its value and n=1); 'worst class': the mean error on the target's worst class, where logged. "
    "Speed-up: the baseline's selection seconds / the proxy's, mean over seeds. "
    "AUC: normalised area under the error-vs-labeled curve (%, the curve's mean height)."
)
_DIFF_NOTE = (
    "Paired differences in percentage points, per seed, 95 % t-interval (negative: lower error); "
    "against random, each level's own verdict follows its interval. 'seeds to decide': for an inconclusive "
    "row, the seeds its observed paired AUC spread would need for the interval to decide "
    "(smallest n with t(0.975, n−1)·s/√n below the distance from the mean to the boundary)."
)
FULL_CLASS_ERROR = 1.0
"""A worst-class error at this value: some class was never predicted right (flagged in the tables)."""


def rules_text(tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The verdict rule with this comparison's X."""
    return f"{VERDICT_RULES} Here X = {100 * tolerance:g}."


def class_failures(cell: Cell) -> int:
    """Seeds whose worst class had 100 % error at this level (a class left out entirely)."""
    return sum(1 for v in cell.worst_class.values() if v >= FULL_CLASS_ERROR)


def _error_text(cell: Cell) -> str:
    text = format_cell(cell.error)
    worst = cell.worst_class_error
    failed = class_failures(cell)
    flag = f" · ⚑ a class at 100 % in {failed}/{max(len(cell.errors), failed)} seeds" if failed else ""
    return text if worst is None else f"{text} · worst class {100 * worst.mean:.1f}{flag}"


def row_seeds_needed(row: Row, tolerance: float = DEFAULT_TOLERANCE) -> dict[str, int | None] | None:
    """For an inconclusive row: seeds for the AUC interval vs random to exclude 0, and vs the
    baseline to decide either way (match within ``tolerance`` or worse); None for decided rows."""
    if not row.verdict.startswith("inconclusive"):
        return None
    out: dict[str, int | None] = {"vs_random": None, "vs_baseline": None}
    if row.auc_vs_random is not None:
        diff = row.auc_vs_random
        out["vs_random"] = seeds_needed(diff.differences, abs(diff.interval.mean))
    if row.auc_vs_baseline is not None:
        diff = row.auc_vs_baseline
        mean = diff.interval.mean
        found = [seeds_needed(diff.differences, m) for m in (tolerance - mean, mean)]
        out["vs_baseline"] = min((n for n in found if n is not None), default=None)
    return out


def _times(value: Interval | None) -> str:
    if value is None:
        return "—"
    return "∞" if math.isinf(value.mean) else f"{value.mean:.1f}×"


def _speedup_text(block: Block, row: Row, level: int) -> str:
    if row.role == "random":
        return ""
    if row.role == "proxy" and any(r.run_id in row.run_ids for r in block.missing_baseline):
        if not row.cell(level).speedups:
            return "no baseline"
    return _times(row.cell(level).speedup)


def _signed(diff: PairedDifference | None) -> str:
    if diff is None:
        return "—"
    text = format_cell(diff.interval)
    return text if text.startswith("-") else f"+{text}"


def block_table_rows(block: Block) -> tuple[list[str], list[list[str]]]:
    """Header and rows in the paper's Table 1 layout: error and speed-up per budget level, AUC, verdict."""
    header = ["selector", "selector model", "seeds"]
    for level in block.levels:
        header += [f"error {block.level_label(level)}", f"speed-up {block.level_label(level)}"]
    if block.loop == CORE_SET.name:
        header += ["end-to-end speed-up"]
    header += ["AUC", "verdict"]
    body = []
    for row in block.rows:
        line = [row.selector, row.method + (" (baseline)" if row.role == "baseline" else ""), str(len(row.seeds))]
        for level in block.levels:
            line += [_error_text(row.cell(level)), _speedup_text(block, row, level)]
        if block.loop == CORE_SET.name:
            e2e = [v for c in row.cells.values() for v in c.end_to_end]
            line += [f"{statistics.fmean(e2e):.1f}×" if e2e else "—"]
        body.append([*line, format_cell(row.auc), row.verdict])
    return header, body


def _level_text(diff: PairedDifference | None, against: str) -> str:
    """A level's paired difference; against random, its own verdict when it decides."""
    text = _signed(diff)
    said = level_verdict(diff.interval) if diff is not None and against == "random" else None
    return f"{text} {said}" if said and said != "inconclusive" else text


def difference_table_rows(block: Block) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paired differences: one line per row and what it is set against."""
    levels = [block.level_label(lvl) for lvl in block.levels]
    header = ["selector", "selector model", "minus", *levels, "AUC", "seeds to decide"]
    body = []
    for row in block.rows:
        needed = row_seeds_needed(row) or {}
        against = [("random", "vs_random", row.auc_vs_random), ("baseline", "vs_baseline", row.auc_vs_baseline)]
        for name, attr, auc in against:
            cells = [getattr(row.cells[lvl], attr) if lvl in row.cells else None for lvl in block.levels]
            if auc is not None or any(cells):
                n = needed.get(attr)
                more = "" if not needed else (str(n) if n is not None else "—")
                body.append(
                    [row.selector, row.method, name, *(_level_text(c, name) for c in cells), _signed(auc), more]
                )
    return header, body


def _markdown_table(header: list[str], body: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return out + ["| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |" for line in body]


def to_markdown(result: Comparison) -> str:
    out = [f"# svpkit comparison of experiment `{result.experiment_name}`", "", _ERROR_NOTE]
    for block in result.blocks:
        out += ["", f"## {block.title}", "", f"{block.levels_note}.", ""]
        out += _markdown_table(*block_table_rows(block))
        if not block.has_random:
            out += ["", "No random-selection runs in this block (no reference row)."]
        header, body = difference_table_rows(block)
        if body:
            out += ["", _DIFF_NOTE, ""] + _markdown_table(header, body)
        out += ["", rules_text()]
    missing = result.missing_baseline
    if missing:
        out += ["", "## Proxy runs without a baseline", ""]
        out += [f"- `{r.run_id}` {r.name}: {r.selector} via {r.selector_model}, seed {r.seed}" for r in missing]
    if result.notes:
        out += ["", "## Notes", ""] + [f"- {note}" for note in result.notes]
    if result.ignored:
        out += ["", "## Runs left out", ""]
        out += [f"- `{rid}` {name}: {why}" for rid, name, why in result.ignored]
    return "\n".join(out) + "\n"


def _g(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _bounds_g(value: Interval | PairedDifference | None) -> list[str]:
    """Mean, low and high for CSV (low and high empty without an interval)."""
    interval = value.interval if isinstance(value, PairedDifference) else value
    return ["", "", ""] if interval is None else [_g(interval.mean), _g(interval.low), _g(interval.high)]


def _csv_line(block: Block, row: Row, level: int) -> list[object]:
    cell = row.cells.get(level, Cell())
    worst = cell.worst_class_error
    return [
        block.loop,
        block.dataset,
        block.train_size,
        block.target_model,
        block.budgets,
        row.selector,
        row.method,
        row.role,
        level,
        _g(block.fraction(level)),
        len(cell.errors) or len(cell.seconds),
        *_bounds_g(cell.error),
        _g(worst.mean if worst else None),
        *_bounds_g(cell.vs_random),
        *_bounds_g(cell.vs_baseline),
        _g(cell.speedup.mean if cell.speedup else None),
        _g(statistics.fmean(cell.seconds) if cell.seconds else None),
        _g(statistics.fmean(cell.end_to_end) if cell.end_to_end else None),
        row.verdict,
    ]


def to_csv(result: Comparison) -> str:
    """Long form: one line per block, row and level."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(_CSV_COLUMNS)
    for b in result.blocks:
        for row in b.rows:
            for level in b.levels:
                w.writerow(_csv_line(b, row, level))
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


def rich_tables(result: Comparison) -> list[Table]:
    """Per block: the main table (the verdict rule as its caption) and the paired differences."""
    from rich.markup import escape
    from rich.table import Table

    def table(title: str, caption: str, header: list[str], body: list[list[str]], left: int) -> Table:
        # Labels such as vdcnn9[max_length=256] are text, not rich markup.
        out = Table(title=escape(title), caption=escape(caption))
        for i, col in enumerate(header):
            out.add_column(escape(col), justify="left" if i < left else "right", overflow="fold")
        for line in body:
            out.add_row(*map(escape, line))
        return out

    tables = []
    for block in result.blocks:
        caption = f"{_ERROR_NOTE} {block.levels_note}. {rules_text()}"
        tables.append(table(block.title, caption, *block_table_rows(block), left=2))
        header, body = difference_table_rows(block)
        if body:
            tables.append(table(f"paired differences: {block.title}", _DIFF_NOTE, header, body, left=3))
    return tables


def summary_lines(result: Comparison) -> list[str]:
    lines = list(result.notes)
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


def _interval_json(value: Interval | PairedDifference | None) -> dict[str, object] | None:
    if value is None:
        return None
    interval = value.interval if isinstance(value, PairedDifference) else value
    doc: dict[str, object] = {"mean": interval.mean, "half_width": interval.half_width, "n": interval.n}
    doc |= {"low": interval.low, "high": interval.high}
    if isinstance(value, PairedDifference):
        doc |= {"seeds": list(value.seeds), "differences": list(value.differences)}
    return doc


def _row_json(block: Block, row: Row) -> dict[str, object]:
    levels = {}
    for level in block.levels:
        cell = row.cells.get(level, Cell())
        speedup = cell.speedup
        levels[str(level)] = {
            "errors": cell.errors,
            "error": _interval_json(cell.error),
            "worst_class_errors": cell.worst_class,
            "worst_class_error": _interval_json(cell.worst_class_error),
            "worst_class_at_100": class_failures(cell),
            "minus_random": _interval_json(cell.vs_random),
            "verdict_vs_random": level_verdict(cell.vs_random.interval) if cell.vs_random else None,
            "minus_baseline": _interval_json(cell.vs_baseline),
            "speedups": cell.speedups,
            "speedup_mean": None if speedup is None or math.isinf(speedup.mean) else speedup.mean,
        }
    return {
        "selector": row.selector,
        "selector_model": row.method,
        "role": row.role,
        "seeds": row.seeds,
        "run_ids": row.run_ids,
        "levels": levels,
        "auc": _interval_json(row.auc),
        "auc_minus_random": _interval_json(row.auc_vs_random),
        "auc_minus_baseline": _interval_json(row.auc_vs_baseline),
        "verdict": row.verdict,
        "seeds_needed": row_seeds_needed(row),
        "worst_class_at_100": {str(lvl): class_failures(c) for lvl, c in row.cells.items() if class_failures(c)},
    }


def comparison_numbers(result: Comparison) -> dict[str, object]:
    """Every number of the tables (errors as fractions), the verdicts and their rule."""
    blocks = [
        {"title": b.title, "loop": b.loop, "dataset": b.dataset, "train_size": b.train_size}
        | {"target_model": b.target_model, "levels": b.levels, "rows": [_row_json(b, r) for r in b.rows]}
        for b in result.blocks
    ]
    return {
        "confidence": DEFAULT_CONFIDENCE,
        "tolerance": DEFAULT_TOLERANCE,
        "verdict_rules": rules_text(),
        "blocks": blocks,
        "notes": list(result.notes),
    }


def as_json(result: Comparison) -> str:
    """The tables as printed and :func:`comparison_numbers`."""
    tables = []
    for block in result.blocks:
        header, body = block_table_rows(block)
        diff_header, diff_body = difference_table_rows(block)
        differences = {"header": diff_header, "rows": diff_body}
        tables.append({"title": block.title, "header": header, "rows": body, "differences": differences})
    return json.dumps({"experiment": result.experiment_name, "tables": tables, **comparison_numbers(result)}, indent=2)
