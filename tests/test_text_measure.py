"""Key-term recall of the corrected text, and words changed on control text.

Two narrated lectures with known key terms: the demo (``demo/lecture.json``) and a second
one with different terms (``tests/fixtures/lecture2.json``, synthesized here with
espeak-ng), both transcribed by the real tiny.en with the stage's default options. The
control set is 99 ordinary English sentences (``tests/fixtures/control_sentences.txt``),
cleaned alone and interleaved with medical narration (so that the medical-context rules
are active around them); the correct medical narration itself is cleaned too.

Measured (CPU, tiny.en int8, beam 5, domain prompt): demo raw 0.694 -> corrected 0.917
(33/36); second lecture raw 0.615 -> corrected 0.962 (25/26); control 0.1% of words
changed (1 of 1019: "croissants" -> "crescents"), alone and interleaved; correct medical
narration 0 words changed. The target of 0.9 recall is reached on both lectures. Still
missed: "prominent nucleoli" and "brown chromogen" (heard as "prominent nuclei", p 0.9,
and "ground chroma to"), "fundus" ("fungus-folded graph", not histopathology vocabulary)
and "granuloma" ("falls at random moment").
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import media
from tests.support.text import transcript_of
from workers.stages.text import TextOptions, process
from workers.text.measure import (
    changed_word_rate,
    key_term_recall,
    load_control_sentences,
    word_error_rate,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEMO = Path(__file__).resolve().parent.parent / "demo"


def _lecture(name: str) -> dict:
    path = DEMO / "lecture.json" if name == "demo" else FIXTURES / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8"))


def _recalls(video: Path, spec: dict, options: TextOptions) -> tuple[float, float, list[str]]:
    from workers.stages.asr import AsrOptions, transcribe

    terms = [t for s in spec["segments"] for t in s["key_terms"]]
    result = process(transcribe(video, AsrOptions()), options)
    raw, _ = key_term_recall(" ".join(s.noisy_text for s in result.sentences), terms)
    corrected, missed = key_term_recall(" ".join(s.corrected_text for s in result.sentences), terms)
    return raw, corrected, missed


def _narrated_recalls(
    name: str, tmp_path: Path, options: TextOptions
) -> tuple[float, float, list[str]]:
    """A fixture lecture narrated with espeak-ng here, then measured as ``_recalls``."""
    spec = _lecture(name)
    text = " ".join(s["narration"] for s in spec["segments"])
    return _recalls(media.narrated_video(tmp_path, text, name=f"{name}.mp4"), spec, options)


@pytest.mark.slow
def test_demo_key_term_recall(text_options: TextOptions) -> None:
    raw, corrected, missed = _recalls(DEMO / "lecture.mp4", _lecture("demo"), text_options)
    print(f"demo key-term recall: raw {raw:.3f} corrected {corrected:.3f} missed {missed}")
    assert corrected >= 0.9, missed
    assert corrected >= raw + 0.2


@pytest.mark.slow
def test_second_lecture_key_term_recall(tmp_path: Path, text_options: TextOptions) -> None:
    raw, corrected, missed = _narrated_recalls("lecture2", tmp_path, text_options)
    print(f"lecture2 key-term recall: raw {raw:.3f} corrected {corrected:.3f} missed {missed}")
    assert corrected >= 0.9, missed
    assert corrected >= raw + 0.3


@pytest.mark.slow
def test_held_out_lecture_key_term_recall(tmp_path: Path, text_options: TextOptions) -> None:
    """A third lecture (lung, breast, lymph node, prostate, brain) written after the stage
    was tuned and never used to tune it: how the correction generalizes. Measured: raw
    0.562 -> corrected 0.812 (32 term occurrences); after the work on lecture4, raw 0.594
    (the KB now lists hyphenated spellings the recognizer writes) -> corrected 0.844. Only
    the gain is asserted: the 0.9 target is for the two lectures above."""
    raw, corrected, missed = _narrated_recalls("lecture3", tmp_path, text_options)
    print(f"held-out lecture3 key-term recall: raw {raw:.3f} corrected {corrected:.3f} {missed}")
    assert corrected >= raw + 0.15, missed


@pytest.mark.slow
def test_tuning_lecture_key_term_recall(tmp_path: Path, text_options: TextOptions) -> None:
    """A fourth lecture (stomach, gynaecological, haematopathology, skin, bone, transplant
    kidney, pancreas) written to tune how the correction generalizes beyond the demo and
    lecture2. Measured: raw 0.500 -> corrected 0.652 before that work, 0.761 after (46
    term occurrences; 1 wrong correction left, "chain biopsy" -> skin biopsy)."""
    raw, corrected, missed = _narrated_recalls("lecture4", tmp_path, text_options)
    print(f"lecture4 key-term recall: raw {raw:.3f} corrected {corrected:.3f} missed {missed}")
    assert corrected >= 0.72, missed
    assert corrected >= raw + 0.2


def test_key_term_recall_measure() -> None:
    assert key_term_recall(
        "the optic disk and colonic crypt", ["optic disc", "colonic crypts"]
    ) == (
        1.0,
        [],
    )
    assert key_term_recall("nuclei here", ["nuclei", "nuclei", "nucleoli"])[0] == pytest.approx(
        1 / 3
    )


def test_control_sentences_are_left_alone(text_options: TextOptions) -> None:
    control = load_control_sentences(FIXTURES / "control_sentences.txt")
    assert len(control) >= 90
    alone = process(transcript_of(control), text_options)
    rate, changed, total = changed_word_rate(control, [s.corrected_text for s in alone.sentences])
    assert rate <= 0.01, (changed, total)

    # Interleaved with medical narration: the medical-context rules are active around them.
    medical = [s["narration"] for s in _lecture("lecture2")["segments"]] + [
        s["narration"] for s in _lecture("demo")["segments"]
    ]
    mixed: list[str] = []
    for i, sentence in enumerate(control):
        mixed += [medical[i % len(medical)], sentence]
    transcript = transcript_of(mixed)
    result = process(transcript, text_options)
    outputs = [
        " ".join(s.corrected_text for s in result.sentences if seg.start <= s.start_s <= seg.end)
        for seg in transcript.segments
    ]
    rate, changed, total = changed_word_rate(mixed[1::2], outputs[1::2])
    assert rate <= 0.01, (changed, total)
    # Correct medical narration is not changed at all.
    assert changed_word_rate(mixed[0::2], outputs[0::2])[1] == 0


def test_word_error_rate() -> None:
    assert word_error_rate("the lamina propria", "the lamina propria") == 0.0
    # one substitution, one deletion over 4 reference words
    assert word_error_rate("a b c d", "a x c") == pytest.approx(0.5)
    assert word_error_rate("a b", "a b c d") == pytest.approx(1.0)  # two insertions
    assert word_error_rate("", "") == 0.0 and word_error_rate("", "x") == 1.0
    # two substitutions and an insertion over 3 reference words
    assert word_error_rate("Hematoxylin and eosin.", "hammer toxicin and deacin") == 1.0


@pytest.mark.slow
def test_domain_prompt_lowers_word_error_rate_on_the_demo() -> None:
    """Biasing with the domain vocabulary. The stage's default (the prompt built from the
    KB) against no prompt at all, same model and settings otherwise."""
    from workers.stages.asr import AsrOptions, transcribe

    spec = _lecture("demo")
    reference = " ".join(s["narration"] for s in spec["segments"])

    def wer(prompt: str | None) -> float:
        transcript = transcribe(DEMO / "lecture.mp4", AsrOptions(initial_prompt=prompt))
        return word_error_rate(reference, " ".join(s.text for s in transcript.segments))

    biased, plain = wer(None), wer("")
    print(f"demo WER: no prompt {plain:.3f}, domain prompt {biased:.3f}")
    assert biased < plain - 0.02
