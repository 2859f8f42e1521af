"""Task functions called directly against the real database (no eager mode, no broker)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Channel, Pair, StageRun, Video
from app.services.ingest import queue_file, queue_url
from tests.conftest import DEMO_VIDEO
from tests.support import media
from workers import tasks
from workers.stage_runner import run_all_inline


def test_expand_source_lists_feed_into_video_rows(settings, session, tmp_path: Path, file_server):
    served = tmp_path / "site"
    served.mkdir()
    for name in ("one", "two"):
        shutil.copy(DEMO_VIDEO, served / f"{name}.mp4")
    base = file_server(served)
    items = "".join(
        f"<item><title>Lecture {n}</title><link>{base}/{n}.mp4</link>"
        f'<enclosure url="{base}/{n}.mp4" type="video/mp4" length="1"/><guid>{n}</guid></item>'
        for n in ("one", "two")
    )
    (served / "feed.xml").write_text(
        '<?xml version="1.0"?><rss version="2.0"><channel><title>Lectures</title>'
        f"<link>{base}/</link><description>d</description>{items}</channel></rss>"
    )
    channel = queue_url(
        session=session, url=f"{base}/feed.xml", user=None, kind="channel", enqueue=False
    )
    assert tasks.expand_source(channel.id) == 2
    assert tasks.expand_source(channel.id) == 0  # listing again adds nothing twice
    session.expire_all()
    videos = session.scalars(select(Video).where(Video.channel_id == channel.id)).all()
    assert sorted(v.title for v in videos) == ["Lecture one", "Lecture two"]
    assert session.get(Channel, channel.id).status == "done"


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
