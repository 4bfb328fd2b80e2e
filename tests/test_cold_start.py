"""TypiClust and ProbCover (issue 24) against brute-force references on small generated data
(clusters, coverage balls, ties), the initial selector, and one tiny active-learning run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.digits import load_digits
from svpkit.data.text_csv import load_text_csv
from svpkit.errors import ConfigError
from svpkit.loops.cold_start import check_initial_selector, initial_set, settle_initial_selector
from svpkit.plugins import get_plugins
from svpkit.selectors.base import SelectionContext
from svpkit.selectors.probcover import Balls, impurity_radii, probcover_picks, purity_delta
from svpkit.selectors.typiclust import typicality, typiclust_picks


# -- brute-force references -----------------------------------------------------------------
def ref_typicality(points: list[list[float]], i: int, k_nn: int) -> float:
    k = min(k_nn, len(points) // 2)
    if k == 0:
        return 0.0
    dists = sorted(math.dist(points[i], p) for j, p in enumerate(points) if j != i)
    mean = sum(dists[:k]) / k
    return math.inf if mean == 0 else 1.0 / mean


def ref_typiclust(
    points: np.ndarray, labeled: set[int], clusters: list[int], budget: int, k_nn: int, min_size: int
) -> list[int]:
    """The paper's rule written plainly: clusters by (labeled count ↑, size ↓, id ↑), cyclic, most typical free point."""
    ids = sorted(set(clusters))
    size = {c: clusters.count(c) for c in ids}
    lab = {c: sum(1 for i in labeled if clusters[i] == c) for c in ids}
    order = sorted((c for c in ids if size[c] > min_size), key=lambda c: (lab[c], -size[c], c))
    taken = set(labeled)
    picks: list[int] = []
    step = 0
    while len(picks) < budget:
        if not any(clusters[i] == c and i not in taken for c in order for i in range(len(points))):
            order, step = sorted(ids, key=lambda c: (lab[c], -size[c], c)), 0
        c = order[step % len(order)]
        step += 1
        free = [i for i in range(len(points)) if clusters[i] == c and i not in taken]
        if not free:
            continue
        rows = [list(points[i]) for i in free]
        typ = [ref_typicality(rows, j, k_nn) for j in range(len(free))]
        best = free[typ.index(max(typ))]  # first maximum: the lowest position
        picks.append(best)
        taken.add(best)
    return picks


def ref_probcover(points: np.ndarray, labeled: set[int], delta: float, budget: int) -> list[int]:
    """Greedy max coverage with explicit ball sets; returns the greedy picks while a pick covers two or
    more new points (after that every candidate covering one is as good: svpkit draws among them)."""
    n = len(points)
    ball = [{j for j in range(n) if math.dist(points[i], points[j]) <= delta} for i in range(n)]
    covered = set().union(*(ball[i] for i in labeled)) if labeled else set()
    picks: list[int] = []
    for _ in range(budget):
        gains = [(len(ball[i] - covered), -i) for i in range(n) if i not in labeled and i not in picks]
        gain, neg = max(gains)
        if gain <= 1:
            break
        picks.append(-neg)
        covered |= ball[-neg]
    return picks


def ref_purity(points: np.ndarray, clusters: np.ndarray, delta: float) -> float:
    n = len(points)
    pure = [
        all(clusters[j] == clusters[i] for j in range(n) if math.dist(points[i], points[j]) <= delta) for i in range(n)
    ]
    return sum(pure) / n


def blobs(seed: int, centres: int = 4, per: int = 8, spread: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    c = rng.normal(0, 6, size=(centres, 2))
    x = np.concatenate([c[i] + rng.normal(0, spread, size=(per, 2)) for i in range(centres)])
    return x.round(2), np.repeat(np.arange(centres), per)  # rounding makes distance ties likely


# -- TypiClust ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(4))
def test_typicality_matches_brute_force(seed: int) -> None:
    x, _ = blobs(seed, centres=2, per=7)
    for k_nn in (1, 3, 20):
        got = typicality(torch.as_tensor(x), k_nn)
        want = [ref_typicality(x.tolist(), i, k_nn) for i in range(len(x))]
        np.testing.assert_allclose(got, want, rtol=1e-9)


@pytest.mark.parametrize(("seed", "budget", "min_size"), [(0, 5, 5), (1, 9, 3), (2, 12, 0), (3, 30, 7)])
def test_typiclust_picks_match_brute_force(seed: int, budget: int, min_size: int) -> None:
    x, _ = blobs(seed, centres=5, per=7)
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, 6, size=len(x))  # any assignment: the pick rule does not assume k-means
    labeled = set(rng.choice(len(x), size=4, replace=False).tolist())
    mask = np.zeros(len(x), dtype=bool)
    mask[list(labeled)] = True
    got = typiclust_picks(torch.as_tensor(x), mask, clusters, budget, k_nn=3, min_cluster_size=min_size)
    assert got.tolist() == ref_typiclust(x, labeled, clusters.tolist(), budget, 3, min_size)
    assert not mask[got].any() and np.unique(got).size == budget


def test_typiclust_ties_go_to_the_lowest_position() -> None:
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [9.0, 9.0], [9.0, 9.0]])
    clusters = np.array([0, 0, 0, 0, 1, 1])
    picks = typiclust_picks(torch.as_tensor(x), np.zeros(6, dtype=bool), clusters, 2, k_nn=1, min_cluster_size=1)
    assert picks.tolist() == [0, 4]  # duplicates: infinite typicality, the first one wins


def test_typiclust_selector_takes_the_centre_of_each_blob() -> None:
    """Four well-separated blobs, nothing labeled, budget 4: one pick per blob, the point at its centre."""
    angles = [2 * math.pi * j / 8 for j in range(8)]
    ring = [(0.0, 0.0)] + [(math.cos(a) * r, math.sin(a) * r) for r in (1.0, 3.0) for a in angles]
    centres = [(0, 0), (40, 0), (0, 40), (40, 40)]
    x = np.array([(cx + dx, cy + dy) for cx, cy in centres for dx, dy in ring], dtype=np.float32)
    spec = get_plugins().selectors.get("typiclust")
    ctx = SelectionContext(np.arange(len(x)), np.empty(0, dtype=np.int64), np.random.default_rng(0))
    ctx.inputs = lambda ix: torch.as_tensor(x[ix])
    ctx.options = {"k_nn": 8}
    picks = spec.select(ctx, 4).picks
    assert sorted(picks.tolist()) == [0, 17, 34, 51]


# -- ProbCover ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("seed", "delta", "labeled_n"), [(0, 1.0, 0), (1, 1.5, 3), (2, 0.7, 5), (3, 3.0, 2)])
def test_probcover_greedy_matches_brute_force(seed: int, delta: float, labeled_n: int) -> None:
    x, _ = blobs(seed, centres=3, per=6)
    rng = np.random.default_rng(seed)
    labeled = set(rng.choice(len(x), size=labeled_n, replace=False).tolist())
    mask = np.zeros(len(x), dtype=bool)
    mask[list(labeled)] = True
    want = ref_probcover(x, labeled, delta, 6)
    got, initial, gains, _ = probcover_picks(Balls.build(torch.as_tensor(x), delta), mask, 6, np.random.default_rng(0))
    assert got[: len(want)].tolist() == want
    # then picks covering one new point each while some candidate does, then random pool points;
    # never labeled or repeated
    assert np.unique(got).size == 6 and not mask[got].any()
    covered = {j for i in labeled for j in range(len(x)) if math.dist(x[i], x[j]) <= delta}
    start = set(covered)
    for pick, gain in zip(got.tolist(), gains.tolist()):
        ball = {j for j in range(len(x)) if math.dist(x[pick], x[j]) <= delta}
        best = max(
            len({j for j in range(len(x)) if math.dist(x[i], x[j]) <= delta} - covered)
            for i in range(len(x))
            if i not in labeled and i not in got[: got.tolist().index(pick)]
        )
        assert gain == len(ball - covered) == best
        covered |= ball
    covered = start
    assert initial.tolist() == [
        sum(1 for j in range(len(x)) if math.dist(x[i], x[j]) <= delta and j not in covered) for i in range(len(x))
    ]


def test_probcover_ties_go_to_the_lowest_position() -> None:
    x = np.array([[0.0], [1.0], [10.0], [11.0]])  # two balls of two points each, δ = 1
    got = probcover_picks(Balls.build(torch.as_tensor(x), 1.0), np.zeros(4, dtype=bool), 2, np.random.default_rng(0))
    assert got.picks.tolist() == [0, 2] and got.gains.tolist() == [2, 2]


def test_probcover_picks_covering_one_point_are_drawn_not_taken_in_file_order() -> None:
    """Two dense pairs, then 60 isolated points sorted by class (30 of class 0, then 30 of class 1):
    once every ball holds at most one uncovered point, the picks are uniform draws over those points,
    not the lowest positions (which would take class 0's points in file order)."""
    x = np.concatenate([[-20.0, -19.5, -40.0, -39.5], 2.0 * np.arange(60)])[:, None]
    balls = Balls.build(torch.as_tensor(x), 1.0)
    counts = np.zeros(len(x), dtype=np.int64)
    for seed in range(300):
        cover = probcover_picks(balls, np.zeros(len(x), dtype=bool), 12, np.random.default_rng(seed))
        assert cover.picks[:2].tolist() == [0, 2]  # the two pairs first, greedy (ties: lowest position)
        assert cover.gains.tolist() == [2, 2] + [1] * 10 and np.unique(cover.picks).size == 12
        counts[cover.picks[2:]] += 1
    isolated = counts[4:]  # 300 × 10 draws over 60 points: 50 expected each
    assert isolated[:30].sum() + isolated[30:].sum() == 3000 and abs(int(isolated[:30].sum()) - 1500) < 150
    assert isolated.min() > 20 and isolated.max() < 85


def test_probcover_records_delta_and_coverage_in_the_selection_info() -> None:
    x, _ = blobs(4, centres=3, per=6)
    spec = get_plugins().selectors.get("probcover")
    ctx = SelectionContext(np.arange(len(x)), np.empty(0, dtype=np.int64), np.random.default_rng(0))
    ctx.inputs = lambda ix: torch.as_tensor(x[ix])
    ctx.options = {"delta": 1.0}
    selection = spec.select(ctx, 5)
    info = selection.info
    sizes = [sum(1 for j in range(len(x)) if math.dist(x[i], x[j]) <= 1.0) for i in range(len(x))]
    assert info["delta"] == 1.0 and info["delta_rule"] == "fixed" and info["coverage_before"] == 0.0
    assert info["mean_ball_size"] == pytest.approx(np.mean(sizes), abs=1e-3)
    assert info["singleton_balls"] == pytest.approx(np.mean([s == 1 for s in sizes]), abs=1e-4)
    covered = {j for i in selection.picks for j in range(len(x)) if math.dist(x[i], x[j]) <= 1.0}
    assert info["coverage_after"] == pytest.approx(len(covered) / len(x), abs=1e-4)
    assert info["picks_covering_2_or_more"] == len(ref_probcover(x, set(), 1.0, 5))
    parts = ("picks_covering_2_or_more", "picks_covering_1", "picks_after_full_coverage")
    assert sum(int(info[k]) for k in parts) == 5
    ctx.options = {"classes": 3}
    info = spec.select(ctx, 5).info
    assert info["delta_rule"] == "purity" and float(info["delta"]) >= 0


@pytest.mark.parametrize("seed", range(3))
def test_purity_delta_matches_brute_force(seed: int) -> None:
    x, _ = blobs(seed, centres=3, per=6, spread=2.0)
    clusters = np.random.default_rng(seed).integers(0, 3, size=len(x))
    radii = impurity_radii(torch.as_tensor(x), clusters)
    for alpha in (0.5, 0.8, 0.95):
        delta = purity_delta(radii, alpha)
        assert ref_purity(x, clusters, delta) >= alpha
        # the candidates are 0 and every point's distance to its nearest point of another cluster
        cands = {0.0} | {
            min(math.dist(x[i], x[j]) for j in range(len(x)) if clusters[j] != clusters[i]) for i in range(len(x))
        }
        assert delta == pytest.approx(max(d for d in cands if ref_purity(x, clusters, d) >= alpha), rel=1e-9)


# -- the initial set ---------------------------------------------------------------------------
def test_initial_set_random_is_unchanged_and_cold_start_is_deterministic() -> None:
    data = load_digits()
    n = len(data.train)
    old = np.sort(np.random.default_rng(7).choice(n, size=14, replace=False))
    assert initial_set(data, "random", 14, 7).tolist() == old.tolist()
    for name in ("typiclust", "probcover"):
        first = initial_set(data, name, 14, 7)
        assert first.tolist() == initial_set(data, name, 14, 7).tolist()
        assert np.unique(first).size == 14 and (np.diff(first) > 0).all()
    with pytest.raises(ConfigError, match="needs a selector model"):
        check_initial_selector(get_plugins().selectors.get("least_confidence"))


def test_typiclust_initial_set_covers_more_classes_than_random() -> None:
    """Digits, 20 examples: TypiClust's typical points span every class (random usually misses some)."""
    data = load_digits()
    y = data.train.y.numpy()
    picks = initial_set(data, "typiclust", 20, 0)
    assert np.unique(y[picks]).size == 10


def test_active_learning_run_with_cold_start(tracking_uri: str, tmp_path: Path) -> None:
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--initial", "20", "--budgets", "40", "--proxy-epochs", "1", "--target-epochs", "1"]
    res = CliRunner().invoke(
        app, ["active-learning", *args, "--selector", "probcover", "--initial-selector", "typiclust"]
    )
    assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    assert run.data.tags["svpkit.selection"] == "initial_selector=typiclust"
    assert run.data.tags["svpkit.agreement"] == "off"  # embedding=input: no selector model to compare
    assert "selector_model/test_error" not in run.data.metrics
    timings = json.loads(Path(client.download_artifacts(run.info.run_id, "timings.json", str(tmp_path))).read_text())
    (info,) = [r["selector_info"] for r in timings["rounds"]]
    assert info["delta_rule"] == "purity" and info["delta"] > 0 and 0 <= info["coverage_after"] <= 1
    bad = CliRunner().invoke(app, ["active-learning", *args, "--initial-selector", "badge"])
    assert bad.exit_code == 2 and bad.output.count("error:") == 1 and "--initial-selector" in bad.output


def test_default_initial_selector_is_the_selectors_own_cold_start(tmp_path: Path) -> None:
    """``--initial-selector auto`` (the default): auto's cold_start / the cold-start selector itself on
    in-memory inputs, random for other selectors and for inputs that are not in memory."""
    selectors = get_plugins().selectors
    digits = load_digits()
    settled = {
        name: settle_initial_selector(digits, selectors.get(name), opts, "auto")
        for name, opts in (("auto", {}), ("typiclust", {}), ("least_confidence", {}), ("badge", {}))
    }
    assert {k: getattr(v, "name", v) for k, v in settled.items()} == {
        "auto": "maxherding",
        "typiclust": "typiclust",
        "least_confidence": "random",
        "badge": "random",
    }
    chosen = settle_initial_selector(digits, selectors.get("auto"), {"cold_start": "probcover"}, "auto")
    assert getattr(chosen, "name", chosen) == "probcover"
    # rounds that pick on the selector model's features: no such features before the first round
    assert settle_initial_selector(digits, selectors.get("auto"), {"embedding": "model"}, "auto") == "random"
    assert settle_initial_selector(digits, selectors.get("typiclust"), {"embedding": "model"}, "auto") == "random"
    assert settle_initial_selector(digits, selectors.get("auto"), {}, "random") == "random"  # given: kept
    (tmp_path / "train.csv").write_text("label,text\n0,a dull film\n1,a great one\n")
    (tmp_path / "test.csv").write_text("label,text\n1,fine\n")
    assert settle_initial_selector(load_text_csv(tmp_path), selectors.get("auto"), {}, "auto") == "random"


def test_default_run_records_the_settled_initial_selector(tracking_uri: str) -> None:
    """A run at the defaults records who picked its initial set, and it is what that selector picks."""
    small = ["--dataset", "digits", "--train-limit", "300", "--test-limit", "100", "--device", "cpu", "--quiet"]
    args = [*small, "--initial", "20", "--budgets", "40", "--proxy-epochs", "1", "--no-train-target"]
    for selector in ("auto", "least_confidence", "probcover"):
        res = CliRunner().invoke(app, ["active-learning", *args, "--selector", selector, "--seed", "3"])
        assert res.exit_code == 0, res.output
    client = mlflow.MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("svpkit").experiment_id])
    got = {r.data.params["selector"]: r for r in runs}
    assert got["auto"].data.tags["svpkit.selection"] == "initial_selector=maxherding"
    assert got["least_confidence"].data.tags.get("svpkit.selection", "") == ""  # random: the default variant
    expected = initial_set(load_digits().limited(300, 100), "maxherding", 20, 3)
    labeled = client.download_artifacts(got["auto"].info.run_id, "rounds/0/labeled.npy")
    assert np.load(labeled).tolist() == expected.tolist()
    assert got["probcover"].data.tags["svpkit.selection"] == "initial_selector=probcover"
    # the initial selector's own record is kept (ProbCover: its δ and the coverage of its picks)
    record = client.download_artifacts(got["probcover"].info.run_id, "rounds/0/initial_selector.json")
    info = json.loads(Path(record).read_text())
    assert info["selector"] == "probcover" and info["delta_rule"] == "purity" and info["delta"] > 0
    assert 0 < info["coverage_after"] <= 1
    assert "rounds/0/initial_selector.json" not in {
        f.path for f in client.list_artifacts(got["least_confidence"].info.run_id, "rounds/0")
    }


def test_selectors_list_shows_the_cold_start_selectors() -> None:
    import json

    res = CliRunner().invoke(app, ["selectors", "list", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.output)}
    for name in ("typiclust", "probcover"):
        assert rows[name]["needs"] == "nothing by default (embeddings with embedding=model)"
    assert rows["auto"]["needs"] == "embeddings, probabilities"
