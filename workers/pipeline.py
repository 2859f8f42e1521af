"""One-shot pipeline: one video in, candidate pairs out, in-process and without a database.

``quilt pipeline run VIDEO --out DIR`` runs the same stage cores the Celery workers run,
in the same order (fetch.probe -> asr -> frames -> text -> align), and writes:

- ``DIR/images/frame_*.jpg``: the kept histology frames;
- ``DIR/pairs.jsonl``: one JSON object per (image, medical text) pair, ``image`` relative
  to DIR;
- ``DIR/transcript.json``: the ASR transcript (segments with word timestamps);
- ``DIR/summary.json``: the probe, each stage's wall time and stats, and the options used.

Re-running into the same DIR replaces these outputs. Bad input (empty, not a video,
truncated) stops the run with a ``StageError``; the CLI prints one ``error:`` line for it
and exits 2. Stage modules are imported lazily so the web app can import this module
without faster-whisper or OpenCV installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workers.types import (
    AlignedPair,
    AlignResult,
    FramesResult,
    ProbeResult,
    StageError,
    TextResult,
    Transcript,
    to_dict,
)

if TYPE_CHECKING:
    from app.settings import Settings

_logger = logging.getLogger(__name__)

STAGES = ("probe", "asr", "frames", "text", "align")
# The keys every pairs.jsonl line has (a reader may rely on them).
PAIR_KEYS = (
    "image",
    "start_s",
    "end_s",
    "text",
    "noisy_text",
    "corrected_text",
    "medical_text",
    "roi_text",
    "umls",
    "keywords",
    "magnification",
    "scores",
)

# progress(stage, fraction of that stage done)
PipelineProgress = Callable[[str, float], None]


@dataclass
class PipelineResult:
    out_dir: Path
    probe: ProbeResult
    transcript: Transcript
    frames: FramesResult
    text: TextResult
    aligned: AlignResult
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def pairs(self) -> list[AlignedPair]:
        return self.aligned.pairs

    @property
    def pairs_path(self) -> Path:
        return self.out_dir / "pairs.jsonl"


def pair_record(pair: AlignedPair, out_dir: Path, flags: dict[str, Any] | None = None) -> dict:
    """The pairs.jsonl object of one pair: PAIR_KEYS, then confidence and image flags."""
    image = Path(pair.image_path)
    try:
        rel = image.resolve().relative_to(out_dir.resolve()).as_posix()
    except ValueError:
        rel = image.as_posix()
    return {
        "image": rel,
        "start_s": pair.start_s,
        "end_s": pair.end_s,
        "text": pair.text,
        "noisy_text": pair.noisy_text,
        "corrected_text": pair.corrected_text,
        "medical_text": pair.medical_text,
        "roi_text": pair.roi_text,
        "umls": list(pair.umls),
        "keywords": list(pair.keywords),
        "magnification": pair.magnification,
        "scores": dict(pair.scores),
        "confidence": pair.confidence,
        "flags": dict(flags or {}),
        "denoising": dict(pair.denoising),
    }


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")
    tmp.replace(path)


def run_pipeline(
    video_path: str | Path,
    out_dir: str | Path,
    settings: Settings | None = None,
    progress: PipelineProgress | None = None,
) -> PipelineResult:
    """Run every stage on one local video file and write the outputs into ``out_dir``."""
    # Lazy, one at a time: these pull in PyAV, faster-whisper, OpenCV, scispacy; a bad
    # file is refused by the probe before any model loads.
    from workers.stages import fetch  # noqa: PLC0415

    if settings is None:
        from app.settings import get_settings  # noqa: PLC0415

        settings = get_settings()
    video = Path(video_path)
    out = Path(out_dir)
    timings: dict[str, float] = {}

    def stage_progress(stage: str) -> Callable[[float], None] | None:
        if progress is None:
            return None
        return lambda fraction: progress(stage, fraction)

    def timed(stage: str, fn: Callable[[], Any]) -> Any:
        if progress:
            progress(stage, 0.0)
        started = time.perf_counter()
        value = fn()
        timings[stage] = round(time.perf_counter() - started, 3)
        if progress:
            progress(stage, 1.0)
        _logger.info("%s: %.2f s", stage, timings[stage])
        return value

    probe: ProbeResult = timed("probe", lambda: fetch.probe(video))
    if not probe.has_video:
        raise StageError("no video stream")
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("pairs.jsonl", "transcript.json", "summary.json"):
        (out / stale).unlink(missing_ok=True)

    from workers.stages import align, asr, frames, text  # noqa: PLC0415

    asr_options = asr.AsrOptions.from_settings(settings)
    transcript: Transcript = timed(
        "asr", lambda: asr.transcribe(video, asr_options, progress=stage_progress("asr"))
    )
    frames_options = frames.FramesOptions.from_settings(settings)
    frames_result: FramesResult = timed(
        "frames",
        lambda: frames.extract(
            video,
            out / "images",
            frames_options,
            progress=stage_progress("frames"),
            detector=frames.detector_from_settings(settings),
        ),
    )
    text_options = text.TextOptions.from_settings(settings)
    text_result: TextResult = timed("text", lambda: text.process(transcript, text_options))
    align_options = align.AlignOptions.from_settings(settings)
    # Only pairable frames are paired (not the narrator-occluded, poor or duplicate ones);
    # pair.frame_index is mapped back to the index in frames_result.
    to_pair, index_map = frames.pairable(frames_result)
    aligned: AlignResult = timed("align", lambda: align.align(to_pair, text_result, align_options))
    for pair in aligned.pairs:
        pair.frame_index = index_map[pair.frame_index]

    result = PipelineResult(
        out_dir=out,
        probe=probe,
        transcript=transcript,
        frames=frames_result,
        text=text_result,
        aligned=aligned,
        timings_s=timings,
    )
    _write_outputs(
        result,
        options={
            "asr": _options_dict(asr_options),
            "frames": _options_dict(frames_options),
            "text": _options_dict(text_options),
            "align": _options_dict(align_options),
        },
    )
    return result


def _options_dict(options: Any) -> dict[str, Any]:
    try:
        return asdict(options)
    except TypeError:
        return {k: v for k, v in vars(options).items() if not k.startswith("_")}


def _write_outputs(result: PipelineResult, options: dict[str, Any]) -> None:
    out = result.out_dir
    lines = []
    for pair in result.pairs:
        frame = result.frames.frames[pair.frame_index]
        record = pair_record(pair, out, frame.flags)
        lines.append(json.dumps(record, ensure_ascii=False, sort_keys=False))
    tmp = out / "pairs.jsonl.tmp"
    tmp.write_text("".join(line + "\n" for line in lines))
    tmp.replace(out / "pairs.jsonl")

    _write_json(out / "transcript.json", to_dict(result.transcript))
    summary = {
        "video": result.probe.path,
        "sha256": result.probe.sha256,
        "probe": to_dict(result.probe),
        "timings_s": {**result.timings_s, "total": round(sum(result.timings_s.values()), 3)},
        "stats": {
            "asr": {
                "segments": len(result.transcript.segments),
                "words": len(result.transcript.words),
                **result.transcript.stats,
            },
            "frames": result.frames.stats,
            "text": {"sentences": len(result.text.sentences), **result.text.stats},
            "align": result.aligned.stats,
        },
        "chunks": [list(c) for c in result.frames.chunks],
        "frames": [
            {
                "image": Path(f.image_path).name,
                "t_s": f.t_s,
                "start_s": f.start_s,
                "end_s": f.end_s,
                "histology_score": f.histology_score,
                "sharpness": f.sharpness,
                "phash": f.phash,
                "flags": f.flags,
                "crop_box": f.crop_box,
                "magnification": f.magnification,
                "pairable": f.pairable,
            }
            for f in result.frames.frames
        ],
        "pairs": len(result.pairs),
        "options": options,
    }
    _write_json(out / "summary.json", summary)


# --- CLI ------------------------------------------------------------------------------


def _write_skipped(out: Path, video: Path, reason: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "pairs.jsonl").write_text("")
    _write_json(out / "summary.json", {"video": str(video), "skipped": reason, "pairs": 0})


def build_parser(prog: str = "quilt pipeline run") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Run probe, ASR, frames, text and align on one local video file.",
    )
    parser.add_argument("video", type=Path, help="a local video file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("-v", "--verbose", action="store_true", help="log each stage")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result = run_pipeline(args.video, args.out)
    except StageError as exc:
        if exc.status == "skipped":
            # Readable but out of scope (silence, no audio track, not English): the video
            # was processed and yields no pairs, which is not an error.
            _write_skipped(args.out, args.video, exc.reason)
            print(f"skipped: {exc.reason} (0 pairs) -> {args.out / 'pairs.jsonl'}")
            return 0
        print(f"error: {exc.reason}", file=sys.stderr)
        return 2
    except OSError as exc:  # an unwritable --out, a full disk
        print(f"error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1
    frames_kept = len(result.frames.frames)
    print(
        f"{len(result.pairs)} pairs from {frames_kept} frames "
        f"({result.probe.duration_s:.1f} s video, {sum(result.timings_s.values()):.1f} s) "
        f"-> {result.pairs_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
