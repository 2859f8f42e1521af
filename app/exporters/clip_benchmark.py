"""The evaluation splits in CLIP_benchmark's WebDataset layout.

CLIP_benchmark (``clip_benchmark/datasets/builder.py``, ``build_wds_dataset``, v1.6.2)
reads ``DATA_DIR/{split}/nshards.txt`` (mandatory), then ``DATA_DIR/{split}/{0..N-1}.tar``;
``DATA_DIR/dataset_type.txt`` says ``retrieval`` for image-text retrieval (without it the
type is classification). A retrieval sample is an image (``jpg``) and ``txt`` whose lines
are the image's captions (``str.splitlines``), so a caption is written on one line. A
classification sample is an image and ``cls`` (the class index as text, decoded to int by
webdataset); ``DATA_DIR/classnames.txt`` (one class a line, in index order) and
``DATA_DIR/zeroshot_classification_templates.txt`` (one template a line, ``{c}`` for the
class name) are shared by the splits. So a release holds:

    clip_benchmark/dataset_type.txt                     retrieval
    clip_benchmark/{val,test}/nshards.txt, 0.tar ...    KEY.jpg + KEY.txt
    clip_benchmark_classification/classnames.txt         when a split has >= 2 classes
    clip_benchmark_classification/zeroshot_classification_templates.txt
    clip_benchmark_classification/{split}/nshards.txt, 0.tar ...   KEY.jpg + KEY.cls

Evaluate with ``clip_benchmark eval --dataset wds/quilt_curator --dataset_root
REL/clip_benchmark --split test --task zeroshot_retrieval`` (``--task`` must be given:
``auto`` picks classification for every wds dataset) or ``--dataset_root
REL/clip_benchmark_classification`` for zero-shot classification.

Classes are the reviewers' sub-pathology tags (Quilt's categories); pairs tagged
not-histology, untagged or tagged "other" are left out of classification.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from app.exporters.sample import EVAL_SPLITS, ReleaseSample, one_line
from app.exporters.webdataset import TarShard

RETRIEVAL_DIR = "clip_benchmark"
CLASSIFICATION_DIR = "clip_benchmark_classification"
# Prompts in the style of Quilt-1M's zero-shot evaluation (QuiltNet).
TEMPLATES: tuple[str, ...] = (
    "a histopathology image of {c}",
    "histopathology image of {c}",
    "a histopathology slide showing {c}",
    "pathology tissue showing {c}",
    "presence of {c} tissue on image",
    "an H&E image of {c}",
)
CLASS_NAMES: dict[str, str] = {
    "head_and_neck": "head and neck",
    "soft_tissue_bone": "soft tissue and bone",
}
UNCLASSIFIED = frozenset({"", "other"})


def class_tag(metadata: dict[str, Any]) -> str | None:
    """The sub-pathology tag a sample is classified under, if any."""
    tag = metadata.get("subpathology") or ""
    if metadata.get("not_histology") or tag in UNCLASSIFIED:
        return None
    return tag


def class_name(tag: str) -> str:
    return CLASS_NAMES.get(tag, tag.replace("_", " "))


def classification_plan(
    tags_by_split: dict[str, Iterable[str | None]], *, order: Iterable[str]
) -> tuple[list[str], set[str]]:
    """(class tags in index order, splits that get a classification set): a split gets one
    when its samples carry at least two classes; the classes are those of these splits."""
    splits = set()
    classes: set[str] = set()
    for split in EVAL_SPLITS:
        present = {t for t in tags_by_split.get(split, ()) if t}
        if len(present) >= 2:
            splits.add(split)
            classes |= present
    ordered = [t for t in order if t in classes] + sorted(classes - set(order))
    return ordered, splits


class _SplitShards:
    def __init__(self, folder: Path, *, mtime: int, samples_per_shard: int) -> None:
        self.folder = folder
        self._mtime = mtime
        self._per_shard = samples_per_shard
        self._tar: TarShard | None = None
        self._in_shard = 0
        self.shards = 0
        self.samples = 0

    def add(self, members: list[tuple[str, bytes]]) -> None:
        if self._tar is None or self._in_shard >= self._per_shard:
            if self._tar is not None:
                self._tar.close()
            self._tar = TarShard(self.folder / f"{self.shards}.tar", mtime=self._mtime)
            self.shards += 1
            self._in_shard = 0
        for name, data in members:
            self._tar.add(name, data)
        self._in_shard += 1
        self.samples += 1

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()
            self._tar = None
        if self.shards:
            (self.folder / "nshards.txt").write_text(f"{self.shards}\n", encoding="utf-8")


class ClipBenchmarkWriter:
    def __init__(
        self,
        root: Path,
        *,
        mtime: float,
        samples_per_shard: int,
        classes: list[str],
        classification_splits: set[str],
    ) -> None:
        self._root = root
        self._mtime = int(mtime)
        self._per_shard = samples_per_shard
        self._class_index = {tag: i for i, tag in enumerate(classes)}
        self._classes = classes
        self._classification_splits = classification_splits
        self._retrieval: dict[str, _SplitShards] = {}
        self._classification: dict[str, _SplitShards] = {}
        self._closed = False

    def write(self, sample: ReleaseSample) -> None:
        if sample.split not in EVAL_SPLITS:
            return
        image = (f"{sample.key}.jpg", sample.image)
        caption = one_line(sample.caption).encode("utf-8")
        self._shards(self._retrieval, RETRIEVAL_DIR, sample.split).add(
            [image, (f"{sample.key}.txt", caption)]
        )
        if sample.split in self._classification_splits:
            tag = class_tag(sample.metadata)
            if tag is not None and tag in self._class_index:
                label = str(self._class_index[tag]).encode()
                self._shards(self._classification, CLASSIFICATION_DIR, sample.split).add(
                    [image, (f"{sample.key}.cls", label)]
                )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for shards in (*self._retrieval.values(), *self._classification.values()):
            shards.close()
        if self._retrieval:
            (self._root / RETRIEVAL_DIR / "dataset_type.txt").write_text(
                "retrieval\n", encoding="utf-8"
            )
        if self._classification:
            folder = self._root / CLASSIFICATION_DIR
            names = "".join(f"{class_name(tag)}\n" for tag in self._classes)
            (folder / "classnames.txt").write_text(names, encoding="utf-8")
            (folder / "zeroshot_classification_templates.txt").write_text(
                "".join(f"{t}\n" for t in TEMPLATES), encoding="utf-8"
            )

    def counts(self) -> dict[str, dict[str, int]]:
        """{"retrieval": {split: samples}, "classification": {split: samples}}."""
        return {
            "retrieval": {s: sh.samples for s, sh in self._retrieval.items()},
            "classification": {s: sh.samples for s, sh in self._classification.items()},
        }

    def _shards(self, table: dict[str, _SplitShards], base: str, split: str) -> _SplitShards:
        shards = table.get(split)
        if shards is None:
            shards = _SplitShards(
                self._root / base / split, mtime=self._mtime, samples_per_shard=self._per_shard
            )
            table[split] = shards
        return shards
