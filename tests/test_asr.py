"""ASR stage on real media made on the fly (espeak-ng + ffmpeg) and the real tiny.en model.

Bad inputs come from ``tests/support/media.py``: silence, Spanish and German narration, no
audio track, corrupt, empty and non-video files. Nothing is mocked.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support import media
from workers.stages.asr import (
    AsrOptions,
    default_prompt,
    drop_reason,
    load_model,
    resolve_device,
    transcribe,
)
from workers.types import StageError, Transcript

LECTURE = (
    "This section is stained with hematoxylin and eosin. Here you can see the lamina "
    "propria of the colon, with crypts and goblet cells. At higher power, the hepatocytes "
    "show steatosis near the bile duct. There is a moderately differentiated "
    "adenocarcinoma invading the submucosa."
)
GERMAN = (
    "Dieser Schnitt ist mit Hämatoxylin und Eosin gefärbt. Hier sieht man die Schleimhaut "
    "des Dickdarms mit Krypten und Becherzellen. Bei stärkerer Vergrößerung zeigen die "
    "Leberzellen eine Verfettung in der Nähe des Gallengangs."
)


@pytest.fixture(scope="module")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr-media")


@pytest.fixture(scope="module")
def lecture(media_dir: Path) -> tuple[Path, Transcript, list[float]]:
    path = media.narrated_video(media_dir, LECTURE, name="lecture.mp4", seconds=24.0)
    seen: list[float] = []
    return path, transcribe(path, AsrOptions(), progress=seen.append), seen


@pytest.mark.slow
def test_lecture_words_are_transcribed_with_ordered_timestamps(lecture) -> None:
    _, transcript, _ = lecture
    assert transcript.language == "en"
    assert transcript.duration_s == pytest.approx(24.0, abs=0.1)
    text = " ".join(s.text for s in transcript.segments).lower()
    for word in ["stained", "hematoxylin", "eosin", "lamina propria", "goblet", "submucosa"]:
        assert word in text, text
    words = transcript.words
    assert len(words) >= 35
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    for w in words:
        assert 0.0 <= w.start <= w.end <= transcript.duration_s
        assert 0.0 <= w.probability <= 1.0
    # espeak reads the text in ~19.5 s, then 4.5 s of padding silence: no words there.
    assert words[-1].end < 21.0
    assert [s.idx for s in transcript.segments] == list(range(len(transcript.segments)))
    assert transcript.stats["speed_x"] > 1.0
    assert transcript.stats["english_fraction"] > 0.8


@pytest.mark.slow
def test_progress_is_reported_up_to_one(lecture) -> None:
    _, _, seen = lecture
    assert seen and seen[-1] == 1.0
    assert seen == sorted(seen)
    assert all(0.0 <= f <= 1.0 for f in seen)


@pytest.mark.slow
def test_model_is_loaded_once_per_process() -> None:
    options = AsrOptions()
    assert load_model(options) is load_model(AsrOptions(beam_size=1))


def test_auto_device_and_compute_type() -> None:
    import ctranslate2

    device, compute = resolve_device("auto", "auto")
    if ctranslate2.get_cuda_device_count() > 0:
        assert (device, compute) == ("cuda", "float16")
    else:
        assert (device, compute) == ("cpu", "int8")
    assert resolve_device("cpu", "float32") == ("cpu", "float32")


def test_silence_is_skipped_without_text(media_dir: Path) -> None:
    with pytest.raises(StageError) as err:
        transcribe(media.silent_video(media_dir), AsrOptions())
    assert err.value.status == "skipped"
    assert err.value.reason == "no speech found"


@pytest.mark.slow
def test_spanish_narration_is_skipped(media_dir: Path) -> None:
    with pytest.raises(StageError) as err:
        transcribe(media.non_english_video(media_dir), AsrOptions())
    assert err.value.status == "skipped"
    assert "not English" in err.value.reason


@pytest.mark.slow
def test_german_narration_is_skipped(media_dir: Path) -> None:
    path = media.narrated_video(media_dir, GERMAN, voice="de", name="german.mp4")
    with pytest.raises(StageError) as err:
        transcribe(path, AsrOptions())
    assert err.value.status == "skipped"
    assert "not English" in err.value.reason


def test_video_without_audio_track_is_skipped(media_dir: Path) -> None:
    with pytest.raises(StageError) as err:
        transcribe(media.video_without_audio(media_dir), AsrOptions())
    assert (err.value.status, err.value.reason) == ("skipped", "no audio track")


@pytest.mark.parametrize("make", [media.corrupt_video, media.empty_file, media.non_video_file])
def test_unreadable_files_fail_with_one_line_reason(media_dir: Path, make) -> None:
    path = make(media_dir)
    with pytest.raises(StageError) as err:
        transcribe(path, AsrOptions())
    assert err.value.status == "failed"
    assert path.name in err.value.reason
    assert "\n" not in err.value.reason and str(media_dir) not in err.value.reason


def test_missing_file_fails(tmp_path: Path) -> None:
    with pytest.raises(StageError) as err:
        transcribe(tmp_path / "nope.mp4", AsrOptions())
    assert err.value.status == "failed"


def _segment(text: str, no_speech: float = 0.1, logprob: float = -0.3, ratio: float = 1.4):
    return SimpleNamespace(
        text=text, no_speech_prob=no_speech, avg_logprob=logprob, compression_ratio=ratio
    )


def test_hallucination_guards() -> None:
    options = AsrOptions()
    assert drop_reason(_segment(" The nuclei are hyperchromatic."), "", options) is None
    assert drop_reason(_segment(" Thank you.", 0.9, -1.3), "", options) == "no_speech"
    assert drop_reason(_segment(" ok", 0.1, -0.3, 2.9), "", options) == "compression_ratio"
    loop = " Hematoxylin, cytoplasm, cytoplasm, cytoplasm, cytoplasm, cytoplasm."
    assert drop_reason(_segment(loop), "", options) == "repetition"
    previous = "here you can see lamina propria with crypts"
    assert drop_reason(_segment(" Here you can see lamina propria,"), previous, options) == (
        "repeats_previous"
    )
    # Whisper's rule needs both signals: a confident segment with a high no_speech_prob stays.
    assert drop_reason(_segment(" The gland is dilated.", 0.7, -0.4), "", options) is None


def test_default_prompt_lists_domain_terms() -> None:
    prompt = default_prompt()
    assert prompt.startswith("Histopathology lecture: hematoxylin and eosin")
    assert "lamina propria" in prompt and "hepatocyte" in prompt
    assert len(prompt) < 700  # Whisper keeps at most 223 prompt tokens
    assert AsrOptions(initial_prompt="").resolved_prompt() is None


def test_options_from_settings() -> None:
    from app.settings import Settings

    settings = Settings(asr_beam_size=2, asr_device="cpu")
    options = AsrOptions.from_settings(settings)
    assert (options.beam_size, options.device, options.language) == (2, "cpu", "en")
    assert Path(options.model, "model.bin").is_file()
    assert re.search(r"histopath_kb\.jsonl$", options.kb_path or "")


@pytest.mark.slow
def test_batched_inference_gives_the_same_words(lecture) -> None:
    # "auto" batches on CUDA only; "always" runs the batched pipeline here (CPU) too.
    path, sequential, _ = lecture
    batched = transcribe(path, AsrOptions(batched="always", batch_size=4))
    assert batched.stats["batch_size"] == 4
    text = " ".join(s.text for s in batched.segments).lower()
    for word in ["stained", "hematoxylin", "goblet", "submucosa"]:
        assert word in text, text
    assert abs(len(batched.words) - len(sequential.words)) <= 5
    starts = [w.start for w in batched.words]
    assert starts == sorted(starts)


def test_batching_is_on_for_cuda_only() -> None:
    from workers.stages.asr import use_batched

    assert use_batched(AsrOptions(device="cpu")) is False
    assert use_batched(AsrOptions(device="cuda", compute_type="float16")) is True
    assert use_batched(AsrOptions(device="cpu", batched="always")) is True
    from app.settings import Settings

    options = AsrOptions.from_settings(Settings(asr_batch_size=16, asr_hotwords="desmoplasia"))
    assert (options.batch_size, options.hotwords) == (16, "desmoplasia")


# --- the English check: main-pass evidence first, the probe on doubt ---------------------


def _decoded(text: str, end: float, logprob: float = -0.3):
    return SimpleNamespace(text=text, end=end, avg_logprob=logprob)


def _evidence(*segments, reason: str | None = None):
    from workers.stages.asr import _MainPassEvidence

    speech = [{"start": 0, "end": 60 * 16000}]
    evidence = _MainPassEvidence(default_prompt(), speech, AsrOptions())
    for segment in segments:
        evidence.add(segment, reason)
    return evidence


def test_plain_english_settles_the_check_without_the_probe() -> None:
    evidence = _evidence(_decoded(LECTURE, end=19.0))
    assert evidence.verdict() == "english"


def test_too_few_words_wait_for_more_segments() -> None:
    assert _evidence(_decoded(" This section is stained.", end=2.0)).verdict() == "pending"


def test_prompt_terms_are_not_evidence_of_english() -> None:
    # What tiny.en makes of foreign speech under the domain prompt: the prompt's own terms.
    parrot = " " + default_prompt().split(": ", 1)[1]
    evidence = _evidence(_decoded(parrot, end=20.0))
    assert evidence.own_words < 20
    assert evidence.verdict() != "english"


@pytest.mark.parametrize(
    ("segment", "reason"),
    [
        # made-up medical-sounding words: neither English nor KB words
        (_decoded(" Hematosinophilolus kalotic mandoblet tuxed anacarcinoma " * 4, 12.0), None),
        # a confident-looking rate, but tiny.en is unsure of every token (Spanish: -4.3)
        (_decoded(LECTURE, end=19.0, logprob=-1.6), None),
        # two words in ten seconds of speech (German comes out as "My name is")
        (_decoded(" My name is.", end=10.0), None),
        # a loop the guards dropped
        (_decoded(" cytoplasm, cytoplasm, cytoplasm, cytoplasm", end=5.0), "repetition"),
    ],
)
def test_foreign_signals_call_the_probe(segment, reason: str | None) -> None:
    assert _evidence(segment, reason=reason).verdict() == "doubt"


def test_no_verdict_after_thirty_seconds_of_speech_calls_the_probe() -> None:
    evidence = _evidence(_decoded(" Hematoxylin and eosin.", end=31.0))
    assert evidence.verdict() == "doubt"


@pytest.mark.slow
def test_english_lecture_is_settled_by_the_main_pass(lecture) -> None:
    _, transcript, _ = lecture
    assert transcript.stats["language_check"] == "main_pass"
    assert "probe_speech_s" not in transcript.stats


@pytest.mark.slow
def test_foreign_narration_stops_the_main_pass_early(media_dir: Path) -> None:
    from tests.support.media import SPANISH_NARRATION

    path = media.narrated_video(
        media_dir, " ".join([SPANISH_NARRATION] * 4), voice="es", name="spanish_long.mp4"
    )
    seen: list[float] = []
    with pytest.raises(StageError) as err:
        transcribe(path, AsrOptions(), progress=seen.append)
    assert err.value.status == "skipped"
    assert "not English" in err.value.reason
    # Doubt on the first segment called the probe, which rejected the file there: the rest
    # of the main pass was never decoded (progress is reported once per decoded segment;
    # tiny.en's first segment on Spanish spans most of the file, so its time says little).
    assert len(seen) == 1


@pytest.mark.slow
def test_reused_speech_map_gives_faster_whispers_own_vad_output(lecture) -> None:
    # The stage decodes the speech chunks of its own VAD pass instead of letting
    # faster-whisper run VAD again; the words and their times must be the same.
    path, transcript, _ = lecture
    options = AsrOptions()
    segments, _ = load_model(options).transcribe(
        str(path),
        language="en",
        beam_size=options.beam_size,
        initial_prompt=options.resolved_prompt(),
        word_timestamps=True,
        vad_filter=True,
        condition_on_previous_text=False,
    )
    bare = [w for s in segments for w in s.words or []]
    assert [w.word for w in bare] == [w.word for w in transcript.words]
    for theirs, ours in zip(bare, transcript.words, strict=True):
        assert ours.start == pytest.approx(theirs.start, abs=0.002)
        assert ours.end == pytest.approx(theirs.end, abs=0.002)


# --- chunks: memory bounded whatever the duration; input limits --------------------------


def _ffmpeg(*args: str) -> None:
    import subprocess

    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args],
        check=True,
        capture_output=True,
    )


def _long_quiet_lecture(folder: Path, seconds: float, name: str) -> Path:
    """A 64x64, 1 fps video of ``seconds``: a narrated sentence (~10 s) at the start and
    again at the end, silence between. Made in a second or two and transcribed in a few
    (little speech), but as long to decode as any lecture of that length."""
    narrated = media.narrated_video(folder, LECTURE[:140], name=f".{name}-speech.mp4")
    _ffmpeg(
        *("-f", "lavfi", "-i", "color=c=gray:s=64x64:r=1", "-i", str(narrated)),
        "-filter_complex",
        "[1:a]aresample=16000,asplit[a][b];"
        f"anullsrc=r=16000:cl=mono,atrim=duration={seconds - 30:.0f}[s];"
        "[a][s][b]concat=n=3:v=0:a=1[out]",
        *("-map", "0:v", "-map", "[out]", "-t", f"{seconds:.0f}"),
        *("-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "32k", "-ac", "1"),
        str(folder / name),
    )
    narrated.unlink()
    return folder / name


# Peak RSS (ru_maxrss: the process's high-water mark; no sampling, no timing) of a fresh
# process that transcribes a short lecture first, so that the model's one-time buffers are
# in place, then the file under test.
_PEAK_RSS = """
import json, resource, sys
from workers.stages.asr import AsrOptions, transcribe

transcribe(sys.argv[1], AsrOptions())
transcript = transcribe(sys.argv[2], AsrOptions())
last = transcript.words[-1]
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"peak_mb": peak_mb, "last_word": [last.word, last.start]}))
"""


def _peak_rss(warm_up: Path, path: Path) -> dict:
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, str(warm_up), str(path)],
        cwd=Path(__file__).resolve().parent.parent,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_duration(media_dir: Path, lecture) -> None:
    # Decoding whole tracks, the stage's peak grew with the duration: +630 MB from a 10-min
    # to a 60-min file (1189 -> 1819 MB after the demo lecture; 64 KB of float32 per second
    # of audio, plus VAD's copies), 7.9 GB for 10 hours. In 5-min chunks both peak at the
    # same height (1174 and 1175 MB).
    warm_up = lecture[0]
    short = _peak_rss(warm_up, _long_quiet_lecture(media_dir, 600, "quiet10.mp4"))
    long = _peak_rss(warm_up, _long_quiet_lecture(media_dir, 3600, "quiet60.mp4"))
    assert long["peak_mb"] - short["peak_mb"] < 100, (short, long)
    # The closing sentence is found an hour in, in the file's time.
    assert 3570 < long["last_word"][1] < 3600, long


@pytest.mark.slow
def test_chunks_are_cut_in_pauses_and_give_the_same_words(lecture) -> None:
    import difflib

    from faster_whisper.vad import VadOptions

    from workers.stages.asr import load_audio

    # Chunks of 8 s make the 24-s lecture four chunks: the same narration comes out, in
    # the file's time, and no word spans a cut.
    path, whole, _ = lecture
    options = AsrOptions(chunk_s=8.0, cut_zone_s=3.0)
    chunked = transcribe(path, options)
    assert chunked.stats["chunks"] >= 3
    assert chunked.duration_s == whole.duration_s
    assert chunked.stats["language_check"] == "main_pass"
    same = difflib.SequenceMatcher(
        None, [w.word.lower() for w in whole.words], [w.word.lower() for w in chunked.words]
    ).ratio()
    assert same > 0.8, (whole.words, chunked.words)
    text = " ".join(s.text for s in chunked.segments).lower()
    for word in ["stained", "hematoxylin", "eosin", "lamina propria", "goblet", "submucosa"]:
        assert word in text, text
    starts = [w.start for w in chunked.words]
    assert starts == sorted(starts)
    audio = load_audio(path, VadOptions(), options)
    cuts = [c.end / 16000 for c in audio.chunks[:-1]]
    for w in chunked.words:
        assert 0.0 <= w.start <= w.end <= chunked.duration_s
        assert not any(w.start < cut - 0.05 and w.end > cut + 0.05 for cut in cuts), (w, cuts)


def test_scan_places_cuts_in_silence() -> None:
    import numpy as np

    from workers.stages.asr import _cut_point

    rng = np.random.default_rng(0)
    window = (rng.standard_normal(16000 * 60) * 0.1).astype(np.float32)
    zone = 16000 * 20
    # The longest VAD silence of the last 20 s: 48-52 s (not 42-43 s, not the 10-s gap
    # before the zone); its middle.
    speech = [
        {"start": 0, "end": 16000 * 30},
        {"start": 16000 * 40, "end": 16000 * 42},
        {"start": 16000 * 43, "end": 16000 * 48},
        {"start": 16000 * 52, "end": 16000 * 60},
    ]
    assert _cut_point(window, speech, zone) == 16000 * 50
    # Speech throughout: the quietest 100 ms of the zone.
    window[16000 * 47 : 16000 * 47 + 2400] *= 0.01
    assert (
        16000 * 47
        <= _cut_point(window, [{"start": 0, "end": 16000 * 60}], zone)
        <= (16000 * 47 + 2400)
    )
    # Silence at the end of the window is a pause too.
    assert _cut_point(window, [{"start": 0, "end": 16000 * 56}], zone) == 16000 * 58


@pytest.mark.slow
def test_english_check_and_guards_work_across_chunks(media_dir: Path) -> None:
    from faster_whisper.vad import VadOptions

    from tests.support.media import SPANISH_NARRATION
    from workers.stages.asr import load_audio

    # Foreign narration cut in 4-s chunks: the check reads the stream of all chunks, and
    # the probe samples speech over the whole file (decoded again, piece by piece).
    path = media.narrated_video(
        media_dir, " ".join([SPANISH_NARRATION] * 2), voice="es", name="spanish_chunks.mp4"
    )
    with pytest.raises(StageError) as err:
        transcribe(path, AsrOptions(chunk_s=4.0, cut_zone_s=1.5))
    assert err.value.status == "skipped"
    assert "not English" in err.value.reason
    # A sentence said again just after a cut repeats the text kept before the cut: the
    # guard's memory of recent text runs across chunks, and drops it.
    sentence = "The nuclei are hyperchromatic."
    path = media.narrated_video(media_dir, f"{sentence} {sentence}", name="repeated.mp4")
    whole = load_audio(path, VadOptions(), AsrOptions())
    half = whole.samples / 16000 / 2
    transcript = transcribe(path, AsrOptions(chunk_s=half + 1.0, cut_zone_s=2.5))
    assert transcript.stats["chunks"] == 2
    assert transcript.stats["dropped"] == {"repeats_previous": 1}, transcript.stats
    assert [s.text for s in transcript.segments] == [sentence]


def test_audio_longer_than_the_limit_is_skipped(media_dir: Path) -> None:
    # Declared by the header: refused before anything is decoded.
    path = media.narrated_video(media_dir, LECTURE[:60], name="limit.mp4", seconds=12.0)
    with pytest.raises(StageError) as err:
        transcribe(path, AsrOptions(max_duration_s=10.0))
    assert (err.value.status, err.value.reason) == (
        "skipped",
        "too long: 0:00:12, the limit is 0:00:10 (QUILT_MAX_VIDEO_DURATION_S)",
    )
    # Understated by the header: MPEG-TS files joined end to end (a header reads 30 s, the
    # audio runs 120 s) are refused once the limit is decoded, before any VAD or model.
    part = media_dir / "part.ts"
    _ffmpeg(
        *("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "30"),
        *("-c:a", "aac", "-f", "mpegts", str(part)),
    )
    joined = media_dir / "joined.ts"
    joined.write_bytes(part.read_bytes() * 4)
    with pytest.raises(StageError) as err:
        transcribe(joined, AsrOptions(max_duration_s=60.0))
    assert (err.value.status, err.value.reason) == (
        "skipped",
        "too long: more than 0:01:00 of audio, the limit is 0:01:00 (QUILT_MAX_VIDEO_DURATION_S)",
    )


def test_duration_limit_from_settings() -> None:
    from app.settings import Settings

    assert AsrOptions().max_duration_s == 4 * 3600
    options = AsrOptions.from_settings(Settings(max_video_duration_s=3600))
    assert options.max_duration_s == 3600
