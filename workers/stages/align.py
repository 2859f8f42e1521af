"""Align stage: pair each kept histology image with the narration spoken while it was shown.

Quilt-1M (Ikezogwo et al., NeurIPS 2023, section 3) aligned a chunk's images with the
medical text of the same time span, one pair per (image, medical text), and kept only text
whose entities validated against UMLS. Here, for each kept histology frame:

- window: sentences that overlap [start_s - pad_s, end_s + pad_s] by at least half of the
  shorter of the two (the sentence or the window). Narrators announce a slide just before
  it appears ("next, a section of liver...") and finish their sentence after it is gone;
  ASR sentence boundaries also drift by a second or so. The pad (settings
  ``align_pad_s``, 2 s) takes in those edges; the half-overlap rule keeps out the previous
  and next views' sentences that merely graze the pad, while a long sentence spoken over
  a short view still counts. A sentence spoken while another kept image was on screen
  (a larger unpadded overlap with that image) goes to that image only: the pad bridges
  gaps, it does not take a neighbour's narration.
- medical text: the window's sentences with ``is_medical`` and at least one validated
  concept, joined in time order; ROI text: those of them with ``is_roi`` (they point at a
  region: "here", "in this area"). A pointing sentence without a validated concept ("in
  this area you can see it") is not a caption. A window without a validated concept
  gives no pair (counted in stats).
- caption (``text``): the medical text, which holds the ROI text.
- ``noisy_text`` / ``corrected_text``: the whole window, raw ASR and corrected.
- ``umls`` / ``keywords``: unique, in order of first appearance over the medical sentences.
- ``denoising``: the cleanup of the medical sentences step by step (noisy text, corrected
  text, each correction with its score and concept, keywords, validated concepts with their
  link scores, and which extractor chose the sentences), as Quilt recorded per pair.
- scores, each in [0, 1] except the count:
  ``time_overlap``: share of the medical sentences' duration inside the unpadded span;
  ``concept_count``: unique validated concepts; ``concept_link``: their mean link score;
  ``histology``: the frame's detector score;
  ``keyword_overlap``: share of medical keywords that share a token with a validated
  concept's name or mention (keywords about the validated findings, not about the weather).
  ``confidence = 0.35 time_overlap + 0.20 min(1, concepts / 3) + 0.20 histology
  + 0.15 keyword_overlap + 0.10 concept_link``: time first, because a caption spoken while
  another image was on screen is the commonest misalignment.

Pure and deterministic: same inputs, same pairs in the same order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workers.types import (
    AlignedPair,
    AlignResult,
    FramesResult,
    KeptFrame,
    Sentence,
    StageJob,
    StageOutput,
    TextResult,
)

if TYPE_CHECKING:
    from app.settings import Settings

_TOKEN = re.compile(r"[a-z0-9]+")


@dataclass
class AlignOptions:
    pad_s: float = 2.0
    min_confidence: float = 0.0  # pairs below are dropped; 0 keeps all validated pairs

    @classmethod
    def from_settings(cls, s: Settings) -> AlignOptions:
        return cls(pad_s=s.align_pad_s)


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def _in_window(s: Sentence, lo: float, hi: float) -> bool:
    shorter = min(max(0.0, s.end_s - s.start_s), hi - lo)
    if shorter <= 0.0:  # a zero-length sentence counts when it lies inside the window
        return lo <= s.start_s <= hi
    return _overlap(s.start_s, s.end_s, lo, hi) >= 0.5 * shorter


def _join(sentences: list[Sentence], attr: str) -> str:
    return " ".join(t for t in (getattr(s, attr).strip() for s in sentences) if t)


def _unique(items: list[str]) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for item in items:
        key = item.strip().lower()
        if key and key not in seen:
            seen.add(key)
            out.append(item.strip())
    return out


def _tokens(text: str) -> set[str]:
    return set(_TOKEN.findall(text.lower()))


def _best_concepts(concepts: list) -> list:
    best: dict[str, object] = {}
    for c in concepts:
        if c.concept_id not in best or c.score > best[c.concept_id].score:
            best[c.concept_id] = c
    return list(best.values())


def _pair_for(
    index: int,
    frame: KeptFrame,
    sentences: list[Sentence],
    best_overlap: list[float],
    options: AlignOptions,
) -> tuple[AlignedPair | None, str]:
    lo, hi = frame.start_s - options.pad_s, frame.end_s + options.pad_s
    window = [
        s
        for s, best in zip(sentences, best_overlap, strict=True)
        if _in_window(s, lo, hi)
        and _overlap(s.start_s, s.end_s, frame.start_s, frame.end_s) >= best - 1e-9
    ]
    if not window:
        return None, "no_text"
    medical = [s for s in window if s.is_medical and s.concepts]
    if not medical:
        return None, "no_concept"

    medical_text = _join(medical, "corrected_text")
    roi_text = _join([s for s in medical if s.is_roi], "corrected_text")

    concepts = [c for s in medical for c in s.concepts]
    umls = _unique([c.concept_id for c in concepts])
    keywords = _unique([k for s in medical for k in s.keywords])

    spoken = sum(max(0.0, s.end_s - s.start_s) for s in medical)
    inside = sum(_overlap(s.start_s, s.end_s, frame.start_s, frame.end_s) for s in medical)
    time_overlap = inside / spoken if spoken > 0 else 0.0
    concept_vocab: set[str] = set()
    for c in concepts:
        concept_vocab |= _tokens(c.name) | _tokens(c.mention)
    keyword_overlap = (
        sum(1 for k in keywords if _tokens(k) & concept_vocab) / len(keywords) if keywords else 0.0
    )
    best_link: dict[str, float] = {}
    for c in concepts:
        best_link[c.concept_id] = max(best_link.get(c.concept_id, 0.0), c.score)
    concept_link = sum(best_link.values()) / len(best_link)
    histology = frame.histology_score
    confidence = (
        0.35 * time_overlap
        + 0.20 * min(1.0, len(umls) / 3)
        + 0.20 * histology
        + 0.15 * keyword_overlap
        + 0.10 * min(1.0, max(0.0, concept_link))
    )
    confidence = round(min(1.0, max(0.0, confidence)), 4)
    if confidence < options.min_confidence:
        return None, "low_confidence"
    pair = AlignedPair(
        frame_index=index,
        image_path=frame.image_path,
        start_s=frame.start_s,
        end_s=frame.end_s,
        text=medical_text,
        noisy_text=_join(window, "noisy_text"),
        corrected_text=_join(window, "corrected_text"),
        medical_text=medical_text,
        roi_text=roi_text,
        umls=umls,
        keywords=keywords,
        magnification=frame.magnification,
        scores={
            "time_overlap": round(time_overlap, 4),
            "concept_count": float(len(umls)),
            "concept_link": round(concept_link, 4),
            "histology": round(histology, 4),
            "keyword_overlap": round(keyword_overlap, 4),
        },
        confidence=confidence,
        denoising={
            "noisy_text": _join(medical, "noisy_text"),
            "corrected_text": medical_text,
            "corrections": [
                {
                    "original": c.original,
                    "replacement": c.replacement,
                    "score": c.score,
                    "concept_id": c.concept_id,
                }
                for s in medical
                for c in s.corrections
            ],
            "keywords": keywords,
            "concepts": [
                {"concept_id": c.concept_id, "name": c.name, "mention": c.mention, "score": c.score}
                for c in _best_concepts(concepts)
            ],
            "extractor": medical[0].extractor,
        },
    )
    return pair, "paired"


def align(
    frames: FramesResult, text: TextResult, options: AlignOptions | None = None
) -> AlignResult:
    """One pair per kept histology frame whose window holds validated medical text."""
    options = options or AlignOptions()
    sentences = sorted(text.sentences, key=lambda s: (s.start_s, s.end_s))
    histology = [(i, f) for i, f in enumerate(frames.frames) if f.is_histology]
    # Each sentence's largest unpadded overlap with any kept image's span.
    best_overlap = [
        max((_overlap(s.start_s, s.end_s, f.start_s, f.end_s) for _, f in histology), default=0.0)
        for s in sentences
    ]
    counts = {"paired": 0, "no_text": 0, "no_concept": 0, "low_confidence": 0}
    pairs: list[AlignedPair] = []
    for index, frame in histology:
        pair, outcome = _pair_for(index, frame, sentences, best_overlap, options)
        counts[outcome] += 1
        if pair is not None:
            pairs.append(pair)
    stats = {
        "frames": len(frames.frames),
        "histology_frames": len(histology),
        "pairs": len(pairs),
        "dropped_no_text": counts["no_text"],
        "dropped_no_concept": counts["no_concept"],
        "dropped_low_confidence": counts["low_confidence"],
    }
    return AlignResult(pairs=pairs, stats=stats)


def run(job: StageJob) -> StageOutput:
    """The stage as the pipeline table runs it: pairs for the pairable frames, each
    pointing back (``frame_index``) at its frame in the full list the stage was given."""
    to_pair, index_map = job.inputs["frames"].pairable()
    result = align(to_pair, job.inputs["text"], AlignOptions.from_settings(job.settings))
    for pair in result.pairs:
        pair.frame_index = index_map[pair.frame_index]
    return StageOutput(
        artifacts={"pairs": result}, stats={"pairs": len(result.pairs), **result.stats}
    )
