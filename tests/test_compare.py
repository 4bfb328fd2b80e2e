"""svpkit compare: pairing proxy runs with baselines, speed-ups from logged timings, logged outputs,
intervals, paired differences, curve areas and verdicts.

The first experiment is real: digits (a 300-example slice), tiny epochs, two seeds, a baseline
(digits_cnn selecting for itself), a proxy (digits_mlp) and random selection. The statistics are
checked on hand-made runs logged to a temporary store, with errors chosen around the verdicts'
boundaries, against scipy.stats.
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
import numpy as np
import pytest
from scipy import integrate, stats
from typer.testing import CliRunner

from svpkit.analysis import compare, figures, pairing, report
from svpkit.cli import app
from svpkit.contract import ACTIVE_LEARNING, Metric, Tag

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
        speedup = proxy_row.cells[level].speedup
        assert speedup is not None and speedup.mean == pytest.approx(sum(ratios) / 2, rel=1e-12)
        half_width = stats.t.ppf(0.975, 1) * abs(ratios[0] - ratios[1]) / 2
        assert speedup.half_width == pytest.approx(half_width, rel=1e-9)
        errors = [history(built.run_ids[("random", s)], "target/test_error")[level] for s in SEEDS]
        random_error = block.rows[0].cells[level].error
        assert random_error is not None and random_error.mean == pytest.approx(sum(errors) / 2)


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
    assert header[-3:] == ["end-to-end speed-up", "AUC", "verdict"]
    proxy = next(r for r in rows if "preact_resnet20" in r[1])
    assert proxy[-3] == "1.6×"
    assert proxy[-1] == "inconclusive (1 seed)"  # one seed against the baseline, no random runs
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


# -- intervals, paired differences, curve areas and verdicts on hand-made runs ------------------------
HAND_LEVELS = [100, 200, 400]
HAND_TRAIN = 1000
HAND_SEEDS = ["0", "1", "2"]
SPREAD = np.array([-1.0, 0.0, 1.0])  # per-seed pattern of an offset: standard deviation = its scale
T3 = float(stats.t.ppf(0.975, 2))  # the 95 % t quantile for three seeds
MARGIN = 1e-4  # how far each designed interval end lies from its verdict's boundary


def _half(scale: float) -> float:
    return T3 * scale / math.sqrt(3)  # the 95 % half-width of offsets scale * SPREAD


def random_error(level: int, seed: int) -> float:
    return {100: 0.30, 200: 0.20, 400: 0.15}[level] + [0.0, 0.01, -0.005][seed] + 0.002 * seed * level / 100


# Per-seed offsets from the random run of the same seed, the same at every level, so that the
# paired differences of errors and of curve areas equal them (up to rounding). Ends of the intervals
# that decide a verdict sit MARGIN either side of its boundary.
BASE_LC = -_half(0.004) - MARGIN + 0.004 * SPREAD  # upper end vs random: -MARGIN -> beats random
BASE_GK = -_half(0.002) + MARGIN + 0.002 * SPREAD  # upper end vs random: +MARGIN -> inconclusive
OFFSETS: dict[tuple[str, str, str], np.ndarray] = {
    ("baseline", "least_confidence", "digits_cnn"): BASE_LC,
    ("baseline", "greedy_k_center", "digits_cnn"): BASE_GK,
    # proxy − baseline: upper end 1 point - MARGIN -> matches
    ("proxy", "least_confidence", "p_match"): BASE_LC + 0.01 - _half(0.002) - MARGIN + 0.002 * SPREAD,
    # upper end 1 point + MARGIN, lower end below 0; vs random: upper end above 0 -> inconclusive
    ("proxy", "least_confidence", "p_over"): BASE_LC + 0.01 + MARGIN - _half(0.003) + 0.003 * SPREAD,
    # lower end +MARGIN -> worse than baseline
    ("proxy", "least_confidence", "p_worse"): BASE_LC + _half(0.002) + MARGIN + 0.002 * SPREAD,
    # vs baseline wide (inconclusive); vs random: upper end -MARGIN -> beats random, +MARGIN -> inconclusive
    ("proxy", "least_confidence", "p_cheap"): BASE_LC - 0.008 * SPREAD,
    ("proxy", "least_confidence", "p_unsure"): BASE_LC + 2 * MARGIN - 0.008 * SPREAD,
}
EXPECTED_VERDICTS = {
    "random": "reference",
    "greedy_k_center · digits_cnn (baseline)": "inconclusive (3 seeds)",
    "least_confidence · digits_cnn (baseline)": "beats random",
    "least_confidence · p_cheap": "beats random",
    "least_confidence · p_match": "matches baseline (within 1 point)",
    "least_confidence · p_over": "inconclusive (3 seeds)",
    "least_confidence · p_unsure": "inconclusive (3 seeds)",
    "least_confidence · p_worse": "worse than baseline",
}


def log_hand_made_run(
    experiment_id: str, role: str, selector: str, model: str, seed: str, errors: dict[int, float], worst: bool
) -> str:
    """A FINISHED active-learning run with the tags compare reads and the given errors per level."""
    client = mlflow.MlflowClient()
    tags = {Tag.LOOP: ACTIVE_LEARNING.name, Tag.ROLE: role, Tag.SELECTOR: selector, Tag.SELECTOR_MODEL: model}
    tags |= {Tag.TARGET_MODEL: "digits_cnn", Tag.SEED: seed, Tag.BUDGETS: "100,200,400", Tag.DATASET: "digits"}
    run_id = client.create_run(experiment_id, tags=tags, run_name=f"{role}-{selector}-{model}-s{seed}").info.run_id
    client.log_param(run_id, "train_size", str(HAND_TRAIN))
    seconds_per_level = {"digits_cnn": 10.0, "none": 0.0}.get(model, 1.0)
    for i, (level, error) in enumerate(errors.items()):
        client.log_metric(run_id, Metric.TARGET_ERROR, error, step=level)
        client.log_metric(run_id, Metric.SELECTION_CUMULATIVE_SECONDS, seconds_per_level * (i + 1), step=level)
        if worst:
            client.log_metric(run_id, Metric.WORST_CLASS_ERROR, 2 * error, step=level)
    client.set_terminated(run_id)
    return run_id


def build_hand_made(name: str, seeds: list[str]) -> None:
    """Random, two baselines and five proxies; only random and the least-confidence baseline log the worst class."""
    experiment_id = mlflow.create_experiment(name)
    for seed in seeds:
        s = int(seed)
        log_hand_made_run(experiment_id, "random", "random", "none", seed, _curve(s, 0.0), worst=True)
        for (role, selector, model), offsets in OFFSETS.items():
            worst = model == "digits_cnn" and selector == "least_confidence"
            log_hand_made_run(experiment_id, role, selector, model, seed, _curve(s, float(offsets[s])), worst)


def _curve(seed: int, offset: float) -> dict[int, float]:
    return {level: random_error(level, seed) + offset for level in HAND_LEVELS}


@pytest.fixture(scope="module")
def hand_made(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("hand_made")
    with isolated_store(root):
        build_hand_made("hand-made", HAND_SEEDS)
        build_hand_made("one-seed", ["0"])
        yield "hand-made"


def _rows(result: pairing.Comparison) -> dict[str, pairing.Row]:
    (block,) = result.blocks
    return {row.label: row for row in block.rows}


def _trapezoid_area(errors: list[float]) -> float:
    fractions = np.array(HAND_LEVELS) / HAND_TRAIN
    return float(integrate.trapezoid(errors, fractions) / (fractions[-1] - fractions[0]))


def test_cells_and_paired_differences_agree_with_scipy(hand_made: str) -> None:
    rows = _rows(compare.compare_experiment(hand_made))
    random_row, base = rows["random"], rows["least_confidence · digits_cnn (baseline)"]
    proxy = rows["least_confidence · p_over"]
    for level in HAND_LEVELS:
        values = [proxy.cells[level].errors[s] for s in HAND_SEEDS]
        low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
        cell = proxy.cells[level].error
        assert cell is not None and cell.n == 3
        assert (cell.low, cell.high) == (pytest.approx(low), pytest.approx(high))
        for other, diff in ((base, proxy.cells[level].vs_baseline), (random_row, proxy.cells[level].vs_random)):
            ci = stats.ttest_rel(values, [other.cells[level].errors[s] for s in HAND_SEEDS]).confidence_interval(0.95)
            assert diff is not None and diff.seeds == tuple(HAND_SEEDS)
            assert (diff.interval.low, diff.interval.high) == (pytest.approx(ci.low), pytest.approx(ci.high))
    areas = {
        label: [_trapezoid_area([row.cells[lvl].errors[s] for lvl in HAND_LEVELS]) for s in HAND_SEEDS]
        for label, row in rows.items()
    }
    low, high = stats.t.interval(0.95, 2, loc=np.mean(areas["random"]), scale=stats.sem(areas["random"]))
    assert (
        random_row.auc is not None
        and random_row.auc.low == pytest.approx(low)
        and random_row.auc.high == pytest.approx(high)
    )
    for auc, other in ((proxy.auc_vs_baseline, base), (proxy.auc_vs_random, random_row)):
        ci = stats.ttest_rel(areas["least_confidence · p_over"], areas[other.label]).confidence_interval(0.95)
        assert auc is not None and (auc.interval.low, auc.interval.high) == (
            pytest.approx(ci.low),
            pytest.approx(ci.high),
        )
    assert random_row.auc_vs_random is None and base.auc_vs_baseline is None


def test_verdicts_at_their_boundaries(hand_made: str) -> None:
    rows = _rows(compare.compare_experiment(hand_made))
    assert {label: row.verdict for label, row in rows.items()} == EXPECTED_VERDICTS
    # The interval ends that decide each verdict sit MARGIN from its boundary, as designed.
    ends = {
        ("least_confidence · p_match", "auc_vs_baseline", "high"): 0.01 - MARGIN,
        ("least_confidence · p_over", "auc_vs_baseline", "high"): 0.01 + MARGIN,
        ("least_confidence · p_worse", "auc_vs_baseline", "low"): MARGIN,
        ("least_confidence · p_cheap", "auc_vs_random", "high"): -MARGIN,
        ("least_confidence · p_unsure", "auc_vs_random", "high"): MARGIN,
        ("least_confidence · digits_cnn (baseline)", "auc_vs_random", "high"): -MARGIN,
        ("greedy_k_center · digits_cnn (baseline)", "auc_vs_random", "high"): MARGIN,
    }
    for (label, against, end), expected in ends.items():
        diff = getattr(rows[label], against)
        assert diff is not None and getattr(diff.interval, end) == pytest.approx(expected, abs=1e-12), label


def test_compare_output_carries_every_number_the_verdicts_and_their_rule(hand_made: str, tmp_path: Path) -> None:
    printed = CliRunner().invoke(app, ["compare", "--experiment", hand_made, "--no-log", "--json"])
    assert printed.exit_code == 0, printed.output
    doc = json.loads(printed.output)
    assert doc["verdict_rules"] == report.rules_text() and doc["confidence"] == 0.95 and doc["tolerance"] == 0.01
    (block,) = doc["blocks"]
    by_label = {(r["selector"], r["selector_model"], r["role"]): r for r in block["rows"]}
    base = by_label[("least_confidence", "digits_cnn", "baseline")]
    values = list(base["levels"]["200"]["errors"].values())
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert base["levels"]["200"]["error"]["low"] == pytest.approx(low)
    assert base["levels"]["200"]["error"]["high"] == pytest.approx(high)
    assert base["levels"]["200"]["worst_class_error"]["mean"] == pytest.approx(2 * np.mean(values))
    assert base["levels"]["200"]["minus_random"]["differences"] == pytest.approx(list(BASE_LC))
    assert base["auc_minus_random"]["seeds"] == HAND_SEEDS and base["verdict"] == "beats random"
    assert by_label[("least_confidence", "p_match", "proxy")]["levels"]["200"]["worst_class_error"] is None
    assert {r["verdict"] for r in block["rows"]} == set(EXPECTED_VERDICTS.values())
    (table,) = doc["tables"]
    assert table["header"][-2:] == ["AUC", "verdict"]
    lines = {(line[0], line[1]): line for line in table["rows"]}
    assert " · worst class " in lines[("least_confidence", "digits_cnn (baseline)")][5]
    assert lines[("least_confidence", "p_match")][5].endswith("(n=3)")  # no worst class logged: nothing shown
    assert [line[2] for line in table["differences"]["rows"]] == ["random", "random"] + ["random", "baseline"] * 5
    # The logged comparison: the rule under the markdown table and in comparison/summary.json.
    _, run_id = compare.log_comparison(compare.compare_experiment(hand_made))
    client = mlflow.MlflowClient()
    summary = json.loads(Path(client.download_artifacts(run_id, "comparison/summary.json", str(tmp_path))).read_text())
    assert summary["verdict_rules"] == report.rules_text()
    assert summary["blocks"][0]["rows"] == json.loads(json.dumps(block["rows"]))
    markdown = Path(client.download_artifacts(run_id, "comparison/table.md", str(tmp_path))).read_text()
    assert report.rules_text() in markdown and "| least_confidence | p_cheap | random |" in markdown


def test_one_seed_shows_its_value_and_n1_never_an_empty_interval(hand_made: str) -> None:
    result = compare.compare_experiment("one-seed")
    markdown = report.to_markdown(result)
    assert "(n=1)" in markdown and "± 0.0" not in markdown
    assert f"| {100 * random_error(100, 0):.1f} (n=1) · worst class {200 * random_error(100, 0):.1f} |" in markdown
    rows = _rows(result)
    assert {row.verdict for label, row in rows.items() if label != "random"} == {"inconclusive (1 seed)"}
    doc = json.loads(report.as_json(result))
    random_cell = doc["blocks"][0]["rows"][0]["levels"]["100"]["error"]
    assert random_cell["half_width"] is None and random_cell["low"] is None and random_cell["n"] == 1


def test_error_figure_bands_are_the_intervals(hand_made: str) -> None:
    (block,) = compare.compare_experiment(hand_made).blocks
    fig = figures.error_figure(block)
    try:
        bands = fig.axes[0].collections
        assert len(bands) == len(block.rows)
        ys = bands[0].get_paths()[0].vertices[:, 1]
        cells = [block.rows[0].cells[lvl].error for lvl in HAND_LEVELS]
        assert ys.max() == pytest.approx(max(100 * c.high for c in cells if c and c.high is not None))
        assert ys.min() == pytest.approx(min(100 * c.low for c in cells if c and c.low is not None))
    finally:
        from svpkit import plots

        plots.close(fig)


# -- worse than random, seeds needed, classes at 100 % error (issue 24) ----------------------------
def test_decisively_worse_than_random_rows_say_so(tmp_path: Path) -> None:
    """Five seeds: least confidence +5 points over random at every level (spread 0.5) is 'worse than random'
    overall and at each level; a row within noise of random stays inconclusive with a seeds-needed estimate."""
    rng = np.random.default_rng(24)
    seeds = [str(s) for s in range(5)]
    noise = {s: rng.normal(0, 1, size=(3, 3)) for s in seeds}
    with isolated_store(tmp_path):
        exp = mlflow.create_experiment("worse")
        for s in seeds:
            rand = {lvl: random_error(lvl, 0) + 0.01 * noise[s][0][i] for i, lvl in enumerate(HAND_LEVELS)}
            log_hand_made_run(exp, "random", "random", "none", s, rand, worst=False)
            worse = {lvl: e + 0.05 + 0.005 * noise[s][1][i] for i, (lvl, e) in enumerate(rand.items())}
            lc = log_hand_made_run(exp, "baseline", "least_confidence", "digits_cnn", s, worse, worst=False)
            close = {lvl: e + 0.001 + 0.004 * noise[s][2][i] for i, (lvl, e) in enumerate(rand.items())}
            log_hand_made_run(exp, "baseline", "margin", "digits_cnn", s, close, worst=False)
            if int(s) < 2:  # a class the target never gets right at the first level
                mlflow.MlflowClient().log_metric(lc, Metric.WORST_CLASS_ERROR, 1.0, step=100)
        result = compare.compare_experiment("worse")
        rows = _rows(result)
        lc_row, margin_row = rows["least_confidence · digits_cnn (baseline)"], rows["margin · digits_cnn (baseline)"]
        assert lc_row.auc_vs_random is not None and lc_row.auc_vs_random.interval.low > 0.04
        assert lc_row.verdict == "worse than random"
        assert margin_row.verdict == "inconclusive (5 seeds)"
        doc = json.loads(report.as_json(result))
        by_selector = {r["selector"]: r for r in doc["blocks"][0]["rows"]}
        lc_doc, margin_doc = by_selector["least_confidence"], by_selector["margin"]
        assert [lc_doc["levels"][str(lvl)]["verdict_vs_random"] for lvl in HAND_LEVELS] == ["worse than random"] * 3
        assert lc_doc["seeds_needed"] is None and lc_doc["worst_class_at_100"] == {"100": 2}
        # seeds needed: the first n whose t half-width with the observed SD falls below |mean| (brute force)
        diffs = margin_row.auc_vs_random.differences if margin_row.auc_vs_random else ()
        mean, sd = float(np.mean(diffs)), float(np.std(diffs, ddof=1))
        want = next(n for n in range(2, 100_000) if stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < abs(mean))
        assert margin_doc["seeds_needed"]["vs_random"] == want > 5
        table = report.to_markdown(result)
        assert "⚑ a class at 100 % in 2/5 seeds" in table and "worse than random" in rules_line(table)
        diff_line = next(
            line for line in table.splitlines() if line.startswith("| least_confidence | digits_cnn | random |")
        )
        assert diff_line.count("worse than random") == 3
        _, run_id = compare.log_comparison(result)
        tags = mlflow.MlflowClient().get_run(run_id).data.tags
        assert tags[Tag.WORSE_THAN_RANDOM] == "1"
        assert "least_confidence · digits_cnn (baseline): worse than random" in tags[Tag.VERDICTS]


def rules_line(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("Verdict per row"))
