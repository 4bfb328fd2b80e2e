"""Scale-out inside one run: ``torchrun`` ranks, DistributedDataParallel, sharded selection.

Run any ``svpkit`` command (or the MLproject entry) under ``torchrun --nproc_per_node=N`` and the
process group is set up from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``): NCCL on GPUs (rank *r* uses ``cuda:LOCAL_RANK``), gloo on CPU.
Without those variables (``WORLD_SIZE`` unset or 1) nothing here does anything and the code paths
are the single-process ones.

What is distributed, and why it picks exactly what one process would:

- **Training** (:func:`fit_ddp`): every rank draws the same per-epoch permutation and takes its
  contiguous part of each global minibatch (the DistributedSampler scheme, applied to
  device-resident tensors instead of a DataLoader). The global batch stays the model's batch
  size, and each rank's loss is ``sum / global_batch × world`` so DDP's gradient average is the
  exact global-batch mean: the same SGD as one process, up to float summation order and per-rank
  BatchNorm statistics (``--sync-batchnorm`` shares them on GPU). Training observers (forgetting
  events) see the *global* minibatch: indices, logits and labels are gathered every step, so
  their statistics equal a single process's.
- **Pool scoring** (:func:`sharded_rows`): each rank scores a contiguous shard of the pool; the
  shards are all-gathered in rank order, so every rank holds the full score matrix in pool order.
- **Greedy k-center** (:func:`sharded_greedy_k_center`): each rank keeps the running minimum
  distance of its pool shard only (O(N / world) memory per rank). A pick is one all-reduce(MAX)
  of a packed int64 key (distance bits high, inverted global index low, so equal distances go to
  the lowest global index, as ``torch.argmax`` does on one process) and one broadcast of the
  chosen feature vector from the rank that owns it.
- Only rank 0 talks to MLflow (:class:`NullTracker` on the others); selection results are
  identical on every rank, so all ranks keep the same labeled set.
"""

from __future__ import annotations

import atexit
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from svpkit.errors import ConfigError

if TYPE_CHECKING:
    from svpkit.progress import Advance
    from svpkit.protocols import Learner, TrainObserver
    from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec
    from svpkit.train import TorchLearner

SHARD_OPTION = "svpkit.pool_shard"
"""``SelectionContext.options`` key: (start, stop) of this rank's pool shard when the pool
embeddings in the context are the shard only (sharded selectors)."""

_LOW_MASK = 0xFFFFFFFF


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the (possibly trivial) process group."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = ""
    device: torch.device | None = None
    sync_batchnorm: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_INFO = DistInfo()


def info() -> DistInfo:
    """This process's place in the process group (``world_size == 1`` when not distributed)."""
    return _INFO


def is_distributed() -> bool:
    return _INFO.enabled and dist.is_available() and dist.is_initialized()


def is_main() -> bool:
    return _INFO.is_main


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device: str = "auto", sync_batchnorm: bool = False, timeout_s: float = 1800.0) -> DistInfo:
    """Join the process group described by torchrun's environment variables (idempotent).

    ``device``: ``auto`` takes this rank's GPU (``cuda:LOCAL_RANK``) when CUDA is available, else
    the CPU; ``cuda``/``cuda:N`` also mean ``cuda:LOCAL_RANK`` (one GPU per rank); ``cpu`` forces
    gloo on the CPU.
    """
    global _INFO
    if not launched_by_torchrun():
        if sync_batchnorm:
            raise ConfigError("--sync-batchnorm needs a multi-process run (torchrun --nproc_per_node=N)")
        _INFO = DistInfo()
        return _INFO
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available on this machine")
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ConfigError(f"device {device!r} cannot be used in a torchrun run (use auto, cpu or cuda)")
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs: lower --nproc_per_node"
            )
        dev = torch.device("cuda", local_rank)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if sync_batchnorm and not use_cuda:
        raise ConfigError("--sync-batchnorm needs CUDA devices (PyTorch's SyncBatchNorm runs on GPUs only)")
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, init_method="env://", timeout=timedelta(seconds=timeout_s))
        atexit.register(_shutdown)
    _INFO = DistInfo(rank, world, local_rank, backend, dev, sync_batchnorm)
    return _INFO


def _shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def use(dist_info: DistInfo) -> Iterator[DistInfo]:
    """Temporarily set the process-wide :class:`DistInfo` (tests, library use)."""
    global _INFO
    previous = _INFO
    _INFO = dist_info
    try:
        yield dist_info
    finally:
        _INFO = previous


# -- sharding ---------------------------------------------------------------------------------
def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous shard of ``n`` items; sizes differ by at most one."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_sizes(n: int, world_size: int) -> list[int]:
    return [b - a for a, b in (shard_range(n, r, world_size) for r in range(world_size))]


def gather_rows(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """All-gather per-rank row blocks of known ``sizes`` into one tensor, in rank order.

    Collectives need equal shapes, so blocks are padded to the largest and trimmed afterwards.
    """
    world = len(sizes)
    rank = dist.get_rank()
    if local.shape[0] != sizes[rank]:
        raise RuntimeError(f"rank {rank} holds {local.shape[0]} rows, expected {sizes[rank]}")
    rows = max(sizes)
    padded = local.new_zeros((rows, *local.shape[1:]))
    padded[: local.shape[0]] = local
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes)])


def sharded_rows(fn: Callable[[np.ndarray], torch.Tensor], indices: np.ndarray) -> torch.Tensor:
    """``fn(indices)`` computed shard by shard across ranks and gathered (identical on all ranks).

    ``fn`` must map each index to its own row (model scoring in eval mode does), so the gathered
    result equals ``fn(indices)`` on one process. With fewer items than ranks every rank computes
    everything (a trailing dimension cannot be agreed for an empty shard).
    """
    if not is_distributed() or len(indices) < _INFO.world_size:
        return fn(indices)
    start, stop = shard_range(len(indices), _INFO.rank, _INFO.world_size)
    local = fn(indices[start:stop])
    return gather_rows(local, shard_sizes(len(indices), _INFO.world_size))


# -- greedy k-center on a sharded pool --------------------------------------------------------
def _pick_key(min_d: torch.Tensor, offset: int) -> torch.Tensor:
    """This shard's candidate as one int64: (float bits + 1) << 32 | (MASK − global index).

    Non-negative float32 values order like their bit patterns, so the max over ranks is the
    largest distance, then the lowest global index; picked points (−1) and empty shards give 0.
    """
    if min_d.numel() == 0:
        return torch.zeros((), dtype=torch.int64, device=min_d.device)
    pos = torch.argmax(min_d)
    value = min_d[pos].abs()  # abs: -0.0 and +0.0 are the same distance
    bits = value.view(torch.int32).to(torch.int64) + 1
    key = (bits << 32) | (_LOW_MASK - (pos + offset))
    return torch.where(min_d[pos] < 0, torch.zeros_like(key), key)


def sharded_greedy_k_center(
    pool_shard: torch.Tensor, centers: torch.Tensor, k: int, n_total: int, chunk: int = 262_144
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy k-center over a pool split across ranks in :func:`shard_range` order.

    ``pool_shard``: this rank's rows; ``centers``: all initial centres (every rank). Returns
    (global pool positions in pick order, initial min squared distances of the whole pool), both
    identical on every rank and equal to :func:`svpkit.selectors.k_center.greedy_k_center` on
    the concatenated pool (same float32 arithmetic: ``|p|² + |c|² − 2 p·c``).
    """
    from svpkit.selectors.k_center import min_sq_distances

    world, rank = dist.get_world_size(), dist.get_rank()
    if centers.shape[0] == 0:
        raise ConfigError("greedy k-center needs at least one initial centre (labeled or seed point)")
    if k > n_total:
        raise ConfigError(f"greedy k-center cannot pick {k} points from a pool of {n_total}")
    sizes = shard_sizes(n_total, world)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if pool_shard.shape[0] != sizes[rank]:
        raise RuntimeError(f"rank {rank} holds {pool_shard.shape[0]} pool rows, expected {sizes[rank]}")
    dev = pool_shard.device
    n = pool_shard.shape[0]
    offset = int(offsets[rank])
    min_d = torch.empty(n, dtype=torch.float32, device=dev)
    pool_sq = torch.empty(n, dtype=torch.float32, device=dev)
    centers = centers.to(dev)
    for i in range(0, n, chunk):
        block = pool_shard[i : i + chunk]
        min_d[i : i + chunk] = min_sq_distances(block, centers)
        pool_sq[i : i + chunk] = block.float().square().sum(dim=1)
    initial = gather_rows(min_d, sizes)
    dim = pool_shard.shape[1]
    picks = torch.empty(k, dtype=torch.long, device=dev)
    for step in range(k):
        key = _pick_key(min_d, offset)
        dist.all_reduce(key, op=dist.ReduceOp.MAX)
        g = _LOW_MASK - (int(key.item()) & _LOW_MASK)
        picks[step] = g
        owner = int(np.searchsorted(offsets, g, side="right") - 1)
        if owner == rank:
            center = pool_shard[g - offset].float().contiguous()
        else:
            center = torch.empty(dim, dtype=torch.float32, device=dev)
        dist.broadcast(center, src=owner)
        center_sq = center.square().sum()
        for i in range(0, n, chunk):
            dot = pool_shard[i : i + chunk].float() @ center
            d = (pool_sq[i : i + chunk] + center_sq).add_(dot, alpha=-2.0)
            torch.minimum(min_d[i : i + chunk], d, out=min_d[i : i + chunk])
        if owner == rank:
            min_d[g - offset] = -1.0
    return picks, initial


def _sharded_select_k_center(ctx: SelectionContext, k: int) -> Selection:
    from svpkit.selectors.base import Selection

    assert ctx.pool_embeddings is not None and ctx.labeled_embeddings is not None
    positions, initial = sharded_greedy_k_center(ctx.pool_embeddings, ctx.labeled_embeddings, k, len(ctx.pool))
    return Selection(picks=ctx.pool[positions.cpu().numpy()], scores=initial.sqrt().cpu().numpy())


def _sharded_selectors() -> dict[Callable[..., Any], Callable[[SelectionContext, int], Selection]]:
    """Selectors with a sharded-pool implementation, keyed by their single-process function."""
    from svpkit.selectors.k_center import select_k_center

    return {select_k_center: _sharded_select_k_center}


def fill_selection_context(ctx: SelectionContext, learner: Learner, selector: SelectorSpec) -> None:
    """Compute what ``selector`` needs over ``ctx.pool`` / ``ctx.labeled``, sharded across ranks.

    Probabilities (and embeddings for selectors without a sharded implementation) are gathered
    in full on every rank; a sharded selector keeps only this rank's pool shard of embeddings.
    """
    if "probabilities" in selector.needs:
        ctx.probabilities = sharded_rows(lambda ix: learner.predict_proba(ix), ctx.pool)
    if "embeddings" in selector.needs:
        ctx.labeled_embeddings = sharded_rows(lambda ix: learner.embed(ix), ctx.labeled)
        if selector.select in _sharded_selectors() and len(ctx.pool) >= _INFO.world_size:
            start, stop = shard_range(len(ctx.pool), _INFO.rank, _INFO.world_size)
            ctx.pool_embeddings = learner.embed(ctx.pool[start:stop])
            ctx.options[SHARD_OPTION] = (start, stop)
        else:
            ctx.pool_embeddings = sharded_rows(lambda ix: learner.embed(ix), ctx.pool)


def select(selector: SelectorSpec, ctx: SelectionContext, k: int) -> Selection:
    """Run ``selector``: its sharded implementation when the context holds a pool shard."""
    if SHARD_OPTION in ctx.options:
        return _sharded_selectors()[selector.select](ctx, k)
    return selector.select(ctx, k)


# -- training ---------------------------------------------------------------------------------
def gather_batch(
    parts: Sequence[int], indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The global minibatch (indices, logits, targets) from every rank's part of it."""
    return gather_rows(indices, parts), gather_rows(logits.float(), parts), gather_rows(targets, parts)


def fit_ddp(
    learner: TorchLearner,
    indices: np.ndarray,
    observers: Sequence[TrainObserver] = (),
    progress: Advance | None = None,
) -> None:
    """:meth:`TorchLearner.fit` with DistributedDataParallel (see the module docstring)."""
    from torch.nn.parallel import DistributedDataParallel

    from svpkit.runtime import derive_seed
    from svpkit.timing import synchronize

    rank, world = dist.get_rank(), dist.get_world_size()
    synchronize(learner.device)
    t0 = time.perf_counter()
    cfg = learner.config
    device = learner.device
    model = learner._new_model()
    if _INFO.sync_batchnorm:
        # In eval mode SyncBatchNorm is plain BatchNorm: inference needs no reverting.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    learner.model = model
    # torch.compile is not used under DDP (the learner's compile option applies to one process).
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    x_all, y_all = learner._inputs("train")
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=device)
    for obs in observers:
        obs.on_fit_start(len(y_all), device)
    optimizer = learner._optimizer(model)
    # The permutation must be the same on every rank; augmentation draws differ per rank and
    # consume their own generator so the permutations cannot drift apart.
    order_gen = torch.Generator(device=device)
    order_gen.manual_seed(learner.options.seed)
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(derive_seed(learner.options.seed, "augment", rank))
    n, bs = idx.numel(), cfg.batch_size
    ddp.train()
    learner.loss_history = []
    for epoch in range(cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = cfg.lr_at(epoch)
        order = idx[torch.randperm(n, device=device, generator=order_gen)]
        loss_sum = torch.zeros((), device=device)
        for batch in order.split(bs):
            m = batch.numel()
            a, b = shard_range(m, rank, world)
            mine = batch[a:b]
            # A batch smaller than the world leaves some ranks empty: they run one example with
            # weight 0 so every rank joins the same gradient all-reduce.
            weight = 1.0 if mine.numel() else 0.0
            run_on = mine if mine.numel() else batch[:1]
            xb = learner._prepare(learner._gather(x_all, run_on), train=True, generator=aug_gen)
            yb = y_all[run_on]
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=learner.amp):
                logits = ddp(xb)
                ce_sum = F.cross_entropy(logits.float(), yb, reduction="sum") * weight
                loss = ce_sum * (world / m)
            if observers:
                parts = shard_sizes(m, world)
                g_idx, g_logits, g_y = gather_batch(parts, mine, logits.detach()[: mine.numel()], y_all[mine])
                for obs in observers:
                    obs.on_train_batch(g_idx, g_logits, g_y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            loss_sum += ce_sum.detach()
        dist.all_reduce(loss_sum)
        learner.loss_history.append(loss_sum / max(n, 1))
        if progress is not None:
            progress(1)
    # DDP keeps parameters in step, but each rank's last forward updated its own BatchNorm
    # running statistics: take rank 0's so every rank scores with the same model.
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
    synchronize(device)
    learner.timings = {
        "train_seconds": time.perf_counter() - t0,
        "compile_seconds": 0.0,
        "steps": float(math.ceil(n / bs) * cfg.epochs),
        "images": float(n * cfg.epochs),  # over all ranks
        "compiled": 0.0,
        "world_size": float(world),
    }


# -- tracking on rank 0 only ------------------------------------------------------------------
class NullTracker:
    """What ranks other than 0 report to: everything is dropped (rank 0 logs the run)."""

    run_id = ""
    experiment_id = ""

    def __init__(self) -> None:
        self.state_extra: dict[str, Any] = {}

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_array(self, path: str, array: np.ndarray) -> None:
        pass

    def log_json(self, path: str, obj: Any) -> None:
        pass

    def log_text(self, path: str, text: str) -> None:
        pass

    def log_figure(self, figure: Any, path: str) -> None:
        pass

    def save_state(self, state: dict[str, Any]) -> None:
        pass

    def log_dataset(self, dataset: Any, context: str = "training") -> None:
        pass


@contextmanager
def null_run() -> Iterator[NullTracker]:
    """The tracked-run stand-in for ranks other than 0."""
    yield NullTracker()


def from_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` evaluated on rank 0 only (e.g. reading a run to resume) and sent to every rank."""
    if not is_distributed():
        return fn()
    box = [fn() if _INFO.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_params(dist_info: DistInfo) -> dict[str, Any]:
    """Params rank 0 logs for a distributed run."""
    return {
        "distributed.world_size": dist_info.world_size,
        "distributed.backend": dist_info.backend,
        "distributed.sync_batchnorm": dist_info.sync_batchnorm,
    }


def replace_device(dist_info: DistInfo, device: str) -> str:
    """The device a rank should use given the user's ``--device``."""
    return str(dist_info.device) if dist_info.enabled and dist_info.device is not None else device


__all__ = [
    "DistInfo",
    "NullTracker",
    "fill_selection_context",
    "fit_ddp",
    "gather_rows",
    "info",
    "init_from_env",
    "is_distributed",
    "select",
    "shard_range",
    "sharded_greedy_k_center",
    "sharded_rows",
]
