"""The torch learner's fit under ``torchrun``: DistributedDataParallel, the same SGD as one process.

Every rank draws the same per-epoch permutation and takes its contiguous part of each global
minibatch (the DistributedSampler scheme, applied to device-resident tensors instead of a
DataLoader). The global batch stays the model's batch size, and each rank's loss is
``sum / global_batch × world`` so DDP's gradient average is the exact global-batch mean: the same
SGD as one process, up to float summation order and per-rank BatchNorm statistics
(``--sync-batchnorm`` shares them on GPU). Training observers (forgetting events) see the
*global* minibatch: indices, logits and labels are gathered every step, so their statistics equal
a single process's. The epoch loop is the single-process one (:mod:`svpkit.learners.epochs`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from svpkit import parallel
from svpkit.learners.epochs import Fit, FitHost, FitResult, fit_timings, run_epochs, start_fit
from svpkit.progress import Advance
from svpkit.protocols import TrainObserver
from svpkit.runtime import derive_seed
from svpkit.timing import synchronize


def fit_ddp(
    learner: FitHost,
    indices: np.ndarray,
    observers: Sequence[TrainObserver] = (),
    progress: Advance | None = None,
) -> FitResult:
    """:meth:`TorchLearner.fit <svpkit.learners.torch.TorchLearner.fit>` with DistributedDataParallel:
    the trained model, its losses and timings."""
    rank, world = dist.get_rank(), dist.get_world_size()
    synchronize(learner.device)
    t0 = time.perf_counter()
    device = learner.device
    model = learner.new_model()
    if parallel.sync_batchnorm():
        # In eval mode SyncBatchNorm is plain BatchNorm: inference needs no reverting.
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    # torch.compile is not used under DDP (the learner's compile option applies to one process).
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    fit = start_fit(learner, model, indices, observers)
    # The permutation must be the same on every rank; augmentation draws differ per rank and
    # consume their own generator so the permutations cannot drift apart.
    order_gen = torch.Generator(device=device)
    order_gen.manual_seed(learner.options.seed)
    aug_gen = torch.Generator(device=device)
    aug_gen.manual_seed(derive_seed(learner.options.seed, "augment", rank))
    step = partial(_step, learner, fit, ddp, aug_gen, rank, world)
    ddp.train()
    losses = run_epochs(fit, learner.config, order_gen, step, progress, reduce_loss=dist.all_reduce)
    # DDP keeps parameters in step, but each rank's last forward updated its own BatchNorm
    # running statistics: take rank 0's so every rank scores with the same model.
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)
    synchronize(device)
    n = fit.indices.numel()
    seconds = time.perf_counter() - t0
    # images: over all ranks
    timings = fit_timings(seconds, n, learner.config, 0.0, False) | {"world_size": float(world)}
    return FitResult(model, losses, timings)


def _step(
    learner: FitHost,
    fit: Fit,
    ddp: DistributedDataParallel,
    aug_gen: torch.Generator,
    rank: int,
    world: int,
    batch: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's part of one global minibatch: (DDP loss, this rank's summed cross-entropy)."""
    m = batch.numel()
    a, b = parallel.shard_range(m, rank, world)
    mine = batch[a:b]
    # A batch smaller than the world leaves some ranks empty: they run one example with weight 0
    # so every rank joins the same gradient all-reduce.
    weight = 1.0 if mine.numel() else 0.0
    run_on = mine if mine.numel() else batch[:1]
    xb = learner.batch_inputs(fit.x, run_on, aug_gen)
    yb = fit.y[run_on]
    with learner.autocast():
        logits = ddp(xb)
        ce_sum = F.cross_entropy(logits.float(), yb, reduction="sum") * weight
        loss = ce_sum * (world / m)
    if fit.observers:
        parts = parallel.shard_sizes(m, world)
        g_idx, g_logits, g_y = parallel.gather_batch(parts, mine, logits.detach()[: mine.numel()], fit.y[mine])
        for obs in fit.observers:
            obs.on_train_batch(g_idx, g_logits, g_y)
    return loss, ce_sum.detach()
