"""The result tables the loop commands print (rank 0 only)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from rich.table import Table

from svpkit.cli.base import out

if TYPE_CHECKING:
    from svpkit.loops.al_records import ALResult
    from svpkit.loops.core_set_report import CoreSetResult


def print_active_learning(result: ALResult) -> None:
    table = Table(title="active learning")
    for col in ("round", "labeled", "selector model error", "target error", "train s", "infer s", "select s"):
        table.add_column(col, justify="right")
    for r in result.rounds:
        table.add_row(
            str(r.round),
            str(r.labeled_after),
            percent(r.selector_model_error),
            percent(r.target_error),
            f"{r.train_seconds:.2f}",
            f"{r.inference_seconds:.3f}",
            f"{r.selection_seconds:.3f}",
        )
    out.print(table)
    out.print(f"total selection time: {result.selection_seconds:.2f} s")


def percent(error: Optional[float]) -> str:
    return "" if error is None else f"{100 * error:.2f}%"


def print_core_set(result: CoreSetResult, title: str) -> None:
    table = Table(title=title)
    columns = ("kept", "proxy error", "target error", "full-data error", "proxy s", "ranking s", "target s")
    for col in (*columns, "full s", "speed-up"):
        table.add_column(col, justify="right")
    full = result.full
    table.add_row(
        f"{result.subset.size} of {result.ranking.order.size}",
        percent(result.proxy_error),
        percent(result.target.test_error),
        "" if full is None else percent(full.test_error),
        f"{result.proxy_train_seconds:.2f}",
        f"{result.ranking_seconds:.3f}",
        f"{result.target.train_seconds:.2f}",
        "" if full is None else f"{full.train_seconds:.2f}",
        "" if result.speedup is None else f"{result.speedup:.2f}x",
    )
    out.print(table)
    if full is None:
        out.print("no full-data reference: run `svpkit train` first, or pass --full-run or --compare-full true")
    else:
        out.print(f"full-data reference: {full.source}")
