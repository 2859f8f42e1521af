"""metadata.parquet and metadata.csv: one row per sample, METADATA_COLUMNS in order.

Parquet keeps list columns as lists and reviewed_at as a UTC timestamp; CSV (for people
with a spreadsheet) JSON-encodes list columns and writes reviewed_at in ISO 8601. Both
stream: parquet in row groups, CSV row by row, so memory does not grow with the release.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from app.exporters.sample import LIST_COLUMNS, METADATA_COLUMNS, ReleaseSample, metadata_row

_TYPES: dict[str, pa.DataType] = {
    "med_umls_ids": pa.list_(pa.string()),
    "keywords": pa.list_(pa.string()),
    "magnification": pa.int32(),
    "magnification_confidence": pa.float64(),
    "histology_score": pa.float64(),
    "video_id": pa.int64(),
    "start_s": pa.float64(),
    "end_s": pa.float64(),
    "pair_id": pa.int64(),
    "confidence": pa.float64(),
    "reviewed_at": pa.timestamp("us", tz="UTC"),
    "width": pa.int32(),
    "height": pa.int32(),
}
PARQUET_SCHEMA = pa.schema([(name, _TYPES.get(name, pa.string())) for name in METADATA_COLUMNS])


class ParquetWriter:
    def __init__(self, path: Path, *, row_group_size: int = 10_000) -> None:
        self._file = path.open("xb")  # "x": a writer never overwrites a file
        self._writer = pq.ParquetWriter(self._file, PARQUET_SCHEMA, compression="zstd")
        self._row_group_size = row_group_size
        self._rows: list[dict[str, Any]] = []

    def write(self, sample: ReleaseSample) -> None:
        row = metadata_row(sample)
        if row["reviewed_at"]:
            row["reviewed_at"] = dt.datetime.fromisoformat(row["reviewed_at"])
        self._rows.append(row)
        if len(self._rows) >= self._row_group_size:
            self._flush()

    def close(self) -> None:
        if self._file.closed:
            return
        try:
            if self._rows:
                self._flush()
            self._writer.close()
        finally:
            self._file.close()

    def _flush(self) -> None:
        self._writer.write_table(pa.Table.from_pylist(self._rows, schema=PARQUET_SCHEMA))
        self._rows = []


class CsvWriter:
    def __init__(self, path: Path) -> None:
        # newline="": the csv module quotes embedded newlines itself.
        self._file = path.open("x", encoding="utf-8", newline="")
        self._csv = csv.DictWriter(self._file, fieldnames=METADATA_COLUMNS)
        self._csv.writeheader()

    def write(self, sample: ReleaseSample) -> None:
        row = metadata_row(sample)
        for column in LIST_COLUMNS:
            row[column] = json.dumps(row[column] or [], ensure_ascii=False)
        self._csv.writerow(row)

    def close(self) -> None:
        self._file.close()
