"""Budget parsing and registry lookups."""

from __future__ import annotations

import pytest

from svpkit.errors import ConfigError, UnknownNameError
from svpkit.loops.budgets import parse_sizes, resolve_budgets
from svpkit.plugins import get_plugins


def test_fractions_and_counts() -> None:
    assert resolve_budgets(0.01, parse_sizes("0.1,0.2,0.5"), 1000) == (10, [100, 200, 500])
    assert resolve_budgets(1000, parse_sizes("5000,10000"), 50000) == (1000, [5000, 10000])
    assert resolve_budgets(0.02, [0.1, 1.0], 50000) == (1000, [5000, 50000])


@pytest.mark.parametrize(
    "initial,budgets,message",
    [
        (0.01, "0.2,0.1", "budgets must increase"),
        (0.01, "0.1,1.5", "outside (0, 1]"),
        (0.01, "0,0.1", "at least 1"),
        (0.01, "-0.1", "outside (0, 1]"),
        (0.3, "0.1,0.2", "must be smaller than the first budget"),
        (10, "100,2000", "larger than the 1000 training examples"),
        (0.01, "0.1,abc", "'abc' is not a number"),
        (0.01, "", "no budget levels"),
    ],
)
def test_bad_budgets(initial: float, budgets: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("]", r"\]")):
        resolve_budgets(initial, parse_sizes(budgets), 1000)


def test_unknown_names_suggest_the_closest() -> None:
    plugins = get_plugins()
    with pytest.raises(UnknownNameError) as info:
        plugins.selectors.get("leastconf")
    assert str(info.value) == "unknown selector 'leastconf'; did you mean 'least_confidence'?"
    with pytest.raises(UnknownNameError, match="did you mean 'digits_mlp'"):
        plugins.models.get("digits_mpl")
    with pytest.raises(UnknownNameError, match="unknown dataset 'qqq'.*known: .*digits"):
        plugins.datasets.get("qqq")


def test_wildcard_listing() -> None:
    names = get_plugins().models.names("digits_*")
    assert names == sorted(names) and {"digits_mlp", "digits_cnn"} <= set(names)
    assert get_plugins().selectors.names("*_k_*") == ["greedy_k_center"]
