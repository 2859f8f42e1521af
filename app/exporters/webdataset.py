"""WebDataset tar shards: ``shards/{split}-{n:06d}.tar`` with KEY.jpg, KEY.txt, KEY.json.

This is the layout open_clip and img2dataset read (members grouped by key, one tar per
shard). Tar headers are fixed (mtime of the release, uid/gid 0, mode 0444) so the same
samples always give byte-identical shards, and a shard is opened with mode "x": a writer
never overwrites a file.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from app.exporters.sample import ReleaseSample

DEFAULT_SAMPLES_PER_SHARD = 1000


def shard_relpath(split: str, index: int) -> str:
    return f"shards/{split}-{index:06d}.tar"


def image_ref(shard: str, key: str) -> str:
    """Where a sample's image lives inside a release: ``shards/train-000000.tar#KEY.jpg``."""
    return f"{shard}#{key}.jpg"


class WebDatasetWriter:
    def __init__(self, root: Path, *, mtime: float) -> None:
        self._root = root
        self._mtime = int(mtime)
        self._shard: str | None = None
        self._tar: tarfile.TarFile | None = None

    def write(self, sample: ReleaseSample) -> None:
        if sample.shard != self._shard:
            self._close_shard()
            path = self._root / sample.shard
            path.parent.mkdir(parents=True, exist_ok=True)
            # Kept open across write() calls; close() closes it.
            self._tar = tarfile.open(path, mode="x", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
            self._shard = sample.shard
        assert self._tar is not None
        metadata = json.dumps(sample.metadata, ensure_ascii=False, sort_keys=True, indent=1)
        self._add(f"{sample.key}.jpg", sample.image)
        self._add(f"{sample.key}.txt", sample.caption.encode("utf-8"))
        self._add(f"{sample.key}.json", metadata.encode("utf-8"))

    def close(self) -> None:
        self._close_shard()

    def _add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = self._mtime
        info.mode = 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        assert self._tar is not None
        self._tar.addfile(info, io.BytesIO(data))

    def _close_shard(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._tar = None
        self._shard = None
