"""The start both evaluation jobs share: config from flags, `--print-config`, run directory, saved config."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from jobs.config_loading import ConfigError, save_config, to_yaml
from jobs.evaluation.config import EvalJobConfig
from jobs.evaluation.records import make_run_dir

T = TypeVar("T")

# Saved in every run directory; `evaluate --resume <dir>` reads it back.
CONFIG_FILE = "config.yaml"


def prepare_run(
    args: argparse.Namespace,
    resolve_config: Callable[[argparse.Namespace], EvalJobConfig],
    job: str,
    load_inputs: Callable[[EvalJobConfig], T],
) -> tuple[EvalJobConfig, Path, T] | int:
    """Resolve the config, load and validate the job's data, then create the run directory with the config.

    Args:
        args: the job's parsed flags (`print_config` among them).
        resolve_config: the job's flags → config function; raises ConfigError on bad input.
        job: names the default run directory, `runs/<job>-<UTC time>`.
        load_inputs: reads the job's data from the config; a bad file or row raises ValueError / OSError
            (RowValidationError names file:line:field).

    Returns:
        (config, run directory, inputs) to go on with, or the exit code when the job is already done:
        2 after a config or data error (printed, nothing created, Ray not started), 0 after `--print-config`.
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
    # Data before anything starts: a bad row is a user mistake to report, not a traceback after Ray is up.
    try:
        inputs = load_inputs(cfg)
    except (ValueError, OSError) as exc:
        print(ConfigError([f"data: {exc}"]), file=sys.stderr)
        return 2
    run_dir = make_run_dir(cfg.eval.run_dir or f"runs/{job}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    cfg.eval = dataclasses.replace(cfg.eval, run_dir=str(run_dir))
    save_config(cfg, run_dir / CONFIG_FILE)
    return cfg, run_dir, inputs
