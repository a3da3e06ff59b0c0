"""Custom Ray resources that pin a component (rollout engines, learner ranks, judge replicas) to tagged nodes.

A node started with ``ray start --resources='{"learner_node": 1}'`` offers `learner_node`; a component
asking for a sliver of it (``{"learner_node": 0.001}``) is only placed there. Ray rejects bad requests
only when it tries to place them, minutes into a job; the configs call this check when they load.
"""

from __future__ import annotations

from collections.abc import Mapping


def check_custom_resources(setting: str, resources: Mapping[str, float]) -> None:
    """Raise ValueError for non-positive amounts or CPU/GPU used as custom resource names.

    Args:
        setting: the config key, named in the message (e.g. ``learner.resources_per_rank``).
        resources: resource name → amount per actor.
    """
    bad = {name: amount for name, amount in resources.items() if amount <= 0 or name in ("CPU", "GPU")}
    if bad:
        raise ValueError(
            f"{setting} {bad}: custom resources need a positive amount, e.g. {{'learner_node': 0.001}}; "
            "CPUs and GPUs have their own settings"
        )
