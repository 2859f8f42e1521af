"""metadata.parquet and metadata.csv: one row per sample, METADATA_COLUMNS in order; and
``tsv/{split}.tsv``, the tables open_clip's ``--dataset-type csv`` reads.

Parquet keeps list columns as lists (``list<string>``, not JSON text) and reviewed_at as a
UTC timestamp; CSV (for people with a spreadsheet) JSON-encodes list columns and writes
reviewed_at in ISO 8601. In the CSV every text value is quoted and numbers are not
(``csv.QUOTE_NONNUMERIC``), the CSV convention for "this is text": ``key`` is a string of
digits whose leading zeros matter. Readers that guess types regardless (pandas) need
``dtype={"key": str}``. All stream: parquet in row groups, CSV row by row, so memory does
not grow with the release.

A TSV has the header ``filepath<TAB>title`` then METADATA_COLUMNS: ``filepath`` is the
image as a plain file relative to the release folder (``images/KEY.jpg``) and ``title``
the caption, open_clip_train's default ``--csv-img-key`` and ``--csv-caption-key``; its
CsvDataset reads it with ``pandas.read_csv(sep="\t")``, which undoes the csv module's
quoting of values that hold a tab, a newline or a quote.
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

TSV_COLUMNS: tuple[str, ...] = ("filepath", "title", *METADATA_COLUMNS)

_TYPES: dict[str, pa.DataType] = {
    "med_umls_ids": pa.list_(pa.string()),
    "keywords": pa.list_(pa.string()),
    "pathology": pa.list_(pa.string()),
    "not_histology": pa.bool_(),
    "single_wsi": pa.bool_(),
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
        self._csv = csv.DictWriter(
            self._file, fieldnames=METADATA_COLUMNS, quoting=csv.QUOTE_NONNUMERIC
        )
        self._csv.writeheader()

    def write(self, sample: ReleaseSample) -> None:
        self._csv.writerow(_text_row(sample))

    def close(self) -> None:
        self._file.close()


class TsvWriter:
    """``tsv/{split}.tsv``, one file per split, opened when the split's first sample comes."""

    def __init__(self, root: Path) -> None:
        self._folder = root / "tsv"
        self._files: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}

    def write(self, sample: ReleaseSample) -> None:
        writer = self._writers.get(sample.split)
        if writer is None:
            self._folder.mkdir(exist_ok=True)
            f = (self._folder / f"{sample.split}.tsv").open("x", encoding="utf-8", newline="")
            self._files[sample.split] = f
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(TSV_COLUMNS)
            self._writers[sample.split] = writer
        row = _text_row(sample)
        writer.writerow([sample.image_file, sample.caption, *row.values()])

    def close(self) -> None:
        for f in self._files.values():
            f.close()


def _text_row(sample: ReleaseSample) -> dict[str, Any]:
    row = metadata_row(sample)
    for column in LIST_COLUMNS:
        row[column] = json.dumps(row[column] or [], ensure_ascii=False)
    return row
