"""torchrun on CPU (gloo): sharded k-center, sharded scoring and DDP training against one process,
the sharded selection path of the loops (``svpkit.loops.scoring``), and an active-learning round under ``torchrun --nproc_per_node=2`` that only rank 0 logs.

The worker half of this file runs under torchrun (``python -m torch.distributed.run ... this file
--worker OUT``); the test half compares what each rank wrote with single-process results.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from svpkit import parallel
from svpkit.errors import ConfigError
from svpkit.learners.torch_ddp import fit_ddp
from svpkit.selectors.k_center import sharded_greedy_k_center

ROOT = Path(__file__).resolve().parents[1]
POOL, DIM, CENTERS, PICKS = 301, 8, 7, 40


def _features() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    pool = torch.randn(POOL, DIM, generator=g)
    # Exact duplicates across the two shards (rank 0 holds 0..150): equal distances must go to
    # the lowest global index, as torch.argmax does on one process.
    pool[200:204] = pool[5]
    pool[250] = pool[10]
    pool[151] = pool[150]
    centers = torch.randn(CENTERS, DIM, generator=g)
    return pool, centers


def _scorer() -> torch.nn.Module:
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(DIM, 16), torch.nn.ReLU(), torch.nn.Linear(16, 5))


class _Recorder:
    """A training observer that keeps every minibatch it is shown."""

    def __init__(self) -> None:
        self.indices: list[torch.Tensor] = []
        self.targets: list[torch.Tensor] = []
        self.logits: list[torch.Tensor] = []

    def on_fit_start(self, num_train: int, device: torch.device) -> None:
        self.num_train = num_train

    def on_train_batch(self, indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        self.indices.append(indices.clone())
        self.targets.append(targets.clone())
        self.logits.append(logits.float().clone())


def _learner():  # type: ignore[no-untyped-def]
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions

    plugins = get_plugins()
    data = plugins.datasets.get("digits").load()
    # 3 epochs of 201 examples in batches of 32: the last batch (9) splits 5/4 across ranks.
    options = LearnerOptions(seed=3, device="cpu", epochs=3)
    return make_learner(plugins.models.get("digits_mlp"), data, options), np.arange(0, 402, 2)


def _k_center_selection(learner, labeled: np.ndarray, **options: int) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    """The loops' selection of greedy k-center on a sharded pool, and on the whole pool in one process."""
    from svpkit.loops.scoring import SHARD_OPTION, fill_selection_context, select
    from svpkit.plugins import get_plugins
    from svpkit.selectors.base import SelectionContext

    k_center = get_plugins().selectors.get("greedy_k_center")
    pool = np.arange(1, 402, 2)
    ctx = SelectionContext(pool=pool, labeled=labeled, rng=np.random.default_rng(0), options=dict(options))
    fill_selection_context(ctx, learner, k_center)
    assert SHARD_OPTION in ctx.options and ctx.pool_embeddings is not None
    assert ctx.pool_embeddings.shape[0] < len(pool)  # this rank's shard only
    sharded = select(k_center, ctx, 10).picks.tolist()
    whole = SelectionContext(pool=pool, labeled=labeled, rng=np.random.default_rng(0), options=dict(options))
    whole.pool_embeddings, whole.labeled_embeddings = learner.embed(pool), learner.embed(labeled)
    return sharded, select(k_center, whole, 10).picks.tolist()


def _worker(out: Path) -> None:
    torch.set_num_threads(1)
    info = parallel.init_from_env("cpu")
    assert info.enabled and info.backend == "gloo" and parallel.is_distributed()
    rank = info.rank
    pool, centers = _features()
    a, b = parallel.shard_range(POOL, rank, info.world_size)
    picks, initial = sharded_greedy_k_center(pool[a:b], centers, PICKS, POOL)
    scorer = _scorer().eval()
    order = np.arange(POOL)[::-1].copy()
    with torch.no_grad():
        probs = parallel.sharded_rows(lambda ix: torch.softmax(scorer(pool[torch.as_tensor(ix)]), 1), order)
    learner, indices = _learner()
    recorder = _Recorder()
    fitted = fit_ddp(learner, indices, observers=[recorder])  # returns what it trained; the learner is unchanged
    assert learner.model is None and fitted.model is not None
    learner.model = fitted.model
    via_fit, _ = _learner()
    via_fit.fit(indices)  # TorchLearner.fit hands over to DDP under torchrun
    assert via_fit.model is not None
    sharded_picks, whole_picks = _k_center_selection(learner, indices)
    subpool_picks = _k_center_selection(learner, indices, subpool=60)  # candidates from both shards
    torch.save(
        {
            "picks": picks,
            "initial": initial,
            "probs": probs,
            "params": {k: v.detach().clone() for k, v in learner.model.state_dict().items()},
            "indices": recorder.indices,
            "targets": recorder.targets,
            "logits": recorder.logits,
            "proba": learner.predict_proba(indices[:50]),
            "via_fit_params": {k: v.detach().clone() for k, v in via_fit.model.state_dict().items()},
            "via_fit_world": via_fit.timings.get("world_size"),
            "k_center_sharded": sharded_picks,
            "k_center_whole": whole_picks,
            "k_center_subpool": subpool_picks,
        },
        out / f"rank{rank}.pt",
    )


def _torchrun(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    for var in ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "WORLD_SIZE", "RANK"):
        full_env.pop(var, None)
    proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"torchrun failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


# -- without torchrun -------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 2, 7, 301])
@pytest.mark.parametrize("world", [1, 2, 3, 8])
def test_shards_cover_the_range_in_order(n: int, world: int) -> None:
    ranges = [parallel.shard_range(n, r, world) for r in range(world)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    assert all(ranges[r][1] == ranges[r + 1][0] for r in range(world - 1))
    sizes = parallel.shard_sizes(n, world)
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n


def test_pick_key_orders_by_distance_then_lowest_index() -> None:
    def key(values: list[float], offset: int) -> int:
        return int(parallel._pick_key(torch.tensor(values, dtype=torch.float32), offset))

    assert key([0.5, 2.0, 2.0], 0) == key([2.0], 1)  # first maximum within a shard
    assert key([2.0], 1) > key([2.0], 7)  # equal distance: lower global index wins
    assert key([2.0000002], 9) > key([2.0], 1)  # larger distance wins, however close
    assert key([0.0], 3) > key([-1.0, -1.0], 0) == 0  # picked points (-1) never win
    assert key([-0.0], 3) == key([0.0], 3)
    assert key([], 0) == 0


def test_single_process_is_untouched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = parallel.init_from_env("auto")
    assert not info.enabled and info.is_main and not parallel.is_distributed()
    assert parallel.sharded_rows(lambda ix: torch.as_tensor(ix) * 2, np.arange(5)).tolist() == [0, 2, 4, 6, 8]
    assert parallel.replace_device(info, "cpu") == "cpu"


def test_sync_batchnorm_needs_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ConfigError, match="sync-batchnorm"):
        parallel.init_from_env("cpu", sync_batchnorm=True)
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ConfigError, match="multi-process"):
        parallel.init_from_env("cpu", sync_batchnorm=True)


# -- under torchrun ---------------------------------------------------------------------------
@pytest.mark.slow
def test_sharded_kernels_and_ddp_match_one_process(tmp_path: Path) -> None:
    from svpkit.selectors.k_center import greedy_k_center

    _torchrun([str(Path(__file__)), "--worker", str(tmp_path)], cwd=tmp_path)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2)]
    pool, centers = _features()

    # Greedy k-center on the sharded pool = single process, tie-breaking included.
    picks, initial = greedy_k_center(pool, centers, PICKS)
    for r in ranks:
        assert r["picks"].tolist() == picks.tolist()
        torch.testing.assert_close(r["initial"], initial)
    assert {201, 202, 203, 151} & set(picks.tolist()) == set()  # duplicates never picked twice

    # Sharded scoring, gathered in pool order = scoring the whole pool at once.
    order = np.arange(POOL)[::-1].copy()
    with torch.no_grad():
        expected = torch.softmax(_scorer().eval()(pool[torch.as_tensor(order)]), 1)
    for r in ranks:
        torch.testing.assert_close(r["probs"], expected)

    # DDP: both ranks hold the same model; observers saw the global minibatches of one process.
    for name, value in ranks[0]["params"].items():
        assert torch.equal(value, ranks[1]["params"][name]), name
        torch.testing.assert_close(ranks[0]["via_fit_params"][name], value)
    assert [r["via_fit_world"] for r in ranks] == [2.0, 2.0]
    # The loops' sharded k-center (SelectorSpec.select_sharded) = its single-process select.
    for r in ranks:
        assert r["k_center_sharded"] == ranks[0]["k_center_whole"] == r["k_center_whole"]
        sharded_sub, whole_sub = r["k_center_subpool"]
        assert sharded_sub == whole_sub == ranks[0]["k_center_subpool"][1] != r["k_center_whole"]
    torch.testing.assert_close(ranks[0]["proba"], ranks[1]["proba"], rtol=0, atol=0)
    learner, indices = _learner()
    recorder = _Recorder()
    learner.fit(indices, observers=[recorder])
    for r in ranks:
        assert len(r["indices"]) == len(recorder.indices) == 3 * 7
        for got, want in zip(r["indices"], recorder.indices):
            assert got.tolist() == want.tolist()
        for got, want in zip(r["targets"], recorder.targets):
            assert got.tolist() == want.tolist()
        # Same SGD up to float summation order: the first step's logits are identical models.
        torch.testing.assert_close(r["logits"][0], recorder.logits[0])
    for name, value in learner.model.state_dict().items():
        torch.testing.assert_close(ranks[0]["params"][name], value, rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_active_learning_round_under_torchrun(tmp_path: Path) -> None:
    import mlflow

    from svpkit.selectors.base import SelectionContext, top_k_by_score

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = _torchrun(
        ["-m", "svpkit", "active-learning", "--quiet", "--device", "cpu", "--selector", "least_confidence"]
        + ["--initial", "60", "--budgets", "120,180", "--proxy-epochs", "3", "--target-epochs", "1"]
        + ["--experiment", "torchrun"],
        cwd=tmp_path,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    assert proc.stdout.count("total selection time") == 1  # only rank 0 reports
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1  # rank 1 created nothing
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["distributed.world_size"] == "2"
    assert run.data.params["distributed.backend"] == "gloo"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "target/test_error")] == [120, 180]
    files = {f.path for f in client.list_artifacts(run.info.run_id, "rounds/1")}
    assert {"rounds/1/selected.npy", "rounds/1/scores.npy", "rounds/1/labeled.npy"} <= files

    def load(path: str) -> np.ndarray:
        return np.load(client.download_artifacts(run.info.run_id, path, str(tmp_path)))

    labeled = load("rounds/0/labeled.npy")
    n = int(run.data.params["train_size"])
    for k in (1, 2):
        pool = np.setdiff1d(np.arange(n), labeled)
        scores = load(f"rounds/{k}/scores.npy")
        assert scores.shape == pool.shape  # the gathered scores cover the whole pool
        ctx = SelectionContext(pool=pool, labeled=labeled, rng=np.random.default_rng(0))
        single = top_k_by_score(ctx, torch.from_numpy(scores), 60).picks
        selected = load(f"rounds/{k}/selected.npy")
        assert selected.tolist() == single.tolist()
        labeled = np.concatenate([labeled, selected])


if __name__ == "__main__" and "--worker" in sys.argv:
    _worker(Path(sys.argv[sys.argv.index("--worker") + 1]))
