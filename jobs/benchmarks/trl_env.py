"""TRL's own virtual environment for the e2e baseline, so TRL never enters the product's dependencies.

Created on first use under `.cache/bench/trl-venv` with pip (torch resolves to the CPU wheel on this
machine's disk); a stamp file records the requirement list, and a changed list reinstalls.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from jobs.benchmarks.models import BENCH_CACHE

logger = logging.getLogger(__name__)

# Pinned to what the product runs (torch, transformers) so both trainers execute the same model code;
# pyarrow/omegaconf/safetensors are what our pure modules (scenarios, judge reward) import.
TRL_REQUIREMENTS = (
    "trl==1.16.0",
    "torch==2.13.0",
    "transformers==5.19.0",
    "pyarrow",
    "omegaconf==2.4.0",
    "safetensors",
)
TRL_VENV = BENCH_CACHE / "trl-venv"


def ensure_trl_python(venv: Path = TRL_VENV) -> Path:
    """The TRL venv's python, creating and installing the venv first when missing or stale.

    Raises:
        RuntimeError: pip failed; the message carries the tail of its output.
    """
    python = venv / "bin" / "python"
    stamp = venv / ".privacyalign-requirements"
    wanted = "\n".join(TRL_REQUIREMENTS)
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    logger.info("installing TRL into %s (once): %s", venv, " ".join(TRL_REQUIREMENTS))
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    proc = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *TRL_REQUIREMENTS], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"pip install into {venv} failed: {proc.stderr.strip().splitlines()[-3:]}")
    stamp.write_text(wanted)
    return python
