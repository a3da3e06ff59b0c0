"""RNG states in checkpoints: exact round trip, loaded without unpickling arbitrary objects."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from learner.checkpoint import load_rng_state, save_rng_state


def _draws() -> tuple:
    return random.random(), random.gauss(0, 1), np.random.rand(3).tolist(), np.random.randn(), torch.rand(3).tolist()


def test_rng_states_round_trip_exactly(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    random.gauss(0, 1)  # leave a cached Gaussian in Python's and NumPy's state
    np.random.randn()
    save_rng_state(tmp_path / "rank_0.pt")
    expected = _draws()
    _draws()
    load_rng_state(tmp_path / "rank_0.pt")
    assert _draws() == expected


def test_pickled_objects_are_refused_not_loaded(tmp_path: Path) -> None:
    # The old format pickled NumPy's state array; torch.load(weights_only=True) must not unpickle it.
    path = tmp_path / "rank_0.pt"
    torch.save({"numpy": np.random.get_state()}, path)
    with pytest.raises(ValueError, match="holds objects other than tensors and numbers"):
        load_rng_state(path)
