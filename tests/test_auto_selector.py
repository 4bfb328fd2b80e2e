"""``--selector auto`` (issue 24): the switch rule on scripted sequences, the two phases against the
selectors they hand to, and one tiny run that logs its switch round and reason. Issue 35: the
cold-start half's representation resolved from how the inputs are held, and ``svpkit query``'s
default auto past a project's first batch."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.base import Dataset, Split
from svpkit.errors import ConfigError
from svpkit.plugins import get_plugins
from svpkit.selectors.auto import auto_phase, first_switch
from svpkit.selectors.base import SelectionContext, resolve_selector_options


@pytest.mark.parametrize(
    ("labeled", "classes", "switch", "hand_over"),
    [(14, 10, 5.0, False), (49, 10, 5.0, False), (50, 10, 5.0, True), (72, 10, 5.0, True), (9, 3, 3.0, True)],
)
def test_switch_point(labeled: int, classes: int, switch: float, hand_over: bool) -> None:
    assert auto_phase(labeled, classes, switch)[0] is hand_over


def test_scripted_run_switches_once_at_the_first_crossing() -> None:
    """Labeled sizes of a run's rounds: the first round at or over 5 per class hands over; it never goes back."""
    sizes = [14, 29, 43, 58, 72, 144]
    phases = [auto_phase(n, 10, 5.0) for n in sizes]
    infos = [{"phase": "hand-over" if h else "cold start", "selector": "x", "reason": why} for h, why in phases]
    assert [h for h, _ in phases] == [False, False, False, True, True, True]
    assert first_switch(infos) == "round 4: x because 58 labeled / 10 classes = 5.80 per class ≥ 5"
    assert first_switch(infos[:3]) is None and first_switch([None, None]) is None


@pytest.mark.parametrize(
    ("labeled", "kappas", "hand_over", "why"),
    [
        (72, [], False, "7.20 per class ≥ 5, no κ between consecutive targets yet"),
        (144, [0.70], False, "14.40 per class ≥ 5, highest κ so far 0.700 < 0.9"),
        (288, [0.70, 0.95], True, "28.80 per class ≥ 5, highest κ so far 0.950 ≥ 0.9"),
        (30, [0.95], False, "3.00 per class < 5, highest κ so far 0.950 ≥ 0.9"),
        (72, None, True, "72 labeled / 10 classes = 7.20 per class ≥ 5"),
    ],
)
def test_kappa_gate(labeled: int, kappas: list[float] | None, hand_over: bool, why: str) -> None:
    """Both the count and the κ evidence must hold; no κ history at all (None): the count alone."""
    got = auto_phase(labeled, 10, 5.0, kappas, 0.9)
    assert got[0] is hand_over and got[1].endswith(why)


def test_scripted_kappa_run_hands_over_once() -> None:
    """A digits-like run: κ settles at round 4; a later dip below the bar does not hand back."""
    sizes, kappas = [14, 72, 144, 288, 431, 575], [0.55, 0.93, 0.85, 0.97]
    phases = [auto_phase(n, 10, 5.0, kappas[: max(i - 1, 0)], 0.9) for i, n in enumerate(sizes)]
    assert [h for h, _ in phases] == [False, False, False, True, True, True]
    infos = [{"phase": "hand-over" if h else "cold start", "selector": "x", "reason": why} for h, why in phases]
    assert first_switch(infos) == (
        "round 4: x because 288 labeled / 10 classes = 28.80 per class ≥ 5, highest κ so far 0.930 ≥ 0.9"
    )
    assert auto_phase(144, 10, 5.0, [], 0.0)[0] is True  # switch_kappa 0: the count-only rule


def _context(labeled: int, options: dict[str, object]) -> SelectionContext:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    probs = torch.softmax(torch.as_tensor(rng.normal(size=(60 - labeled, 3))), dim=1)
    ctx = SelectionContext(np.arange(labeled, 60), np.arange(labeled), np.random.default_rng(1), options=options)
    ctx.inputs = lambda ix: torch.as_tensor(x[ix])
    ctx.probabilities = probs
    ctx.pool_embeddings = torch.as_tensor(x[labeled:])  # the selector model's features (BADGE's)
    return ctx


def test_each_phase_picks_what_its_selector_picks() -> None:
    registry = get_plugins().selectors
    auto, herding, least = registry.get("auto"), registry.get("maxherding"), registry.get("least_confidence")
    cold = auto.select(_context(6, {"switch_per_class": 3.0}), 5)  # 6 / 3 classes = 2 per class: cold start
    assert cold.info["phase"] == "cold start" and cold.info["selector"] == "maxherding"  # the default (issue 35)
    assert cold.picks.tolist() == herding.select(_context(6, {"embedding": "input"}), 5).picks.tolist()
    typiclust = registry.get("typiclust")
    chosen = auto.select(_context(6, {"switch_per_class": 3.0, "cold_start": "typiclust"}), 5)
    assert chosen.picks.tolist() == typiclust.select(_context(6, {"embedding": "input"}), 5).picks.tolist()
    warm = auto.select(_context(9, {"switch_per_class": 3.0}), 5)  # 3 per class, no κ kept: hand over
    assert warm.info["phase"] == "hand-over" and "3.00 per class ≥ 3" in warm.info["reason"]
    unsettled = _context(9, {"switch_per_class": 3.0})
    unsettled.stop_kappas = [0.5]  # the loop keeps κ, and it is below 0.9: still cold start
    assert auto.select(unsettled, 5).info["phase"] == "cold start"
    assert warm.info["selector"] == "badge"  # the hand-over default (issue 35)
    assert warm.picks.tolist() == registry.get("badge").select(_context(9, {}), 5).picks.tolist()
    earlier = auto.select(_context(9, {"switch_per_class": 3.0, "then": "least_confidence"}), 5)
    assert earlier.picks.tolist() == least.select(_context(9, {}), 5).picks.tolist()
    assert earlier.picks.tolist() != warm.picks.tolist()


def test_active_learning_with_auto_logs_the_switch(tracking_uri: str, tmp_path: Path) -> None:
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--selector", "auto", "--selector-options", "switch_per_class=3,switch_kappa=0"]
    args += ["--initial", "20"]
    args += ["--budgets", "40,60", "--proxy-epochs", "1", "--target-epochs", "1", "--agreement", "off"]
    res = CliRunner().invoke(app, ["active-learning", *args])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    assert run.data.tags["svpkit.auto_switch"] == (
        "round 2: badge because 40 labeled / 10 classes = 4.00 per class ≥ 3"
    )
    timings = json.loads(Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text())
    assert [r["selector_info"]["selector"] for r in timings["rounds"]] == ["maxherding", "badge"]


def test_active_learning_feeds_auto_the_stop_set_kappa(tracking_uri: str, tmp_path: Path) -> None:
    """In a run the κ gate reads the loop's stopping κ: none before round 3, then the logged value."""
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--selector", "auto", "--selector-options", "switch_per_class=1", "--initial", "20"]
    args += ["--budgets", "40,60,80", "--proxy-epochs", "1", "--target-epochs", "1", "--agreement", "off"]
    res = CliRunner().invoke(app, ["active-learning", *args])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    timings = json.loads(Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text())
    infos = [r["selector_info"] for r in timings["rounds"]]
    for info in infos[:2]:  # 20 and 40 labeled: at most one target trained before the pick
        assert info["phase"] == "cold start" and info["reason"].endswith("no κ between consecutive targets yet")
    kappa = [m.value for m in client.get_metric_history(run.info.run_id, "stopping/kappa") if m.step == 60]
    assert f"highest κ so far {kappa[0]:.3f}" in infos[2]["reason"]
    assert (infos[2]["phase"] == "hand-over") is (kappa[0] >= 0.9)


# -- the cold-start half's representation (issue 35: auto as the default on every data set kind) --
def _text_data() -> Dataset:
    y = torch.arange(12) % 3
    texts = [f"word{i} other{i % 3}" for i in range(12)]
    return Dataset("words", Split(texts, y), Split(texts[:3], y[:3]), 3, "text", ())


def _streamed_data(tmp_path: Path) -> Dataset:
    """A 4-class image folder of 24 PNGs read with ``stream=on`` (its pixels are never held)."""
    from torchvision.io import write_png

    from svpkit.data.imagefolder import load_imagefolder

    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("val", 8)):
        for i in range(n):
            folder = tmp_path / "png" / split / f"c{i % 4}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8) // 4 + 60 * (i % 4)
            write_png(torch.from_numpy(pixels.astype(np.uint8)), str(folder / f"{i}.png"))
    return load_imagefolder(tmp_path / "png", size=8, stream="on", workers=1)


def test_embedding_auto_resolves_from_how_the_inputs_are_held(tmp_path: Path) -> None:
    """In-memory inputs → ``input``; streamed images and text → ``model``; a choice given is kept;
    what would read a lazily read pool as one matrix (embedding=input, a cold-start initial set) is refused."""
    from svpkit.data.digits import load_digits
    from svpkit.loops.cold_start import settle_representation

    registry = get_plugins().selectors
    auto, typiclust = registry.get("auto"), registry.get("typiclust")
    defaults = resolve_selector_options(auto, {})
    assert defaults["embedding"] == "auto"
    streamed = _streamed_data(tmp_path)
    for data, want in ((load_digits(), "input"), (streamed, "model"), (_text_data(), "model")):
        assert settle_representation(data, auto, defaults)["embedding"] == want, data.name
        assert settle_representation(data, auto, {})["embedding"] == want  # a context with no options
        assert settle_representation(data, auto, defaults | {"embedding": "model"})["embedding"] == "model"
    for data in (streamed, _text_data()):
        with pytest.raises(ConfigError, match="--selector typiclust with embedding=input"):
            settle_representation(data, typiclust, resolve_selector_options(typiclust, {}))
        with pytest.raises(ConfigError, match="--selector auto with embedding=input"):
            settle_representation(data, auto, defaults | {"embedding": "input"})
        with pytest.raises(ConfigError, match="--initial-selector maxherding picks on the standardised inputs"):
            settle_representation(data, auto, defaults, registry.get("maxherding"))
    model = resolve_selector_options(typiclust, {"embedding": "model"})
    assert settle_representation(streamed, typiclust, model) == model


def test_a_cold_start_initial_selector_on_a_streamed_folder_is_one_error_line(
    tmp_path: Path, tracking_uri: str
) -> None:
    """``--initial-selector maxherding`` on a streamed pool: no model exists yet and the pool is
    never decoded into memory, so one ``error:`` line, exit 2, no run."""
    _streamed_data(tmp_path)
    args = ["active-learning", "--quiet", "--dataset", "imagefolder", "--data-path", str(tmp_path / "png")]
    args += ["--dataset-options", "size=8,stream=on,workers=1", "--proxy", "preact_resnet20", "--initial", "4"]
    args += ["--target", "preact_resnet20"]
    args += ["--budgets", "8", "--device", "cpu"]
    for extra, message in (
        (["--initial-selector", "maxherding"], "--initial-selector maxherding picks on the standardised inputs"),
        (["--selector", "typiclust"], "--selector typiclust with embedding=input"),
    ):
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.output
        assert "reads its images lazily" in lines[0]
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_labeling_project_picks_with_auto_past_its_first_batch(tracking_uri: str, tmp_path: Path) -> None:
    """``svpkit query``'s default selector is auto: MaxHerding (its cold-start half, on the
    standardised inputs) picks the first batch and goes on while the project has under 5 labels per class,
    then BADGE; each round records which half picked and why."""
    import svpkit
    from svpkit.data.digits import load_digits
    from svpkit.labeling.project import open_project

    digits = load_digits()
    keep = np.flatnonzero(digits.train.y.numpy() < 4)[:80]
    truth = digits.train.y.numpy()[keep]
    test = np.flatnonzero(digits.test.y.numpy() < 4)
    classes = np.array(["0", "1", "2", "3"])
    root = tmp_path / "hidden"
    root.mkdir()
    np.savez(root / "train.npz", x=digits.train.x.numpy()[keep], y=np.full(keep.size, -1), classes=classes)
    np.savez(root / "test.npz", x=digits.test.x.numpy()[test], y=digits.test.y.numpy()[test])
    settings = dict(dataset="npz", data_path=str(root), dataset_options="standardize=false", proxy_epochs=3)
    first = svpkit.query(k=12, **settings)
    assert first.round.strategy == "maxherding" and first.round.selector_info is None
    assert "cold-start selector" in first.round.reason and "standardised inputs" in first.round.reason
    project, rounds = first.run_id, [first]
    for k in (12, 8):  # 12 labeled (3 per class): cold start; then 24 (6 per class): hand-over
        svpkit.label(project=project, answers={str(i): str(truth[i]) for i in rounds[-1].round.picks})
        rounds.append(svpkit.query(k=k, project=project, **settings))
    second, third = rounds[1].round, rounds[2].round
    assert second.strategy == third.strategy == "auto" and second.train_seconds > 0
    assert second.selector_info == {
        "selector": "maxherding",
        "phase": "cold start",
        "reason": "12 labeled / 4 classes = 3.00 per class < 5",
    }
    assert "(cold start: maxherding, 12 labeled / 4 classes" in second.reason
    assert third.selector_info is not None and third.selector_info["phase"] == "hand-over"
    assert third.selector_info["selector"] == "badge"
    saved = open_project(project)
    assert [r.selector_info for r in saved.rounds] == [None, second.selector_info, third.selector_info]
    tags = mlflow.get_run(project).data.tags
    assert tags["svpkit.selector"] == "auto" and "embedding=input" in tags["svpkit.selector_options"].split(",")
