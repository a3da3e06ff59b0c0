"""Random-init bench checkpoints: a judge shape without special tokens really never emits one."""

from __future__ import annotations

import torch

from jobs.benchmarks.models import checkpoint_parameters, ensure_bench_model
from jobs.benchmarks.workloads import ModelShape


def test_shape_without_special_tokens_decodes_text_to_the_end(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shape = ModelShape("judge-t", "qwen2", 64, 1, 1, 1, 64, 128, 4096, max_position_embeddings=4096,
                       enable_special_tokens=False)  # fmt: skip
    model_dir = ensure_bench_model(shape, cache_dir=tmp_path)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.max_position_embeddings == 4096 and not model.config.tie_word_embeddings
    # The untied LM head is counted once more than with tied embeddings.
    assert checkpoint_parameters(model_dir) == shape.num_parameters
    special = {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    # Reserved ids are a large share (about 40 % on the bundled v2 rows), so unzeroed rows would win many picks.
    assert tokenizer.eos_token_id in special and len(special) > len(tokenizer) // 4
    # Greedy picks over random contexts: without the zeroed rows most picks would be special tokens.
    torch.manual_seed(0)
    with torch.no_grad():
        picks = model(torch.randint(len(tokenizer), (4, 256))).logits.argmax(-1)
    assert not set(picks.flatten().tolist()) & special
