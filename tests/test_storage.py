"""Disk use per video and the media store's upkeep (``quilt gc``), on both databases and
real files: exact sizes, the admin video page and the API, retention by status, orphan
folders, dry runs, and links that point out of the media root (never followed, never
deleted through)."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from app.cli import main as quilt
from app.models import AuditEvent, StageRun, Video, VideoStatus, utcnow
from app.pipeline import stage
from app.services import storage
from app.services.ingest import queue_file, requeue_video
from app.settings import get_settings
from tests.conftest import DEMO_VIDEO
from tests.support.seed import make_video

HOUR = 3600
LONG_AGO = dt.timedelta(hours=5)


def _write(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return path


def _fetched(
    session, settings, status: str, *, source: int = 1000, finished_ago=LONG_AGO, **fields
) -> Video:
    """A video with a source file of ``source`` bytes, a frame and text.json, whose last
    stage finished ``finished_ago`` ago."""
    video = make_video(session, status=status, **fields)
    folder = settings.media_root / "videos" / str(video.id)
    _write(folder / "source.mp4", source)
    _write(folder / "frames" / "0001.jpg", 300)
    _write(folder / "text.json", 20)
    video.media_path = f"videos/{video.id}/source.mp4"
    session.add(
        StageRun(
            video_id=video.id,
            stage="align",
            status="done",
            finished_at=utcnow() - finished_ago,
        )
    )
    session.commit()
    return video


def _retention(monkeypatch, seconds: int | None) -> None:
    if seconds is None:
        monkeypatch.delenv("QUILT_DELETE_SOURCE_AFTER_S", raising=False)
    else:
        monkeypatch.setenv("QUILT_DELETE_SOURCE_AFTER_S", str(seconds))
    get_settings.cache_clear()


def _events(session, action: str) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- sizes ----------------------------------------------------------------------------


def test_sizes_are_exact_on_the_page_and_in_the_api(admin, session, settings):
    video = make_video(session)
    other = make_video(session, title="Kidney")
    folder = settings.media_root / "videos" / str(video.id)
    _write(folder / "source.mp4", 12_345)
    _write(folder / "source.mp4.part", 5)  # a download's leftover is source media too
    _write(folder / "frames" / "0001.jpg", 1_000)
    _write(folder / "frames" / "run" / "0002.jpg", 234)
    _write(folder / "text.json", 77)
    outside = _write(settings.var_dir / "outside" / "huge.bin", 50_000)
    os.symlink(outside, folder / "frames" / "linked.jpg")  # a link is neither counted nor read
    os.symlink(outside.parent, folder / "linked-dir")
    video.media_path = f"videos/{video.id}/source.mp4"
    _write(settings.media_root / "videos" / str(other.id) / "frames" / "1.jpg", 10)
    _write(settings.media_root / "videos" / "9999" / "frames" / "1.jpg", 400)  # no such row
    _write(settings.media_root / "uploads" / "abc.mp4", 66)
    _write(settings.releases_root / "v1" / "manifest.json", 9)
    session.commit()

    usage = storage.folder_usage(video.id)
    assert (usage.source_bytes, usage.frames_bytes, usage.other_bytes) == (12_350, 1_234, 77)
    assert usage.total_bytes == 13_661

    page = admin.get(f"/admin/videos/{video.id}").text
    assert 'title="13661 bytes"' in page and 'title="12350 bytes"' in page
    assert 'title="1234 bytes"' in page and 'title="77 bytes"' in page
    assert "source deleted" not in page

    totals = admin.get("/api/storage", params={"top": 1}).json()
    assert {k: totals[k] for k in ("source_bytes", "frames_bytes", "other_bytes")} == {
        "source_bytes": 12_350,
        "frames_bytes": 1_244,
        "other_bytes": 77,
    }
    assert (totals["orphan_folders"], totals["orphan_bytes"]) == (1, 400)
    assert (totals["uploads_bytes"], totals["releases_bytes"]) == (66, 9)
    assert totals["media_bytes"] == 13_661 + 10 + 400 + 66
    assert totals["video_count"] == 2 and totals["delete_source_after_s"] is None
    assert [v["video_id"] for v in totals["videos"]] == [video.id]  # the top one
    assert totals["videos"][0]["total_bytes"] == 13_661
    assert [v["video_id"] for v in admin.get("/api/storage").json()["videos"]] == [
        video.id,
        other.id,
    ]
    one = admin.get(f"/api/storage/videos/{other.id}").json()
    assert (one["frames_bytes"], one["source_bytes"], one["source_deleted"]) == (10, 0, False)
    assert admin.get("/api/storage/videos/4242").status_code == 404
    assert admin.get("/api/storage", params={"top": -1}).status_code == 422


@pytest.fixture
def reviewer_client(web_app, session):
    """A second client, signed in as a reviewer, next to ``admin``."""
    from fastapi.testclient import TestClient

    from tests.support.seed import make_user
    from tests.support.web import api_login

    make_user(session, "rita")
    with TestClient(web_app, follow_redirects=False) as other:
        api_login(other, "rita")
        yield other


def test_reviewers_may_not_see_storage(reviewer_client, session):
    video = make_video(session)
    for url in ("/api/storage", f"/api/storage/videos/{video.id}"):
        assert reviewer_client.get(url).status_code == 403, url


# --- retention ------------------------------------------------------------------------


def test_retention_deletes_only_finished_sources_and_keeps_the_rest(
    admin, session, settings, monkeypatch, capsys
):
    _retention(monkeypatch, HOUR)
    done = _fetched(session, settings, VideoStatus.done, source=1000)
    skipped = _fetched(session, settings, VideoStatus.skipped, source=2000)
    recent = _fetched(session, settings, VideoStatus.done, finished_ago=dt.timedelta(minutes=5))
    kept = {
        status: _fetched(session, settings, status)
        for status in ("queued", "processing", "failed", "cancelled")
    }
    # Done, but a stage of it was queued again since: its source is in use.
    busy = _fetched(session, settings, VideoStatus.done)
    session.add(StageRun(video_id=busy.id, stage="frames", status="running"))
    session.commit()
    # Done, and its source is a hard link of an upload: deleting it frees nothing.
    linked = make_video(session, status=VideoStatus.done, source_kind="upload")
    upload = _write(settings.media_root / "uploads" / "u.mp4", 700)
    (settings.media_root / "videos" / str(linked.id)).mkdir(parents=True)
    os.link(upload, settings.media_root / "videos" / str(linked.id) / "source.mp4")
    linked.media_path, linked.source_url = f"videos/{linked.id}/source.mp4", str(upload)
    session.add(
        StageRun(video_id=linked.id, stage="align", status="done", finished_at=utcnow() - LONG_AGO)
    )
    session.commit()

    dry = storage.collect_garbage(session, dry_run=True)
    assert [(i.kind, i.video_id, i.path, i.bytes) for i in dry.items] == [
        ("source", done.id, f"videos/{done.id}/source.mp4", 1000),
        ("source", skipped.id, f"videos/{skipped.id}/source.mp4", 2000),
        ("source", linked.id, f"videos/{linked.id}/source.mp4", 700),
    ]
    assert (dry.bytes, dry.freed_bytes) == (3700, 3000)
    assert (settings.media_root / done.media_path).is_file()
    assert _events(session, storage.ACTION_SOURCE_DELETED) == []

    # The command prints what it would delete, with sizes, and deletes nothing.
    assert quilt(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would delete source of video {done.id}: videos/{done.id}/source.mp4 1000 bytes" in out
    assert f"videos/{linked.id}/source.mp4 700 bytes (another link keeps the data)" in out
    assert "3 items, 3700 bytes" in out and "would free 3.0 KB" in out
    assert (settings.media_root / done.media_path).is_file()

    assert quilt(["gc"]) == 0
    assert "3 items, 3700 bytes (3.7 KB); freed 3.0 KB" in capsys.readouterr().out
    session.expire_all()
    for video in (done, skipped, linked):
        folder = settings.media_root / "videos" / str(video.id)
        assert not (folder / "source.mp4").exists()
        assert session.get(Video, video.id).media_path == f"videos/{video.id}/source.mp4"
    for video in (done, skipped):  # frames and text stay
        folder = settings.media_root / "videos" / str(video.id)
        assert (folder / "frames" / "0001.jpg").is_file() and (folder / "text.json").is_file()
    assert upload.is_file()  # the upload is the original: re-fetching copies it again
    for video in (recent, busy, *kept.values()):
        assert (settings.media_root / video.media_path).stat().st_size == 1000, video.status
    events = {e.target: e for e in _events(session, storage.ACTION_SOURCE_DELETED)}
    assert set(events) == {f"video:{v.id}" for v in (done, skipped, linked)}
    assert events[f"video:{done.id}"].details == {
        "paths": [f"videos/{done.id}/source.mp4"],
        "bytes": 1000,
        "retention_s": HOUR,
    }

    page = admin.get(f"/admin/videos/{done.id}").text
    assert "source deleted" in page and "run again from fetch" in page
    assert 'title="320 bytes"' in page  # frames + text.json
    api = admin.get(f"/api/storage/videos/{done.id}").json()
    assert api["source_deleted"] is True and api["source_deleted_at"] is not None
    assert "source deleted" not in admin.get(f"/admin/videos/{recent.id}").text

    # Nothing is left to delete; a second run is a no-op.
    again = storage.collect_garbage(session)
    assert again.items == [] and again.skipped == []


def test_without_retention_sources_are_kept(session, settings, monkeypatch, capsys):
    _retention(monkeypatch, None)
    done = _fetched(session, settings, VideoStatus.done)
    assert storage.collect_garbage(session).items == []
    assert (settings.media_root / done.media_path).is_file()
    assert quilt(["gc", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["retention_s"] is None and report["items"] == []
    # Retention 0: everything finished goes, at once.
    _retention(monkeypatch, 0)
    assert [i.video_id for i in storage.collect_garbage(session).items] == [done.id]


def test_fetch_places_a_deleted_source_again(session, settings, monkeypatch, tmp_path):
    from workers.stage_runner import run_stage  # noqa: PLC0415 - the pipeline's fetch stage

    original = tmp_path / "lecture.mp4"
    original.write_bytes(DEMO_VIDEO.read_bytes())
    video = queue_file(session=session, path=original, user=None, trusted=True, enqueue=False)
    run_stage(video.id, stage("fetch"), chain=False)
    session.expire_all()
    video = session.get(Video, video.id)
    source = settings.media_root / video.media_path
    assert source.is_file()
    video.status = VideoStatus.done
    session.commit()

    _retention(monkeypatch, 0)
    assert [i.path for i in storage.collect_garbage(session).items] == [video.media_path]
    assert not source.exists() and original.is_file()

    requeue_video(session=session, video=video, user=None, send=False)
    run_stage(video.id, stage("fetch"), chain=False)
    assert source.read_bytes() == original.read_bytes()
    assert not storage.video_storage(session, video).source_deleted


# --- orphans and links ------------------------------------------------------------------


def test_orphan_folders_are_listed_then_removed(session, settings, monkeypatch, capsys):
    _retention(monkeypatch, None)
    video = _fetched(session, settings, VideoStatus.done)
    videos = settings.media_root / "videos"
    _write(videos / "9001" / "source.mp4", 500)
    _write(videos / "9001" / "frames" / "a.jpg", 50)
    _write(videos / "not-a-video" / "notes.txt", 5)  # not ours to judge
    _write(settings.media_root / "uploads" / "u.mp4", 5)

    assert quilt(["gc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sources are kept" in out
    assert "would delete orphan of video 9001: videos/9001 550 bytes" in out
    assert (videos / "9001").is_dir()

    report = storage.collect_garbage(session)
    assert [(i.kind, i.path, i.bytes, i.freed_bytes) for i in report.items] == [
        ("orphan", "videos/9001", 550, 550)
    ]
    assert not (videos / "9001").exists()
    assert (videos / "not-a-video" / "notes.txt").is_file()
    assert (settings.media_root / video.media_path).is_file()
    assert (settings.media_root / "uploads" / "u.mp4").is_file()
    [event] = _events(session, storage.ACTION_ORPHAN_REMOVED)
    assert (event.target, event.details) == ("video:9001", {"path": "videos/9001", "bytes": 550})


def test_nothing_outside_the_media_root_is_touched(session, settings, monkeypatch):
    _retention(monkeypatch, 0)
    outside = settings.var_dir / "outside"
    precious = _write(outside / "precious.mp4", 4096)
    _write(outside / "tree" / "keep.txt", 10)
    videos = settings.media_root / "videos"

    # A finished video whose source is a link out of the media root.
    linked_source = _fetched(session, settings, VideoStatus.done)
    source = settings.media_root / linked_source.media_path
    source.unlink()
    os.symlink(precious, source)
    # A finished video whose whole folder is a link out of the media root.
    linked_folder = make_video(session, status=VideoStatus.done)
    _write(outside / "elsewhere" / "source.mp4", 99)
    os.symlink(outside / "elsewhere", videos / str(linked_folder.id))
    linked_folder.media_path = f"videos/{linked_folder.id}/source.mp4"
    session.commit()
    # An orphan that is a link, and an orphan with links inside it.
    os.symlink(outside / "tree", videos / "9002")
    _write(videos / "9003" / "frames" / "a.jpg", 7)
    os.symlink(outside / "tree", videos / "9003" / "frames" / "escape")
    os.symlink(precious, videos / "9003" / "source.mp4")

    assert storage.folder_usage(linked_folder.id).total_bytes == 0
    assert storage.folder_usage(linked_source.id).source_bytes == 0

    report = storage.collect_garbage(session)
    assert [(i.kind, i.path, i.bytes) for i in report.items] == [("orphan", "videos/9003", 7)]
    assert {(s.path, s.reason) for s in report.skipped} == {
        (f"videos/{linked_source.id}/source.mp4", "a link: left alone"),
        (f"videos/{linked_folder.id}", "a link: left alone"),
        ("videos/9002", "a link: left alone"),
    }
    assert precious.read_bytes() == b"x" * 4096
    assert (outside / "tree" / "keep.txt").is_file()
    assert (outside / "elsewhere" / "source.mp4").is_file()
    assert source.is_symlink() and (videos / "9002").is_symlink()
    assert not (videos / "9003").exists()


def test_a_media_root_reached_through_a_link_is_left_alone(session, settings, monkeypatch):
    """``videos/`` itself a link: nothing below it is deleted."""
    _retention(monkeypatch, 0)
    real = settings.var_dir / "elsewhere-videos"
    _write(real / "9004" / "frames" / "a.jpg", 3)
    os.symlink(real, settings.media_root / "videos")
    report = storage.collect_garbage(session)
    assert report.items == [] and [s.path for s in report.skipped] == ["videos"]
    assert (real / "9004" / "frames" / "a.jpg").is_file()
