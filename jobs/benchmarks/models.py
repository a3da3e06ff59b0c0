"""Checkpoints for the benchmark shapes: the tiny-model builder's sizes, or random init with the W1 tokenizer.

Throughput does not depend on what the weights say, so a shape without a `tiny_size` is a randomly
initialised HF model of that shape saved next to the W1 tokenizer (any vocabulary at least as large as
the tokenizer's works). Cached by shape under `.cache/bench/models/<name>`.
"""

from __future__ import annotations

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
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    torch.manual_seed(0)
    staging = cache_dir / f".{shape.name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    model_cls(config).to(torch.float32).save_pretrained(staging, safe_serialization=True)
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
