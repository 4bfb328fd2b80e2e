"""``svpkit suggest-proxy``: the pilot experiment, the report and its run, and bad input."""

from __future__ import annotations

import json
from typing import Any

import mlflow
import pytest
from typer.testing import CliRunner

from svpkit.analysis import suggest_report
from svpkit.analysis.suggest import parse_candidates
from svpkit.cli import app
from svpkit.contract import SUGGEST_PROXY, Artifact, Tag
from svpkit.data.digits import load_digits
from svpkit.errors import ConfigError
from svpkit.loops.settings import LoopSettings
from svpkit.loops.suggest import Contender, SuggestConfig, pilot_size, run_suggest
from svpkit.plugins import get_plugins
from svpkit.tracking.memory import MemoryTracker

QUICK = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "90", "--device", "cpu", "--quiet"]
CANDIDATES = "digits_mlp:2,digits_cnn:1"


class TextTracker(MemoryTracker):
    def __init__(self) -> None:
        super().__init__()
        self.texts: dict[str, str] = {}

    def log_text(self, path: str, text: str) -> None:
        self.texts[path] = text


def test_rows_report_and_run(tmp_path: Any) -> None:
    data = load_digits().limited(train=240, test=90)
    models = get_plugins().models
    target = Contender("digits_cnn", models.get("digits_cnn"), 2)
    candidates = parse_candidates(CANDIDATES)
    contenders = [Contender(c.text, models.get(c.name), c.epochs) for c in candidates]
    cfg = SuggestConfig(pilot=0.25, k=30, seeds=2, settings=LoopSettings(device="cpu"))
    rows = run_suggest(data, get_plugins().selectors.get("least_confidence"), target, contenders, cfg)
    assert [(r.seed, r.candidate) for r in rows] == [(0, "digits_mlp:2"), (0, "digits_cnn:1")] + [
        (1, "digits_mlp:2"),
        (1, "digits_cnn:1"),
    ]
    assert all(0 <= r.top_k_overlap <= 1 and -1 <= r.spearman <= 1 for r in rows)
    assert all(r.random_overlap == pytest.approx(30 / 180) for r in rows)
    meta = {"dataset": "digits", "selector": "least_confidence", "target": "digits_cnn", "pilot": 60, "k": 30}
    report = suggest_report.summarise(rows, candidates, meta, 0.0, -1.0)
    assert [r.seconds for r in report.rows] == sorted(r.seconds for r in report.rows)
    assert report.recommendation.choice is not None  # thresholds at their floor: the cheapest one
    assert report.recommendation.choice.candidate.text == report.rows[0].result.candidate.text
    tracker = TextTracker()
    suggest_report.log_report(tracker, report, {"k": 30})
    assert "| digits_mlp:2 |" in tracker.texts[Artifact.SUGGEST_TABLE_MD]
    assert tracker.tags[Tag.NOTE] == tracker.texts[Artifact.SUGGEST_TABLE_MD]
    assert tracker.texts[Artifact.SUGGEST_TABLE_CSV].splitlines()[0].startswith("candidate,seconds,speed-up")
    assert tracker.json[Artifact.SUGGEST_SUMMARY]["loop"] == SUGGEST_PROXY
    assert tracker.figures == [Artifact.SUGGEST_FIGURE]
    assert "suggest/digits_mlp_2/top_k_overlap" in tracker.metrics
    strict = suggest_report.summarise(rows, candidates, meta, 1.0, 1.0)
    assert strict.recommendation.choice is None and "none of the candidates" in suggest_report.markdown(strict)


def test_pilot_must_leave_k_pool_points() -> None:
    assert pilot_size(0.2, 1000, 100) == 200
    assert pilot_size(300, 1000, 100) == 300
    for pilot, k, message in [(0.95, 100, "fewer than --k 100"), (1000, 10, "must leave a pool"), (1.0, 1, "(0, 1)")]:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            pilot_size(pilot, 1000, k)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--candidates", "digits_mlp:2,no_such_model"], "no_such_model"),
        (["--candidates", "digits_mlp:x"], "epochs must be a positive integer"),
        (["--candidates", "digits_mlp{no_such_option=1}"], "no_such_option"),
        (["--pilot", "0.99", "--k", "100"], "fewer than --k 100"),
        (["--min-overlap", "1.5"], "--min-overlap must be between 0 and 1"),
        (["--min-spearman", "-2"], "--min-spearman must be between -1 and 1"),
        (["--selector", "random"], "uses no model"),
    ],
)
def test_bad_input_is_one_error_line_before_any_run(tracking_uri: str, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["suggest-proxy", *QUICK, *extra])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
    assert mlflow.search_runs(search_all_experiments=True, output_format="list") == []


@pytest.mark.slow
def test_the_command_prints_json_and_logs_one_run(tracking_uri: str) -> None:
    args = ["--candidates", CANDIDATES, "--target-epochs", "2", "--pilot", "60", "--k", "30", "--seeds", "2"]
    result = CliRunner().invoke(app, ["suggest-proxy", *QUICK, *args, "--json"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert [c["candidate"] for c in printed["candidates"]] != [] and printed["pilot"] == 60
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert len(runs) == 1 and runs[0].data.tags[Tag.LOOP] == SUGGEST_PROXY
    assert runs[0].data.tags[Tag.NOTE].startswith("**suggest-proxy on digits")
