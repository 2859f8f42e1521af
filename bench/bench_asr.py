"""The ASR stage against bare faster-whisper on the same file, model and settings.

Both run in this process on the same already-loaded model (the stage loads it once per
process; loading is not what is compared). The bare baseline is ``WhisperModel.transcribe``
with the stage's decoding settings (beam, language, domain prompt, word timestamps, VAD,
no conditioning on previous text), every segment consumed. The stage adds: decoding the
audio once with PyAV, a Silero VAD pass (the no-speech check; the main pass decodes its
speech chunks, where bare faster-whisper runs VAD itself), the English check (when the
main pass's text is in doubt, a greedy prompt-less probe decode of up to ``probe_s`` of
speech; ``stage_without_language_probe`` turns the check off), the hallucination guards
and the final English check. ``language_check`` says what settled the check here
(``main_pass`` or ``probe``). Each side runs ``--repeat`` times, interleaved; ``ratio`` is the
median of the per-round ratios.

When the video has a ground-truth file next to it (``lecture.json`` with each segment's
``narration``, as the demo has), the stage's word error rate is reported with the domain
prompt (its default) and without any prompt: what biasing buys.

Usage: ``python bench/bench_asr.py [VIDEO] [--repeat N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
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

    checks: list[str] = []

    def stage(check_english: bool) -> int:
        opts = AsrOptions(**{**options.__dict__, "check_english": check_english})
        transcript = transcribe(video, opts)
        if check_english:
            checks.append(str(transcript.stats.get("language_check", "probe")))
        return len(transcript.segments)

    # Rounds interleave the three sides (in a rotating order), so that load from other
    # processes on a shared machine falls on all of them alike; the ratio is taken per
    # round and the median round is reported, next to the fastest time of each side.
    sides = {
        "bare": bare,
        "stage": lambda: stage(True),
        "stage_without_language_probe": lambda: stage(False),
    }
    times: dict[str, list[float]] = {name: [] for name in sides}
    names = list(sides)
    for round_ in range(repeat):
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            started = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - started)
    ratios = [s / b for s, b in zip(times["stage"], times["bare"], strict=True)]
    ratios_no_probe = [
        s / b for s, b in zip(times["stage_without_language_probe"], times["bare"], strict=True)
    ]
    bare_s = min(times["bare"])
    stage_s = min(times["stage"])
    stage_no_probe_s = min(times["stage_without_language_probe"])
    return {
        "video": str(video),
        "model": options.resolved_model(),
        "device": whisper.model.device,
        "rounds": repeat,
        "bare_faster_whisper_s": round(bare_s, 3),
        "stage_s": round(stage_s, 3),
        "stage_without_language_probe_s": round(stage_no_probe_s, 3),
        "ratio": round(statistics.median(ratios), 3),
        "ratio_of_fastest": round(stage_s / bare_s, 3),
        "ratio_without_language_probe": round(statistics.median(ratios_no_probe), 3),
        "language_probe_share": round(max(0.0, stage_s - stage_no_probe_s) / stage_s, 3),
        "language_check": sorted(set(checks)),
        **word_error_rates(video, options),
    }


def word_error_rates(video: Path, options) -> dict:  # noqa: ANN001 - AsrOptions
    """The stage's WER against the narration, with the domain prompt and without one."""
    from workers.stages.asr import AsrOptions, transcribe  # noqa: PLC0415
    from workers.text.measure import word_error_rate  # noqa: PLC0415

    truth = video.with_suffix(".json")
    if not truth.is_file():
        return {}
    segments = json.loads(truth.read_text(encoding="utf-8")).get("segments", [])
    reference = " ".join(s.get("narration", "") for s in segments)
    out = {}
    for name, prompt in (("wer_domain_prompt", options.initial_prompt), ("wer_no_prompt", "")):
        opts = AsrOptions(**{**options.__dict__, "initial_prompt": prompt})
        text = " ".join(s.text for s in transcribe(video, opts).segments)
        out[name] = round(word_error_rate(reference, text), 3)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video", nargs="?", type=Path, default=DEMO_VIDEO)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    from bench.report import emit  # noqa: PLC0415

    emit(run(args.video, args.repeat), args.json, width=34)
    return 0


if __name__ == "__main__":
    sys.exit(main())
