"""Ingest requests: classification, the import-folder guard, uploads, and real enqueueing
on the embedded filesystem broker."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Channel, StageRun, Video
from app.services.ingest import IngestError, classify_url, queue_file, queue_upload, queue_url
from tests.conftest import DEMO_VIDEO


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.youtube.com/watch?v=abc123", ("youtube", False)),
        ("https://youtu.be/abc123", ("youtube", False)),
        ("https://www.youtube.com/@PathologyChannel", ("youtube", True)),
        ("https://www.youtube.com/playlist?list=PL123", ("youtube", True)),
        ("https://www.youtube.com/channel/UC123", ("youtube", True)),
        ("http://127.0.0.1:8000/lecture.mp4", ("http", False)),
    ],
)
def test_classify_url(url: str, expected: tuple[str, bool]) -> None:
    assert classify_url(url) == expected


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "ftp://x/y.mp4", "javascript:alert(1)", "/etc/passwd"]
)
def test_classify_url_refuses_other_schemes(url: str) -> None:
    with pytest.raises(IngestError):
        classify_url(url)


def _queued_task_names(settings) -> list[str]:
    names = []
    for path in sorted((settings.broker_dir / "out").glob("*")):
        message = json.loads(path.read_text())
        names.append(message["headers"]["task"])
    return names


def test_queue_file_creates_video_with_stage_plan_and_enqueues(settings, session) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    assert video.status == "queued" and video.source_kind == "file"
    stages = session.scalars(select(StageRun.stage).where(StageRun.video_id == video.id)).all()
    assert sorted(stages) == sorted(["fetch", "asr", "frames", "text", "align"])
    assert _queued_task_names(settings) == ["quilt.fetch"]


def test_untrusted_file_outside_import_dirs_is_refused(settings, session, tmp_path: Path) -> None:
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"x")
    for path in (outside, Path("/etc/passwd"), DEMO_VIDEO.parent / ".." / "pyproject.toml"):
        with pytest.raises(IngestError, match="outside the import folders"):
            queue_file(session=session, path=path, user=None)
    assert session.scalars(select(Video)).all() == []
    # Inside an import folder it is accepted.
    assert queue_file(session=session, path=DEMO_VIDEO, user=None).id


def test_upload_is_stored_under_a_generated_name(settings, session) -> None:
    hostile = '../../"; rm -rf $(x) <script>.mp4'
    video = queue_upload(session=session, filename=hostile, stream=io.BytesIO(b"data"), user=None)
    stored = Path(video.source_url)
    assert stored.parent == settings.media_root / "uploads"
    assert stored.suffix == ".mp4" and ".." not in stored.name and "<" not in stored.name
    assert "<" not in video.title and "/" not in video.title


def test_empty_upload_is_refused(settings, session) -> None:
    with pytest.raises(IngestError, match="empty"):
        queue_upload(session=session, filename="a.mp4", stream=io.BytesIO(b""), user=None)
    assert list((settings.media_root / "uploads").glob("*")) == []


def test_channel_url_becomes_channel_and_expand_task(settings, session) -> None:
    channel = queue_url(session=session, url="https://www.youtube.com/@Path", user=None)
    assert isinstance(channel, Channel)
    again = queue_url(session=session, url="https://www.youtube.com/@Path", user=None)
    assert again.id == channel.id  # queued twice, one channel row
    assert _queued_task_names(settings) == ["quilt.expand_source", "quilt.expand_source"]
