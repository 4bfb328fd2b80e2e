"""Everything the GPU machine measures for svpkit, in two device calls run back to back.

Part 1: the GPU tests (``pytest -m gpu``), greedy k-center 1,000,000 × 512 picking 100,000 (goal
≤ 60 s, extra memory O(N)) and ResNet20 svpkit vs the plain pipeline on one CIFAR-10 training
part (16,667 images; eager and compiled), projected to 181 epochs × 50,000 with the roofline
column, then (when time is left) one short ImageNet-layout streaming step: synthetic 224-px JPEGs
written on the machine, scored once through svpkit's streamed image folder and through the plain
torchvision ``ImageFolder`` + ``DataLoader`` at the same workers (``bench_data_scale.py``). Part 2: a real SVP active-learning table on that part (``benchmarks/evidence_al.py``)
logged to ``$OUT/mlflow.db``, then one summary table of both parts. Each part keeps to
``--budget-s`` (a stage that no longer fits is skipped and says so) and writes its JSON to
``--out`` and to the work folder, from which part 2's summary also reads part 1's.

On the device (staged here by ``benchmarks/stage_gpu_evidence.sh``; each call carries
``[".whl/evidence", ".devdata/evidence"]``): ``bash benchmarks/gpu_evidence.sh 1``, then
``bash benchmarks/gpu_evidence.sh 2``. In CI: ``bash benchmarks/gpu_evidence.sh all --device cpu
--tiny --out DIR`` runs every stage end to end at toy sizes on synthetic data (under a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import evidence_al, evidence_data  # noqa: E402
from benchmarks.common import print_table  # noqa: E402

K_CENTER = {
    "full": "--n 1000000 --dim 512 --k 100000 --matrix-k 2000 --stream-k 50".split(),
    "tiny": "--n 4000 --dim 32 --initial 10 --k 40 --repeats 1".split(),
}
TRAIN = {
    "full": "--train-size 0 --test-size 0 --epochs 10 --plain-epochs 2 --workers 4".split(),
    "tiny": "--train-size 96 --test-size 32 --epochs 1 --plain-epochs 1 --workers 0 --peak-size 512".split(),
}
TRAIN_ARMS = {"full": ["", "compile=on"], "tiny": [""]}
STREAM = {
    "full": "--pools 4000 --size 224 --workers 8".split(),
    "tiny": "--pools 48 --size 32 --workers 2".split(),
}
K_CENTER_GOAL_S = 60.0
# Both calls and the machine's start fit the 15 device-minutes a session gets: 5.5 minutes a part.
PART_BUDGET_S = 330.0
NEED_S = {
    "gpu_tests": 45.0,
    "k_center": 90.0,
    "train_resnet20": 100.0,
    "streaming": 60.0,
}  # least time to start a stage (GPU)
SUMMARY_RESERVE_S = 30.0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=["1", "2", "all"])
    p.add_argument("--device", default="cuda", help="cuda (the GPU machine) or cpu (with --tiny: CI)")
    p.add_argument("--tiny", action="store_true", help="toy sizes on synthetic data: the script's own test")
    p.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "benchmarks/results/tmp/gpu_evidence")))
    p.add_argument("--work", default="", help="kept between the calls (default /tmp/svpkit-evidence; tiny: OUT/work)")
    p.add_argument("--budget-s", type=float, default=0.0, help=f"seconds for this part (default {PART_BUDGET_S:.0f})")
    p.add_argument("--al-budget-s", type=float, default=240.0, help="seconds for the three active-learning runs")
    return p.parse_args()


class Evidence:
    """One call's stages: each a subprocess with what is left of the part's time budget."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size = "tiny" if args.tiny else "full"
        self.out = Path(args.out).resolve()
        self.work = Path(args.work or (self.out / "work" if args.tiny else "/tmp/svpkit-evidence")).resolve()
        self.results = self.work / "results"
        for folder in (self.out, self.results):
            folder.mkdir(parents=True, exist_ok=True)
        self.deadline = time.monotonic() + (args.budget_s or PART_BUDGET_S)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(self.work / "site"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
        }
        self.stages: dict[str, Any] = {}

    def left(self) -> float:
        return self.deadline - time.monotonic() - SUMMARY_RESERVE_S

    def run(self, name: str, command: list[str], need_s: float, cwd: Path | None = None) -> bool:
        """Run ``command`` (logged to ``<out>/<name>.log``) when ``need_s`` still fits; its outcome."""
        if self.left() < need_s:
            self.stages[name] = {"skipped": f"needs about {need_s:.0f} s, {self.left():.0f} s left"}
            print(f"{name}: skipped ({self.stages[name]['skipped']})", flush=True)
            return False
        t0 = time.monotonic()
        with open(self.out / f"{name}.log", "w") as log:
            try:
                rc: Any = subprocess.run(
                    command, cwd=cwd or ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, timeout=self.left()
                ).returncode
            except subprocess.TimeoutExpired:
                rc = "timed out"
        seconds = time.monotonic() - t0
        self.stages[name] = {"rc": rc, "seconds": seconds, "command": command[1:], "last_line": _tail_line(log.name)}
        print(f"{name}: rc {rc} in {self.stages[name]['seconds']:.0f} s", flush=True)
        return rc == 0

    def prepare(self) -> Path:
        """The CIFAR-10 folder (unpacked; synthetic when tiny), and mlflow from the staged wheels
        where the machine lacks it (installed in the work folder, for the stages and this process)."""
        data = self.work / "cifar10"
        packs = ROOT / ".devdata/evidence"
        if self.args.tiny:
            packs = self.work / "packs"
            evidence_data.pack_cifar(evidence_data.synthetic(self.work / "synthetic", train=96, test=32), packs)
        evidence_data.unpack_cifar(packs, data)
        site = self.work / "site"
        wheels = sorted((ROOT / ".whl/evidence").glob("*.whl"))
        if wheels and not _importable("mlflow", self.env):
            pip = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
            subprocess.run([*pip, "--target", str(site), *map(str, wheels)], check=True)
        sys.path.insert(0, str(site))
        return data

    def save(self, name: str, payload: Any) -> None:
        for folder in (self.out, self.results):
            (folder / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def _importable(module: str, env: dict[str, str]) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True).returncode == 0


def part_one(ev: Evidence, data: Path) -> None:
    py, dev, size = sys.executable, ev.args.device, ev.size
    smi = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True) if dev == "cuda" else None
    ev.save("machine", {"nvidia_smi": smi.stdout if smi else "", "cpu_count": os.cpu_count(), "device": dev})
    kc_out, tr_out = ev.out / f"k_center_{dev}.json", ev.out / f"train_preact_resnet20_{dev}.json"
    gpu_tests = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py") if "mark.gpu" in p.read_text()
    )
    need = NEED_S if size == "full" else dict.fromkeys(NEED_S, 5.0)
    tests = [py, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", *gpu_tests]
    ev.run("gpu_tests", tests, need["gpu_tests"])
    kc = [py, "benchmarks/bench_k_center.py", "--device", dev, *K_CENTER[size], "--out", str(kc_out)]
    ev.run("k_center", kc, need["k_center"])
    train = [py, "benchmarks/bench_train.py", "--device", dev, "--data", str(data), "--repeats", "1", *TRAIN[size]]
    ev.run("train_resnet20", [*train, "--arms", *TRAIN_ARMS[size], "--out", str(tr_out)], need["train_resnet20"])
    st_out = ev.out / f"data_scale_{dev}.json"
    stream = [py, "benchmarks/bench_data_scale.py", "--device", dev, "--cifar", "0", *STREAM[size]]
    stream += ["--arms", "svpkit stream,plain", "--scratch", str(ev.work / "jpegs"), "--out", str(st_out)]
    ev.run("streaming", stream, need["streaming"])
    for path in (kc_out, tr_out, st_out):
        if path.is_file():
            (ev.results / path.name).write_text(path.read_text())
    ev.save("part1_stages", ev.stages)


def part_two(ev: Evidence, data: Path) -> None:
    n_train = len(_labels(data / "train_part0.npz"))
    if ev.args.tiny:
        plan: dict[str, Any] = evidence_al.TINY_PLAN
    else:
        ips = {m: evidence_al.throughput(m, data, ev.args.device) for m in (evidence_al.PROXY, evidence_al.TARGET)}
        plan = evidence_al.plan_epochs(n_train, ips, min(ev.args.al_budget_s, ev.left()))
    print(f"active learning on {n_train} images: {plan}", flush=True)
    commands = evidence_al.runs(data, ev.args.device, plan["proxy_epochs"], plan["target_epochs"], ev.size)
    done = evidence_al.run_all(commands, ev.out, ev.env, ev.deadline - SUMMARY_RESERVE_S)
    ev.save(
        "active_learning", {"plan": plan, "train_images": n_train, "runs": done, "table": evidence_al.al_table(ev.out)}
    )


def _labels(path: Path) -> Any:
    import numpy as np

    with np.load(path) as z:
        return z["y"]


def _load(folder: Path, name: str) -> dict[str, Any]:
    path = folder / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _tail_line(log: str) -> str:
    path = Path(log)
    lines = path.read_text().strip().splitlines() if path.is_file() else []
    return lines[-1][:100] if lines else "no log"


def k_center_rows(kc: dict[str, Any]) -> list[list[str]]:
    rm = kc["runs"]["running-min"][-1]
    bf = (kc["runs"].get("running-min bf16") or [{"seconds": float("nan")}])[-1]
    verdict = "meets" if rm["seconds"] <= K_CENTER_GOAL_S else "misses"
    memory = f"extra {rm['extra_bytes'] / 2**20:,.1f} MiB"
    if rm.get("peak_bytes"):
        memory += f", peak {rm['peak_bytes'] / 2**30:.1f} GiB"
    ratio = kc["speedup_per_pick_matrix_over_running_min"]
    return [
        [
            f"k-center {kc['n']:,} × {kc['dim']} → {kc['picks']:,}",
            f"{rm['seconds']:.1f} s ({verdict} ≤ {K_CENTER_GOAL_S:.0f} s), bf16 storage {bf['seconds']:.1f} s",
            f"{memory}; N×k matrix {ratio:.1f}× slower per pick",
        ]
    ]


def train_rows(tr: dict[str, Any]) -> list[list[str]]:
    proj = tr["projected_181_epochs_full_cifar_seconds"]
    rows = []
    if tr["plain"]:
        pr = tr["plain_roofline"]
        rows.append(
            [
                f"ResNet20 plain, {tr['train_images']:,} images",
                f"{tr['plain'][0]['images_per_second']:,.0f} img/s",
                f"181 ep. × 50k: {proj['plain']:,.0f} s; {pr['achieved_gflops']:,.0f} GFLOP/s "
                f"({100 * pr['fraction_of_peak']:.1f} % fp32 peak)",
            ]
        )
    for arm in tr["arms"]:
        rl, run = arm["roofline"], arm["runs"][0]
        rows.append(
            [
                f"ResNet20 {arm['label']}, {tr['epochs']} ep.",
                f"{run['images_per_second']:,.0f} img/s, {arm['speedup_total']:.2f}× plain, "
                f"error {run['test_error']:.3f}",
                f"181 ep. × 50k: {proj[arm['label']]:,.0f} s; {rl['achieved_gflops']:,.0f} GFLOP/s "
                + (
                    f"({100 * rl['fraction_of_bf16_peak']:.1f} % bf16 peak)"
                    if rl.get("fraction_of_bf16_peak") is not None
                    else "(no bf16 peak on this device)"
                ),
            ]
        )
    return rows


def al_rows(al: dict[str, Any]) -> list[list[str]]:
    rows = []
    for run in al.get("table", []):
        levels = sorted((int(step), err) for step, err in run["target_error"].items())
        errors = ", ".join(f"{step:,}: {100 * err:.1f} %" for step, err in levels)
        rows.append(
            [
                f"AL {run['role']} ({run['selector']} via {run['selector_model']}), {run['status']}",
                f"target error {errors or '-'}",
                f"selection {run['selection_seconds']:,.1f} s, target training "
                f"{run['target_train_seconds']:,.0f} s, amp {run['amp']}",
            ]
        )
    plan = al["plan"]
    chosen = f"target {plan['target_epochs']}, proxy {plan['proxy_epochs']}"
    rows.append(["AL epochs (chosen to fit)", chosen, f"images/s {plan['images_per_second']}"])
    return rows


def stream_rows(st: dict[str, Any]) -> list[list[str]]:
    """Images/s scoring the synthetic JPEG pool: streamed vs the plain pipeline."""
    arms = {r["arm"]: r for r in st["results"]}
    s, p = arms["svpkit stream"], arms["plain"]
    what = f"streamed ImageNet-layout JPEGs ({s['images']:,} at {s['size']} px, {s['workers']} workers)"
    detail = f"plain ImageFolder {p['images_per_second']:,.0f} img/s; peak USS {s['peak_rss_mib']:,.0f} vs {p['peak_rss_mib']:,.0f} MiB"
    ratio = s["images_per_second"] / p["images_per_second"]
    return [[what, f"{s['images_per_second']:,.0f} img/s ({ratio:.2f}× plain)", detail]]


def summary_rows(ev: Evidence) -> list[list[str]]:
    """One row per measurement of both parts (from the work folder's results)."""
    stages = {**_load(ev.results, "part1_stages"), **ev.stages}
    tests = stages.get("gpu_tests") or {}
    rows = [["GPU tests (-m gpu)", _outcome(tests), tests.get("last_line", "-")]]
    kc = _load(ev.results, f"k_center_{ev.args.device}")
    rows += k_center_rows(kc) if kc else [["k-center", _outcome(stages.get("k_center")), "-"]]
    tr = _load(ev.results, f"train_preact_resnet20_{ev.args.device}")
    rows += train_rows(tr) if tr else [["ResNet20 svpkit vs plain", _outcome(stages.get("train_resnet20")), "-"]]
    st = _load(ev.results, f"data_scale_{ev.args.device}")
    rows += stream_rows(st) if st else [["streamed ImageNet-layout JPEGs", _outcome(stages.get("streaming")), "-"]]
    al = _load(ev.results, "active_learning")
    rows += al_rows(al) if al else [["active learning", "not run", "-"]]
    return rows


def _outcome(stage: dict[str, Any] | None) -> str:
    if not stage:
        return "not run"
    if "skipped" in stage:
        return f"skipped: {stage['skipped']}"
    return "passed" if stage["rc"] == 0 else f"failed (rc {stage['rc']})"


def main() -> None:
    args = parse_args()
    ev = Evidence(args)
    started = time.monotonic()
    data = ev.prepare()
    if args.part in ("1", "all"):
        part_one(ev, data)
    if args.part in ("2", "all"):
        part_two(ev, data)
        rows = summary_rows(ev)
        ev.save("summary", {"rows": rows, "stages": ev.stages, "seconds": time.monotonic() - started})
        print_table(
            f"svpkit GPU evidence ({args.device}{', tiny' if args.tiny else ''})", ["what", "result", "detail"], rows
        )
    print(f"done in {time.monotonic() - started:.0f} s; results in {ev.out}")


if __name__ == "__main__":
    main()
