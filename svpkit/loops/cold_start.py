"""The initial labeled set of an active-learning run and the fixed input embedding of the rounds.

``--initial-selector random`` draws the initial set as svpkit always has:
``default_rng(seed).choice(n, size, replace=False)``, sorted. A cold-start selector (one that
picks without a model under its default options with ``embedding=input``: ``maxherding``,
``typiclust``, ``probcover``) picks it instead from the whole training set with nothing labeled,
on the standardised inputs (svpkit.selectors.embedding; with a backbone its stored embeddings),
its RNG derived from ``(seed, "select", 0)``. The default, ``auto``, is settled with the loaded
data (:func:`settle_initial_selector`): the run selector's own cold start where it has one
(``auto``'s ``cold_start``, or the cold-start selector itself) and the inputs are in memory,
``random`` otherwise; the run records what it became.

The representation a run's selector picks in is settled once the data set is loaded, before the
run exists (:func:`settle_representation`): ``auto``'s ``embedding=auto`` becomes ``input`` where
the training inputs are in memory and ``model`` where they are not (streamed images, shards, text),
and what would read a lazily read pool as one matrix of inputs (``embedding=input`` on it, a
cold-start ``--initial-selector``: no model exists yet) is a ConfigError, never a pool decoded
into memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.runtime import derive_seed
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, resolve_selector_options
from svpkit.selectors.embedding import (
    EMBEDDING_OPTION,
    input_embedding,
    inputs_in_memory,
    representation_for,
    unreadable_inputs,
    uses_inputs,
)

RANDOM = "random"
AUTO = "auto"
"""``--initial-selector``'s default: settled per run (:func:`settle_initial_selector`)."""
COLD_START_SELECTORS = ("maxherding", "typiclust", "probcover")


def lazy_inputs(dataset: Dataset) -> Callable[[np.ndarray], torch.Tensor] | None:
    """The input embedding of ``dataset`` (svpkit.selectors.embedding), computed on its first use
    only; None where the inputs are not in memory (streamed, sharded, text)."""
    if not inputs_in_memory(dataset):
        return None
    cached: list[Callable[[np.ndarray], torch.Tensor]] = []

    def rows(indices: np.ndarray) -> torch.Tensor:
        if not cached:
            cached.append(input_embedding(dataset))
        return cached[0](indices)

    return rows


SHARED_OPTIONS = frozenset({"pca"})
"""Options of the run's selector that its initial selector takes over when it has them too (the
representation's ``pca``: the initial set is picked in the representation the rounds pick in)."""


def initial_options(spec: SelectorSpec, run_options: Mapping[str, Any] | None = None) -> dict[str, object]:
    """The options an initial selector runs with: its defaults, ``embedding=input`` where it has the
    option, and the run selector's :data:`SHARED_OPTIONS` it also has."""
    names = {o.name for o in spec.options}
    given: dict[str, Any] = {"embedding": "input"} if "embedding" in names else {}
    given |= {k: v for k, v in (run_options or {}).items() if k in SHARED_OPTIONS and k in names}
    return resolve_selector_options(spec, given, "--initial-selector")


def check_initial_selector(spec: SelectorSpec) -> None:
    """Only a selector that picks without a model can choose the initial set (nothing is labeled yet)."""
    if spec.name != RANDOM and spec.trains_model(initial_options(spec)):
        raise ConfigError(
            f"--initial-selector {spec.name!r} needs a selector model, and nothing is labeled before the first "
            "round; use random, maxherding, typiclust or probcover"
        )


def settle_representation(
    dataset: Dataset,
    selector: SelectorSpec,
    options: Mapping[str, Any],
    initial_selector: SelectorSpec | str = RANDOM,
) -> dict[str, Any]:
    """The run selector's resolved ``options`` with ``embedding=auto`` resolved for ``dataset``
    (svpkit.selectors.embedding.representation_for); a ConfigError where the selector or the
    initial selector would read the inputs as one in-memory matrix and they are not one."""
    settled = dict(options)
    declared = {o.name: o.default for o in selector.options}
    name = EMBEDDING_OPTION.name
    if name in declared:
        chosen = settled.get(name, declared[name])
        settled[name] = representation_for(dataset) if chosen == "auto" else chosen
        if uses_inputs(settled) and not inputs_in_memory(dataset):
            raise ConfigError(
                f"--selector {selector.name} with embedding=input picks on the standardised inputs, and "
                f"{unreadable_inputs(dataset)}; use --selector-options embedding=model (the selector model's "
                "features) or a --backbone"
            )
    check_initial_inputs(dataset, selector_name(initial_selector))
    return settled


def settle_initial_selector(
    dataset: Dataset,
    selector: SelectorSpec,
    options: Mapping[str, Any],
    initial_selector: SelectorSpec | str,
) -> SelectorSpec | str:
    """``initial_selector`` with :data:`AUTO` settled for the loaded ``dataset``: the cold-start
    selector the run's ``selector`` starts with (``auto``: its ``cold_start`` option; a cold-start
    selector: itself) where the training inputs are in memory (it picks on them before any model
    exists) and the rounds pick on them too (not ``embedding=model``: the selector model's features,
    which do not exist before the first round), else :data:`RANDOM`. Anything else is returned as
    given."""
    from svpkit.plugins import get_plugins

    if not isinstance(initial_selector, str) or initial_selector != AUTO:
        return initial_selector
    declared = {o.name: o.default for o in selector.options} | dict(options)
    name = str(declared.get("cold_start", "")) if selector.name == AUTO else selector.name
    on_model = declared.get(EMBEDDING_OPTION.name) == "model"  # the rounds pick on features no model has yet
    if name not in COLD_START_SELECTORS or on_model or not inputs_in_memory(dataset):
        return RANDOM
    return get_plugins().selectors.get(name)


def check_initial_inputs(dataset: Dataset, name: str) -> None:
    """A cold-start initial selector (no model yet: the standardised inputs) needs in-memory inputs."""
    if name not in (RANDOM, AUTO) and not inputs_in_memory(dataset):
        raise ConfigError(
            f"--initial-selector {name} picks on the standardised inputs before any model exists, and "
            f"{unreadable_inputs(dataset)}; use --initial-selector random or a --backbone (its stored embeddings "
            "are in memory)"
        )


def selector_name(selector: SelectorSpec | str) -> str:
    """The name of an initial selector given by spec or by name."""
    return selector if isinstance(selector, str) else selector.name


def initial_set(
    dataset: Dataset,
    selector: SelectorSpec | str,
    count: int,
    seed: int,
    run_options: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """The sorted initial labeled set: uniform random (``selector`` ``random``), else that selector's
    picks (with the run selector's :data:`SHARED_OPTIONS`, ``run_options``). A spec (the validation
    pass's) is used as it is; a name is looked up and checked here."""
    return initial_selection(dataset, selector, count, seed, run_options).picks


def initial_selection(
    dataset: Dataset,
    selector: SelectorSpec | str,
    count: int,
    seed: int,
    run_options: Mapping[str, Any] | None = None,
) -> Selection:
    """:func:`initial_set` as a :class:`Selection`: the sorted picks, and what the selector said
    about them (``info``: e.g. ProbCover's δ and coverage; empty for ``random``)."""
    from svpkit.plugins import get_plugins

    n = len(dataset.train)
    if selector == RANDOM:
        rng = np.random.default_rng(seed)
        return Selection(np.sort(rng.choice(n, size=count, replace=False)), np.empty(0, dtype=np.float32))
    if isinstance(selector, str):
        selector = get_plugins().selectors.get(selector)
    spec = selector
    check_initial_selector(spec)
    check_initial_inputs(dataset, spec.name)
    rng = np.random.default_rng(derive_seed(seed, "select", 0))
    ctx = SelectionContext(
        np.arange(n, dtype=np.int64),
        np.empty(0, dtype=np.int64),
        rng,
        options=initial_options(spec, run_options),
        inputs=lazy_inputs(dataset),
    )
    selection = spec.select(ctx, count)
    picks = np.asarray(selection.picks, dtype=np.int64)
    if picks.shape != (count,) or np.unique(picks).size != count:
        raise RuntimeError(f"initial selector {spec.name!r} did not return {count} distinct examples")
    return Selection(np.sort(picks), np.empty(0, dtype=np.float32), dict(selection.info))
