"""Checkpoints for the benchmark shapes: the tiny-model builder's sizes, or random init with the W1 tokenizer.

Throughput does not depend on what the weights say, so a shape without a `tiny_size` is a randomly
initialised HF model of that shape saved next to the W1 tokenizer (any vocabulary at least as large as
the tokenizer's works). A shape with `enable_special_tokens` off gets an untied LM head whose rows are
zero for the stop tokens, the reserved ones and ids past the tokenizer (which decode to nothing), so
greedy decoding never ends early and always produces text. Cached by shape under `.cache/bench/models/<name>`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from pathlib import Path

import torch

from jobs.benchmarks.workloads import W1_MODEL, ModelShape
from learner.tiny_model import ensure_tiny_model, tiny_model_config

logger = logging.getLogger(__name__)

BENCH_CACHE = Path(".cache/bench")


def ensure_bench_model(shape: ModelShape, cache_dir: Path = BENCH_CACHE / "models") -> Path:
    """HF-format directory of `shape` (built on first use; the tiny-model builder's cache for its sizes)."""
    if shape.tiny_size:
        return ensure_tiny_model(tiny_model_config(shape.tiny_size))
    target = cache_dir / shape.name
    if (target / "config.json").exists():
        return target
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

    tokenizer_dir = ensure_bench_model(W1_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if len(tokenizer) > shape.vocab_size:
        raise ValueError(f"{shape.name}: vocab_size {shape.vocab_size} < tokenizer size {len(tokenizer)}")
    config_cls, model_cls = (
        (Qwen2Config, Qwen2ForCausalLM) if shape.arch == "qwen2" else (Qwen3Config, Qwen3ForCausalLM)
    )
    config = config_cls(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_kv_heads,
        head_dim=shape.head_dim,
        max_position_embeddings=shape.max_position_embeddings,
        tie_word_embeddings=shape.enable_special_tokens,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(0)
    staging = cache_dir / f".{shape.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model = model_cls(config).to(torch.float32)
    if not shape.enable_special_tokens:
        eos = json.loads((tokenizer_dir / "generation_config.json").read_text()).get("eos_token_id")
        special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
        # Ids past the tokenizer (a vocabulary padded to a published shape) have no text either.
        special |= set(range(len(tokenizer), shape.vocab_size))
        silenced = (special | {tokenizer.eos_token_id, *(eos if isinstance(eos, list) else [eos])}) - {None}
        with torch.no_grad():
            # Logit 0 for every hidden state, while the largest of the other random logits is several std above 0.
            model.lm_head.weight[sorted(silenced)] = 0.0
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.model_max_length = shape.max_position_embeddings
    tokenizer.save_pretrained(staging)
    shutil.copy(tokenizer_dir / "generation_config.json", staging / "generation_config.json")
    try:
        os.rename(staging, target)
    except OSError:
        # A concurrent builder won: keep theirs.
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("built random-init %s at %s", shape.name, target)
    return target


def checkpoint_parameters(model_dir: Path) -> int:
    """Parameters actually stored in the checkpoint (the tokenizer may have shrunk the vocabulary)."""
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as fh:
            for name in fh.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                total += math.prod(fh.get_slice(name).get_shape())
    return total
