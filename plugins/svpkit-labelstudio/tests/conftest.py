"""A real Label Studio server for the session, a fresh MLflow store per test, the CLI in-process.

The server is the one ``tools/install_label_studio.sh`` puts into its own virtualenv
(``$SVPKIT_LS_VENV``, default ``~/.cache/svpkit-ls-venv``; ``.ci/install.sh`` runs it). It starts
once per test session on a free port of 127.0.0.1 (from the template database the install script
migrated, when there is one) with local-files serving under a temporary document root, a legacy token and a personal access token; the tests skip, saying why, only when
it is not installed or does not start. How long it took to start is printed in the summary.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lshelpers import Server
from svpkit_labelstudio.local_server import VENV, NotStarted, executable, start_local_server

INSTALL = Path(__file__).resolve().parents[1] / "tools" / "install_label_studio.sh"
START_TIMEOUT = 300.0
_TIMES: dict[str, float] = {}


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if not executable(VENV).exists():
        pytest.skip(f"Label Studio is not installed in {VENV} (run {INSTALL}; .ci/install.sh does)")
    root = tmp_path_factory.mktemp("label-studio")
    docs, data = root / "files", root / "data"
    docs.mkdir()
    try:
        server = start_local_server(docs, data, root / "server.log", START_TIMEOUT, VENV)
    except NotStarted as exc:
        pytest.skip(str(exc))
    _TIMES["template"], _TIMES["start"] = float(server.from_template), server.start_seconds
    try:
        reply = requests.post(
            f"{server.url}/api/token/", headers={"Authorization": f"Token {server.token}"}, timeout=30
        )
        reply.raise_for_status()
        pat = str(reply.json()["token"])
        yield Server(server.url, server.token, pat, docs, server.email, server.password, server.log)
    finally:
        server.stop()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "start" in _TIMES:
        how = "from the migrated template database" if _TIMES.get("template") else "migrating its database"
        terminalreporter.write_line(f"Label Studio server started in {_TIMES['start']:.1f} s, {how} (once per session)")


@pytest.fixture()
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh sqlite store for the test; cwd is the temporary directory."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "LABEL_STUDIO_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    mlflow.set_tracking_uri(uri)
    yield uri
    mlflow.set_tracking_uri(None)
