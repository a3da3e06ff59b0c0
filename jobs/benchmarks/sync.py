"""Section `sync`: weight-sync seconds and GB/s vs parameter count, object store vs in-process memcpy.

Per shape: a RolloutPool with one live engine of that shape; the driver reads the checkpoint's
tensors, then times (a) publish: `publish_update` with `ray.put`, the function LearnerActor's export
runs on rank 0 once the parameters are gathered, and (b) load: `RolloutPool.async_update_weights`
until the engine holds the new version (the RolloutActor's `update_weights`: fetch from the object
store, copy into the staging buffer the vLLM worker maps, layerwise `load_weights`). The reference is a
plain `Tensor.copy_` of the same tensors into warm preallocated buffers in one process: one copy,
where publish + load need at least two (into the object store, out of it) plus vLLM's reload passes.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import ray
import torch

from jobs.benchmarks.models import ensure_bench_model
from jobs.benchmarks.report import SectionResult
from jobs.benchmarks.workloads import ModelShape, Workload
from learner.config import LearnerConfig
from rollout.config import RolloutConfig
from rollout.weight_sync import publish_update

logger = logging.getLogger(__name__)

COLUMNS = [
    "model",
    "params",
    "MB",
    "memcpy s",
    "memcpy GB/s",
    "publish s",
    "load s",
    "sync s",
    "sync GB/s",
    "sync/memcpy",
]
# Memory an update needs beyond the engine, as multiples of the weight bytes: the driver's tensors and
# memcpy buffers, their object-store copies, the engine's staging buffer, its weights and reload buffers.
MEMORY_MULTIPLE = 6
# vLLM engine baseline (process, KV cache) in bytes, on top of MEMORY_MULTIPLE × weights.
ENGINE_OVERHEAD = 3 * 1024**3
# Timed in-process copies per shape (cheap, and noisy one at a time).
MEMCPY_REPEATS = 10
# The bucket size training exports with, so the bench measures the sync a run does.
BUCKET_BYTES = LearnerConfig().export_bucket_mb * 2**20


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _memcpy_seconds(tensors: dict[str, torch.Tensor]) -> float:
    """Best seconds to copy every tensor into a preallocated buffer of the same shape (after a warm-up).

    Milliseconds long, so one preemption on a busy box can multiply it: the best of several repeats is
    the copy's cost, and the object-store path is summarised the same way.
    """
    buffers = {name: torch.empty_like(t) for name, t in tensors.items()}
    times = []
    for _ in range(MEMCPY_REPEATS + 1):
        start = time.perf_counter()
        for name, t in tensors.items():
            buffers[name].copy_(t)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def _object_store_seconds(
    pool, tensors: dict[str, torch.Tensor], bucket_bytes: int, repeats: int
) -> tuple[float, float]:
    """Best (publish s, load s) of `repeats` updates pushed into the live engine (after a warm-up)."""
    publish, load = [], []
    for version in range(1, repeats + 2):
        start = time.perf_counter()
        update = publish_update(tensors.items(), version, bucket_bytes, ray.put)
        mark = time.perf_counter()
        versions = ray.get(pool.async_update_weights(update))
        done = time.perf_counter()
        if versions != [version] * len(versions):
            raise RuntimeError(f"engines report versions {versions} after pushing v{version}")
        publish.append(mark - start)
        load.append(done - mark)
        del update
    best = min(range(1, len(load)), key=lambda i: publish[i] + load[i])
    return publish[best], load[best]


def _measure_shape(shape: ModelShape, workload: Workload, rollout_cfg: RolloutConfig) -> dict:
    from safetensors.torch import load_file

    from actors.rollout_pool import RolloutPool

    model_dir = ensure_bench_model(shape)
    tensors: dict[str, torch.Tensor] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        tensors.update(load_file(str(path)))
    nbytes = sum(t.numel() * t.element_size() for t in tensors.values())
    memcpy_s = _memcpy_seconds(tensors)
    pool = RolloutPool(dataclasses.replace(rollout_cfg, model=str(model_dir)))
    try:
        publish_s, load_s = _object_store_seconds(pool, tensors, BUCKET_BYTES, workload.repeats)
    finally:
        pool.shutdown()
    sync_s = publish_s + load_s
    return {
        "model": shape.name,
        "params": sum(t.numel() for t in tensors.values()),
        "MB": nbytes / 1e6,
        "memcpy s": memcpy_s,
        "memcpy GB/s": nbytes / memcpy_s / 1e9,
        "publish s": publish_s,
        "load s": load_s,
        "sync s": sync_s,
        "sync GB/s": nbytes / sync_s / 1e9,
        "sync/memcpy": memcpy_s / sync_s,
    }


def run(workload: Workload, out_dir: Path) -> SectionResult:
    """Sweep `workload.sync_shapes` (needs a connected Ray cluster); skips shapes that cannot fit in memory."""
    result = SectionResult("sync", f"Weight sync, object store into a live vLLM engine ({workload.name})")
    result.columns = COLUMNS
    rollout_cfg = RolloutConfig(
        model="-", max_model_len=1024, max_tokens=workload.max_new_tokens, kv_cache_gib=1, max_restarts=0
    )
    for shape in workload.sync_shapes:
        need = MEMORY_MULTIPLE * 4 * shape.num_parameters + ENGINE_OVERHEAD
        have = _available_bytes()
        if need > have:
            result.notes.append(
                f"{shape.name} skipped: needs ~{need / 2**30:.1f} GiB, {have / 2**30:.1f} GiB available"
            )
            continue
        row = _measure_shape(shape, workload, rollout_cfg)
        result.rows.append(row)
        logger.info("sync %s: %.3f s (%.2f GB/s), memcpy %.4f s", shape.name, row["sync s"], row["sync GB/s"],
                    row["memcpy s"])  # fmt: skip
    if result.rows:
        largest = result.rows[-1]
        result.metrics = {
            "object_store_gb_per_s": largest["sync GB/s"],
            "memcpy_gb_per_s": largest["memcpy GB/s"],
            "largest_params": float(largest["params"]),
        }
    result.notes.append(
        f"best of {workload.repeats} updates (memcpy: of {MEMCPY_REPEATS}) after 1 warm-up; sync = publish (ray.put of the "
        f"tensors' bytes) + load (engine fetch + copy into shared staging + layerwise load_weights); buckets of {BUCKET_BYTES >> 20} MiB "
        "(learner.export_bucket_mb, as training exports); "
        "target row = largest model measured"
    )
    return result
