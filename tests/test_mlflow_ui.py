"""The MLflow UI shows the runs, their metrics and the comparison (headless Chromium + selenium).

A small active-learning experiment (digits, two seeds, baseline + proxy + random) and its compare
run are logged to a temporary sqlite store; ``mlflow server`` serves it on 127.0.0.1 and Chromium
opens the runs table, the comparison run (its description holds the Table 1 layout, its metrics
the speed-ups), its figures and a proxy run. Screenshots land in the test's temporary folder (and
in ``$SVPKIT_SCREENSHOT_DIR`` when set). Skipped only when Chromium or chromedriver is missing
(``.ci/install.sh`` installs both).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from runhelpers import mlflow_server
from test_compare import build_digits_experiment, isolated_store

from svpkit.analysis import compare

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)),
        reason="Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)",
    ),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    root = tmp_path_factory.mktemp("ui")
    with isolated_store(root) as uri:
        built = build_digits_experiment(root, "svp-ui")
        result = compare.compare_experiment(built.name)
        _, compare_run = compare.log_comparison(result, "compare-svp-ui")
        suggest_run = _suggest_run(built.name)
    with mlflow_server(root, uri, "--default-artifact-root", str(root / "served-artifacts")) as base:
        yield {
            "base": base,
            "experiment_id": built.experiment_id,
            "compare_run": compare_run,
            "proxy_run": built.run_ids[("proxy", "0")],
            "suggest_run": suggest_run,
            "shots": str(root / "screenshots"),
        }


def _suggest_run(experiment: str) -> str:
    """A small ``svpkit suggest-proxy`` run in the experiment; its run id."""
    import mlflow
    from typer.testing import CliRunner

    from svpkit.cli import app

    quick = ["--train-limit", "300", "--test-limit", "90", "--device", "cpu", "--quiet", "--target-epochs", "2"]
    args = ["--candidates", "digits_mlp:2,digits_cnn:1", "--pilot", "60", "--k", "30", "--seeds", "2"]
    result = CliRunner().invoke(app, ["suggest-proxy", *quick, *args, "--experiment", experiment])
    assert result.exit_code == 0, result.output
    found = mlflow.search_runs(
        experiment_names=[experiment], filter_string="tags.`svpkit.loop` = 'suggest_proxy'", output_format="list"
    )
    return str(found[0].info.run_id)


@pytest.fixture(scope="module")
def browser(server: dict[str, str]) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(server["shots"]).parent / "chromium-profile"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1600,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver, url: str, *texts: str, timeout: float = 90) -> str:  # type: ignore[no-untyped-def]
    """Load ``url`` and wait until every text is visible on the page; return the page text."""
    from selenium.webdriver.common.by import By

    driver.get("about:blank")
    driver.get(url)
    deadline = time.time() + timeout
    body = ""
    while time.time() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t in body for t in texts):
            # Fold away MLflow's assistant side panel (best effort) so screenshots show the run.
            for button in driver.find_elements(By.XPATH, "//button[@aria-label='Close']"):
                driver.execute_script("arguments[0].click()", button)
            time.sleep(1.0)  # let charts and images finish drawing before a screenshot
            return str(driver.find_element(By.TAG_NAME, "body").text)
        time.sleep(0.5)
    missing = [t for t in texts if t not in body]
    raise AssertionError(f"{url}: never showed {missing}; page text: {body[:1500]!r}")


def _open_current(driver, *texts: str, timeout: float = 30) -> str:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    body = ""
    while time.time() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if all(t in body for t in texts):
            time.sleep(1.0)
            return str(body)
        time.sleep(0.5)
    raise AssertionError(f"never showed {[t for t in texts if t not in body]}; page text: {body[:1500]!r}")


def _scroll_to(driver, text: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    for element in driver.find_elements(By.XPATH, f"//*[contains(text(), '{text}')]"):
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
        time.sleep(0.5)
        return


def _shot(driver, server: dict[str, str], name: str) -> Path:  # type: ignore[no-untyped-def]
    folder = Path(server["shots"])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    assert driver.save_screenshot(str(path)), f"screenshot {name} failed"
    assert path.stat().st_size > 10_000
    extra = os.environ.get("SVPKIT_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(extra) / name)
    return path


def test_runs_table_lists_the_experiment(browser, server: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    url = f"{server['base']}/#/experiments/{server['experiment_id']}/runs?workflowType=machine_learning"
    _open(browser, url, "compare-svp-ui", "al-least_confidence-digits_mlp-s0", "al-least_confidence-digits_cnn-s1")
    _shot(browser, server, "runs_table.png")


def test_compare_run_shows_table_and_speedup_metrics(browser, server: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    url = f"{server['base']}/#/experiments/{server['experiment_id']}/runs/{server['compare_run']}?workflowType=machine_learning"
    _open(browser, url, "compare-svp-ui", "speedup/least_confidence/digits_mlp", "svpkit comparison of experiment")
    # The description (the comparison table) is folded: unfold it.
    for button in browser.find_elements(By.XPATH, "//*[normalize-space(text())='Show more']"):
        browser.execute_script("arguments[0].click()", button)
    text = _open_current(browser, "digits_cnn (baseline)", "least_confidence")
    assert "error/random" in text and "svpkit.compared_runs" in text
    _scroll_to(browser, "svpkit comparison of experiment")
    _shot(browser, server, "compare_run.png")


def test_compare_run_figures_and_tables_are_served(browser, server: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    base = f"{server['base']}/#/experiments/{server['experiment_id']}/runs/{server['compare_run']}/artifacts"
    wf = "?workflowType=machine_learning"
    _open(browser, f"{base}/figures/compare_speedup.png{wf}", "compare_speedup.png", "compare_error_vs_labeled.png")
    deadline = time.time() + 60
    loaded: list[int] = []
    while time.time() < deadline and not loaded:
        # The UI fetches the artifact and shows it from a blob: URL; a drawn figure is wide.
        loaded = [
            width
            for img in browser.find_elements(By.TAG_NAME, "img")
            if (width := int(browser.execute_script("return arguments[0].naturalWidth", img) or 0)) >= 600
        ]
        time.sleep(0.5)
    if not loaded:
        _shot(browser, server, "compare_figure_missing.png")
    assert loaded, "the speed-up figure was not displayed"
    _shot(browser, server, "compare_figure.png")
    text = _open(browser, f"{base}/comparison/table.md{wf}", "table.md", "digits_cnn (baseline)", "speed-up 20%")
    assert "target test error" in text.lower()
    _shot(browser, server, "compare_table.png")


def test_active_learning_run_shows_its_metrics(browser, server: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    url = f"{server['base']}/#/experiments/{server['experiment_id']}/runs/{server['proxy_run']}?workflowType=machine_learning"
    _open(browser, url, "target/test_error", "selection/cumulative_seconds", "svpkit.role")
    _shot(browser, server, "proxy_run.png")


def test_active_learning_run_shows_its_agreement_figure(browser, server: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    base = f"{server['base']}/#/experiments/{server['experiment_id']}/runs/{server['proxy_run']}"
    wf = "?workflowType=machine_learning"
    _open(browser, f"{base}{wf}", "agreement/top_k_overlap", "agreement/spearman", "svpkit.agreement")
    _open(browser, f"{base}/artifacts/figures/agreement.png{wf}", "agreement.png", "error_vs_labeled.png")
    _shot(browser, server, "agreement_figure.png")


def test_suggest_proxy_run_shows_its_table_and_figure(browser, server: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    base = f"{server['base']}/#/experiments/{server['experiment_id']}/runs/{server['suggest_run']}"
    wf = "?workflowType=machine_learning"
    _open(browser, f"{base}{wf}", "suggest-proxy on digits", "suggest/digits_mlp_2/top_k_overlap", "suggest_proxy")
    _shot(browser, server, "suggest_run.png")
    _open(browser, f"{base}/artifacts/suggest/table.md{wf}", "table.md", "digits_mlp:2", "Recommendation")
    _open(browser, f"{base}/artifacts/figures/suggest_proxy.png{wf}", "suggest_proxy.png")
    _shot(browser, server, "suggest_figure.png")
