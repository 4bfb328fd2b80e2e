"""Runs record where they computed; compare and correlate say when runs side by side computed differently."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
from test_compare import isolated_store, log_hand_made_run
from typer.testing import CliRunner

from svpkit.analysis import compare, correlation
from svpkit.analysis.environments import environment_label, mixed_environments_note
from svpkit.cli import app
from svpkit.contract import Tag
from svpkit.runtime import numerics_fingerprint

LEVELS = {100: 0.30, 200: 0.20, 400: 0.10}


def _tags(capability: str) -> dict[str, str]:
    return {
        Tag.CPU_CAPABILITY: capability,
        Tag.NUMERICS: "native",
        Tag.MATH_LIBRARIES: "torch 2.14.1, MKL 2024.2, oneDNN 3.12.0, numpy 2.4",
        Tag.HARDWARE: "cpu: Some CPU (linux)",
    }


def test_this_process_fingerprint_names_its_kernels_and_libraries() -> None:
    found = numerics_fingerprint("cpu")
    assert found["cpu_capability"] in {"DEFAULT", "AVX2", "AVX512", "SVE256", "ZVECTOR", "VSX"}
    assert found["numerics"] in {"portable", "native"}
    assert found["math_libraries"].startswith("torch ") and "numpy" in found["math_libraries"]
    assert found["hardware"].startswith("cpu: ")


def test_compare_notes_runs_from_different_capabilities(tmp_path: Path) -> None:
    with isolated_store(tmp_path):
        exp = mlflow.create_experiment("mixed")
        client = mlflow.MlflowClient()
        ids = []
        for seed in ("0", "1"):
            for role, selector, model, shift in (
                ("random", "random", "none", 0.0),
                ("baseline", "least_confidence", "digits_cnn", -0.02),
                ("proxy", "least_confidence", "digits_mlp", -0.01),
            ):
                errors = {k: v + shift for k, v in LEVELS.items()}
                ids.append(log_hand_made_run(exp, role, selector, model, seed, errors, worst=False))
        for run_id in ids:
            for key, value in _tags("AVX2").items():
                client.set_tag(run_id, key, value)
        assert compare.compare_experiment("mixed").notes == []

        client.set_tag(ids[-1], Tag.CPU_CAPABILITY, "AVX512")
        result = compare.compare_experiment("mixed")
        assert len(result.notes) == 1
        assert "2 different environments" in result.notes[0] and "AVX512" in result.notes[0]
        assert "5 on cpu: Some CPU (linux) · AVX2" in result.notes[0]
        printed = CliRunner().invoke(app, ["compare", "--experiment", "mixed", "--no-log"])
        assert printed.exit_code == 0, printed.output
        assert "note: the compared runs ran in 2 different environments" in " ".join(printed.output.split())
        as_json = CliRunner().invoke(app, ["compare", "--experiment", "mixed", "--json", "--no-log"])
        assert json.loads(as_json.stdout)["notes"] == result.notes


def test_correlate_notes_rankings_from_different_environments() -> None:
    scores = np.linspace(0, 1, 20)
    same = [
        correlation.RankingSource(f"r{i}", np.arange(20), scores + i, run_id=f"id{i}", environment="cpu · AVX2")
        for i in range(2)
    ]
    assert correlation.correlate(correlation.RankingSet(same), [5]).notes == []
    mixed = [*same, correlation.RankingSource("gpu", np.arange(20), scores[::-1], run_id="g", environment="cuda: H200")]
    (note,) = correlation.correlate(correlation.RankingSet(mixed), [5]).notes
    assert "compared rankings ran in 2 different environments" in note and "cuda: H200" in note


def test_runs_without_recorded_environment_are_named_so() -> None:
    assert environment_label({}) == "not recorded"
    assert mixed_environments_note({"a": "x", "b": "x"}) is None
