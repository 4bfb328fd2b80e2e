"""MaxHerding against svpkit's own selectors on digits, judged by an independent yardstick.

Every method starts from the **same initial set** per seed (svpkit's random start:
``default_rng(seed).choice(1438, 14)``, 1 % of the pool) and grows it to 5, 10, 20 and 30 % of
digits' 1,438 training images. The labeled set at each level is then judged by a model none of
the selectors used: scikit-learn's ``LogisticRegression`` on the standardised pixels, its test
error on the 359 test images. AUC = the mean error over the four levels; each method's AUC minus
random's on the same seed, 95 % t-interval over the seeds.

Methods:

- ``random``: svpkit's ``random`` selector (``svpkit.active_learning``, no target);
- ``skactiveml MaxHerding``: scikit-activeml's ``MaxHerding`` (its defaults: unit-length samples,
  RBF kernel with γ = 1/d) on the standardised pixels, one ``query`` per level;
- ``maxherding``: svpkit's selector (``embedding=input``: the same standardised pixels);
- ``auto`` (each ``--auto`` option set): svpkit's loop as ``projects/cold_start_digits.toml`` runs
  it (proxy ``digits_mlp``, target ``digits_cnn``, 10 epochs each; the κ evidence needs targets).

    python benchmarks/bench_maxherding_digits.py --seeds 0-9
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from scipy import stats

from benchmarks.common import base_parser, setup, write_results

BUDGETS = (0.05, 0.1, 0.2, 0.3)
INITIAL = 0.01


def yardstick(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray, idx: np.ndarray
) -> float:
    """Test error (%) of a logistic regression trained on the labeled rows ``idx``."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000)
    model.fit(x_train[idx], y_train[idx])
    return 100.0 * float((model.predict(x_test) != y_test).mean())


def svpkit_levels(selector: str, seed: int, options: str, train_target: bool) -> list[np.ndarray]:
    """The labeled set at each level of one svpkit active-learning run (not tracked)."""
    import svpkit

    result = svpkit.active_learning(
        dataset="digits",
        selector=selector,
        selector_options=options or None,
        proxy="digits_mlp",
        target="digits_cnn",
        proxy_epochs=10,
        target_epochs=10,
        initial=INITIAL,
        budgets=",".join(str(b) for b in BUDGETS),
        seed=seed,
        device="cpu",
        agreement="off",
        train_target=train_target,
        track=False,
    )
    labeled = [np.asarray(result.result.initial)]
    for picks in result.result.selected:
        labeled.append(np.concatenate([labeled[-1], np.asarray(picks)]))
    return labeled[1:]


def skactiveml_levels(
    x: np.ndarray, initial: np.ndarray, y: np.ndarray, levels: list[int], seed: int
) -> list[np.ndarray]:
    from skactiveml.pool import MaxHerding

    strategy = MaxHerding(random_state=seed)
    y_known = np.full(len(x), np.nan)
    y_known[initial] = y[initial]
    out = []
    for level in levels:
        batch = level - int((~np.isnan(y_known)).sum())
        picks = strategy.query(x, y_known, batch_size=batch)
        y_known[picks] = y[picks]
        out.append(np.flatnonzero(~np.isnan(y_known)))
    return out


def summary(aucs: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in aucs.items():
        d = np.asarray(values) - np.asarray(aucs["random"])
        half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[name] = {"auc_mean": float(np.mean(values)), "auc_minus_random": float(d.mean()), "half_width": half}
    return out


def main() -> None:
    p: argparse.ArgumentParser = base_parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0-9", help="a-b (inclusive) or a comma list")
    p.add_argument(
        "--auto",
        action="append",
        default=None,
        help="auto's --selector-options (repeatable; '' = its defaults; 'none': no auto)",
    )
    p.add_argument(
        "--maxherding", action="append", default=None, help="svpkit maxherding's --selector-options (repeatable)"
    )
    args = p.parse_args()
    device, _ = setup(args)
    seeds = _seeds(args.seeds)
    autos = [a for a in (args.auto if args.auto is not None else [""]) if a != "none"]
    herdings = args.maxherding if args.maxherding is not None else [""]
    from svpkit.data.digits import load_digits
    from svpkit.selectors.embedding import input_embedding

    data = load_digits()
    rows = input_embedding(data)
    x = rows(np.arange(len(data.train))).numpy()
    y = data.train.y.numpy()
    xs, xt = x, _standardised_test(data)  # the selectors' standardised pixels, the test split alike
    n = len(x)
    levels = [int(round(b * n)) for b in BUDGETS]
    errors: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    for seed in seeds:
        initial = np.sort(np.random.default_rng(seed).choice(n, size=int(round(INITIAL * n)), replace=False))
        sets: dict[str, list[np.ndarray]] = {}
        for name, make in _methods(autos, herdings, x, initial, y, levels, seed):
            start = time.perf_counter()
            sets[name] = make()
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
            assert all(np.isin(initial, s).all() for s in sets[name]), f"{name} lost the initial set"
            assert [len(s) for s in sets[name]] == levels, f"{name}: levels {[len(s) for s in sets[name]]}"
        for name, labeled in sets.items():
            errors.setdefault(name, []).append([yardstick(xs, y, xt, data.test.y.numpy(), s) for s in labeled])
        print(f"seed {seed}: " + ", ".join(f"{k} {np.mean(v[-1]):.2f}" for k, v in errors.items()), flush=True)
    aucs = {k: [float(np.mean(e)) for e in v] for k, v in errors.items()}
    result = summary(aucs)
    for name, r in result.items():
        print(f"{name:45s} AUC {r['auc_mean']:.2f}  minus random {r['auc_minus_random']:+.2f} ± {r['half_width']:.2f}")
    payload = {
        "seeds": seeds,
        "levels": levels,
        "initial": int(round(INITIAL * n)),
        "errors": errors,
        "summary": result,
    }
    write_results("maxherding_digits", args, device, payload | {"selection_seconds": seconds})


def _standardised_test(data: Any) -> np.ndarray:
    """The test images on the training split's standardisation (svpkit.selectors.embedding's)."""
    train = data.train.x.reshape(len(data.train), -1).double()
    mean, std = train.mean(0), train.std(0, unbiased=False) + 1e-3
    return ((data.test.x.reshape(len(data.test), -1).double() - mean) / std).float().numpy()


def _methods(
    autos: list[str],
    herdings: list[str],
    x: np.ndarray,
    initial: np.ndarray,
    y: np.ndarray,
    levels: list[int],
    seed: int,
) -> list[Any]:
    methods: list[Any] = [
        ("random", lambda: svpkit_levels("random", seed, "", False)),
        ("skactiveml MaxHerding", lambda: skactiveml_levels(x, initial, y, levels, seed)),
    ]
    for options in herdings:
        name = f"maxherding[{options}]" if options else "maxherding"
        methods.append((name, lambda o=options: svpkit_levels("maxherding", seed, o, False)))
    for options in autos:
        methods.append(
            (f"auto[{options}]" if options else "auto", lambda o=options: svpkit_levels("auto", seed, o, True))
        )
    return methods


def _seeds(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


if __name__ == "__main__":
    main()
