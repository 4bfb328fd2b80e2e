"""Every component the test suite needs, checked after the install: one line for each that is missing
and exit 1, so that a broken install fails here instead of turning into skipped tests.

Checked: the plugins under plugins/ (installed and importable), the Label Studio server's virtualenv
(at the versions of locks/label-studio.txt, with its migrated template database), Chromium and
chromedriver; with ``SVPKIT_STRICT_SKIPS=1`` (CI) also the real data beside the checkout
(``shared/data`` next to the checkout), which users do not have.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import os
import shutil
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
LS_VENV = Path(os.environ.get("SVPKIT_LS_VENV", str(Path.home() / ".cache" / "svpkit-ls-venv")))
LS_INSTALL = "plugins/svpkit-labelstudio/tools/install_label_studio.sh"
SHARED_DATA = ROOT.parent / "shared" / "data"
DATA_FILES = [f"cifar10/{name}.npz" for name in ("train_part0", "train_part1", "train_part2", "test")]
DATA_FILES += [f"sst2/{name}.csv.gz" for name in ("train", "dev", "test")]


def locked(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[canonical(name)] = version
    return pins


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def missing_plugins() -> list[str]:
    problems = []
    group = {ep.dist.name if ep.dist else ep.name: ep for ep in metadata.entry_points(group="svpkit")}
    for pyproject in sorted(ROOT.glob("plugins/*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        name, folder = project["name"], pyproject.parent.relative_to(ROOT)
        entry = group.get(name)
        if entry is None:
            problems.append(f"plugin {name} is not installed (pip install -e {folder})")
            continue
        try:
            importlib.import_module(entry.value.split(":")[0])
        except Exception as exc:  # noqa: BLE001 - any import failure is the finding
            problems.append(f"plugin {name} does not import: {type(exc).__name__}: {exc}")
    return problems


def missing_label_studio() -> list[str]:
    exe, python = LS_VENV / "bin" / "label-studio", LS_VENV / "bin" / "python"
    if not exe.exists():
        return [f"Label Studio is not installed in {LS_VENV} (run {LS_INSTALL})"]
    freeze = subprocess.run([str(python), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, timeout=120)
    have = {}
    for line in freeze.stdout.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            have[canonical(name)] = version
    want = locked(ROOT / "locks" / "label-studio.txt")
    wrong = [f"{n} {have.get(n, 'missing')} (lock: {v})" for n, v in sorted(want.items()) if have.get(n) != v]
    if wrong:
        return [f"Label Studio's virtualenv {LS_VENV} differs from locks/label-studio.txt: {', '.join(wrong[:5])}"]
    if not (LS_VENV / "svpkit-template" / "label_studio.sqlite3").is_file():
        return [f"Label Studio's template database was never migrated in {LS_VENV} (run {LS_INSTALL})"]
    return []


def missing_browser() -> list[str]:
    problems = []
    for exe, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        path = shutil.which(exe) or f"/usr/bin/{exe}"
        if not os.path.exists(path):
            problems.append(f"{exe} is not installed (apt-get install {package})")
            continue
        try:
            run = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
        except OSError as exc:
            problems.append(f"{exe} at {path} does not run: {exc}")
            continue
        if run.returncode != 0:
            problems.append(f"{exe} at {path} does not run: {(run.stderr or run.stdout).strip()[:200]}")
    return problems


def missing_data() -> list[str]:
    absent = [name for name in DATA_FILES if not (SHARED_DATA / name).is_file()]
    return [f"the real data sets are missing under {SHARED_DATA}: {', '.join(absent)}"] if absent else []


def main() -> int:
    problems = missing_plugins() + missing_label_studio() + missing_browser()
    if os.environ.get("SVPKIT_STRICT_SKIPS", "") not in ("", "0"):
        problems += missing_data()
    for problem in problems:
        print(f"error: missing component: {problem}", file=sys.stderr)
    if not problems:
        print("all components the tests need are installed")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
