"""README.md of a release: a data card saying what is inside and how it was made.

It opens with the YAML header of a Hugging Face dataset card (between ``---`` lines:
license, task_categories, tags, size_categories, and ``configs`` whose ``data_files``
name each split's WebDataset shards, a format the Hub reads), then says in prose what
the release holds, how it was split, what changed since its parent and how to load it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Protocol

from app.exporters.sample import METADATA_COLUMNS, SPLITS


class ChangeEntry(Protocol):
    """One changed pair (app.services.release_diff.DiffEntry has this shape)."""

    pair_id: int
    old_key: str | None
    new_key: str | None
    caption: str
    changed: list[str]


class Changes(Protocol):
    """What changed since the parent (app.services.release_diff.ReleaseDiff)."""

    @property
    def counts(self) -> dict[str, int]: ...

    added: Sequence[ChangeEntry]
    removed: Sequence[ChangeEntry]
    edited: Sequence[ChangeEntry]


CHANGELOG_LINES = 50  # per kind; `quilt release diff` lists them all

COLUMN_DOCS: dict[str, str] = {
    "key": "sample key; the WebDataset key of the sample's members in its shard",
    "image_path": "where the image is: `shards/<split>-<n>.tar#<key>.jpg`",
    "image_file": "the same image as a plain file: `images/<key>.jpg`",
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
    "subset": "Quilt-1M's source column: always `quilt_curator` (pairs curated here)",
    "pathology": "Quilt-1M's pathology list: the reviewer's sub-pathology tag, or empty (list)",
    "not_histology": "the reviewer tagged the image as not histology (true/false)",
    "single_wsi": "Quilt-1M's single-WSI flag; always null: nothing in the curation "
    "records whether an image shows one whole-slide image, so it is not guessed",
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


SPLIT_METHOD_DOCS: dict[str, str] = {
    "video_hash": "each video's split was drawn from a hash of its id, so all pairs of a "
    "video are in one split and a video keeps its split in every release",
    "video_rank": "the release has few videos, so they were ranked by a hash of their id "
    "and the first went to test, the next to val (at least one video each), the rest to "
    "train; all pairs of a video are in one split",
    "time_within_video": "the release has one or two videos, so each video was cut by time: "
    "its earliest pairs are train, then val, its latest test (at least one pair each once "
    "a video has three). Neighbouring spans of one lecture can look alike: val and test "
    "scores of this release are optimistic",
}


def size_category(n: int) -> str:
    """Hugging Face's size_categories value for n examples."""
    bounds = [
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ]
    for bound, name in bounds:
        if n < bound:
            return name
    return "10M<n<100M"


def yaml_header(manifest_header: dict[str, Any]) -> list[str]:
    """The card's YAML front matter; every string is JSON-quoted (valid YAML)."""
    q = json.dumps
    counts = manifest_header["counts"]
    lines = [
        "---",
        "license: other",
        f"license_name: {q('source-videos')}",
        f"pretty_name: {q('Quilt Curator release ' + manifest_header['version'])}",
        "language:",
        "- en",
        "task_categories:",
        "- zero-shot-image-classification",
        "- image-to-text",
        "- text-to-image",
        "tags:",
        *(f"- {t}" for t in ("histopathology", "pathology", "medical", "quilt", "webdataset")),
        "size_categories:",
        f"- {q(size_category(manifest_header['pair_count']))}",
        "configs:",
        "- config_name: default",
        "  data_files:",
    ]
    for split in SPLITS:
        if counts.get(split):
            lines += [f"  - split: {split}", f"    path: {q(f'shards/{split}-*.tar')}"]
    return [*lines, "---", ""]


def _brace(split: str, shards: int) -> str:
    last = max(shards - 1, 0)
    return f"shards/{split}-{{{0:06d}..{last:06d}}}.tar"


def render_datacard(
    *, manifest_header: dict[str, Any], notes: str | None, diff: Changes | None = None
) -> str:
    counts = manifest_header["counts"]
    shards = manifest_header["shards"]
    lines = [
        *yaml_header(manifest_header),
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
        lines += ["## Notes", "", notes.strip().replace("&", "&amp;").replace("<", "&lt;"), ""]
    lines += _changelog(manifest_header, diff)
    selection = manifest_header.get("selection") or {}
    method = manifest_header.get("split_method", "video_hash")
    lines += [
        "## How it was made",
        "",
        "Candidate pairs were extracted from educational histopathology videos the way "
        "Quilt-1M was (ASR, histology frame detection, stable frames, text correction, "
        "time alignment); every pair here was then approved by a pathologist, who could "
        "edit its text. The release is a frozen copy of all pairs approved at creation "
        "time: later edits in the curation tool do not change it.",
        "",
        "Selection: status approved; sources "
        f"{', '.join(selection.get('sources') or []) or 'all'}; minimum reviews "
        f"{selection.get('min_reviews') if selection.get('min_reviews') is not None else 'any'}"
        f"; approved before {selection.get('until') or 'the release'}.",
        "",
        "Splits are drawn per video, never per pair, whenever there are enough videos: "
        "frames of one lecture are near-duplicates, so a video's pairs all go to one split. "
        f"Method used here: `{method}`: {SPLIT_METHOD_DOCS.get(method, method)}. "
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
    evaluation = manifest_header.get("clip_benchmark") or {}
    classes = evaluation.get("classnames") or []
    lines += [
        "## Layout",
        "",
        "- `shards/<split>-<n>.tar`: WebDataset shards; each sample is `<key>.jpg` (the "
        "image), `<key>.txt` (the caption), `<key>.json` (all metadata). "
        f"At most {manifest_header.get('samples_per_shard')} samples a shard, and at least "
        f"{manifest_header.get('min_shards', 1)} shards per split that has that many samples.",
        "- `shards/sizes.json`: samples per shard file, which open_clip_train reads.",
        "- `images/<key>.jpg`: every image also as a plain file (the same bytes).",
        "- `tsv/<split>.tsv`: tab-separated, header `filepath`, `title`, then the columns "
        "below; `filepath` is relative to the release folder.",
        "- `clip_benchmark/`: val and test for CLIP_benchmark's zero-shot retrieval "
        "(`<split>/nshards.txt`, `<split>/<n>.tar` with `<key>.jpg` and `<key>.txt`, "
        "`dataset_type.txt` = `retrieval`).",
    ]
    if classes:
        lines.append(
            "- `clip_benchmark_classification/`: zero-shot classification by the reviewers' "
            "sub-pathology tags (`<split>/<n>.tar` with `<key>.jpg` and `<key>.cls`, "
            f"`classnames.txt`: {', '.join(classes)}; "
            "`zeroshot_classification_templates.txt`), for "
            f"{', '.join(sorted(evaluation.get('classification', {})))}."
        )
    lines += [
        "- `metadata.parquet`, `metadata.csv`: one row per pair (lists are lists in "
        "parquet, JSON-encoded in CSV; text quoted in CSV, so read `key` as text: "
        '`pandas.read_csv(path, dtype={"key": str})`).',
        "- `manifest.json`: sha256 and size of every file; `quilt release verify` checks them.",
        "",
        "## Loading",
        "",
        "open_clip, WebDataset (sizes come from `shards/sizes.json`):",
        "",
        "```",
        "python -m open_clip_train.main --dataset-type webdataset \\",
        f"    --train-data 'RELEASE/{_brace('train', shards.get('train', 0))}' \\",
        "    --workers 4 ...",
        "```",
        "",
        "open_clip, plain files (run from the release folder: paths are relative to it):",
        "",
        "```",
        "cd RELEASE && python -m open_clip_train.main --dataset-type csv \\",
        "    --train-data tsv/train.tsv --val-data tsv/val.tsv ...",
        "```",
        "",
        "CLIP_benchmark (give the task: `auto` means classification for a wds dataset):",
        "",
        "```",
        "clip_benchmark eval --dataset wds/quilt_curator --dataset_root RELEASE/clip_benchmark \\",
        "    --split test --task zeroshot_retrieval --model ViT-B-32 --pretrained ...",
        "```",
        "",
        "An image from `image_path` without the plain files:",
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


def _changelog(manifest_header: dict[str, Any], diff: Changes | None) -> list[str]:
    parent = manifest_header.get("parent")
    if not parent or diff is None:
        return ["## Changelog", "", "First release: no parent to compare with.", ""]
    c = diff.counts
    lines = [
        f"## Changelog (against {parent})",
        "",
        f"{c['added']} added, {c['removed']} removed, {c['edited']} edited (caption or "
        f"texts changed), {c['unchanged']} unchanged; pairs are matched by pair id. "
        f"`quilt release diff {parent} {manifest_header['version']}` lists every change.",
        "",
    ]
    for title, entries in (
        ("Added", diff.added),
        ("Removed", diff.removed),
        ("Edited", diff.edited),
    ):
        if not entries:
            continue
        lines += [f"### {title}", ""]
        for e in entries[:CHANGELOG_LINES]:
            key = e.new_key or e.old_key
            what = f" ({', '.join(e.changed)})" if e.changed else ""
            lines.append(
                f"- pair {e.pair_id}, key {key}{what}: {' '.join(e.caption.split())[:120]}"
            )
        if len(entries) > CHANGELOG_LINES:
            lines.append(f"- ... and {len(entries) - CHANGELOG_LINES} more")
        lines.append("")
    return lines
