"""Running a causal LM on a MicroBatch, and deciding whether the shared-prefix layout may be used.

The shared-prefix layout (learner/micro_batch.py) hands the model a custom 4-D mask. transformers
(5.x `masking_utils`) passes a 4-D mask through untouched to the attention backend, and two backends
apply one exactly: SDPA takes the bool mask as is (on CUDA it dispatches to the memory-efficient
kernel, which supports arbitrary masks, since the flash kernel takes none), and eager needs it additive.
flash_attention_2/3 ignore 4-D masks, flex attention has no CPU backward (torch 2.13) and the loader never
asks for it, and sliding-window layers would silently lose their window under a custom mask: those
fall back to one sample per row.

Measured on the W1 model on CPU (one 8-prompt × 4-sample step, forward + backward of the policy, one
thread, median of 3): one sample per row 4.69 s (SDPA) / 5.15 s (eager); shared prefix 2.17 s with the
SDPA bool mask, 3.23 s with the eager additive mask. SDPA, the default attention of the checkpoints we
load, is the path on CPU and CUDA alike.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from learner.micro_batch import MicroBatch

logger = logging.getLogger(__name__)

SHARED_PREFIX_MODES = ("auto", "on", "off")
# Attention implementations that apply a custom 4-D mask exactly (see the module docstring).
_MASKED_ATTENTION = ("sdpa", "eager")
# Decoder families whose forward honours explicit position_ids and a custom 4-D mask, with no
# bidirectional or multimodal tokens the mask would have to know about.
_DECODER_TYPES = ("qwen2", "qwen3", "llama", "mistral")


def check_shared_prefix_mode(mode: str) -> str:
    """`mode` if it is a known learner.shared_prefix setting; ValueError listing valid ones otherwise."""
    if mode not in SHARED_PREFIX_MODES:
        raise ValueError(f"unknown learner.shared_prefix {mode!r}; valid: {list(SHARED_PREFIX_MODES)}")
    return mode


def shared_prefix_unsupported(config: Any) -> str | None:
    """Why the HF model `config` cannot run the shared-prefix layout exactly, or None if it can."""
    model_type, attention = getattr(config, "model_type", "?"), getattr(config, "_attn_implementation", None)
    if model_type not in _DECODER_TYPES:
        return f"model type {model_type!r} is not one of {list(_DECODER_TYPES)}"
    if attention not in _MASKED_ATTENTION:
        return (
            f"attention implementation {attention!r} ignores custom 4-D masks (needs one of {list(_MASKED_ATTENTION)})"
        )
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        return "the model has sliding-window layers, which a custom 4-D mask would override"
    return None


def resolve_shared_prefix(mode: str, config: Any) -> bool:
    """Whether to lay groups out with a shared prefix: `on` requires support, `auto` uses it where supported."""
    reason = shared_prefix_unsupported(config) if mode != "off" else None
    if mode == "on" and reason:
        raise ValueError(f"learner.shared_prefix=on but {reason}; set learner.shared_prefix=auto or off")
    enabled = mode != "off" and reason is None
    if enabled:
        logger.info("learner: shared-prefix layout (each prompt computed once per group)")
    else:
        logger.info("learner: one sample per row (%s)", reason or "learner.shared_prefix=off")
    return enabled


def _hf_config(model: torch.nn.Module) -> Any:
    """The HF config of `model` or of the module a DeepSpeed engine wraps."""
    return getattr(model, "module", model).config


def _attention_mask(model: torch.nn.Module, mb: MicroBatch) -> Any:
    """`mb.attention_mask` in the form the model's attention backend applies (only 4-D masks need converting)."""
    mask = mb.attention_mask
    if mask.dim() != 4:
        return mask
    if _hf_config(model)._attn_implementation == "eager":
        # Eager attention adds the mask to the scores: 0 where allowed, the dtype's minimum elsewhere.
        dtype = next(getattr(model, "module", model).parameters()).dtype
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask


def completion_logits(model: torch.nn.Module, mb: MicroBatch, temperature: float = 1.0) -> torch.Tensor:
    """Tempered logits [b, S·C, V] predicting every target column of `mb` (column t's logits predict t+1)."""
    out = model(
        input_ids=mb.input_ids,
        attention_mask=_attention_mask(model, mb),
        position_ids=mb.position_ids,
        logits_to_keep=mb.logit_index,
        use_cache=False,
    )
    return out.logits / temperature if temperature != 1.0 else out.logits
