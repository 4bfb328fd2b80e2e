"""Number and cell formatting shared by the results table's renderers (``benchmarks/table.py``)."""

from __future__ import annotations

from typing import Any


def _s(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _mean(runs: list[dict[str, Any]], key: str) -> float:
    return sum(float(x[key]) for x in runs) / len(runs)


def _peak(peak: dict[str, Any]) -> str:
    """A peak's GFLOP/s, or ``—`` where the device has none at that precision."""
    return "—" if not peak.get("gflops") else f"{peak['gflops']:,.0f}"


def _roofline(rl: dict[str, Any] | None, precision: str) -> str:
    """``, N GFLOP/s = x % of the <precision> matmul peak`` (the record's own precision if it says)."""
    if not rl:
        return ""
    precision = {"bfloat16": "bf16", "float32": "fp32"}.get(rl.get("precision", ""), precision)
    fraction = rl.get("fraction_of_peak")
    if fraction is None or fraction != fraction:  # no peak at this precision (bf16 on an AVX2 CPU)
        return f", {rl['achieved_gflops']:,.0f} GFLOP/s (no {precision} matmul peak on this device: —)"
    return f", {rl['achieved_gflops']:,.0f} GFLOP/s = {100 * fraction:.0f} % of the {precision} matmul peak"


def _memory(x: dict[str, Any]) -> str:
    """A pipeline's peak memory: the data it held (where measured) and its private pages (USS)."""
    uss = f"peak USS {x['peak_rss_mib']:,.0f} MiB"
    return f"peak data {x['peak_data_mib']:,.0f} MiB ({uss})" if "peak_data_mib" in x else uss
