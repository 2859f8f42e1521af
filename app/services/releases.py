"""Dataset releases: every approved pair, frozen into a versioned, immutable folder.

``create_release`` snapshots the approved pairs in one query, splits them by video, feeds
them to the exporters (WebDataset shards, metadata.parquet/csv), writes a data card and a
manifest of sha256s, and only then makes the folder visible: it is built under
``releases_root/.building-<version>-<uuid>`` and renamed to ``releases_root/<version>`` in
one step, so a reader never sees half a release. Files are made read-only, and the
database keeps a frozen copy of each pair (``release_items.data``) and the manifest's hash,
so later edits to pairs never change a release and tampering is detectable
(``verify_release``).

A version is never reused: not when a row has it (whatever its status), not when a folder
has its name. A failed build keeps its row (status failed, with the error) as a record.
"""

from __future__ import annotations

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
from app.exporters.datacard import render_datacard
from app.exporters.manifest import MANIFEST_NAME, build_manifest, verify_folder, write_manifest
from app.exporters.sample import SPLITS, ReleaseSample
from app.exporters.tables import CsvWriter, ParquetWriter
from app.exporters.webdataset import (
    DEFAULT_SAMPLES_PER_SHARD,
    WebDatasetWriter,
    image_ref,
    shard_relpath,
)
from app.media import media_path, resolve_inside
from app.models import Frame, Pair, PairStatus, Release, ReleaseItem, User, Video, utcnow
from app.services import audit
from app.settings import get_settings

_logger = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
BUILDING_PREFIX = ".building-"
JPEG_QUALITY = 95
# Only these sources have a URL worth publishing; a local file's path or an upload's
# storage name says something about our servers, not about the data.
PUBLIC_SOURCE_KINDS = frozenset({"http", "youtube"})
_ITEM_BATCH = 1000


class ReleaseError(ValueError):
    pass


def split_for_video(video_id: int, *, val_fraction: float, test_fraction: float) -> str:
    """train, val or test for every pair of one video.

    Splits are drawn per video, not per pair: the frames of one lecture are near-duplicates
    (same slide, same stain, same narrator), so splitting a video's pairs would put copies
    of test images into train. A hash, not a random draw, so a video keeps its split in
    every release made with the same fractions.
    """
    digest = hashlib.sha256(f"quilt-release-split:{int(video_id)}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def create_release(
    *,
    session: Session,
    version: str,
    user: User | None,
    notes: str | None = None,
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    samples_per_shard: int = DEFAULT_SAMPLES_PER_SHARD,
) -> Release:
    """Freeze every approved pair into releases_root/<version>. Commits the session.

    Raises ReleaseError for a bad or taken version, for nothing to release, and for a
    failed build (the release row is then kept with status failed and the error).
    """
    _check_arguments(version, val_fraction, test_fraction, samples_per_shard)
    root = get_settings().releases_root
    root.mkdir(parents=True, exist_ok=True)
    final = root / version
    if session.scalar(select(Release.id).where(Release.version == version)) is not None:
        raise ReleaseError(f"release {version!r} exists; a release is never overwritten")
    if final.exists() or final.is_symlink():
        raise ReleaseError(f"{final} exists; a release is never overwritten")

    rows = _snapshot(session=session)
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
    )
    session.add(release)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ReleaseError(f"release {version!r} exists; a release is never overwritten") from None
    release_id = release.id

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
            },
            samples_per_shard=samples_per_shard,
        )
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


def _check_arguments(
    version: str, val_fraction: float, test_fraction: float, samples_per_shard: int
) -> None:
    if not isinstance(version, str) or not VERSION_RE.match(version):
        raise ReleaseError(
            "version: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ReleaseError("val and test fractions: each in [0, 1), together below 1")
    if samples_per_shard < 1:
        raise ReleaseError("samples per shard: at least 1")


def _snapshot(*, session: Session) -> list[Row]:
    """Every approved pair with its video and reviewer, in one query (one consistent read)."""
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
    return list(session.execute(stmt).all())


def _build(
    *, folder: Path, rows: list[Row], header: dict[str, Any], samples_per_shard: int
) -> _Built:
    splits = {
        row.id: split_for_video(
            row.video_id,
            val_fraction=header["val_fraction"],
            test_fraction=header["test_fraction"],
        )
        for row in rows
    }
    # Split by split, then pair id: each shard holds one split and consecutive keys.
    ordered = sorted(rows, key=lambda row: (SPLITS.index(splits[row.id]), row.id))
    created_at = dt.datetime.fromisoformat(header["created_at"])
    writers: list[SampleWriter] = []
    built = _Built()
    per_split: Counter[str] = Counter()
    try:
        writers.append(WebDatasetWriter(folder, mtime=created_at.timestamp()))
        writers.append(ParquetWriter(folder / "metadata.parquet"))
        writers.append(CsvWriter(folder / "metadata.csv"))
        for row in ordered:
            try:
                image, width, height = _load_jpeg(row.image_path)
            except Exception as exc:  # one unreadable image never fails the release
                _logger.warning("release: pair %s left out: %s", row.id, exc)
                built.skipped.append({"pair_id": row.id, "error": f"{type(exc).__name__}: {exc}"})
                continue
            split = splits[row.id]
            key = f"{len(built.items):09d}"
            shard = shard_relpath(split, per_split[split] // samples_per_shard)
            per_split[split] += 1
            data = _frozen_data(
                row, key=key, split=split, shard=shard, image=image, width=width, height=height
            )
            sample = ReleaseSample(
                key=key, split=split, shard=shard, image=image, caption=row.caption, metadata=data
            )
            for writer in writers:
                writer.write(sample)
            built.items.append({"pair_id": row.id, "key": key, "split": split, "data": data})
    finally:
        for writer in writers:
            writer.close()
    if not built.items:
        raise ReleaseError("no approved pair has a readable image")

    built.counts = {split: per_split[split] for split in SPLITS}
    header = {
        **header,
        "pair_count": len(built.items),
        "counts": built.counts,
        "shards": {s: -(-per_split[s] // samples_per_shard) for s in SPLITS},
        "skipped": built.skipped,
    }
    readme = render_datacard(manifest_header=header, notes=header["notes"])
    with (folder / "README.md").open("x", encoding="utf-8") as f:
        f.write(readme)
    built.manifest_sha256 = write_manifest(folder, build_manifest(folder, header=header))
    return built


def _load_jpeg(image_path: str) -> tuple[bytes, int, int]:
    """(JPEG bytes, width, height): the stored bytes when they are a JPEG, else re-encoded."""
    data = media_path(image_path).read_bytes()
    with Image.open(io.BytesIO(data)) as img:
        width, height = img.size
        if img.format in ("JPEG", "MPO"):  # MPO: a JPEG with extra images appended
            return data, width, height
        out = io.BytesIO()
        img.convert("RGB").save(out, format="JPEG", quality=JPEG_QUALITY)
        return out.getvalue(), width, height


def _frozen_data(
    row: Row, *, key: str, split: str, shard: str, image: bytes, width: int, height: int
) -> dict[str, Any]:
    """The pair as it is at release time: METADATA_COLUMNS plus pair_key, frame_id, scores,
    frame_flags and crop_box."""
    return {
        "key": key,
        "image_path": image_ref(shard, key),
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
    """fsync and chmod 0444 every file, before the folder becomes visible."""
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            path = Path(dirpath) / name
            with path.open("rb") as f:
                os.fsync(f.fileno())
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


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
