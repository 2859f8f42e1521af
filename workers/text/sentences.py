"""Sentences of a transcript, the token helpers the text stage shares, and the ROI cues.

The transcript's words are grouped into sentences at sentence punctuation, at a pause
longer than ``pause_s`` (1 s: narrators pause between statements, and Whisper drops
punctuation on long run-ons) or at ``max_sentence_s``. Each sentence keeps the time span
of its words and, per word, the recognizer's probability (the correction reads its doubt).

A sentence is ROI text, Quilt-1M's "region of interest" text, when it has a pointing cue
(``ROI_CUES``: "here", "this area", "the arrow", "at higher power", "you can see", ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from workers.types import Transcript

ROI_CUES: tuple[str, ...] = (
    r"\bhere\b",
    r"\bthis (?:area|region|field|spot|part|zone|focus|structure|cell|gland|nodule)\b",
    r"\bthese (?:areas|regions|cells|structures|glands)\b",
    r"\bthe arrows?\b",
    r"\barrowheads?\b",
    r"\bat (?:higher|high|lower|low|medium) (?:power|magnification)\b",
    r"\b(?:you|we) (?:can|could) (?:see|appreciate|notice)\b",
    r"\b(?:notice|look at|note)\b",
    r"\bin the (?:center|centre|middle|corner|top|bottom|left|right|upper|lower)\b",
    r"\b(?:circled|outlined|highlighted|pointer|cursor)\b",
)
_SENTENCE_END = re.compile(r"[.?!]+[\"')\]]*$")
_TOKEN_CORE = re.compile(r"^([^\w&]*)(.*?)([^\w&]*)$")


@dataclass
class RawSentence:
    """A sentence as heard: its tokens, their time span and their probabilities."""

    start_s: float
    end_s: float
    tokens: list[str]
    probabilities: list[float] = field(default_factory=list)  # per token; [] if unknown


def split_sentences(
    transcript: Transcript, *, pause_s: float = 1.0, max_sentence_s: float = 30.0
) -> list[RawSentence]:
    """Group the transcript's words into sentences with the time span of their words."""
    sentences: list[RawSentence] = []
    current: list[str] = []
    probabilities: list[float] = []
    start = end = 0.0

    def flush() -> None:
        if current:
            sentences.append(RawSentence(start, end, list(current), list(probabilities)))
            current.clear()
            probabilities.clear()

    for segment in transcript.segments:
        if not segment.words:
            # No word timestamps: one sentence per sentence-ending punctuation mark, each
            # with the segment's span (the finest timing there is).
            flush()
            for part in re.split(r"(?<=[.?!])\s+", segment.text.strip()):
                if part.strip():
                    sentences.append(RawSentence(segment.start, segment.end, part.split()))
            continue
        for word in segment.words:
            token = word.word.strip()
            if not token:
                continue
            if current and (word.start - end > pause_s or word.end - start > max_sentence_s):
                flush()
            if not current:
                start = word.start
            current.append(token)
            probabilities.append(word.probability)
            end = word.end
            if _SENTENCE_END.search(token):
                flush()
    flush()
    return sentences


def split_token(token: str) -> tuple[str, str, str]:
    """A token as (leading punctuation, word, trailing punctuation)."""
    m = _TOKEN_CORE.match(token)
    assert m is not None
    return m.group(1), m.group(2), m.group(3)


def merge_hyphens(tokens: list[str], probs: list[float]) -> tuple[list[str], list[float]]:
    """Whisper writes compounds as "low -power": join a "-word" token to the one before,
    and its probability with it (the least sure of the two)."""
    out: list[str] = []
    out_probs: list[float] = []
    for token, prob in zip(tokens, probs, strict=True):
        if out and len(token) > 1 and token[0] == "-" and token[1].isalpha():
            out[-1] = out[-1] + token
            out_probs[-1] = min(out_probs[-1], prob)  # as sure as its least sure part
        else:
            out.append(token)
            out_probs.append(prob)
    return out, out_probs
