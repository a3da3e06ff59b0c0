"""Collective (NCCL) weight sync into a live engine; needs two CUDA GPUs (trainer and engine each own one).

The test plays the learner's rank 0: it joins the weight group as rank 0 and broadcasts each manifest
tensor in order, while the engine (rank 1) receives through vLLM's NCCL weight-transfer engine.
"""

from __future__ import annotations

import os
import threading

import pytest
import torch

from rollout.config import RolloutConfig
from rollout.weight_sync import WeightUpdate, make_receiver, manifest_entry

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.integration,
    pytest.mark.skipif(
        not torch.cuda.is_available() or torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs (NCCL, one rank each)"
    ),
]

MAX_TOKENS = 8


def _in_thread(fn, *args):
    errors: list[BaseException] = []

    def run():
        try:
            fn(*args)
        except BaseException as exc:  # surfaced by join below
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _join(thread, errors):
    thread.join(timeout=300)
    assert not thread.is_alive(), "engine side of the NCCL call hung"
    if errors:
        raise errors[0]


def test_nccl_broadcast_update_matches_transformers_greedy(tiny_model_dir):
    from transformers import AutoModelForCausalLM
    from vllm.distributed.weight_transfer.nccl_common import trainer_init
    from vllm.utils.network_utils import get_open_port

    from rollout.engine import RolloutEngine

    torch.cuda.set_device(0)
    # The engine-core process inherits this: the engine's worker owns GPU 1, the test owns GPU 0.
    os.environ["CUDA_VISIBLE_DEVICES"] = "1"
    cfg = RolloutConfig(
        model=str(tiny_model_dir),
        num_gpus_per_engine=1,
        max_model_len=256,
        max_tokens=MAX_TOKENS,
        samples_per_prompt=1,
        gpu_memory_utilization=0.2,
        weight_sync="collective",
        enable_ignore_eos=True,
    )
    engine = RolloutEngine(cfg)
    try:
        receiver = make_receiver("collective", engine, fetch=lambda ref: ref)
        port = get_open_port()
        thread, errors = _in_thread(receiver.connect, "127.0.0.1", port, 1, 2)
        group = trainer_init({"master_address": "127.0.0.1", "master_port": port, "world_size": 2}, rank=0)
        _join(thread, errors)

        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
        gen = torch.Generator().manual_seed(3)
        state = model.state_dict()
        if model.config.tie_word_embeddings:
            state.pop("lm_head.weight", None)
        for name, value in state.items():
            if value.dim() == 2:
                state[name] = value + 3 * value.std() * torch.randn(value.shape, generator=gen)
        model.load_state_dict(state, strict=False)
        update = WeightUpdate(version=1, manifest=[manifest_entry(k, v) for k, v in state.items()])

        thread, errors = _in_thread(receiver.receive, update)
        for name, _, _ in update.manifest:
            group.broadcast(state[name].cuda(0).contiguous(), src=0, stream=torch.cuda.current_stream())
        torch.cuda.synchronize()
        _join(thread, errors)

        prompts = [[(5 * i + j) % 300 + 5 for j in range(10)] for i in range(4)]
        batch = engine.generate(prompts, ["a", "b", "c", "d"], [0, 1, 2, 3], policy_version=1, greedy=True)
        expected = []
        with torch.no_grad():
            for prompt in prompts:
                ids = list(prompt)
                for _ in range(MAX_TOKENS):
                    ids.append(int(model(torch.tensor([ids])).logits[0, -1].argmax()))
                expected.append(ids[len(prompt) :])
        assert batch.completion_ids == expected
    finally:
        engine.shutdown()
