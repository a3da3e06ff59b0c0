"""Typed config of the judge pool: the Ray Serve application and the model-backed judge backends.

`JudgeConfig` (judge/config.py) says *what* is judged (prompts, reward mode); these dataclasses say
*where and how fast*: replicas, autoscaling, request batching, the HTTP route, and the options of the
`vllm` and `openai` backends. Only single-field checks live here; `validate_pool_config` does the
cross-field ones and reports every error at once.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from cluster.config_checks import FieldChecks
from cluster.resources import check_custom_resources
from rollout.config import VllmEngineConfig


@dataclass
class VllmBackendConfig(VllmEngineConfig):
    """A vLLM engine inside each judge replica (docs/architecture.md §2.1): the rollout engine's model and
    sizing fields (`model` empty = must be set before the pool starts; the engine seed is overridden by
    each request's JudgeRequest.seed, recorded in provenance), plus the judge's own sampling.
    """

    # Longest prompt + completion, in tokens: a judge prompt carries the scenario, the annotator block and
    # the candidates, so it is longer than an agent's.
    max_model_len: int = 2048
    # GPU memory fraction for weights + KV cache: a judge replica has its GPU to itself.
    gpu_memory_utilization: float = 0.85
    # Tokens the judge may generate per request (reasoning + the final verdict line).
    max_tokens: int = 512
    # Sampling temperature; 0 = greedy, so a verdict is a function of its prompt.
    temperature: float = 0.0

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "judge_pool.vllm")
        self.check_engine_fields(checks)
        checks.bounds("max_tokens", ge=1)
        checks.bounds("temperature", ge=0, hint=" (0 = greedy)")
        checks.done()


@dataclass
class OpenAIBackendConfig:
    """Any OpenAI-compatible `/v1/chat/completions` endpoint: a hosted API or a `vllm serve` process."""

    # Base URL up to and including `/v1`, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1.
    base_url: str = "http://127.0.0.1:8000/v1"
    # Model name sent in each request (and recorded as the verdict's judge model).
    model: str = ""
    # Name of the environment variable holding the API key; empty or unset = no Authorization header.
    api_key_env: str = "OPENAI_API_KEY"
    # Requests in flight at once per replica (hosted APIs rate-limit; local servers saturate).
    max_concurrency: int = 8
    # Per-request timeout in seconds (connect + read).
    timeout_s: float = 120.0
    # Retries after the first attempt on retryable failures only (429, 5xx, timeouts, connection errors).
    max_retries: int = 4
    # First backoff in seconds; doubles per retry.
    backoff_base_s: float = 0.5
    # Cap on one backoff sleep in seconds (a Retry-After header is honoured up to this cap too).
    backoff_cap_s: float = 20.0
    # Tokens the judge may generate per request.
    max_tokens: int = 1024
    # Sampling temperature; 0 = greedy (each request also sends its JudgeRequest.seed).
    temperature: float = 0.0

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "judge_pool.openai")
        if not self.base_url.startswith(("http://", "https://")):
            checks.fail(f"judge_pool.openai.base_url must start with http:// or https://, got {self.base_url!r}")
        checks.bounds("max_concurrency", "max_tokens", ge=1)
        checks.bounds("timeout_s", gt=0, hint=" seconds")
        checks.bounds("max_retries", ge=0, hint=" (0 = no retries)")
        checks.bounds("backoff_base_s", "backoff_cap_s", ge=0, hint=" seconds")
        checks.bounds("temperature", ge=0, hint=" (0 = greedy)")
        checks.done()


@dataclass
class JudgePoolConfig:
    """The autoscaled judge pool on Ray Serve: replicas, batching, cache, HTTP, backend options."""

    # Ray Serve application name (several pools can share one cluster under different names).
    app_name: str = "privacyalign-judge"
    # HTTP route prefix of the application (the judge route is POST <prefix>/v1/judge).
    route_prefix: str = "/judge"
    # Fewest judge replicas kept alive, even when idle (the trainer raises it before a rollout wave).
    min_replicas: int = 1
    # Most judge replicas the autoscaler may start.
    max_replicas: int = 4
    # Replicas started with the application (clamped into [min_replicas, max_replicas]).
    initial_replicas: int = 1
    # Judge calls in flight per replica the autoscaler aims for (a call is a chunk of up to max_batch_size
    # requests); more in flight → scale up. Fractions are fine: 0.5 scales up whenever replicas are busy.
    target_ongoing_requests: float = 2.0
    # Most judge calls (chunks) in flight on one replica; above target_ongoing_requests, or it never scales up.
    max_ongoing_requests: int = 8
    # Seconds the load must stay above target before replicas are added.
    upscale_delay_s: float = 2.0
    # Seconds the load must stay below target before replicas are removed.
    downscale_delay_s: float = 10.0
    # Seconds between load reports from handles and replicas to the autoscaler.
    metrics_interval_s: float = 1.0
    # Seconds of load history the autoscaler averages over.
    look_back_period_s: float = 5.0
    # CPUs reserved per judge replica (fractional is fine: the offline backend barely uses one).
    num_cpus_per_replica: float = 0.25
    # GPUs reserved per judge replica (1 for a vLLM judge on a GPU node).
    num_gpus_per_replica: float = 0.0
    # Custom Ray resources per replica, e.g. {"judge_node": 0.001}, to pin replicas to tagged nodes.
    resources_per_replica: dict[str, float] = field(default_factory=dict)
    # Most requests per judge call and per backend call: the ingress sends a batch in chunks of at most this
    # many (at least one chunk per running replica); a replica merges chunks that arrive together up to it.
    max_batch_size: int = 8
    # Seconds a replica waits to fill a batch before running a partial one (@serve.batch).
    batch_wait_timeout_s: float = 0.01
    # Attempts per request when a replica dies mid-request; after that the verdict is `judge_error`.
    max_request_attempts: int = 3
    # Seconds one judge request may take, queueing and retries included; past it the verdict is `judge_error`
    # (a hung replica or backend must not stall the run). Keep it above the backend's own timeouts.
    request_timeout_s: float = 600.0
    # Seconds between Serve's health checks of a judge replica (a replica whose backend is stuck fails them).
    health_check_period_s: float = 10.0
    # Seconds a health check may take; a replica that does not answer (e.g. a hung process) is replaced.
    health_check_timeout_s: float = 30.0
    # Remember verdicts of identical requests (scenario, candidates, judge model, prompt) and judge them once.
    enable_cache: bool = True
    # Verdicts kept in the cache before the oldest are evicted.
    cache_size: int = 100_000
    # Serve the HTTP route for outside callers (in-cluster trainers use the Python handle and need none).
    enable_http: bool = True
    # Host the HTTP proxy binds; anything but loopback requires a bearer token.
    http_host: str = "127.0.0.1"
    # Port the HTTP proxy binds.
    http_port: int = 8000
    # Environment variable holding the bearer token HTTP callers must send when the host is not loopback.
    auth_token_env: str = "PRIVACYALIGN_JUDGE_TOKEN"
    # HTTP route: largest request body in bytes (larger → 413; inline scenario rows are a few KB each).
    http_max_body_bytes: int = 8 * 1024**2
    # HTTP route: most items (scenarios) per request.
    http_max_items: int = 256
    # HTTP route: most candidate answers per item.
    http_max_candidates: int = 16
    # HTTP route: longest candidate answer in characters (the judge reads at most judge.max_candidate_words).
    http_max_text_chars: int = 32_768
    # Options of the `vllm` backend (ignored by the others).
    vllm: VllmBackendConfig = field(default_factory=VllmBackendConfig)
    # Options of the `openai` backend (ignored by the others).
    openai: OpenAIBackendConfig = field(default_factory=OpenAIBackendConfig)

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "judge_pool")
        if not self.app_name:
            checks.fail("judge_pool.app_name must be a non-empty string, e.g. privacyalign-judge")
        if not self.route_prefix.startswith("/"):
            checks.fail(f"judge_pool.route_prefix must start with '/', got {self.route_prefix!r}")
        checks.bounds("min_replicas", "upscale_delay_s", "downscale_delay_s", "batch_wait_timeout_s", ge=0)
        checks.bounds("num_cpus_per_replica", "num_gpus_per_replica", ge=0)
        checks.bounds("max_replicas", "max_ongoing_requests", "max_batch_size", "max_request_attempts", ge=1)
        checks.bounds("target_ongoing_requests", "metrics_interval_s", "look_back_period_s", gt=0)
        checks.bounds("request_timeout_s", "health_check_period_s", "health_check_timeout_s", gt=0, hint=" seconds")
        checks.run(check_custom_resources, "judge_pool.resources_per_replica", self.resources_per_replica)
        checks.bounds("cache_size", ge=1, hint=" (disable the cache with enable_cache=false)")
        checks.bounds("http_port", ge=1, le=65535)
        checks.bounds("http_max_body_bytes", "http_max_items", "http_max_candidates", "http_max_text_chars", ge=1)
        checks.done()


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IPs: the only binds that may serve HTTP without a token."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_http_exposure(host: str | None, token: str, token_env: str) -> None:
    """Refuse to serve the judge route on a non-loopback address without a bearer token.

    Args:
        host: the address the HTTP proxy really binds (None = the app has no HTTP route). Once Serve
            runs, its proxy keeps the bind it started with, whatever `judge_pool.http_host` says.
        token: the bearer token callers must send ("" = none configured).
        token_env: the environment variable the token is read from (named in the error).

    Raises:
        ValueError: exposed without a token.
    """
    if host is not None and not is_loopback(host) and not token:
        raise ValueError(
            f"refusing to serve the judge on {host} without a bearer token: set the {token_env} environment "
            "variable, or bind judge_pool.http_host=127.0.0.1 (on a cluster where Serve already runs, its proxy's "
            "bind counts, not judge_pool.http_host)"
        )


def validate_pool_config(cfg: JudgePoolConfig) -> list[str]:
    """Cross-field problems of `cfg`, all of them (empty list = fine)."""
    errors = []
    if cfg.min_replicas > cfg.max_replicas:
        errors.append(
            f"judge_pool.min_replicas ({cfg.min_replicas}) must be <= judge_pool.max_replicas ({cfg.max_replicas})"
        )
    if not cfg.min_replicas <= cfg.initial_replicas <= cfg.max_replicas:
        errors.append(
            f"judge_pool.initial_replicas ({cfg.initial_replicas}) must lie in [min_replicas, max_replicas] "
            f"= [{cfg.min_replicas}, {cfg.max_replicas}]"
        )
    if cfg.max_ongoing_requests <= cfg.target_ongoing_requests:
        errors.append(
            f"judge_pool.max_ongoing_requests ({cfg.max_ongoing_requests}) must exceed judge_pool.target_ongoing_requests "
            f"({cfg.target_ongoing_requests}), otherwise replicas never look overloaded and never scale up"
        )
    return errors
