"""The representation cold-start selectors (TypiClust, ProbCover) work in.

``embedding=model``: the selector model's penultimate activations (``SelectionContext``'s
``pool_embeddings`` / ``labeled_embeddings``), as greedy k-center uses them.

``embedding=input``: a fixed embedding of the inputs that needs no model and no label, so it
works before anything is labeled (``--initial-selector``): every input flattened to a vector and
standardised per feature with the mean and standard deviation over the whole training split
(``(x − mean) / (std + 1e-3)``; for digits the standardised pixels). The papers use a
self-supervised representation (SimCLR / SCAN); svpkit has none built in, and the standardised
inputs are the fixed representation every vector or image data set has. It reads the inputs as
one in-memory matrix (:func:`inputs_in_memory`), so text (no fixed input vector) and pools read
lazily (streamed image folders, shards: their pixels are never held as a whole) refuse it: they
use ``embedding=model``, or a backbone, whose stored embeddings are in-memory vectors.

``auto`` resolves its own ``embedding=auto`` with :func:`representation_for`: ``input`` where the
inputs are in memory, ``model`` otherwise (svpkit.loops.cold_start records which).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.models.options import ModelOption
from svpkit.selectors.base import Selection, SelectionContext

EMBEDDING_OPTION = ModelOption(
    "embedding",
    str,
    "input",
    "input: standardised inputs (no model needed); model: the selector model's penultimate features",
    choices=("input", "model"),
)
PCA_OPTION = ModelOption(
    "pca",
    int,
    0,
    "project the representation onto its first N principal components (of labeled ∪ pool) first; 0: off",
    minimum=0,
)
STD_FLOOR = 1e-3


def inputs_in_memory(dataset: Dataset) -> bool:
    """Whether the training inputs are one in-memory tensor (vectors, decoded images, a backbone's
    stored embeddings): what ``embedding=input`` reads. Streamed images and shards are read batch
    by batch, text is strings: neither is."""
    return isinstance(dataset.train.x, torch.Tensor)


def unreadable_inputs(dataset: Dataset) -> str:
    """Why ``embedding=input`` cannot read ``dataset`` (for an error message)."""
    if dataset.modality == "text":
        return f"data set {dataset.name!r} is text (no fixed input vector)"
    return (
        f"data set {dataset.name!r} reads its {dataset.modality}s lazily (streamed or sharded: never held as a whole)"
    )


def representation_for(dataset: Dataset) -> str:
    """``auto``'s resolved ``embedding``: ``input`` where the inputs are in memory, else ``model``."""
    return "input" if inputs_in_memory(dataset) else "model"


def uses_inputs(options: Mapping[str, Any]) -> bool:
    """Whether these resolved options select on the fixed input embedding (no selector model)."""
    return str(options.get("embedding", EMBEDDING_OPTION.default)) == "input"


def input_embedding(dataset: Dataset, chunk: int = 65_536) -> Callable[[np.ndarray], torch.Tensor]:
    """``rows(indices)``: the standardised, flattened inputs of those training examples (float32).

    The per-feature mean and standard deviation are computed once over the whole training split,
    chunk by chunk (no labels are used).
    """
    x = dataset.train.x
    if not inputs_in_memory(dataset):
        raise ConfigError(f"embedding=input needs in-memory vector or image inputs; {unreadable_inputs(dataset)}")
    n = x.shape[0]
    flat = x.reshape(n, -1)
    total = torch.zeros(flat.shape[1], dtype=torch.float64)
    total_sq = torch.zeros_like(total)
    for i in range(0, n, chunk):
        block = flat[i : i + chunk].double()
        total += block.sum(dim=0)
        total_sq += block.square().sum(dim=0)
    mean = total / max(n, 1)
    std = (total_sq / max(n, 1) - mean.square()).clamp_min(0.0).sqrt()
    mean32, scale = mean.float(), (std + STD_FLOOR).float()

    def rows(indices: np.ndarray) -> torch.Tensor:
        picked = flat[torch.as_tensor(np.asarray(indices, dtype=np.int64))]
        return (picked.float() - mean32) / scale

    return rows


def features(ctx: SelectionContext, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(pool, labeled) feature rows in the representation the ``embedding`` option names (float32,
    CPU), projected onto their first ``pca`` principal components when that option is set."""
    if uses_inputs(ctx.options):
        if ctx.inputs is None:
            raise RuntimeError(f"{name} with embedding=input needs the context's input embedding")
        pool_x, labeled_x = ctx.inputs(ctx.pool).float().cpu(), ctx.inputs(ctx.labeled).float().cpu()
    else:
        if ctx.pool_embeddings is None or ctx.labeled_embeddings is None:
            raise RuntimeError(f"{name} with embedding=model needs the pool's and the labeled set's embeddings")
        pool_x, labeled_x = ctx.pool_embeddings.float().cpu(), ctx.labeled_embeddings.float().cpu()
    components = int(ctx.options.get("pca", 0) or 0)
    if 0 < components < pool_x.shape[1]:
        projected = principal_components(torch.cat([labeled_x, pool_x]), components)
        return projected[labeled_x.shape[0] :], projected[: labeled_x.shape[0]]
    return pool_x, labeled_x


def principal_components(points: torch.Tensor, components: int) -> torch.Tensor:
    """The rows centred and projected onto the ``components`` leading eigenvectors of their
    covariance (float64 ``eigh``; an eigenvector's sign does not change any distance), float32."""
    x = points.double()
    x = x - x.mean(dim=0, keepdim=True)
    _, vectors = torch.linalg.eigh(x.T @ x)
    return (x @ vectors[:, -components:].flip(1)).float()


def sq_distances(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Squared Euclidean distances between the rows of ``a`` and ``b`` in float64 (numpy), clamped at 0.

    numpy rather than torch: the many small matrices of per-cluster typicality run far faster
    single-threaded than through torch's thread pool.
    """
    a64, b64 = a.double().numpy(), b.double().numpy()
    d = np.square(a64).sum(1)[:, None] + np.square(b64).sum(1)[None, :] - 2.0 * (a64 @ b64.T)
    return np.maximum(d, 0.0, out=d)


def labeled_then_pool(ctx: SelectionContext, name: str) -> tuple[torch.Tensor, np.ndarray]:
    """The points of labeled ∪ pool (labeled rows first) in the representation ``embedding`` names,
    and the mask of the labeled rows: what the cold-start selectors pick over."""
    pool_x, labeled_x = features(ctx, name)
    points = torch.cat([labeled_x, pool_x])
    labeled_mask = np.zeros(points.shape[0], dtype=bool)
    labeled_mask[: len(ctx.labeled)] = True
    return points, labeled_mask


def pool_selection(ctx: SelectionContext, rows: np.ndarray, initial: np.ndarray) -> Selection:
    """A selection from rows of :func:`labeled_then_pool`'s points: the pool examples picked, and
    each pool example's initial score."""
    scores = initial[len(ctx.labeled) :].astype(np.float32)
    return Selection(picks=ctx.pool[rows - len(ctx.labeled)].astype(np.int64), scores=scores)


def resolved_options(options: Mapping[str, Any], declared: tuple[ModelOption, ...]) -> dict[str, Any]:
    """A selector's options: the declared defaults, overridden by the given ones it declares."""
    names = {o.name for o in declared}
    return {o.name: o.default for o in declared} | {k: v for k, v in options.items() if k in names}
