"""The fast torch learner against the plain reference-style pipeline of ``benchmarks/``.

Both must build the same model from the same seed, see the same augmentation distribution and
normalisation, and learn (training loss falls on a tiny set). No timing assertions.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from svpkit.data.base import Dataset, Split
from svpkit.errors import ConfigError
from svpkit.learners import make_learner
from svpkit.learners.torch import TorchLearner, random_crop_flip, scaled_lr
from svpkit.models.base import TrainConfig
from svpkit.plugins import get_plugins
from svpkit.protocols import LearnerOptions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.plain_pipeline import reference_transform, train_plain  # noqa: E402

MEAN = (125.3, 123.0, 113.9)
STD = (63.0, 62.1, 66.7)


def tiny_images(n: int = 64, seed: int = 0, side: int = 32) -> Dataset:
    """Four classes, each a bright square in its own quadrant on noise: learnable in a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 80, size=(n, side, side, 3), dtype=np.uint8)
    y = np.arange(n) % 4
    h = side // 2
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, h * r + 1 : h * r + h - 1, h * q + 1 : h * q + h - 1, c % 3] = 250
    split = Split(torch.from_numpy(x), torch.from_numpy(y.astype(np.int64)))
    return Dataset(
        name="tiny",
        train=split,
        test=split,
        num_classes=4,
        modality="image",
        input_shape=(side, side, 3),
        mean=MEAN,
        std=STD,
        augment=True,
    )


def position_images(n: int) -> np.ndarray:
    """Pixel (r, c) stores its row in channel 0 and column in channel 1; channel 2 marks real pixels."""
    img = np.zeros((32, 32, 3), dtype=np.uint8)
    img[..., 0] = (np.arange(32)[:, None] + 1) * 7
    img[..., 1] = (np.arange(32)[None, :] + 1) * 7
    img[..., 2] = 255
    return np.repeat(img[None], n, axis=0)


def decode(out: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row shift, column shift, flipped, padded-pixel fraction) of augmented position images."""
    src_row = out[:, 16, 16, 0].astype(int) // 7 - 1
    a = out[:, 16, 15, 1].astype(int) // 7 - 1
    b = out[:, 16, 16, 1].astype(int) // 7 - 1
    flipped = b < a
    dx = np.where(flipped, b - 15, b - 16)
    padded = (out[..., 2] == 0).mean(axis=(1, 2))
    return src_row - 16, dx, flipped, padded


def test_augmentation_statistics_match_torchvision() -> None:
    n = 3000
    images = position_images(n)
    g = torch.Generator().manual_seed(0)
    ours = random_crop_flip(torch.from_numpy(images), g).numpy()
    assert ours.dtype == np.uint8 and ours.shape == images.shape
    torch.manual_seed(0)
    tv = reference_transform(MEAN, STD, train=True)
    crop_flip = tv.transforms[:2]  # RandomCrop(32, padding=4), RandomHorizontalFlip
    theirs = np.stack([np.asarray(crop_flip[1](crop_flip[0](Image.fromarray(im)))) for im in images])
    for got in (decode(ours), decode(theirs)):
        dy, dx, flipped, padded = got
        assert set(np.unique(dy)) == set(range(-4, 5)) and set(np.unique(dx)) == set(range(-4, 5))
        assert np.abs(np.bincount(dy + 4, minlength=9) / n - 1 / 9).max() < 0.025
        assert np.abs(np.bincount(dx + 4, minlength=9) / n - 1 / 9).max() < 0.025
        assert abs(flipped.mean() - 0.5) < 0.03
        # Padded pixels: E[1 − (32−|dy|)(32−|dx|)/1024] = 1 − (1 − 20/(9·32))² ≈ 0.134.
        assert abs(padded.mean() - (1 - (1 - 20 / 288) ** 2)) < 0.01
    # Same joint law: the shift of a pixel is consistent with its padding in both pipelines.
    for dy, dx, _, padded in (decode(ours), decode(theirs)):
        expected = 1 - (32 - np.abs(dy)) * (32 - np.abs(dx)) / 1024
        assert np.allclose(padded, expected)


def test_normalisation_matches_torchvision() -> None:
    ds = tiny_images(8)
    learner = TorchLearner(get_plugins().models.get("preact_resnet20"), ds, LearnerOptions(device="cpu"))
    ours = learner.prepare(ds.train.x)
    tv = reference_transform(MEAN, STD, train=False)
    theirs = torch.stack([tv(Image.fromarray(im)) for im in ds.train.x.numpy()])
    assert ours.shape == theirs.shape == (8, 3, 32, 32)
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_same_architecture_and_initial_weights() -> None:
    ds = tiny_images(8)
    spec = get_plugins().models.get("preact_resnet20")
    learner = TorchLearner(spec, ds, LearnerOptions(seed=3, device="cpu", epochs=1))
    ours = learner.new_model()
    run = train_plain(
        lambda: spec.build(4, (32, 32, 3)),  # type: ignore[misc]
        ds.train.x.numpy(),
        ds.train.y.numpy(),
        MEAN,
        STD,
        TrainConfig(epochs=1, batch_size=8),
        torch.device("cpu"),
        epochs=0,
        seed=3,
    )
    assert run.model is not None and type(run.model) is type(ours)
    theirs = run.model.state_dict()
    assert list(theirs) == list(ours.state_dict())
    for name, value in ours.state_dict().items():
        assert torch.equal(value, theirs[name]), name


@pytest.mark.slow
def test_both_pipelines_learn_a_tiny_set() -> None:
    torch.manual_seed(0)
    ds = tiny_images(32, side=16)  # 16×16: the same ResNet20 at a quarter of the cost
    spec = get_plugins().models.get("preact_resnet20")
    config = TrainConfig(epochs=6, batch_size=8, lr=0.05, milestones=(4,))
    opts = LearnerOptions(seed=0, device="cpu", epochs=6, batch_size=8, lr=0.05)
    learner = make_learner(spec, ds, opts)
    assert isinstance(learner, TorchLearner)
    learner.fit(np.arange(32))
    losses = [float(x) for x in learner.loss_history]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0] and min(losses[3:]) < min(losses[:3]), losses
    assert learner.timings["steps"] == 6 * 4 and learner.timings["images"] == 6 * 32
    assert learner.timings["compiled"] == 0.0  # "auto" never compiles on the CPU
    plain = train_plain(
        lambda: spec.build(4, (16, 16, 3)),  # type: ignore[misc]
        ds.train.x.numpy(),
        ds.train.y.numpy(),
        MEAN,
        STD,
        config,
        torch.device("cpu"),
        seed=0,
    )
    assert len(plain.losses) == 6 and plain.losses[-1] < 0.8 * plain.losses[0], plain.losses


def test_warm_up_changes_nothing_and_a_partial_last_batch_trains() -> None:
    ds = tiny_images(40)
    spec = get_plugins().models.get("preact_resnet20")
    learner = TorchLearner(spec, ds, LearnerOptions(seed=1, device="cpu", epochs=1, batch_size=16))
    assert learner.warm_up() > 0 and learner.model is None
    learner.fit(np.arange(37))  # 16 + 16 + 5
    assert learner.timings["steps"] == 3
    probs = learner.predict_proba(np.arange(5))
    emb = learner.embed(np.arange(5))
    assert probs.shape == (5, 4) and torch.allclose(probs.sum(1), torch.ones(5))
    assert emb.shape == (5, 64)


def test_batch_size_and_learning_rate_scaling() -> None:
    assert scaled_lr(0.1, 512, 128, "linear") == pytest.approx(0.4)
    assert scaled_lr(0.1, 512, 128, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 512, 128, "none") == 0.1
    ds = tiny_images(8)
    spec = get_plugins().models.get("preact_resnet20")
    learner = TorchLearner(spec, ds, LearnerOptions(device="cpu", batch_size=256, extra={"lr_scaling": "linear"}))
    assert learner.config.batch_size == 256 and learner.config.lr == pytest.approx(0.2)
    assert learner.config.epochs == 181 and learner.config.milestones == (90, 136)
    with pytest.raises(ConfigError, match="lr_scaling"):
        TorchLearner(spec, ds, LearnerOptions(device="cpu", batch_size=256, extra={"lr_scaling": "cubic"}))
    with pytest.raises(ConfigError, match="compile"):
        TorchLearner(spec, ds, LearnerOptions(device="cpu", extra={"compile": "maybe"}))


@pytest.mark.gpu
def test_gpu_fit_with_compile_learns() -> None:
    ds = tiny_images(256)
    spec = get_plugins().models.get("preact_resnet20")
    opts = LearnerOptions(seed=0, device="cuda", epochs=4, batch_size=32, lr=0.05, extra={"compile": "on"})
    learner = TorchLearner(spec, ds, opts)
    assert learner.channels_last and learner.amp
    learner.fit(np.arange(250))  # 7 full batches compiled + an eager partial one per epoch
    losses = [float(x) for x in learner.loss_history]
    assert learner.timings["compiled"] == 1.0 and learner.timings["compile_seconds"] > 0
    assert losses[-1] < losses[0], losses
    assert learner.predict_proba().shape == (256, 4)


def test_active_learning_reports_warm_up_once_and_counts_it() -> None:
    from svpkit.data.digits import load_digits
    from svpkit.loops.active_learning import ALConfig, run_active_learning
    from svpkit.loops.settings import LoopSettings
    from svpkit.tracking.memory import MemoryTracker

    plugins = get_plugins()
    tracker = MemoryTracker()
    _settings = LoopSettings(proxy_epochs=1, target_epochs=1, device="cpu")
    result = run_active_learning(
        load_digits(),
        plugins.selectors.get("least_confidence"),
        plugins.models.get("digits_mlp"),
        plugins.models.get("digits_mlp"),
        ALConfig(initial=20, budgets=[60, 100], settings=_settings, train_target=False),
        tracker,
    )
    warm = [r.warmup_seconds for r in result.rounds]
    assert warm[0] > 0 and warm[1:] == [0.0]
    first = result.rounds[0]
    assert first.total_seconds == pytest.approx(
        first.warmup_seconds + first.train_seconds + first.inference_seconds + first.selection_seconds
    )
    assert [v for _, v in tracker.metrics["round/warmup_seconds"]] == warm


def test_training_progress_moves_per_minibatch_by_its_examples() -> None:
    """An ImageNet-size epoch must not sit at 0 %: the torch learner advances the bar by each
    minibatch's examples, and the loops give it epochs × examples as its total."""
    from contextlib import contextmanager

    from svpkit.loops.fitting import timed_fit

    steps: list[int] = []
    totals: list[int | None] = []

    class Recorder:
        @contextmanager
        def task(self, description: str, total: int | None):  # type: ignore[no-untyped-def]
            totals.append(total)
            yield steps.append

        def log(self, message: str) -> None:
            pass

    data = get_plugins().datasets.get("digits").load()
    spec = get_plugins().models.get("digits_mlp")
    indices = np.arange(70)
    fitted = timed_fit(spec, data, LearnerOptions(seed=0, device="cpu", epochs=2), indices, Recorder(), "train")  # type: ignore[arg-type]
    batch = fitted.learner.config.batch_size  # type: ignore[attr-defined]
    per_epoch = [batch] * (70 // batch) + ([70 % batch] if 70 % batch else [])
    assert totals == [2 * 70] and steps == per_epoch * 2 and len(per_epoch) > 1
