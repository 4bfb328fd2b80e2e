"""Print the README's results table (Markdown) from ``benchmarks/results/*.json``.

python benchmarks/table.py            # paste into README.md, section "Performance"
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def _s(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def rows(r: dict[str, Any]) -> list[str]:
    name = r["benchmark"]
    where = f"{r['date']} | {r['machine']} | `{r['command']}`"
    out = []
    if name.startswith("train_"):
        svp = r["svpkit"]
        mean = lambda runs, k: sum(float(x[k]) for x in runs) / len(runs)  # noqa: E731
        what = f"{r['model']}, {r['train_images']:,} images, {r['epochs']} ep."
        warm, comp = mean(svp, "warmup_seconds"), mean(svp, "compile_seconds")
        svp_txt = (
            f"svpkit {_s(mean(svp, 'total_seconds'))} s (warm-up {_s(warm)} s, compile {_s(comp)} s), "
            f"{_s(mean(svp, 'images_per_second'))} img/s, error {mean(svp, 'test_error'):.3f}"
        )
        plain = r["plain"]
        if plain:
            ext = " extrapolated" if plain[0]["extrapolated"] else ""
            plain_txt = (
                f"plain {_s(mean(plain, 'total_seconds'))} s{ext} ({r['plain_epochs']} ep. run), "
                f"{_s(mean(plain, 'images_per_second'))} img/s, error {mean(plain, 'test_error_after_epochs_run'):.3f}"
            )
            best = min(float(x["total_seconds"]) for x in plain) / min(float(x["total_seconds"]) for x in svp)
            ratio = (
                f"**{r['speedup_total']:.2f}×** total (mean), {best:.2f}× best-of-runs, "
                f"{r['speedup_images_per_second']:.2f}× img/s"
            )
            if r.get("cpu_seconds_ratio") == r.get("cpu_seconds_ratio") and "cpu_seconds_ratio" in r:
                ratio += f", {r['cpu_seconds_ratio']:.2f}× process CPU time"
        else:
            plain_txt, ratio = "plain not run", "-"
        proj = r["projected_181_epochs_full_cifar_seconds"]
        proj_txt = f"181 ep. × 50k projected: svpkit {_s(proj['svpkit'])} s, plain {_s(proj['plain'])} s"
        out.append(f"| {what} | {svp_txt}; {plain_txt}; {proj_txt} | {ratio} | {where} |")
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
        out.append(f"| {what} | {txt} | goal ≤ 2 % each | {where} |")
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
