"""Scale-out inside one run: the ``torchrun`` process group and the collectives svpkit uses.

Run any ``svpkit`` command (or the MLproject entry) under ``torchrun --nproc_per_node=N`` and the
process group is set up from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``): NCCL on GPUs (rank *r* uses ``cuda:LOCAL_RANK``), gloo on CPU.
Without those variables (``WORLD_SIZE`` unset or 1) nothing here does anything and the code paths
are the single-process ones.

What is distributed, and why it picks exactly what one process would:

- **Training** (:func:`svpkit.learners.torch_ddp.fit_ddp`): DistributedDataParallel over the same
  per-epoch permutation on every rank; training observers see the gathered global minibatch
  (:func:`gather_batch`).
- **Pool scoring** (:func:`gather_shards`): each rank scores a contiguous shard of the pool and
  reduces it to what the selector needs per example; only those reductions are all-gathered in rank
  order, so every rank holds them in pool order. A full matrix (the softmax, for the selectors that
  read it) is gathered block by block into a memory-mapped file (:func:`gather_shards_into`);
  embeddings with :func:`sharded_rows`. A top-k selector of per-example scores
  (:mod:`svpkit.selectors.shard_top_k`) exchanges only every rank's candidates
  (:func:`all_gather_varying`), and the pool's scores go to rank 0 alone (:func:`gather_to_main`).
- **Greedy k-center** (:func:`svpkit.selectors.k_center.sharded_greedy_k_center`): each rank keeps
  the running minima of its pool shard only; a pick is one all-reduce of a packed
  (distance, index) key (:func:`all_argmax`).
- Only rank 0 talks to MLflow; selection results are identical on every rank, so all ranks keep
  the same labeled set.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from svpkit.errors import ConfigError

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


def is_distributed() -> bool:
    return _INFO.enabled and dist.is_available() and dist.is_initialized()


def world_size() -> int:
    """The number of ranks of this run (1 without torchrun)."""
    return _INFO.world_size


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def sync_batchnorm() -> bool:
    """Whether this run shares BatchNorm statistics across ranks (``--sync-batchnorm``)."""
    return _INFO.sync_batchnorm


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
        atexit.register(shutdown)
    _INFO = DistInfo(rank, world, local_rank, backend, dev, sync_batchnorm)
    return _INFO


def shutdown() -> None:
    """Leave the process group (registered at exit by :func:`init_from_env`)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# -- sharding ---------------------------------------------------------------------------------
def shard_range(n: int, rank: int, world_size: int) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous shard of ``n`` items; sizes differ by at most one."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)


def shard_sizes(n: int, world_size: int) -> list[int]:
    return [b - a for a, b in (shard_range(n, r, world_size) for r in range(world_size))]


def local_shard(n: int) -> tuple[int, int] | None:
    """This rank's [start, stop) of ``n`` items, or None when not distributed or ``n`` is below the
    number of ranks (a trailing dimension cannot be agreed for an empty shard)."""
    if not is_distributed() or n < _INFO.world_size:
        return None
    return shard_range(n, _INFO.rank, _INFO.world_size)


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
    everything (see :func:`local_shard`).
    """
    shard = local_shard(len(indices))
    if shard is None:
        return fn(indices)
    start, stop = shard
    local = fn(indices[start:stop])
    return gather_rows(local, shard_sizes(len(indices), _INFO.world_size))


def gather_shards(local: torch.Tensor, n: int) -> torch.Tensor:
    """Every rank's :func:`local_shard` rows of ``n`` items (``local``), gathered in pool order."""
    return gather_rows(local, shard_sizes(n, _INFO.world_size))


def _collective_device() -> torch.device:
    """Where a collective's tensors must be: this rank's GPU under NCCL, else the CPU."""
    return _INFO.device if _INFO.backend == "nccl" and _INFO.device is not None else torch.device("cpu")


def all_gather_varying(local: torch.Tensor) -> torch.Tensor:
    """Every rank's ``local`` rows, whose number may differ between ranks, concatenated in rank
    order (one all-gather of the counts, then :func:`gather_rows`), on the CPU."""
    local = local.to(_collective_device())
    count = torch.tensor([local.shape[0]], dtype=torch.int64, device=local.device)
    counts = [torch.zeros_like(count) for _ in range(_INFO.world_size)]
    dist.all_gather(counts, count)
    return gather_rows(local, [int(c.item()) for c in counts]).cpu()


def gather_to_main(local: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor | None:
    """Per-rank row blocks of known ``sizes`` gathered on rank 0 only, in rank order (None on the
    other ranks, which never hold the whole): e.g. the pool's scores, which only rank 0 logs. On the CPU.

    Point to point, with no padding: rank 0 allocates the result and receives every other rank's
    block straight into its rows (gloo writes a contiguous tensor in place), so beyond its own
    block it holds the one result tensor; the other ranks send their block as it is."""
    rank = dist.get_rank()
    local = local.to(_collective_device()).contiguous()
    if local.shape[0] != sizes[rank]:
        raise RuntimeError(f"rank {rank} holds {local.shape[0]} rows, expected {sizes[rank]}")
    if rank != 0:
        if sizes[rank]:
            dist.send(local, dst=0)
        return None
    out = local.new_empty((sum(sizes), *local.shape[1:]))
    start = 0
    for src, size in enumerate(sizes):
        rows = out[start : start + size]
        if src == 0:
            rows.copy_(local)
        elif size:
            dist.recv(rows, src=src)
        start += size
    return out.cpu()


def all_sum(local: torch.Tensor) -> torch.Tensor:
    """The element-wise sum of every rank's ``local`` (an all-reduce; ``local`` is not changed), on the CPU."""
    total = local.to(_collective_device(), copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total.cpu()


GATHER_BLOCK = 16_384
"""Rows per rank and step of :func:`gather_shards_into` (bounded memory whatever the pool)."""


def gather_shards_into(local: torch.Tensor, out: torch.Tensor, block: int = GATHER_BLOCK) -> torch.Tensor:
    """:func:`gather_shards` of a large ``local`` into ``out`` (pool order), ``block`` rows of every
    rank's shard per step, so neither the gathered whole nor a rank's shard is ever copied at once
    (``out`` may be a memory-mapped tensor). Returns ``out``."""
    world = _INFO.world_size
    bounds = [shard_range(out.shape[0], r, world) for r in range(world)]
    device = _collective_device()
    for lo in range(0, max(b - a for a, b in bounds), block):
        sizes = [max(0, min(b - a - lo, block)) for a, b in bounds]
        mine = local[lo : lo + sizes[_INFO.rank]].to(device)
        rows = gather_rows(mine, sizes).to(out.device)
        done = 0
        for (a, _b), size in zip(bounds, sizes):
            out[a + lo : a + lo + size] = rows[done : done + size]
            done += size
    return out


def gather_batch(
    parts: Sequence[int], indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The global minibatch (indices, logits, targets) from every rank's part of it."""
    return gather_rows(indices, parts), gather_rows(logits.float(), parts), gather_rows(targets, parts)


# -- the arg-max over every rank's shard ------------------------------------------------------
def _pick_key(values: torch.Tensor, offset: int) -> torch.Tensor:
    """This shard's candidate as one int64: (float bits + 1) << 32 | (MASK − global index).

    Non-negative float32 values order like their bit patterns, so the max over ranks is the
    largest value, then the lowest global index; negative entries (picked points, −1) and empty
    shards give 0.
    """
    if values.numel() == 0:
        return torch.zeros((), dtype=torch.int64, device=values.device)
    pos = torch.argmax(values)
    value = values[pos].abs()  # abs: -0.0 and +0.0 are the same distance
    bits = value.view(torch.int32).to(torch.int64) + 1
    key = (bits << 32) | (_LOW_MASK - (pos + offset))
    return torch.where(values[pos] < 0, torch.zeros_like(key), key)


def all_argmax(values: torch.Tensor, offset: int) -> int:
    """Global position of the largest non-negative float32 value over every rank's ``values``.

    ``offset``: the global position of this rank's first value. One all-reduce(MAX) of the packed
    key of :func:`_pick_key`: equal values go to the lowest global position, as ``torch.argmax``
    does on one process.
    """
    key = _pick_key(values, offset)
    dist.all_reduce(key, op=dist.ReduceOp.MAX)
    return _LOW_MASK - (int(key.item()) & _LOW_MASK)


def barrier() -> None:
    """Wait for every rank (nothing when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_shards(n: int) -> list[tuple[int, int]]:
    """Every rank's [start, stop) of ``n`` items, in rank order (one range when not distributed)."""
    world = _INFO.world_size if is_distributed() else 1
    return [shard_range(n, rank, world) for rank in range(world)]


# -- what the CLI needs -----------------------------------------------------------------------
def from_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` evaluated on rank 0 only (e.g. reading a run to resume) and sent to every rank."""
    if not is_distributed():
        return fn()
    box = [fn() if _INFO.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def run_params(dist_info: DistInfo) -> dict[str, object]:
    """Params rank 0 logs for a distributed run."""
    return {
        "distributed.world_size": dist_info.world_size,
        "distributed.backend": dist_info.backend,
        "distributed.sync_batchnorm": dist_info.sync_batchnorm,
    }


def replace_device(dist_info: DistInfo, device: str) -> str:
    """The device a rank should use given the user's ``--device``."""
    return str(dist_info.device) if dist_info.enabled and dist_info.device is not None else device
