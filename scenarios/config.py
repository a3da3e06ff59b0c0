"""Which scenario rows a job reads: the bundled default, a local file, or a Hugging Face dataset."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from cluster.config_checks import FieldChecks

# Split names and file suffixes live here so the loaders and this config share one definition.
SPLITS = ("all", "train", "dev", "test")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
PARQUET_SUFFIXES = (".parquet",)


def bundled_scenarios_path() -> Path:
    """The generated scenarios shipped inside the `scenarios` package (works from a wheel or a checkout)."""
    return Path(str(files("scenarios") / "bundled" / "scenarios.jsonl"))


@dataclass
class DataConfig:
    """Where scenario rows come from and which of them to use. Empty `source` = the bundled scenarios."""

    # Local .jsonl/.parquet path or Hugging Face dataset id (e.g. ServiceNow/PrivacyAlign); empty = bundled file.
    source: str = ""
    # File inside the hub dataset repo; used only when `source` is a hub id.
    hub_filename: str = "data/train.jsonl"
    # Hub revision (branch, tag or commit) for reproducible downloads; empty = the default branch.
    revision: str = ""
    # Rows to use: "train", "dev", "test" or "all". Generated rows carry their split; hub rows are dev when
    # sha256(id)'s first 8 hex mod 20 is in {0, 1}, train otherwise (the hub's test set is its own file).
    split: str = "train"
    # Skip and count invalid rows instead of stopping at the first one (the CLI's --skip-invalid).
    enable_skip_invalid: bool = False
    # Keep at most this many rows of the split, in file order; 0 = all.
    max_rows: int = 0

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "data")
        checks.one_of("split", SPLITS)
        checks.bounds("max_rows", ge=0, hint=" (0 = all rows)")
        if not self.hub_filename.endswith(JSONL_SUFFIXES + PARQUET_SUFFIXES):
            checks.fail(
                f"data.hub_filename must end with one of {list(JSONL_SUFFIXES + PARQUET_SUFFIXES)}, got {self.hub_filename!r}"
            )
        checks.done()

    def resolved_source(self) -> str:
        """`source`, or the bundled scenarios file when it is empty."""
        return self.source or str(bundled_scenarios_path())
