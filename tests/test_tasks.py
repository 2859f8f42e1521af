"""Task functions called directly against the real database (no eager mode, no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Channel, Pair, StageRun, Video
from app.services.ingest import queue_file, queue_url
from app.settings import get_settings
from tests.support import media
from workers import tasks
from workers.stage_runner import run_all_inline


@pytest.fixture
def loopback_allowed(settings, monkeypatch):
    """The file server's 127.0.0.1 on the fetch allow-list (refused otherwise)."""
    monkeypatch.setenv("QUILT_FETCH_ALLOW_NETWORKS", '["127.0.0.1"]')
    get_settings.cache_clear()
    return get_settings()


@pytest.mark.usefixtures("loopback_allowed")
def test_expand_source_lists_feed_into_video_rows(settings, session, tmp_path: Path, file_server):
    served = tmp_path / "site"
    feed = media.lecture_feed(served, file_server(served), ["one", "two"], title="Lectures")
    channel = queue_url(session=session, url=feed, user=None, kind="channel", enqueue=False)
    assert tasks.expand_source(channel.id) == 2
    assert tasks.expand_source(channel.id) == 0  # listing again adds nothing twice
    session.expire_all()
    videos = session.scalars(select(Video).where(Video.channel_id == channel.id)).all()
    assert sorted(v.title for v in videos) == ["Lecture one", "Lecture two"]
    assert session.get(Channel, channel.id).status == "done"


@pytest.mark.usefixtures("loopback_allowed")
def test_expand_source_failure_is_recorded(settings, session, file_server, tmp_path: Path):
    base = file_server(tmp_path)
    channel = queue_url(
        session=session, url=f"{base}/missing.xml", user=None, kind="channel", enqueue=False
    )
    assert tasks.expand_source(channel.id) == 0
    session.expire_all()
    row = session.get(Channel, channel.id)
    assert row.status == "failed" and row.error.startswith("could not list")


@pytest.mark.parametrize(
    ("make", "status", "error"),
    [
        (media.empty_file, "failed", "fetch: empty file (0 bytes)"),
        (media.non_video_file, "failed", "fetch: not a readable video file"),
        (media.audio_only_file, "failed", "fetch: audio-only file: no video stream"),
        (media.corrupt_video, "failed", "fetch: not a readable video file"),
        (media.truncated_video, "failed", "fetch: cannot decode the middle of the video"),
        (media.video_without_audio, "skipped", "asr: no audio track: nothing to transcribe"),
    ],
)
def test_bad_input_ends_with_status_and_reason(settings, session, tmp_path, make, status, error):
    video = queue_file(session=session, path=make(tmp_path), user=None, trusted=True, enqueue=False)
    assert run_all_inline(video.id) == status
    session.expire_all()
    row = session.get(Video, video.id)
    assert row.error.startswith(error)
    assert "Traceback" not in row.error and "\n" not in row.error
    runs = {
        r.stage: r for r in session.scalars(select(StageRun).where(StageRun.video_id == video.id))
    }
    failed_stage = error.split(":")[0]
    assert runs[failed_stage].status == status
    assert all(
        r.status == "skipped"
        for s, r in runs.items()
        if ["fetch", "asr", "frames", "text", "align"].index(s)
        > ["fetch", "asr", "frames", "text", "align"].index(failed_stage)
    )
    assert session.scalar(select(func.count()).select_from(Pair)) == 0
