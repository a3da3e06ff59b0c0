"""The Ray Data path on a real local Ray: same rows and same file/line/field errors as the in-memory loader."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scenarios.config import DataConfig, bundled_scenarios_path
from scenarios.loading import load_rows

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "privacyalign" / "example_rows.jsonl"


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    import ray

    # Reuse a cluster another module left running; only shut down the one started here.
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    if started:
        ray.shutdown()


def test_ray_dataset_matches_loader_and_reports_file_line_field(ray_local: None, tmp_path: Path) -> None:
    from scenarios.ray_dataset import decode_row, read_scenarios

    # Bundled file, dev split, small blocks so several blocks stream through validation.
    ds = read_scenarios(DataConfig(split="dev"), records_per_block=16)
    records = ds.take_all()
    assert [decode_row(r) for r in records] == load_rows(bundled_scenarios_path(), split="dev").rows
    assert {r["source"] for r in records} == {str(bundled_scenarios_path())}

    # A directory of shards (JSONL + Parquet) reads every shard; row numbers are per file.
    shards = tmp_path / "shards"
    shards.mkdir()
    raw = [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]
    (shards / "part-0.jsonl").write_text(json.dumps(raw[0]) + "\n\n" + json.dumps(raw[1]) + "\n", encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([dict(r, id=r["id"] + "-pq") for r in raw]), shards / "part-1.parquet")
    got = sorted(
        (r["id"], Path(r["source"]).name, r["line"]) for r in read_scenarios(DataConfig(source=str(shards))).take_all()
    )
    assert got == [
        ("example-0001", "part-0.jsonl", 1),
        ("example-0001-pq", "part-1.parquet", 1),
        ("example-0002", "part-0.jsonl", 3),
        ("example-0002-pq", "part-1.parquet", 2),
    ]

    # A row missing `annotations` on line 2 fails the read with file, line and field ...
    del raw[1]["annotations"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(raw[0]) + "\n" + json.dumps(raw[1]) + "\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"bad\.jsonl:2: field 'annotations': missing required field"):
        read_scenarios(DataConfig(source=str(bad))).take_all()
    # ... or is dropped with enable_skip_invalid.
    kept = read_scenarios(DataConfig(source=str(bad), enable_skip_invalid=True)).take_all()
    assert [r["id"] for r in kept] == ["example-0001"]
