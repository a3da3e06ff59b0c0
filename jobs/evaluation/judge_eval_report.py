"""The `privacyalign judge-eval` report: agreement tables per truth source, per-kind rates, confusion matrices.

Two truth sources (jobs/judge_eval.py): the oracle on candidates of generated rows, and the human
majority on the references of hub rows. A summary holds either or both under `oracle` / `human`;
each renders as its own section, so a number is never read against the wrong truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobs.evaluation.report import fmt, markdown_table

# Summary part → (section title, what the rows of the confusion matrices are).
PARTS = {
    "oracle": ("Agreement with the oracle (generated rows)", "oracle"),
    "human": ("Agreement with human labels (hub rows)", "human"),
}
_STATUS_ORDER = ("ok", "parse_error", "empty_response", "judge_error")


def _panels(summary: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(part, backend, variant, entry) of every agreement entry in the summary."""
    return [
        (part, backend, variant, entry)
        for part in PARTS
        for backend, variants in summary.get(part, {}).get("backends", {}).items()
        for variant, entry in variants.items()
    ]


def _statuses(counts: dict[str, int]) -> str:
    ordered = sorted(counts, key=lambda s: (_STATUS_ORDER.index(s) if s in _STATUS_ORDER else len(_STATUS_ORDER), s))
    return ", ".join(f"{s} {counts[s]}" for s in ordered)


def _agreement_cells(entry: dict[str, Any]) -> list[str]:
    """Leak accuracy and κ, then omit accuracy and κ."""
    return [
        fmt(entry[label][key], percent=key == "accuracy")
        for label in ("leaks", "omits")
        for key in ("accuracy", "kappa")
    ]


def _oracle_section(part: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k} {n}" for k, n in part["kinds"].items())
    head = (
        f"Rows: {part['rows']} ({part['rows_without_candidates']} not of the generator's shape, skipped); "
        f"candidates: {part['candidates']} ({kinds}): the two references and edits of them. Labels come "
        "from the oracle, which knows every alias of the private matter and the relevant facts, never from "
        "the annotations. *with annotations* shows the judge every annotation; *without* shows none. Scope "
        "*all* includes the references, whose labels an annotated judge can copy from their annotations; "
        "*edits* leaves them out.\n\n"
    )
    rows = [
        [b, v, scope, str(e["candidates"]), *_agreement_cells(e), _statuses(statuses)]
        for b, variants in part["backends"].items()
        for v, entry in variants.items()
        for scope, e, statuses in (("all", entry, entry["statuses"]), ("edits", entry["edits"], {}))
    ]
    headers = ["backend", "variant", "scope", "n", "leak acc.", "leak κ", "omit acc.", "omit κ", "statuses"]
    table = markdown_table(headers, rows)
    by_kind = [
        [b, v, kind, str(k["n"])]
        + [fmt(k[f"{who}_{label}_rate"]) for label in ("leaks", "omits") for who in ("oracle", "judge")]
        for b, variants in part["backends"].items()
        for v, e in variants.items()
        for kind, k in e["by_kind"].items()
    ]
    kind_table = markdown_table(
        ["backend", "variant", "kind", "n", "oracle leak", "judge leak", "oracle omit", "judge omit"], by_kind
    )
    return head + table + "\n### Positive rates per candidate kind\n\n" + kind_table


def _human_section(part: dict[str, Any]) -> str:
    head = (
        f"Rows: {part['rows']}, responses judged: {part['responses']}. Human label = strict majority of "
        "annotators per response; preference = mean annotator preference (−2 = A … +2 = B). *with "
        "annotations* shows the judge the annotators' flags on the **other** reference response only "
        "(never the labels of the response it judges).\n\n"
    )
    rows = [
        [b, v, *_agreement_cells(e)]
        + [fmt(e["preference"]["pearson"], percent=False), fmt(e["preference"]["spearman"], percent=False)]
        + [str(e.get("judge_failures", 0))]
        for b, variants in part["backends"].items()
        for v, e in variants.items()
    ]
    headers = ["backend", "variant", "leak acc.", "leak κ", "omit acc.", "omit κ", "pref. Pearson", "pref. Spearman"]
    return head + markdown_table(headers + ["judge failures"], rows)


def render_judge_eval_markdown(summary: dict[str, Any]) -> str:
    """The whole report from the summary alone (never from per-item text)."""
    parts = [f"# Judge reliability report\n\nRows: {summary['rows']} ({summary['split']} split).\n"]
    for key, render in (("oracle", _oracle_section), ("human", _human_section)):
        if key in summary:
            parts.append(f"## {PARTS[key][0]}\n\n" + render(summary[key]))
    confusion = ["## Confusion matrices (rows = truth, columns = judge)\n"]
    for part, backend, variant, e in _panels(summary):
        for label in ("leaks", "omits"):
            (tn, fp), (fn, tp) = e[label]["confusion"]
            confusion.append(
                f"**{part} / {backend} / {variant} / {label}**\n\n"
                + markdown_table(
                    [f"{PARTS[part][1]} \\ judge", "no", "yes"], [["no", str(tn), str(fp)], ["yes", str(fn), str(tp)]]
                )
            )
    parts.append("\n".join(confusion))
    charts = summary.get("charts", [])
    if charts:
        parts.append("## Charts\n\n" + "".join(f"![{Path(c).stem}]({c})\n\n" for c in charts))
    return "\n".join(parts)


def plot_confusions(summary: dict[str, Any], run_dir: Path) -> list[str]:
    """`confusion.png`: one heat map per (truth, backend, variant) row and (leaks, omits) column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(summary)
    if not panels:
        return []
    fig, axes = plt.subplots(len(panels), 2, figsize=(6.4, 2.8 * len(panels)), squeeze=False)
    for row, (part, backend, variant, entry) in enumerate(panels):
        for col, label in enumerate(("leaks", "omits")):
            ax = axes[row][col]
            matrix = entry[label]["confusion"]
            ax.imshow(matrix, cmap="Blues", vmin=0)
            top = max(max(r) for r in matrix) or 1
            for i in range(2):
                for j in range(2):
                    color = "white" if matrix[i][j] > top / 2 else "black"
                    ax.text(j, i, str(matrix[i][j]), ha="center", va="center", color=color)
            ax.set_xticks([0, 1], ["no", "yes"])
            ax.set_yticks([0, 1], ["no", "yes"])
            ax.set_xlabel("judge")
            ax.set_ylabel(PARTS[part][1])
            kappa = entry[label]["kappa"]
            ax.set_title(f"{part}: {backend}/{variant}\n{label} κ={fmt(kappa, percent=False)}", fontsize=9)
    fig.tight_layout()
    fig.savefig(run_dir / "confusion.png", dpi=110)
    plt.close(fig)
    return ["confusion.png"]
