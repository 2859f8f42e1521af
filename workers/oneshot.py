"""One-shot pipeline: one video in, candidate pairs out, in-process and without a database.

``quilt pipeline run VIDEO --out DIR`` runs the stages of the pipeline table
(app/pipeline.py) through the same runner and cores as the Celery workers, with a store
that keeps the artifacts in memory and the files under DIR, and writes:

- ``DIR/images/frame_*.jpg``: the kept histology frames;
- ``DIR/pairs.jsonl``: one JSON object per (image, medical text) pair, ``image`` relative
  to DIR;
- ``DIR/transcript.json``: the ASR transcript (segments with word timestamps);
- ``DIR/summary.json``: the probe, each stage's wall time and stats, and the options used.

Re-running into the same DIR replaces these outputs. Bad input (empty, not a video,
truncated) stops the run with a ``StageError``; the CLI prints one ``error:`` line for it
and exits 2. Stage cores are imported lazily (by the runner) so the web app's CLI can
import this module without faster-whisper or OpenCV installed.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.pipeline import PIPELINE
from workers.runner import execute
from workers.types import (
    AlignedPair,
    AlignResult,
    FramesResult,
    MediaSource,
    ProbeResult,
    StageError,
    TextResult,
    Transcript,
    to_dict,
)

if TYPE_CHECKING:
    from app.settings import Settings

_logger = logging.getLogger(__name__)

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
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)

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


class FolderStore:
    """The artifacts of one run, kept in memory; the files go under the output folder.

    The video is read where it is. Once it is known to be a video (the fetch stage saved
    it), the folder is made ready: created, and the outputs of an earlier run removed.
    """

    def __init__(self, video: Path, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.artifacts: dict[str, Any] = {"source": MediaSource(kind="file", location=str(video))}

    def files_for(self, stage: str) -> Path | None:
        if stage != "frames":
            return None  # fetch reads the file in place; the other stages write no files
        return self.out_dir / "images"

    def load(self, name: str) -> Any:
        return self.artifacts[name]

    def save(self, name: str, value: Any) -> dict[str, Any]:
        self.artifacts[name] = value
        if name == "media":
            self.out_dir.mkdir(parents=True, exist_ok=True)
            for stale in ("pairs.jsonl", "transcript.json", "summary.json"):
                (self.out_dir / stale).unlink(missing_ok=True)
        return {}


def run_pipeline(
    video_path: str | Path,
    out_dir: str | Path,
    settings: Settings | None = None,
    progress: PipelineProgress | None = None,
) -> PipelineResult:
    """Run every stage of the table on one local video file; write the outputs into
    ``out_dir``."""
    if settings is None:
        from app.settings import get_settings  # noqa: PLC0415

        settings = get_settings()
    out = Path(out_dir)
    store = FolderStore(Path(video_path), out)
    timings: dict[str, float] = {}
    stats: dict[str, dict[str, Any]] = {}
    for stage in PIPELINE:
        stage_progress = None
        if progress is not None:
            progress(stage.name, 0.0)
            stage_progress = functools.partial(progress, stage.name)
        started = time.perf_counter()
        stats[stage.name] = execute(stage, store, settings=settings, progress=stage_progress)
        timings[stage.name] = round(time.perf_counter() - started, 3)
        if progress is not None:
            progress(stage.name, 1.0)
        _logger.info("%s: %.2f s", stage.name, timings[stage.name])

    artifacts = store.artifacts
    result = PipelineResult(
        out_dir=out,
        probe=artifacts["media"].probe,
        transcript=artifacts["transcript"],
        frames=artifacts["frames"],
        text=artifacts["text"],
        aligned=artifacts["pairs"],
        timings_s=timings,
        stats=stats,
    )
    _write_outputs(result, options=_options(settings))
    return result


def _options(settings: Settings) -> dict[str, Any]:
    """The options each configurable stage ran with, for the summary."""
    from workers.stages import align, asr, frames, text  # noqa: PLC0415

    chosen = {
        "asr": asr.AsrOptions,
        "frames": frames.FramesOptions,
        "text": text.TextOptions,
        "align": align.AlignOptions,
    }
    return {name: _options_dict(cls.from_settings(settings)) for name, cls in chosen.items()}


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
        "stats": result.stats,
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
        description="Run every pipeline stage (fetch, asr, frames, text, align) on one local video file.",
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
