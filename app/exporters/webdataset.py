"""WebDataset tar shards: ``shards/{split}-{n:06d}.tar`` with KEY.jpg, KEY.txt, KEY.json,
and ``shards/sizes.json`` with the number of samples of every shard.

This is the layout open_clip and img2dataset read (members grouped by key, one tar per
shard). open_clip_train looks for ``sizes.json`` in the folder of the first shard it is
given (``open_clip_train.data.get_dataset_size``) and sums the sizes of the shards it
reads, so ``--train-num-samples`` is not needed; it also refuses fewer shards than
dataloader workers, which is why the release builder gives every split at least
``min_shards`` shards when it has that many samples.

Tar headers are fixed (mtime of the release, uid/gid 0, mode 0444) so the same samples
always give byte-identical shards, and a shard is opened with mode "x": a writer never
overwrites a file.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from app.exporters.sample import ReleaseSample

DEFAULT_SAMPLES_PER_SHARD = 1000
# open_clip_train's default --workers: a split with fewer shards than workers fails there.
DEFAULT_MIN_SHARDS = 4
SIZES_NAME = "sizes.json"


def shard_relpath(split: str, index: int) -> str:
    return f"shards/{split}-{index:06d}.tar"


def image_ref(shard: str, key: str) -> str:
    """Where a sample's image lives inside a release: ``shards/train-000000.tar#KEY.jpg``."""
    return f"{shard}#{key}.jpg"


def shard_count(samples: int, *, samples_per_shard: int, min_shards: int) -> int:
    """Shards for a split of ``samples``: at most samples_per_shard each, and at least
    min_shards whenever there are that many samples."""
    if samples <= 0:
        return 0
    needed = -(-samples // samples_per_shard)
    return max(needed, min_shards) if samples >= min_shards else needed


def shard_index(position: int, *, samples: int, shards: int) -> int:
    """The shard of the position-th sample of a split: shards as even as can be (their
    sizes differ by at most one), consecutive samples together."""
    return position * shards // samples


class TarShard:
    """One tar file written with fixed headers."""

    def __init__(self, path: Path, *, mtime: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Kept open across add() calls; close() closes it.
        self._tar = tarfile.open(path, mode="x", format=tarfile.USTAR_FORMAT)  # noqa: SIM115
        self._mtime = mtime

    def add(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = self._mtime
        info.mode = 0o444
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def close(self) -> None:
        self._tar.close()


class WebDatasetWriter:
    def __init__(self, root: Path, *, mtime: float) -> None:
        self._root = root
        self._mtime = int(mtime)
        self._shard: str | None = None
        self._tar: TarShard | None = None
        self._sizes: dict[str, int] = {}
        self._closed = False

    def write(self, sample: ReleaseSample) -> None:
        if sample.shard != self._shard:
            self._close_shard()
            self._tar = TarShard(self._root / sample.shard, mtime=self._mtime)
            self._shard = sample.shard
            self._sizes[Path(sample.shard).name] = 0
        assert self._tar is not None
        metadata = json.dumps(sample.metadata, ensure_ascii=False, sort_keys=True, indent=1)
        self._tar.add(f"{sample.key}.jpg", sample.image)
        self._tar.add(f"{sample.key}.txt", sample.caption.encode("utf-8"))
        self._tar.add(f"{sample.key}.json", metadata.encode("utf-8"))
        self._sizes[Path(sample.shard).name] += 1

    @property
    def sizes(self) -> dict[str, int]:
        """Samples per shard file name, as in sizes.json."""
        return dict(self._sizes)

    def close(self) -> None:
        self._close_shard()
        if self._closed or not self._sizes:
            return
        self._closed = True
        data = json.dumps(dict(sorted(self._sizes.items())), indent=1) + "\n"
        with (self._root / "shards" / SIZES_NAME).open("x", encoding="utf-8") as f:
            f.write(data)

    def _close_shard(self) -> None:
        if self._tar is not None:
            self._tar.close()
        self._tar = None
        self._shard = None
