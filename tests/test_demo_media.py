"""The bundled demo lecture and the bad-input fixtures exist and are what they claim.

Fast checks only: no models, just ffprobe on the files.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import media

DEMO_DIR = media.REPO_ROOT / "demo"
HISTOLOGY_KINDS = {"histology"}
ALL_KINDS = {"histology", "title_slide", "photo", "fundus", "text_slide"}
ROI_CUES = ("here", "in this area", "at higher power", "at high power")


def stream_types(info: dict) -> list[str]:
    return sorted(s["codec_type"] for s in info.get("streams", []))


@pytest.fixture(scope="module")
def truth() -> dict:
    return json.loads((DEMO_DIR / "lecture.json").read_text(encoding="utf-8"))


def test_demo_video_is_small_h264_aac_with_faststart(truth: dict) -> None:
    video = DEMO_DIR / truth["video"]
    assert video.is_file()
    assert video.stat().st_size <= 5 * 1024 * 1024
    info = media.probe(video)
    codecs = {s["codec_type"]: s for s in info["streams"]}
    assert set(codecs) == {"video", "audio"}
    assert codecs["video"]["codec_name"] == "h264"
    assert codecs["video"]["pix_fmt"] == "yuv420p"
    assert (codecs["video"]["width"], codecs["video"]["height"]) in {(1280, 720), (960, 540)}
    assert codecs["audio"]["codec_name"] == "aac"
    assert float(info["format"]["duration"]) == pytest.approx(truth["duration_s"], abs=0.2)
    boxes = top_level_boxes(video)
    assert boxes.index("moov") < boxes.index("mdat")  # faststart: playable while loading


def top_level_boxes(path: Path) -> list[str]:
    data, boxes, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size == 1:  # 64-bit size follows the type
            size = int.from_bytes(data[offset + 8 : offset + 16], "big")
        if size < 8:
            break
        offset += size
    return boxes


def test_demo_segments_are_contiguous_and_cover_the_video(truth: dict) -> None:
    segments = truth["segments"]
    assert [s["index"] for s in segments] == list(range(len(segments)))
    assert segments[0]["start_s"] == 0
    for before, after in zip(segments, segments[1:], strict=False):
        assert after["start_s"] == before["end_s"]
    assert segments[-1]["end_s"] == pytest.approx(truth["duration_s"])
    assert 80 <= truth["duration_s"] <= 110
    for s in segments:
        assert 8 <= s["end_s"] - s["start_s"] <= 15
        assert s["start_s"] < s["speech_start_s"] < s["speech_end_s"] <= s["end_s"]
        assert s["kind"] in ALL_KINDS
        assert s["is_histology"] == (s["kind"] in HISTOLOGY_KINDS)
        for term in s["key_terms"]:
            assert term.lower() in s["narration"].lower()


def test_demo_mixes_histology_and_other_segments(truth: dict) -> None:
    histology = [s for s in truth["segments"] if s["is_histology"]]
    other = [s for s in truth["segments"] if not s["is_histology"]]
    assert len(histology) >= 3
    assert len(other) >= 2
    for s in histology:
        assert any(cue in s["narration"].lower() for cue in ROI_CUES), s["narration"]


GENERATORS: dict[str, Callable[[Path], Path]] = {
    "corrupt_video": media.corrupt_video,
    "truncated_video": media.truncated_video,
    "video_without_audio": media.video_without_audio,
    "silent_video": media.silent_video,
    "non_english_video": media.non_english_video,
    "empty_file": media.empty_file,
    "non_video_file": media.non_video_file,
    "audio_only_file": media.audio_only_file,
    "hostile_name_video": media.hostile_name_video,
}
# What ffprobe must find in each: None means the container must not open at all.
EXPECTED_STREAMS: dict[str, list[str] | None] = {
    "corrupt_video": None,
    "truncated_video": ["audio", "video"],
    "video_without_audio": ["video"],
    "silent_video": ["audio", "video"],
    "non_english_video": ["audio", "video"],
    "empty_file": None,
    "non_video_file": None,
    "audio_only_file": ["audio"],
    "hostile_name_video": ["audio", "video"],
}


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_media_generator_makes_its_file(name: str, tmp_path: Path) -> None:
    path = GENERATORS[name](tmp_path)
    assert path.is_file()
    assert path.parent == tmp_path
    info = media.probe(path)
    expected = EXPECTED_STREAMS[name]
    if expected is None:
        assert not info.get("streams")
    else:
        assert stream_types(info) == expected


def test_hostile_name_is_hostile_but_a_single_path_component(tmp_path: Path) -> None:
    path = media.hostile_name_video(tmp_path)
    for piece in (" ", '"', "'", ";", "$(", "<script>", "\u00fc"):
        assert piece in path.name
    assert path.name.startswith("-")
    assert "/" not in path.name
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_narrated_video_respects_seconds(tmp_path: Path) -> None:
    path = media.narrated_video(tmp_path, "Goblet cells line the colonic crypts.", seconds=6)
    info = media.probe(path)
    assert stream_types(info) == ["audio", "video"]
    assert float(info["format"]["duration"]) == pytest.approx(6, abs=0.3)


def test_truncated_video_is_shorter_than_the_demo(tmp_path: Path) -> None:
    path = media.truncated_video(tmp_path)
    assert path.stat().st_size == int(media.DEMO_VIDEO.stat().st_size * 0.3)


def test_silent_video_is_silent(tmp_path: Path) -> None:
    path = media.silent_video(tmp_path)
    result = subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-nostats",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-af",
            "volumedetect",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "max_volume: -91" in result.stderr
