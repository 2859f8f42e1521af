"""Align stage on hand-built frames and sentences: exact pairs, drops, determinism."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from workers.stages.align import AlignOptions, align
from workers.types import Concept, FramesResult, KeptFrame, Sentence, TextResult

COLON = Concept("C0009368", "Colon", ["T023"], "colon", 0.97)
GLAND = Concept("C1285092", "Gland", ["T023"], "glands", 0.91)
HEMATOXYLIN = Concept("C0062601", "Hematoxylin", ["T130"], "hematoxylin", 0.88)
HEPATOCYTE = Concept("C0227525", "Hepatocytes", ["T025"], "hematocytes", 0.71)


def _frame(i: int, start: float, end: float, score: float, *, histology: bool = True) -> KeptFrame:
    t = (start + end) / 2
    return KeptFrame(
        image_path=f"/out/images/frame_{round(t * 1000):08d}.jpg",
        t_s=t,
        start_s=start,
        end_s=end,
        width=1280,
        height=720,
        histology_score=score,
        is_histology=histology,
        magnification=1 if i == 2 else None,
    )


def _sentence(
    start: float,
    end: float,
    text: str,
    concepts: list[Concept] = (),
    keywords: list[str] = (),
    *,
    roi: bool = False,
    medical: bool | None = None,
    noisy: str | None = None,
) -> Sentence:
    return Sentence(
        start_s=start,
        end_s=end,
        noisy_text=noisy if noisy is not None else text.lower(),
        corrected_text=text,
        keywords=list(keywords),
        concepts=list(concepts),
        is_medical=bool(concepts) if medical is None else medical,
        is_roi=roi,
    )


@pytest.fixture
def frames() -> FramesResult:
    return FramesResult(
        frames=[
            _frame(0, 10.0, 20.0, 0.9),
            _frame(1, 30.0, 40.0, 1.0),
            _frame(2, 50.0, 60.0, 0.8),
            _frame(3, 70.0, 80.0, 0.3, histology=False),
        ],
        chunks=[(10.0, 20.0), (30.0, 40.0), (50.0, 60.0)],
    )


@pytest.fixture
def text() -> TextResult:
    return TextResult(
        sentences=[
            _sentence(0.0, 5.0, "Welcome to the lecture."),
            _sentence(9.0, 13.0, "This is the colon with its glands.", [COLON, GLAND],
                      ["colon", "glands"], noisy="this is the colon with its glans"),
            _sentence(14.0, 18.0, "Here the nuclei are blue with hematoxylin.", [HEMATOXYLIN],
                      ["nuclei", "hematoxylin"], roi=True,
                      noisy="here the nuclei are blue with hammer toxicin"),
            _sentence(19.0, 21.0, "Look at this, let us move on.", roi=True),
            # Frame 1: narration without a validated concept, even one flagged medical.
            _sentence(31.0, 35.0, "What a nice picture this is."),
            _sentence(35.0, 39.0, "A classic appearance.", [], ["classic appearance"], medical=True),
            # Frame 2: medical speech starting before the frame, an ROI sentence ending
            # after it (inside the pad), and a sentence that only grazes the pad.
            _sentence(48.5, 52.0, "The colon again, next to hepatocytes.", [COLON, HEPATOCYTE],
                      ["colon", "hepatocytes", "next"]),
            _sentence(60.5, 62.5, "In this area the gland is cut across.", [GLAND], ["gland"],
                      roi=True),
            _sentence(62.6, 68.0, "The colon of a different patient.", [COLON], ["colon"]),
            # Frame 3 is not histology: never paired.
            _sentence(72.0, 76.0, "The colon once more.", [COLON], ["colon"]),
        ]
    )  # fmt: skip


def test_pairs_are_exact(frames: FramesResult, text: TextResult) -> None:
    result = align(frames, text, AlignOptions(pad_s=2.0))
    assert [p.frame_index for p in result.pairs] == [0, 2]
    first, second = result.pairs

    assert first.image_path == frames.frames[0].image_path
    assert (first.start_s, first.end_s) == (10.0, 20.0)
    assert first.medical_text == (
        "This is the colon with its glands. Here the nuclei are blue with hematoxylin."
    )
    assert first.text == first.medical_text
    # The pointing sentence without a concept is context, not ROI text.
    assert first.roi_text == "Here the nuclei are blue with hematoxylin."
    assert first.corrected_text == (
        "This is the colon with its glands. Here the nuclei are blue with hematoxylin. "
        "Look at this, let us move on."
    )
    assert first.noisy_text == (
        "this is the colon with its glans here the nuclei are blue with hammer toxicin "
        "look at this, let us move on."
    )
    assert first.umls == ["C0009368", "C1285092", "C0062601"]
    assert first.keywords == ["colon", "glands", "nuclei", "hematoxylin"]
    assert first.magnification is None
    assert first.scores == {
        "time_overlap": 0.875,  # 3 of 4 s, then 4 of 4 s inside [10, 20]
        "concept_count": 3.0,
        "concept_link": round((0.97 + 0.91 + 0.88) / 3, 4),
        "histology": 0.9,
        "keyword_overlap": 0.75,  # "nuclei" names no validated concept
    }
    assert first.confidence == round(
        0.35 * 0.875 + 0.20 * 1.0 + 0.20 * 0.9 + 0.15 * 0.75 + 0.10 * (0.97 + 0.91 + 0.88) / 3, 4
    )

    assert second.medical_text == (
        "The colon again, next to hepatocytes. In this area the gland is cut across."
    )
    assert second.text == second.medical_text
    assert second.roi_text == "In this area the gland is cut across."
    assert "different patient" not in second.corrected_text  # 0.6 s of 5.4 s in the pad
    assert second.umls == ["C0009368", "C0227525", "C1285092"]
    assert second.keywords == ["colon", "hepatocytes", "next", "gland"]
    assert second.magnification == 1
    assert second.scores["time_overlap"] == round(2.0 / 5.5, 4)
    assert second.scores["keyword_overlap"] == 0.75  # "next" names no concept
    assert 0.0 <= second.confidence < first.confidence <= 1.0

    assert result.stats == {
        "frames": 4,
        "histology_frames": 3,
        "pairs": 2,
        "dropped_no_text": 0,
        "dropped_no_concept": 1,
        "dropped_low_confidence": 0,
    }


def test_pad_bounds_the_window(frames: FramesResult, text: TextResult) -> None:
    result = align(frames, text, AlignOptions(pad_s=0.0))
    second = result.pairs[1]
    assert second.roi_text == ""  # 60.5-62.5 s is mostly past the frame's end
    assert second.medical_text == "The colon again, next to hepatocytes."
    wide = align(frames, text, AlignOptions(pad_s=10.0))
    # With a 10 s pad, frame 0's window (0-30 s) takes in the welcome sentence too.
    assert wide.pairs[0].corrected_text.startswith("Welcome to the lecture.")


def test_a_sentence_goes_to_the_image_it_was_spoken_over() -> None:
    frames = FramesResult(frames=[_frame(0, 10.0, 20.0, 1.0), _frame(1, 20.0, 30.0, 1.0)])
    text = TextResult(
        sentences=[
            _sentence(12.0, 19.0, "The colon.", [COLON], ["colon"]),
            _sentence(19.0, 20.5, "Glands.", [GLAND], ["glands"]),  # 1 s vs 0.5 s
            _sentence(20.5, 23.5, "Hematoxylin.", [HEMATOXYLIN], ["hematoxylin"]),
            _sentence(30.5, 31.5, "Hepatocytes.", [HEPATOCYTE], ["hepatocytes"]),  # pad only
        ]
    )
    first, second = align(frames, text, AlignOptions(pad_s=2.0)).pairs
    assert first.medical_text == "The colon. Glands."
    assert second.medical_text == "Hematoxylin. Hepatocytes."


def test_concept_less_windows_give_no_pair(frames: FramesResult, text: TextResult) -> None:
    no_concepts = TextResult(
        sentences=[replace(s, concepts=[], is_medical=s.is_medical) for s in text.sentences]
    )
    result = align(frames, no_concepts, AlignOptions())
    assert result.pairs == []
    assert result.stats["dropped_no_concept"] == 3
    empty = align(frames, TextResult(), AlignOptions())
    assert empty.pairs == [] and empty.stats["dropped_no_text"] == 3


def test_align_is_deterministic_and_idempotent(frames: FramesResult, text: TextResult) -> None:
    once = align(frames, text, AlignOptions())
    again = align(frames, text, AlignOptions())
    shuffled = list(text.sentences)
    random.Random(7).shuffle(shuffled)
    reordered = align(frames, TextResult(sentences=shuffled), AlignOptions())
    assert once == again == reordered
    # The inputs are not modified.
    assert [s.start_s for s in text.sentences] == sorted(s.start_s for s in text.sentences)


def test_min_confidence_drops_weak_pairs(frames: FramesResult, text: TextResult) -> None:
    all_pairs = align(frames, text, AlignOptions())
    cut = sorted(p.confidence for p in all_pairs.pairs)[-1]
    strict = align(frames, text, AlignOptions(min_confidence=cut))
    assert [p.frame_index for p in strict.pairs] == [0]
    assert strict.stats["dropped_low_confidence"] == 1


def test_options_from_settings() -> None:
    from app.settings import Settings

    assert AlignOptions.from_settings(Settings(align_pad_s=3.5)).pad_s == 3.5
