"""Fetch and probe on real files and a real HTTP server on 127.0.0.1 (yt-dlp's real code path)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import DEMO_TRUTH, DEMO_VIDEO
from tests.support import media
from workers.stages import fetch
from workers.types import StageError

# The file server listens on 127.0.0.1, which the fetch refuses unless it is allowed
# (tests/test_ssrf.py tests the refusals).
LOOPBACK = fetch.FetchOptions(allow_networks=("127.0.0.1",))


def test_probe_demo_lecture() -> None:
    info = fetch.probe(DEMO_VIDEO)
    truth = json.loads(DEMO_TRUTH.read_text())
    assert info.has_video and info.has_audio
    assert info.duration_s == pytest.approx(truth["duration_s"], abs=0.5)
    assert (info.width, info.height) == (truth["width"], truth["height"])
    assert info.sha256 == fetch.sha256_file(DEMO_VIDEO)
    assert info.size_bytes == DEMO_VIDEO.stat().st_size


def test_probe_video_without_audio(tmp_path: Path) -> None:
    info = fetch.probe(media.video_without_audio(tmp_path))
    assert info.has_video and not info.has_audio


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (media.empty_file, "empty file"),
        (media.non_video_file, "not a readable video file"),
        (media.audio_only_file, "audio-only file"),
        (media.truncated_video, "truncated or corrupt"),
        (media.corrupt_video, ""),
    ],
)
def test_probe_refuses_bad_input_with_one_line_reason(tmp_path: Path, make, reason: str) -> None:
    with pytest.raises(StageError) as info:
        fetch.probe(make(tmp_path))
    assert info.value.status == "failed"
    assert reason in info.value.reason
    assert "\n" not in info.value.reason and "Traceback" not in info.value.reason


def test_probe_hostile_file_name(tmp_path: Path) -> None:
    path = media.hostile_name_video(tmp_path)
    assert fetch.probe(path).has_audio


def test_download_over_http_with_ytdlp(tmp_path: Path, file_server) -> None:
    served = tmp_path / "site"
    served.mkdir()
    shutil.copy(DEMO_VIDEO, served / "lecture.mp4")
    base = file_server(served)
    path, _title = fetch.download(f"{base}/lecture.mp4", tmp_path / "dl", LOOPBACK)
    assert path.parent == tmp_path / "dl" and path.name.startswith("source.")
    assert fetch.sha256_file(path) == fetch.sha256_file(DEMO_VIDEO)


def test_download_missing_url_is_a_clear_error(tmp_path: Path, file_server) -> None:
    base = file_server(tmp_path)
    with pytest.raises(StageError, match="download failed"):
        fetch.download(f"{base}/nope.mp4", tmp_path / "dl", LOOPBACK)


def test_expand_feed_into_entries(tmp_path: Path, file_server) -> None:
    """A playlist-like source (an RSS feed of lectures) expands to one entry per video."""
    served = tmp_path / "site"
    base = file_server(served)
    feed = media.lecture_feed(served, base, ["one", "two"], title="Pathology lectures")
    title, entries = fetch.expand(feed, LOOPBACK)
    assert title == "Pathology lectures"
    assert [e.url for e in entries] == [f"{base}/one.mp4", f"{base}/two.mp4"]
    assert [e.title for e in entries] == ["Lecture one", "Lecture two"]
