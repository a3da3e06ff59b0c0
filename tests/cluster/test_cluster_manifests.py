"""The shipped cluster manifests request exactly the GPUs their preset's placement needs, and keep outputs.

Outputs outlive the cluster only in trainer.storage on a volume every pod mounts or in an object store.
"""

import shlex
from pathlib import Path

import pytest
import yaml

from jobs.config import load_train_config, required_gpus

MANIFESTS = Path(__file__).resolve().parents[2] / "cluster" / "manifests"


def _load(manifest: str) -> dict:
    """The manifest's main document: the RayJob of a KubeRay file (which also holds its PVC), or the whole file."""
    docs = list(yaml.safe_load_all((MANIFESTS / manifest).read_text()))
    return next((d for d in docs if d.get("kind") == "RayJob"), docs[0])


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
    doc = _load(manifest)
    cfg = load_train_config(preset, [])
    assert count_gpus(doc) == sum(required_gpus(cfg).values()) == cfg.cluster.num_gpus


def test_rayjob_entrypoint_runs_its_preset_with_token_auth():
    doc = _load("kuberay-rayjob-qwen3-4b-1node.yaml")
    assert doc["spec"]["entrypoint"].split()[:4] == ["privacyalign", "train", "--preset", "qwen3-4b-1node"]
    assert "RAY_AUTH_MODE: token" in doc["spec"]["runtimeEnvYAML"]


def _storage_override(command: str) -> str:
    values = [arg.split("=", 1)[1] for arg in shlex.split(command) if arg.startswith("trainer.storage=")]
    assert len(values) == 1, f"{command!r} must set trainer.storage once"
    return values[0]


def test_rayjob_stores_outputs_on_a_volume_every_pod_mounts_so_shutdown_loses_nothing():
    docs = list(yaml.safe_load_all((MANIFESTS / "kuberay-rayjob-qwen3-4b-1node.yaml").read_text()))
    claims = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PersistentVolumeClaim"}
    job = _load("kuberay-rayjob-qwen3-4b-1node.yaml")
    storage = _storage_override(job["spec"]["entrypoint"])
    spec = job["spec"]["rayClusterSpec"]
    pods = [spec["headGroupSpec"]["template"]["spec"]] + [g["template"]["spec"] for g in spec["workerGroupSpecs"]]
    for pod in pods:  # the driver (head) and the learner ranks (workers) must see the same files
        volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
        container = pod["containers"][0]
        mounts = [m for m in container["volumeMounts"] if storage.startswith(m["mountPath"].rstrip("/") + "/")]
        assert len(mounts) == 1, f"{container['name']} does not mount the volume holding {storage}"
        claim = claims[volumes[mounts[0]["name"]]]
        assert "ReadWriteMany" in claim["spec"]["accessModes"]
        # The object-store variant needs only the entrypoint changed: credentials come from this secret.
        assert {"secretRef": {"name": "privacyalign-s3", "optional": True}} in container["envFrom"]
    assert job["spec"]["shutdownAfterJobFinishes"] is True


def test_ray_up_cluster_stores_outputs_in_an_object_store_every_node_may_reach():
    text = (MANIFESTS / "ray-up-qwen3-8b-2node.yaml").read_text()
    submit = [line.lstrip("# ") for line in text.splitlines() if "ray job submit" in line]
    assert len(submit) == 1
    assert shlex.split(submit[0])[-4:-1] == ["train", "--preset", "qwen3-8b-2node"]
    assert _storage_override(submit[0]).startswith("s3://")
    profiles = {
        name: node["node_config"].get("IamInstanceProfile")
        for name, node in _load("ray-up-qwen3-8b-2node.yaml")["available_node_types"].items()
    }
    assert set(profiles) == {"head", "gpu_worker"}
    assert all(p == {"Name": "privacyalign-runs"} for p in profiles.values()), profiles
