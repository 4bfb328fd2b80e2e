"""Shared helpers for the benchmark scripts: devices, presets, exact timers, tables and JSON.

Every timed region synchronises CUDA at both ends (``svpkit.timing.Timer``). Results are written
as JSON under ``benchmarks/results/`` with the machine, the command line and the software
versions, so the README table can cite them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from svpkit.runtime import cpu_flags, cpu_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_CPU_MACHINE = "2-core CPU dev machine, shared with other jobs"

if str(ROOT) not in sys.path:  # run as `python benchmarks/x.py` from a checkout without install
    sys.path.insert(0, str(ROOT))


def base_parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when available)")
    p.add_argument("--preset", default="auto", choices=["auto", "cpu", "gpu"], help="size preset (auto: by device)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: all cores)")
    p.add_argument("--machine", default="", help="machine description for the results (default: detected)")
    p.add_argument("--out", default="", help="JSON output path (default: benchmarks/results/<name>_<device>.json)")
    p.add_argument("--seed", type=int, default=0)
    return p


def setup(args: argparse.Namespace) -> tuple[torch.device, str]:
    """Resolve device and preset; set CPU threads."""
    from svpkit.runtime import resolve_device

    device = resolve_device(args.device)
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    preset = args.preset if args.preset != "auto" else ("gpu" if device.type == "cuda" else "cpu")
    return device, preset


def add_size_options(p: argparse.ArgumentParser) -> None:
    """``--train-size``, ``--epochs``, ``--repeats``: override the size preset (see preset_config)."""
    p.add_argument("--train-size", type=int, default=None)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--repeats", type=int, default=None)


def sized_config(presets: dict[str, dict[str, Any]], preset: str, args: argparse.Namespace) -> dict[str, Any]:
    """The preset's sizes with the ``add_size_options`` values given on the command line."""
    return preset_config(presets[preset], train=args.train_size, epochs=args.epochs, repeats=args.repeats)


def preset_config(preset: dict[str, Any], **given: Any) -> dict[str, Any]:
    """A copy of a size preset with the command line's values (those not None) applied."""
    return {**preset, **{key: value for key, value in given.items() if value is not None}}


CPU_FEATURES = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma"})
"""The instruction-set flags a result records (what decides its fp32 and bf16 speeds)."""


def describe_machine(device: torch.device, given: str = "") -> str:
    if given:
        return given
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name} ({props.total_memory / 2**30:.0f} GiB), {os.cpu_count()} CPU cores"
    cores = os.cpu_count() or 1
    return DEFAULT_CPU_MACHINE if cores <= 2 else f"{cores}-core CPU ({platform.processor() or platform.machine()})"


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "device": str(device),
        "cpu": cpu_model(),
        "cpu_features": sorted(cpu_flags() & CPU_FEATURES),
    }
    try:
        import torchvision

        env["torchvision"] = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        pass
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def write_results(name: str, args: argparse.Namespace, device: torch.device, payload: dict[str, Any]) -> Path:
    out = Path(args.out) if args.out else RESULTS / f"{name}_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "benchmark": name,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": describe_machine(device, args.machine),
        "command": "python " + " ".join([os.path.relpath(sys.argv[0], ROOT), *sys.argv[1:]]),
        "environment": environment(device),
        **payload,
    }
    out.write_text(json.dumps(record, indent=2, default=float) + "\n")
    print(f"wrote {out}")
    return out


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """A plain-text table (rich when available)."""
    cells = [[_fmt(v) for v in row] for row in rows]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for c in columns:
            table.add_column(c)
        for row in cells:
            table.add_row(*row)
        Console(width=200).print(table)
    except ImportError:  # pragma: no cover
        widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
        print(title)
        print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
        for r in cells:
            print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def linear_head_round(initial: int, k: int, epochs: int, **data: Any) -> Any:
    """One least-confidence round through the Python API on ``data`` (``svpkit.active_learning``'s
    data settings): ``linear_head`` as the selector model (``epochs``) trained on ``initial``
    labeled, ``k`` picked, the target not trained, nothing tracked."""
    import svpkit

    return svpkit.active_learning(
        selector="least_confidence",
        proxy="linear_head",
        target="linear_head",
        train_target=False,
        initial=str(initial),
        budgets=str(initial + k),
        proxy_epochs=epochs,
        device="cpu",
        track=False,
        **data,
    )


def round_record(result: Any, peak_pss_kib: float, peak_data_kib: float) -> tuple[dict[str, float], dict[str, Any]]:
    """(the result's metrics, what a round benchmark records of it: phase seconds, the round's own
    seconds, the picks, peak PSS and data in MiB)."""
    m, phases = round_phases(result)
    record = {
        "phases_seconds": phases,
        "round_seconds": phases["train"] + phases["score"] + phases["select"],
        "picked": len(result.selected[0]),
        "peak_pss_mib": peak_pss_kib / 1024,
        "peak_data_mib": peak_data_kib / 1024,
    }
    return m, record


def round_phases(result: Any) -> tuple[dict[str, float], dict[str, float]]:
    """(the last value of each metric, the first round's phase seconds: train with its warm-up,
    score, select, eval) of a ``svpkit.active_learning`` result."""
    from svpkit.contract import Metric

    m = {key: values[-1][1] for key, values in result.tracker.metrics.items()}
    phases = {
        "train": m[Metric.ROUND_TRAIN_SECONDS] + m[Metric.ROUND_WARMUP_SECONDS],
        "score": m[Metric.ROUND_INFERENCE_SECONDS],
        "select": m[Metric.ROUND_SELECTION_SECONDS],
        "eval": m[Metric.ROUND_EVAL_SECONDS],
    }
    return m, phases
