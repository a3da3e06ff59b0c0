"""`privacyalign evaluate`: agents under test on PrivacyAlign, PrivacyLens and ConfAIde, with a readable report.

    privacyalign evaluate --agent hf:.cache/models/tiny-abc --benchmark privacyalign
    privacyalign evaluate --compare hf:runs/base/ckpt hf:runs/rl/ckpt --benchmark privacyalign \\
        --benchmark privacylens --data privacylens=main_data.json --judge-samples 3
    privacyalign evaluate --resume runs/evaluate-20260101T000000Z

Items are answered in chunks (all rollout engines busy at once), each finished chunk is judged and
appended to `<run_dir>/items.jsonl`, and a rerun with `--resume` skips every (agent, item) already
there. The run directory (0o700) ends with `summary.json`, `report.md` and PNG charts.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path

from jobs.config_loading import ConfigError, load_config
from jobs.evaluation.config import BENCHMARKS, EvalConfig, EvalJobConfig, agent_labels, parse_agent_spec
from jobs.evaluation.records import EvalItem, ResultStore
from jobs.evaluation.run_setup import CONFIG_FILE, prepare_run
from rollout.config import PROMPT_STYLES

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="privacyalign evaluate",
        description="Evaluate one agent (or two side by side) on PrivacyAlign, PrivacyLens and ConfAIde.",
        epilog="Trailing key=value pairs override the config (sections eval, rollout, judge, judge_pool, cluster), "
        "e.g. judge.backend=openai judge_pool.openai.model=gpt-5.5 rollout.num_engines=2; "
        "judge.pool=privacyalign-judge judges with a running `serve-judge` pool of that app name.",
    )
    parser.add_argument(
        "--benchmark",
        action="append",
        choices=BENCHMARKS,
        help="benchmark to run; repeat for several (default: privacyalign)",
    )
    parser.add_argument(
        "--data",
        action="append",
        default=[],
        metavar="[BENCHMARK=]PATH",
        help="data of a benchmark: PrivacyAlign .jsonl/.parquet or hub id (default: bundled scenarios), "
        "PrivacyLens main_data.json, ConfAIde folder with tier_3/4.jsonl; a bare PATH applies to the only benchmark",
    )
    agents = parser.add_mutually_exclusive_group()
    agents.add_argument("--agent", help="agent under test: hf:<checkpoint dir> or openai:<base_url>#<model>")
    agents.add_argument(
        "--compare", nargs=2, metavar=("A", "B"), help="two agents side by side (A = before, B = after)"
    )
    parser.add_argument("--judge-samples", type=int, help="judge each PrivacyAlign answer k times; report mean ± std")
    parser.add_argument("--prompt-style", choices=PROMPT_STYLES, help="agent prompt style")
    parser.add_argument("--split", choices=("dev", "test", "train", "all"), help="PrivacyAlign split (default dev)")
    parser.add_argument("--max-items", type=int, help="items per benchmark, in file order (0 = all)")
    parser.add_argument("--run-dir", help="output directory (default runs/evaluate-<UTC timestamp>)")
    parser.add_argument("--resume", metavar="RUN_DIR", help="continue a run: its saved config, skipping done items")
    parser.add_argument(
        "--enable-scenario-text",
        action="store_true",
        help="also write prompts, answers and judge outputs into items.jsonl (private text; off by default)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="OmegaConf dotlist overrides (eval.*, rollout.*, judge.*, ...)")
    return parser.parse_args(argv)


def _data_paths(data: list[str], benchmarks: list[str]) -> dict[str, str]:
    """`--data` values → eval.<benchmark>_data fields; a bare path needs exactly one benchmark."""
    out = {}
    for value in data:
        name, sep, path = value.partition("=")
        if sep and name in BENCHMARKS:
            out[name] = path
        elif len(benchmarks) == 1:
            out[benchmarks[0]] = value
        else:
            raise ValueError(
                f"--data {value!r}: with several benchmarks write BENCHMARK=PATH (e.g. privacylens=x.json)"
            )
    return {f"{name}_data": path for name, path in out.items()}


def resolve_config(args: argparse.Namespace) -> EvalJobConfig:
    """Defaults ← saved config of --resume ← dotlist overrides ← flags (flags win)."""
    preset = Path(args.resume) / CONFIG_FILE if args.resume else None
    if preset is not None and not preset.exists():
        raise ConfigError([f"--resume {args.resume}: no {CONFIG_FILE} there; is it an evaluate run directory?"])
    cfg = load_config(EvalJobConfig, preset, args.overrides)
    changes: dict = {}
    if args.benchmark:
        changes["benchmarks"] = list(dict.fromkeys(args.benchmark))
    try:
        changes.update(_data_paths(args.data, changes.get("benchmarks", cfg.eval.benchmarks)))
    except ValueError as exc:
        raise ConfigError([str(exc)]) from None
    for name in ("judge_samples", "prompt_style", "split", "max_items", "run_dir"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.agent or args.compare:
        changes["agents"] = [args.agent] if args.agent else list(args.compare)
    if args.resume:
        changes["run_dir"] = args.resume
    if args.enable_scenario_text:
        changes["enable_scenario_text"] = True
    try:
        cfg.eval = dataclasses.replace(cfg.eval, **changes)
    except ValueError as exc:  # FieldChecks list every problem of the section as `errors`
        raise ConfigError(getattr(exc, "errors", [str(exc)])) from None
    if not cfg.eval.agents:
        raise ConfigError(
            ["no agent: pass --agent hf:<checkpoint dir> (or openai:<base_url>#<model>) or --compare A B"]
        )
    for benchmark in ("privacylens", "confaide"):
        if benchmark in cfg.eval.benchmarks and not getattr(cfg.eval, f"{benchmark}_data"):
            raise ConfigError([f"{benchmark} needs its data: --data {benchmark}=PATH (upstream files, see --help)"])
    return cfg


def build_items(cfg: EvalConfig) -> dict[str, list[EvalItem]]:
    """Every benchmark's items; agent prompts are rendered here, once, for all agents."""
    from jobs.evaluation import confaide, privacylens
    from rollout.prompts import render_messages
    from scenarios.config import bundled_scenarios_path
    from scenarios.loading import load_rows

    items: dict[str, list[EvalItem]] = {}
    if "privacyalign" in cfg.benchmarks:
        source = cfg.privacyalign_data or bundled_scenarios_path()
        rows = load_rows(source, split=cfg.split, max_rows=cfg.max_items or None).rows
        items["privacyalign"] = [
            EvalItem(
                f"privacyalign/{row.id}", "privacyalign", row.id, tuple(render_messages(row, cfg.prompt_style)), row
            )
            for row in rows
        ]
    if "privacylens" in cfg.benchmarks:
        cases = privacylens.load_cases(cfg.privacylens_data, max_cases=cfg.max_items)
        items["privacylens"] = [
            privacylens.make_item(case, tuple(render_messages(case.row, cfg.prompt_style))) for case in cases
        ]
    if "confaide" in cfg.benchmarks:
        privacy = cfg.prompt_style == "privacy_enhanced"
        items["confaide"] = confaide.load_items(cfg.confaide_data, privacy_prompt=privacy, max_items=cfg.max_items)
    return items


def _chunks(items: list[EvalItem], size: int) -> list[list[EvalItem]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def run(cfg: EvalJobConfig, run_dir: Path, items: dict[str, list[EvalItem]]) -> dict:
    """Answer, judge and record every item of `items` (see `build_items`) not yet in items.jsonl, then write
    the report; returns the summary."""
    from jobs.evaluation.agents import make_agent
    from jobs.evaluation.judging import make_judge
    from jobs.evaluation.report import write_report
    from jobs.evaluation.scoring import score_chunk
    from jobs.evaluation.summary import summarize_evaluate

    ev = cfg.eval
    specs = [parse_agent_spec(a) for a in ev.agents]
    labels = agent_labels(specs)
    store = ResultStore(run_dir, enable_scenario_text=ev.enable_scenario_text)
    done = store.done_keys()
    judge = make_judge(cfg, rows=[i.payload for i in items.get("privacyalign", [])])
    try:
        for spec, label in zip(specs, labels, strict=True):
            todo = [
                c
                for bench in items.values()
                for c in _chunks([i for i in bench if (label, i.item_id) not in done], ev.chunk_items)
            ]
            total = sum(len(c) for c in todo)
            logger.info(
                "agent %s: %d items to do (%d already done)", label, total, sum(len(v) for v in items.values()) - total
            )
            if not todo:
                continue
            agent = make_agent(
                spec, cfg.rollout, samples=ev.agent_samples, temperature=ev.temperature, max_tokens=ev.max_tokens
            )
            start, finished = time.monotonic(), 0
            try:
                for chunk, answers in agent.generate(todo):
                    records = score_chunk(label, chunk, answers, judge, judge_samples=ev.judge_samples)
                    store.append(records)
                    finished += len(chunk)
                    logger.info("agent %s: %d/%d items done (%.0fs)", label, finished, total, time.monotonic() - start)
            finally:
                agent.shutdown()
    finally:
        judge.close()
    summary = summarize_evaluate(store.load(), labels, list(items))
    summary["agent_specs"] = dict(zip(labels, ev.agents, strict=True))
    summary["judge_backend"] = cfg.judge.backend
    summary["prompt_style"] = ev.prompt_style
    paths = write_report(summary, run_dir)
    logger.info("wrote %s", ", ".join(str(p) for p in paths))
    return summary


def main(argv: list[str] | None = None) -> int:
    prepared = prepare_run(parse_args(argv), resolve_config, "evaluate", lambda cfg: build_items(cfg.eval))
    if isinstance(prepared, int):
        return prepared
    cfg, run_dir, items = prepared
    from cluster.connect import connect

    # Ray is needed for vLLM rollout actors and the Serve judge pool; an endpoint + in-process judge runs without.
    if cfg.uses_judge_pool or any(parse_agent_spec(a).kind == "hf" for a in cfg.eval.agents):
        connect(cfg.cluster)
    from actors.group import ActorCallError

    try:
        run(cfg, run_dir, items)
    except ActorCallError as exc:  # a hung or dead engine, named; the chunks already judged stay in run_dir
        print(f"privacyalign evaluate: {exc}", file=sys.stderr)
        return 1
    print(f"report: {run_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
