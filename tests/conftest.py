"""Shared fixtures: the tiny offline-built model, cached across the whole test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# vLLM's CPU backend sizes its KV cache from this (GiB); keep it small so engines fit beside each other.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """HF-format tiny Qwen2 checkpoint built offline (tokenizer + warm start), cached by config hash."""
    from learner.tiny_model import ensure_tiny_model

    return ensure_tiny_model(cache_dir=REPO_ROOT / ".cache" / "models")
