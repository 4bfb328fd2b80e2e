"""Budget levels: fractions of the training set or absolute counts, cumulative."""

from __future__ import annotations

from collections.abc import Sequence

from svpkit.errors import ConfigError


def _parse_one(token: str, what: str) -> float | int:
    token = token.strip()
    try:
        return int(token)
    except ValueError:
        pass
    try:
        return float(token)
    except ValueError:
        raise ConfigError(f"{what} {token!r} is not a number") from None


def parse_sizes(value: str | Sequence[float | int], what: str = "budget") -> list[float | int]:
    """``"0.1,0.2"`` → ``[0.1, 0.2]``; ``"1000,5000"`` → ``[1000, 5000]``."""
    if isinstance(value, str):
        tokens = [t for t in value.replace(";", ",").split(",") if t.strip()]
        if not tokens:
            raise ConfigError(f"no {what} levels given")
        return [_parse_one(t, what) for t in tokens]
    return list(value)


def to_count(size: float | int, n: int, what: str) -> int:
    """A fraction in (0, 1] (float) or a count ≥ 1 (int) as a number of examples of ``n``."""
    if isinstance(size, bool):
        raise ConfigError(f"{what} {size!r} is not a size")
    if isinstance(size, float) and not size.is_integer() or isinstance(size, float) and size <= 1:
        if not 0 < size <= 1:
            raise ConfigError(f"{what} {size} is outside (0, 1] (give a fraction, or a whole count)")
        count = int(round(size * n))
        if count < 1:
            raise ConfigError(f"{what} {size} of {n} examples is less than one example")
        return count
    count = int(size)
    if count < 1:
        raise ConfigError(f"{what} {size} must be at least 1")
    if count > n:
        raise ConfigError(f"{what} {count} is larger than the {n} training examples")
    return count


def resolve_budgets(initial: float | int, budgets: Sequence[float | int], n: int) -> tuple[int, list[int]]:
    """(initial count, cumulative labeled counts per level), validated against ``n`` examples."""
    init = to_count(initial, n, "initial")
    levels = [to_count(b, n, "budget") for b in budgets]
    if not levels:
        raise ConfigError("no budget levels given")
    for prev, cur in zip(levels, levels[1:]):
        if cur <= prev:
            raise ConfigError(f"budgets must increase: {prev} then {cur}")
    if init >= levels[0]:
        raise ConfigError(f"initial set ({init}) must be smaller than the first budget ({levels[0]})")
    return init, levels
