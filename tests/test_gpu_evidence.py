"""The GPU evidence script (benchmarks/gpu_evidence.sh) in its CPU mode, end to end, and its parts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import evidence_al, evidence_data  # noqa: E402

RUNTIME_FILES = ["gpu_evidence.sh", "gpu_evidence.py", "evidence_al.py", "evidence_data.py"]


def test_packing_is_lossless(tmp_path: Path) -> None:
    evidence_data.synthetic(tmp_path / "src", train=40, test=8, seed=3)
    sizes = evidence_data.pack_cifar(tmp_path / "src", tmp_path / "packs")
    assert set(sizes) == set(evidence_data.CIFAR_FILES)
    data = evidence_data.unpack_cifar(tmp_path / "packs", tmp_path / "cifar10")
    for source, unpacked in evidence_data.CIFAR_FILES.items():
        with np.load(tmp_path / "src" / source) as want, np.load(data / unpacked) as got:
            assert got["x"].dtype == np.uint8
            np.testing.assert_array_equal(got["x"], want["x"])
            np.testing.assert_array_equal(got["y"], want["y"])


def test_epochs_are_chosen_to_fit_the_budget() -> None:
    ips = {evidence_al.PROXY: 30_000.0, evidence_al.TARGET: 12_000.0}
    plan = evidence_al.plan_epochs(16_667, ips, budget_s=330.0)
    assert plan["proxy_epochs"] == max(1, plan["target_epochs"] // 3)
    assert (
        plan["estimated_seconds"] <= 330.0 < evidence_al.plan_epochs(16_667, ips, 1e9, most=10**6)["estimated_seconds"]
    )
    assert evidence_al.plan_epochs(16_667, ips, budget_s=1.0)["target_epochs"] == 1
    roles = evidence_al.runs(Path("/data"), "cuda", 5, 15, "full")
    assert roles["baseline"][roles["baseline"].index("--proxy") + 1] == evidence_al.TARGET


def test_device_side_needs_nothing_outside_the_checkout() -> None:
    for name in RUNTIME_FILES:
        assert "shared" not in (ROOT / "benchmarks" / name).read_text(), name
    for staged in (".whl/evidence/x.whl", ".devdata/evidence/x.npz.xz"):
        ignored = subprocess.run(["git", "check-ignore", "-q", staged], cwd=ROOT)
        assert ignored.returncode == 0, f"{staged} is not git-ignored"


@pytest.mark.slow
def test_cpu_tiny_mode_runs_every_stage(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = tmp_path / "out"
    cmd = ["bash", "benchmarks/gpu_evidence.sh", "all", "--device", "cpu", "--tiny", "--out", str(out)]
    # A generous budget: a loaded CI machine must not skip stages (on a quiet one this takes about a minute).
    result = subprocess.run([*cmd, "--budget-s", "1500"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "svpkit GPU evidence (cpu, tiny)" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    stages = json.loads((tmp_path / "out/work/results/part1_stages.json").read_text())
    assert {name: stage.get("rc") for name, stage in stages.items()} == {
        "k_center": 0,
        "train_resnet20": 0,
        "gpu_tests": 0,
        "streaming": 0,
    }
    for name in ("k_center_cpu", "train_preact_resnet20_cpu", "data_scale_cpu", "active_learning", "machine"):
        assert (out / f"{name}.json").is_file(), name
    train = json.loads((out / "train_preact_resnet20_cpu.json").read_text())
    assert train["flops_per_image"] > 0 and train["arms"][0]["roofline"]["achieved_gflops"] > 0
    al = json.loads((out / "active_learning.json").read_text())
    assert all(run.get("rc") == 0 for run in al["runs"].values()), al["runs"]
    table = {row["role"]: row for row in al["table"]}
    assert set(table) == {"random", "proxy", "baseline"}
    assert all(row["status"] == "FINISHED" and len(row["target_error"]) == 2 for row in table.values())
    assert (out / "mlflow.db").is_file()
    stream = {r["arm"]: r for r in json.loads((out / "data_scale_cpu.json").read_text())["results"]}
    assert set(stream) == {"svpkit stream", "plain"} and all(r["images"] == 48 for r in stream.values())
    assert any(row[0].startswith("streamed ImageNet-layout JPEGs (48 at 32 px") for row in summary["rows"])
    assert any(row[0].startswith("AL proxy") for row in summary["rows"])
