"""``quilt pipeline run``: the demo lecture end to end, and bad input refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.pipeline import STAGE_NAMES
from tests.conftest import DEMO_TRUTH, DEMO_VIDEO
from tests.support import media
from workers.oneshot import PAIR_KEYS, main

QUILT = Path(sys.executable).parent / "quilt"


def _quilt_pipeline_run(video: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """Through the real console script, as a user runs it."""
    return subprocess.run(
        [str(QUILT), "pipeline", "run", str(video), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_pipeline_on_demo_writes_pairs(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main([str(DEMO_VIDEO), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "pairs from" in printed

    lines = (out / "pairs.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert records, "the demo lecture's histology narration should give pairs"
    truth = json.loads(DEMO_TRUTH.read_text())["segments"]
    for record in records:
        assert set(PAIR_KEYS) <= set(record)
        image = out / record["image"]
        assert not Path(record["image"]).is_absolute() and image.is_file()
        assert record["image"].startswith("images/frame_")
        assert record["umls"] and record["medical_text"]
        assert record["text"].startswith(record["medical_text"])
        # Each pair's image sits inside a histology segment of the ground truth.
        mid = (record["start_s"] + record["end_s"]) / 2
        segment = next(s for s in truth if s["start_s"] <= mid < s["end_s"])
        assert segment["is_histology"], record
    assert sorted(p.name for p in (out / "images").iterdir())  # images written

    transcript = json.loads((out / "transcript.json").read_text())
    assert transcript["segments"] and transcript["language"] == "en"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["timings_s"]) == {*STAGE_NAMES, "total"}
    assert summary["pairs"] == len(records)
    assert summary["stats"]["frames"]["kept_frames"] >= 5

    # Re-running replaces the outputs, nothing is duplicated.
    assert main([str(DEMO_VIDEO), "--out", str(out)]) == 0
    assert (out / "pairs.jsonl").read_text().splitlines() == lines


@pytest.mark.parametrize(
    ("name", "content"),
    [("empty.mp4", b""), ("notes.mp4", b"not a video, just some notes\n" * 50)],
)
def test_bad_input_exits_nonzero_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, name: str, content: bytes
) -> None:
    bad = tmp_path / name
    bad.write_bytes(content)
    code = main([str(bad), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    assert code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert "Traceback" not in captured.err and captured.out == ""
    assert not (tmp_path / "out" / "pairs.jsonl").exists()


def test_missing_file_exits_nonzero(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main([str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (media.corrupt_video, "error: not a readable video file"),
        (media.truncated_video, "error: cannot decode the middle of the video"),
        (media.audio_only_file, "error: audio-only file: no video stream"),
    ],
)
def test_unreadable_media_exits_2_in_one_line(tmp_path: Path, make, message: str) -> None:
    proc = _quilt_pipeline_run(make(tmp_path), tmp_path / "out")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message) and "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (media.silent_video, "no speech found"),
        (media.non_english_video, "not English"),
        (media.video_without_audio, "no audio track"),
    ],
)
def test_out_of_scope_video_is_processed_with_zero_pairs(tmp_path: Path, make, reason: str) -> None:
    out = tmp_path / "out"
    proc = _quilt_pipeline_run(make(tmp_path), out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("skipped: ") and reason in proc.stdout
    assert (out / "pairs.jsonl").read_text() == ""
    assert reason in json.loads((out / "summary.json").read_text())["skipped"]


@pytest.mark.slow
def test_hostile_file_name_is_processed(tmp_path: Path) -> None:
    video = media.hostile_name_video(tmp_path)
    out = tmp_path / "out"
    proc = _quilt_pipeline_run(video, out)
    assert proc.returncode == 0, proc.stderr
    assert (out / "pairs.jsonl").exists()
