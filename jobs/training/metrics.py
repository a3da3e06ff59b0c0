"""Per-step metrics: TensorBoard scalars, an append-only JSONL file, and a PNG of the curves at the end.

The JSONL file is the source of truth (it survives a kill and is what `--resume` appends to); the
TensorBoard events and the plot are views of it.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from jobs.run_files import append_line, write_atomic

logger = logging.getLogger(__name__)

# Held-out splits evaluated during a run → the prefix of their metric keys (dev curves keep `eval/`).
EVAL_SPLITS = {"dev": "eval", "test": "test"}

# Panels of the end-of-run plot, in order: (title, ((metric key, curve label), ...)). The oracle's dev
# rates are drawn beside the judge's: the judge is the reward source, the oracle the evaluator.
PLOTTED = (
    ("mean reward", (("reward/mean", "reward"),)),
    (
        "dev leak among usable",
        (("eval/judge/leak_among_usable", "judge"), ("eval/oracle/leak_among_usable", "oracle")),
    ),
    (
        "dev clean among usable",
        (("eval/judge/clean_among_usable", "judge"), ("eval/oracle/clean_among_usable", "oracle")),
    ),
    ("dev unusable rate", (("eval/unusable_rate", "unusable"),)),
    ("judge health", (("judge/invalid_fraction", "invalid fraction"), ("judge/canary_accuracy", "canary accuracy"))),
)


class MetricsLogger:
    """Writes one record per step to `metrics.jsonl` and TensorBoard under `run_dir`."""

    def __init__(self, run_dir: Path, *, enable_tensorboard: bool = True):
        self.path = run_dir / "metrics.jsonl"
        self._writer = None
        if enable_tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in metrics.items()}}
        append_line(self.path, json.dumps(record, sort_keys=True))
        if self._writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()

    def truncate_after(self, step: int) -> None:
        """Drop records past `step` (a resumed run re-does them; no duplicate points in the curves).

        A line that does not parse is the record a killed run was writing: it is dropped with a warning.
        """
        if not self.path.exists():
            return
        records = read_metrics(self.path)
        kept = [json.dumps(r, sort_keys=True) + "\n" for r in records if r["step"] <= step]
        write_atomic(self.path, "".join(kept))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Records of `metrics.jsonl`, skipping a torn line (the process was killed while appending it)."""
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            logger.warning("%s:%d: skipping a torn record (the run was killed while writing it)", path, number)
    return records


def plot_metrics(metrics_path: Path, out_png: Path) -> Path | None:
    """Draw the PLOTTED curves over steps; returns the PNG path, or None if nothing was logged."""
    records = read_metrics(metrics_path) if metrics_path.exists() else []
    if not records:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2))
    for ax, (title, curves) in zip(axes, PLOTTED, strict=True):
        for key, label in curves:
            points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o" if len(points) < 30 else None, label=label)
        if len(curves) > 1 and ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return out_png


def _plain(value: Any) -> Any:
    """numpy/torch scalars → Python numbers so the JSONL stays plain JSON."""
    if hasattr(value, "item"):
        return value.item()
    return value
