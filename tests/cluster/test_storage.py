"""RunStorage on a local path and on a real S3-compatible server (moto on 127.0.0.1), the same operations.

Unit tier: no Ray; the S3 server is a subprocess that starts in about a second (tests/conftest.py).
"""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from cluster.storage import SENTINEL, RunStorage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path) -> RunStorage:
    """A fresh, empty run location: a directory, or a prefix in the test bucket."""
    if request.param == "local":
        return RunStorage.resolve(str(tmp_path / "run"))
    bucket = request.getfixturevalue("s3_bucket")
    return RunStorage.resolve(f"s3://{bucket}/runs/{secrets.token_hex(4)}")


def test_resolve_anchors_relative_paths_at_the_driver_and_keeps_uri_parameters(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = RunStorage.resolve("runs/a")
    assert local.uri == str(tmp_path / "runs" / "a") and local.is_local
    remote = RunStorage.resolve("s3://bucket/runs/a/?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1")
    assert not remote.is_local
    assert remote.child("checkpoints", "step_000001").uri == (
        "s3://bucket/runs/a/checkpoints/step_000001?endpoint_override=127.0.0.1:9&scheme=http&region=us-east-1"
    )
    assert remote.describe("config.yaml") == "s3://bucket/runs/a/config.yaml"  # no parameters in messages
    assert remote.path("config.yaml") == "bucket/runs/a/config.yaml"


def test_resolve_rejects_an_unknown_scheme() -> None:
    with pytest.raises(ValueError, match="not a usable path or URI"):
        RunStorage.resolve("nosuchscheme://bucket/run")


def test_write_read_upload_download_list_delete(storage: RunStorage, tmp_path: Path) -> None:
    assert storage.read_text("config.yaml") is None and storage.list_dirs() == []
    storage.write_text("config.yaml", "a: 1\n")
    storage.write_text("config.yaml", "a: 2\n")  # replaced whole
    assert storage.read_text("config.yaml") == "a: 2\n"

    staged = tmp_path / "staged"
    (staged / "deepspeed" / "state").mkdir(parents=True)
    (staged / "deepspeed" / "state" / "zero_pp_rank_0_optim.pt").write_bytes(b"\0" * 1000)
    (staged / "model.safetensors").write_bytes(b"weights")
    storage.upload(staged, "checkpoints/step_000001")
    other_rank = tmp_path / "other_rank"  # a second rank's files merge into the same checkpoint
    (other_rank / "rng").mkdir(parents=True)
    (other_rank / "rng" / "rank_1.pt").write_bytes(b"rng")
    storage.upload(other_rank, "checkpoints/step_000001")
    storage.upload(staged / "model.safetensors", "single/model.safetensors")
    assert storage.list_dirs() == ["checkpoints", "single"]
    assert storage.list_dirs("checkpoints") == ["step_000001"]
    assert storage.exists("single", "model.safetensors")

    fetched = tmp_path / "fetched"
    storage.download("checkpoints/step_000001", fetched, keep=lambda relative: not relative.endswith(".safetensors"))
    got = sorted(str(p.relative_to(fetched)) for p in fetched.rglob("*") if p.is_file())
    assert got == ["deepspeed/state/zero_pp_rank_0_optim.pt", "rng/rank_1.pt"]
    assert (fetched / "deepspeed" / "state" / "zero_pp_rank_0_optim.pt").read_bytes() == b"\0" * 1000

    storage.delete("checkpoints")
    storage.delete("never-written")  # absent: nothing happens
    assert storage.list_dirs() == ["single"]
    assert storage.read_text("config.yaml") == "a: 2\n"


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    storage = RunStorage.resolve(str(tmp_path))
    storage.write_text("summary.json", "{}")
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_sentinel_proves_the_same_storage_and_names_path_and_process_otherwise(storage: RunStorage) -> None:
    token = storage.write_sentinel()
    assert storage.check_sentinel(token, "learner rank 0 on node n1") is None
    # A node whose disk (or object-store endpoint) at the same name is another place reads nothing there.
    elsewhere = storage.child("elsewhere")
    problem = elsewhere.check_sentinel(token, "learner rank 1 on node n2 (10.0.0.2)")
    assert problem is not None
    assert "learner rank 1 on node n2 (10.0.0.2)" in problem
    assert f"{elsewhere.describe(SENTINEL)}, written by the driver just now, does not exist" in problem
    assert "trainer.storage must be one place every node reaches" in problem
    # An old sentinel of another run is not proof either.
    stale = storage.check_sentinel("0" * 32, "learner rank 0 on node n1")
    assert stale is not None and "another run's token" in stale
