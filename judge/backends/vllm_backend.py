"""The `vllm` judge backend: a vLLM engine inside the judge replica, generating whole batches at once.

Each Serve replica owns one engine; `@serve.batch` hands it up to `max_batch_size` requests, which
vLLM schedules together (continuous batching), so replicas × batch size is the pool's parallelism.
The model's own chat template turns the judge messages into a prompt. The engine starts as a rollout
engine does (rollout/vllm_start.py): on CPU in float32 (bf16 dies with SIGILL on the CPU build), its KV
cache sized from VLLM_CPU_KVCACHE_SPACE, computing in the replica's own process with its CPUs as threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from judge.backends.base import JudgeRequest
from judge.serve_config import VllmBackendConfig
from rollout.vllm_start import start_vllm

if TYPE_CHECKING:
    from vllm import LLM

logger = logging.getLogger(__name__)


class PromptTooLongError(RuntimeError):
    """A judge prompt does not fit the engine's context; that request alone fails (`judge_error`)."""


class VllmBackend:
    """Judge with a local vLLM engine (greedy by default, seeded, chat template applied)."""

    def __init__(self, cfg: VllmBackendConfig):
        if not cfg.model:
            raise ValueError("vllm backend: set judge_pool.vllm.model to the judge model's HF directory or hub id")
        import torch

        self.cfg = cfg
        self.name = "vllm"
        self.model = cfg.model
        self._llm: LLM | None = start_vllm(cfg, on_gpu=torch.cuda.is_available())
        self._tokenizer = self._llm.get_tokenizer()
        logger.info("vllm judge engine up: model=%s dtype=%s max_model_len=%d", cfg.model, cfg.dtype, cfg.max_model_len)

    def complete(self, requests: Sequence[JudgeRequest]) -> list[str | PromptTooLongError]:
        """Raw completion per request; a prompt longer than the context yields its own error entry.

        Generation is capped at what is left of `max_model_len` after each prompt, so a long prompt
        shortens its own answer instead of failing the batch.
        """
        from vllm import SamplingParams

        results: list[str | PromptTooLongError] = []
        runnable: list[tuple[int, list[dict[str, str]], SamplingParams]] = []
        for i, request in enumerate(requests):
            messages = [dict(m) for m in request.messages]
            prompt = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            prompt_len = len(self._tokenizer.encode(prompt, add_special_tokens=False))
            room = self.cfg.max_model_len - prompt_len
            if room < 1:
                results.append(
                    PromptTooLongError(
                        f"judge prompt has {prompt_len} tokens; max_model_len is {self.cfg.max_model_len}"
                    )
                )
                continue
            params = SamplingParams(
                max_tokens=min(self.cfg.max_tokens, room), temperature=self.cfg.temperature, seed=request.seed
            )
            results.append("")
            runnable.append((i, messages, params))
        if runnable:
            assert self._llm is not None, "VllmBackend.complete after close()"
            outputs = self._llm.chat(
                [messages for _, messages, _ in runnable], [params for _, _, params in runnable], use_tqdm=False
            )
            for (i, _, _), output in zip(runnable, outputs, strict=True):
                results[i] = output.outputs[0].text
        return results

    def check_health(self) -> None:
        """Raise when the engine was closed or its engine-core process died (no generation: cheap)."""
        if self._llm is None:
            raise RuntimeError("vllm judge engine is closed")
        # Only the multiprocess engine client has `resources`; an in-process core dies with the replica.
        resources = getattr(self._llm.llm_engine.engine_core, "resources", None)
        if resources is not None and resources.engine_dead:
            raise RuntimeError("vllm judge engine-core process died")

    def close(self) -> None:
        """Stop the engine's core process now rather than at garbage collection; safe to call twice."""
        if self._llm is not None:
            self._llm.llm_engine.engine_core.shutdown()
            self._llm = None
