"""The tiny offline checkpoint: loads in transformers and vLLM, answers in the tool-call format, is cached.

One vLLM engine for the whole module (CPU is scarce), shut down at the end.
"""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest

from learner.tiny_model import (
    BUILD_VERSION,
    HEAD_DIM,
    IM_END,
    SHIPPED_DIR,
    TinyModelConfig,
    config_hash,
    ensure_tiny_model,
    shipped_checkpoint,
    tiny_model_config,
)
from rollout.answers import parse_answer
from rollout.prompts import render_messages
from scenarios.config import bundled_scenarios_path
from scenarios.loading import load_rows

pytestmark = pytest.mark.integration
# Sampled answers for the validity rate (temperature 1, cycling over the dev prompts).
NUM_SAMPLES = 32


@pytest.fixture(scope="module")
def dev_rows():
    return load_rows(bundled_scenarios_path(), split="dev").rows


@pytest.fixture(scope="module")
def llm(tiny_model_dir: Path):
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = "1"
    from vllm import LLM

    engine = LLM(model=str(tiny_model_dir), dtype="float32", max_model_len=1024, seed=0, enforce_eager=True)
    yield engine
    engine.llm_engine.engine_core.shutdown()
    del engine
    gc.collect()


def test_checkpoint_loads_in_transformers(tiny_model_dir: Path, dev_rows) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert model.config.model_type == "qwen2"
    assert model.dtype == torch.float32
    assert model.config.hidden_size // model.config.num_attention_heads == HEAD_DIM
    # The bundled corpus saturates BPE below 2,048: reserved tokens make the vocabulary exact.
    assert len(tokenizer) == model.config.vocab_size == tiny_model_config().vocab_size
    assert tokenizer.eos_token == IM_END and model.generation_config.eos_token_id == tokenizer.eos_token_id
    prompt = tokenizer.apply_chat_template(
        render_messages(dev_rows[0], "naive"), tokenize=False, add_generation_prompt=True
    )
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    assert ids.shape[1] < model.config.max_position_embeddings
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()


def test_vllm_samples_are_mostly_valid_tool_calls(llm, tiny_model_dir: Path, dev_rows) -> None:
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [dev_rows[i % len(dev_rows)] for i in range(NUM_SAMPLES)]
    prompts = [
        tokenizer.apply_chat_template(
            render_messages(row, tiny_model_config().prompt_style), tokenize=False, add_generation_prompt=True
        )
        for row in rows
    ]
    # No per-request seed: vLLM's CPU sampler rejects it ("CPU Generator does not use offset"); engine seed=0.
    params = SamplingParams(temperature=1.0, top_p=1.0, max_tokens=256)
    outputs = llm.generate(prompts, params)
    parsed = [
        parse_answer(out.outputs[0].text, row.expected_final_action) for out, row in zip(outputs, rows, strict=True)
    ]
    valid = sum(p.ok for p in parsed) / len(parsed)
    print(f"\ntiny model valid tool-call rate: {valid:.1%} of {len(parsed)} samples at temperature 1")
    assert valid >= 0.5, [p.status for p in parsed]


def test_cache_hash_is_stable_and_reused(tiny_model_dir: Path) -> None:
    cfg = tiny_model_config()
    assert config_hash(cfg) == config_hash(tiny_model_config()) == tiny_model_dir.name
    assert config_hash(tiny_model_config(seed=1)) != config_hash(cfg)
    stamp = (tiny_model_dir / "model.safetensors").stat().st_mtime_ns
    assert ensure_tiny_model(cfg, cache_dir=tiny_model_dir.parent) == tiny_model_dir
    assert (tiny_model_dir / "model.safetensors").stat().st_mtime_ns == stamp  # not rebuilt
    saved = json.loads((tiny_model_dir / "tiny_model_config.json").read_text())
    assert saved["config"]["seed"] == cfg.seed


def test_build_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    # A few warm-start steps on a small shape keep this cheap; same seed → identical weights.
    from safetensors.torch import load_file

    cfg = tiny_model_config(num_layers=1, vocab_size=512, warm_start_steps=3, warm_start_generated_rows=32)
    first = ensure_tiny_model(cfg, cache_dir=tmp_path / "a")
    second = ensure_tiny_model(cfg, cache_dir=tmp_path / "b")
    a, b = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert (first / "tokenizer.json").read_text() == (second / "tokenizer.json").read_text()
    assert not list((tmp_path / "a").glob(".*.staging"))  # staging directory renamed away


@pytest.mark.parametrize("size", ["tiny", "judge"])
def test_shipped_checkpoint_matches_the_config_and_rows_it_records(size: str) -> None:
    """The committed default agent and judge are what `build-model --ship` makes from today's config and rows."""
    shipped = shipped_checkpoint(tiny_model_config(size))
    assert shipped is not None, f"stale or missing: rebuild with `privacyalign build-model --size {size} --ship`"
    saved = json.loads((shipped / "tiny_model_config.json").read_text())
    assert saved["build_version"] == BUILD_VERSION
    assert config_hash(TinyModelConfig(**saved["config"])) == shipped.name  # config + bundled rows' bytes
    assert sum(f.stat().st_size for f in shipped.iterdir()) <= 20 * 2**20


def test_no_stale_checkpoints_ship() -> None:
    expected = {config_hash(tiny_model_config(size)) for size in ("tiny", "judge")}
    assert {p.name for p in SHIPPED_DIR.iterdir()} == expected


def test_role_and_prompt_style_are_checked_together() -> None:
    with pytest.raises(ValueError, match="unknown role 'critic'"):
        tiny_model_config(role="critic")
    with pytest.raises(ValueError, match="unknown judge prompt_style 'naive'"):
        tiny_model_config(role="judge", prompt_style="naive")
    with pytest.raises(ValueError, match="unknown agent prompt_style 'full'"):
        tiny_model_config(prompt_style="full")
    with pytest.raises(ValueError, match="agent_samples_per_row must be >= 0, and 0 unless role is judge"):
        tiny_model_config(agent_samples_per_row=1)


def test_a_judge_trained_on_agent_answers_is_rebuilt_for_a_new_agent(monkeypatch) -> None:
    import learner.tiny_model as tiny_model

    judge = tiny_model_config("judge")
    before = config_hash(judge)
    monkeypatch.setitem(tiny_model.TINY_MODEL_SIZES, "tiny", tiny_model_config(seed=7))
    assert config_hash(judge) != before


def test_shipped_checkpoint_is_copied_not_rebuilt(tmp_path: Path) -> None:
    cfg = tiny_model_config()
    copied = ensure_tiny_model(cfg, cache_dir=tmp_path)
    shipped = shipped_checkpoint(cfg)
    assert shipped is not None and copied.name == shipped.name
    assert (copied / "model.safetensors").read_bytes() == (shipped / "model.safetensors").read_bytes()
