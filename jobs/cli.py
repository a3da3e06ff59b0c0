"""`privacyalign <job> [flags] [key=value ...]`: one sub-command per module in jobs/.

Each job parses its own flags (so `privacyalign train --help` explains every train flag); this file
only dispatches, and imports a job's module only when that job runs (vLLM, DeepSpeed and Ray are
slow to import).
"""

from __future__ import annotations

import importlib
import sys

# sub-command → (module, one-line description)
JOBS: dict[str, tuple[str, str]] = {
    "train": ("jobs.train", "RL-train an agent with the annotation-conditioned judge (main job)"),
    "evaluate": ("jobs.evaluate", "evaluate agents on PrivacyAlign, PrivacyLens and ConfAIde"),
    "judge-eval": ("jobs.judge_eval", "agreement of a judge with human labels, with vs without annotations"),
    "serve-judge": ("jobs.serve_judge", "run the autoscaling judge pool standalone on Ray Serve"),
    "build-model": ("jobs.build_model", "build the tiny offline Qwen2 checkpoint (tokenizer + warm start)"),
    "bench": ("jobs.bench", "side-by-side throughput benchmarks; prints a table"),
}


def _usage() -> str:
    width = max(len(name) for name in JOBS)
    rows = "\n".join(f"  {name:<{width}}  {desc}" for name, (_, desc) in JOBS.items())
    return (
        "usage: privacyalign <job> [flags] [key=value ...]\n\n"
        f"jobs:\n{rows}\n\n"
        "`privacyalign <job> --help` explains that job's flags; trailing key=value pairs override the\n"
        "config (OmegaConf dotlist, e.g. learner.lr=2e-6 rollout.samples_per_prompt=4)."
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in JOBS:
        print(f"privacyalign: unknown job {name!r}; valid jobs: {', '.join(JOBS)}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(JOBS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
