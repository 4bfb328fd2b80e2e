"""Strict skips for CI (tests/ and plugins/ alike).

A test skips when something it needs is missing (Label Studio, Chromium, a plugin, the shared data):
fine for a user running ``python -m pytest`` without the extras, but on CI a skip hides a broken
feature. With ``SVPKIT_STRICT_SKIPS=1`` (``.ci/run`` sets it) every skip other than a ``gpu`` test's
turns into a failure that keeps the skip's reason.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

STRICT_ENV = "SVPKIT_STRICT_SKIPS"
MAY_SKIP = frozenset({"gpu"})
"""Markers whose tests may still skip under strict skips (no CUDA device on CI's machines)."""


def strict_skips() -> bool:
    return os.environ.get(STRICT_ENV, "") not in ("", "0")


def _reason(longrepr: object) -> str:
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def _fail(report: pytest.TestReport | pytest.CollectReport, reason: str) -> None:
    report.outcome = "failed"
    report.longrepr = f"skipped, but {STRICT_ENV}=1 allows only {'/'.join(sorted(MAY_SKIP))} tests to skip: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not (strict_skips() and report.skipped) or hasattr(report, "wasxfail"):
        return
    if MAY_SKIP & {m.name for m in item.iter_markers()}:
        return
    _fail(report, _reason(report.longrepr))


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, None, None]:
    outcome = yield
    report: pytest.CollectReport = outcome.get_result()
    if strict_skips() and report.skipped:  # a module-level skip or importorskip
        _fail(report, _reason(report.longrepr))
