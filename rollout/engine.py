"""The rollout engine: a vLLM engine (started by rollout/vllm_start.py) that samples and takes new weights.

`RolloutEngine` turns token-id prompts into a :class:`TrajectoryBatch` (G samples per prompt, the
logprob vLLM computed for each sampled token, finish reasons) and loads new weights into the live
engine. Weights travel through a shared-memory staging buffer the vLLM worker maps; ``LLM.collective_rpc``
only carries its layout to methods that :class:`WeightSyncWorkerExtension` adds to every vLLM worker
(on GPUs RPC arguments are pickled through the engine-core process, and tensors nested in them arrive
as lists). On CPU the engine core runs inside the calling process (see rollout/vllm_start.py).
One engine per process is the rule, so actors hold one engine for their whole life.
"""

from __future__ import annotations

import gc
import logging
import mmap
import os
from typing import Any

import numpy as np
import torch
from vllm import LLM, SamplingParams
from vllm.inputs import TokensPrompt
from vllm.model_executor.model_loader.reload import finalize_layerwise_reload, initialize_layerwise_reload
from vllm.model_executor.model_loader.reload.layerwise import LAYERWISE_INFO

from records.trajectory_batch import TrajectoryBatch
from rollout.config import RolloutConfig
from rollout.vllm_start import start_vllm
from rollout.weight_sync import Bucket, ManifestEntry

logger = logging.getLogger(__name__)

# Seconds a health probe may take before the engine counts as hung.
HEALTH_TIMEOUT_S = 60.0
# Byte alignment of each tensor in the weight staging buffer (a dtype view needs an aligned offset).
STAGING_ALIGN = 64

# One tensor in the staging buffer: HF name, dtype name, shape, byte offset, byte length.
StagingEntry = tuple[str, str, list[int], int, int]


class WeightSyncWorkerExtension:
    """Methods mixed into each vLLM worker (``worker_extension_cls``), called via `collective_rpc`.

    An update is a session: begin, load buckets, finish. It is the worker's own
    ``reload_weights(weights_iterator=...)`` (initialize layerwise reload → `load_weights` →
    finalize) split across calls, so one bucket at a time crosses the RPC and a fused layer (q/k/v,
    gate/up) may span two buckets: it is processed once all its parts have arrived.
    """

    def begin_weight_reload(self) -> None:
        initialize_layerwise_reload(self.model_runner.get_model())

    def load_weight_bucket(self, path: str, size: int, entries: list[StagingEntry]) -> list[str]:
        """Load the tensors `entries` lay out in the staging buffer at `path` (see `_WeightStaging`)."""
        key = (path, size)
        if getattr(self, "_staging_key", None) != key:
            # Mapped once per buffer: its pages stay mapped between buckets and updates.
            self._staging_key = key
            self._staging = torch.from_file(path, shared=True, size=size, dtype=torch.uint8)
        staging = self._staging
        model = self.model_runner.get_model()
        model.load_weights(
            weights=(
                (name, staging[offset : offset + nbytes].view(getattr(torch, dtype)).reshape(shape))
                for name, dtype, shape, offset, nbytes in entries
            )
        )
        # Layerwise reload holds the parts of a layer until all have arrived (a fused q/k/v may span
        # buckets); parts still held must not view the buffer the next bucket overwrites.
        base = staging.untyped_storage().data_ptr()
        for info in list(LAYERWISE_INFO.values()):
            for _, args in info.loaded_weights:
                for arg, value in args.arguments.items():
                    if isinstance(value, torch.Tensor) and value.device == staging.device:
                        if value.untyped_storage().data_ptr() == base:
                            args.arguments[arg] = value.clone()
        return [name for name, *_ in entries]

    def finish_weight_reload(self) -> None:
        runner = self.model_runner
        model = runner.get_model()
        finalize_layerwise_reload(model, self.vllm_config.model_config)
        head = getattr(model, "lm_head", None)
        if head is not None and getattr(self.vllm_config.model_config.hf_config, "tie_word_embeddings", False):
            # A tied head shares the embedding's weight but receives no tensor of its own, so kernels
            # derived from it at load time (the CPU backend's pre-packed GEMM) would keep the old one.
            head.quant_method.process_weights_after_loading(head)
        # The caches GPUModelRunner.reload_weights clears after a reload.
        runner.reset_lora_state()
        runner.reset_encoder_cache()
        runner.reset_mm_cache()

    def ping(self) -> bool:
        return True


class _WeightStaging:
    """Shared memory the actor writes a bucket into and every vLLM worker maps.

    Pickling a bucket through ``collective_rpc`` (actor → engine core → worker) took 1.6-2.4 s for a
    420 MB model on a 2-core box; this costs one memcpy. An anonymous memfd, opened by the workers as
    /proc/<pid>/fd/<n>, is freed with this process even when it is SIGKILLed. It is kept for the
    engine's life (one bucket of memory) so its pages stay warm; it only grows.
    """

    def __init__(self) -> None:
        self.fd = -1
        self.size = 0
        self._map: mmap.mmap | None = None
        self.array = np.empty(0, dtype=np.uint8)

    @property
    def path(self) -> str:
        return f"/proc/{os.getpid()}/fd/{self.fd}"

    def reserve(self, size: int) -> np.ndarray:
        """The buffer as a writable uint8 array of at least `size` bytes."""
        if size > self.size:
            self.close()
            self.fd = os.memfd_create("privacyalign-weights")
            os.ftruncate(self.fd, size)
            self._map = mmap.mmap(self.fd, size)
            self.array = np.frombuffer(self._map, dtype=np.uint8)
            self.size = size
        return self.array

    def close(self) -> None:
        if self._map is not None:
            # The map is unmapped once the last view of it is gone (closing it with views alive raises).
            self.array = np.empty(0, dtype=np.uint8)
            os.close(self.fd)
            self._map, self.fd, self.size = None, -1, 0


class RolloutEngine:
    """One `vllm.LLM` built from a :class:`RolloutConfig`.

    Args:
        cfg: the rollout config (model, sampling, engine sizing).
    """

    def __init__(self, cfg: RolloutConfig):
        if not cfg.model:
            raise ValueError("rollout.model is empty: set it to an HF model directory or hub id")
        self.cfg = cfg
        self.skipped_prompts = 0
        self.truncated_prompts = 0
        self._staging = _WeightStaging()
        kwargs: dict[str, Any] = {}
        if cfg.weight_sync == "collective":
            kwargs["weight_transfer_config"] = {"backend": "nccl"}
        self.llm: LLM | None = start_vllm(
            cfg,
            on_gpu=cfg.on_gpu,
            tensor_parallel_size=cfg.tensor_parallel_size,
            logprobs_mode=cfg.logprobs_mode,
            worker_extension_cls=f"{__name__}.WeightSyncWorkerExtension",
            **kwargs,
        )
        logger.info("vLLM engine up: %s, tp=%d, dtype=%s", cfg.model, cfg.tensor_parallel_size, cfg.dtype)

    def _sampling(self, n: int, greedy: bool, seed: int | None) -> SamplingParams:
        return SamplingParams(
            n=1 if greedy else n,
            temperature=0.0 if greedy else self.cfg.temperature,
            top_p=1.0 if greedy else self.cfg.top_p,
            max_tokens=self.cfg.max_tokens,
            stop=list(self.cfg.stop) or None,
            ignore_eos=self.cfg.enable_ignore_eos,
            seed=seed,
            # 0 = just the sampled token's logprob (vLLM always includes the sampled token).
            logprobs=0,
        )

    @property
    def tokenizer(self) -> Any:
        """The model's tokenizer (chat template included), as vLLM loaded it."""
        return self._engine().get_tokenizer()

    def _engine(self) -> LLM:
        if self.llm is None:
            raise RuntimeError("RolloutEngine was shut down")
        return self.llm

    # ---- generation ---------------------------------------------------------------------------
    def generate(
        self,
        prompt_token_ids: list[list[int]],
        scenario_ids: list[str],
        group_ids: list[int],
        policy_version: int,
        *,
        seed: int | None = None,
        samples_per_prompt: int | None = None,
        greedy: bool = False,
    ) -> TrajectoryBatch:
        """G samples for each prompt, with the sampled tokens' logprobs.

        Prompts leaving no room for `max_tokens` are skipped or cut from the left (keeping the
        generation prompt at the end), per `cfg.prompt_overflow`; both are counted, never fatal.

        Args:
            prompt_token_ids: chat-templated prompts.
            scenario_ids: ScenarioRow.id per prompt.
            group_ids: group id per prompt; its G samples share it.
            policy_version: learner step of the loaded weights, stamped on the batch.
            seed: per-call sampling seed; prompt with group id g uses ``seed + g * G`` (vLLM adds the
                sample index), so a sample depends on its group, not on which engine drew it.
                None = the engine's own seeded stream.
            samples_per_prompt: G for this call (default `cfg.samples_per_prompt`).
            greedy: one argmax sample per prompt instead of G sampled ones (evaluation, checks).
        """
        if not len(prompt_token_ids) == len(scenario_ids) == len(group_ids):
            raise ValueError(
                f"generate: {len(prompt_token_ids)} prompts, {len(scenario_ids)} scenario ids, "
                f"{len(group_ids)} group ids; need one of each per prompt"
            )
        room = self.cfg.max_model_len - self.cfg.max_tokens
        kept: list[int] = []
        prompts: list[TokensPrompt] = []
        for i, ids in enumerate(prompt_token_ids):
            if len(ids) > room:
                if self.cfg.prompt_overflow == "skip":
                    self.skipped_prompts += 1
                    continue
                self.truncated_prompts += 1
                ids = ids[len(ids) - room :]
            kept.append(i)
            prompts.append(TokensPrompt(prompt_token_ids=list(ids)))
        if len(kept) < len(prompt_token_ids):
            logger.warning(
                "%d of %d prompts exceed %d tokens (max_model_len - max_tokens): %s",
                len(prompt_token_ids) - len(kept),
                len(prompt_token_ids),
                room,
                "skipped" if self.cfg.prompt_overflow == "skip" else "truncated",
            )
        n = samples_per_prompt or self.cfg.samples_per_prompt
        params = [self._sampling(n, greedy, None if seed is None else seed + group_ids[i] * n) for i in kept]
        outputs = self._engine().generate(prompts, params, use_tqdm=False) if prompts else []
        # (prompt index, prompt, one of its samples), in prompt order: one TrajectoryBatch entry each
        drawn = [
            (i, prompt, sample) for i, prompt, out in zip(kept, prompts, outputs, strict=True) for sample in out.outputs
        ]
        return TrajectoryBatch(
            scenario_ids=[scenario_ids[i] for i, _, _ in drawn],
            group_ids=[group_ids[i] for i, _, _ in drawn],
            prompt_ids=[list(prompt["prompt_token_ids"]) for _, prompt, _ in drawn],
            completion_ids=[list(sample.token_ids) for _, _, sample in drawn],
            completion_logprobs=[
                [float(pos[tok].logprob) for pos, tok in zip(sample.logprobs, sample.token_ids, strict=True)]
                for _, _, sample in drawn
            ],
            completion_texts=[sample.text for _, _, sample in drawn],
            finish_reasons=[str(sample.finish_reason) for _, _, sample in drawn],
            policy_version=policy_version,
        )

    # ---- weights (rollout.weight_sync.WeightLoadingEngine) -----------------------------------------
    def begin_weight_update(self) -> None:
        self._engine().collective_rpc("begin_weight_reload")

    def load_weight_bucket(self, bucket: Bucket) -> list[str]:
        """Load one bucket (copied into the staging buffer the workers map); returns its parameter names."""
        entries: list[StagingEntry] = []
        end = 0
        for name, dtype, shape, array in zip(bucket.names, bucket.dtypes, bucket.shapes, bucket.arrays, strict=True):
            entries.append((name, dtype, list(shape), end, array.nbytes))
            end += -(-array.nbytes // STAGING_ALIGN) * STAGING_ALIGN
        staging = self._staging.reserve(max(end, STAGING_ALIGN))
        for (_, _, _, offset, nbytes), array in zip(entries, bucket.arrays, strict=True):
            staging[offset : offset + nbytes] = array
        args = (self._staging.path, self._staging.size, entries)
        return self._engine().collective_rpc("load_weight_bucket", args=args)[0]

    def finish_weight_update(self) -> None:
        """Complete the update and drop prefix-cache blocks computed with the old weights."""
        self._engine().collective_rpc("finish_weight_reload")
        self._engine().reset_prefix_cache()

    def init_weight_broadcast(self, master_addr: str, master_port: int, rank_offset: int, world_size: int) -> None:
        """Join the learner's NCCL weight group (vLLM's NCCL weight-transfer engine, unpacked)."""
        info = {
            "master_address": master_addr,
            "master_port": master_port,
            "rank_offset": rank_offset,
            "world_size": world_size,
        }
        self._engine().collective_rpc("init_weight_transfer_engine", args=(info,))

    def receive_weight_broadcast(self, manifest: list[ManifestEntry]) -> None:
        """Receive one broadcast per manifest tensor, in order, from the learner's rank 0."""
        engine = self._engine()
        info = {
            "names": [name for name, _, _ in manifest],
            "dtype_names": [dtype for _, _, dtype in manifest],
            "shapes": [list(shape) for _, shape, _ in manifest],
        }
        engine.collective_rpc("start_weight_update")
        engine.collective_rpc("update_weights", args=(info,))
        engine.collective_rpc("finish_weight_update")
        engine.reset_prefix_cache()

    # ---- lifecycle ---------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """`alive` is False when the engine was shut down, its core process died, or it hangs."""
        report: dict[str, Any] = {
            "alive": False,
            "skipped_prompts": self.skipped_prompts,
            "truncated_prompts": self.truncated_prompts,
        }
        if self.llm is None:
            report["error"] = "shut down"
            return report
        try:
            report["alive"] = all(self.llm.collective_rpc("ping", timeout=HEALTH_TIMEOUT_S))
        except Exception as exc:  # process boundary: any failure means a dead engine
            logger.exception("vLLM engine health probe failed")
            report["error"] = f"{type(exc).__name__}: {exc}"
        return report

    def shutdown(self) -> None:
        """Stop the engine-core process and free the engine; safe to call twice."""
        if self.llm is None:
            return
        self.llm.llm_engine.engine_core.shutdown()
        self.llm = None
        self._staging.close()
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        logger.info("vLLM engine shut down")
