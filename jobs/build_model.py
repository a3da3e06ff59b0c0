"""`privacyalign build-model`: build (or find cached) the tiny offline Qwen2 checkpoint and print its path.

    privacyalign build-model                              # the CPU default (`tiny`)
    privacyalign build-model --size judge                 # the tiny judge (role judge; judge_pool.vllm.model=tiny-judge)
    privacyalign build-model --size w1                    # benchmark workload W1 (random init)
    privacyalign build-model warm_start_steps=300 seed=1  # TinyModelConfig field overrides
    privacyalign build-model --ship                       # rebuild from scratch and commit-ready copy
                                                          # into learner/shipped/<config-hash>/

Trailing key=value pairs override fields of learner.tiny_model.TinyModelConfig (OmegaConf dotlist).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from learner.tiny_model import SHIPPED_DIR, TINY_MODEL_SIZES, TinyModelConfig, ensure_tiny_model, tiny_model_config


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="privacyalign build-model",
        description="Build the tiny offline Qwen2 checkpoint (BPE tokenizer, chat template, warm start) "
        "into <cache-dir>/<config-hash>/, or reuse it when already built; prints the directory.",
        epilog="Trailing key=value pairs override TinyModelConfig fields, e.g. warm_start_steps=300 seed=1.",
    )
    parser.add_argument(
        "--size",
        choices=sorted(TINY_MODEL_SIZES),
        default="tiny",
        help="named size: tiny (the CPU default agent), judge (the CPU default judge, trained on judge transcripts "
        "of generated train rows) or w1 (benchmark workload W1, random init)",
    )
    parser.add_argument("--cache-dir", default=".cache/models", help="directory holding one checkpoint per config hash")
    parser.add_argument("-v", "--verbose", action="store_true", help="log build progress (warm-start loss)")
    parser.add_argument(
        "--ship",
        action="store_true",
        help="build from scratch (ignoring any shipped copy) and write the result to learner/shipped/<config-hash>/, "
        "the committed checkpoint a fresh machine copies instead of building; older shipped builds of the same "
        "role (agent or judge) are removed",
    )
    parser.add_argument("overrides", nargs="*", help="TinyModelConfig field overrides as key=value")
    return parser.parse_args(argv)


def build_config(size: str, overrides: list[str]) -> TinyModelConfig:
    """The named size with dotlist overrides applied and validated (ValueError names the bad override)."""
    merged = OmegaConf.structured(tiny_model_config(size))
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value (e.g. warm_start_steps=300)")
        try:
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([item]))
        except OmegaConfBaseException as exc:
            raise ValueError(f"override {item!r}: {str(exc).splitlines()[0]}") from None
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = build_config(args.size, args.overrides)
    except ValueError as exc:
        print(f"privacyalign build-model: {exc}", file=sys.stderr)
        return 2
    if not args.ship:
        print(ensure_tiny_model(cfg, cache_dir=args.cache_dir))
        return 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        built = ensure_tiny_model(cfg, cache_dir=scratch, use_shipped=False)
        for old in SHIPPED_DIR.glob("*/tiny_model_config.json"):  # the role's older builds; the other role's stay
            if json.loads(old.read_text())["config"].get("role", "agent") == cfg.role:
                shutil.rmtree(old.parent)
        shutil.copytree(built, SHIPPED_DIR / built.name)
    print(f"{SHIPPED_DIR / built.name} (built in {time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
