"""Strict loading: errors name file, line and field; skip/count; dev split; Parquet; config."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scenarios.config import DataConfig, bundled_scenarios_path
from scenarios.loading import LoadResult, in_split, is_dev_id, load_data, load_rows
from scenarios.schema import RowValidationError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "privacyalign" / "example_rows.jsonl"


@pytest.fixture()
def raw_rows() -> list[dict]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines()]


def _write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_fixture_rows_load_with_extras(raw_rows: list[dict]) -> None:
    result = load_rows(FIXTURE)
    assert [r.id for r in result.rows] == ["example-0001", "example-0002"]
    assert result.skipped == 0 and result.unknown_final_actions == 0
    assert result.rows[0].extras["pair_family"] == "x_vs_y"


def test_malformed_json_line_names_file_and_line(tmp_path: Path, raw_rows: list[dict]) -> None:
    path = _write_jsonl(tmp_path / "bad.jsonl", [json.dumps(raw_rows[0]), "", '{"id": "x", oops}'])
    with pytest.raises(RowValidationError) as info:
        load_rows(path)
    assert info.value.source == str(path) and info.value.line == 3 and info.value.field == ""
    assert f"{path}:3: field '<row>': malformed JSON" in str(info.value)


def test_missing_annotations_names_file_line_and_field(tmp_path: Path, raw_rows: list[dict]) -> None:
    del raw_rows[1]["annotations"]
    path = _write_jsonl(tmp_path / "rows.jsonl", [json.dumps(r) for r in raw_rows])
    with pytest.raises(RowValidationError, match=r"rows\.jsonl:2: field 'annotations': missing required field"):
        load_rows(path)


def test_mistyped_nested_field_reports_dotted_path(tmp_path: Path, raw_rows: list[dict]) -> None:
    raw_rows[0]["annotations"][1]["response_a_labels"]["leaks"] = "yes"
    path = _write_jsonl(tmp_path / "rows.jsonl", [json.dumps(r) for r in raw_rows])
    with pytest.raises(RowValidationError) as info:
        load_rows(path)
    assert (info.value.line, info.value.field) == (1, "annotations[1].response_a_labels.leaks")
    assert "expected bool, got str" in str(info.value)


def test_unknown_preference_label(tmp_path: Path, raw_rows: list[dict]) -> None:
    raw_rows[1]["annotations"][0]["preference"] = "agent_c"
    path = _write_jsonl(tmp_path / "rows.jsonl", [json.dumps(r) for r in raw_rows])
    with pytest.raises(RowValidationError, match=r":2: field 'annotations\[0\]\.preference': unknown preference"):
        load_rows(path)


def test_skip_invalid_skips_and_counts(tmp_path: Path, raw_rows: list[dict]) -> None:
    no_ann = dict(raw_rows[0], id="no-ann")
    del no_ann["annotations"]
    lines = [json.dumps(raw_rows[0]), "not json", json.dumps(no_ann), json.dumps(raw_rows[1])]
    result = load_rows(_write_jsonl(tmp_path / "rows.jsonl", lines), skip_invalid=True)
    assert isinstance(result, LoadResult)
    assert [r.id for r in result.rows] == ["example-0001", "example-0002"]
    assert result.skipped == 2
    assert [(e.line, e.field) for e in result.errors] == [(2, ""), (3, "annotations")]


def test_duplicate_id_names_both_lines_in_jsonl_and_parquet(tmp_path: Path, raw_rows: list[dict]) -> None:
    rows = [raw_rows[0], raw_rows[1], raw_rows[1]]
    jsonl = _write_jsonl(tmp_path / "dup.jsonl", [json.dumps(r) for r in rows])
    parquet = tmp_path / "dup.parquet"
    pq.write_table(pa.Table.from_pylist(rows), parquet)
    for path in (jsonl, parquet):
        with pytest.raises(RowValidationError) as info:
            load_rows(path)
        assert (info.value.line, info.value.field) == (3, "id")
        assert f"{path}:3: field 'id': duplicate id 'example-0002', first at {path}:2" in str(info.value)
        result = load_rows(path, skip_invalid=True)
        assert [r.id for r in result.rows] == ["example-0001", "example-0002"] and result.skipped == 1
        assert [(e.line, e.field) for e in result.errors] == [(3, "id")]


def test_empty_dataset_and_all_invalid_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="the dataset is empty"):
        load_rows(_write_jsonl(tmp_path / "empty.jsonl", ["", "  "]))
    with pytest.raises(ValueError, match=r"no valid rows in split 'all' \(1 records read, 1 skipped"):
        load_rows(_write_jsonl(tmp_path / "bad.jsonl", ["[1, 2]"]), skip_invalid=True)


def test_dev_split_on_hand_computed_ids() -> None:
    # sha256("row-19")[:8] = 2692b578 = 647148920 ≡ 0 (mod 20); "row-15": 6ce3f6e1 = 1826879201 ≡ 1;
    # "row-0": 3c831eb5 = 1015226037 ≡ 17; "row-1": 0f719b1f = 259103519 ≡ 19.
    assert is_dev_id("row-19") and is_dev_id("row-15")
    assert not is_dev_id("row-0") and not is_dev_id("row-1")
    hub_row = load_rows(FIXTURE).rows[0]
    dev_row = dataclasses.replace(hub_row, id="row-19")
    assert in_split(dev_row, "dev") and not in_split(dev_row, "train") and in_split(dev_row, "all")
    assert not in_split(dev_row, "test")  # hub rows have no test split: the hub's test set is its own file
    assert in_split(dataclasses.replace(dev_row, split="test"), "test")  # a generated row's own split wins
    with pytest.raises(ValueError, match="valid: \\['all', 'train', 'dev', 'test'\\]"):
        in_split(dev_row, "held-out")


def test_split_partitions_bundled_rows() -> None:
    splits = ("all", "train", "dev", "test")
    ids = {s: {r.id for r in load_rows(bundled_scenarios_path(), split=s).rows} for s in splits}
    assert ids["train"] | ids["dev"] | ids["test"] == ids["all"]
    assert not ids["train"] & ids["dev"] and not ids["train"] & ids["test"] and not ids["dev"] & ids["test"]
    assert 0 < len(ids["dev"]) < len(ids["test"]) < len(ids["train"])


def test_parquet_round_trip_and_row_numbers(tmp_path: Path, raw_rows: list[dict]) -> None:
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.Table.from_pylist(raw_rows), path)
    from_jsonl = load_rows(FIXTURE).rows
    assert load_rows(path).rows == from_jsonl
    broken = [raw_rows[0], dict(raw_rows[1], id="")]
    pq.write_table(pa.Table.from_pylist(broken), tmp_path / "broken.parquet")
    with pytest.raises(RowValidationError, match=r"broken\.parquet:2: field 'id': must be a non-empty string"):
        load_rows(tmp_path / "broken.parquet")


def test_unknown_final_action_is_a_warning_count(tmp_path: Path, raw_rows: list[dict]) -> None:
    raw_rows[0]["expected_final_action"] = "DropboxShareFile"
    result = load_rows(_write_jsonl(tmp_path / "rows.jsonl", [json.dumps(r) for r in raw_rows]))
    assert len(result.rows) == 2 and result.unknown_final_actions == 1


def test_missing_local_file_and_bad_suffix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_rows(tmp_path / "nope.jsonl")
    with pytest.raises(FileNotFoundError):
        load_rows("data/missing.jsonl")  # looks like owner/name but has a file suffix: never goes to the hub
    (tmp_path / "rows.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_rows(tmp_path / "rows.csv")


def test_data_config_defaults_to_bundled_and_checks_fields() -> None:
    result = load_data(DataConfig(split="dev", max_rows=5))
    assert len(result.rows) == 5 and all(r.split == "dev" for r in result.rows)
    assert Path(DataConfig().resolved_source()).read_bytes() == bundled_scenarios_path().read_bytes()
    with pytest.raises(ValueError, match="data.split"):
        DataConfig(split="held-out")
    with pytest.raises(ValueError, match="data.max_rows"):
        DataConfig(max_rows=-1)
    with pytest.raises(ValueError, match="data.hub_filename"):
        DataConfig(hub_filename="data/train.csv")


def test_cli_reports_bad_line_and_skip_counts(tmp_path: Path, raw_rows: list[dict], caplog) -> None:
    from scenarios.loading import main

    path = _write_jsonl(tmp_path / "rows.jsonl", [json.dumps(raw_rows[0]), "{broken"])
    assert main([str(path)]) == 1
    assert f"{path}:2: field '<row>': malformed JSON" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        assert main([str(path), "--skip-invalid"]) == 0
    assert "1 valid rows (split=all), 1 skipped" in caplog.text
