"""The start both evaluation jobs share: config from flags, `--print-config`, run directory, saved config."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path

from jobs.config_loading import ConfigError, save_config, to_yaml
from jobs.evaluation.config import EvalJobConfig
from jobs.evaluation.records import make_run_dir

# Saved in every run directory; `evaluate --resume <dir>` reads it back.
CONFIG_FILE = "config.yaml"


def prepare_run(
    args: argparse.Namespace, resolve_config: Callable[[argparse.Namespace], EvalJobConfig], job: str
) -> tuple[EvalJobConfig, Path] | int:
    """Resolve the config and create the run directory with the config saved in it.

    Args:
        args: the job's parsed flags (`print_config` among them).
        resolve_config: the job's flags → config function; raises ConfigError on bad input.
        job: names the default run directory, `runs/<job>-<UTC time>`.

    Returns:
        (config, run directory) to go on with, or the exit code when the job is already done:
        2 after a config error (printed, nothing created), 0 after `--print-config`.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = resolve_config(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.print_config:
        print(to_yaml(cfg))
        return 0
    run_dir = make_run_dir(cfg.eval.run_dir or f"runs/{job}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    cfg.eval = dataclasses.replace(cfg.eval, run_dir=str(run_dir))
    save_config(cfg, run_dir / CONFIG_FILE)
    return cfg, run_dir
