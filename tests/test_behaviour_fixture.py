"""Behaviour pinned across refactors and across CPUs: fixed runs give exactly the recorded picks and errors.

``tests/fixtures/behaviour.json`` holds the picks, core-set rankings and final errors of fixed
digits runs (active learning with every built-in selector, core-set runs, a preset and a run
resumed after SIGKILL), all ``--deterministic true``: svpkit's portable CPU numerics
(docs/reliability.md), in which the float results do not depend on the CPU's instruction set.
The runs execute in a fresh process (``tests/behaviour_runs.py``) started once per ATen CPU
capability this machine has (``ATEN_CPU_CAPABILITY=default``, ``avx2``, ``avx512``): the same
fixture must come out of each, which is what an AVX-512 machine and an AVX2 machine both check.
Any change to the selected indices, core-set rankings or final errors fails here. To record the
fixture anew (only for an intended behaviour change, said in the commit):
``SVPKIT_RECORD_BEHAVIOUR=1 python -m pytest tests/test_behaviour_fixture.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from runhelpers import cli_env

FIXTURE = Path(__file__).parent / "fixtures" / "behaviour.json"
RUNS = Path(__file__).parent / "behaviour_runs.py"
RECORD = bool(os.environ.get("SVPKIT_RECORD_BEHAVIOUR"))


def capabilities() -> list[str]:
    """The ATen CPU capabilities this machine can run: always ``default``, then AVX2 and AVX-512."""
    from svpkit.runtime import cpu_flags

    flags = cpu_flags()
    found = ["default"]
    if {"avx2", "fma"} <= flags:
        found.append("avx2")
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= flags:
        found.append("avx512")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("capability", capabilities())
def test_fixed_runs_give_the_recorded_picks_rankings_and_errors(tmp_path: Path, capability: str) -> None:
    out = tmp_path / "observed.json"
    env = cli_env(f"sqlite:///{tmp_path / 'mlflow.db'}", ATEN_CPU_CAPABILITY=capability)
    proc = subprocess.run(
        [sys.executable, str(RUNS), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    got = json.loads(out.read_text())
    if RECORD:
        FIXTURE.parent.mkdir(exist_ok=True)
        FIXTURE.write_text(json.dumps(got, indent=1) + "\n")
        pytest.skip(f"recorded {FIXTURE} under ATEN_CPU_CAPABILITY={capability}")
    want = json.loads(FIXTURE.read_text())
    assert sorted(got) == sorted(want)
    for key in want:
        assert got[key] == want[key], key
    # The fixture is not trivial: real picks, rankings that are permutations.
    assert len(np.unique(want["cs-forgetting_events"]["order"])) == 400
    assert want["al-least_confidence"]["picks"] != want["al-random"]["picks"]
