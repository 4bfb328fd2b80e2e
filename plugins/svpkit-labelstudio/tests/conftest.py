"""A real Label Studio server for the session, a fresh MLflow store per test, the CLI in-process.

The server is the one ``tools/install_label_studio.sh`` puts into its own virtualenv
(``$SVPKIT_LS_VENV``, default ``~/.cache/svpkit-ls-venv``; ``.ci/install.sh`` runs it). It starts
once per test session on a free port of 127.0.0.1 (from the template database the install script
migrated, when there is one) with local-files serving under a temporary document root, a legacy token and a personal access token; the tests skip, saying why, only when
it is not installed or does not start. How long it took to start is printed in the summary.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lshelpers import Server

VENV = Path(os.environ.get("SVPKIT_LS_VENV", str(Path.home() / ".cache" / "svpkit-ls-venv")))
INSTALL = Path(__file__).resolve().parents[1] / "tools" / "install_label_studio.sh"
START_TIMEOUT = 300.0
_TIMES: dict[str, float] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    exe = VENV / "bin" / "label-studio"
    if not exe.exists():
        pytest.skip(f"Label Studio is not installed in {VENV} (run {INSTALL}; .ci/install.sh does)")
    root = tmp_path_factory.mktemp("label-studio")
    docs, data = root / "files", root / "data"
    docs.mkdir()
    data.mkdir()
    template = VENV / "svpkit-template" / "label_studio.sqlite3"
    if template.exists():  # migrated once by the install script: a start in seconds
        shutil.copyfile(template, data / template.name)
    _TIMES["template"] = float(template.exists())
    port, token = _free_port(), secrets.token_hex(20)
    email, password = "annotator@example.com", secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABEL_STUDIO_", "PYTHONPATH"))}
    env.update(
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(docs),
        LABEL_STUDIO_BASE_DATA_DIR=str(data),
    )
    log = root / "server.log"
    command = [str(exe), "start", "--no-browser", "--host", "127.0.0.1", "--internal-host", "127.0.0.1"]
    command += ["--port", str(port)]
    command += ["--data-dir", str(data), "--username", email, "--password", password]
    command += ["--user-token", token, "--enable-legacy-api-token"]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=root, env=env)
    try:
        while True:
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() - started > START_TIMEOUT:
                tail = log.read_text(errors="replace")[-1500:]
                pytest.skip(
                    f"the Label Studio server did not start within {START_TIMEOUT:.0f} s; its log ends:\n{tail}"
                )
            time.sleep(1)
        _TIMES["start"] = time.monotonic() - started
        reply = requests.post(f"{url}/api/token/", headers={"Authorization": f"Token {token}"}, timeout=30)
        reply.raise_for_status()
        yield Server(url, token, str(reply.json()["token"]), docs, email, password, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
