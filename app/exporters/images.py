"""``images/KEY.jpg``: every image of a release also as a plain file.

For readers that want files, not tars: open_clip's ``--dataset-type csv`` (the
``tsv/{split}.tsv`` tables name these paths, relative to the release folder), a
spreadsheet, an image viewer. The bytes are the ones in the shard, so ``image_sha256``
holds for both.
"""

from __future__ import annotations

from pathlib import Path

from app.exporters.sample import ReleaseSample


class ImageFilesWriter:
    def __init__(self, root: Path) -> None:
        self._root = root
        (root / "images").mkdir(exist_ok=True)

    def write(self, sample: ReleaseSample) -> None:
        with (self._root / sample.image_file).open("xb") as f:
            f.write(sample.image)

    def close(self) -> None:
        pass
