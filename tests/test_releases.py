"""Dataset releases on real databases (SQLite and Postgres) with real image files."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app import release_cli
from app.exporters.manifest import MANIFEST_NAME
from app.exporters.sample import METADATA_COLUMNS
from app.models import AuditEvent, Frame, Pair, PairStatus, Release, ReleaseItem, User, Video
from app.services.releases import (
    ReleaseError,
    create_release,
    release_dir,
    split_for_video,
    verify_release,
)
from app.settings import Settings

HOSTILE = (
    '<script>alert("x")</script>\n'
    "\"double\" and 'single' quotes, commas, semicolons; tabs\there\r\n"
    "ünïcödé 🧫 ½ — 組織 \\ backslash # hash"
)


# --- seeding -----------------------------------------------------------------------------


def _image_bytes(color: tuple[int, int, int], fmt: str) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), color).save(out, format=fmt)
    return out.getvalue()


def _user(session: Session, username: str = "dr_path") -> User:
    user = User(username=username, password_hash="not-a-real-hash", role="reviewer")
    session.add(user)
    session.flush()
    return user


def _video(session: Session, n: int, *, source_kind: str = "youtube") -> Video:
    url = (
        f"https://www.youtube.com/watch?v=lecture{n}"
        if source_kind == "youtube"
        else f"/srv/{n}.mp4"
    )
    video = Video(source_kind=source_kind, source_url=url, title=f"Lecture {n}", status="done")
    session.add(video)
    session.flush()
    return video


def _pair(
    session: Session,
    settings: Settings,
    *,
    video: Video,
    n: int,
    status: PairStatus = PairStatus.approved,
    reviewer: User | None = None,
    caption: str | None = None,
    fmt: str = "JPEG",
    write_image: bool = True,
) -> Pair:
    rel = f"frames/{video.id}/{n}.{fmt.lower()}"
    if write_image:
        path = settings.media_root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_image_bytes((n * 7 % 256, 80, 160), fmt))
    frame = Frame(
        video_id=video.id,
        image_path=rel,
        t_s=n * 10.0 + 1,
        start_s=n * 10.0,
        end_s=n * 10.0 + 5,
        width=32,
        height=24,
        histology_score=0.9,
        is_histology=True,
        magnification=20,
        magnification_confidence=0.7,
        flags={"face": True, "text_overlay": False, "quality": {"ok": True}},
        crop_box=[0, 0, 24, 24],
    )
    session.add(frame)
    session.flush()
    approved = status == PairStatus.approved
    pair = Pair(
        pair_key=hashlib.sha256(f"{video.id}:{n}".encode()).hexdigest(),
        video_id=video.id,
        frame_id=frame.id,
        image_path=rel,
        start_s=n * 10.0,
        end_s=n * 10.0 + 5,
        caption=caption if caption is not None else f"Caption {video.id}/{n}: granuloma",
        noisy_text=f"noisy {n}",
        corrected_text=f"corrected {n}",
        medical_text=f"medical {n}",
        roi_text=f"roi {n}",
        umls=["C0018188", "C0205082"],
        keywords=["granuloma", "giant cells"],
        magnification=20,
        subpathology="granulomatous" if n % 2 else None,
        scores={"time": 0.8},
        confidence=0.75,
        status=status,
        reviewed_by_id=reviewer.id if reviewer and approved else None,
        reviewed_at=dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC) if approved else None,
    )
    session.add(pair)
    session.flush()
    return pair


def _seed(session: Session, settings: Settings) -> dict:
    """Two videos: 4 approved pairs (one a PNG), 1 pending, 1 rejected."""
    reviewer = _user(session)
    v1 = _video(session, 1)
    v2 = _video(session, 2, source_kind="file")
    approved = [
        _pair(session, settings, video=v1, n=1, reviewer=reviewer),
        _pair(session, settings, video=v1, n=2, reviewer=reviewer, caption=HOSTILE),
        _pair(session, settings, video=v2, n=3, reviewer=reviewer, fmt="PNG"),
        _pair(session, settings, video=v2, n=4, reviewer=reviewer),
    ]
    pending = _pair(session, settings, video=v1, n=5, status=PairStatus.pending)
    rejected = _pair(session, settings, video=v2, n=6, status=PairStatus.rejected)
    session.commit()
    return {"reviewer": reviewer, "approved": approved, "pending": pending, "rejected": rejected}


def _tree(folder: Path) -> dict[str, tuple[str, float]]:
    return {
        p.relative_to(folder).as_posix(): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_mtime,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _tar_members(folder: Path) -> dict[str, bytes]:
    members = {}
    for shard in sorted((folder / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for info in tar.getmembers():
                members[f"shards/{shard.name}#{info.name}"] = tar.extractfile(info).read()
    return members


def _make_writable(folder: Path) -> None:
    for dirpath, _dirs, files in os.walk(folder):
        Path(dirpath).chmod(0o755)
        for name in files:
            (Path(dirpath) / name).chmod(0o644)


# --- tests -------------------------------------------------------------------------------


def test_release_freezes_approved_pairs_in_every_format(session: Session, settings: Settings):
    seeded = _seed(session, settings)
    release = create_release(
        session=session, version="v1.0", user=seeded["reviewer"], notes="first release"
    )

    assert release.status == "ready" and release.error is None
    assert release.pair_count == 4
    assert release.path == "v1.0"
    folder = release_dir(release)
    assert folder == settings.releases_root / "v1.0"
    # Nothing else is left in releases_root (no .building-* folder).
    assert [p.name for p in settings.releases_root.iterdir()] == ["v1.0"]
    assert (
        release.manifest_sha256 == hashlib.sha256((folder / MANIFEST_NAME).read_bytes()).hexdigest()
    )

    items = session.scalars(
        select(ReleaseItem).where(ReleaseItem.release_id == release.id).order_by(ReleaseItem.key)
    ).all()
    approved_ids = {p.id for p in seeded["approved"]}
    assert {i.pair_id for i in items} == approved_ids
    assert [i.key for i in items] == [f"{n:09d}" for n in range(4)]
    by_key = {i.key: i for i in items}

    # WebDataset shards: KEY.jpg, KEY.txt, KEY.json for each pair, nothing else.
    members = _tar_members(folder)
    assert len(members) == 3 * 4
    pairs_by_id = {p.id: p for p in seeded["approved"]}
    for item in items:
        pair = pairs_by_id[item.pair_id]
        shard, name = item.data["image_path"].split("#")
        assert shard == f"shards/{item.split}-000000.tar" and name == f"{item.key}.jpg"
        jpeg = members[item.data["image_path"]]
        source = (settings.media_root / pair.image_path).read_bytes()
        if pair.image_path.endswith(".jpeg"):
            assert jpeg == source  # JPEGs are shipped as stored, never re-encoded
        else:
            assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
        assert hashlib.sha256(jpeg).hexdigest() == item.data["image_sha256"]
        assert members[f"{shard}#{item.key}.txt"].decode() == pair.caption
        metadata = json.loads(members[f"{shard}#{item.key}.json"])
        assert metadata == item.data
        assert metadata["pair_id"] == pair.id and metadata["video_id"] == pair.video_id
        assert metadata["reviewed_by"] == "dr_path"
        assert metadata["reviewed_at"] == "2025-05-01T12:00:00+00:00"
        assert metadata["med_umls_ids"] == ["C0018188", "C0205082"]
        assert (metadata["width"], metadata["height"]) == (32, 24)
        # What the frames stage and the reviewer said of the image travels with it.
        assert metadata["histology_score"] == 0.9 and metadata["magnification_confidence"] == 0.7
        assert metadata["frame_flags"]["face"] is True and metadata["crop_box"] == [0, 0, 24, 24]
        assert metadata["subpathology"] == (pair.subpathology or "")
        # Local file paths are not published.
        assert metadata["source_url"] == (
            "" if pair.video_id == seeded["approved"][2].video_id else pair.video.source_url
        )

    # metadata.parquet: the columns in order, lists kept as lists.
    table = pq.read_table(folder / "metadata.parquet")
    assert tuple(table.column_names) == METADATA_COLUMNS
    assert table.num_rows == 4
    assert table.schema.field("keywords").type == pa.list_(pa.string())
    for row in table.to_pylist():
        data = by_key[row["key"]].data
        assert row["keywords"] == data["keywords"] and row["caption"] == data["caption"]
        assert row["subpathology"] == data["subpathology"] and row["histology_score"] == 0.9
        assert row["reviewed_at"] == dt.datetime(2025, 5, 1, 12, 0, tzinfo=dt.UTC)

    # metadata.csv: the same columns, lists JSON-encoded.
    with (folder / "metadata.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == METADATA_COLUMNS
    assert len(rows) == 4
    for row in rows:
        data = by_key[row["key"]].data
        assert json.loads(row["med_umls_ids"]) == data["med_umls_ids"]
        assert json.loads(row["keywords"]) == data["keywords"]
        assert row["caption"] == data["caption"] and row["image_path"] == data["image_path"]

    # Manifest: every file, hashes that verify; files and folders are read-only.
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    assert manifest["version"] == "v1.0" and manifest["pair_count"] == 4
    assert sum(manifest["counts"].values()) == 4 and manifest["schema_version"] == 1
    assert set(manifest["files"]) == set(_tree(folder)) - {MANIFEST_NAME}
    assert {"README.md", "metadata.csv", "metadata.parquet"} <= set(manifest["files"])
    assert verify_release(folder, expected_manifest_sha256=release.manifest_sha256) == []
    for path in [folder, *folder.rglob("*")]:
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path
    readme = (folder / "README.md").read_text()
    assert "first release" in readme and "`med_umls_ids`" in readme

    event = session.scalar(select(AuditEvent).where(AuditEvent.action == "release.create"))
    assert event.target == f"release:{release.id}" and event.details["pair_count"] == 4


def test_hostile_caption_round_trips(session: Session, settings: Settings):
    seeded = _seed(session, settings)
    hostile_id = seeded["approved"][1].id
    release = create_release(session=session, version="hostile", user=None)
    folder = release_dir(release)
    item = session.scalar(select(ReleaseItem).where(ReleaseItem.pair_id == hostile_id))
    session.expire_all()
    item = session.get(ReleaseItem, item.id)  # read back from the database
    assert item.data["caption"] == HOSTILE

    shard, _ = item.data["image_path"].split("#")
    members = _tar_members(folder)
    assert members[f"{shard}#{item.key}.txt"].decode("utf-8") == HOSTILE
    assert json.loads(members[f"{shard}#{item.key}.json"])["caption"] == HOSTILE
    parquet_rows = {r["key"]: r for r in pq.read_table(folder / "metadata.parquet").to_pylist()}
    assert parquet_rows[item.key]["caption"] == HOSTILE
    with (folder / "metadata.csv").open(encoding="utf-8", newline="") as f:
        csv_rows = {r["key"]: r for r in csv.DictReader(f)}
    assert csv_rows[item.key]["caption"] == HOSTILE
    assert len(csv_rows) == 4  # the newlines inside the caption did not split a row


def test_verify_release_detects_tampering(session: Session, settings: Settings):
    _seed(session, settings)
    release = create_release(session=session, version="v1", user=None)
    folder = release_dir(release)
    assert verify_release(folder) == []
    _make_writable(folder)

    csv_path = folder / "metadata.csv"
    csv_path.write_bytes(csv_path.read_bytes().replace(b"granuloma", b"GRANULOMA", 1))
    (folder / "shards" / "extra.txt").write_text("not part of the release")
    (folder / "README.md").unlink()
    problems = verify_release(folder)
    assert problems == [
        "README.md: missing",
        "metadata.csv: sha256 mismatch",
        "shards/extra.txt: extra file, not in manifest",
    ]

    # A manifest rewritten to match the tampered files is caught by the recorded hash.
    manifest = json.loads((folder / MANIFEST_NAME).read_text())
    del manifest["files"]["README.md"]
    manifest["files"]["metadata.csv"]["sha256"] = hashlib.sha256(csv_path.read_bytes()).hexdigest()
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    (folder / "shards" / "extra.txt").unlink()
    assert verify_release(folder) == []
    assert verify_release(folder, expected_manifest_sha256=release.manifest_sha256) == [
        "manifest.json: sha256 differs from the one recorded at release"
    ]

    # A manifest that points outside the release is refused, not followed.
    manifest["files"]["../outside.txt"] = {"sha256": "0" * 64, "bytes": 1}
    (folder / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert verify_release(folder) == ["../outside.txt: not a plain file inside the release"]


def test_existing_version_is_never_overwritten(session: Session, settings: Settings):
    seeded = _seed(session, settings)
    release = create_release(session=session, version="v1", user=None)
    folder = release_dir(release)
    before = _tree(folder)

    # More approved pairs now exist, but v1 stays as it was.
    _pair(session, settings, video=seeded["approved"][0].video, n=7, reviewer=seeded["reviewer"])
    session.commit()
    with pytest.raises(ReleaseError, match="exists"):
        create_release(session=session, version="v1", user=None)
    assert _tree(folder) == before
    assert session.scalar(select(func.count()).select_from(Release)) == 1

    # A folder on disk with that name (no database row) is never replaced either.
    squatter = settings.releases_root / "v2"
    squatter.mkdir()
    (squatter / "keep.txt").write_text("someone else's")
    with pytest.raises(ReleaseError, match="exists"):
        create_release(session=session, version="v2", user=None)
    assert (squatter / "keep.txt").read_text() == "someone else's"
    assert session.scalar(select(func.count()).select_from(Release)) == 1


@pytest.mark.parametrize("version", ["", ".hidden", "../v1", "v1/../x", "a b", "x" * 65, "-v"])
def test_bad_versions_are_refused(session: Session, settings: Settings, version: str):
    _seed(session, settings)
    with pytest.raises(ReleaseError, match="version"):
        create_release(session=session, version=version, user=None)
    assert list(settings.releases_root.iterdir()) == []


def test_no_approved_pairs_is_an_error(session: Session, settings: Settings):
    video = _video(session, 1)
    _pair(session, settings, video=video, n=1, status=PairStatus.pending)
    session.commit()
    with pytest.raises(ReleaseError, match="no approved pairs"):
        create_release(session=session, version="v1", user=None)
    assert session.scalar(select(func.count()).select_from(Release)) == 0
    assert list(settings.releases_root.iterdir()) == []


def test_later_edits_do_not_change_a_release(session: Session, settings: Settings):
    seeded = _seed(session, settings)
    release = create_release(session=session, version="v1", user=None)
    frozen = {
        i.pair_id: dict(i.data)
        for i in session.scalars(select(ReleaseItem).where(ReleaseItem.release_id == release.id))
    }
    edited, revoked = seeded["approved"][0], seeded["approved"][3]
    edited.caption = "edited after the release"
    edited.keywords = ["changed"]
    revoked.status = PairStatus.rejected
    session.commit()
    session.expire_all()

    items = session.scalars(select(ReleaseItem).where(ReleaseItem.release_id == release.id)).all()
    assert {i.pair_id: i.data for i in items} == frozen
    assert (
        verify_release(release_dir(release), expected_manifest_sha256=release.manifest_sha256) == []
    )

    v2 = create_release(session=session, version="v2", user=None)
    v2_items = {
        i.pair_id: i.data
        for i in session.scalars(select(ReleaseItem).where(ReleaseItem.release_id == v2.id))
    }
    assert revoked.id not in v2_items
    assert v2_items[edited.id]["caption"] == "edited after the release"
    assert frozen[edited.id]["caption"] != "edited after the release"


def test_splits_follow_videos_and_are_deterministic(session: Session, settings: Settings):
    reviewer = _user(session)
    videos = [_video(session, n) for n in range(12)]
    for video in videos:
        for n in range(3):
            _pair(session, settings, video=video, n=n, reviewer=reviewer)
    session.commit()
    fractions = {"val_fraction": 0.25, "test_fraction": 0.25}

    splits_by_release = []
    for version in ("a", "b"):
        release = create_release(session=session, version=version, user=None, **fractions)
        items = session.scalars(select(ReleaseItem).where(ReleaseItem.release_id == release.id))
        by_video: dict[int, set[str]] = {}
        by_pair = {}
        for item in items:
            by_video.setdefault(item.data["video_id"], set()).add(item.split)
            by_pair[item.pair_id] = item.split
            assert item.data["split"] == item.split
        # All pairs of a video in one split, the one its hash picks.
        assert by_video == {v.id: {split_for_video(v.id, **fractions)} for v in videos}
        splits_by_release.append(by_pair)
    assert splits_by_release[0] == splits_by_release[1]
    assert set(splits_by_release[0].values()) == {"train", "val", "test"}


def test_shards_roll_over(session: Session, settings: Settings):
    reviewer = _user(session)
    video = _video(session, 1)
    for n in range(5):
        _pair(session, settings, video=video, n=n, reviewer=reviewer)
    session.commit()
    release = create_release(
        session=session,
        version="small-shards",
        user=None,
        val_fraction=0,
        test_fraction=0,
        samples_per_shard=2,
        min_shards=1,
    )
    folder = release_dir(release)
    assert sorted(p.name for p in (folder / "shards").iterdir()) == [
        "sizes.json",
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
    ]
    with tarfile.open(folder / "shards" / "train-000002.tar") as tar:
        assert tar.getnames() == ["000000004.jpg", "000000004.txt", "000000004.json"]
    sizes = json.loads((folder / "shards" / "sizes.json").read_text())
    assert sizes == {"train-000000.tar": 2, "train-000001.tar": 2, "train-000002.tar": 1}

    # The default keeps at least 4 shards (open_clip's default workers) per split that has
    # 4 samples or more, as even as can be.
    spread = create_release(
        session=session, version="spread", user=None, val_fraction=0, test_fraction=0
    )
    sizes = json.loads((release_dir(spread) / "shards" / "sizes.json").read_text())
    assert sizes == {f"train-{i:06d}.tar": n for i, n in enumerate([2, 1, 1, 1])}


def test_unreadable_images_are_left_out_and_all_unreadable_fails(
    session: Session, settings: Settings
):
    reviewer = _user(session)
    video = _video(session, 1)
    good = _pair(session, settings, video=video, n=1, reviewer=reviewer)
    missing = _pair(session, settings, video=video, n=2, reviewer=reviewer, write_image=False)
    session.commit()

    release = create_release(session=session, version="v1", user=None)
    assert release.pair_count == 1
    manifest = json.loads((release_dir(release) / MANIFEST_NAME).read_text())
    assert [s["pair_id"] for s in manifest["skipped"]] == [missing.id]
    items = session.scalars(select(ReleaseItem).where(ReleaseItem.release_id == release.id)).all()
    assert [i.pair_id for i in items] == [good.id]

    (settings.media_root / good.image_path).unlink()
    with pytest.raises(ReleaseError, match="no approved pair has a readable image"):
        create_release(session=session, version="v2", user=None)
    failed = session.scalar(select(Release).where(Release.version == "v2"))
    assert failed.status == "failed" and "readable" in failed.error and failed.path is None
    assert (
        session.scalar(
            select(func.count()).select_from(ReleaseItem).where(ReleaseItem.release_id == failed.id)
        )
        == 0
    )
    # The temporary build folder is gone; v1 is untouched.
    assert sorted(p.name for p in settings.releases_root.iterdir()) == ["v1"]
    assert session.scalar(select(AuditEvent).where(AuditEvent.action == "release.fail"))
    # A failed version stays taken.
    with pytest.raises(ReleaseError, match="exists"):
        create_release(session=session, version="v2", user=None)


def test_cli(
    session: Session, settings: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
):
    _seed(session, settings)
    session.close()

    assert release_cli.main(["create", "2025.06", "--notes", "June", "--user", "dr_path"]) == 0
    out = capsys.readouterr().out.splitlines()
    folder = settings.releases_root / "2025.06"
    assert out[0] == str(folder)
    assert out[1].startswith("4 pairs (train ")

    assert release_cli.main(["create", "2025.06"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.strip().splitlines()) == 1 and "exists" in captured.err

    assert release_cli.main(["create", "../evil"]) == 1
    assert "version" in capsys.readouterr().err

    assert release_cli.main(["verify", "2025.06"]) == 0
    assert capsys.readouterr().out.strip() == f"{folder}: ok"
    assert release_cli.main(["verify", str(folder)]) == 0
    capsys.readouterr()

    assert release_cli.main(["list"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("2025.06\tready\t4\t")

    _make_writable(folder)
    (folder / "metadata.parquet").write_bytes(b"not parquet")
    assert release_cli.main(["verify", "2025.06"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{folder}: 1 problem(s)"
    assert "metadata.parquet: size" in out[1]

    assert release_cli.main(["verify", "nope"]) == 1
    assert "no release or folder" in capsys.readouterr().err

    # A manifest rewritten to match tampered files fails by path as by version (and so
    # does a copy of the release elsewhere, found by the version its manifest names).
    manifest_path = folder / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["metadata.parquet"] = {
        "sha256": hashlib.sha256(b"not parquet").hexdigest(),
        "bytes": len(b"not parquet"),
    }
    manifest_path.write_text(json.dumps(manifest))
    copy = tmp_path / "copied release"
    shutil.copytree(folder, copy)
    for target in ("2025.06", str(folder), str(copy)):
        assert release_cli.main(["verify", target]) == 1, target
        assert "recorded at release" in capsys.readouterr().out
    manifest.pop("version", None)
    (copy / MANIFEST_NAME).chmod(0o644)
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    assert release_cli.main(["verify", str(copy)]) == 0
    assert "not a release of this database" in capsys.readouterr().out

    with Session(bind=session.get_bind()) as check:
        release = check.scalar(select(Release).where(Release.version == "2025.06"))
        creator = check.get(User, release.created_by_id)
        assert creator.username == "dr_path" and release.notes == "June"
