"""Build the tiny offline Qwen2 checkpoint that the CPU default, the tests and the W1 benchmark run on.

No hub access on our machines, so the model is made here: a byte-level BPE tokenizer trained on the
bundled scenarios' prompts and reference answers, a ChatML chat template, a randomly initialised
Qwen2-architecture model with vLLM-compatible shapes (head_dim 64, float32), and a short supervised
warm start on *both* reference answers of every train-split row, so the model emits the JSON
tool-call format and leaks about as often as the references do (docs/architecture.md §3: RL needs both
behaviours in the starting policy). The result is cached by a hash of the config and the source rows.

Real presets name hub models and load them through the same HF ``from_pretrained`` path elsewhere;
this module only builds the tiny one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
import random
import re
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from tqdm import tqdm

from cluster.config_checks import FieldChecks
from judge.prompts import JUDGE_PROMPT_STYLES
from rollout.prompts import SYSTEM_PROMPTS, reference_answer, render_messages
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

# Bump when the build recipe changes in a way the config does not capture, so stale caches are not reused.
BUILD_VERSION = 6
# Checkpoints built by `privacyalign build-model --ship` and committed, one folder per config hash: a
# fresh machine copies the default agent from here instead of spending minutes of its CPU building it.
SHIPPED_DIR = Path(__file__).resolve().parent / "shipped"
# Held-out dev (prompt, answer) pairs the warm start measures its answer accuracy on.
DEV_PAIRS = 48
# vLLM's CPU attention kernels support head sizes that are multiples of 32 from 32 up; 64 is the safe one.
HEAD_DIM = 64
IM_START, IM_END, PAD = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
# TinyModelConfig.role values.
ROLES = ("agent", "judge")
# Ordered candidate pairs per row in the judge's transcripts, beside every candidate judged pointwise.
JUDGE_PAIRS_PER_ROW = 4
# The deciding words of a judge's verdict (weighted by fact_loss_weight in its warm start): the pointwise
# booleans, the pairwise yes/no per response and the score.
_DECISION = re.compile(r"\b(?:true|false|yes|no)\b|(?<=Score: )-?\d+")
# Prompts per generate call when sampling the agent's answers for a judge's transcripts.
AGENT_SAMPLE_BATCH = 32
# ChatML (Qwen's format); eos is <|im_end|>, so generation stops at the end of the assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass
class TinyModelConfig:
    """Shape, tokenizer and warm start of the tiny model; every field enters the cache hash."""

    # What the model is trained to do: `agent` (answer a scenario with its final tool call, imitating the
    # references) or `judge` (answer a judge prompt with its verdict line; learner/judge_transcripts.py).
    role: str = "agent"
    # Exact vocabulary size: byte-level BPE merges, then reserved special tokens if the corpus saturates.
    vocab_size: int = 2048
    # Residual width; must equal num_heads × 64 (vLLM CPU needs head_dim 64).
    hidden_size: int = 128
    # Transformer decoder layers. Two copy facts out of the prompt at this size; four at a high lr copied
    # nothing in 800 steps (measured).
    num_layers: int = 2
    # Attention heads (also key/value heads: no grouped-query attention at this size).
    num_heads: int = 2
    # SwiGLU MLP width.
    intermediate_size: int = 512
    # Context window (prompt + answer tokens); rendered bundled prompts must fit with room for the answer.
    max_position_embeddings: int = 1024
    # Seed for tokenizer-independent randomness: weight init, warm-start batch order.
    seed: int = 0
    # Supervised warm-start optimizer steps on (prompt → reference answer); 0 = random init only. At 2,500
    # the agent's sampled dev answers (T=1) missed a relevant fact in 84 % of usable answers; at 5,000, 42 %
    # (dates, places, times and amounts copied; measured with HF generate on the 48 dev rows, 2 samples each).
    warm_start_steps: int = 5000
    # Peak AdamW learning rate of the warm start (linear warm-up, cosine decay to 10 %).
    warm_start_lr: float = 1.5e-3
    # (prompt, answer) pairs per warm-start step.
    warm_start_batch_size: int = 16
    # Scenario rows (JSONL/Parquet) for the tokenizer and the warm start; empty = the bundled scenarios.
    source_rows: str = ""
    # Fresh train-split rows from the scenario generator for the warm start instead of the source rows'
    # train split (0 = use those). A few hundred rows are memorised in a few epochs; thousands of fresh
    # ones leave copying from the prompt as the only way to lower the loss. Needs source_rows empty.
    warm_start_generated_rows: int = 8000
    # Share of those rows whose private matter is made up (recombined words): with only real train facts
    # the agent memorised them and, on unseen dev/test facts, leaked a memorised one instead (measured).
    warm_start_synthetic_share: float = 0.5
    # Prompt style the warm-start prompts are rendered in: a key of rollout.prompts.SYSTEM_PROMPTS for an
    # agent, of judge.prompts.JUDGE_PROMPT_STYLES for a judge (the judge job must then use the same style).
    prompt_style: str = "compact"
    # Share one matrix between input embeddings and output head (as small Qwen2 checkpoints do). Off: tied,
    # the nine month names, which behave alike everywhere, collapsed to one direction (mean cosine 0.98)
    # and were copied out of the prompt at chance (15 %); untied and with fact_loss_weight 5 a probe copied
    # them 100 % right from step 750 of 1,000 (tied with the same weight: 18 %).
    tie_embeddings: bool = False
    # Loss weight of the answer tokens that spell a relevant fact or the private matter (the tokens to be
    # copied out of the prompt); the rest of an answer is a template the model learns anyway, and at
    # weight 1 it outweighed the copying signal about 60 to 1 per answer. A judge weights its verdict's
    # decisions (true/false, the score) instead.
    fact_loss_weight: float = 5.0
    # Judge only: answers sampled from the default tiny agent per warm-start row, labelled by the oracle and
    # judged beside the references' edits, so the judge learns what the agent it will grade writes.
    agent_samples_per_row: int = 0

    def __post_init__(self) -> None:
        FieldChecks(self, "model.tiny").done()  # finite floats; the checks below stop at the first error
        if self.hidden_size != self.num_heads * HEAD_DIM:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must equal num_heads ({self.num_heads}) × {HEAD_DIM}: "
                f"vLLM's CPU backend needs head_dim {HEAD_DIM}; set hidden_size={self.num_heads * HEAD_DIM}"
            )
        if self.vocab_size < 512:
            raise ValueError(f"vocab_size must be >= 512 (256 bytes + merges + specials), got {self.vocab_size}")
        for name in ("num_layers", "num_heads", "intermediate_size", "max_position_embeddings"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warm_start_steps < 0 or self.warm_start_batch_size < 1 or self.warm_start_lr <= 0:
            raise ValueError("warm_start_steps must be >= 0, warm_start_batch_size >= 1 and warm_start_lr > 0")
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; valid: {list(ROLES)}")
        styles = JUDGE_PROMPT_STYLES if self.role == "judge" else SYSTEM_PROMPTS
        if self.prompt_style not in styles:
            raise ValueError(f"unknown {self.role} prompt_style {self.prompt_style!r}; valid: {sorted(styles)}")
        if self.fact_loss_weight < 1:
            raise ValueError(
                f"fact_loss_weight must be >= 1 (facts count at least as much), got {self.fact_loss_weight}"
            )
        if self.agent_samples_per_row < 0 or (self.agent_samples_per_row and self.role != "judge"):
            raise ValueError("agent_samples_per_row must be >= 0, and 0 unless role is judge")
        if not 0 <= self.warm_start_synthetic_share <= 1:
            raise ValueError(f"warm_start_synthetic_share must be in [0, 1], got {self.warm_start_synthetic_share}")
        if self.warm_start_generated_rows < 0 or (self.warm_start_generated_rows and self.source_rows):
            raise ValueError("warm_start_generated_rows must be >= 0, and 0 when source_rows names other data")


# The name `judge_pool.vllm.model` takes for the `judge` size below, built (or copied shipped) on first use.
TINY_JUDGE = "tiny-judge"
# Named sizes: `tiny` is the CPU default agent; `judge` the CPU default judge (served by vLLM in the judge
# pool; `judge_pool.vllm.model=tiny-judge`); `w1` is the benchmark workload W1, bigger and random-init
# because throughput, not answer quality, is measured there.
TINY_MODEL_SIZES: dict[str, TinyModelConfig] = {
    "tiny": TinyModelConfig(),
    "judge": TinyModelConfig(
        role="judge",
        warm_start_steps=1500,
        warm_start_generated_rows=2000,  # x (8 edits + 1 agent answer + 4 pairs) = 26,000 transcripts
        agent_samples_per_row=1,
    ),
    "w1": TinyModelConfig(
        vocab_size=4096,
        hidden_size=256,
        num_layers=4,
        num_heads=4,
        intermediate_size=1024,
        warm_start_steps=0,
        tie_embeddings=True,  # the workload every benchmark row so far was measured on
    ),
}


def tiny_model_config(size: str = "tiny", **overrides: object) -> TinyModelConfig:
    """The named size's config with field overrides applied (unknown size → ValueError listing valid ones)."""
    if size not in TINY_MODEL_SIZES:
        raise ValueError(f"unknown tiny model size {size!r}; valid: {sorted(TINY_MODEL_SIZES)}")
    return replace(TINY_MODEL_SIZES[size], **overrides)


def _source_path(cfg: TinyModelConfig) -> Path:
    return Path(cfg.source_rows) if cfg.source_rows else bundled_scenarios_path()


def config_hash(cfg: TinyModelConfig) -> str:
    """16-hex hash of the config, the source rows' bytes and BUILD_VERSION: the cache directory name.

    Hashing the rows' content (not their path) rebuilds the model when the bundled scenarios change.
    An agent's hash leaves `role` and `agent_samples_per_row` out: neither existed when the shipped agent
    was built, and its hash must keep naming it.
    """
    digest = hashlib.sha256()
    fields = {**asdict(cfg), "source_rows": "", "build_version": BUILD_VERSION}
    if cfg.role == "agent":
        del fields["role"]
    if cfg.role == "agent" or not cfg.agent_samples_per_row:
        del fields["agent_samples_per_row"]
    else:  # the judge learns from the default agent's answers: a new agent means a new judge
        fields["agent"] = config_hash(tiny_model_config())
    digest.update(json.dumps(fields, sort_keys=True).encode())
    digest.update(hashlib.sha256(_source_path(cfg).read_bytes()).digest())
    return digest.hexdigest()[:16]


def _train_tokenizer(cfg: TinyModelConfig, texts: list[str]) -> PreTrainedTokenizerBase:
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    # transformers (and so vLLM) rebuild a qwen2 model's tokenizer from vocab + merges with Qwen2's own
    # normalizer and pre-tokenizer, ignoring tokenizer.json's: train with exactly those so ids agree.
    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=[PAD, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # A small corpus saturates BPE below vocab_size (every word merged whole; ~1.2k on the bundled rows).
    # Reserve the rest as never-seen special tokens, as Qwen does, so shapes follow the config, not the data.
    missing = cfg.vocab_size - tokenizer.get_vocab_size()
    tokenizer.add_special_tokens([AddedToken(f"<|reserved_{i}|>", special=True) for i in range(max(0, missing))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=IM_END,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=cfg.max_position_embeddings,
    )


@dataclass(frozen=True)
class WarmStartPair:
    """One supervised example: prompt ids, answer ids (ending in <|im_end|>) and a loss weight per answer id."""

    prompt: list[int]
    answer: list[int]
    weights: list[float]


def _fact_spans(row: ScenarioRow, text: str) -> list[tuple[int, int]]:
    """Character spans of `text` that spell a relevant fact or a surface form of the private matter."""
    spans = []
    for fact in (*row.relevant_facts, *(row.sensitive_surface_forms or row.sensitive_facts)):
        start = text.find(fact)
        while fact and start >= 0:
            spans.append((start, start + len(fact)))
            start = text.find(fact, start + 1)
    return spans


def _decision_spans(verdict: str) -> list[tuple[int, int]]:
    """The spans of a verdict line that decide it (`true`/`false`, the score); the rest is fixed format."""
    return [match.span() for match in _DECISION.finditer(verdict)]


def _supervised_examples(
    cfg: TinyModelConfig, rows: list[ScenarioRow], agent_answers: dict[str, list[str]] | None = None
) -> list[tuple[list[dict[str, str]], str, list[tuple[int, int]]]]:
    """(chat messages, answer text, character spans to weight by `fact_loss_weight`) per example.

    An agent imitates both references of every row, its fact spans weighted; a judge answers the
    transcripts of learner/judge_transcripts.py, the decisions of its verdict line weighted.
    """
    if cfg.role == "judge":
        from learner.judge_transcripts import judge_transcripts

        rng = random.Random(f"judge-transcripts-{cfg.seed}")
        transcripts = judge_transcripts(
            rows, rng, style=cfg.prompt_style, pairs_per_row=JUDGE_PAIRS_PER_ROW, agent_answers=agent_answers
        )
        return [(list(t.messages), t.verdict, _decision_spans(t.verdict)) for t in transcripts]
    examples = []
    for row in rows:
        messages = render_messages(row, cfg.prompt_style)
        for which in (0, 1):
            answer = reference_answer(row, which)
            examples.append((messages, answer, _fact_spans(row, answer)))
    return examples


def _warm_start_pairs(
    cfg: TinyModelConfig,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[ScenarioRow],
    agent_answers: dict[str, list[str]] | None = None,
) -> list[WarmStartPair]:
    """The role's supervised examples as token pairs, weighted spans applied; overlong pairs are dropped."""
    pairs, dropped = [], 0
    for messages, answer, spans in _supervised_examples(cfg, rows, agent_answers):
        prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        prompt_ids = tokenizer.encode(prompt, add_special_tokens=False)
        encoded = tokenizer(answer + IM_END, add_special_tokens=False, return_offsets_mapping=True)
        if len(prompt_ids) + len(encoded["input_ids"]) > cfg.max_position_embeddings:
            dropped += 1
            continue
        weights = [
            cfg.fact_loss_weight if any(s < end and start < e for s, e in spans) else 1.0
            for start, end in encoded["offset_mapping"]
        ]
        pairs.append(WarmStartPair(prompt_ids, encoded["input_ids"], weights))
    if dropped:
        logger.warning("warm start: dropped %d pairs longer than %d tokens", dropped, cfg.max_position_embeddings)
    return pairs


def _warm_start_rows(cfg: TinyModelConfig, source: Path) -> list[ScenarioRow]:
    """The rows the warm start imitates: fresh generated train-split rows, or the source's train split.

    Fresh rows draw only train-split facts, so dev and test stay unseen (docs/architecture.md §3).
    """
    if not cfg.warm_start_generated_rows:
        return load_rows(source, split="train").rows
    from scenarios.generator import generate_split_rows
    from scenarios.schema import ScenarioRow

    rng = random.Random(f"warm-start-{cfg.seed}")
    raw = generate_split_rows(
        "train", cfg.warm_start_generated_rows, rng, synthetic_share=cfg.warm_start_synthetic_share
    )
    return [ScenarioRow.from_dict(row, source="generated warm-start rows", line=i + 1) for i, row in enumerate(raw)]


def _agent_answers(cfg: TinyModelConfig, rows: list[ScenarioRow], cache_dir: Path) -> dict[str, list[str]]:
    """`cfg.agent_samples_per_row` answers per row from the default tiny agent, sampled as rollouts are.

    Temperature 1 and the rollouts' 128-token budget, in the agent's prompt style, so the judge's
    training answers look like the ones it grades during RL (malformed and cut ones included).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    agent_cfg = tiny_model_config()
    agent_dir = ensure_tiny_model(agent_cfg, cache_dir=cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(agent_dir, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(agent_dir).eval()
    owners = [row for row in rows for _ in range(cfg.agent_samples_per_row)]
    prompts = [
        tokenizer.apply_chat_template(
            render_messages(row, agent_cfg.prompt_style), tokenize=False, add_generation_prompt=True
        )
        for row in owners
    ]
    answers: dict[str, list[str]] = {}
    for start in tqdm(range(0, len(prompts), AGENT_SAMPLE_BATCH), desc="agent samples", disable=None):
        batch = tokenizer(
            prompts[start : start + AGENT_SAMPLE_BATCH], return_tensors="pt", padding=True, add_special_tokens=False
        )
        with torch.no_grad():
            out = model.generate(**batch, do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=128)
        texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for row, text in zip(owners[start : start + AGENT_SAMPLE_BATCH], texts, strict=True):
            answers.setdefault(row.id, []).append(text)
    return answers


def _padded_batch(
    batch: list[WarmStartPair], pad_id: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input ids, labels on the answer tokens only, attention mask, label weights), right-padded.

    Labels and weights are aligned with the *next* token: position t holds the target of logits[t].
    """
    width = max(len(pair.prompt) + len(pair.answer) for pair in batch)
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    weights = torch.zeros((len(batch), width))
    for i, pair in enumerate(batch):
        seq = pair.prompt + pair.answer
        input_ids[i, : len(seq)] = torch.tensor(seq)
        attention[i, : len(seq)] = 1
        start = len(pair.prompt) - 1
        labels[i, start : len(seq) - 1] = torch.tensor(pair.answer)
        weights[i, start : len(seq) - 1] = torch.tensor(pair.weights)
    return input_ids, labels, attention, weights


def _answer_logits(
    model: PreTrainedModel, input_ids: torch.Tensor, attention: torch.Tensor, answer_mask: torch.Tensor
) -> torch.Tensor:
    """Logits at the answer positions only, (answer tokens, vocab).

    The output head runs on those rows alone: a judge prompt is ~600 tokens for a verdict of ~10, and
    the head over every prompt position was a fifth of a step's compute for nothing.
    """
    hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
    return model.lm_head(hidden[answer_mask])


@torch.no_grad()
def answer_token_accuracy(model: PreTrainedModel, pairs: list[WarmStartPair], pad_id: int) -> float:
    """Teacher-forced next-token accuracy on the answers of `pairs` (how much of an answer the model gets).

    On held-out rows this is mostly copying: every answer token but the leak choice is in the prompt.
    """
    was_training = model.training
    model.eval()
    correct = total = 0
    for start in range(0, len(pairs), 16):
        input_ids, labels, attention, _ = _padded_batch(pairs[start : start + 16], pad_id)
        mask = labels != -100
        predicted = _answer_logits(model, input_ids, attention, mask).argmax(-1)
        correct += int((predicted == labels[mask]).sum())
        total += int(mask.sum())
    model.train(was_training)
    return correct / max(1, total)


def _warm_start(
    cfg: TinyModelConfig,
    model: PreTrainedModel,
    pairs: list[WarmStartPair],
    dev_pairs: list[WarmStartPair],
    pad_id: int,
) -> dict[str, float]:
    """Supervised fine-tuning on the answer tokens only, logging held-out answer accuracy on the way.

    The loss is the weighted sum of answer-token cross-entropies over the number of answer tokens, so
    fact tokens count `fact_loss_weight` times and the scale matches the unweighted mean at weight 1.

    Returns the mean loss of the last 10 steps and the final dev answer-token accuracy.
    """
    order_rng = random.Random(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.warm_start_lr, weight_decay=0.01)
    warmup = max(1, cfg.warm_start_steps // 10)

    def lr_scale(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, cfg.warm_start_steps - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_scale)
    model.train()
    queue: list[int] = []
    losses: list[float] = []
    progress = tqdm(range(cfg.warm_start_steps), desc="warm start", disable=None)
    for step in progress:
        if len(queue) < cfg.warm_start_batch_size:
            epoch = list(range(len(pairs)))
            order_rng.shuffle(epoch)
            queue.extend(epoch)
        batch = [pairs[i] for i in queue[: cfg.warm_start_batch_size]]
        del queue[: cfg.warm_start_batch_size]
        input_ids, labels, attention, weights = _padded_batch(batch, pad_id)
        mask = labels != -100
        logits = _answer_logits(model, input_ids, attention, mask)
        token_loss = torch.nn.functional.cross_entropy(logits, labels[mask], reduction="none")
        loss = (token_loss * weights[mask]).sum() / mask.sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
        progress.set_postfix(loss=f"{losses[-1]:.3f}")
        if (step + 1) % 250 == 0 and dev_pairs:
            accuracy = answer_token_accuracy(model, dev_pairs, pad_id)
            logger.info("warm start step %d/%d loss %.3f dev answer accuracy %.4f", step + 1, cfg.warm_start_steps,
                        losses[-1], accuracy)  # fmt: skip
    model.eval()
    return {
        "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])),
        "dev_answer_accuracy": answer_token_accuracy(model, dev_pairs, pad_id) if dev_pairs else float("nan"),
    }


def _build(cfg: TinyModelConfig, out_dir: Path) -> dict[str, float | None]:
    """Tokenizer, model, warm start, save into `out_dir`; returns build statistics."""
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    started = time.monotonic()
    source = _source_path(cfg)
    all_rows = load_rows(source).rows
    texts = []
    for row in all_rows:
        for style in SYSTEM_PROMPTS:
            texts.extend(message["content"] for message in render_messages(row, style))
        texts.extend(reference_answer(row, which) for which in (0, 1))
    if cfg.role == "judge":  # the judge's prompts and verdict lines, so its own vocabulary is merged too
        for messages, verdict, _ in _supervised_examples(cfg, all_rows):
            texts.extend([*(message["content"] for message in messages), verdict])
    tokenizer = _train_tokenizer(cfg, texts)
    pad_id, im_end_id = tokenizer.convert_tokens_to_ids(PAD), tokenizer.convert_tokens_to_ids(IM_END)

    torch.manual_seed(cfg.seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_embeddings,
        bos_token_id=tokenizer.convert_tokens_to_ids(IM_START),
        eos_token_id=im_end_id,
        pad_token_id=pad_id,
        dtype="float32",
    )
    model = Qwen2ForCausalLM(config).to(torch.float32)
    warm: dict[str, float | None] = {"final_loss": None, "dev_answer_accuracy": None}
    if cfg.warm_start_steps:
        rows = _warm_start_rows(cfg, source)
        answers = _agent_answers(cfg, rows, out_dir.parent) if cfg.agent_samples_per_row else None
        torch.manual_seed(cfg.seed)  # the batch order below does not depend on how much sampling drew
        pairs = _warm_start_pairs(cfg, tokenizer, rows, answers)
        # A fixed held-out sample of the dev split: its facts are never in the warm start's rows.
        dev_pairs = _warm_start_pairs(cfg, tokenizer, load_rows(source, split="dev").rows)[:DEV_PAIRS]
        warm = _warm_start(cfg, model, pairs, dev_pairs, pad_id)

    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    GenerationConfig(eos_token_id=im_end_id, pad_token_id=pad_id, do_sample=True).save_pretrained(out_dir)
    stats = {
        "parameters": sum(p.numel() for p in model.parameters()),
        **warm,
        "build_seconds": round(time.monotonic() - started, 1),
    }
    (out_dir / "tiny_model_config.json").write_text(
        json.dumps({"config": asdict(cfg), "build_version": BUILD_VERSION, "stats": stats}, indent=2)
    )
    return stats


def resolve_judge_model(model: str, cache_dir: str | Path = ".cache/models") -> str:
    """`judge_pool.vllm.model` as a path: the built tiny judge for :data:`TINY_JUDGE`, else `model` unchanged.

    Jobs resolve it on the driver before the pool starts, so replicas never build a model.
    """
    return str(ensure_tiny_model(tiny_model_config("judge"), cache_dir=cache_dir)) if model == TINY_JUDGE else model


def shipped_checkpoint(cfg: TinyModelConfig) -> Path | None:
    """The committed checkpoint built from exactly `cfg` and the current rows (same config hash), if any."""
    candidate = SHIPPED_DIR / config_hash(cfg)
    return candidate if (candidate / "config.json").exists() else None


def ensure_tiny_model(
    cfg: TinyModelConfig | None = None, cache_dir: str | Path = ".cache/models", *, use_shipped: bool = True
) -> Path:
    """The HF-format checkpoint directory for `cfg`, built on first use and cached by :func:`config_hash`.

    A per-hash file lock makes concurrent callers (parallel test sessions, engineers sharing a
    checkout) wait for one build instead of each spending minutes on it; the build writes into a
    staging directory renamed into place, so a crash never leaves a half-written checkpoint.

    Args:
        cfg: Model config; None = the `tiny` size.
        cache_dir: Directory holding one sub-directory per config hash.
        use_shipped: Copy a committed checkpoint of the same hash (:func:`shipped_checkpoint`) instead of
            building; False builds from scratch (how `build-model --ship` refreshes the committed one).

    Returns:
        ``cache_dir/<config-hash>`` with model safetensors, tokenizer and generation config.
    """
    cfg = cfg or tiny_model_config()
    target = Path(cache_dir) / config_hash(cfg)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():
            logger.info("tiny model cache hit: %s", target)
            return target
        staging = target.parent / f".{target.name}.staging"
        shutil.rmtree(staging, ignore_errors=True)
        shipped = shipped_checkpoint(cfg) if use_shipped else None
        if shipped is not None:
            shutil.copytree(shipped, staging)
            os.rename(staging, target)
            logger.info("tiny model: copied the shipped checkpoint %s to %s", shipped.name, target)
            return target
        staging.mkdir()
        # Seeded init and batch order without disturbing the caller's RNG or determinism settings.
        was_deterministic = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            with torch.random.fork_rng(devices=[]):
                stats = _build(cfg, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        finally:
            torch.use_deterministic_algorithms(was_deterministic)
        os.rename(staging, target)
    logger.info("built tiny model %s: %s", target, stats)
    return target
