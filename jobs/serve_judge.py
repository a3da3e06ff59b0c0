"""`privacyalign serve-judge`: run the autoscaling judge pool standalone, shared by several jobs.

Connects to `RAY_ADDRESS` when set (or `cluster.address`), else embeds a local cluster, deploys the
judge application under the stable name `judge_pool.app_name` and blocks until Ctrl-C or SIGTERM. Training and
evaluation jobs on the same cluster attach with `judge.pool=<judge_pool.app_name>` (their judge.* settings must
match; they never rescale or delete it); outside callers POST to its HTTP route (loopback by default; a
non-loopback bind requires the token in `judge_pool.auth_token_env`). Serve keeps the HTTP bind it first
started with, so start serve-judge before jobs that start their own, proxy-less pools. SIGTERM (what
Kubernetes and `ray job stop` send) and Ctrl-C stop it gracefully: Serve drains the requests in flight,
the app is deleted, and the process exits 0.

    privacyalign serve-judge judge.backend=offline judge_pool.max_replicas=4
    PRIVACYALIGN_JUDGE_TOKEN=... privacyalign serve-judge judge_pool.http_host=0.0.0.0 judge_pool.http_port=8000
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field

from cluster.config import ClusterConfig
from jobs.config import with_judge_model
from jobs.config_loading import ConfigError, load_config, to_yaml
from judge.config import JudgeConfig
from judge.serve_config import JudgePoolConfig
from scenarios.config import DataConfig

logger = logging.getLogger(__name__)


@dataclass
class ServeJudgeConfig:
    """Everything `serve-judge` needs; each section goes to its own component."""

    # Where the pool runs: RAY_ADDRESS / an address, or an embedded local cluster.
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # Scenario rows the judge looks up by id (HTTP callers may also send rows inline).
    data: DataConfig = field(default_factory=lambda: DataConfig(split="all"))
    # What is judged: prompts, reward mode, backend name.
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    # Replicas, autoscaling, batching, cache, HTTP and backend options.
    judge_pool: JudgePoolConfig = field(default_factory=JudgePoolConfig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="privacyalign serve-judge",
        description="Run the autoscaling judge pool on Ray Serve until Ctrl-C or SIGTERM (then drain and exit 0).",
        epilog="Trailing key=value pairs override the config, e.g. judge.backend=vllm judge_pool.vllm.model=/path "
        "judge_pool.min_replicas=2 judge_pool.http_host=0.0.0.0. The pool runs as Serve app judge_pool.app_name (default "
        "privacyalign-judge); train and evaluate jobs on the cluster use it with judge.pool=<that name>.",
    )
    parser.add_argument(
        "--config", default=None, help="YAML file (or preset name) with cluster/data/judge/judge_pool sections"
    )
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument(
        "overrides", nargs="*", help="OmegaConf dotlist overrides (cluster.*, data.*, judge.*, judge_pool.*)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(ServeJudgeConfig, args.config, args.overrides)
    except ConfigError as exc:
        print(exc)
        return 2
    if args.print_config:
        print(to_yaml(cfg))
        return 0
    # Heavy imports only once the config is known to be good.
    from cluster.connect import connect
    from judge.pool import JudgePool
    from scenarios.loading import load_data

    # A busy 2-core box answers queue-length probes slower than Serve's 0.1 s default.
    os.environ.setdefault("RAY_SERVE_QUEUE_LENGTH_RESPONSE_DEADLINE_S", "1.0")
    # Data before Ray: a bad row is reported as file:line: field with exit 2, not a traceback.
    try:
        # Judge views, as a job's own pool holds: jobs attach to this pool and no judge sees ground truth.
        rows = {row.id: row.judge_view() for row in load_data(cfg.data).rows}
    except (ValueError, OSError) as exc:
        print(ConfigError([f"data.source: {exc}"]), file=sys.stderr)
        return 2
    connect(cfg.cluster)
    try:
        pool_cfg = with_judge_model(cfg.judge_pool) if cfg.judge.backend == "vllm" else cfg.judge_pool
        pool = JudgePool.start(cfg.judge, pool_cfg, rows)
    except ValueError as exc:
        print(f"serve-judge: {exc}")
        return 2
    where = (
        f"http://{pool.http_bind[0]}:{pool.http_bind[1]}{cfg.judge_pool.route_prefix}" if pool.http_bind else "no HTTP"
    )
    stop = _stop_on_signals()
    logger.info(
        "judge pool %r serving %d rows (%s); Ctrl-C or SIGTERM to stop", cfg.judge_pool.app_name, len(rows), where
    )
    stop.wait()
    logger.info("stopping judge pool %r: draining requests in flight, then deleting it", cfg.judge_pool.app_name)
    pool.shutdown()  # Serve's graceful replica shutdown lets in-flight requests finish first
    logger.info("judge pool %r deleted", cfg.judge_pool.app_name)
    return 0


def _stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, replacing Ray's driver handler (which exits 1 with a stack dump).

    Installed after `ray.init`, which installs that handler.
    """
    stop = threading.Event()

    def _handle(signum: int, _frame: object) -> None:
        logger.info("received %s", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _handle)
    return stop


if __name__ == "__main__":
    raise SystemExit(main())
