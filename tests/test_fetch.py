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


# --- limits: duration, frames, resolution, refused by the header before any decode -------


def _video_of(folder: Path, name: str, size: str, vf: str | None = None, frames: int = 3) -> Path:
    """A tiny video made by ffmpeg: ``frames`` gray frames of ``size`` at 1 fps, filtered by
    ``vf`` (setpts: frames far apart, so that the header declares hours)."""
    import subprocess

    out = folder / name
    subprocess.run(
        [
            *("ffmpeg", "-hide_banner", "-loglevel", "error", "-y"),
            *("-f", "lavfi", "-i", f"color=c=gray:s={size}:r=1:d={frames}"),
            *(["-vf", vf, "-fps_mode", "passthrough"] if vf else []),
            *("-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(out)),
        ],
        check=True,
        capture_output=True,
    )
    return out


def test_probe_refuses_a_header_that_claims_ten_hours(tmp_path: Path) -> None:
    # 1.5 KB: three 64x64 frames five hours apart. The header says 10:00:01; the ASR and
    # frame stages would decode all of it. Refused by the header, before any frame decodes.
    path = _video_of(tmp_path, "ten_hours.mp4", "64x64", vf="setpts=N*18000/TB")
    assert path.stat().st_size < 10_000
    with pytest.raises(StageError) as info:
        fetch.probe(path)
    assert (info.value.status, info.value.reason) == (
        "skipped",
        "too long: 10:00:01, the limit is 4:00:00 (QUILT_MAX_VIDEO_DURATION_S)",
    )


def test_probe_limits_on_frames_and_resolution(tmp_path: Path) -> None:
    import re

    # The demo lecture: 94 s of 1280x720 at 5 fps, ~470 frames.
    with pytest.raises(StageError) as info:
        fetch.probe(DEMO_VIDEO, fetch.FetchOptions(max_frames=400))
    assert info.value.status == "skipped"
    assert re.fullmatch(
        r"too many frames: 4\d\d, the limit is 400 \(QUILT_MAX_VIDEO_FRAMES\)", info.value.reason
    ), info.value.reason
    # A 4K (UHD) lecture passes the default limit; 8K does not.
    assert fetch.probe(_video_of(tmp_path, "uhd.mp4", "3840x2160", frames=1)).width == 3840
    with pytest.raises(StageError) as info:
        fetch.probe(_video_of(tmp_path, "8k.mp4", "7680x4320", frames=1))
    assert (info.value.status, info.value.reason) == (
        "skipped",
        "resolution too high: 7680x4320 = 33,177,600 pixels, the limit is 8,847,360 "
        "(QUILT_MAX_VIDEO_PIXELS)",
    )


def test_fetch_stage_takes_the_limits_from_settings() -> None:
    from app.settings import Settings
    from workers.types import MediaSource, StageJob

    settings = Settings(max_video_duration_s=60, max_video_frames=5000, max_video_pixels=10**6)
    options = fetch.FetchOptions.from_settings(settings)
    assert (options.max_duration_s, options.max_frames, options.max_pixels) == (60, 5000, 10**6)
    job = StageJob(inputs={"source": MediaSource("file", str(DEMO_VIDEO))}, settings=settings)
    with pytest.raises(StageError) as info:
        fetch.run(job)
    assert (info.value.status, info.value.reason) == (
        "skipped",
        "too long: 0:01:34, the limit is 0:01:00 (QUILT_MAX_VIDEO_DURATION_S)",
    )
