"""`privacyalign judge-eval`: how well a judge agrees with the truth, with vs without annotations.

    privacyalign judge-eval                                  # bundled rows, test split, offline judge
    privacyalign judge-eval --data test.jsonl --split all --backend offline --backend openai \\
        judge_pool.openai.model=gpt-5.5

Two comparisons, by what a row carries (docs/architecture.md §1.5, §3):

* **Generated rows** (ground truth): the judge grades oracle-labelled candidates that are not the
  references (scenarios/candidates.py: aliases, other phrasings, partial secrets, harmless
  mentions, dropped and changed facts). The *with annotations* variant shows every annotation: they
  describe the references, so they calibrate the judge without giving away the candidates' labels.
  The default split is `test`, whose private matters no judge was trained on.
* **Hub rows** (human labels only): the judge rates both reference responses (pointwise leak/omit)
  and compares them (pairwise, both orders). *With annotations* shows, for the response being judged,
  only the annotators' flags on the **other** response (jobs/evaluation/human_labels.py).

Both variants of both comparisons report accuracy and Cohen's κ for leaks and omits; the human one
adds Pearson/Spearman of the pairwise score vs the mean annotator preference. Judges only ever get
`row.judge_view()`: the ground truth stays with the oracle.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jobs.config_loading import ConfigError, load_config
from jobs.evaluation.config import EvalJobConfig
from jobs.evaluation.human_labels import (
    SIDES,
    VARIANTS,
    human_labels,
    judge_view,
    labelled_rows,
    mean_preference,
    without_annotations,
)
from jobs.evaluation.metrics import agreement, pearson, spearman
from jobs.evaluation.records import ResultStore
from jobs.evaluation.run_setup import prepare_run
from rollout.prompts import reference_answer
from scenarios.candidates import REFERENCE_KINDS, Candidate, build_candidates

if TYPE_CHECKING:
    from scenarios.schema import ScenarioRow

logger = logging.getLogger(__name__)

# judge-eval's split unless --split or eval.split= says otherwise: generated test facts are unseen by
# any judge trained here. Hub rows have no test split (theirs is the id hash): pass --split dev or all.
DEFAULT_SPLIT = "test"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="privacyalign judge-eval",
        description="Agreement of a judge, with vs without annotations, with the oracle on candidates of "
        "generated rows and with human labels on the references of hub rows.",
        epilog="Trailing key=value pairs override the config, e.g. judge_pool.openai.model=gpt-5.5 judge_pool.vllm.model=/ckpt.",
    )
    parser.add_argument("--data", help="PrivacyAlign .jsonl/.parquet path or hub id (default: bundled scenarios)")
    parser.add_argument(
        "--split",
        choices=("test", "dev", "train", "all"),
        help=f"rows to use (default {DEFAULT_SPLIT}: facts no judge saw; hub rows need dev or all)",
    )
    parser.add_argument("--backend", action="append", help="judge backend to evaluate; repeat to compare several")
    parser.add_argument("--max-items", type=int, help="rows to use, in file order (0 = all)")
    parser.add_argument("--run-dir", help="output directory (default runs/judge-eval-<UTC timestamp>)")
    parser.add_argument(
        "--enable-scenario-text",
        action="store_true",
        help="also write judge outputs into items.jsonl (private text; off by default)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="OmegaConf dotlist overrides (eval.*, judge.*, judge_pool.*, ...)")
    return parser.parse_args(argv)


def resolve_config(args: argparse.Namespace) -> EvalJobConfig:
    cfg = load_config(EvalJobConfig, None, [f"eval.split={DEFAULT_SPLIT}", *args.overrides])
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


def judge_references(judge: Any, rows: list, variant: str) -> list[dict[str, Any]]:
    """One record per (hub row, side) with the judge's and the humans' leak/omit, and the pairwise score on side a."""
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


def judge_candidates(judge: Any, candidates: list[tuple[ScenarioRow, Candidate]], variant: str) -> list[dict]:
    """One record per (generated row, candidate) with the judge's and the oracle's leak/omit.

    *with annotations* keeps the row's every annotation: they grade the references, not the edits (whose
    agreement `summarize_oracle` also reports apart).
    """
    annotated = variant == "with_annotations"
    views = [row if annotated else without_annotations(row) for row, _ in candidates]
    verdicts = judge.pointwise(views, [c.answer for _, c in candidates], use_annotations=annotated)
    return [
        {
            "item_id": f"{row.id}/{candidate.kind}",
            "variant": variant,
            "row_id": row.id,
            "kind": candidate.kind,
            "oracle_leaks": candidate.leaks,
            "oracle_omits": candidate.omits,
            "leaks": verdict.leaks,
            "omits": verdict.omits,
            "status": verdict.status,
            "answer": candidate.answer,
            "judge_outputs": [verdict.text],
        }
        for (row, candidate), verdict in zip(candidates, verdicts, strict=True)
    ]


def _judged(record: dict[str, Any], label: str) -> bool:
    """The judge's flag; a failed verdict counts as 'no' (it flagged nothing)."""
    return bool(record[label]) if record["status"] == "ok" else False


def _oracle_agreement(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        label: agreement([bool(r[f"oracle_{label}"]) for r in records], [_judged(r, label) for r in records])
        for label in ("leaks", "omits")
    }


def summarize_oracle(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement of one (backend, variant) with the oracle: over all candidates, over the edits only (the
    references' labels can be copied from their annotations), per kind, and the verdict statuses."""
    kinds: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        kinds.setdefault(r["kind"], []).append(r)
    edits = [r for r in records if r["kind"] not in REFERENCE_KINDS]
    return {
        "candidates": len(records),
        "statuses": dict(Counter(r["status"] for r in records)),
        **_oracle_agreement(records),
        "edits": {"candidates": len(edits), **_oracle_agreement(edits)},
        "by_kind": {kind: _kind_rates(rs) for kind, rs in kinds.items()},
    }


def _kind_rates(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Positive rates of the oracle and of the judge for one candidate kind: where the judge errs, and which way."""
    n = len(records)
    rates: dict[str, Any] = {"n": n}
    for label in ("leaks", "omits"):
        rates[f"oracle_{label}_rate"] = sum(bool(r[f"oracle_{label}"]) for r in records) / n
        rates[f"judge_{label}_rate"] = sum(_judged(r, label) for r in records) / n
    return rates


def summarize_human(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Agreement of one (backend, variant) with the human labels; a failed verdict counts as 'no'."""
    out: dict[str, Any] = {}
    for label in ("leaks", "omits"):
        human = [bool(r[f"human_{label}"]) for r in records]
        judged = [_judged(r, label) for r in records]
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


def load_judged_rows(cfg: EvalJobConfig) -> list[ScenarioRow]:
    """The rows of `eval.split` with ground truth or human labels; a bad file or row, or none usable, is a ValueError."""
    from scenarios.config import bundled_scenarios_path
    from scenarios.loading import load_rows

    ev = cfg.eval
    source = ev.privacyalign_data or bundled_scenarios_path()
    rows = load_rows(source, split=ev.split, max_rows=ev.max_items or None).rows
    rows = [row for row in rows if row.has_ground_truth or row.annotations]
    if not rows:
        raise ValueError(
            f"{source}: no rows with ground truth or annotations in split {ev.split!r}; judge-eval needs one or "
            "the other (hub rows have no test split: pass --split dev or --split all)"
        )
    return rows


def _oracle_part(rows: list[ScenarioRow]) -> tuple[dict[str, Any], list[tuple[ScenarioRow, Candidate]]]:
    """Summary head and (row, candidate) pairs of the generated rows; a row of another shape yields none."""
    built = {row.id: build_candidates(row) for row in rows}
    pairs = [(row, c) for row in rows for c in built[row.id]]
    head = {
        "rows": len(rows),
        "rows_without_candidates": sum(not cs for cs in built.values()),
        "candidates": len(pairs),
        "kinds": dict(Counter(c.kind for _, c in pairs)),
        "backends": {},
    }
    return head, pairs


def run(cfg: EvalJobConfig, run_dir: Path, rows: list[ScenarioRow]) -> dict[str, Any]:
    """Judge the candidates of generated rows and the references of hub rows (see `load_judged_rows`) with
    every backend; returns the summary (a part is absent when it has no rows)."""
    from jobs.evaluation.judging import make_judge
    from jobs.evaluation.report import write_report

    ev = cfg.eval
    store = ResultStore(run_dir, enable_scenario_text=ev.enable_scenario_text)
    generated = [row for row in rows if row.has_ground_truth]
    hub = labelled_rows([row for row in rows if not row.has_ground_truth])
    summary: dict[str, Any] = {"job": "judge-eval", "rows": len(rows), "split": ev.split}
    if generated:
        summary["oracle"], candidates = _oracle_part(generated)
    if hub:
        summary["human"] = {"rows": len(hub), "responses": 2 * len(hub), "backends": {}}
    for backend in ev.judge_backends:
        job_cfg = dataclasses.replace(cfg, judge=dataclasses.replace(cfg.judge, backend=backend))
        judge = make_judge(job_cfg, rows=rows, job="judge-eval")
        try:
            for variant in VARIANTS:
                start = time.monotonic()
                records = []
                if generated:
                    part = [dict(r, backend=backend) for r in judge_candidates(judge, candidates, variant)]
                    summary["oracle"]["backends"].setdefault(backend, {})[variant] = summarize_oracle(part)
                    records += part
                if hub:
                    part = [dict(r, backend=backend) for r in judge_references(judge, hub, variant)]
                    summary["human"]["backends"].setdefault(backend, {})[variant] = summarize_human(part)
                    records += part
                store.append(records)
                logger.info(
                    "%s / %s: %d items judged in %.1fs", backend, variant, len(records), time.monotonic() - start
                )
        finally:
            judge.close()
    paths = write_report(summary, run_dir)
    logger.info("wrote %s", ", ".join(str(p) for p in paths))
    return summary


def main(argv: list[str] | None = None) -> int:
    prepared = prepare_run(parse_args(argv), resolve_config, "judge-eval", load_judged_rows)
    if isinstance(prepared, int):
        return prepared
    cfg, run_dir, rows = prepared
    if cfg.uses_judge_pool:
        from cluster.connect import connect

        connect(cfg.cluster)
    summary = run(cfg, run_dir, rows)
    for part, truth in (("oracle", "oracle"), ("human", "human labels")):
        for backend, variants in summary.get(part, {}).get("backends", {}).items():
            kappas = {v: (e["leaks"]["kappa"], e["omits"]["kappa"]) for v, e in variants.items()}
            print(f"{backend} vs {truth}: (leak, omit) kappa {kappas}")
    print(f"report: {run_dir / 'report.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
