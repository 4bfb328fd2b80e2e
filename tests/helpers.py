"""Helpers for tests: install test plugins into a private directory, run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_PLUGINS = ROOT / "tests" / "plugins"


def install_plugins(target: Path, *names: str) -> Path:
    """``pip install`` test plugin distributions into ``target`` (not site-packages), so their
    entry points are visible only to processes that put ``target`` on ``PYTHONPATH``."""
    for name in names:
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
                "--target",
                str(target),
                str(TEST_PLUGINS / name),
            ],
            check=True,
            capture_output=True,
        )
    return target


def run_cli(
    *args: str, pythonpath: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m svpkit ARGS`` and capture its output."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    if pythonpath is not None:
        full_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(pythonpath), full_env.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "svpkit", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
