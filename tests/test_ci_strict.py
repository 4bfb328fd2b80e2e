"""CI's guard against hidden breakage: under SVPKIT_STRICT_SKIPS=1 only gpu tests may skip, and a
missing component fails the run with the skip's reason; without it a user gets plain skips."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SAMPLE = """
import pytest

def test_passes():
    pass

def test_needs_a_component():
    pytest.skip("Chromium and chromedriver are not installed")

@pytest.mark.skipif(True, reason="the shared data is missing")
def test_needs_data():
    pass

@pytest.mark.gpu
def test_needs_a_gpu():
    pytest.skip("needs a CUDA GPU")

@pytest.mark.xfail(reason="known")
def test_expected_to_fail():
    assert False
"""
MODULE_SKIP = 'import pytest\npytest.importorskip("svpkit_no_such_plugin")\n\ndef test_x():\n    pass\n'


def run(tmp_path: Path, strict: bool) -> subprocess.CompletedProcess[str]:
    shutil.copy(ROOT / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a CUDA device\n")
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    (tmp_path / "test_plugin_missing.py").write_text(MODULE_SKIP)
    env = {k: v for k, v in os.environ.items() if k != "SVPKIT_STRICT_SKIPS" and not k.startswith("PYTEST_")}
    if strict:
        env["SVPKIT_STRICT_SKIPS"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
        "-rfs",
        "-q",
        "--continue-on-collection-errors",
    ]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_strict_skips_fail_everything_but_gpu_tests(tmp_path: Path) -> None:
    proc = run(tmp_path, strict=True)
    out = proc.stdout
    assert proc.returncode == 1, out
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 2 errors" in out, out
    assert "allows only gpu tests to skip: Chromium and chromedriver are not installed" in out
    assert "allows only gpu tests to skip: the shared data is missing" in out
    assert "could not import 'svpkit_no_such_plugin'" in out


def test_without_the_switch_missing_components_are_plain_skips(tmp_path: Path) -> None:
    proc = run(tmp_path, strict=False)
    assert proc.returncode == 0, proc.stdout
    assert "1 passed, 4 skipped, 1 xfailed" in proc.stdout, proc.stdout


def test_a_missing_component_is_one_error_line_after_the_install(tmp_path: Path) -> None:
    env = {**os.environ, "SVPKIT_LS_VENV": str(tmp_path / "no-venv")}
    proc = subprocess.run(
        [sys.executable, str(ROOT / ".ci" / "components.py")], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: missing component:")]
    assert errors == [
        f"error: missing component: Label Studio is not installed in {tmp_path / 'no-venv'} "
        "(run plugins/svpkit-labelstudio/tools/install_label_studio.sh)"
    ], proc.stderr
