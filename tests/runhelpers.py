"""Helpers for reliability tests: CLI subprocesses that can be killed, and reading runs back."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEST_PLUGINS = ROOT / "tests" / "plugins"

# Small and quick: every test run of the loops uses these.
QUICK_AL = ["--quiet", "--proxy-epochs", "3", "--target-epochs", "2"]


def cli_env(tracking_uri: str, pythonpath: Path | None = None, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "MLFLOW_TRACKING_URI": tracking_uri,
            # One thread per process: the same arithmetic in every run, and no oversubscription
            # when two runs share the CI's two cores.
            "OMP_NUM_THREADS": "1",
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "SVPKIT_DEBUG"):
        env.pop(var, None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


class Cli:
    """``python -m svpkit ARGS`` in the background, output kept in files (no pipe can fill up)."""

    def __init__(self, *args: str, env: dict[str, str], cwd: Path) -> None:
        self.args = args
        self._out = tempfile.TemporaryFile(mode="w+")
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "svpkit", *args], stdout=self._out, stderr=self._err, env=env, cwd=cwd, text=True
        )

    def wait(self, timeout: float = 600) -> int:
        return self.proc.wait(timeout=timeout)

    @property
    def stdout(self) -> str:
        self._out.seek(0)
        return self._out.read()

    @property
    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cli(*args: str, env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "svpkit", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
    )


def client() -> Any:
    # Through svpkit's tracking module: it creates a new sqlite store under a file lock, so
    # polling here cannot race the subprocess's schema migration.
    from svpkit import tracking

    return tracking.client()


def find_run(name: str) -> Any | None:
    c = client()
    experiments = [e.experiment_id for e in c.search_experiments()]
    if not experiments:
        return None
    runs = c.search_runs(experiments, filter_string=f"attributes.run_name = '{name}'")
    return runs[0] if runs else None


def state_rounds(run_id: str) -> list[int]:
    files = client().list_artifacts(run_id, "state")
    return sorted(int(Path(f.path).stem) for f in files if f.path.endswith(".json"))


def wait_for_state(cli: Cli, run_name: str, round_no: int, timeout: float = 300) -> str:
    """Poll until run ``run_name`` has saved the state of ``round_no``; its run id."""
    deadline = time.monotonic() + timeout
    run_id = None
    while time.monotonic() < deadline:
        if cli.proc.poll() is not None:
            raise AssertionError(f"{cli.args} exited ({cli.proc.returncode}) early: {cli.stderr[-2000:]}")
        if run_id is None:
            run = find_run(run_name)
            run_id = run.info.run_id if run is not None else None
        if run_id is not None and round_no in state_rounds(run_id):
            return run_id
        time.sleep(0.03)
    raise AssertionError(f"run {run_name!r} did not reach round {round_no} in {timeout} s")


def kill_after_state(args: list[str], env: dict[str, str], cwd: Path, round_no: int) -> tuple[str, Cli]:
    """Start ``svpkit ARGS`` as the run named 'killed', SIGKILL it once state ``round_no`` is saved."""
    victim = Cli(*args, "--run-name", "killed", env=env, cwd=cwd)
    try:
        run_id = wait_for_state(victim, "killed", round_no)
    finally:
        victim.kill()  # SIGKILL: no chance to clean up (a streamed pool's loader workers die with it)
    assert victim.proc.returncode == -9, victim.stderr
    return run_id, victim


def load_array(run_id: str, path: str, dest: Path) -> np.ndarray:
    target = dest / run_id
    target.mkdir(parents=True, exist_ok=True)
    return np.load(client().download_artifacts(run_id, path, str(target)))


def load_json(run_id: str, path: str, dest: Path) -> Any:
    target = dest / run_id
    target.mkdir(parents=True, exist_ok=True)
    return json.loads(Path(client().download_artifacts(run_id, path, str(target))).read_text())


def metric_history(run_id: str) -> dict[str, list[tuple[int, float]]]:
    """Every metric of a run as [(step, value)] in step order."""
    c = client()
    keys = c.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in c.get_metric_history(run_id, k)) for k in keys}


def install_plugins(target: Path, *names: str) -> Path:
    """``pip install`` test plugin distributions (their entry points) into ``target``.

    Each distribution is built from a private copy, so parallel test processes never write into
    the shared source folders; ``target`` goes on the subprocesses' ``PYTHONPATH`` and nothing is
    installed into site-packages (no clean-up needed, no effect on other tests).
    """
    sources = target.parent / f"{target.name}-src"
    for name in names:
        src = sources / name
        shutil.copytree(TEST_PLUGINS / name, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "--disable-pip-version-check",
                "--no-index",
                "--target",
                str(target),
                str(src),
            ],
            check=True,
            capture_output=True,
        )
    return target


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(root: Path, backend_store_uri: str, *artifact_args: str, timeout: float = 180) -> Iterator[str]:
    """Run ``mlflow server`` on a free port of 127.0.0.1 until the block ends; yields its URL.

    ``artifact_args`` are the server's artifact options, e.g. ``("--artifacts-destination", DIR)``.
    The server's own environment has no ``MLFLOW_*`` variables (a test's tracking URI must not leak
    into it); its log is ``root/server.log``.
    """
    import urllib.request

    port = free_port()
    with open(root / "server.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
            + ["--backend-store-uri", backend_store_uri, *artifact_args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mlflow server did not start:\n{(root / 'server.log').read_text()[-3000:]}")
                time.sleep(0.5)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
