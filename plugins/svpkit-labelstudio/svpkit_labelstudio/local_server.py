"""A headless Label Studio server on this machine, for the plugin's tests and benchmarks.

The server is the one ``tools/install_label_studio.sh`` installs into its own virtualenv
(``$SVPKIT_LS_VENV``, default ``~/.cache/svpkit-ls-venv``; ``.ci/install.sh`` runs it). It starts on
a free port of 127.0.0.1, from the template database the install script migrated when there is
one (a start in seconds), with local-files serving under ``document_root``, a legacy token and a
generated annotator account; its output goes to ``log``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import requests

VENV = Path(os.environ.get("SVPKIT_LS_VENV", str(Path.home() / ".cache" / "svpkit-ls-venv")))
EMAIL = "annotator@example.com"


class NotStarted(RuntimeError):
    """The server is not installed, or did not answer before the time limit (the message says which)."""


@dataclass
class LocalServer:
    url: str
    token: str
    """The legacy API token (``Authorization: Token …``)."""
    email: str
    password: str
    log: Path
    proc: subprocess.Popen[bytes]
    start_seconds: float
    from_template: bool
    """Whether the database came from the install script's migrated template."""

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def executable(venv: Path = VENV) -> Path:
    return venv / "bin" / "label-studio"


def start_local_server(document_root: Path, data: Path, log: Path, timeout: float, venv: Path = VENV) -> LocalServer:
    """A running server (module docstring) with its database under ``data``, or :class:`NotStarted`."""
    exe = executable(venv)
    if not exe.exists():
        raise NotStarted(
            f"Label Studio is not installed in {venv} (plugins/svpkit-labelstudio/tools/install_label_studio.sh)"
        )
    data.mkdir(parents=True, exist_ok=True)
    template = venv / "svpkit-template" / "label_studio.sqlite3"
    if template.exists():
        shutil.copyfile(template, data / template.name)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    token, password = secrets.token_hex(20), secrets.token_hex(8)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LABEL_STUDIO_", "PYTHONPATH"))}
    env.update(
        LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED="true",
        LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT=str(document_root),
        LABEL_STUDIO_BASE_DATA_DIR=str(data),
    )
    command = [str(exe), "start", "--no-browser", "--host", "127.0.0.1", "--internal-host", "127.0.0.1"]
    command += ["--port", str(port), "--data-dir", str(data), "--username", EMAIL, "--password", password]
    command += ["--user-token", token, "--enable-legacy-api-token"]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent, env=env)
    server = LocalServer(url, token, EMAIL, password, log, proc, 0.0, template.exists())
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        if proc.poll() is not None or time.monotonic() - started > timeout:
            server.stop()
            tail = log.read_text(errors="replace")[-1500:]
            raise NotStarted(f"the Label Studio server did not start within {timeout:.0f} s; its log ends:\n{tail}")
        time.sleep(1)
    server.start_seconds = time.monotonic() - started
    return server
