"""The shipped cluster manifests request exactly the GPUs their preset's placement needs."""

from pathlib import Path

import pytest
import yaml

from jobs.config import load_train_config, required_gpus

MANIFESTS = Path(__file__).resolve().parents[2] / "cluster" / "manifests"


def _kuberay_gpus(doc: dict) -> float:
    spec = doc["spec"]["rayClusterSpec"]
    head = float(spec["headGroupSpec"]["rayStartParams"].get("num-gpus", 0))
    workers = sum(
        group["replicas"] * float(group["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
        for group in spec["workerGroupSpecs"]
    )
    for group in spec["workerGroupSpecs"]:  # what Ray advertises must equal what Kubernetes grants
        limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert float(group["rayStartParams"]["num-gpus"]) == float(limits["nvidia.com/gpu"])
    return head + workers


def _ray_up_gpus(doc: dict) -> float:
    return sum(
        node["min_workers"] * float(node["resources"].get("GPU", 0)) for node in doc["available_node_types"].values()
    )


@pytest.mark.parametrize(
    ("manifest", "preset", "count_gpus"),
    [
        ("kuberay-rayjob-qwen3-4b-1node.yaml", "qwen3-4b-1node", _kuberay_gpus),
        ("ray-up-qwen3-8b-2node.yaml", "qwen3-8b-2node", _ray_up_gpus),
    ],
)
def test_manifest_gpus_match_preset_placement(manifest, preset, count_gpus):
    doc = yaml.safe_load((MANIFESTS / manifest).read_text())
    cfg = load_train_config(preset, [])
    assert count_gpus(doc) == sum(required_gpus(cfg).values()) == cfg.cluster.num_gpus


def test_rayjob_entrypoint_runs_its_preset_with_token_auth():
    doc = yaml.safe_load((MANIFESTS / "kuberay-rayjob-qwen3-4b-1node.yaml").read_text())
    assert doc["spec"]["entrypoint"].split() == ["privacyalign", "train", "--preset", "qwen3-4b-1node"]
    assert "RAY_AUTH_MODE: token" in doc["spec"]["runtimeEnvYAML"]
