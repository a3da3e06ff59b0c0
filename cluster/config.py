"""Where the job runs: an embedded local Ray cluster (the laptop default) or an existing one."""

from __future__ import annotations

from dataclasses import dataclass

from cluster.config_checks import FieldChecks


@dataclass
class ClusterConfig:
    """How to get a Ray cluster. `address` empty means: `RAY_ADDRESS` if set, else start a local one."""

    # Ray address to connect to ("auto", "ray://host:10001", "host:6379"); empty = RAY_ADDRESS or local.
    address: str = ""
    # CPUs for an embedded local cluster (ignored when connecting); 0 = all of this machine's cores.
    num_cpus: int = 0
    # GPUs for an embedded local cluster (ignored when connecting); -1 = autodetect.
    num_gpus: int = -1
    # Object store size for an embedded local cluster, in GiB; 0 = Ray's default.
    object_store_gib: float = 0.0
    # Ray namespace, so a standalone judge pool and training jobs can find each other by name.
    namespace: str = "privacyalign"
    # Start the Ray dashboard with an embedded cluster (costs memory and a port).
    enable_dashboard: bool = False

    def __post_init__(self) -> None:
        checks = FieldChecks(self, "cluster")
        checks.bounds("num_cpus", ge=0, hint=" (0 = all cores)")
        checks.bounds("object_store_gib", ge=0, hint=" (0 = Ray's default)")
        checks.done()
