"""`privacyalign train`: RL of an agent against the annotation-conditioned judge (the main job).

Examples:
    privacyalign train                                  # tiny-cpu preset: local Ray, tiny model, offline judge
    privacyalign train trainer.num_steps=5 trainer.schedule=async
    privacyalign train --preset qwen3-4b-1node          # GPU preset
    privacyalign train --resume runs/20261129-081500    # continue a killed run from its last checkpoint
    ray job submit --working-dir . -- privacyalign train   # on a running cluster (see README)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from jobs.config import TrainConfig, load_train_config
from jobs.config_loading import ConfigError, save_config
from jobs.run_files import write_atomic
from jobs.training.loop import RLLoop, TooManySkippedSteps
from jobs.training.metrics import MetricsLogger, plot_metrics
from jobs.training.prompt_schedule import PromptSchedule

logger = logging.getLogger("privacyalign.train")
DEFAULT_PRESET = "tiny-cpu"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="privacyalign train",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--preset",
        default=DEFAULT_PRESET,
        help="config preset name from jobs/presets (tiny-cpu, qwen3-4b-1node, qwen3-8b-2node, ...) or a YAML path "
        f"(default: {DEFAULT_PRESET})",
    )
    parser.add_argument(
        "--run-dir", default="", help="where metrics, checkpoints and the resolved config go (default: runs/<UTC time>)"
    )
    parser.add_argument(
        "--resume",
        default="",
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from its newest complete checkpoint, with its saved config "
        "(overrides still apply, e.g. trainer.num_steps=80 to extend it)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="OmegaConf dotlist overrides of any config field, e.g. learner.lr=2e-6 rollout.samples_per_prompt=4",
    )
    return parser


def _load(args: argparse.Namespace) -> tuple[TrainConfig, Path]:
    if args.resume:
        run_dir = Path(args.resume)
        saved = run_dir / "config.yaml"
        if not saved.exists():
            raise ConfigError([f"--resume {run_dir}: no config.yaml there (is it a privacyalign run directory?)"])
        return load_train_config(saved, args.overrides), run_dir
    cfg = load_train_config(args.preset, args.overrides)
    run_dir = Path(args.run_dir or cfg.trainer.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")
    return cfg, run_dir


def _progress_postfix(metrics: dict[str, float]) -> dict[str, str]:
    keys = (("reward/mean", "reward"), ("time/step", "s/step"), ("eval/leak_rate", "dev leak"))
    return {short: f"{metrics[key]:.3g}" for key, short in keys if key in metrics}


def run(cfg: TrainConfig, run_dir: Path, *, resume: bool) -> dict[str, float]:
    """Train; returns the summary (dev rates before/after, steps done) also written to summary.json."""
    from jobs.training.session import TrainingSession

    run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(run_dir, 0o700)
    save_config(cfg, run_dir / "config.yaml")
    tcfg = cfg.trainer
    session = TrainingSession(cfg, run_dir)
    metrics_log = MetricsLogger(run_dir, enable_tensorboard=tcfg.enable_tensorboard)
    summary_path = run_dir / "summary.json"
    summary: dict[str, float] = json.loads(summary_path.read_text()) if resume and summary_path.exists() else {}
    try:
        session.start()
        start_step = session.restore_latest() if resume else 0
        if start_step:
            session.push_weights(start_step)
        metrics_log.truncate_after(start_step)
        schedule = PromptSchedule(session.train_ids, tcfg.prompts_per_step, tcfg.seed)
        loop = RLLoop(
            tcfg,
            schedule,
            session.rollout,
            session.judge,
            session.learner,
            max_invalid_fraction=cfg.judge.max_invalid_fraction,
            policy_version=start_step,
        )
        if start_step == 0:
            before = session.evaluate_dev(policy_version=0)
            metrics_log.log(0, before)
            summary.update({f"before/{k}": v for k, v in before.items()})
        bar = tqdm(
            range(start_step, tcfg.num_steps),
            initial=start_step,
            total=tcfg.num_steps,
            desc="train",
            disable=not tcfg.enable_progress_bar,
        )
        for step in bar:
            result = loop.run_step(step)
            done = step + 1
            if tcfg.eval_every and done % tcfg.eval_every == 0 and done < tcfg.num_steps:
                result.metrics.update(session.evaluate_dev(policy_version=loop.policy_version))
            metrics_log.log(done, result.metrics)
            bar.set_postfix(_progress_postfix(result.metrics))
            if tcfg.checkpoint_every and done % tcfg.checkpoint_every == 0 and done < tcfg.num_steps:
                session.save_checkpoint(done, schedule.cursor(done))
        loop.drain()
        after = session.evaluate_dev(policy_version=loop.policy_version)
        metrics_log.log(tcfg.num_steps, after)
        session.save_checkpoint(tcfg.num_steps, schedule.cursor(tcfg.num_steps))
        summary.update({f"after/{k}": v for k, v in after.items()})
        summary["steps"] = float(tcfg.num_steps)
        write_atomic(summary_path, json.dumps(summary, indent=2, sort_keys=True))
    finally:
        metrics_log.close()
        session.close()
    if tcfg.enable_plot:
        plot_metrics(run_dir / "metrics.jsonl", run_dir / "curves.png")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg, run_dir = _load(args)
    except ConfigError as exc:
        print(f"privacyalign train: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        from jobs.config_loading import to_yaml

        print(to_yaml(cfg))
        return 0
    try:
        summary = run(cfg, run_dir, resume=bool(args.resume))
    except ConfigError as exc:  # e.g. a bad data row, found when the session loads the scenarios
        print(f"privacyalign train: {exc}", file=sys.stderr)
        return 2
    except TooManySkippedSteps as exc:
        print(f"privacyalign train: {exc}", file=sys.stderr)
        return 1
    lines = [f"run directory: {run_dir}"]
    for key in ("leak_rate", "omit_rate", "clean_rate", "valid_answer_rate"):
        before, after = summary.get(f"before/eval/{key}"), summary.get(f"after/eval/{key}")
        if after is not None:
            lines.append(f"dev {key:<18} before {before if before is None else f'{before:.3f}'}  after {after:.3f}")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
