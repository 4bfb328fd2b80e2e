"""A comparison as text: markdown, CSV, rich tables, JSON and one-line notes."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from typing import Any

from svpkit.analysis.pairing import Block, Cell, Comparison, Row
from svpkit.contract import CORE_SET

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
    "error_std",
    "speedup_mean",
    "speedup_std",
    "selection_seconds_mean",
    "end_to_end_speedup_mean",
]


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
    if block.loop == CORE_SET.name:
        header += ["end-to-end speed-up"]
    body = []
    for row in block.rows:
        line = [row.selector, row.method + (" (baseline)" if row.role == "baseline" else ""), str(len(row.seeds))]
        for level in block.levels:
            line += [_pct(row.cell(level).error), _speedup_text(block, row, level)]
        if block.loop == CORE_SET.name:
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


def _g(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"


def _mean_std_g(value: tuple[float, float] | None) -> list[str]:
    return ["", ""] if value is None else [_g(value[0]), _g(value[1])]


def _csv_line(block: Block, row: Row, level: int) -> list[Any]:
    cell = row.cells.get(level, Cell())
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
        *_mean_std_g(cell.error),
        *_mean_std_g(cell.speedup),
        _g(statistics.fmean(cell.seconds) if cell.seconds else None),
        _g(statistics.fmean(cell.end_to_end) if cell.end_to_end else None),
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
