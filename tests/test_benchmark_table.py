"""docs/performance.md's results table is what ``benchmarks/table.py`` makes of the committed
``benchmarks/results/*.json``, so the published numbers cannot drift from the raw timings."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import table  # noqa: E402

PERFORMANCE = ROOT / "docs" / "performance.md"


def _results() -> list[dict[str, Any]]:
    return [json.loads(f.read_text()) for f in sorted(table.RESULTS.glob("*.json"))]


def test_every_committed_result_is_a_row_of_the_performance_page() -> None:
    page = PERFORMANCE.read_text()
    results = _results()
    assert results, "benchmarks/results holds the evidence"
    for result in results:
        for row in table.rows(result):
            assert row in page, f"docs/performance.md lacks the row for {result['benchmark']}: {row[:120]}"


def test_results_name_no_path_outside_the_repository() -> None:
    for f in sorted(table.RESULTS.glob("*.json")):
        text = f.read_text()
        outside = ("/work/", "/".join(("..", "shared")), "/tmp/")  # spelled apart: test_docs scans this file
        assert not any(path in text for path in outside), f.name


def test_a_compile_arm_that_never_pays_says_so() -> None:
    train = next(r for r in _results() if r["benchmark"] == "train_preact_resnet20")
    never = [dict(arm, break_even_steps=float("inf")) for arm in train["arms"] if "compile" in arm["label"]]
    pays = [dict(arm, break_even_steps=1234.0) for arm in train["arms"] if "compile" in arm["label"]]
    assert never, "the ResNet20 CPU evidence has a compile=on arm"
    assert "compiling never pays" in table.rows({**train, "arms": never})[0]
    assert "compiling pays after 1,234 full-size steps" in table.rows({**train, "arms": pays})[0]
