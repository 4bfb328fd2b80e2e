"""Print the README's results table (Markdown) from ``benchmarks/results/*.json``.

python benchmarks/table.py            # paste into docs/performance.md, section "Results"
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.table_format import _mean, _peak, _roofline, _s  # noqa: E402
from benchmarks.table_scale import (  # noqa: E402
    data_scale_rows,
    embedding_store_rows,
    imagenet_round_rows,
    k_center_scale_rows,
    pool_bytes_rows,
    selector_memory_rows,
    shard_memory_rows,
    shards_rows,
    vector_round_rows,
)

RESULTS = Path(__file__).resolve().parent / "results"


def train_rows(r: dict[str, Any], where: str) -> list[str]:
    """One row per svpkit arm (results before arms existed: one arm, no roofline)."""
    what = f"{r['model']}, {r['train_images']:,} images, {r['epochs']} ep."
    plain = r["plain"]
    plain_txt = "plain not run"
    if plain:
        ext = " extrapolated" if plain[0]["extrapolated"] else ""
        plain_txt = (
            f"plain {_s(_mean(plain, 'total_seconds'))} s{ext} ({r['plain_epochs']} ep. run), "
            f"{_s(_mean(plain, 'images_per_second'))} img/s{_roofline(r.get('plain_roofline'), 'fp32')}"
        )
    peaks = r.get("matmul_peaks")
    peak_txt = (
        f"; matmul peak fp32 {_peak(peaks['float32'])}, bf16 {_peak(peaks['bfloat16'])} GFLOP/s, "
        f"{r['flops_per_image'] / 1e6:,.0f} MFLOP per training image"
        if peaks
        else ""
    )
    out = []
    for arm in r.get("arms") or [{"label": "svpkit", "runs": r["svpkit"]}]:
        runs = arm["runs"]
        precision = "bf16" if arm.get("precision") == "bfloat16" else "fp32"
        svp_txt = (
            f"{arm['label']} {_s(_mean(runs, 'total_seconds'))} s (warm-up {_s(_mean(runs, 'warmup_seconds'))} s, "
            f"compile {_s(_mean(runs, 'compile_seconds'))} s), {_s(_mean(runs, 'images_per_second'))} img/s"
            f"{_roofline(arm.get('roofline'), precision)}, error {_mean(runs, 'test_error'):.3f}"
        )
        proj = r["projected_181_epochs_full_cifar_seconds"]
        svp_txt += f"; 181 ep. × 50k projected {_s(proj.get(arm['label'], proj['svpkit']))} s"
        svp_txt += f" (plain {_s(proj['plain'])} s)" if plain else ""
        if "break_even_steps" in arm:
            steps = float(arm["break_even_steps"])
            svp_txt += (
                f"; compiling pays after {steps:,.0f} full-size steps"
                if steps != float("inf")
                else "; compiling never pays (the compiled step is not faster)"
            )
        ratio = "-"
        if plain:
            speedup = _mean(plain, "total_seconds") / _mean(runs, "total_seconds")
            best = min(float(x["total_seconds"]) for x in plain) / min(float(x["total_seconds"]) for x in runs)
            ratio = f"**{speedup:.2f}×** total (mean), {best:.2f}× best-of-runs"
        out.append(f"| {what} | {svp_txt}; {plain_txt}{peak_txt} | {ratio} | {where} |")
    return out


def parity_rows(r: dict[str, Any], where: str) -> list[str]:
    errors = "; ".join(f"{name} {', '.join(f'{100 * e:.2f} %' for e in errs)}" for name, errs in r["errors"].items())
    checks = [run["scoring_check"] for run in r["runs"] if run["precision"] == "bfloat16"]
    lc = max(c["least_confidence"]["picks_changed"] for c in checks)
    kc = max(c["k_center"]["picks_changed"] for c in checks)
    what = f"accuracy parity, {r['model']}, {r['train_images']:,} images, {r['epochs']} ep., seeds {r['seeds']}"
    txt = (
        f"test error ({r['test_images']:,} images) {errors}; bf16 scoring would change up to {100 * lc:.1f} % of the "
        f"least-confidence and {100 * kc:.1f} % of the k-center picks (scores stay float32)"
    )
    verdict = {True: "at parity", False: "NOT at parity", None: "undecided (one seed)"}[r["bf16_at_parity"]]
    ratio = f"bf16 {verdict}: {100 * r['mean_difference']:+.2f} points vs seed spread {100 * r['seed_spread']:.2f}"
    return [f"| {what} | {txt} | {ratio} | {where} |"]


RENDERERS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "data_scale": data_scale_rows,
    "k_center_scale": k_center_scale_rows,
    "shards": shards_rows,
    "imagenet_round": imagenet_round_rows,
    "embedding_store": embedding_store_rows,
    "pool_bytes": pool_bytes_rows,
    "vector_round": vector_round_rows,
    "shard_memory": shard_memory_rows,
    "selector_memory": selector_memory_rows,
}
"""The rows of a benchmark whose results have a renderer of their own, by the benchmark's name."""


def rows(r: dict[str, Any]) -> list[str]:
    name = r["benchmark"]
    where = f"{r['date']} | {r['machine']} | `{r['command']}`"
    if name in RENDERERS:
        return RENDERERS[name](r, where)
    out = []
    if name.startswith("train_"):
        out += train_rows(r, where)
    elif name == "k_center":
        runs = r["runs"]

        def avg(k: str) -> dict[str, Any]:
            rs = runs.get(k) or []
            return {**rs[-1], "seconds": sum(x["seconds"] for x in rs) / len(rs)} if rs else {}

        rm, bf, mx = avg("running-min"), avg("running-min bf16"), avg("matrix")
        what = f"greedy k-center {r['n']:,} × {r['dim']}, {r['initial_centres']:,} centres, {r['picks']:,} picks"
        txt = f"running-min {_s(rm['seconds'])} s, extra {rm['extra_bytes'] / 2**20:.1f} MiB"
        if rm.get("peak_bytes"):
            txt += f", peak GPU {rm['peak_bytes'] / 2**30:.1f} GiB"
        txt += f"; bf16 storage {_s(bf['seconds'])} s (picks agreeing with fp32: {bf['agreement_with_fp32']:.0%})"
        if mx:
            txt += f"; N×k matrix {_s(mx['seconds'])} s for {mx['picks']:,} picks, {mx['extra_bytes'] / 2**20:,.0f} MiB"
        if r["matrix_out_of_memory"]:
            first = r["matrix_out_of_memory"][0]
            txt += f" (out of memory at {first['picks']:,} picks: {first['matrix_bytes'] / 2**30:,.0f} GiB)"
        ratio = f"**{r['speedup_per_pick_matrix_over_running_min']:.1f}×** per pick" if mx else "-"
        out.append(f"| {what} | {txt} | {ratio} | {where} |")
    elif name == "overhead":
        what = f"tracking overhead, {r['model']}, {r['train_images']:,} images"
        f, m, a = r["forgetting"], r["mlflow"], r["mlflow async"]
        txt = (
            f"epoch {_s(r.get('epoch_seconds_all_median', r['epoch_seconds_plain_median']))} s; forgetting {f['overhead_percent_isolated']:.2f} % isolated "
            f"({f['overhead_percent_in_loop']:+.1f} % in loop); MLflow per-epoch log {m['overhead_percent_isolated']:.2f} % "
            f"isolated ({m['overhead_percent_in_loop']:+.1f} % in loop), async {a['overhead_percent_isolated']:.2f} %"
        )
        txt += _roofline(r.get("roofline"), "fp32")
        out.append(f"| {what} | {txt} | goal ≤ 2 % each | {where} |")
    elif name == "text_scale":
        x = r["extrapolated_3_6m"]
        what = f"text_csv load, {r['rows']:,} generated reviews (Zhang et al. layout, {r['file_mib']:,.0f} MiB)"
        grown = r["peak_rss_after_load_mib"] - r["rss_before_load_mib"]
        txt = (
            f"load {_s(r['load_seconds'])} s, RSS growth {grown:,.0f} MiB ({r['text_mib']:,.0f} MiB of text); "
            f"3.6M rows: load {_s(x['load_seconds'])} s, {x['rss_growth_mib'] / 1024:,.1f} GiB"
        )
        if "al_round" in r:
            a, lab = r["al_round"], r["al_labeled"]
            txt += (
                f"; one active-learning round (fastText proxy, least confidence, {lab[0]:,} → {lab[1]:,} labeled): "
                f"train {_s(a['round_train_seconds'])} s, score the pool {_s(a['round_inference_seconds'])} s, "
                f"select {_s(a['round_selection_seconds'])} s, command {_s(r['al_command_seconds'])} s, "
                f"peak RSS {r['al_peak_rss_mib']:,.0f} MiB"
            )
            if "smaller_pool" in r:
                small = r["smaller_pool"]
                txt += f" ({small['rows']:,} rows: round {_s(small['al_round_seconds'])} s, {small['al_peak_rss_mib']:,.0f} MiB)"
            txt += (
                f"; at 3.6M rows ({x.get('method', 'proportional to rows')}): round {_s(x['al_round_seconds'])} s, "
                f"command {_s(x['al_command_seconds'])} s, peak RSS {x['al_peak_rss_mib'] / 1024:,.1f} GiB"
            )
        out.append(f"| {what} | {txt} | {grown / r['file_mib']:.2f}× the file's size in memory | {where} |")
    elif name.startswith("parity_"):
        out += parity_rows(r, where)
    elif name.startswith("text_"):
        c = r["config"]
        long, short = r["long"], r["short"]
        what = f"{c['model']}, {c['train']:,} SST-2 sentences, {c['epochs']} ep., max_length {long['max_length']:,} vs {c['short']}"
        med = statistics.median
        txt = (
            f"epoch {_s(med(long['epoch_seconds']))} s vs {_s(med(short['epoch_seconds']))} s; test pass "
            f"{_s(med(long['inference_seconds']))} s vs {_s(med(short['inference_seconds']))} s; "
            f"{r['truncated_texts']} of {r['texts']:,} texts truncated; error {100 * long['test_error']:.1f} % vs "
            f"{100 * short['test_error']:.1f} %"
        )
        if "roofline" in long:
            txt += f"; {_roofline(long['roofline'], 'fp32')[2:]} vs {_roofline(short['roofline'], 'fp32')[2:]}"
        ratio = f"**{r['epoch_speedup']:.2f}×** per epoch, {r['inference_speedup']:.2f}× inference"
        out.append(f"| {what} | {txt} | {ratio} | {where} |")
    return out


def main() -> None:
    files = sorted(RESULTS.glob("*.json")) if len(sys.argv) < 2 else [Path(a) for a in sys.argv[1:]]
    print("| benchmark | result | svpkit vs baseline | date | machine | command |")
    print("| --- | --- | --- | --- | --- | --- |")
    for f in files:
        for row in rows(json.loads(f.read_text())):
            print(row)


if __name__ == "__main__":
    main()
