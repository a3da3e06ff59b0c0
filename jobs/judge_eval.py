"""`privacyalign judge-eval`: how well a judge agrees with the human labels, with vs without annotations.

    privacyalign judge-eval                                  # bundled rows, dev split, offline judge
    privacyalign judge-eval --data test.jsonl --split all --backend offline --backend openai \\
        pool.openai.model=gpt-5.5

For every held-out row the judge rates both reference responses (pointwise leak/omit) and compares
them (pairwise, both orders). Two variants (jobs/evaluation/human_labels.py): *with annotations*
shows, for the response being judged, only the annotators' flags on the **other** response (the
pairwise comparison sees flags but no preferences or explanations); *without annotations* shows none.
Agreement with the human majority: accuracy and Cohen's κ for leaks and omits, Pearson/Spearman of
the pairwise score vs the mean annotator preference, and confusion matrices.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.config_loading import ConfigError, load_config
from jobs.evaluation.config import EvalJobConfig
from jobs.evaluation.human_labels import SIDES, VARIANTS, human_labels, judge_view, labelled_rows, mean_preference
from jobs.evaluation.metrics import agreement, pearson, spearman
from jobs.evaluation.records import ResultStore
from jobs.evaluation.run_setup import prepare_run

if TYPE_CHECKING:
    from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="privacyalign judge-eval",
        description="Agreement of a judge with human labels on held-out PrivacyAlign rows, with vs without "
        "the annotations of the other reference response.",
        epilog="Trailing key=value pairs override the config, e.g. pool.openai.model=gpt-5.5 pool.vllm.model=/ckpt.",
    )
    parser.add_argument("--data", help="PrivacyAlign .jsonl/.parquet path or hub id (default: bundled scenarios)")
    parser.add_argument("--split", choices=("dev", "train", "all"), help="rows to use (default dev: held out)")
    parser.add_argument("--backend", action="append", help="judge backend to evaluate; repeat to compare several")
    parser.add_argument("--max-items", type=int, help="rows to use, in file order (0 = all)")
    parser.add_argument("--run-dir", help="output directory (default runs/judge-eval-<UTC timestamp>)")
    parser.add_argument(
        "--enable-scenario-text",
        action="store_true",
        help="also write judge outputs into items.jsonl (private text; off by default)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="OmegaConf dotlist overrides (eval.*, judge.*, pool.*, ...)")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> EvalJobConfig:
    cfg = load_config(EvalJobConfig, None, args.overrides)
    changes: dict[str, Any] = {}
    for flag, name in (
        ("data", "privacyalign_data"),
        ("split", "split"),
        ("max_items", "max_items"),
        ("run_dir", "run_dir"),
        ("backend", "judge_backends"),
    ):
        if getattr(args, flag) is not None:
            changes[name] = getattr(args, flag)
    if args.enable_scenario_text:
        changes["enable_scenario_text"] = True
    try:
        cfg.eval = dataclasses.replace(cfg.eval, **changes)
    except ValueError as exc:  # FieldChecks list every problem of the section as `errors`
        raise ConfigError(getattr(exc, "errors", [str(exc)])) from None
    return cfg


def _dual_order(forward: tuple[float | None, str], backward: tuple[float | None, str]) -> float | None:
    """Score of A vs B from both orders (docs/architecture.md §1.2): the mean of s and −s'.

    One order alone if the other failed.
    """
    scores = [s for s, status in (forward,) if status == "ok" and s is not None]
    scores += [-s for s, status in (backward,) if status == "ok" and s is not None]
    return sum(scores) / len(scores) if scores else None


def judge_rows(judge: Any, rows: list, variant: str) -> list[dict[str, Any]]:
    """One record per (row, side) with the judge's leak/omit verdict, and the row's pairwise score on side a."""
    from rollout.prompts import reference_answer

    annotated = variant == "with_annotations"
    views = [(row, side, judge_view(row, side, variant)) for row in rows for side in SIDES]
    candidates = [reference_answer(r, SIDES.index(s)) for r, s, _ in views]
    verdicts = judge.pointwise([v for _, _, v in views], candidates, use_annotations=annotated)
    pair_views = [
        judge_view(row, "a", variant) if variant == "without_annotations" else _pairwise_view(row) for row in rows
    ]
    answers_a = [reference_answer(row, 0) for row in rows]
    answers_b = [reference_answer(row, 1) for row in rows]
    forward = judge.pairwise(pair_views, answers_a, answers_b, use_annotations=annotated)
    backward = judge.pairwise(pair_views, answers_b, answers_a, use_annotations=annotated)
    records = []
    for (row, side, _), verdict in zip(views, verdicts, strict=True):
        label = human_labels(row)[side]
        records.append(
            {
                "item_id": f"{row.id}/{side}",
                "variant": variant,
                "row_id": row.id,
                "side": side,
                "human_leaks": label.leaks,
                "human_omits": label.omits,
                "leaks": verdict.leaks,
                "omits": verdict.omits,
                "status": verdict.status,
                "judge_outputs": [verdict.text],
            }
        )
    for k, row in enumerate(rows):
        records[2 * k]["pairwise_score"] = _dual_order(forward[k], backward[k])
        records[2 * k]["human_preference"] = mean_preference(row)
    return records


def _pairwise_view(row):
    """Pairwise with annotations: every flag on both responses, but no preference or explanation (the
    quantity being scored)."""
    return dataclasses.replace(
        row, annotations=tuple(dataclasses.replace(a, preference="unsure", explanation="") for a in row.annotations)
    )


def summarize_variant(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement of one (backend, variant); a failed verdict counts as 'no' (it flagged nothing)."""
    out: dict[str, Any] = {}
    for label in ("leaks", "omits"):
        human = [bool(r[f"human_{label}"]) for r in records]
        judged = [bool(r[label]) if r["status"] == "ok" else False for r in records]
        out[label] = agreement(human, judged)
    pairs = [
        (r["human_preference"], r["pairwise_score"])
        for r in records
        if r.get("human_preference") is not None and r.get("pairwise_score") is not None
    ]
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    out["preference"] = {"n": len(pairs), "pearson": pearson(xs, ys), "spearman": spearman(xs, ys)}
    out["judge_failures"] = sum(r["status"] != "ok" for r in records)
    return out


def load_labelled_rows(cfg: EvalJobConfig) -> list[ScenarioRow]:
    """The rows of `eval.split` that carry human labels; a bad file, a bad row or no labels is a ValueError."""
    from scenarios.config import bundled_scenarios_path
    from scenarios.loading import load_rows

    ev = cfg.eval
    source = ev.privacyalign_data or bundled_scenarios_path()
    rows = labelled_rows(load_rows(source, split=ev.split, max_rows=ev.max_items or None).rows)
    if not rows:
        raise ValueError(f"{source}: no rows with annotations in split {ev.split!r}; judge-eval needs human labels")
    return rows


def run(cfg: EvalJobConfig, run_dir: Path, rows: list[ScenarioRow]) -> dict[str, Any]:
    """Judge the reference responses of `rows` (see `load_labelled_rows`) with every backend; returns the summary."""
    from jobs.evaluation.judging import make_judge
    from jobs.evaluation.report import write_report

    ev = cfg.eval
    store = ResultStore(run_dir, enable_scenario_text=ev.enable_scenario_text)
    summary: dict[str, Any] = {
        "job": "judge-eval",
        "rows": len(rows),
        "split": ev.split,
        "responses": 2 * len(rows),
        "backends": {},
    }
    for backend in ev.judge_backends:
        job_cfg = dataclasses.replace(cfg, judge=dataclasses.replace(cfg.judge, backend=backend))
        judge = make_judge(job_cfg, rows=rows)
        try:
            summary["backends"][backend] = {}
            for variant in VARIANTS:
                start = time.monotonic()
                records = [dict(r, backend=backend) for r in judge_rows(judge, rows, variant)]
                store.append(records)
                summary["backends"][backend][variant] = summarize_variant(records)
                logger.info(
                    "%s / %s: %d responses judged in %.1fs", backend, variant, len(records), time.monotonic() - start
                )
        finally:
            judge.close()
    paths = write_report(summary, run_dir)
    logger.info("wrote %s", ", ".join(str(p) for p in paths))
    return summary


def main(argv: list[str] | None = None) -> int:
    prepared = prepare_run(parse_args(argv), resolve_config, "judge-eval", load_labelled_rows)
    if isinstance(prepared, int):
        return prepared
    cfg, run_dir, rows = prepared
    if cfg.eval.enable_judge_pool:
        from cluster.connect import connect

        connect(cfg.cluster)
    summary = run(cfg, run_dir, rows)
    for backend, variants in summary["backends"].items():
        kappas = {v: e["leaks"]["kappa"] for v, e in variants.items()}
        print(f"{backend}: leak kappa {kappas}")
    print(f"report: {run_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
