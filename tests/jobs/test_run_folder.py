"""The driver's run folder: written in place on a path, staged and mirrored on an object store (moto)."""

from __future__ import annotations

from cluster.storage import RunStorage
from jobs.training.run_folder import RunFolder


def test_a_path_is_written_in_place_owner_only_with_nothing_to_copy(tmp_path) -> None:
    folder = RunFolder(RunStorage.resolve(str(tmp_path / "run")))
    assert folder.local == tmp_path / "run" and not folder.local.exists()  # nothing made before create()
    folder.create()
    assert folder.local.stat().st_mode & 0o777 == 0o700
    folder.push()
    folder.close()
    assert folder.local.is_dir()  # the run itself, not a staging copy: close keeps it


def test_an_object_store_gets_pushed_files_and_a_resume_pulls_them_back(s3_bucket) -> None:
    storage = RunStorage.resolve(f"s3://{s3_bucket}/run-folder")
    folder = RunFolder(storage)
    folder.create()
    assert folder.local.stat().st_mode & 0o777 == 0o700
    (folder.local / "config.yaml").write_text("trainer: {}\n")
    (folder.local / "metrics.jsonl").write_text('{"step": 0}\n')
    (folder.local / "tensorboard").mkdir()
    (folder.local / "tensorboard" / "events.out").write_bytes(b"tb")
    folder.push()
    (folder.local / "metrics.jsonl").write_text('{"step": 0}\n{"step": 1}\n')
    folder.push()
    folder.close()
    assert not folder.local.exists(), "the staging copy is removed once storage holds the files"
    assert storage.read_text("metrics.jsonl") == '{"step": 0}\n{"step": 1}\n'
    assert storage.exists("tensorboard", "events.out")

    resumed = RunFolder(storage)  # a new driver, on any node
    resumed.pull()
    assert sorted(p.name for p in resumed.local.iterdir()) == ["config.yaml", "metrics.jsonl"]
    assert (resumed.local / "metrics.jsonl").read_text() == '{"step": 0}\n{"step": 1}\n'
    resumed.close()
