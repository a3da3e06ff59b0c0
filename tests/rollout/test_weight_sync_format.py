"""Weight-sync wire format and receivers, with a recording fake engine (no Ray, no vLLM)."""

from __future__ import annotations

import pickle

import pytest
import torch

from rollout.config import RolloutConfig
from rollout.weight_sync import (
    Bucket,
    CollectiveReceiver,
    ObjectStoreReceiver,
    WeightUpdate,
    decode_bucket,
    encode_bucket,
    iter_buckets,
    make_receiver,
    manifest_entry,
    publish_update,
)


class RecordingEngine:
    def __init__(self):
        self.calls: list[tuple] = []

    def begin_weight_update(self):
        self.calls.append(("begin",))

    def load_weight_bucket(self, bucket: Bucket) -> list[str]:
        names = list(decode_bucket(bucket))
        self.calls.append(("bucket", tuple(sorted(names))))
        return names

    def finish_weight_update(self):
        self.calls.append(("finish",))

    def init_weight_broadcast(self, master_addr, master_port, rank_offset, world_size):
        self.calls.append(("init", master_addr, master_port, rank_offset, world_size))

    def receive_weight_broadcast(self, manifest):
        self.calls.append(("broadcast", tuple(name for name, _, _ in manifest)))


def _named() -> list[tuple[str, torch.Tensor]]:
    # 4-byte floats: a 10x10 tensor is 400 bytes.
    return [
        ("a.weight", torch.arange(100, dtype=torch.float32).reshape(10, 10)),
        ("b.weight", torch.ones(5, dtype=torch.float32)),
        ("c.weight", torch.zeros(10, 10, dtype=torch.bfloat16)),
        ("d.bias", torch.full((3,), 2.0)),
    ]


def test_bucket_round_trip_keeps_names_values_dtypes_through_out_of_band_pickle():
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    named = dict(_named()) | {"view.weight": base.t(), "scalar": torch.tensor(7, dtype=torch.int64)}
    bucket = encode_bucket(named)
    assert bucket.shapes[-2:] == [(4, 3), ()]
    assert [a.nbytes for a in bucket.arrays] == [400, 20, 200, 12, 48, 8]
    # Protocol 5 with a buffer callback, as ray.put serializes: every array's bytes travel out of band.
    buffers: list[pickle.PickleBuffer] = []
    payload = pickle.dumps(bucket, protocol=5, buffer_callback=buffers.append)
    assert len(buffers) == len(named) and len(payload) < 2000
    received = pickle.loads(payload, buffers=[bytes(b.raw()) for b in buffers])  # read-only, like ray.get
    out = decode_bucket(received)
    assert list(out) == list(named)
    for name, tensor in named.items():
        assert out[name].dtype == tensor.dtype and out[name].shape == tensor.shape and torch.equal(out[name], tensor)


def test_encode_views_contiguous_tensors_and_decode_views_the_arrays():
    weight = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    bucket = encode_bucket({"w": weight, "wt": weight.t()})
    weight[0, 0] = 42.0  # seen through the view; the transposed one was copied (made contiguous)
    out = decode_bucket(bucket)
    assert out["w"][0, 0] == 42.0 and out["wt"][0, 0] == 0.0
    assert out["w"].data_ptr() == bucket.arrays[0].ctypes.data


def test_publish_update_puts_each_bucket_and_lists_every_tensor():
    stored: list[Bucket] = []

    def put(bucket: Bucket) -> int:
        stored.append(bucket)
        return len(stored) - 1

    update = publish_update(_named(), version=4, bucket_bytes=420, put=put)
    assert update.version == 4 and update.bucket_refs == [0, 1]
    assert [b.names for b in stored] == [["a.weight", "b.weight"], ["c.weight", "d.bias"]]
    assert update.manifest == [
        ("a.weight", (10, 10), "float32"),
        ("b.weight", (5,), "float32"),
        ("c.weight", (10, 10), "bfloat16"),
        ("d.bias", (3,), "float32"),
    ]


def test_iter_buckets_groups_in_order_by_size():
    buckets = list(iter_buckets(_named(), bucket_bytes=420))
    # 400 + 20 bytes fill the first bucket exactly; bf16 10x10 (200) + 3 floats (12) make the second.
    assert [list(b) for b in buckets] == [["a.weight", "b.weight"], ["c.weight", "d.bias"]]
    # A tensor larger than the bucket gets a bucket of its own.
    assert [list(b) for b in iter_buckets(_named(), bucket_bytes=100)] == [
        ["a.weight"],
        ["b.weight"],
        ["c.weight"],
        ["d.bias"],
    ]


def test_manifest_entry():
    assert manifest_entry("c.weight", torch.zeros(10, 10, dtype=torch.bfloat16)) == ("c.weight", (10, 10), "bfloat16")


def test_object_store_receiver_fetches_buckets_in_order_within_one_session():
    named = _named()
    store = {f"ref{i}": encode_bucket(b) for i, b in enumerate(iter_buckets(named, 420))}
    fetched: list[str] = []

    def fetch(ref: str) -> Bucket:
        fetched.append(ref)
        return store[ref]

    engine = RecordingEngine()
    update = WeightUpdate(version=3, bucket_refs=list(store), manifest=[manifest_entry(n, t) for n, t in named])
    make_receiver("object_store", engine, fetch).receive(update)
    assert fetched == ["ref0", "ref1"]
    assert engine.calls == [
        ("begin",),
        ("bucket", ("a.weight", "b.weight")),
        ("bucket", ("c.weight", "d.bias")),
        ("finish",),
    ]


def test_object_store_receiver_rejects_missing_tensor_and_empty_refs():
    named = _named()
    update = WeightUpdate(
        version=1, bucket_refs=[encode_bucket(dict(named[:3]))], manifest=[manifest_entry(n, t) for n, t in named]
    )
    with pytest.raises(ValueError, match=r"missing \['d.bias'\]"):
        ObjectStoreReceiver(RecordingEngine(), fetch=lambda d: d).receive(update)
    with pytest.raises(ValueError, match="no bucket_refs"):
        ObjectStoreReceiver(RecordingEngine(), fetch=lambda d: d).receive(
            WeightUpdate(version=1, manifest=update.manifest)
        )


def test_collective_receiver_needs_connect_then_passes_manifest():
    engine = RecordingEngine()
    receiver = make_receiver("collective", engine, fetch=lambda d: d)
    assert isinstance(receiver, CollectiveReceiver)
    update = WeightUpdate(version=1, manifest=[manifest_entry(n, t) for n, t in _named()])
    with pytest.raises(RuntimeError, match="before connect"):
        receiver.receive(update)
    receiver.connect("10.0.0.1", 29500, rank_offset=1, world_size=3)
    receiver.receive(update)
    assert engine.calls == [
        ("init", "10.0.0.1", 29500, 1, 3),
        ("broadcast", ("a.weight", "b.weight", "c.weight", "d.bias")),
    ]


def test_unknown_transport_and_bad_update_rejected():
    with pytest.raises(ValueError, match="valid: \\['object_store', 'collective'\\]"):
        make_receiver("carrier_pigeon", RecordingEngine(), fetch=lambda d: d)
    with pytest.raises(ValueError, match="manifest is empty"):
        WeightUpdate(version=0)
    with pytest.raises(ValueError, match=r"rollout.weight_sync must be one of \[.*\], got 'nccl'"):
        RolloutConfig(weight_sync="nccl")
    with pytest.raises(ValueError, match="max_tokens"):
        RolloutConfig(max_tokens=1024, max_model_len=1024)
