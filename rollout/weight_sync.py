"""Weight sync, receiving side: one interface, two transports (docs/architecture.md §2.3).

Wire format, shared with the sending side in learner/:

* a **bucket** is a :class:`Bucket`: HF checkpoint names (so vLLM's own `load_weights` maps them,
  fusing q/k/v and gate/up, exactly as when loading from disk), dtypes, shapes and each tensor's raw
  bytes as a numpy array. Numpy arrays are what Ray serializes out of band: ``ray.put`` copies each one
  straight into the object store and ``ray.get`` returns read-only views of it, so neither side pays
  for an encoding pass (safetensors cost one clone plus one serialization copy per side);
* a :class:`WeightUpdate` names the policy version, the buckets (ObjectRefs of buckets, object-store
  transport) and a manifest of every tensor (name, shape, dtype): the check that nothing was missed,
  and for the collective transport the order and shapes of the NCCL broadcasts.

Object store: the engine fetches and loads one bucket at a time, so peak extra memory is about one
bucket (the engine's shared staging buffer) plus the layers it leaves half-loaded. Collective: the learner's rank 0 broadcasts each tensor
in manifest order (vLLM's NCCL weight-transfer engine, ``packed=False``) while the engine receives.
This module has no Ray import: the caller passes `fetch` (``ray.get`` in the actor, identity in tests).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

logger = logging.getLogger(__name__)

# One manifest entry: HF parameter name, shape, torch dtype name without the "torch." prefix.
ManifestEntry = tuple[str, tuple[int, ...], str]


@dataclass(frozen=True)
class WeightUpdate:
    """One policy version's weights, as the learner publishes them.

    Attributes:
        version: learner step that produced the weights; stamped on samples as `policy_version`.
        bucket_refs: one `ObjectRef[Bucket]` per bucket (object-store transport; empty for collective). Kept nested in this dataclass so Ray does not resolve them all at once.
        manifest: every tensor of the update, in send order.
    """

    version: int
    bucket_refs: list[Any] = field(default_factory=list)
    manifest: list[ManifestEntry] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.version < 0:
            raise ValueError(f"WeightUpdate.version must be >= 0, got {self.version}")
        if not self.manifest:
            raise ValueError("WeightUpdate.manifest is empty: an update must name the tensors it carries")


@dataclass(frozen=True)
class Bucket:
    """Some tensors of an update as raw bytes (see the module docstring for why numpy).

    Attributes:
        names: HF parameter names.
        dtypes: torch dtype names without the "torch." prefix.
        shapes: tensor shapes.
        arrays: each tensor's bytes, a 1-D uint8 array (C order).
    """

    names: list[str]
    dtypes: list[str]
    shapes: list[tuple[int, ...]]
    arrays: list[np.ndarray]

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def encode_bucket(named_tensors: Mapping[str, torch.Tensor]) -> Bucket:
    """Views of the tensors' bytes (a copy only for non-contiguous or non-CPU tensors).

    The bucket aliases the tensors: publish it with a `put` that copies (``ray.put`` does).
    """
    names, dtypes, shapes, arrays = [], [], [], []
    for name, tensor in named_tensors.items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        names.append(name)
        dtypes.append(str(tensor.dtype).removeprefix("torch."))
        shapes.append(tuple(tensor.shape))
        arrays.append(flat.view(torch.uint8).numpy())
    return Bucket(names, dtypes, shapes, arrays)


def decode_bucket(bucket: Bucket) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_bucket`: tensors viewing the bucket's arrays (no copy)."""
    with warnings.catch_warnings():
        # Arrays from ray.get are read-only views of the object store; the tensors are only read.
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return {
            name: torch.from_numpy(array).view(getattr(torch, dtype)).reshape(shape)
            for name, dtype, shape, array in zip(bucket.names, bucket.dtypes, bucket.shapes, bucket.arrays, strict=True)
        }


def publish_update(
    named_tensors: Iterable[tuple[str, torch.Tensor]], version: int, bucket_bytes: int, put: Callable[[Bucket], Any]
) -> WeightUpdate:
    """Bucket, `put` and list every tensor: the learner's export (rank 0) and the sync benchmark share it."""
    refs: list[Any] = []
    manifest: list[ManifestEntry] = []
    for bucket in iter_buckets(named_tensors, bucket_bytes):
        manifest.extend(manifest_entry(name, t) for name, t in bucket.items())
        refs.append(put(encode_bucket(bucket)))
    return WeightUpdate(version=version, bucket_refs=refs, manifest=manifest)


def manifest_entry(name: str, tensor: torch.Tensor) -> ManifestEntry:
    return name, tuple(tensor.shape), str(tensor.dtype).removeprefix("torch.")


def iter_buckets(
    named_tensors: Iterable[tuple[str, torch.Tensor]], bucket_bytes: int
) -> Iterator[dict[str, torch.Tensor]]:
    """Group tensors, in order, into buckets of about `bucket_bytes` (a larger tensor gets its own).

    Keeping the model's parameter order keeps each layer's tensors together, so the engine completes
    (and frees the staging buffers of) one layer after another.
    """
    bucket: dict[str, torch.Tensor] = {}
    size = 0
    for name, tensor in named_tensors:
        nbytes = tensor.numel() * tensor.element_size()
        if bucket and size + nbytes > bucket_bytes:
            yield bucket
            bucket, size = {}, 0
        bucket[name] = tensor
        size += nbytes
    if bucket:
        yield bucket


class WeightLoadingEngine(Protocol):
    """What a receiver needs from the engine (implemented by rollout.engine.RolloutEngine)."""

    def begin_weight_update(self) -> None: ...

    def load_weight_bucket(self, bucket: Bucket) -> list[str]: ...

    def finish_weight_update(self) -> None: ...

    def init_weight_broadcast(self, master_addr: str, master_port: int, rank_offset: int, world_size: int) -> None: ...

    def receive_weight_broadcast(self, manifest: list[ManifestEntry]) -> None: ...


class ObjectStoreReceiver:
    """Loads an update bucket by bucket from the object store.

    Args:
        engine: the engine to load into.
        fetch: turns a bucket ref into its :class:`Bucket` (``ray.get``); called once per bucket, in order.
    """

    def __init__(self, engine: WeightLoadingEngine, fetch: Callable[[Any], Bucket]):
        self.engine = engine
        self.fetch = fetch

    def receive(self, update: WeightUpdate) -> None:
        """Load every bucket of `update`; raises ValueError if the buckets and the manifest disagree."""
        if not update.bucket_refs:
            raise ValueError(
                f"WeightUpdate v{update.version} has no bucket_refs; the object_store transport needs them"
            )
        loaded: list[str] = []
        self.engine.begin_weight_update()
        for ref in update.bucket_refs:
            # One bucket alive at a time: drop it (its object-store views) before fetching the next.
            bucket = self.fetch(ref)
            loaded.extend(self.engine.load_weight_bucket(bucket))
            del bucket
        self.engine.finish_weight_update()
        expected = {name for name, _, _ in update.manifest}
        if sorted(loaded) != sorted(expected):
            missing, extra = sorted(expected - set(loaded)), sorted(set(loaded) - expected)
            raise ValueError(
                f"WeightUpdate v{update.version}: buckets do not match the manifest (missing {missing[:5]}, "
                f"unexpected {extra[:5]}, {len(loaded)} loaded vs {len(expected)} listed)"
            )


class CollectiveReceiver:
    """Receives an update over an NCCL group the learner's rank 0 leads (GPUs only).

    Call :meth:`connect` once (the learner joins the same group concurrently), then :meth:`receive`
    per update while the learner broadcasts each manifest tensor from its rank 0.
    """

    def __init__(self, engine: WeightLoadingEngine):
        self.engine = engine
        self.connected = False

    def connect(self, master_addr: str, master_port: int, rank_offset: int, world_size: int) -> None:
        """Join the learner's weight group as ranks rank_offset..rank_offset+tp-1 of `world_size`."""
        self.engine.init_weight_broadcast(master_addr, master_port, rank_offset, world_size)
        self.connected = True

    def receive(self, update: WeightUpdate) -> None:
        if not self.connected:
            raise RuntimeError("CollectiveReceiver.receive before connect(): join the learner's weight group first")
        self.engine.receive_weight_broadcast(update.manifest)


def make_receiver(
    transport: str, engine: WeightLoadingEngine, fetch: Callable[[Any], Bucket]
) -> ObjectStoreReceiver | CollectiveReceiver:
    """The receiver for `transport` (RolloutConfig.weight_sync)."""
    if transport == "object_store":
        return ObjectStoreReceiver(engine, fetch)
    if transport == "collective":
        return CollectiveReceiver(engine)
    raise ValueError(f"weight sync transport {transport!r} unknown; valid: ['object_store', 'collective']")
