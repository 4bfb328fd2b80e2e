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
    """``"0.1,0.2"`` → ``[0.1, 0.2]``; ``"1000,5000"`` → ``[1000, 5000]``; an empty item is a typo."""
    if isinstance(value, str):
        tokens = value.replace(";", ",").split(",")
        if not any(t.strip() for t in tokens):
            raise ConfigError(f"no {what} levels given")
        if not all(t.strip() for t in tokens):
            raise ConfigError(f"{what} list {value!r} has an empty item (a doubled or trailing comma?)")
        return [_parse_one(t, what) for t in tokens]
    return list(value)


def one_size(value: str | float | int, what: str) -> float | int:
    """One size (a fraction in (0, 1] or a count), as :func:`parse_sizes` reads it; a number stays as it is."""
    if not isinstance(value, str):
        return value
    sizes = parse_sizes(value, what)
    if len(sizes) != 1:
        raise ConfigError(f"{what} must be one size, got {value!r}")
    return sizes[0]


def parse_fraction(value: str | float | None, what: str) -> float | None:
    """A fraction, or its text (None or blank: not given); checked against (0, 1] where it is used."""
    if isinstance(value, (int, float)):
        return float(value)
    if value is None or not value.strip():
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a number") from None


def _is_fraction(size: float | int) -> bool:
    return isinstance(size, float) and (not size.is_integer() or size <= 1)


def check_size(size: float | int, what: str) -> None:
    """The checks of :func:`to_count` that need no data set: a fraction in (0, 1] or a count ≥ 1."""
    if isinstance(size, bool):
        raise ConfigError(f"{what} {size!r} is not a size")
    if _is_fraction(size):
        if not 0 < size <= 1:
            raise ConfigError(f"{what} {size} is outside (0, 1] (give a fraction, or a whole count)")
    elif int(size) < 1:
        raise ConfigError(f"{what} {size} must be at least 1")


def to_count(size: float | int, n: int, what: str) -> int:
    """A fraction in (0, 1] (float) or a count ≥ 1 (int) as a number of examples of ``n``."""
    check_size(size, what)
    if _is_fraction(size):
        count = int(round(size * n))
        if count < 1:
            raise ConfigError(f"{what} {size} of {n} examples is less than one example")
        return count
    count = int(size)
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
