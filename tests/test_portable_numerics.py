"""The portable CPU numerics of ``--deterministic``: what they pin, that pinning matters, and when it is too late.

Each case runs a small float computation (a convolution, a linear layer, softmax and a backward
pass: what training and scoring do) in a fresh process, because PyTorch chooses its CPU kernels
once per process. Natively the results depend on the instruction set (``ATEN_CPU_CAPABILITY``
stands in for a different CPU); pinned, they do not, nor on a weaker MKL (``MKL_ENABLE_INSTRUCTIONS``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_behaviour_fixture import capabilities

PROBE = """
import hashlib, sys
pin = sys.argv[1] == "pin"
if pin:
    from svpkit.runtime import pin_portable_numerics
    pin_portable_numerics()
import torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 30 * 30, 10))
x = torch.randn(256, 1, 32, 32)
out = torch.log_softmax(model(x), dim=1)
out.mean().backward()
parts = [out, torch.softmax(out, 1), model[0].weight.grad, model[3].weight.grad, torch.randn(999, 77).sum(0)]
digest = hashlib.sha256(b"".join(p.detach().numpy().tobytes() for p in parts)).hexdigest()
print(torch.backends.cpu.get_cpu_capability(), digest)
"""


def probe(mode: str, **env: str) -> tuple[str, str]:
    import os

    child = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env={**child, **env}, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    capability, digest = proc.stdout.split()
    return capability, digest


@pytest.mark.skipif(len(capabilities()) < 2, reason="this CPU has only the default ATen capability")
def test_native_results_depend_on_the_cpu_capability_and_pinned_results_do_not() -> None:
    levels = capabilities()
    native = {level: probe("native", ATEN_CPU_CAPABILITY=level) for level in levels}
    assert [cap for cap, _ in native.values()] == [level.upper() for level in levels]
    assert len({digest for _, digest in native.values()}) == len(levels), "the probe no longer sees the kernels"

    pinned = {level: probe("pin", ATEN_CPU_CAPABILITY=level) for level in levels}
    pinned["weak-mkl"] = probe("pin", MKL_ENABLE_INSTRUCTIONS="AVX")
    assert {cap for cap, _ in pinned.values()} == {"DEFAULT"}
    assert len({digest for _, digest in pinned.values()}) == 1, pinned


def test_pinning_after_torch_has_computed_is_an_error() -> None:
    code = (
        "import torch; torch.ones(3).sum()\nfrom svpkit.runtime import pin_portable_numerics\npin_portable_numerics()\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "deterministic mode must pin the CPU kernels before torch first runs" in proc.stderr


def test_portable_numerics_train_in_float32() -> None:
    code = (
        "from svpkit.runtime import pin_portable_numerics, portable_numerics\n"
        "pin_portable_numerics()\n"
        "import torch\n"
        "from svpkit.learners.acceleration import resolve_amp\n"
        "print(portable_numerics(), resolve_amp('auto', torch.device('cpu'), ('image',)), "
        "resolve_amp('on', torch.device('cpu'), ('image',)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "False", "True"]


def test_train_and_suggest_proxy_take_deterministic_too(tracking_uri: str, tmp_path: Path) -> None:
    """``--deterministic true`` reaches every command that trains (before, ``train`` and
    ``suggest-proxy`` had no such option and dropped it): portable numerics, logged with the run."""
    from runhelpers import cli_env, client, run_cli

    env, root = cli_env(tracking_uri), Path(__file__).resolve().parents[1]
    tiny = ["--dataset", "digits", "--train-limit", "200", "--test-limit", "60", "--device", "cpu", "--quiet"]
    trained = run_cli("train", *tiny, "--target", "digits_mlp", "--target-epochs", "1", "--deterministic", "true",
                      "--run-name", "det-train", env=env, cwd=root)  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    suggested = run_cli("suggest-proxy", *tiny, "--target", "digits_mlp", "--target-epochs", "1", "--candidates",
                        "digits_mlp:1", "--seeds", "1", "--k", "20", "--pilot", "40", "--deterministic", "true",
                        "--run-name", "det-suggest", env=env, cwd=root)  # fmt: skip
    assert suggested.returncode == 0, suggested.stderr
    runs = {r.info.run_name: r for e in client().search_experiments() for r in client().search_runs([e.experiment_id])}
    assert runs["det-train"].data.params["deterministic"] == "True"
    assert runs["det-train"].data.tags["svpkit.numerics"] == "portable"
    assert runs["det-suggest"].data.params["deterministic"] == "True"
