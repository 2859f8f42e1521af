"""The unit every release writer receives, and the metadata columns of a release.

A sample is a pair as frozen into a release: its key, split, the JPEG bytes of its image
and a JSON-safe ``metadata`` dict (the same dict is stored in ``release_items.data`` and
shipped as ``KEY.json``). The table columns follow Quilt-1M's lookup file (caption,
noisy/corrected/medical/ROI text, UMLS ids, magnification, subset, pathology,
not_histology, single_wsi, video and span), plus the review that approved the pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPLITS: tuple[str, ...] = ("train", "val", "test")
# The splits CLIP_benchmark-style evaluation reads (clip_benchmark/ and
# clip_benchmark_classification/ in a release).
EVAL_SPLITS: tuple[str, ...] = ("val", "test")
# Quilt-1M's `subset` column names where a pair came from (quilt, pubmed, openpath, laion);
# every pair of a release made here is this one.
SUBSET = "quilt_curator"

# Columns of metadata.parquet and metadata.csv, in order. KEY.json holds these and more
# (pair_key, frame_id, scores, and the frame's impurity and quality flags and crop box).
METADATA_COLUMNS: tuple[str, ...] = (
    "key",
    "image_path",
    "image_file",
    "caption",
    "noisy_text",
    "corrected_text",
    "medical_text",
    "roi_text",
    "med_umls_ids",
    "keywords",
    "magnification",
    "magnification_confidence",
    "subpathology",
    "subset",
    "pathology",
    "not_histology",
    "single_wsi",
    "histology_score",
    "split",
    "video_id",
    "video_title",
    "source_url",
    "start_s",
    "end_s",
    "pair_id",
    "confidence",
    "reviewed_by",
    "reviewed_at",
    "width",
    "height",
    "image_sha256",
)
LIST_COLUMNS: frozenset[str] = frozenset({"med_umls_ids", "keywords", "pathology"})


@dataclass(frozen=True)
class ReleaseSample:
    key: str
    split: str
    shard: str  # path of the tar shard that holds the image, relative to the release
    image_file: str  # the same image as a plain file: images/KEY.jpg
    image: bytes  # JPEG
    caption: str
    metadata: dict[str, Any]


def metadata_row(sample: ReleaseSample) -> dict[str, Any]:
    """The table row of a sample: exactly METADATA_COLUMNS, missing values as None."""
    return {column: sample.metadata.get(column) for column in METADATA_COLUMNS}


def image_file_relpath(key: str) -> str:
    """Where a sample's image lies as a plain file inside a release."""
    return f"images/{key}.jpg"


def one_line(text: str) -> str:
    """Text on one line, whitespace runs made one space (for readers that split lines)."""
    return " ".join(text.split())
