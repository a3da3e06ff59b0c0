"""Scenario rows as a streaming, sharded Ray Dataset, for inputs too large for :func:`load_rows`.

Ray's own JSON/Parquet readers lose line numbers and fail whole blocks on one malformed line, so a
small datasource reads each file record by record (the same readers as :mod:`scenarios.loading`) and
tags every record with its file and 1-based line/row number; validation then runs per record in
``map_batches`` and raises the same :class:`RowValidationError` (file, line, field) as the in-memory
loader. A directory or a list of files becomes one read task per file, so shards read in parallel.

Output columns: ``id``, ``source``, ``line``, ``row`` (the record as JSON text, already validated).
Turn a record back into a typed row with :func:`decode_row`. The skipped-record *count* is only
reported by the in-memory loader; here invalid records are dropped (``enable_skip_invalid``) or fail
the read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray.data
from ray.data.datasource.file_based_datasource import FileBasedDatasource

from scenarios.config import JSONL_SUFFIXES, PARQUET_SUFFIXES, DataConfig
from scenarios.loading import check_split, file_format, in_split, iter_records, parse_record, resolve_source
from scenarios.schema import RowValidationError, ScenarioRow

_EXTENSIONS = [suffix.lstrip(".") for suffix in JSONL_SUFFIXES + PARQUET_SUFFIXES]


class ScenarioRecordDatasource(FileBasedDatasource):
    """Streams (source, line, record text) blocks from JSONL/Parquet files, one read task per file."""

    def __init__(self, paths: str | list[str], *, records_per_block: int = 1024):
        super().__init__(paths, file_extensions=_EXTENSIONS)
        self._records_per_block = records_per_block

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        fmt = file_format(path)
        if fmt == "parquet":
            # Parquet needs random access (footer first); `f` is a forward-only stream.
            with self._filesystem.open_input_file(path) as random_access:
                yield from self._blocks(path, iter_records(random_access, fmt))
        else:
            yield from self._blocks(path, iter_records(f, fmt))

    def _blocks(self, path: str, records: Iterator[tuple[int, bytes | dict[str, Any]]]) -> Iterator[pa.Table]:
        # Records stay raw bytes (JSONL line or JSON-encoded Parquet row): decoding, like every other
        # check, happens in the validator so its error names the line.
        lines: list[int] = []
        raw: list[bytes] = []
        for number, record in records:
            lines.append(number)
            raw.append(json.dumps(record).encode("utf-8") if isinstance(record, dict) else record)
            if len(lines) >= self._records_per_block:
                yield _block(path, lines, raw)
                lines, raw = [], []
        if lines:
            yield _block(path, lines, raw)


def _block(path: str, lines: list[int], raw: list[bytes]) -> pa.Table:
    return pa.table(
        {
            "source": pa.array([path] * len(lines), pa.string()),
            "line": pa.array(lines, pa.int64()),
            "record": pa.array(raw, pa.binary()),
        }
    )


class _ValidateBatch:
    """map_batches callable: validate each record, keep the split, raise or drop invalid ones."""

    def __init__(self, split: str, enable_skip_invalid: bool):
        self.split = split
        self.enable_skip_invalid = enable_skip_invalid

    def __call__(self, batch: pa.Table) -> pa.Table:
        out: dict[str, list[Any]] = {"id": [], "source": [], "line": [], "row": []}
        for item in batch.to_pylist():
            try:
                row = parse_record(item["record"], item["source"], item["line"])
            except RowValidationError:
                if self.enable_skip_invalid:
                    continue
                raise
            if in_split(row, self.split):
                out["id"].append(row.id)
                out["source"].append(item["source"])
                out["line"].append(item["line"])
                out["row"].append(item["record"].decode("utf-8"))
        schema = pa.schema([("id", pa.string()), ("source", pa.string()), ("line", pa.int64()), ("row", pa.string())])
        return pa.Table.from_pydict(out, schema=schema)


def read_scenarios(cfg: DataConfig, *, records_per_block: int = 1024) -> ray.data.Dataset:
    """A lazy, streaming Dataset of validated rows for `cfg` (file, directory of shards, or hub id).

    Nothing is read until the dataset is consumed (iter_batches, streaming_split, materialize). An
    invalid record then fails the consuming call unless `cfg.enable_skip_invalid`: Ray wraps the
    RowValidationError in a RayTaskError whose message keeps its "file:line: field '...'" text.
    """
    check_split(cfg.split)
    source = cfg.resolved_source()
    if not Path(source).is_dir():
        source = str(resolve_source(source, hub_filename=cfg.hub_filename, revision=cfg.revision or None))
    ds = ray.data.read_datasource(ScenarioRecordDatasource(source, records_per_block=records_per_block))
    ds = ds.map_batches(
        _ValidateBatch(cfg.split, cfg.enable_skip_invalid), batch_format="pyarrow", batch_size=records_per_block
    )
    return ds.limit(cfg.max_rows) if cfg.max_rows else ds


def decode_row(record: dict[str, Any]) -> ScenarioRow:
    """One output record of :func:`read_scenarios` back to a typed row (already validated once)."""
    return ScenarioRow.from_dict(json.loads(record["row"]), source=record["source"], line=int(record["line"]))
