"""Weight sync, sending side (docs/architecture.md §2.3): full parameters → buckets in the wire format of
rollout/weight_sync.py.

Under ZeRO-3 no rank holds a whole parameter, so parameters are gathered a bucket at a time with
`deepspeed.zero.GatheredParameters` (a collective: every rank iterates to the end) and only rank 0
publishes. This module does not import Ray: the actor passes `put` (``ray.put``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import deepspeed
import torch

from rollout.weight_sync import Bucket, WeightUpdate, publish_update


def iter_full_parameters(
    module: torch.nn.Module, zero_stage: int, bucket_mb: int
) -> Iterator[tuple[str, torch.Tensor]]:
    """Yield (HF name, full CPU tensor) for every parameter, in the module's order.

    Under ZeRO-3 partitions are gathered about `bucket_mb` MiB at a time, so peak extra memory is one
    bucket. Collective under ZeRO-3: every rank must exhaust the iterator.
    """
    named = list(module.named_parameters())
    if zero_stage < 3:
        for name, param in named:
            yield name, param.detach().cpu()
        return
    budget, bucket, size = bucket_mb * 2**20, [], 0
    for i, (name, param) in enumerate(named):
        bucket.append((name, param))
        size += param.ds_numel * param.element_size()
        if size >= budget or i == len(named) - 1:
            with deepspeed.zero.GatheredParameters([p for _, p in bucket]):
                gathered = [(n, p.detach().cpu().clone()) for n, p in bucket]
            yield from gathered
            bucket, size = [], 0


def export_weights(
    module: torch.nn.Module,
    zero_stage: int,
    version: int,
    bucket_mb: int,
    is_rank0: bool,
    put: Callable[[Bucket], Any],
) -> WeightUpdate | None:
    """Publish the current parameters as one WeightUpdate (rank 0) after a collective gather.

    Args:
        module: the policy module (`engine.module`), HF parameter names.
        zero_stage: 3 gathers partitions; 2 reads the replicated parameters.
        version: learner step the weights belong to.
        bucket_mb: bucket size of both the gather and the wire buckets.
        is_rank0: only rank 0 calls `put`; other ranks just join the gathers.
        put: stores one bucket (a copy: the bucket views the parameters) and returns a handle
            (``ray.put`` → ObjectRef).

    Returns:
        The WeightUpdate on rank 0, None elsewhere.
    """
    named = iter_full_parameters(module, zero_stage, bucket_mb)
    if is_rank0:
        return publish_update(named, version, bucket_mb * 2**20, put)
    for _ in named:  # join every gather
        pass
    return None
