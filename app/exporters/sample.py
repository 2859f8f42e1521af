"""The unit every release writer receives, and the metadata columns of a release.

A sample is a pair as frozen into a release: its key, split, the JPEG bytes of its image
and a JSON-safe ``metadata`` dict (the same dict is stored in ``release_items.data`` and
shipped as ``KEY.json``). The table columns follow Quilt-1M's metadata file (caption,
noisy/corrected/medical/ROI text, UMLS ids, magnification, video and span), plus the
review that approved the pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SPLITS: tuple[str, ...] = ("train", "val", "test")

# Columns of metadata.parquet and metadata.csv, in order. KEY.json holds these and more
# (pair_key, frame_id, scores, and the frame's impurity and quality flags and crop box).
METADATA_COLUMNS: tuple[str, ...] = (
    "key",
    "image_path",
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
LIST_COLUMNS: frozenset[str] = frozenset({"med_umls_ids", "keywords"})


@dataclass(frozen=True)
class ReleaseSample:
    key: str
    split: str
    shard: str  # path of the tar shard that holds the image, relative to the release
    image: bytes  # JPEG
    caption: str
    metadata: dict[str, Any]


def metadata_row(sample: ReleaseSample) -> dict[str, Any]:
    """The table row of a sample: exactly METADATA_COLUMNS, missing values as None."""
    return {column: sample.metadata.get(column) for column in METADATA_COLUMNS}
