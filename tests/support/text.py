"""What the text-stage tests and bench feed the stage: the bundled knowledge base, and
transcripts with word timings made from plain sentences."""

from __future__ import annotations

from workers.knowledge import build_kb
from workers.types import Segment, Transcript, Word

KB_PATH = build_kb.KB_PATH


def transcript_of(sentences: list[str]) -> Transcript:
    """One segment per sentence, 0.35 s a word and 1.5 s between sentences, words heard
    with probability 0.9."""
    segments, t = [], 0.0
    for i, sentence in enumerate(sentences):
        words = []
        for token in sentence.split():
            words.append(Word(" " + token, round(t, 3), round(t + 0.3, 3), 0.9))
            t += 0.35
        segments.append(Segment(i, words[0].start, words[-1].end, sentence, words))
        t += 1.5
    return Transcript("en", 1.0, round(t, 3), segments)
