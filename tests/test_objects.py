"""Your own objects where the API takes names (svpkit/api/objects.py, svpkit/data/objects.py):
what each kind of data becomes, the typed errors for what svpkit cannot use, ``svpkit.register``,
``dir(svpkit)`` and ``resume`` of a run made with objects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from runhelpers import client
from torch import nn

import svpkit
from svpkit.data.objects import dataset_from
from svpkit.plugins import get_plugins

FAST = {"initial": 20, "budgets": [40, 60], "proxy_epochs": 1, "target_epochs": 1, "device": "cpu", "seed": 0}
FAST |= {"proxy": "digits_mlp", "target": "digits_mlp"}


def _digits(train: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    data = get_plugins().datasets.get("digits").load()
    x, y = data.train.x.numpy()[:train], data.train.y.numpy()[:train]
    return x, y, data.test.x.numpy(), data.test.y.numpy()


def least_confidence_too(probs: torch.Tensor) -> torch.Tensor:
    return 1 - probs.max(1).values


def test_every_kind_of_data_becomes_the_same_data_set(tmp_path: Path) -> None:
    import datasets

    x, y, xt, yt = _digits(40)
    arrays = dataset_from((x, y, xt, yt))
    assert (arrays.modality, arrays.input_shape, arrays.num_classes, len(arrays.train)) == ("vector", (64,), 10, 40)
    as_dict = dataset_from({"x": x, "y": y, "x_test": xt, "y_test": yt})
    tensors = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    as_torch = dataset_from(tensors, test=(xt, yt))
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        with open(tmp_path / f"{split}.jsonl", "w") as f:
            for row, label in zip(xs.tolist(), ys.tolist()):
                f.write(json.dumps({"features": row, "label": label}) + "\n")
    files = {s: str(tmp_path / f"{s}.jsonl") for s in ("train", "test")}
    hf = datasets.load_dataset("json", data_files=files, cache_dir=str(tmp_path / "cache"))
    assert {as_dict.digest, as_torch.digest, dataset_from(hf).digest} == {arrays.digest}
    torch_pair = dataset_from((tensors, torch.utils.data.TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt))))
    assert torch_pair.digest == arrays.digest


def test_images_text_and_named_classes(tmp_path: Path) -> None:
    import datasets

    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (12, 8, 8), dtype=np.uint8)
    images = dataset_from((gray, np.arange(12) % 3, gray[:4], np.arange(4) % 3))
    assert (images.modality, images.input_shape, images.mean is not None) == ("image", (8, 8, 1), True)
    (tmp_path / "train.csv").write_text(
        "text,label\n" + "".join(f"review {i},{'pos' if i % 2 else 'neg'}\n" for i in range(6))
    )
    (tmp_path / "test.csv").write_text("text,label\nfine,pos\nbad,neg\n")
    files = {"train": str(tmp_path / "train.csv"), "test": str(tmp_path / "test.csv")}
    text = dataset_from(datasets.load_dataset("csv", data_files=files, cache_dir=str(tmp_path / "cache")))
    assert (text.modality, text.classes, text.train.x[1], text.train.y.tolist()[:2]) == (
        "text",
        ["neg", "pos"],
        "review 1",
        [0, 1],
    )
    # A CSV of numeric columns is one vector per row; named columns override the guesses.
    (tmp_path / "tab.csv").write_text("a,b,kind\n" + "".join(f"{i},{i * 2},{i % 2}\n" for i in range(6)))
    tab = datasets.load_dataset(
        "csv",
        data_files={"train": str(tmp_path / "tab.csv"), "test": str(tmp_path / "tab.csv")},
        cache_dir=str(tmp_path / "cache"),
    )
    vectors = dataset_from(tab, y="kind")
    assert (vectors.modality, vectors.input_shape, vectors.train.x[2].tolist()) == ("vector", (2,), [2.0, 4.0])


class Pairs(torch.utils.data.Dataset):  # type: ignore[type-arg]
    def __len__(self) -> int:
        return 3

    def __getitem__(self, i: int) -> Any:
        return {"x": i}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((np.zeros((3, 2), np.float32), np.arange(3, dtype=np.int64)), "too few examples to hold some out"),
        ((np.zeros((4, 2)), np.zeros(3, np.int64), np.zeros((2, 2)), np.zeros(2, np.int64)), "4 inputs but labels"),
        ((np.zeros((4, 2)), np.zeros(4), np.zeros((2, 3)), np.zeros(2)), "labels must be integers"),
        ((np.zeros((4, 2)), np.arange(4) % 2, np.zeros((2, 3)), np.arange(2)), "the test inputs are"),
        ((np.zeros((4, 2)), np.zeros(4, int), np.zeros((2, 2)), np.zeros(2, int)), "one class"),
        ((1, 2, 3), "(x, y) or (x, y, x_test, y_test)"),
        ({"inputs": 1}, "needs keys x and y"),
        ((Pairs(), Pairs()), "not an (x, y) pair"),
        (42, "cannot read a int as a data set"),
    ],
)
def test_data_svpkit_cannot_use_is_a_data_error(data: object, message: str) -> None:
    with pytest.raises(svpkit.DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        svpkit.active_learning(dataset=data, track=False)


def test_the_issue_calls_are_typed_errors_with_one_sentence() -> None:
    x, y, _, _ = _digits()
    calls: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"proxy": lambda: torch.nn.Linear(8, 2)}, svpkit.ConfigError, "mat1 and mat2 shapes cannot be multiplied"),
        ({"selector": lambda probs: probs.max(1)}, svpkit.DataError, "returned a torch.return_types.max"),
        ({"proxy": torch.nn.Linear(64, 10)}, svpkit.ConfigError, "not a module instance"),
        ({"proxy": lambda: "mlp"}, svpkit.ConfigError, "returned a str, not a torch.nn.Module"),
        ({"proxy": lambda a, b, c: None}, svpkit.ConfigError, "takes 3 arguments"),
        (
            {"target": lambda: torch.nn.Linear(64, 3)},
            svpkit.ConfigError,
            r"gives \(2, 3\) for a batch of 2, not \(2, 10\)",
        ),
        ({"selector": lambda probs: probs.sum()}, svpkit.DataError, r"returned shape \(\), not one number"),
        ({"selector": 3}, svpkit.ConfigError, "a selector is a plugin's name"),
    ]
    for given, error, message in calls:
        with pytest.raises(error, match=message) as caught:
            svpkit.active_learning(**{"train_limit": 100, **given}, track=False)
        assert "\n" not in str(caught.value)


def test_register_names_objects_for_the_name_based_paths() -> None:
    x, y, xt, yt = _digits()
    name = svpkit.register("my_digits", (x, y, xt, yt))
    by_name = svpkit.active_learning(dataset=name, selector="least_confidence", track=False, **FAST)
    by_object = svpkit.active_learning(dataset=(x, y, xt, yt), selector="least_confidence", track=False, **FAST)
    assert [p.tolist() for p in by_name.selected] == [p.tolist() for p in by_object.selected]
    assert by_name.tags["svpkit.dataset"] == "my_digits" and by_object.tags["svpkit.dataset"].startswith("data-")
    svpkit.register("lc_too", least_confidence_too, kind="selector")
    get_plugins(refresh=True)  # a refresh keeps what this process registered
    assert get_plugins().selectors.entry("lc_too").distribution == "(in-process)"
    with pytest.raises(svpkit.ConfigError, match="'digits' is registered by svpkit"):
        svpkit.register("digits", (x, y, xt, yt))
    with pytest.raises(svpkit.ConfigError, match="kind='model'"):
        svpkit.register("fn", least_confidence_too)
    with pytest.raises(svpkit.ConfigError, match="letters, digits"):
        svpkit.register("my data", (x, y, xt, yt))


def test_dir_lists_the_public_names_only() -> None:
    names = dir(svpkit)
    assert names == sorted(set(names)) == sorted(svpkit.__all__)
    assert not {"Any", "importlib", "annotations", "_importlib", "_EXPORTS"} & set(names)
    assert {"active_learning", "register", "ModelSpec", "SelectorSpec", "DatasetSpec"} <= set(names)
    assert all(hasattr(svpkit, n) for n in names)


@pytest.mark.slow
def test_resume_of_a_run_with_objects_needs_the_same_objects(tracking_uri: str) -> None:
    x, y, xt, yt = _digits()
    calls: list[int] = []

    def flaky(probs: torch.Tensor) -> torch.Tensor:  # the probe, round 1, then round 2 fails
        calls.append(len(probs))
        if len(calls) == 3:
            raise RuntimeError("interrupted in round 2")
        return 1 - probs.max(1).values

    settings = dict(FAST, budgets=[40, 60, 80], experiment="objects")
    with pytest.raises(RuntimeError, match="interrupted"):
        svpkit.active_learning(dataset=(x, y, xt, yt), selector=flaky, **settings)
    run_id = _last_run("objects")
    with pytest.raises(svpkit.DataError, match="same data"):
        svpkit.active_learning(dataset=(x[::-1].copy(), y[::-1].copy(), xt, yt), selector=flaky, resume=run_id)
    # Another process knows neither the data nor the scoring function.
    code = f"import svpkit\ntry: svpkit.active_learning(resume={run_id!r})\nexcept svpkit.ConfigError as e: print(e)"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "which this process does not know; give the same object (dataset=...)" in other.stdout
    resumed = svpkit.active_learning(dataset=(x, y, xt, yt), selector=flaky, resume=run_id, **settings)
    reference = svpkit.active_learning(dataset=(x, y, xt, yt), selector=least_confidence_too, track=False, **settings)
    assert [p.tolist() for p in resumed.selected] == [p.tolist() for p in reference.selected]
    assert resumed.run_id == run_id and resumed.tags["svpkit.selector_function"].endswith("flaky")


def test_resume_refuses_other_data_under_the_same_name(tracking_uri: str) -> None:
    x, y, xt, yt = _digits()
    svpkit.register("swapped", (x, y, xt, yt))
    fails = iter([False, False, True])

    def stops(probs: torch.Tensor) -> torch.Tensor:
        if next(fails, False):
            raise RuntimeError("stop")
        return probs[:, 0]

    with pytest.raises(RuntimeError):
        svpkit.active_learning(dataset="swapped", selector=stops, experiment="swap", **dict(FAST, budgets=[40, 60, 80]))
    svpkit.register("swapped", (x[::-1].copy(), y[::-1].copy(), xt, yt))
    with pytest.raises(svpkit.DataError, match="was made on data with digest"):
        svpkit.active_learning(dataset="swapped", selector=stops, resume=_last_run("swap"))


def _last_run(experiment: str) -> str:
    import mlflow

    runs = mlflow.search_runs(experiment_names=[experiment], order_by=["start_time DESC"], output_format="list")
    return str(runs[0].info.run_id)


class TinyConv(nn.Module):
    """An image model of the notebook: batches arrive N×C×H×W."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(input_shape[-1], 4, 3, padding=1)
        self.fc = nn.Linear(4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_images_with_a_module_factory_run_in_both_loops() -> None:
    rng = np.random.default_rng(1)
    y = np.arange(80) % 4
    images = np.clip(rng.normal(40 + 50 * y[:, None, None, None], 20, (80, 8, 8, 3)), 0, 255).astype(np.uint8)
    data = (images[:60], y[:60], images[60:], y[60:])
    quick = {"proxy": TinyConv, "target": TinyConv, "proxy_epochs": 1, "target_epochs": 1, "device": "cpu"}
    run = svpkit.active_learning(dataset=data, selector="margin", initial=8, budgets=[16, 24], track=False, **quick)
    assert [len(p) for p in run.selected] == [8, 8]
    assert run.tags["svpkit.dataset_shape"] == "train 60x8x8x3, test 20x8x8x3"
    assert run.tags["svpkit.proxy_parameters"] == str(3 * 4 * 9 + 4 + 4 * 4 + 4)
    ranked = svpkit.core_set(dataset=data, selector="greedy_k_center", keep=0.5, seed_size=5, track=False, **quick)
    assert len(ranked.subset) == 30 and sorted(ranked.ranking.order.tolist()) == list(range(60))


def letter_counts(texts: list[str]) -> torch.Tensor:
    """A text encoding of the notebook: how often each of a-z occurs."""
    return torch.tensor([[t.count(chr(97 + i)) for i in range(26)] for t in texts], dtype=torch.float32)


def test_text_from_csv_files_with_an_encoding_model(tmp_path: Path) -> None:
    import datasets

    words = {"pos": ["good", "great", "fine", "nice"], "neg": ["bad", "awful", "poor", "worse"]}
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("test", 20)):
        rows = [(f"{rng.choice(words[c])} {rng.choice(words[c])}", c) for c in rng.choice(["pos", "neg"], n)]
        (tmp_path / f"{split}.csv").write_text("text,label\n" + "".join(f"{t},{c}\n" for t, c in rows))
    files = {s: str(tmp_path / f"{s}.csv") for s in ("train", "test")}
    reviews = datasets.load_dataset("csv", data_files=files, cache_dir=str(tmp_path / "cache"))
    svpkit.register("letters", lambda num_classes: nn.Linear(26, num_classes), kind="model", encode=letter_counts)
    quick = {"proxy_epochs": 2, "target_epochs": 2, "device": "cpu", "track": False, "initial": 10, "budgets": [20, 30]}
    run = svpkit.active_learning(dataset=reviews, proxy="letters", target="letters", selector="entropy", **quick)
    assert [len(p) for p in run.selected] == [10, 10] and run.tags["svpkit.proxy_parameters"] == str(26 * 2 + 2)
    with pytest.raises(svpkit.ConfigError, match="takes vector/image inputs but data set 'data-"):
        svpkit.active_learning(dataset=reviews, proxy=lambda: nn.Linear(26, 2), **quick)
    svpkit.register("short", lambda: nn.Linear(26, 2), kind="model", encode=lambda texts: [[1.0] * 26])
    with pytest.raises(svpkit.DataError, match=r"gave shape \(1, 26\) for 2 texts"):
        svpkit.active_learning(dataset=reviews, proxy="short", target="letters", **quick)


def test_training_data_alone_gets_a_seeded_stratified_held_out_test_split(tracking_uri: str) -> None:
    """(x, y) without test data: 20 % of each class (seed 0) is the test split, recorded in the run."""
    x, y, _, _ = _digits(300)
    data = svpkit.load_dataset((x, y))
    assert len(data.test) == sum(round(0.2 * c) for c in np.bincount(y)) and len(data.train) + len(data.test) == 300
    assert np.bincount(data.test.y.numpy()).tolist() == [round(0.2 * c) for c in np.bincount(y)]
    again = dataset_from((list(x), list(y)))  # the same split from other containers
    assert again.digest == data.digest and data.options == {"held_out": 0.2, "held_out_seed": 0}
    run = svpkit.active_learning(dataset=(x, y), initial=20, budgets=[40], proxy_epochs=1, target_epochs=1,
                                 device="cpu", experiment="held-out")  # fmt: skip
    params = client().get_run(str(run.run_id)).data.params
    assert params["dataset_digest"] == data.digest and params["dataset_options"] == "held_out=0.2,held_out_seed=0"
