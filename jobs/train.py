"""`privacyalign train`: RL of an agent against the annotation-conditioned judge (the main job).

Examples:
    privacyalign train                                  # tiny-cpu preset: local Ray, tiny agent, tiny LLM judge
    privacyalign train trainer.num_steps=5 trainer.schedule=async
    privacyalign train --preset qwen3-4b-1node          # GPU preset
    privacyalign train --resume runs/20261129-081500    # continue a killed run from its last checkpoint
    privacyalign train trainer.storage=s3://bucket/runs/exp1   # outputs to an object store (multi-node)
    ray job submit --working-dir . -- privacyalign train   # on a running cluster (see README)
    privacyalign train judge.pool=privacyalign-judge    # judge with a running `serve-judge` pool, shared
    privacyalign train learner.shared_prefix=off        # one sample per row (default auto: a group's prompt once)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from typing import Any

from tqdm import tqdm

from actors.group import ActorCallError
from cluster.storage import RunStorage
from jobs.config import TrainConfig, defaults_yaml, load_train_config
from jobs.config_loading import ConfigError, save_config
from jobs.evaluation.report import split_rate_table
from jobs.run_files import write_atomic
from jobs.training.loop import RLLoop, TooManySkippedSteps
from jobs.training.metrics import EVAL_SPLITS, MetricsLogger, plot_metrics
from jobs.training.prompt_schedule import PromptSchedule
from jobs.training.run_folder import RunFolder

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
        "--run-dir",
        default="",
        help="where metrics, checkpoints and the resolved config go: a path, shared by every node on a cluster, "
        "or an s3:// / gs:// URI; overrides trainer.storage (default: runs/<UTC time>)",
    )
    parser.add_argument(
        "--resume",
        default="",
        metavar="RUN_DIR",
        help="continue the run stored at RUN_DIR (a path or URI) from its newest complete checkpoint, with its "
        "saved config (overrides still apply, e.g. trainer.num_steps=80 to extend it)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "--print-defaults",
        action="store_true",
        help="print every config field with its default and its comment from the source, and exit "
        "(this is jobs/presets/defaults.yaml)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="OmegaConf dotlist overrides of any config field, e.g. learner.lr=2e-6 rollout.samples_per_prompt=4",
    )
    return parser


def _load(args: argparse.Namespace) -> tuple[TrainConfig, RunFolder]:
    """The config and the run's folder; a resumed run's saved files are pulled from its storage first."""
    if args.resume:
        folder = RunFolder(_storage(args.resume, "--resume"))
        folder.pull()
        saved = folder.local / "config.yaml"
        if not saved.exists():
            folder.close()
            where = folder.storage.describe()
            raise ConfigError([f"--resume {where}: no config.yaml there (is it a privacyalign run directory?)"])
        cfg = load_train_config(saved, args.overrides)
    else:
        cfg = load_train_config(args.preset, args.overrides)
        location = args.run_dir or cfg.trainer.storage or f"runs/{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
        folder = RunFolder(_storage(location, "--run-dir" if args.run_dir else "trainer.storage"))
    # The saved config names where the run lives (absolute), so every node and a later resume agree.
    cfg.trainer = dataclasses.replace(cfg.trainer, storage=folder.storage.uri)
    return cfg, folder


def _storage(location: str, what: str) -> RunStorage:
    try:
        return RunStorage.resolve(location)
    except ValueError as exc:
        raise ConfigError([f"{what}: {exc}"]) from None


def _progress_postfix(metrics: dict[str, float | None]) -> dict[str, str]:
    keys = (("reward/mean", "reward"), ("time/step", "s/step"), ("eval/oracle/leak_among_usable", "dev oracle leak"))
    return {short: f"{metrics[key]:.3g}" for key, short in keys if metrics.get(key) is not None}


def reward_judge(cfg: TrainConfig) -> str:
    """Which judge produced the reward: the backend and its model."""
    backend = cfg.judge.backend
    if cfg.judge.pool:
        return f"{backend} (shared serve-judge pool {cfg.judge.pool!r}; its pool.* config names the model)"
    if backend == "vllm":
        model = cfg.judge_pool.vllm.model or f"the policy's starting checkpoint ({cfg.model.source})"
    elif backend == "openai":
        model = cfg.judge_pool.openai.model or "?"
    else:
        model = "rule-based, no model" if backend == "offline" else "?"
    return f"{backend} ({model})"


def render_summary(summary: dict[str, Any]) -> str:
    """Before/after tables of the dev and test splits (judge beside oracle) and the reward's judge."""
    parts = []
    for split, prefix in EVAL_SPLITS.items():
        entries = {when: _strip(summary, f"{when}/{prefix}/") for when in ("before", "after")}
        if not any(entries.values()):
            parts.append(f"{split}: not evaluated (no {split} split in the data)\n")
            continue
        columns = [(f"{grader} {when}", grader, entries[when]) for grader in ("judge", "oracle") for when in entries]
        samples = ", ".join(
            f"{when} {int(e['samples'])}" for when, e in entries.items() if e.get("samples") is not None
        )
        parts.append(f"{split} split ({samples} answers):\n" + split_rate_table(columns))
    parts.append(
        f"reward judge: {summary.get('reward_judge', '?')}; the oracle (ground truth of generated rows) is an "
        "evaluator only. Unusable answers count as leak + omit in the paper rows only."
    )
    return "\n".join(parts)


def _strip(summary: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in summary.items() if k.startswith(prefix)}


def run(cfg: TrainConfig, folder: RunFolder, *, resume: bool) -> dict[str, Any]:
    """Train; returns the summary (dev and test rates before/after, steps done) also written to summary.json."""
    from jobs.training.session import TrainingSession

    run_dir = folder.local
    folder.create()
    save_config(cfg, run_dir / "config.yaml")
    folder.push()
    tcfg = cfg.trainer
    session = TrainingSession(cfg, folder.storage)
    metrics_log = MetricsLogger(run_dir, enable_tensorboard=tcfg.enable_tensorboard)
    summary_path = run_dir / "summary.json"
    summary: dict[str, Any] = json.loads(summary_path.read_text()) if resume and summary_path.exists() else {}
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
            deadlines=session.deadlines,
            policy_version=start_step,
            canary_rows=session.canary_rows_ref,
        )
        if start_step == 0:
            # Test only here and at the end: tune on dev, report test once (docs/architecture.md §3, rule 2).
            before = session.evaluate("dev", policy_version=0) | session.evaluate("test", policy_version=0)
            metrics_log.log(0, before)
            summary.update({f"before/{k}": v for k, v in before.items()})
        bar = tqdm(
            range(start_step, tcfg.num_steps),
            initial=start_step,
            total=tcfg.num_steps,
            desc="train",
            # Not redrawn into a CI log, where a bar is hundreds of partial lines; metrics.jsonl has every step.
            disable=not tcfg.enable_progress_bar or (os.environ.get("CI") == "true" and not sys.stderr.isatty()),
        )
        for step in bar:
            result = loop.run_step(step)
            done = step + 1
            if tcfg.eval_every and done % tcfg.eval_every == 0 and done < tcfg.num_steps:
                result.metrics.update(session.evaluate("dev", policy_version=loop.policy_version))
            metrics_log.log(done, result.metrics)
            bar.set_postfix(_progress_postfix(result.metrics))
            if tcfg.checkpoint_every and done % tcfg.checkpoint_every == 0 and done < tcfg.num_steps:
                folder.push()  # metrics first: storage never holds a checkpoint newer than its metrics
                session.save_checkpoint(done, schedule.cursor(done))
        loop.drain()
        version = loop.policy_version
        after = session.evaluate("dev", policy_version=version) | session.evaluate("test", policy_version=version)
        metrics_log.log(tcfg.num_steps, after)
        folder.push()
        session.save_checkpoint(tcfg.num_steps, schedule.cursor(tcfg.num_steps))
        summary.update({f"after/{k}": v for k, v in after.items()})
        summary["steps"] = float(tcfg.num_steps)
        summary["reward_judge"] = reward_judge(cfg)
        write_atomic(summary_path, json.dumps(summary, indent=2, sort_keys=True))
    finally:
        metrics_log.close()
        session.close()
    if tcfg.enable_plot:
        plot_metrics(run_dir / "metrics.jsonl", run_dir / "curves.png")
    folder.push()
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.print_defaults:
        print(defaults_yaml(), end="")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg, folder = _load(args)
    except ConfigError as exc:
        print(f"privacyalign train: {exc}", file=sys.stderr)
        return 2
    try:
        if args.print_config:
            from jobs.config_loading import to_yaml

            print(to_yaml(cfg))
            return 0
        summary = run(cfg, folder, resume=bool(args.resume))
    except ConfigError as exc:  # e.g. a bad data row, or storage a learner rank cannot see
        print(f"privacyalign train: {exc}", file=sys.stderr)
        return 2
    except TooManySkippedSteps as exc:
        print(f"privacyalign train: {exc}", file=sys.stderr)
        return 1
    except ActorCallError as exc:  # a hung or dead engine, learner rank or judge: named in the message
        print(
            f"privacyalign train: {exc}\ncontinue from the last checkpoint: "
            f"privacyalign train --resume {folder.storage.describe()}",
            file=sys.stderr,
        )
        return 1
    finally:
        folder.close()
    print(f"run directory: {folder.storage.describe()}\n{render_summary(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
