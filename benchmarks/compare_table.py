"""The condensed tables of docs/reproducing.md from ``svpkit compare --json`` output.

    svpkit compare --experiment pretrained-cifar10 --no-log --json > benchmarks/results/studies/pretrained_cifar10_compare.json
    python benchmarks/compare_table.py benchmarks/results/studies/pretrained_cifar10_compare.json

One row per selector: the target's mean test error (%) at each level, then the AUC and AUC −
random (mean ± the 95 % t half-width over the paired seeds) with the verdict; a second table
gives each level's paired difference from random with its own verdict.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any


def _short(selector: str) -> str:
    """``auto[cold_start=...,pca=128,...,initial_selector=x]`` → ``auto (pca=128; first set x)``:
    the options left out are the selector's defaults as the run printed them."""
    name, _, rest = selector.partition("[")
    options = dict(o.split("=", 1) for o in rest.rstrip("]").split(",") if "=" in o)
    parts = [f"pca={options['pca']}"] if options.get("pca", "0") != "0" else []
    if "initial_selector" in options:
        parts.append(f"first set {options['initial_selector']}")
    return f"`{name}`" + (f" ({'; '.join(parts)})" if parts else "")


def _labeled(level: str, pool: int) -> str:
    """A level as printed (``0.5%`` of the pool) → the labeled count (``50 labeled``)."""
    return f"{round(float(level.rstrip('%')) * pool / 100):,}" if level.endswith("%") else level


def _mean(cell: str) -> str:
    match = re.match(r"\s*([-+]?[\d.]+)", cell)
    return match.group(1) if match else cell


def tables(report: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for table in report["tables"]:
        header, rows = table["header"], table["rows"]
        levels = [h[len("error ") :] for h in header if h.startswith("error ")]
        diffs = {r[0]: r for r in table.get("differences", {}).get("rows", []) if r[2] == "random"}
        pool = re.search(r"\((\d+) training examples\)", table["title"])
        shown = [_labeled(lv, int(pool.group(1))) if pool else lv for lv in levels]
        out.append(f"**{table['title']}**\n")
        out.append("| selector | seeds | " + " | ".join(shown) + " | AUC | AUC − random | verdict |")
        out.append("| --- | --- | " + " | ".join("---:" for _ in levels) + " | ---: | ---: | --- |")
        for row in rows:
            cells = dict(zip(header, row))
            errors = [_mean(cells[f"error {lv}"]) for lv in levels]
            diff = diffs.get(row[0])
            auc_diff = diff[-2] if diff else "0"
            out.append(
                f"| {_short(row[0])} | {cells['seeds']} | " + " | ".join(errors) + f" | {_mean(cells['AUC'])} | "
                f"{auc_diff.replace(' (n=', ' (n=')} | {cells['verdict']} |"
            )
        if diffs:
            dh = table["differences"]["header"]
            out.append("\nPaired differences from random (points), each level's verdict:\n")
            out.append("| selector | " + " | ".join([*shown, "AUC"]) + " |")
            out.append("| --- | " + " | ".join("---" for _ in dh[3:-1]) + " |")
            for name, r in diffs.items():
                out.append(f"| {_short(name)} | " + " | ".join(r[3:-1]) + " |")
        out.append("")
    return out


def main() -> None:
    for arg in sys.argv[1:]:
        print("\n".join(tables(json.loads(Path(arg).read_text()))))


if __name__ == "__main__":
    main()
