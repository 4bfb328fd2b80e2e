"""Data-set options (``--dataset-options``): declared per data set, checked before any run exists,
logged with the run; npz vectors standardised with training statistics unless turned off."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from runhelpers import client, find_run
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.base import load_with_options, resolve_dataset_options
from svpkit.data.npz import load_npz
from svpkit.errors import ConfigError
from svpkit.plugins import get_plugins


def _vectors(root: Path, n: int = 120, d: int = 6) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(n, d)).astype(np.float32) * np.arange(1, d + 1, dtype=np.float32)
    x[:, 0] = 7.0  # a constant feature: centred, not divided by zero
    y = (x[:, 1] > 5).astype(np.int64)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "train.npz", x=x[:100], y=y[:100])
    np.savez(root / "test.npz", x=x[100:], y=y[100:])
    return x


def test_npz_vectors_are_standardised_with_training_statistics(tmp_path: Path) -> None:
    x = _vectors(tmp_path)
    data = load_npz(tmp_path)
    train = data.train.x.numpy()
    assert np.allclose(train[:, 1:].mean(0), 0, atol=1e-5) and np.allclose(train[:, 1:].std(0), 1, atol=1e-4)
    assert np.allclose(train[:, 0], 0)
    mean, std = x[:100].mean(0), x[:100].std(0)
    assert np.allclose(data.test.x.numpy()[:, 1:], (x[100:, 1:] - mean[1:]) / std[1:], atol=1e-4)  # train stats
    raw = load_with_options(get_plugins().datasets.get("npz"), str(tmp_path), "standardize=false")
    assert torch.equal(raw.train.x, torch.from_numpy(x[:100])) and raw.options == {"standardize": False}


def test_options_are_checked_against_the_declaration() -> None:
    spec = get_plugins().datasets.get("imagefolder")
    assert resolve_dataset_options(spec, " size = 64 ") == {"size": 64}
    for text, message in [
        ("siz=64", "did you mean 'size'"),
        ("size=big", "must be an integer"),
        ("size=2", "at least 8"),
        ("size", "name=value pairs"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve_dataset_options(spec, text)
    with pytest.raises(ConfigError, match="takes no options"):
        resolve_dataset_options(get_plugins().datasets.get("digits"), "size=64")


@pytest.mark.parametrize("command", ["active-learning", "core-set", "train", "query", "suggest-proxy"])
def test_a_bad_option_is_one_error_line_before_any_run(command: str, tracking_uri: str) -> None:
    result = CliRunner().invoke(app, [command, "--quiet", "--dataset-options", "size=64"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["error: --dataset-options: data set 'digits' takes no options (got 'size')"]
    assert not client().search_experiments() or not find_run_any()


def find_run_any() -> bool:
    return any(client().search_runs([e.experiment_id]) for e in client().search_experiments())


def test_the_run_logs_its_dataset_options(tmp_path: Path, tracking_uri: str) -> None:
    _vectors(tmp_path / "v", n=160)
    args = ["train", "--quiet", "--dataset", "npz", "--data-path", str(tmp_path / "v"), "--target", "digits_mlp"]
    result = CliRunner().invoke(app, [*args, "--target-epochs", "1", "--dataset-options", "standardize=off"])
    assert result.exit_code == 0, result.output
    run = find_run(result.output)
    assert run.data.params["dataset_options"] == "standardize=false"
    assert run.data.tags["svpkit.dataset_options"] == "standardize=false"
    assert run.data.tags["svpkit.data_access"] == "memory"
