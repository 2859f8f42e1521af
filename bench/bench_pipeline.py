"""Time each pipeline stage next to the bare tool it wraps, measured in the same run.

The pipeline's cost must grow linearly in video hours (a corpus runs to a thousand hours
and more: Quilt-1M's did), and a stage that costs many times its bare tool is a stage to
look at. Baselines, run after the pipeline on the same file and machine:

- asr: faster-whisper alone: ``WhisperModel(model, device, compute_type)`` loaded afresh,
  then ``transcribe(video, beam_size=..., language=...)`` with the stage's model and beam,
  every segment consumed. The stage adds VAD, an English check, a domain prompt and word
  timestamps, so a ratio a little above 1 is expected.
- frames: ``ffmpeg -i VIDEO -an -f null -``, a full video decode (audio off: the frames
  stage never decodes it). The stage decodes every frame too (grab) and analyses one a
  second.

Usage: ``python bench/bench_pipeline.py [VIDEO] [--out DIR] [--json PATH]`` (VIDEO defaults
to demo/lecture.mp4).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from app.pipeline import STAGE_NAMES  # noqa: E402

DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"


def whisper_baseline(video: Path, settings) -> dict[str, float]:  # noqa: ANN001
    from faster_whisper import WhisperModel  # noqa: PLC0415

    from workers.stages.asr import AsrOptions, resolve_device  # noqa: PLC0415

    options = AsrOptions.from_settings(settings)
    device, compute_type = resolve_device(options.device, options.compute_type)
    started = time.perf_counter()
    model = WhisperModel(options.resolved_model(), device=device, compute_type=compute_type)
    loaded = time.perf_counter()
    segments, _info = model.transcribe(
        str(video), beam_size=options.beam_size, language=options.language
    )
    n_segments = sum(1 for _ in segments)  # the generator does the work
    done = time.perf_counter()
    return {
        "load_s": round(loaded - started, 3),
        "transcribe_s": round(done - loaded, 3),
        "seconds": round(done - started, 3),
        "segments": n_segments,
    }


def ffmpeg_decode_baseline(video: Path) -> dict[str, float]:
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-an", "-f", "null", "-"]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return {"seconds": round(time.perf_counter() - started, 3)}


def _ratio(stage_s: float | None, base_s: float | None) -> float | None:
    if stage_s is None or not base_s:
        return None
    return round(stage_s / base_s, 2)


def render(report: dict) -> str:
    rows = [("stage", "seconds", "baseline", "baseline s", "ratio")]
    for stage in (*STAGE_NAMES, "total"):
        seconds = report["timings_s"].get(stage)
        base = report["baselines"].get(stage)
        rows.append(
            (
                stage,
                f"{seconds:.2f}" if seconds is not None else "-",
                base["name"] if base else "",
                f"{base['seconds']:.2f}" if base else "",
                f"{base['ratio']:.2f}x" if base and base["ratio"] is not None else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 2) else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(
        f"video {report['video']} ({report['duration_s']:.1f} s): {report['pairs']} pairs, "
        f"{report['frames']} frames; pipeline {report['speed_x']:.1f}x real time"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_pipeline", description=__doc__.split("\n")[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEMO_VIDEO)
    parser.add_argument("--out", type=Path, help="pipeline output folder (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        print(f"error: no such video: {args.video}", file=sys.stderr)
        return 2

    from app.settings import get_settings  # noqa: PLC0415
    from workers.oneshot import run_pipeline  # noqa: PLC0415
    from workers.types import StageError  # noqa: PLC0415

    settings = get_settings()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = args.out or Path(tmp)
        try:
            result = run_pipeline(args.video, out, settings)
        except StageError as exc:
            print(f"error: {exc.reason}", file=sys.stderr)
            return 2
        whisper = whisper_baseline(args.video, settings)
        decode = ffmpeg_decode_baseline(args.video)

    timings = dict(result.timings_s)
    timings["total"] = round(sum(result.timings_s.values()), 3)
    report = {
        "video": str(args.video),
        "duration_s": result.probe.duration_s,
        "pairs": len(result.pairs),
        "frames": len(result.frames.frames),
        "timings_s": timings,
        "speed_x": round(result.probe.duration_s / timings["total"], 2) if timings["total"] else 0,
        "baselines": {
            "asr": {
                "name": "faster-whisper load+transcribe",
                **whisper,
                "ratio": _ratio(timings.get("asr"), whisper["seconds"]),
            },
            "frames": {
                "name": "ffmpeg -an -f null (decode)",
                **decode,
                "ratio": _ratio(timings.get("frames"), decode["seconds"]),
            },
        },
    }
    from bench.report import emit  # noqa: PLC0415

    emit(report, args.json, text=render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
