"""Release exporters: writers that turn frozen release samples into files.

Every writer takes the same two calls, ``write(sample)`` and ``close()`` (the shape of
img2dataset's writer.py), so a release is built by feeding one stream of samples to a list
of writers. ``sample.py`` defines the sample and its metadata row, ``webdataset.py`` the
tar shards, ``tables.py`` metadata.parquet and metadata.csv, ``manifest.py`` the hashes
that make a release verifiable, ``datacard.py`` its README.
"""

from __future__ import annotations

from typing import Protocol

from app.exporters.sample import ReleaseSample


class SampleWriter(Protocol):
    def write(self, sample: ReleaseSample) -> None: ...

    def close(self) -> None: ...
