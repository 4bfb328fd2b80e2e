"""A notebook's own objects end to end: active learning and core-set selection on numpy arrays, a
torch ``Dataset`` and a ``datasets.Dataset`` built from local files, with a user ``nn.Module``
factory as the proxy and a user scoring function as the selector; every run tracked and compared
by ``svpkit.compare``, and the same picks as the built-in plugins (``digits``, ``digits_mlp``,
``least_confidence``) for the same seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import svpkit
from svpkit.plugins import get_plugins

TRAIN = 300
SHARED = {"proxy_epochs": 1, "target_epochs": 1, "device": "cpu", "seed": 2, "target": "digits_mlp"}
AL = {"initial": 20, "budgets": [40, 60]} | SHARED
CORE_SET = {"keep": 0.5} | SHARED


class MyMLP(nn.Module):
    """The notebook's proxy: built the way ``digits_mlp`` is, so the picks must be the same."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(input_shape)), 32), nn.ReLU())
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def my_least_confidence(probs: torch.Tensor) -> torch.Tensor:
    """The notebook's selector: the least confident first."""
    return 1.0 - probs.max(dim=1).values


def _sources(tmp_path: Path) -> dict[str, Any]:
    """The first 300 digits and the test split as arrays, a torch Dataset pair and a DatasetDict from JSON files."""
    import datasets

    digits = get_plugins().datasets.get("digits").load()
    x, y = digits.train.x.numpy()[:TRAIN], digits.train.y.numpy()[:TRAIN]
    xt, yt = digits.test.x.numpy(), digits.test.y.numpy()
    files = {}
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        files[split] = str(tmp_path / f"{split}.jsonl")
        with open(files[split], "w") as f:
            f.writelines(json.dumps({"features": r, "label": c}) + "\n" for r, c in zip(xs.tolist(), ys.tolist()))
    pairs = [torch.utils.data.TensorDataset(torch.from_numpy(a), torch.from_numpy(b)) for a, b in ((x, y), (xt, yt))]
    return {
        "arrays": (x, y, xt, yt),
        "torch": tuple(pairs),
        "datasets": datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "hf")),
    }


@pytest.mark.slow
def test_own_data_model_and_selector_tracked_compared_and_equal_to_the_plugins(
    tracking_uri: str, tmp_path: Path
) -> None:
    builtin = {"dataset": "digits", "train_limit": TRAIN, "selector": "least_confidence", "proxy": "digits_mlp"}
    want_al = svpkit.active_learning(**builtin, **AL, track=False)
    want_cs = svpkit.core_set(**builtin, **CORE_SET, track=False)
    own = {"selector": my_least_confidence, "experiment": "notebook"}
    al_runs: list[str | None] = []
    for kind, data in _sources(tmp_path).items():
        al = svpkit.active_learning(dataset=data, proxy=MyMLP, **own, **AL, run_name=f"al-{kind}")
        cs = svpkit.core_set(dataset=data, proxy=MyMLP, **own, **CORE_SET, run_name=f"cs-{kind}")
        al_runs.append(al.run_id)
        assert [p.tolist() for p in al.selected] == [p.tolist() for p in want_al.selected], kind
        assert al.initial.tolist() == want_al.initial.tolist(), kind
        assert cs.ranking.order.tolist() == want_cs.ranking.order.tolist(), kind
        for run in (al, cs):
            assert run.run_id is not None
            assert run.tags["svpkit.dataset_shape"] == "train 300x64, test 359x64"
            assert (
                run.tags["svpkit.proxy_class"] == f"{__name__}.MyMLP" and run.tags["svpkit.proxy_parameters"] == "2410"
            )
            assert run.tags["svpkit.selector_function"] == f"{__name__}.my_least_confidence"
        assert al.tags["svpkit.dataset_object"].startswith(
            {"arrays": "numpy", "torch": "torch", "datasets": "datasets"}[kind]
        )
        assert al.params["dataset_digest"] == want_al.params["dataset_digest"] != ""
    # The baseline on the same data (the target picks for itself) pairs with the proxy runs.
    data = _sources(tmp_path)["arrays"]
    baseline = svpkit.active_learning(dataset=data, proxy="digits_mlp", **own, **AL, run_name="al-baseline")
    compared = svpkit.compare("notebook")
    assert compared.run_id is not None
    pairs = compared.comparison.pairs
    assert pairs and {(p.selector, p.baseline_run_id) for p in pairs} == {("my_least_confidence", baseline.run_id)}
    assert {p.proxy_run_id for p in pairs} <= set(al_runs)
