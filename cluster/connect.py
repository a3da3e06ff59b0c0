"""The one place that calls `ray.init`: connect to a running cluster or start an embedded one.

Under `ray job submit` the job supervisor sets `RAY_ADDRESS`, so the same entry point joins the
submitting cluster instead of starting a private one; on a laptop nothing is set and a local cluster
is embedded in the driver process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import ray

from cluster.config import ClusterConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterInfo:
    """What `connect` found: whether we joined an existing cluster, and its total resources."""

    address: str
    embedded: bool
    resources: dict[str, float]


def connect(cfg: ClusterConfig) -> ClusterInfo:
    """Connect to `cfg.address` / `RAY_ADDRESS`, or start a local cluster; idempotent within a process."""
    address = cfg.address or os.environ.get("RAY_ADDRESS", "")
    if not ray.is_initialized():
        if address:
            ray.init(address=address, namespace=cfg.namespace, log_to_driver=True)
        else:
            # "local" always starts a new cluster: a bare ray.init() would join whatever `ray start`
            # cluster this machine runs (/tmp/ray/ray_current_cluster), silently sharing its resources.
            kwargs: dict = {"address": "local", "namespace": cfg.namespace, "include_dashboard": cfg.enable_dashboard}
            if cfg.num_cpus:
                kwargs["num_cpus"] = cfg.num_cpus
            if cfg.num_gpus >= 0:
                kwargs["num_gpus"] = cfg.num_gpus
            if cfg.object_store_gib:
                kwargs["object_store_memory"] = int(cfg.object_store_gib * 1024**3)
            ray.init(**kwargs)
    info = ClusterInfo(
        address=ray.get_runtime_context().gcs_address,
        embedded=not address,
        resources=dict(ray.cluster_resources()),
    )
    logger.info(
        "Ray cluster %s (%s): %s",
        info.address,
        "embedded" if info.embedded else "connected",
        {k: v for k, v in info.resources.items() if not k.startswith("node:")},
    )
    return info


def disconnect() -> None:
    """Shut down Ray if this process started or joined it."""
    if ray.is_initialized():
        ray.shutdown()
