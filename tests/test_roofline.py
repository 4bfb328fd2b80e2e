"""The roofline column: no bf16 peak (and no bf16 fraction) on a CPU without native bf16."""

from __future__ import annotations

import pytest
import torch

from benchmarks import roofline as rf
from benchmarks.bench_train import summarise_arms
from benchmarks.table_format import _roofline


def test_a_cpu_without_native_bf16_has_no_bf16_peak_and_no_fraction(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("svpkit.learners.acceleration.cpu_has_native_bf16", lambda: False)
    peaks = rf.measure_peaks(torch.device("cpu"), n=64, min_seconds=0.0)
    assert peaks["bfloat16"]["gflops"] is None and peaks["float32"]["gflops"] > 0
    runs = [{"images_per_second": 100.0, "total_seconds": 1.0, "precision": "float32", "compiled": False}]
    arms = [{"label": "svpkit", "runs": runs}]
    summarise_arms(arms, [], 1e9, peaks)
    assert arms[0]["roofline"]["fraction_of_bf16_peak"] is None
    assert arms[0]["roofline"]["fraction_of_peak"] == pytest.approx(100.0 / peaks["float32"]["gflops"])
    assert rf.percent_text(None) == "—" and rf.peak_text(peaks["bfloat16"]) == "—"
    assert "—" in _roofline({"achieved_gflops": 5.0, "fraction_of_peak": None}, "bf16")


def test_a_cpu_with_native_bf16_measures_its_peak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("svpkit.learners.acceleration.cpu_has_native_bf16", lambda: True)
    peaks = rf.measure_peaks(torch.device("cpu"), n=32, min_seconds=0.0)
    assert peaks["bfloat16"]["gflops"] > 0
    assert rf.roofline(2e9, 1.0, 4.0)["fraction_of_peak"] == pytest.approx(0.5)
