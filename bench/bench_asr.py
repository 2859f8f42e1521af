"""The ASR stage against bare faster-whisper on the same file, model and settings.

Both run in this process on the same already-loaded model (the stage loads it once per
process; loading is not what is compared). The bare baseline is ``WhisperModel.transcribe``
with the stage's decoding settings (beam, language, domain prompt, word timestamps, VAD,
no conditioning on previous text), every segment consumed. The stage adds: decoding the
audio once with PyAV, a Silero VAD pass of its own (the no-speech check), the English
probe (a greedy prompt-less decode of up to ``probe_s`` of speech, counted here, and shown
apart), the hallucination guards and the final English check. Each side runs ``--repeat``
times and the fastest run counts.

Usage: ``python bench/bench_asr.py [VIDEO] [--repeat N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"


def run(video: Path, repeat: int) -> dict:
    from app.settings import Settings  # noqa: PLC0415
    from workers.stages.asr import AsrOptions, load_model, transcribe  # noqa: PLC0415

    options = AsrOptions.from_settings(Settings())
    whisper = load_model(options)

    def bare() -> int:
        segments, _ = whisper.transcribe(
            str(video),
            language=options.language,
            beam_size=options.beam_size,
            initial_prompt=options.resolved_prompt(),
            word_timestamps=options.word_timestamps,
            vad_filter=options.vad_filter,
            condition_on_previous_text=options.condition_on_previous_text,
        )
        return sum(1 for _ in segments)

    def stage(check_english: bool) -> int:
        opts = AsrOptions(**{**options.__dict__, "check_english": check_english})
        return len(transcribe(video, opts).segments)

    def best(fn) -> float:  # noqa: ANN001
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return min(times)

    bare_s = best(bare)
    stage_s = best(lambda: stage(True))
    stage_no_probe_s = best(lambda: stage(False))
    return {
        "video": str(video),
        "model": options.resolved_model(),
        "device": whisper.model.device,
        "bare_faster_whisper_s": round(bare_s, 3),
        "stage_s": round(stage_s, 3),
        "stage_without_language_probe_s": round(stage_no_probe_s, 3),
        "ratio": round(stage_s / bare_s, 3),
        "ratio_without_language_probe": round(stage_no_probe_s / bare_s, 3),
        "language_probe_share": round((stage_s - stage_no_probe_s) / stage_s, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEMO_VIDEO)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    report = run(args.video, args.repeat)
    for key, value in report.items():
        print(f"{key:34s} {value}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
