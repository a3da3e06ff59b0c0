"""Judge backend registry by exact name (docs/architecture.md §1.2).

Factories import their module lazily, so building the `offline` backend never imports vLLM or httpx.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from judge.backends.base import JudgeBackend, JudgeRequest, prompt_hash


def _offline(cfg: Any) -> JudgeBackend:
    from judge.backends.offline import OfflineBackend

    return OfflineBackend(cfg)


def _vllm(cfg: Any) -> JudgeBackend:
    from judge.backends.vllm_backend import VllmBackend

    return VllmBackend(cfg)


def _openai(cfg: Any) -> JudgeBackend:
    from judge.backends.openai_backend import OpenAIBackend

    return OpenAIBackend(cfg)


# name -> factory(cfg); `vllm` takes judge_pool.vllm (VllmBackendConfig), `openai` judge_pool.openai (OpenAIBackendConfig).
_BACKENDS: dict[str, Callable[[Any], JudgeBackend]] = {
    "offline": _offline,
    "vllm": _vllm,
    "openai": _openai,
}


def backend_names() -> list[str]:
    """Registered backend names, sorted."""
    return sorted(_BACKENDS)


def make_backend(name: str, cfg: Any) -> JudgeBackend:
    """Build the backend registered as `name` with its config (JudgeConfig for `offline`).

    Raises:
        ValueError: `name` is not registered; the message lists the valid names.
    """
    factory = _BACKENDS.get(name)
    if factory is None:
        raise ValueError(f"unknown judge backend {name!r}; valid: {backend_names()}")
    return factory(cfg)


__all__ = ["JudgeBackend", "JudgeRequest", "backend_names", "make_backend", "prompt_hash"]
