"""Dataset releases: every approved pair, frozen into a versioned, immutable folder.

``create_release`` snapshots the selected approved pairs in one query (``Selection``:
source kinds, minimum reviews, cut-off; recorded in ``releases.selection``), checks which
images can be read, splits them by video (``assign_splits``), feeds them to the exporters
(WebDataset shards with sizes.json, images/ as plain files, tsv/ per split for open_clip's
csv loader, CLIP_benchmark's layout for val and test, metadata.parquet/csv), writes a data
card with the changelog against the parent release (``releases.parent_id``: the newest
ready release unless told) and a manifest of sha256s, and only then makes the folder
visible: it is built under
``releases_root/.building-<version>-<uuid>`` and renamed to ``releases_root/<version>`` in
one step, so a reader never sees half a release. Files are made read-only, and the
database keeps a frozen copy of each pair (``release_items.data``) and the manifest's hash,
so later edits to pairs never change a release and tampering is detectable
(``verify_release``).

A version is never reused: not when a row has it (whatever its status), not when a folder
has its name. A failed build keeps its row (status failed, with the error) as a record.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import hashlib
import io
import json
import logging
import os
import re
import shutil
import stat
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image
from sqlalchemy import Row, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.exporters import SampleWriter
from app.exporters.clip_benchmark import ClipBenchmarkWriter, class_tag, classification_plan
from app.exporters.datacard import render_datacard
from app.exporters.images import ImageFilesWriter
from app.exporters.manifest import MANIFEST_NAME, build_manifest, verify_folder, write_manifest
from app.exporters.sample import SPLITS, SUBSET, ReleaseSample, image_file_relpath
from app.exporters.tables import CsvWriter, ParquetWriter, TsvWriter
from app.exporters.webdataset import (
    DEFAULT_MIN_SHARDS,
    DEFAULT_SAMPLES_PER_SHARD,
    WebDatasetWriter,
    image_ref,
    shard_count,
    shard_index,
    shard_relpath,
)
from app.media import media_path, resolve_inside
from app.models import (
    SUBPATHOLOGIES,
    Frame,
    Pair,
    PairStatus,
    Release,
    ReleaseItem,
    User,
    Video,
    utcnow,
)
from app.services import audit
from app.services.release_diff import DiffItem, ReleaseDiff, diff_items, release_items
from app.settings import get_settings

_logger = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUILDING_PREFIX = ".building-"
JPEG_QUALITY = 95
# Only these sources have a URL worth publishing; a local file's path or an upload's
# storage name says something about our servers, not about the data.
PUBLIC_SOURCE_KINDS = frozenset({"http", "youtube"})
SOURCE_KINDS = frozenset({"file", "upload", "http", "youtube"})
_ITEM_BATCH = 1000


class ReleaseError(ValueError):
    pass


# Below this many videos, a per-video hash may leave val or test empty (or tiny); the split
# is then made by ranking the videos or, with one or two videos, by time within each video.
SPLIT_MIN_VIDEOS = 10
SPLIT_METHODS = ("video_hash", "video_rank", "time_within_video")


def _video_draw(video_id: int) -> float:
    digest = hashlib.sha256(f"quilt-release-split:{int(video_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split_for_video(video_id: int, *, val_fraction: float, test_fraction: float) -> str:
    """train, val or test for every pair of one video.

    Splits are drawn per video, not per pair: the frames of one lecture are near-duplicates
    (same slide, same stain, same narrator), so splitting a video's pairs would put copies
    of test images into train. A hash, not a random draw, so a video keeps its split in
    every release made with the same fractions.
    """
    u = _video_draw(video_id)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


@dataclass(frozen=True)
class SplitPlan:
    method: str  # one of SPLIT_METHODS
    by_pair: dict[int, str]


def assign_splits(
    pairs: list[tuple[int, int, float]],
    *,
    val_fraction: float,
    test_fraction: float,
    min_videos: int = SPLIT_MIN_VIDEOS,
) -> SplitPlan:
    """The split of every pair, from (pair id, video id, start_s) triples. Deterministic.

    - ``video_hash``: with at least ``min_videos`` videos, each video's split is drawn from
      a hash of its id (split_for_video), so a video keeps its split from release to
      release; used when that leaves neither val nor test empty.
    - ``video_rank``: otherwise, with enough videos for one per wanted split plus one for
      train, the videos ranked by the same hash: the first round(test_fraction * videos)
      (at least 1) go to test, the next round(val_fraction * videos) (at least 1) to val,
      the rest to train. Still per video: nothing leaks.
    - ``time_within_video``: with fewer videos (one or two), each video is cut by time:
      its pairs in order of start_s, the earliest to train, then val, the latest to test,
      round(fraction * pairs) each but at least one pair each once the video has three.
      Neighbouring spans of one lecture can look alike, so such a release's val and test
      measure less than a per-video split would; the data card says which method was used.

    A fraction of 0 leaves its split empty under every method.
    """
    fractions = {"val": val_fraction, "test": test_fraction}
    wanted = [s for s in ("val", "test") if fractions[s] > 0]
    videos = sorted({video_id for _, video_id, _ in pairs})
    if len(videos) >= max(min_videos, 1):
        by_video = {
            v: split_for_video(v, val_fraction=val_fraction, test_fraction=test_fraction)
            for v in videos
        }
        if all(s in by_video.values() for s in wanted):
            return SplitPlan("video_hash", {p: by_video[v] for p, v, _ in pairs})
    if len(videos) >= len(wanted) + 1 and len(videos) >= 3:
        n = len(videos)
        take = {s: max(1, round(fractions[s] * n)) if s in wanted else 0 for s in ("val", "test")}
        while take["val"] + take["test"] > n - 1:  # keep one video for train
            larger = "val" if take["val"] >= take["test"] else "test"
            if take[larger] <= 1:
                larger = "test" if larger == "val" else "val"
            take[larger] -= 1
        ranked = sorted(videos, key=lambda v: (_video_draw(v), v))
        by_video = {}
        for i, v in enumerate(ranked):
            if i < take["test"]:
                by_video[v] = "test"
            elif i < take["test"] + take["val"]:
                by_video[v] = "val"
            else:
                by_video[v] = "train"
        return SplitPlan("video_rank", {p: by_video[v] for p, v, _ in pairs})

    by_pair: dict[int, str] = {}
    per_video: dict[int, list[tuple[float, int]]] = {}
    for pair_id, video_id, start_s in pairs:
        per_video.setdefault(video_id, []).append((start_s, pair_id))
    for spans in per_video.values():
        spans.sort()
        n = len(spans)
        left = n - 1  # the earliest pair stays in train
        n_test = min(left, max(1, round(test_fraction * n))) if "test" in wanted else 0
        left -= n_test
        n_val = min(left, max(1, round(val_fraction * n))) if "val" in wanted else 0
        n_train = n - n_test - n_val
        for i, (_, pair_id) in enumerate(spans):
            by_pair[pair_id] = "train" if i < n_train else "val" if i < n_train + n_val else "test"
    return SplitPlan("time_within_video", by_pair)


@dataclass(frozen=True)
class Selection:
    """Which pairs a release freezes: approved ones, optionally only from some source
    kinds, with at least some reviews, approved before a cut-off."""

    sources: tuple[str, ...] = ()  # Video.source_kind values; () means every source
    min_reviews: int | None = None
    until: dt.datetime | None = None  # approved before this instant (UTC)

    def as_json(self) -> dict[str, Any]:
        return {
            "statuses": [PairStatus.approved.value],
            "sources": list(self.sources) or None,
            "min_reviews": self.min_reviews,
            "until": _iso_utc(self.until),
        }


def parse_until(value: str) -> dt.datetime:
    """A cut-off from the command line or a form: an ISO date (up to the end of that day,
    UTC) or an ISO datetime (UTC when it names no zone)."""
    value = value.strip()
    try:
        if len(value) == 10:
            day = dt.date.fromisoformat(value)
            return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(value)
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        raise ReleaseError(f"cut-off {value[:40]!r}: not an ISO date or datetime") from None


def create_release(
    *,
    session: Session,
    version: str,
    user: User | None,
    notes: str | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
    min_shards: int = DEFAULT_MIN_SHARDS,
    selection: Selection | None = None,
    parent: str | None = None,
    min_videos: int = SPLIT_MIN_VIDEOS,
) -> Release:
    """Freeze every selected approved pair into releases_root/<version>. Commits the session.

    ``parent``: the version this release's changelog is against; by default the newest
    ready release. Raises ReleaseError for a bad or taken version, a bad argument, for
    nothing to release, and for a failed build (the release row is then kept with status
    failed and the error).
    """
    selection = selection or Selection()
    _check_arguments(version, val_fraction, test_fraction, samples_per_shard, min_shards)
    if selection.min_reviews is not None and not 0 <= selection.min_reviews <= 10_000:
        raise ReleaseError("minimum reviews: 0 to 10000")
    unknown = set(selection.sources) - SOURCE_KINDS
    if unknown:
        raise ReleaseError(f"source kinds: {', '.join(sorted(SOURCE_KINDS))}")
    root = get_settings().releases_root
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if session.scalar(select(Release.id).where(Release.version == version)) is not None:
        raise ReleaseError(f"release {version!r} exists; a release is never overwritten")
    if final.exists() or final.is_symlink():
        raise ReleaseError(f"{final} exists; a release is never overwritten")
    parent_release = _parent(session=session, version=parent)

    rows = _snapshot(session=session, selection=selection)
    if not rows:
        raise ReleaseError("no approved pairs to release")

    # The row reserves the version (unique) before any file is written, so two concurrent
    # builds of one version cannot both get to the rename.
    created_at = utcnow()
    release = Release(
        version=version,
        status="building",
        notes=notes,
        created_by_id=user.id if user else None,
        created_at=created_at,
        parent_id=parent_release.id if parent_release else None,
        selection=selection.as_json(),
    )
    session.add(release)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ReleaseError(f"release {version!r} exists; a release is never overwritten") from None
    release_id = release.id
    parent_items = (
        list(release_items(session=session, release_id=parent_release.id)) if parent_release else []
    )

    building = root / f"{BUILDING_PREFIX}{version}-{uuid.uuid4().hex}"
    moved = False
    try:
        building.mkdir()
        built = _build(
            folder=building,
            rows=rows,
            header={
                "version": version,
                "created_at": created_at.isoformat(),
                "created_by": user.username if user else None,
                "notes": notes,
                "val_fraction": val_fraction,
                "test_fraction": test_fraction,
                "samples_per_shard": samples_per_shard,
                "min_shards": min_shards,
                "selection": selection.as_json(),
                "parent": parent_release.version if parent_release else None,
            },
            samples_per_shard=samples_per_shard,
            min_shards=min_shards,
            min_videos=min_videos,
            parent_items=parent_items,
        )
        del parent_items
        _insert_items(session=session, release_id=release_id, items=built.items)
        _freeze_files(building)
        if final.exists() or final.is_symlink():
            raise ReleaseError(f"{final} appeared during the build; a release is never overwritten")
        # Same folder, same filesystem: an atomic rename. POSIX rename refuses a non-empty
        # target, so even a racing writer's release would not be replaced.
        os.rename(building, final)
        moved = True
        _fsync_dir(root)
        release.status = "ready"
        release.pair_count = len(built.items)
        release.path = version
        release.manifest_sha256 = built.manifest_sha256
        audit.record(
            session=session,
            user=user,
            action="release.create",
            target=f"release:{release_id}",
            version=version,
            pair_count=len(built.items),
            counts=built.counts,
            skipped=len(built.skipped),
            manifest_sha256=built.manifest_sha256,
            parent=parent_release.version if parent_release else None,
            changes=built.changes,
        )
        session.commit()
    except BaseException as exc:
        session.rollback()
        shutil.rmtree(building, ignore_errors=True)
        if moved:  # only when the commit failed: the folder is ours and nobody saw it ready
            _remove_tree(final)
        _mark_failed(session=session, release_id=release_id, user=user, error=exc)
        if isinstance(exc, ReleaseError) or not isinstance(exc, Exception):
            raise
        raise ReleaseError(f"release {version!r} failed: {exc}") from exc
    _freeze_dirs(final)
    _logger.info("release %s ready: %d pairs at %s", version, release.pair_count, final)
    return release


def _parent(*, session: Session, version: str | None) -> Release | None:
    if version is not None:
        parent = get_release(session=session, version=version)
        if parent is None or parent.status != "ready":
            raise ReleaseError(f"parent release {version!r}: no such ready release")
        return parent
    return session.scalar(
        select(Release)
        .where(Release.status == "ready")
        .order_by(Release.created_at.desc(), Release.id.desc())
        .limit(1)
    )


def release_dir(release: Release) -> Path:
    if not release.path:
        raise ReleaseError(f"release {release.version!r} has no folder (status {release.status})")
    return resolve_inside(get_settings().releases_root, release.path)


def verify_release(path: Path, *, expected_manifest_sha256: str | None = None) -> list[str]:
    """Re-hash every file of a release against its manifest; [] means intact.

    Pass the release row's manifest_sha256 to also catch a rewritten manifest.
    """
    return verify_folder(path, expected_manifest_sha256=expected_manifest_sha256)


def release_at(*, session: Session, folder: Path) -> Release | None:
    """The release stored in ``folder``, found by its place under the releases root or,
    for a copy elsewhere, by the version its manifest names."""
    resolved = folder.resolve()
    for release in session.scalars(select(Release).where(Release.path.is_not(None))):
        if release_dir(release).resolve() == resolved:
            return release
    try:
        version = read_manifest(folder).get("version")
    except (OSError, ValueError):
        return None
    return get_release(session=session, version=version) if isinstance(version, str) else None


def get_release(*, session: Session, version: str) -> Release | None:
    return session.scalar(select(Release).where(Release.version == version))


def list_releases(*, session: Session, newest_first: bool = False) -> list[Release]:
    """Every release, oldest first (the CLI's listing), or newest first (the pages)."""
    order = (Release.created_at, Release.id)
    if newest_first:
        order = (Release.created_at.desc(), Release.id.desc())
    return list(session.scalars(select(Release).order_by(*order)))


# --- building --------------------------------------------------------------------------


@dataclass
class _Built:
    items: list[dict[str, Any]] = field(default_factory=list)  # release_items rows
    counts: dict[str, int] = field(default_factory=dict)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    manifest_sha256: str = ""
    changes: dict[str, int] = field(default_factory=dict)


def _check_arguments(
    version: str,
    val_fraction: float,
    test_fraction: float,
    samples_per_shard: int,
    min_shards: int = 1,
) -> None:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ReleaseError(
            "version: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ReleaseError("val and test fractions: each in [0, 1), together below 1")
    if samples_per_shard < 1:
        raise ReleaseError("samples per shard: at least 1")
    if min_shards < 1:
        raise ReleaseError("minimum shards per split: at least 1")


def _snapshot(*, session: Session, selection: Selection) -> list[Row]:
    """Every selected approved pair with its video and reviewer, in one query (one
    consistent read)."""
    stmt = (
        select(
            Pair.id,
            Pair.pair_key,
            Pair.video_id,
            Pair.frame_id,
            Pair.image_path,
            Pair.start_s,
            Pair.end_s,
            Pair.caption,
            Pair.noisy_text,
            Pair.corrected_text,
            Pair.medical_text,
            Pair.roi_text,
            Pair.umls,
            Pair.keywords,
            Pair.magnification,
            Pair.subpathology,
            Pair.not_histology,
            Pair.scores,
            Pair.confidence,
            Pair.reviewed_at,
            Video.title.label("video_title"),
            Video.source_url,
            Video.source_kind,
            User.username.label("reviewed_by"),
            Frame.histology_score,
            Frame.magnification_confidence,
            Frame.flags.label("frame_flags"),
            Frame.crop_box,
        )
        .join(Video, Video.id == Pair.video_id)
        .outerjoin(User, User.id == Pair.reviewed_by_id)
        .outerjoin(Frame, Frame.id == Pair.frame_id)
        .where(Pair.status == PairStatus.approved)
        .order_by(Pair.id)
    )
    if selection.sources:
        stmt = stmt.where(Video.source_kind.in_(selection.sources))
    if selection.min_reviews is not None:
        stmt = stmt.where(Pair.review_count >= selection.min_reviews)
    if selection.until is not None:
        stmt = stmt.where(Pair.reviewed_at < selection.until)
    return list(session.execute(stmt).all())


def _build(
    *,
    folder: Path,
    rows: list[Row],
    header: dict[str, Any],
    samples_per_shard: int,
    min_shards: int = DEFAULT_MIN_SHARDS,
    min_videos: int = SPLIT_MIN_VIDEOS,
    parent_items: list[DiffItem] | None = None,
) -> _Built:
    built = _Built()
    # First pass: which images can be read. Shards are planned from the final counts (at
    # least min_shards per split, even sizes, no gap in the numbering), so an unreadable
    # image must be known before the first byte is written.
    readable = []
    probed: dict[int, _Probe] = {}
    for row in rows:
        try:
            probed[row.id] = _probe_image(row.image_path)
        except Exception as exc:  # one unreadable image never fails the release
            _logger.warning("release: pair %s left out: %s", row.id, exc)
            built.skipped.append({"pair_id": row.id, "error": f"{type(exc).__name__}: {exc}"})
            continue
        readable.append(row)
    if not readable:
        raise ReleaseError("no approved pair has a readable image")

    plan = assign_splits(
        [(row.id, row.video_id, row.start_s) for row in readable],
        val_fraction=header["val_fraction"],
        test_fraction=header["test_fraction"],
        min_videos=min_videos,
    )
    splits = plan.by_pair
    # Split by split, then pair id: each shard holds one split and consecutive keys.
    ordered = sorted(readable, key=lambda row: (SPLITS.index(splits[row.id]), row.id))
    totals = Counter(splits[row.id] for row in ordered)
    shards = {
        s: shard_count(totals[s], samples_per_shard=samples_per_shard, min_shards=min_shards)
        for s in SPLITS
    }
    classes, classification_splits = classification_plan(
        {
            s: [class_tag(_tags(row)) for row in ordered if splits[row.id] == s]
            for s in ("val", "test")
        },
        order=SUBPATHOLOGIES,
    )
    created_at = dt.datetime.fromisoformat(header["created_at"])
    mtime = created_at.timestamp()
    writers: list[SampleWriter] = []
    per_split: Counter[str] = Counter()
    webdataset = clip_benchmark = None
    try:
        webdataset = WebDatasetWriter(folder, mtime=mtime)
        clip_benchmark = ClipBenchmarkWriter(
            folder,
            mtime=mtime,
            samples_per_shard=samples_per_shard,
            classes=classes,
            classification_splits=classification_splits,
        )
        writers += [
            webdataset,
            ImageFilesWriter(folder),
            ParquetWriter(folder / "metadata.parquet"),
            CsvWriter(folder / "metadata.csv"),
            TsvWriter(folder),
            clip_benchmark,
        ]
        for row in ordered:
            try:
                image, width, height = _read_probed(probed.pop(row.id))
            except Exception as exc:
                raise ReleaseError(
                    f"the image of pair {row.id} became unreadable during the build: {exc}"
                ) from exc
            split = splits[row.id]
            key = f"{len(built.items):09d}"
            index = shard_index(per_split[split], samples=totals[split], shards=shards[split])
            shard = shard_relpath(split, index)
            per_split[split] += 1
            data = _frozen_data(
                row, key=key, split=split, shard=shard, image=image, width=width, height=height
            )
            sample = ReleaseSample(
                key=key,
                split=split,
                shard=shard,
                image_file=data["image_file"],
                image=image,
                caption=row.caption,
                metadata=data,
            )
            for writer in writers:
                writer.write(sample)
            built.items.append({"pair_id": row.id, "key": key, "split": split, "data": data})
    finally:
        for writer in writers:
            writer.close()

    built.counts = {split: per_split[split] for split in SPLITS}
    evaluation = clip_benchmark.counts() if clip_benchmark else {}
    diff: ReleaseDiff | None = None
    if header.get("parent"):
        diff = diff_items(
            parent_items or [],
            (DiffItem.of(key=i["key"], split=i["split"], data=i["data"]) for i in built.items),
            old_version=header["parent"],
            new_version=header["version"],
        )
        built.changes = diff.counts
    header = {
        **header,
        "pair_count": len(built.items),
        "counts": built.counts,
        "shards": {s: shards[s] for s in SPLITS},
        "shard_sizes": webdataset.sizes if webdataset else {},
        "split_method": plan.method,
        "clip_benchmark": {
            "retrieval": evaluation.get("retrieval", {}),
            "classification": evaluation.get("classification", {}),
            "classnames": classes if classification_splits else [],
        },
        "changes": built.changes or None,
        "skipped": built.skipped,
    }
    readme = render_datacard(manifest_header=header, notes=header["notes"], diff=diff)
    with (folder / "README.md").open("x", encoding="utf-8") as f:
        f.write(readme)
    built.manifest_sha256 = write_manifest(folder, build_manifest(folder, header=header))
    return built


def _tags(row: Row) -> dict[str, Any]:
    return {"subpathology": row.subpathology or "", "not_histology": bool(row.not_histology)}


@dataclass(frozen=True)
class _Probe:
    path: Path
    width: int
    height: int
    jpeg: bool


def _probe_image(image_path: str) -> _Probe:
    """Where an image is (resolved inside the media root once), its size, and whether its
    bytes can be shipped as they are; raises when it cannot be read or converted."""
    path = media_path(image_path)
    with path.open("rb") as f, Image.open(f) as img:
        jpeg = img.format in ("JPEG", "MPO")  # MPO: a JPEG with extra images appended
        if not jpeg:
            img.load()  # a non-JPEG is converted later: it must decode
        return _Probe(path, img.size[0], img.size[1], jpeg)


def _read_probed(probe: _Probe) -> tuple[bytes, int, int]:
    """The JPEG bytes of a probed image: a JPEG's own bytes (no second parse), anything
    else re-encoded."""
    if probe.jpeg:
        return probe.path.read_bytes(), probe.width, probe.height
    with Image.open(probe.path) as img:
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
        return out.getvalue(), img.size[0], img.size[1]


def _frozen_data(
    row: Row, *, key: str, split: str, shard: str, image: bytes, width: int, height: int
) -> dict[str, Any]:
    """The pair as it is at release time: METADATA_COLUMNS plus pair_key, frame_id, scores,
    frame_flags and crop_box."""
    return {
        "key": key,
        "image_path": image_ref(shard, key),
        "image_file": image_file_relpath(key),
        "caption": row.caption,
        "noisy_text": row.noisy_text or "",
        "corrected_text": row.corrected_text or "",
        "medical_text": row.medical_text or "",
        "roi_text": row.roi_text or "",
        "med_umls_ids": _strings(row.umls),
        "keywords": _strings(row.keywords),
        "magnification": row.magnification,
        "magnification_confidence": row.magnification_confidence,
        "subpathology": row.subpathology or "",
        # Quilt-1M's lookup columns. pathology: a list there (a video's sub-pathologies);
        # here the reviewer's one tag, or none. single_wsi (Quilt: whether the image
        # shows one whole-slide image) is not known to the curator: no stage or reviewer
        # records it, so it is null rather than a guess.
        "subset": SUBSET,
        "pathology": [row.subpathology] if row.subpathology else [],
        "not_histology": bool(row.not_histology),
        "single_wsi": None,
        "histology_score": row.histology_score,
        "split": split,
        "video_id": row.video_id,
        "video_title": row.video_title or "",
        "source_url": row.source_url if row.source_kind in PUBLIC_SOURCE_KINDS else "",
        "start_s": row.start_s,
        "end_s": row.end_s,
        "pair_id": row.id,
        "confidence": row.confidence,
        "reviewed_by": row.reviewed_by,
        "reviewed_at": _iso_utc(row.reviewed_at),
        "width": width,
        "height": height,
        "image_sha256": hashlib.sha256(image).hexdigest(),
        "pair_key": row.pair_key,
        "frame_id": row.frame_id,
        "scores": row.scores or {},
        # What the frames stage saw in the image (impurities, quality) and the crop it
        # took to cut them away: for filtering a release without re-running the pipeline.
        "frame_flags": row.frame_flags or {},
        "crop_box": row.crop_box,
    }


def _strings(values: Any) -> list[str]:
    return [str(v) for v in values or []]


def _iso_utc(value: dt.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


def _insert_items(*, session: Session, release_id: int, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), _ITEM_BATCH):
        batch = [{**item, "release_id": release_id} for item in items[start : start + _ITEM_BATCH]]
        session.execute(insert(ReleaseItem), batch)
    session.flush()


def _mark_failed(
    *, session: Session, release_id: int, user: User | None, error: BaseException
) -> None:
    message = f"{type(error).__name__}: {error}"[:4000]
    try:
        release = session.get(Release, release_id)
        if release is not None:
            release.status = "failed"
            release.error = message
            release.path = None
        audit.record(
            session=session,
            user=user,
            action="release.fail",
            target=f"release:{release_id}",
            error=message,
        )
        session.commit()
    except Exception:  # the build's own error is the one to report
        session.rollback()
        _logger.exception("release %s: could not record the failure", release_id)


# --- files -----------------------------------------------------------------------------


def _freeze_files(folder: Path) -> None:
    """chmod 0444 and flush to disk every file, before the folder becomes visible.

    One syncfs(2) of the release's filesystem where Linux offers it (a release has one
    file per image: an fsync each costs more than writing them), else an fsync per file.
    """
    files = [Path(d) / name for d, _dirs, names in os.walk(folder) for name in names]
    for path in files:
        path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    if not _syncfs(folder):
        for path in files:
            with path.open("rb") as f:
                os.fsync(f.fileno())


def _syncfs(folder: Path) -> bool:
    """syncfs(2) on the filesystem that holds folder; False where it is not available."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syncfs = libc.syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        return syncfs(fd) == 0
    finally:
        os.close(fd)


def _freeze_dirs(folder: Path) -> None:
    """chmod 0555 every folder: nothing can be added, removed or renamed inside."""
    mode = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    try:
        for dirpath, _dirnames, _filenames in os.walk(folder, topdown=False):
            Path(dirpath).chmod(mode)
    except OSError:
        _logger.warning("release folder %s: could not make folders read-only", folder)


def _remove_tree(folder: Path) -> None:
    for dirpath, _dirnames, _filenames in os.walk(folder):
        Path(dirpath).chmod(stat.S_IRWXU)
    shutil.rmtree(folder, ignore_errors=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(folder: Path) -> dict[str, Any]:
    return json.loads((folder / MANIFEST_NAME).read_text(encoding="utf-8"))
