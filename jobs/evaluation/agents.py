"""The agents under test: an HF checkpoint on vLLM rollout actors, or an OpenAI-compatible endpoint.

Both turn chunks of :class:`EvalItem` into answer texts and yield each chunk as soon as it is done,
so the job can judge and append finished chunks while others are still generating (and a killed
run keeps everything already yielded). This module is the Ray-facing edge of jobs/evaluation:
Ray and vLLM are imported only inside the HF agent.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from jobs.evaluation.config import AgentSpec
from jobs.evaluation.records import EvalItem

logger = logging.getLogger(__name__)

Chunk = list[EvalItem]
# item_id → the agent's answers to it (agent_samples of them; "" for a prompt the engine skipped).
Answers = dict[str, list[str]]


class HFAgent:
    """A checkpoint served by a RolloutPool (one vLLM engine per actor); chunks run on all engines at once."""

    def __init__(self, spec: AgentSpec, rollout_cfg: Any, *, samples: int, temperature: float, max_tokens: int):
        from transformers import AutoTokenizer

        from actors.rollout_pool import RolloutPool

        self.samples = samples
        self.greedy = temperature == 0.0 and samples == 1
        cfg = dataclasses.replace(
            rollout_cfg,
            model=spec.target,
            samples_per_prompt=samples,
            temperature=temperature if temperature > 0 else rollout_cfg.temperature,  # greedy path ignores it
            max_tokens=max_tokens,
        )
        self.tokenizer = AutoTokenizer.from_pretrained(spec.target)
        self.pool = RolloutPool(cfg)
        # Each chunk's deadline, counted from when the one before it was collected (engines take them in order).
        self.chunk_timeout_s: float = cfg.call_timeout_s

    def _tokens(self, item: EvalItem) -> list[int]:
        # Same two steps as RolloutActor._prompt_ids, so evaluation prompts match training prompts token for token.
        text = self.tokenizer.apply_chat_template(list(item.messages), tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        """Submit every chunk as one wave (engines work through them in order), collect them in order."""
        from actors.group import get_all
        from records.trajectory_batch import TrajectoryBatch

        waves = [
            (
                chunk,
                self.pool.async_generate(
                    [item.item_id for item in chunk],
                    prompt_token_ids=[self._tokens(item) for item in chunk],
                    samples_per_prompt=self.samples,
                    greedy=self.greedy,
                ),
            )
            for chunk in chunks
        ]
        for number, (chunk, refs) in enumerate(waves):
            labels = [f"rollout engine {rank} (evaluation chunk {number})" for rank in range(len(refs))]
            batch = TrajectoryBatch.concat(get_all(refs, labels, self.chunk_timeout_s))
            answers: Answers = {item.item_id: [] for item in chunk}
            for item_id, text in zip(batch.scenario_ids, batch.completion_texts, strict=True):
                answers[item_id].append(text)
            # A prompt the engine skipped (too long for the window) gets empty answers: unusable, not lost.
            for texts in answers.values():
                texts.extend([""] * (self.samples - len(texts)))
            yield chunk, answers

    def shutdown(self) -> None:
        self.pool.shutdown()


class OpenAIAgent:
    """Any OpenAI-compatible chat endpoint, through the judge's HTTP client (retries, concurrency limit)."""

    def __init__(self, spec: AgentSpec, *, samples: int, temperature: float, max_tokens: int, seed: int = 0):
        from judge.backends.openai_backend import OpenAIBackend
        from judge.serve_config import OpenAIBackendConfig

        self.samples = samples
        self.seed = seed
        cfg = OpenAIBackendConfig(
            base_url=spec.target, model=spec.model, temperature=temperature, max_tokens=max_tokens
        )
        self.client = OpenAIBackend(cfg)

    def generate(self, chunks: Sequence[Chunk]) -> Iterator[tuple[Chunk, Answers]]:
        from judge.backends.base import JudgeRequest

        for chunk in chunks:
            # The HTTP backend sends only `messages`; kind/row/candidates matter to the offline judge alone.
            requests = [
                JudgeRequest(f"{item.item_id}#{s}", "pointwise", item.messages, None, ("",), False, self.seed + s)  # type: ignore[arg-type]
                for item in chunk
                for s in range(self.samples)
            ]
            outputs = self.client.complete(requests)
            answers: Answers = {item.item_id: [] for item in chunk}
            for k, item in enumerate(chunk):
                for out in outputs[k * self.samples : (k + 1) * self.samples]:
                    # A failed call (retries exhausted) is an empty, hence unusable, answer.
                    answers[item.item_id].append(out if isinstance(out, str) else "")
            yield chunk, answers

    def shutdown(self) -> None:
        return None


def make_agent(spec: AgentSpec, rollout_cfg: Any, *, samples: int, temperature: float, max_tokens: int):
    """The agent for `spec` (hf → vLLM rollout actors, openai → HTTP endpoint)."""
    if spec.kind == "hf":
        return HFAgent(spec, rollout_cfg, samples=samples, temperature=temperature, max_tokens=max_tokens)
    return OpenAIAgent(spec, samples=samples, temperature=temperature, max_tokens=max_tokens)
