"""Backbones and the embedding store: a pool is embedded once per key and reused, a killed pass
resumes where it stopped, different backbones, weights or preprocessing never share vectors, a run
records the store's key, and bad input stops before any run exists.

The backbone here is a small real torch network (a seeded convolution, its weights saved to a file
the test verifies by sha256) registered through the ``register_backbones`` hook; the real
pretrained backbones are tested in plugins/svpkit-pretrained.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import svpkit
import svpkit.plugins
from svpkit.backbones.base import BackboneSpec, Preprocessing, Weights, WeightsError, resolve_backbone
from svpkit.backbones.embed import embedded_dataset
from svpkit.cli import app
from svpkit.contract import Tag
from svpkit.data.base import Dataset, Split
from svpkit.data.embeddings import EmbeddingStore, StoreKey, file_digest
from svpkit.plugins import Plugins

CALLS = {"load": 0, "batches": 0}


def _network() -> torch.nn.Module:
    torch.manual_seed(7)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))


def _counting_load(path: Path, device: str) -> svpkit.backbones.base.Encoder:
    CALLS["load"] += 1
    net = _network()
    net.load_state_dict(torch.load(path, weights_only=True))

    def encode(x: torch.Tensor) -> torch.Tensor:
        CALLS["batches"] += 1
        return net(x).flatten(1)

    return encode


def _text_load(path: Path, device: str) -> svpkit.backbones.base.Encoder:
    return lambda texts: torch.tensor([[len(t), t.count(" ")] for t in texts], dtype=torch.float32)


def _specs(weights: Path) -> list[BackboneSpec]:
    digest = file_digest(weights)
    return [
        BackboneSpec(
            "tiny_conv",
            "image",
            6,
            Weights(lambda: weights, "test", "MIT", digest),
            _counting_load,
            Preprocessing(size=12, scale="minus_one_one"),
            batch_size=8,
        ),
        BackboneSpec("tiny_text", "text", 2, Weights(lambda: weights, "test", "MIT", digest), _text_load),
    ]


@pytest.fixture()
def weights(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_conv.pt"
    torch.save(_network().state_dict(), path)
    return path


@pytest.fixture()
def backbones(weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, BackboneSpec]:
    """The test backbones registered through the hook; the cache in the test's own directory."""
    module = types.ModuleType("test_backbones")
    specs = _specs(weights)

    @svpkit.hookimpl
    def register_backbones(register: object) -> None:
        for spec in specs:
            register(spec)  # type: ignore[operator]

    module.register_backbones = register_backbones  # type: ignore[attr-defined]
    monkeypatch.setattr(svpkit.plugins, "_CACHE", Plugins(extra=(("test_backbones", module),)))
    monkeypatch.setenv("SVPKIT_CACHE", str(tmp_path / "cache"))
    CALLS.update(load=0, batches=0)
    return {s.name: s for s in specs}


def _images(n: int = 30, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(rng.integers(0, 256, (n, 10, 10, 3), dtype=np.uint8))
    y = torch.arange(n) % 3
    return Dataset("blobs", Split(x, y), Split(x[:9].clone(), y[:9].clone()), 3, "image", (10, 10, 3))


def _npz(root: Path, n: int = 40) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    y = np.arange(n) % 4
    x = (rng.integers(0, 60, (n, 10, 10, 3)) + 50 * y[:, None, None, None]).astype(np.uint8)
    np.savez(root / "train.npz", x=x, y=y)
    np.savez(root / "test.npz", x=x[:12], y=y[:12])
    return root


# -- the store ---------------------------------------------------------------------------------
def _rows(start: int, total: int, dim: int, batch: int) -> Iterator[np.ndarray]:
    for i in range(start, total, batch):
        CALLS["batches"] += 1
        stop = min(total, i + batch)
        yield np.arange(i * dim, stop * dim, dtype=np.float32).reshape(-1, dim)


def test_a_stored_split_is_read_back_without_a_pass(tmp_path: Path) -> None:
    store = EmbeddingStore(StoreKey("b", "w", "p", "d", "float32"), tmp_path)
    CALLS["batches"] = 0
    first = np.array(store.fill("train", 25, 3, lambda s: _rows(s, 25, 3, 10)))
    assert CALLS["batches"] == 3
    again = EmbeddingStore(StoreKey("b", "w", "p", "d", "float32"), tmp_path).fill(
        "train", 25, 3, lambda s: _rows(s, 25, 3, 10)
    )
    assert CALLS["batches"] == 3  # no second pass
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, np.arange(75, dtype=np.float32).reshape(25, 3))


def test_a_killed_pass_resumes_after_its_last_chunk(tmp_path: Path) -> None:
    key = StoreKey("b", "w", "p", "d", "float16")
    starts: list[int] = []

    def killed_after_two(start: int) -> Iterator[np.ndarray]:
        starts.append(start)
        for k, batch in enumerate(_rows(start, 40, 2, 8)):
            if k == 2:
                raise KeyboardInterrupt  # the pass is killed after two chunks
            yield batch

    with pytest.raises(KeyboardInterrupt):
        EmbeddingStore(key, tmp_path).fill("train", 40, 2, killed_after_two)
    assert EmbeddingStore(key, tmp_path).done_rows("train") == 16
    CALLS["batches"] = 0

    def rest(start: int) -> Iterator[np.ndarray]:
        starts.append(start)
        return _rows(start, 40, 2, 8)

    out = EmbeddingStore(key, tmp_path).fill("train", 40, 2, rest)
    assert starts == [0, 16] and CALLS["batches"] == 3  # rows 16..39 only
    np.testing.assert_array_equal(out, np.arange(80, dtype=np.float16).reshape(40, 2))


def test_ranges_fill_one_array_each_resuming_after_its_last_chunk(tmp_path: Path) -> None:
    """``torchrun`` ranks fill their own rows of one array; a killed range resumes, others are kept."""
    key = StoreKey("b", "w", "p", "d", "float32")
    starts: list[tuple[int, int]] = []

    def batches(start: int, stop: int, kill_after: int = -1) -> Iterator[np.ndarray]:
        starts.append((start, stop))
        for k, i in enumerate(range(start, stop, 4)):
            if k == kill_after:
                raise KeyboardInterrupt
            yield np.arange(i * 2, min(stop, i + 4) * 2, dtype=np.float32).reshape(-1, 2)

    with pytest.raises(KeyboardInterrupt):
        EmbeddingStore(key, tmp_path).fill_range("train", 20, 2, (0, 10), lambda a, b: batches(a, b, kill_after=1))
    EmbeddingStore(key, tmp_path).fill_range("train", 20, 2, (10, 20), batches)
    store = EmbeddingStore(key, tmp_path)
    assert not store.complete("train", 20) and store.done_rows("train", (0, 10)) == 4
    store.fill_range("train", 20, 2, (0, 10), batches)
    assert starts == [(0, 10), (10, 20), (4, 10)]  # the killed range went on from row 4 only
    store.finish("train", 20)
    np.testing.assert_array_equal(store.read("train"), np.arange(40, dtype=np.float32).reshape(20, 2))
    # A one-process pass cut at row 12, then continued by two ranks: rank 0 has nothing left, rank 1 starts at 12.
    other = EmbeddingStore(StoreKey("b", "w", "p", "d2", "float32"), tmp_path)
    with pytest.raises(KeyboardInterrupt):
        other.fill("train", 20, 2, lambda start: batches(start, 20, kill_after=3))
    starts.clear()
    for span in ((0, 10), (10, 20)):
        other.fill_range("train", 20, 2, span, batches)
    assert starts == [(12, 20)]  # rows 0-11 were stored by the one-process pass
    other.finish("train", 20)
    np.testing.assert_array_equal(other.read("train"), np.arange(40, dtype=np.float32).reshape(20, 2))


def test_every_part_of_the_key_separates_stores(tmp_path: Path) -> None:
    base = StoreKey("b", "w", "p", "d", "float16")
    variants = [
        base,
        StoreKey("c", "w", "p", "d", "float16"),
        StoreKey("b", "w2", "p", "d", "float16"),
        StoreKey("b", "w", "p2", "d", "float16"),
        StoreKey("b", "w", "p", "d2", "float16"),
        StoreKey("b", "w", "p", "d", "float32"),
    ]
    assert len({EmbeddingStore(k, tmp_path).dir for k in variants}) == len(variants)
    EmbeddingStore(base, tmp_path).fill("train", 4, 2, lambda s: _rows(s, 4, 2, 4))
    assert all(not EmbeddingStore(k, tmp_path).complete("train", 4) for k in variants[1:])


def _fill_slowly(root: str, log: str) -> None:
    import time

    def batches(start: int) -> Iterator[np.ndarray]:
        for batch in _rows(start, 12, 2, 4):
            with open(log, "a") as f:
                f.write(f"{start}\n")
            time.sleep(0.2)
            yield batch

    EmbeddingStore(StoreKey("b", "w", "p", "d"), Path(root)).fill("train", 12, 2, batches)


def test_two_processes_fill_a_store_once(tmp_path: Path) -> None:
    import multiprocessing

    log = tmp_path / "calls.txt"
    ctx = multiprocessing.get_context("fork")
    workers = [ctx.Process(target=_fill_slowly, args=(str(tmp_path), str(log))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert [w.exitcode for w in workers] == [0, 0]
    assert log.read_text().split() == ["0", "0", "0"]  # one pass of three batches, not two
    out = EmbeddingStore(StoreKey("b", "w", "p", "d"), tmp_path).read("train")
    np.testing.assert_array_equal(out, np.arange(24, dtype=np.float16).reshape(12, 2))


# -- data sets through a backbone --------------------------------------------------------------
def test_the_embedded_pool_is_computed_once_and_reused(backbones: dict[str, BackboneSpec], tmp_path: Path) -> None:
    data = _images()
    backbone = resolve_backbone(backbones["tiny_conv"])
    seen = embedded_dataset(data, backbone)
    assert (CALLS["load"], CALLS["batches"]) == (1, 4 + 2)  # 30 train rows and 9 test rows in batches of 8
    assert seen.modality == "vector" and seen.input_shape == (6,) and seen.name == "blobs@tiny_conv"
    assert seen.train.x.shape == (30, 6) and torch.equal(seen.train.y, data.train.y)
    torch.testing.assert_close(seen.train.x.mean(0), torch.zeros(6), atol=1e-4, rtol=0)  # standardised
    # The vectors are the network's on the backbone's preprocessing (12 px, [-1, 1]), stored in fp16.
    net = _network()
    net.load_state_dict(torch.load(backbone.weights_path, weights_only=True))
    with torch.no_grad():
        direct = net(backbone.preprocessing.images(data.train.x)).flatten(1)
    stored = torch.from_numpy(np.asarray(EmbeddingStore(_key(seen), tmp_path / "cache").read("train"), np.float32))
    torch.testing.assert_close(stored, direct, atol=2e-3, rtol=2e-3)
    again = embedded_dataset(data, resolve_backbone(backbones["tiny_conv"]))
    assert (CALLS["load"], CALLS["batches"]) == (1, 6)  # nothing loaded, nothing embedded
    assert torch.equal(again.train.x, seen.train.x) and again.backbone == seen.backbone


def _key(seen: Dataset) -> StoreKey:
    import json

    digest = seen.backbone["embedding_store"].split(":")[1]
    root = Path(svpkit.data.embeddings.cache_dir()) / "embeddings" / digest
    return StoreKey(**json.loads((root / "key.json").read_text()))


def test_other_preprocessing_or_weights_embed_anew(backbones: dict[str, BackboneSpec], tmp_path: Path) -> None:
    data = _images()
    first = embedded_dataset(data, resolve_backbone(backbones["tiny_conv"]))
    resized = embedded_dataset(data, resolve_backbone(backbones["tiny_conv"], "size=16"))
    other = tmp_path / "other.pt"
    torch.manual_seed(3)
    torch.save({k: torch.randn_like(v) for k, v in _network().state_dict().items()}, other)
    reweighted = embedded_dataset(data, resolve_backbone(backbones["tiny_conv"], f"weights={other}"))
    stores = {d.backbone["embedding_store"] for d in (first, resized, reweighted)}
    assert len(stores) == 3 and CALLS["load"] == 3
    assert not torch.equal(first.train.x, resized.train.x) and not torch.equal(first.train.x, reweighted.train.x)


def test_labels_do_not_change_the_key(backbones: dict[str, BackboneSpec]) -> None:
    data = _images()
    first = embedded_dataset(data, resolve_backbone(backbones["tiny_conv"]))
    relabeled = embedded_dataset(
        data.with_labels(np.array([0, 1]), np.array([2, 2])), resolve_backbone(backbones["tiny_conv"])
    )
    assert first.backbone == relabeled.backbone and CALLS["load"] == 1


def test_weights_are_verified(backbones: dict[str, BackboneSpec], weights: Path, tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        resolve_backbone(backbones["tiny_conv"], f"weights={tmp_path / 'none.pt'}")
    with pytest.raises(WeightsError, match="expected 0000"):
        resolve_backbone(backbones["tiny_conv"], "sha256=" + "0" * 64)
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")  # the registered file, corrupted
    with pytest.raises(WeightsError, match="corrupted or different"):
        resolve_backbone(backbones["tiny_conv"])


# -- runs --------------------------------------------------------------------------------------
def test_runs_record_the_store_and_share_it(
    backbones: dict[str, BackboneSpec], tmp_path: Path, tracking_uri: str
) -> None:
    data = _npz(tmp_path / "npz")
    common = dict(
        dataset="npz",
        data_path=str(data),
        backbone="tiny_conv",
        proxy="linear_head",
        target="mlp_head",
        initial=8,
        budgets=[16],
        proxy_epochs=3,
        target_epochs=3,
    )
    first = svpkit.active_learning(selector="least_confidence", **common)
    assert CALLS["load"] == 1
    run = mlflow.get_run(first.run_id)
    assert run.data.tags[Tag.BACKBONE] == "tiny_conv" and run.data.tags[Tag.DATASET] == "npz@tiny_conv"
    assert run.data.tags[Tag.EMBEDDING_STORE].startswith("tiny_conv:")
    assert run.data.params["embedding_store"] == run.data.tags[Tag.EMBEDDING_STORE]
    second = svpkit.active_learning(selector="typiclust", seed=1, **common)  # another run, seed and selector
    assert CALLS["load"] == 1  # the store served it
    assert mlflow.get_run(second.run_id).data.tags[Tag.EMBEDDING_STORE] == run.data.tags[Tag.EMBEDDING_STORE]
    assert len(second.rounds) == 1


BAD_ROWS = {
    "unknown": (["--backbone", "tiny_cnv"], "unknown backbone 'tiny_cnv'; did you mean 'tiny_conv'?"),
    "missing-weights": (
        ["--backbone", "tiny_conv", "--backbone-options", "weights=/no/such/file.pt"],
        "does not exist",
    ),
    "wrong-checksum": (["--backbone", "tiny_conv", "--backbone-options", "sha256=" + "1" * 64], "expected 1111"),
    "bad-option": (["--backbone", "tiny_conv", "--backbone-options", "size=x"], "must be an integer"),
    "text-on-images": (
        ["--backbone", "tiny_text"],
        "--backbone 'tiny_text' reads text inputs but data set 'npz' is vector/image",
    ),
    "image-model": (
        ["--backbone", "tiny_conv", "--proxy", "preact_resnet20"],
        "data set 'npz' seen through --backbone is vector",
    ),
}


def test_bad_backbone_input_is_one_error_line_and_no_run(
    backbones: dict[str, BackboneSpec], tmp_path: Path, tracking_uri: str
) -> None:
    data = _npz(tmp_path / "npz")
    args = ["active-learning", "--quiet", "--dataset", "npz", "--data-path", str(data), "--proxy", "linear_head"]
    args += ["--target", "linear_head", "--initial", "8", "--budgets", "16"]
    for name, (extra, message) in BAD_ROWS.items():
        result = CliRunner().invoke(app, args + extra)
        assert result.exit_code == 2, (name, result.output)
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (name, result.output)
    assert len(mlflow.search_runs(search_all_experiments=True)) == 0 and CALLS["load"] == 0


def test_selectors_pick_in_the_backbone_embedding(backbones: dict[str, BackboneSpec]) -> None:
    """Cold-start selectors (embedding=input) read the stored vectors; k-center and BADGE read a
    linear head's embedding, which is the stored vector itself."""
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions
    from svpkit.selectors.embedding import input_embedding

    seen = embedded_dataset(_images(), resolve_backbone(backbones["tiny_conv"]))
    idx = np.array([0, 4, 7, 29])
    torch.testing.assert_close(input_embedding(seen)(idx), seen.train.x[idx], atol=1e-2, rtol=1e-2)
    learner = make_learner(
        get_plugins().models.get("linear_head"), seen, LearnerOptions(seed=0, device="cpu", epochs=2)
    )
    learner.fit(np.arange(12))
    torch.testing.assert_close(learner.embed(idx).float(), seen.train.x[idx])


def test_a_labeling_project_starts_with_maxherding_on_the_embeddings(
    backbones: dict[str, BackboneSpec], tmp_path: Path, tracking_uri: str
) -> None:
    """``svpkit query --backbone``: the first batch is MaxHerding's (auto's cold start) on the stored
    vectors, not a random sample; after the answers the frozen head is the proxy; the project records the store."""
    from svpkit.loops.cold_start import initial_set

    root = _npz(tmp_path / "npz")
    with np.load(root / "train.npz") as f:
        x, truth = f["x"], f["y"]
    np.savez(root / "train.npz", x=x, y=np.full(len(x), -1), classes=np.array(["a", "b", "c", "d"]))
    settings = dict(dataset="npz", data_path=str(root), backbone="tiny_conv", proxy="linear_head", proxy_epochs=3)
    first = svpkit.query(k=6, **settings)
    assert first.round.strategy == "maxherding" and "backbone" in first.round.reason
    assert first.dataset.name == "npz@tiny_conv"
    np.testing.assert_array_equal(first.round.picks, initial_set(first.dataset, "maxherding", 6, 0))
    assert mlflow.get_run(first.run_id).data.tags[Tag.EMBEDDING_STORE].startswith("tiny_conv:")
    answers = tmp_path / "answers.csv"
    picks = first.round.picks
    answers.write_text("id,label\n" + "".join(f"{i},{'abcd'[truth[i]]}\n" for i in picks))
    svpkit.label(answers, project=first.run_id)
    second = svpkit.query(k=4, project=first.run_id, **settings)
    # The default selector auto: 6 labels over 4 classes is its cold-start half, MaxHerding on the stored vectors.
    assert second.round.strategy == "auto" and second.round.train_seconds > 0
    assert second.round.selector_info is not None and second.round.selector_info["selector"] == "maxherding"
    assert "embedding=input" in mlflow.get_run(first.run_id).data.tags["svpkit.selector_options"].split(",")
    assert CALLS["load"] == 1  # one embedding pass for the whole project


def test_a_labeling_project_on_a_backbone_defaults_to_the_frozen_head(
    backbones: dict[str, BackboneSpec], tmp_path: Path, tracking_uri: str
) -> None:
    """``svpkit query --backbone`` without ``--proxy``: the project's proxy is ``linear_head`` (the
    default ``digits_mlp`` does not read embeddings); a given proxy is kept."""
    from svpkit.api.labeling import QueryArgs, with_default_proxy
    from svpkit.labeling.project import open_project

    root = _npz(tmp_path / "npz")
    with np.load(root / "train.npz") as f:
        x, truth = f["x"], f["y"]
    np.savez(root / "train.npz", x=x, y=np.full(len(x), -1), classes=np.array(["a", "b", "c", "d"]))
    settings = dict(dataset="npz", data_path=str(root), backbone="tiny_conv", proxy_epochs=3)
    first = svpkit.query(k=6, **settings)
    assert open_project(first.run_id).invocation["proxy"] == "linear_head"
    answers = tmp_path / "answers.csv"
    answers.write_text("id,label\n" + "".join(f"{i},{'abcd'[truth[i]]}\n" for i in first.round.picks))
    svpkit.label(answers, project=first.run_id)
    second = svpkit.query(
        k=4, project=first.run_id, proxy="digits_mlp", **settings
    )  # the CLI's default, as typer passes it
    assert second.round.strategy == "auto" and second.round.train_seconds > 0  # the default selector
    assert open_project(second.run_id).invocation["proxy"] == "linear_head"
    assert with_default_proxy(QueryArgs(backbone="tiny_conv", proxy="mlp_head")).proxy == "mlp_head"
    assert with_default_proxy(QueryArgs()).proxy == "digits_mlp"


def test_a_streamed_folder_is_embedded_in_one_streamed_pass(backbones: dict[str, BackboneSpec], tmp_path: Path) -> None:
    """``imagefolder`` with ``stream=on``: the pool is never decoded as a whole; the vectors equal the in-memory path's."""
    from torchvision.io import write_png

    from svpkit.api.flow import load_dataset
    from svpkit.data.streaming import StreamedImages
    from svpkit.plugins import get_plugins

    rng = np.random.default_rng(2)
    for split, n in (("train", 10), ("val", 4)):
        for c in ("a", "b"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            for i in range(n // 2):
                image = torch.from_numpy(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8))
                write_png(image, str(tmp_path / "imgs" / split / c / f"{i}.png"))
    spec = get_plugins().datasets.get("imagefolder")
    streamed = load_dataset(spec, str(tmp_path / "imgs"), dataset_options="size=16,stream=on,workers=1")
    assert isinstance(streamed.train.x, StreamedImages)
    seen = embedded_dataset(streamed, resolve_backbone(backbones["tiny_conv"], "batch_size=4"))
    assert CALLS["batches"] == 3 + 1 and seen.train.x.shape == (10, 6)
    held = load_dataset(spec, str(tmp_path / "imgs"), dataset_options="size=16,stream=off")
    in_memory = embedded_dataset(held, resolve_backbone(backbones["tiny_conv"], "batch_size=4,dtype=float32"))
    torch.testing.assert_close(seen.train.x, in_memory.train.x, atol=5e-3, rtol=5e-3)
