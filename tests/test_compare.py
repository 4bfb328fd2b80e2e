"""svpkit compare: pairing proxy runs with baselines, speed-ups from logged timings, logged outputs.

The experiment is real: digits (a 300-example slice), tiny epochs, two seeds, a baseline
(digits_cnn selecting for itself), a proxy (digits_mlp) and random selection.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pytest
from typer.testing import CliRunner

from svpkit.analysis import compare, pairing, report
from svpkit.cli import app

EXPERIMENT = "digits-compare"
LEVELS = [30, 60]
SEEDS = ["0", "1"]
RUN_ARGS = [
    "--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--initial", "15",
    "--budgets", "30,60", "--proxy-epochs", "2", "--target-epochs", "2", "--device", "cpu",
]  # fmt: skip


@dataclass
class BuiltExperiment:
    uri: str
    root: Path
    name: str
    experiment_id: str
    run_ids: dict[tuple[str, str], str]  # (role, seed) -> run id


def build_digits_experiment(root: Path, name: str = EXPERIMENT) -> BuiltExperiment:
    """Baseline, proxy and random active-learning runs for two seeds in the current tracking store."""
    runner = CliRunner()
    run_ids: dict[tuple[str, str], str] = {}
    for seed in SEEDS:
        for role, selector, proxy in (
            ("baseline", "least_confidence", "digits_cnn"),
            ("proxy", "least_confidence", "digits_mlp"),
            ("random", "random", "digits_mlp"),
        ):
            args = ["active-learning", *RUN_ARGS, "--selector", selector, "--proxy", proxy, "--seed", seed]
            result = runner.invoke(app, [*args, "--experiment", name, "--quiet"])
            assert result.exit_code == 0, result.output
            exp = mlflow.get_experiment_by_name(name)
            last = mlflow.search_runs([exp.experiment_id], output_format="list", order_by=["start_time DESC"])[0]
            assert last.data.tags["svpkit.role"] == role
            run_ids[(role, seed)] = last.info.run_id
    exp = mlflow.get_experiment_by_name(name)
    return BuiltExperiment(mlflow.get_tracking_uri(), root, name, exp.experiment_id, run_ids)


@contextmanager
def isolated_store(root: Path) -> Iterator[str]:
    """A private sqlite tracking store (and artifact folder) under ``root``, cwd = ``root``."""
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME"):
            mp.delenv(var, raising=False)
        mlflow.set_tracking_uri(uri)
        try:
            yield uri
        finally:
            mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltExperiment]:
    root = tmp_path_factory.mktemp("compare")
    with isolated_store(root):
        yield build_digits_experiment(root)


def history(run_id: str, key: str) -> dict[int, float]:
    return {m.step: m.value for m in mlflow.MlflowClient().get_metric_history(run_id, key)}


def test_pairs_proxies_with_the_baseline_of_the_same_seed(built: BuiltExperiment) -> None:
    result = compare.compare_experiment(built.name)
    assert len(result.blocks) == 1
    block = result.blocks[0]
    assert block.levels == LEVELS
    assert block.train_size == "300"
    assert block.has_random
    assert [(r.selector, r.method, r.role) for r in block.rows] == [
        ("random", "—", "random"),
        ("least_confidence", "digits_cnn", "baseline"),
        ("least_confidence", "digits_mlp", "proxy"),
    ]
    assert all(sorted(r.seeds) == SEEDS for r in block.rows)
    assert not result.missing_baseline
    pairs = {(p.seed, p.level): p for p in block.pairs}
    assert sorted(pairs) == [(s, lvl) for s in SEEDS for lvl in LEVELS]
    for (seed, _), pair in pairs.items():
        assert pair.proxy_run_id == built.run_ids[("proxy", seed)]
        assert pair.baseline_run_id == built.run_ids[("baseline", seed)]


def test_speedups_are_the_ratios_of_the_logged_timings(built: BuiltExperiment) -> None:
    result = compare.compare_experiment(built.name)
    block = result.blocks[0]
    proxy_row = next(r for r in block.rows if r.role == "proxy")
    for level in LEVELS:
        ratios = []
        for seed in SEEDS:
            base = history(built.run_ids[("baseline", seed)], "selection/cumulative_seconds")[level]
            prox = history(built.run_ids[("proxy", seed)], "selection/cumulative_seconds")[level]
            pair = next(p for p in block.pairs if p.seed == seed and p.level == level)
            assert pair.baseline_seconds == base and pair.proxy_seconds == prox
            assert pair.speedup == pytest.approx(base / prox, rel=1e-12)
            ratios.append(base / prox)
        mean, std = proxy_row.cells[level].speedup  # type: ignore[misc]
        assert mean == pytest.approx(sum(ratios) / 2, rel=1e-12)
        assert std == pytest.approx(abs(ratios[0] - ratios[1]) / math.sqrt(2), rel=1e-9)
        errors = [history(built.run_ids[("random", s)], "target/test_error")[level] for s in SEEDS]
        random_row = block.rows[0]
        assert random_row.cells[level].error[0] == pytest.approx(sum(errors) / 2)  # type: ignore[index]


def test_compare_cli_logs_a_compare_run_that_is_never_compared(built: BuiltExperiment, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["compare", "--experiment", built.name])
    assert result.exit_code == 0, result.output
    assert "least_confidence" in result.output and "digits_mlp" in result.output
    assert "speed-up" in result.output
    client = mlflow.MlflowClient()
    runs = client.search_runs([built.experiment_id], "tags.`svpkit.loop` = 'compare'")
    assert runs, "no compare run logged"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.compared_runs"] == "6"
    assert "| least_confidence | digits_mlp |" in run.data.tags["mlflow.note.content"]
    files = {f.path for f in client.list_artifacts(run.info.run_id, "comparison")}
    figures = {f.path for f in client.list_artifacts(run.info.run_id, "figures")}
    assert {"comparison/table.md", "comparison/table.csv", "comparison/pairs.csv", "comparison/summary.json"} <= files
    assert {"figures/compare_error_vs_labeled.png", "figures/compare_speedup.png"} <= figures
    pairs_csv = Path(client.download_artifacts(run.info.run_id, "comparison/pairs.csv", str(tmp_path))).read_text()
    assert len(pairs_csv.strip().splitlines()) == 1 + len(SEEDS) * len(LEVELS)
    speedups = history(run.info.run_id, "speedup/least_confidence/digits_mlp")
    assert sorted(speedups) == LEVELS
    # A second comparison sees the same six runs: compare runs are not compared.
    again = compare.compare_experiment(built.name)
    assert sorted(again.compared_run_ids) == sorted(built.run_ids.values())
    assert not again.ignored


def test_compare_json_output(built: BuiltExperiment) -> None:
    result = CliRunner().invoke(app, ["compare", "--experiment", built.name, "--no-log", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    header, rows = doc["tables"][0]["header"], doc["tables"][0]["rows"]
    assert header[:3] == ["selector", "selector model", "seeds"]
    assert [r[1] for r in rows] == ["—", "digits_cnn (baseline)", "digits_mlp"]


def test_proxy_without_baseline_is_listed_not_dropped(built: BuiltExperiment) -> None:
    records, _ = compare.load_runs(built.experiment_id)
    kept = [r for r in records if not (r.role == "baseline" and r.seed == "1")]
    result = pairing.compare_records(kept, built.experiment_id, built.name)
    missing = result.missing_baseline
    assert [r.run_id for r in missing] == [built.run_ids[("proxy", "1")]]
    proxy_row = next(r for r in result.blocks[0].rows if r.role == "proxy")
    assert sorted(proxy_row.seeds) == SEEDS  # its errors still count
    assert len(proxy_row.cells[LEVELS[0]].speedups) == 1
    markdown = report.to_markdown(result)
    assert "Proxy runs without a baseline" in markdown and built.run_ids[("proxy", "1")] in markdown
    no_random = pairing.compare_records([r for r in records if r.role != "random"], "", "x")
    assert not no_random.blocks[0].has_random
    assert any("no random-selection" in line for line in report.summary_lines(no_random))


def _record(**kw: object) -> pairing.ComparedRun:
    base = pairing.ComparedRun(
        run_id="r",
        name="",
        loop="core_set",
        role="proxy",
        dataset="cifar10",
        selector="forgetting_events",
        selector_model="preact_resnet20",
        target_model="preact_resnet164",
        seed="0",
        budgets="25000",
        train_size="50000",
        proxy_epochs="181",
        start_time=0,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_core_set_runs_pair_by_subset_size_and_keep_the_newest_duplicate() -> None:
    records = [
        _record(run_id="b", role="baseline", selector_model="preact_resnet164", selection={25000: 100.0},
                errors={25000: 0.06}),
        _record(run_id="old", selection={25000: 50.0}, errors={25000: 0.5}, start_time=1),
        _record(run_id="p", selection={25000: 20.0}, errors={25000: 0.07}, end_to_end={25000: 1.6}, start_time=2),
        _record(run_id="b30", role="baseline", selector_model="preact_resnet164", budgets="30000",
                selection={30000: 90.0}),
    ]  # fmt: skip
    result = pairing.compare_records(records)
    assert [p.speedup for p in result.pairs] == [5.0]
    assert result.pairs[0].proxy_run_id == "p" and result.pairs[0].baseline_run_id == "b"
    assert [i[0] for i in result.ignored] == ["old"]
    block = result.blocks[0]
    assert block.levels == [25000, 30000]
    header, rows = report.block_table_rows(block)
    assert header[-1] == "end-to-end speed-up"
    proxy = next(r for r in rows if "preact_resnet20" in r[1])
    assert proxy[-1] == "1.6×"
    assert "5.0×" in proxy


def test_unknown_experiment_is_one_clear_error(tmp_path: Path, tracking_uri: str) -> None:
    result = CliRunner().invoke(app, ["compare", "--experiment", "no-such-experiment"])
    assert result.exit_code == 2
    assert "error: no experiment named 'no-such-experiment'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.slow
def test_compare_mlproject_entry(built: BuiltExperiment) -> None:
    root = Path(__file__).resolve().parents[1]
    submitted = mlflow.projects.run(
        str(root),
        entry_point="compare",
        experiment_name=built.name,
        env_manager="local",
        synchronous=True,
    )
    run = mlflow.MlflowClient().get_run(submitted.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["svpkit.loop"] == "compare"
    assert run.data.tags["svpkit.compared_runs"] == "6"
    assert os.path.basename(run.info.artifact_uri) == "artifacts"
