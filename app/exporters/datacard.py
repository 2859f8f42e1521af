"""README.md of a release: a data card saying what is inside and how it was made."""

from __future__ import annotations

from typing import Any

from app.exporters.sample import METADATA_COLUMNS, SPLITS

COLUMN_DOCS: dict[str, str] = {
    "key": "sample key; the WebDataset key of the sample's members in its shard",
    "image_path": "where the image is: `shards/<split>-<n>.tar#<key>.jpg`",
    "caption": "the caption as approved (edited by the pathologist when they edited it)",
    "noisy_text": "raw ASR text of the narration span",
    "corrected_text": "ASR text after correction against the knowledge base",
    "medical_text": "the medical sentences of the span",
    "roi_text": "text that describes a region of interest",
    "med_umls_ids": "UMLS-style concept ids found in the text (list)",
    "keywords": "RAKE keywords (list)",
    "magnification": "magnification bin (Quilt's 0: <=10x, 1: 20x, 2: >=40x), if any",
    "magnification_confidence": "confidence of the magnification estimate, 0-1",
    "subpathology": "sub-pathology tag given by the reviewer (Quilt's categories), if any",
    "histology_score": "the frames stage's histology detector score of the image",
    "split": "train, val or test; chosen per video",
    "video_id": "id of the source video in the curation database",
    "video_title": "title of the source video",
    "source_url": "URL of the source video (empty for local files and uploads)",
    "start_s": "start of the image's stable interval in the video, seconds",
    "end_s": "end of that interval, seconds",
    "pair_id": "id of the pair in the curation database (stable across releases)",
    "confidence": "alignment confidence from the pipeline",
    "reviewed_by": "username of the pathologist who approved the pair",
    "reviewed_at": "when the pair was approved (UTC)",
    "width": "image width in pixels",
    "height": "image height in pixels",
    "image_sha256": "sha256 of the JPEG bytes",
}


def render_datacard(*, manifest_header: dict[str, Any], notes: str | None) -> str:
    counts = manifest_header["counts"]
    shards = manifest_header["shards"]
    lines = [
        f"# Quilt Curator release {manifest_header['version']}",
        "",
        f"Created {manifest_header['created_at']} with "
        f"{manifest_header['pair_count']} image-text pairs.",
        "",
        "| split | pairs | shards |",
        "|---|---|---|",
        *(f"| {s} | {counts.get(s, 0)} | {shards.get(s, 0)} |" for s in SPLITS),
        "",
    ]
    if notes:
        lines += ["## Notes", "", notes.strip(), ""]
    lines += [
        "## How it was made",
        "",
        "Candidate pairs were extracted from educational histopathology videos the way "
        "Quilt-1M was (ASR, histology frame detection, stable frames, text correction, "
        "time alignment); every pair here was then approved by a pathologist, who could "
        "edit its text. The release is a frozen copy of all pairs approved at creation "
        "time: later edits in the curation tool do not change it.",
        "",
        "Splits are drawn per video (a hash of the video id), never per pair: frames of one "
        "lecture are near-duplicates, so a video's pairs all go to one split. "
        f"Fractions: val {manifest_header['val_fraction']}, "
        f"test {manifest_header['test_fraction']}.",
        "",
    ]
    skipped = manifest_header.get("skipped") or []
    if skipped:
        lines += [
            f"{len(skipped)} approved pair(s) were left out because their image could not be "
            "read; manifest.json lists them under `skipped`.",
            "",
        ]
    lines += [
        "## Layout",
        "",
        "- `shards/<split>-<n>.tar`: WebDataset shards; each sample is `<key>.jpg` (the "
        "image), `<key>.txt` (the caption), `<key>.json` (all metadata).",
        "- `metadata.parquet`, `metadata.csv`: one row per pair (lists JSON-encoded in CSV).",
        "- `manifest.json`: sha256 and size of every file; `quilt release verify` checks them.",
        "",
        "Images are stored in the shards only. To read one from `image_path`:",
        "",
        "```python",
        "import tarfile",
        "shard, member = image_path.split('#')",
        "with tarfile.open(release_dir / shard) as tar:",
        "    jpeg = tar.extractfile(member).read()",
        "```",
        "",
        "## Columns",
        "",
        *(f"- `{c}`: {COLUMN_DOCS[c]}" for c in METADATA_COLUMNS),
        "",
    ]
    return "\n".join(lines)
