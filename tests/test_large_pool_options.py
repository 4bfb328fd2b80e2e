"""k-center and BADGE on large pools: 16-bit storage of the embeddings and the random subpool per round.

Conformance: 16-bit storage picks exactly what float32 picks whenever the features are
representable in the 16-bit type, and otherwise exactly what float32 picks on the rounded
features; the subpool draws its candidates from the round's RNG (same seed, same picks), picks
only among them, and leaves the picks unchanged when off or when the pool is small enough.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.errors import ConfigError
from svpkit.plugins import get_plugins
from svpkit.selectors.badge import badge_select
from svpkit.selectors.base import SelectionContext, parse_selector_options
from svpkit.selectors.k_center import greedy_k_center

SELECTORS = ("greedy_k_center", "badge")


def _context(seed: int, n: int, options: str, dtype: torch.dtype | None = None) -> SelectionContext:
    """A pool of ``n`` generated points (features off the origin, softmax probabilities), 20 labeled.

    With ``dtype`` the features and probabilities are first rounded to it (then held in float32).
    """
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n + 20, 12, generator=g) * 2 + 1
    probs = torch.softmax(torch.randn(n, 5, generator=g) * 2, dim=1)
    if dtype is not None:
        feats, probs = feats.to(dtype).float(), probs.to(dtype).float()
    spec = get_plugins().selectors.get("greedy_k_center")
    return SelectionContext(
        pool=np.arange(20, n + 20, dtype=np.int64) * 3,  # training indices unlike pool positions
        labeled=np.arange(20, dtype=np.int64),
        rng=np.random.default_rng(seed),
        probabilities=probs,
        pool_embeddings=feats[:n],
        labeled_embeddings=feats[n:],
        options=parse_selector_options(spec, options),
    )


def _select(name: str, ctx: SelectionContext, k: int) -> np.ndarray:
    return np.asarray(get_plugins().selectors.get(name).select(ctx, k).picks)


@pytest.mark.parametrize("name", SELECTORS)
@pytest.mark.parametrize("storage,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_16_bit_storage_picks_like_float32_on_representable_features(
    name: str, storage: str, dtype: torch.dtype
) -> None:
    for seed in range(3):
        fp32 = _select(name, _context(seed, 1500, "", dtype), 60)
        half = _select(name, _context(seed, 1500, f"storage={storage}", dtype), 60)
        assert half.tolist() == fp32.tolist()


@pytest.mark.parametrize("storage,dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_16_bit_storage_picks_what_float32_picks_on_the_rounded_features(storage: str, dtype: torch.dtype) -> None:
    ctx = _context(7, 2000, f"storage={storage}")
    assert ctx.pool_embeddings is not None and ctx.labeled_embeddings is not None
    rounded = ctx.pool_embeddings.to(dtype).float()
    expected = greedy_k_center(rounded, ctx.labeled_embeddings.to(dtype).float(), 80)[0].numpy()
    assert _select("greedy_k_center", ctx, 80).tolist() == ctx.pool[expected].tolist()


def test_storage_is_opt_in_and_default_picks_are_the_float32_algorithm() -> None:
    ctx = _context(3, 1200, "")
    assert ctx.options["storage"] == "fp32" and ctx.options["subpool"] == 0
    assert ctx.pool_embeddings is not None and ctx.labeled_embeddings is not None
    expected = greedy_k_center(ctx.pool_embeddings, ctx.labeled_embeddings, 50)[0].numpy()
    assert _select("greedy_k_center", ctx, 50).tolist() == ctx.pool[expected].tolist()
    gen = torch.Generator().manual_seed(int(np.random.default_rng(3).integers(2**63 - 1)))
    assert ctx.probabilities is not None
    badge = badge_select(ctx.probabilities, ctx.pool_embeddings, 50, gen)[0].numpy()
    assert _select("badge", _context(3, 1200, ""), 50).tolist() == ctx.pool[badge].tolist()


@pytest.mark.parametrize("name", SELECTORS)
def test_subpool_picks_only_candidates_of_the_rounds_rng(name: str) -> None:
    ctx = _context(11, 3000, "subpool=400")
    candidates = np.sort(np.random.default_rng(11).choice(3000, size=400, replace=False))
    selection = get_plugins().selectors.get(name).select(ctx, 40)
    assert set(selection.picks.tolist()) <= set(ctx.pool[candidates].tolist()) and len(set(selection.picks)) == 40
    outside = np.setdiff1d(np.arange(3000), candidates)
    assert np.isneginf(selection.scores[outside]).all() and np.isfinite(selection.scores[candidates]).all()
    assert selection.info == {"subpool": {"candidates": 400, "pool": 3000}}
    if name == "greedy_k_center":  # the picks are greedy k-center over the candidates' rows
        assert ctx.pool_embeddings is not None and ctx.labeled_embeddings is not None
        inner = greedy_k_center(ctx.pool_embeddings[candidates], ctx.labeled_embeddings, 40)[0].numpy()
        assert selection.picks.tolist() == ctx.pool[candidates[inner]].tolist()


@pytest.mark.parametrize("name", SELECTORS)
def test_subpool_is_deterministic_per_seed_and_off_or_large_changes_nothing(name: str) -> None:
    first = _select(name, _context(5, 2500, "subpool=300"), 30)
    assert _select(name, _context(5, 2500, "subpool=300"), 30).tolist() == first.tolist()
    other = _context(5, 2500, "subpool=300")
    other.rng = np.random.default_rng(6)
    assert _select(name, other, 30).tolist() != first.tolist()
    plain = _select(name, _context(5, 2500, ""), 30)
    assert _select(name, _context(5, 2500, "subpool=2500"), 30).tolist() == plain.tolist()
    assert _select(name, _context(5, 2500, "subpool=0"), 30).tolist() == plain.tolist()
    # never fewer candidates than the batch: a subpool of 10 for 30 picks draws 30
    assert get_plugins().selectors.get(name).select(_context(5, 2500, "subpool=10"), 30).info["subpool"] == {
        "candidates": 30,
        "pool": 2500,
    }


@pytest.mark.parametrize(
    "text,message",
    [("subpool=-5", "at least 0"), ("storage=int8", "one of fp32, bf16, fp16"), ("subpol=3", "did you mean")],
)
def test_bad_large_pool_options_are_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_selector_options(get_plugins().selectors.get("greedy_k_center"), text)


def test_a_subpool_run_logs_the_option_and_the_candidates(tracking_uri: str, tmp_path: Path) -> None:
    small = ["--dataset", "digits", "--train-limit", "400", "--test-limit", "100", "--device", "cpu", "--quiet"]
    run_args = [*small, "--initial", "30", "--budgets", "60", "--proxy-epochs", "1", "--target-epochs", "1"]
    options = ["--selector", "greedy_k_center", "--selector-options", "subpool=100,storage=bf16"]
    res = CliRunner().invoke(app, ["active-learning", *run_args, *options])
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    assert run.data.tags["svpkit.selector_options"] == "storage=bf16,subpool=100"
    assert run.data.params["selector_options"] == "storage=bf16,subpool=100"
    timings = Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text()
    assert '"candidates": 100' in timings and '"pool": 370' in timings
    scores = np.load(client.download_artifacts(run.info.run_id, "rounds/1/scores.npy", str(tmp_path)))
    assert scores.shape == (370,) and int(np.isfinite(scores).sum()) == 100
    candidates = client.get_metric_history(run.info.run_id, "selection/candidates")
    assert [(m.step, m.value) for m in candidates] == [(60, 100.0)]


def test_16_bit_storage_embeds_the_pool_block_by_block(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop keeps the pool's embeddings in the storage dtype, computed a block at a time: the
    values are the whole-pool float32 embeddings rounded, and no float32 copy of the pool is kept."""
    from svpkit.loops import scoring

    plugins = get_plugins()
    learner = _digits_learner()
    learner.inference_batch_size = 32  # type: ignore[attr-defined]
    monkeypatch.setattr(scoring, "EMBED_BLOCK", 64)  # several blocks, each a whole number of batches
    calls: list[int] = []
    embed = learner.embed
    monkeypatch.setattr(learner, "embed", lambda ix=None, split="train": calls.append(len(ix)) or embed(ix, split))
    spec = plugins.selectors.get("greedy_k_center")
    pool = np.arange(100, 400)
    for storage, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        calls.clear()
        ctx = SelectionContext(
            pool, np.arange(100), np.random.default_rng(0), options=parse_selector_options(spec, f"storage={storage}")
        )
        scoring.fill_selection_context(ctx, learner, spec)
        assert ctx.pool_embeddings is not None and ctx.pool_embeddings.dtype == dtype
        assert torch.equal(ctx.pool_embeddings, embed(pool).to(dtype))
        assert sorted(calls) == ([44, 64, 64, 64, 64, 100] if storage == "bf16" else [100, 300])


@pytest.mark.parametrize("name", ["greedy_k_center", "badge"])
def test_a_subpool_drawn_before_scoring_scores_only_its_candidates(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Given the batch, the loop draws the subpool first and embeds (and, for BADGE, scores) only
    the candidates; the candidates and the picks are those of scoring the whole pool."""
    from svpkit.loops import scoring

    plugins = get_plugins()
    learner = _digits_learner()
    rows: list[int] = []
    batches = learner.input_batches  # every inference pass goes through it
    monkeypatch.setattr(
        learner, "input_batches", lambda ix=None, split="train": rows.append(len(ix)) or batches(ix, split)
    )
    spec, pool = plugins.selectors.get(name), np.arange(100, 1100)
    picked = []
    for k in (None, 20):
        rows.clear()
        ctx = SelectionContext(
            pool, np.arange(100), np.random.default_rng(3), options=parse_selector_options(spec, "subpool=150")
        )
        scoring.fill_selection_context(ctx, learner, spec, k=k)
        selection = spec.select(ctx, 20)
        picked.append((selection.picks.tolist(), selection.info["subpool"], np.isfinite(selection.scores).sum()))
        passes = 2 if name == "badge" else 1  # BADGE: the softmax pass and the embeddings; both: the labeled set's
        scored = 1000 if k is None else 150  # without the batch: the whole pool; with it: the candidates only
        assert sorted(rows) == [100] + [scored] * passes
        assert (ctx.candidates is None) == (k is None)
    assert picked[0] == picked[1] and picked[1][1] == {"candidates": 150, "pool": 1000} and picked[1][2] == 150


def _digits_learner() -> object:
    """A digits_mlp learner fitted one epoch on the first 100 digits."""
    from svpkit.learners import make_learner
    from svpkit.protocols import LearnerOptions

    plugins = get_plugins()
    learner = make_learner(
        plugins.models.get("digits_mlp"),
        plugins.datasets.get("digits").load(),
        LearnerOptions(seed=1, device="cpu", epochs=1),
    )
    learner.fit(np.arange(100))
    return learner
