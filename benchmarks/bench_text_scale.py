"""text_csv at Amazon Review size (CPU): load time and peak memory of a generated pool, extrapolated.

Writes a Zhang et al. layout ``train.csv`` (no header, ``"label","title","text"``, 1-based labels)
of ``--rows`` generated reviews (words drawn from a fixed vocabulary, about the length of Amazon
Review Polarity's: a 5-word title and a 75-word text) and a small ``test.csv``, then, in a fresh
process, loads it with ``text_csv`` and reports the load seconds and the process's peak RSS
(``ru_maxrss``) next to the file's size and the same process's RSS just before loading (after
the imports). With ``--al``
the same process then runs one active-learning round (fastText proxy, least confidence, 1 % of
the pool labeled, 1 % more picked) through the CLI, tracked in a scratch MLflow store, and
reports the command's wall seconds, the round's own ``round/*_seconds`` metrics and the child's
peak RSS. The extrapolation to 3.6M rows is linear in the rows (the loader holds one string per
row; the fastText learner normalises and scores the pool in chunks; the labeled set is 1 %).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import print_table, write_results  # noqa: E402

AMAZON_POLARITY_ROWS = 3_600_000


def write_pool(root: Path, rows: int, seed: int = 0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    if (root / f"done_{rows}").is_file():
        return root
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)])
    for name, count in (("train.csv", rows), ("test.csv", max(rows // 100, 100))):
        with (root / name).open("w", encoding="utf-8") as fh:
            for start in range(0, count, 10_000):
                n = min(10_000, count - start)
                labels = rng.integers(1, 3, size=n)
                words = vocab[rng.zipf(1.3, size=(n, 80)) % len(vocab)]
                for label, w in zip(labels, words):
                    fh.write(f'"{label}","{" ".join(w[:5])}","{" ".join(w[5:])} good{label}"\n')
    (root / f"done_{rows}").write_text("ok")
    return root


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """This process's resident memory now (VmRSS)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(root: Path, al: bool) -> dict[str, Any]:
    """In this (fresh) process: load the pool, then (``al``) one active-learning round."""
    from svpkit.data.text_csv import load_text_csv

    before = rss_mib()
    t0 = time.perf_counter()
    data = load_text_csv(root)
    out: dict[str, Any] = {
        "rows": len(data.train),
        "load_seconds": time.perf_counter() - t0,
        "rss_before_load_mib": before,
        "peak_rss_after_load_mib": peak_rss_mib(),
        "text_mib": sum(len(t) for t in data.train.x) / 2**20,
    }
    del data
    if al:
        out.update(al_round(root, out["rows"]))
    return out


def al_round(root: Path, rows: int) -> dict[str, Any]:
    """One active-learning round through the CLI (fastText proxy, least confidence, 1 % → 2 % labeled):
    wall seconds of the whole command, the round's own metrics and the child's peak RSS."""
    import mlflow

    from svpkit.contract import Metric

    budget = rows // 100
    args = ["active-learning", "--quiet", "--dataset", "text_csv", "--data-path", str(root), "--proxy", "fasttext"]
    args += ["--target", "fasttext", "--initial", str(budget), "--budgets", str(2 * budget), "--no-train-target"]
    args += ["--selector", "least_confidence", "--device", "cpu", "--experiment", "bench-text-scale"]
    uri = f"sqlite:///{root / f'mlruns_{time.time_ns()}.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "svpkit", *args], capture_output=True, text=True, env=env)
    out: dict[str, Any] = {
        "al_command_seconds": time.perf_counter() - t0,
        "al_returncode": done.returncode,
        "al_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "al_labeled": [budget, 2 * budget],
    }
    if done.returncode != 0:
        out["al_error"] = done.stderr[-2000:]
        return out
    client = mlflow.MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bench-text-scale").experiment_id])
    m = run.data.metrics
    keys = ("ROUND_TRAIN_SECONDS", "ROUND_INFERENCE_SECONDS", "ROUND_SELECTION_SECONDS", "ROUND_TOTAL_SECONDS")
    out["al_round"] = {k.lower(): m[getattr(Metric, k)] for k in keys}
    out["al_round_seconds"] = m[Metric.ROUND_TOTAL_SECONDS]
    out["al_selector_model_error"] = m.get(Metric.SELECTOR_MODEL_ERROR)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--small-rows", type=int, default=0, help="also measure this smaller pool; extrapolate on the line")
    p.add_argument("--al", action="store_true", help="also one active-learning round with the fastText proxy")
    p.add_argument("--scratch", default="/tmp/svpkit_bench_text_scale")
    p.add_argument("--measure", default="", help=argparse.SUPPRESS)
    p.add_argument("--machine", default="")
    p.add_argument("--out", default="")
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure), args.al)))
        return
    sizes = sorted({args.rows, *([args.small_rows] if args.small_rows else [])})
    load_before = os.getloadavg()
    measured = {rows: run_size(Path(args.scratch) / str(rows), rows, args.al) for rows in sizes}
    result = measured[args.rows]
    result["load_average_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    if len(measured) > 1:
        result["smaller_pool"] = measured[sizes[0]]
    result["extrapolated_3_6m"] = extrapolate(list(measured.values()))
    grown = result["peak_rss_after_load_mib"] - result["rss_before_load_mib"]
    rows = [
        [r["rows"], r["file_mib"], r["load_seconds"], r["peak_rss_after_load_mib"] - r["rss_before_load_mib"],
         r.get("al_round_seconds", "-"), r.get("al_peak_rss_mib", "-")]
        for r in measured.values()
    ]  # fmt: skip
    cols = ["rows", "file MiB", "load s", "RSS growth MiB", "AL round s", "AL peak RSS MiB"]
    print_table("text_csv at scale", cols, rows)
    print(f"3.6M rows: {result['extrapolated_3_6m']} (RSS growth at 1M: {grown:.0f} MiB)")
    args.device, args.threads = "cpu", 0
    write_results("text_scale", args, torch.device("cpu"), result)


def run_size(root: Path, rows: int, al: bool) -> dict[str, Any]:
    """Write a pool of ``rows`` reviews (kept for reuse) and measure it in a fresh process."""
    t0 = time.perf_counter()
    write_pool(root, rows)
    print(f"{rows:,} rows ready in {time.perf_counter() - t0:.1f} s")
    cmd = [sys.executable, __file__, "--measure", str(root), *(["--al"] if al else [])]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    result["file_mib"] = (root / "train.csv").stat().st_size / 2**20
    return result


def extrapolate(measured: list[dict[str, Any]]) -> dict[str, Any]:
    """Values at 3.6M rows: on the line through two measured pool sizes (fixed costs such as the
    interpreter and fastText's hash table stay fixed), or proportional to the rows from one."""
    keys = ["load_seconds", "rss_growth_mib", "al_round_seconds", "al_command_seconds", "al_peak_rss_mib"]
    points = [{**r, "rss_growth_mib": r["peak_rss_after_load_mib"] - r["rss_before_load_mib"]} for r in measured]
    out: dict[str, Any] = {"method": "line through two sizes" if len(points) > 1 else "proportional to rows"}
    for key in keys:
        if not all(key in r for r in points):
            continue
        if len(points) == 1:
            out[key] = points[0][key] * AMAZON_POLARITY_ROWS / points[0]["rows"]
            continue
        (r0, v0), (r1, v1) = ((r["rows"], r[key]) for r in (points[0], points[-1]))
        out[key] = v1 + (v1 - v0) / (r1 - r0) * (AMAZON_POLARITY_ROWS - r1)
    return out


if __name__ == "__main__":
    main()
