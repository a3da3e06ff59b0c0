"""Typed config of `privacyalign evaluate` and `privacyalign judge-eval` (the `eval` section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cluster.config import ClusterConfig
from cluster.config_checks import FieldChecks
from jobs.evaluation.records import BENCHMARKS
from judge.config import JudgeConfig
from judge.serve_config import JudgePoolConfig
from rollout.config import PROMPT_STYLES, RolloutConfig
from scenarios.config import SPLITS


@dataclass
class EvalConfig:
    """What to evaluate and how; CLI flags of both jobs write into these fields."""

    # Benchmarks to run, any of privacyalign, privacylens, confaide.
    benchmarks: list[str] = field(default_factory=lambda: ["privacyalign"])
    # PrivacyAlign rows: .jsonl/.parquet path or hub id; empty = the bundled scenarios.
    privacyalign_data: str = ""
    # PrivacyAlign split: dev (held out, default), test (generated rows), train, or all (e.g. the hub test file).
    split: str = "dev"
    # PrivacyLens cases: path of the upstream main_data.json (or a subset file); required for privacylens.
    privacylens_data: str = ""
    # ConfAIde: folder holding the upstream tier_3.jsonl / tier_4.jsonl; required for confaide.
    confaide_data: str = ""
    # Items per benchmark (rows, cases, stories/meetings) to keep, in file order; 0 = all.
    max_items: int = 0
    # Agents under test: `hf:<checkpoint dir>` or `openai:<base_url>#<model>`; two = side-by-side comparison.
    agents: list[str] = field(default_factory=list)
    # Agent prompt: privacy_enhanced (the tiny-cpu training default) or naive; ConfAIde maps it to its privacy prompt.
    prompt_style: str = "privacy_enhanced"
    # Answers sampled per item (ConfAIde's worst case needs several); each is judged separately.
    agent_samples: int = 1
    # Agent sampling temperature (0 = greedy).
    temperature: float = 0.0
    # Most tokens per agent answer.
    max_tokens: int = 256
    # Times each PrivacyAlign answer is judged; the report gives mean and std of the rates over them.
    judge_samples: int = 1
    # Items per unit of work: answered, judged and appended to items.jsonl together (the resume granularity).
    chunk_items: int = 16
    # Judge through a Ray Serve judge pool of this job's own instead of a backend in the driver (judge.pool= uses a shared one).
    enable_judge_pool: bool = False
    # Write prompts, answers and judge outputs into items.jsonl (private text; off by default).
    enable_scenario_text: bool = False
    # Run directory; empty = runs/<job>-<UTC timestamp>.
    run_dir: str = ""
    # judge-eval: judge backends to compare (registry names, e.g. offline, vllm, openai).
    judge_backends: list[str] = field(default_factory=lambda: ["offline"])

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "eval")
        unknown = [b for b in self.benchmarks if b not in BENCHMARKS]
        if unknown or not self.benchmarks:
            checks.fail(f"eval.benchmarks must be a non-empty subset of {list(BENCHMARKS)}, got {self.benchmarks}")
        checks.one_of("split", SPLITS)
        checks.one_of("prompt_style", PROMPT_STYLES)  # ConfAIde maps privacy_enhanced to its privacy prompt
        if len(self.agents) > 2:
            checks.fail(f"eval.agents takes at most two agents (use --compare A B), got {len(self.agents)}")
        checks.bounds("agent_samples", "judge_samples", "chunk_items", "max_tokens", ge=1)
        checks.bounds("max_items", ge=0, hint=" (0 = all)")
        checks.bounds("temperature", ge=0, hint=" (0 = greedy)")
        if self.agent_samples > 1 and self.temperature == 0:
            checks.fail("eval.agent_samples > 1 needs eval.temperature > 0 (greedy samples are all identical)")
        for agent in self.agents:
            checks.run(parse_agent_spec, agent)
        checks.done()


@dataclass(frozen=True)
class AgentSpec:
    """One agent under test, parsed from `hf:<dir>` or `openai:<base_url>#<model>`."""

    kind: str
    target: str
    model: str = ""

    @property
    def label(self) -> str:
        """Short name for tables: the checkpoint folder name, or the endpoint's model name."""
        if self.kind == "hf":
            return self.target.rstrip("/").rsplit("/", 1)[-1] or self.target
        return self.model


def parse_agent_spec(spec: str) -> AgentSpec:
    """`hf:<checkpoint dir>` or `openai:<base_url>#<model>`; anything else says what is expected."""
    kind, _, rest = spec.partition(":")
    if kind == "hf" and rest:
        return AgentSpec("hf", rest)
    if kind == "openai" and "#" in rest:
        base_url, _, model = rest.rpartition("#")
        if base_url.startswith(("http://", "https://")) and model:
            return AgentSpec("openai", base_url, model)
    raise ValueError(
        f"agent {spec!r}: expected hf:<checkpoint dir> or openai:<base_url>#<model> "
        "(e.g. openai:http://127.0.0.1:8000/v1#Qwen/Qwen3-8B)"
    )


def agent_labels(specs: list[AgentSpec]) -> list[str]:
    """Distinct table labels (a suffix tells two checkpoints with the same folder name apart)."""
    labels = [s.label for s in specs]
    if len(set(labels)) < len(labels):
        labels = [f"{label}#{i + 1}" for i, label in enumerate(labels)]
    return labels


@dataclass
class EvalJobConfig:
    """Everything `evaluate` and `judge-eval` need; each section goes to its own component."""

    # What to evaluate (benchmarks, data, agents, judge samples, output).
    eval: EvalConfig = field(default_factory=EvalConfig)
    # vLLM engines that serve an `hf:` agent (its `model` is set from the agent spec).
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    # What is judged and by which backend (offline by default: deterministic, CPU-only).
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    # Judge pool (used with eval.enable_judge_pool) and the vllm/openai backend options.
    judge_pool: JudgePoolConfig = field(default_factory=JudgePoolConfig)
    # Where the job runs: RAY_ADDRESS / an address, or an embedded local cluster.
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @property
    def uses_judge_pool(self) -> bool:
        """Judge through Ray Serve: a pool of the job's own (eval.enable_judge_pool) or a shared one (judge.pool)."""
        return self.eval.enable_judge_pool or bool(self.judge.pool)
