"""Text stage: from an ASR transcript to sentences that are corrected, keyworded, validated.

Quilt-1M (Ikezogwo et al., NeurIPS 2023, sec. 3.1) cleaned its ASR text in three steps:
correct the ASR errors on medical terms, extract keywords, and keep only text whose
keywords are valid UMLS concepts ("medical text"); then it pulled out "ROI text", the
sentences where the narrator points at a region of the image. This stage follows the same
steps without an LLM for the cleanup; each step lives in ``workers.text``, whose modules
hold the reasoning behind their rules and thresholds:

1. Sentences (``sentences``): the transcript's words grouped at sentence punctuation, at a
   pause longer than ``pause_s`` or at ``max_sentence_s``, each with the time span of its
   words.
2. Correction (``correct``): windows of words that are neither English nor KB words, and in
   a medical context doubted or ordinary-word windows, are compared by sound and spelling
   with the KB's terms and their plurals (``plurals``); a strong match replaces the window
   ("hammer toxicin and deacin" -> "hematoxylin and eosin"), and correct English is left
   alone. The medical context is a KB term said as it is in the sentence or within
   ``context_sentences`` of it, and a term the lecture already says gets a lower bar.
3. Keywords (``keywords``): RAKE over the whole transcript with spaCy's English stop words
   and the lecture fillers; each sentence keeps its own candidate phrases ranked by their
   document score.
4. Linking and validation (``linking``): the KB aliases the sentence says, its noun phrases
   and its keywords are linked to the KB with scispacy's linker; ordinary English words
   must link at ``english_link_threshold``.
5. Medical and ROI text (``extract``): by rules (concept density, pointing cues such as
   "here" or "at higher power") or, when ``llm_url`` is set, by an LLM that falls back to
   the rules with its reason in the stats.

The per-KB linker, sound matcher and word sets (``resources``) are built once per process.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from workers.text.correct import correct_tokens
from workers.text.extract import SentenceView, llm_extract, rule_extract
from workers.text.keywords import FILLER_WORDS, noun_phrases, rake_phrases, rake_scores
from workers.text.linking import alias_mentions, lecture_mentions, linker_mentions, validate
from workers.text.llm import LlmConfig
from workers.text.resources import kb_resources
from workers.text.sentences import ROI_CUES, RawSentence, split_sentences
from workers.types import Correction, Sentence, StageJob, StageOutput, TextResult, Transcript


@dataclass
class TextOptions:
    """The stage's thresholds and sources: the KB, the LLM, the cues and stop words."""

    kb_path: str | None = None  # None: the KB bundled in workers/knowledge
    kb_cache_dir: str | None = None  # None: settings.var_dir / "kb-cache"
    link_threshold: float = 0.6
    english_link_threshold: float = 0.85
    correction_threshold: float = 0.78
    short_term_threshold: float = 0.88
    short_key_length: int = 6
    max_ngram: int = 4
    # Windows of ordinary English words ("hepatic sites", "cases necrosis"): only in a
    # medical context, only towards long terms, and with a stricter score (see
    # ``workers.text.correct``).
    english_corrections: bool = True
    english_threshold: float = 0.85
    english_anchored_threshold: float = 0.80
    english_min_key_length: int = 8
    english_rest_threshold: float = 0.6
    # A one-word term that starts or ends with a said word this long (a share of the
    # term's letters) is that word said as it is, next to another: "stroma holds".
    english_part_share: float = 0.6
    # A term the lecture already says (as it is, or corrected earlier) is likely said
    # again: its bar is lower.
    lecture_term_bonus: float = 0.05
    # Word probabilities (Whisper's, in the transcript): a word under low_probability is a
    # guess. A window is low-confidence when low_confidence_share of its letters are in
    # such words; it may then span stop words (a garble of ordinary words, "You know this
    # to chemistry") and up to low_confidence_max_ngram words, in a medical context, and
    # its spelling weighs less against its sound (low_confidence_letter_discount). A
    # window made only of KB words is meant as said unless it is low-confidence or the
    # recognizer doubted it as a whole (the product of its word probabilities is under
    # low_probability: "dysplastic stroma", 0.55 x 0.04); it may then only become a term
    # that keeps one of its words, so a confidently heard "prominent nuclei" stays.
    low_probability: float = 0.5
    low_confidence_share: float = 0.5
    low_confidence_max_ngram: int = 7
    low_confidence_letter_discount: float = 0.7
    # Of overlapping candidate windows, one explaining more low-probability words wins
    # unless it scores this much less per extra word.
    low_word_margin: float = 0.05
    context_sentences: int = 1
    # Medical text: at least this many validated concepts per content word.
    min_concept_density: float = 0.05
    # The LLM extractor of medical / ROI text: off while llm_url is empty.
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = field(default="", repr=False)
    llm_timeout_s: float = 30.0
    llm_batch_size: int = 20
    pause_s: float = 1.0
    max_sentence_s: float = 30.0
    max_keywords: int = 5
    roi_cues: tuple[str, ...] = ROI_CUES
    extra_stop_words: frozenset[str] = field(default_factory=lambda: FILLER_WORDS)

    @classmethod
    def from_settings(cls, settings: Any) -> TextOptions:
        return cls(
            kb_path=str(settings.resolved_kb_path),
            kb_cache_dir=str(settings.var_dir / "kb-cache"),
            link_threshold=settings.link_threshold,
            llm_url=settings.llm_url,
            llm_model=settings.llm_model,
            llm_api_key=settings.llm_api_key,
            llm_timeout_s=settings.llm_timeout_s,
        )


def process(transcript: Transcript, options: TextOptions | None = None) -> TextResult:
    """Sentences of the transcript, corrected, with keywords, KB concepts and ROI flags."""
    options = options or TextOptions()
    started = time.perf_counter()
    res = kb_resources(options)
    roi_patterns = [re.compile(p, re.IGNORECASE) for p in options.roi_cues]

    raw = split_sentences(
        transcript, pause_s=options.pause_s, max_sentence_s=options.max_sentence_s
    )
    # Medical context: which sentences (with their neighbours) say a KB term as it is,
    # and which concepts the lecture says correctly somewhere.
    mentioned = [lecture_mentions(sentence.tokens, res) for sentence in raw]
    lecture_concepts = {c for found in mentioned for c in found}
    reach = options.context_sentences
    corrected: list[tuple[RawSentence, list[str], list[Correction]]] = []
    for n, sentence in enumerate(raw):
        context = any(mentioned[max(0, n - reach) : n + reach + 1])
        tokens, corrections = correct_tokens(
            sentence.tokens,
            res,
            options,
            medical_context=context,
            lecture_concepts=lecture_concepts,
            probabilities=sentence.probabilities,
        )
        lecture_concepts |= {c.concept_id for c in corrections if c.concept_id}
        corrected.append((sentence, tokens, corrections))

    phrase_lists = [rake_phrases(tokens, res.stop_words) for _, tokens, _ in corrected]
    scores = rake_scores(phrase_lists)

    sentences: list[Sentence] = []
    for (sentence, tokens, corrections), phrases in zip(corrected, phrase_lists, strict=True):
        keywords = sorted(dict.fromkeys(phrases), key=lambda p: (-scores[p], p))
        keywords = keywords[: options.max_keywords]
        # Mentions: the KB aliases the sentence says and its noun phrases, with every
        # keyword among them so that each keyword is validated against the KB.
        mentions = linker_mentions(
            [*keywords, *noun_phrases(tokens, res.stop_words)],
            res.stop_words,
            alias_mentions(tokens, res),
        )
        concepts = validate(
            mentions,
            res,
            link_threshold=options.link_threshold,
            english_link_threshold=options.english_link_threshold,
        )
        text = " ".join(tokens)
        sentences.append(
            Sentence(
                start_s=round(sentence.start_s, 3),
                end_s=round(sentence.end_s, 3),
                noisy_text=" ".join(sentence.tokens),
                corrected_text=text,
                corrections=corrections,
                keywords=keywords,
                concepts=concepts,
            )
        )

    # Medical text and ROI text: the rules, or the LLM when one is configured.
    views = [
        SentenceView(
            s.corrected_text,
            len(s.concepts),
            sum(
                1
                for w in re.findall(r"[A-Za-z]+", s.corrected_text.lower())
                if w not in res.stop_words
            ),
        )
        for s in sentences
    ]
    if options.llm_url and sentences:
        config = LlmConfig(
            options.llm_url, options.llm_model, options.llm_api_key, options.llm_timeout_s
        )
        extraction = llm_extract(
            views, config, roi_patterns, options.min_concept_density, options.llm_batch_size
        )
    else:
        extraction = rule_extract(views, roi_patterns, options.min_concept_density)
    for s, medical, roi in zip(sentences, extraction.medical, extraction.roi, strict=True):
        s.is_medical = medical
        s.is_roi = roi
        s.extractor = extraction.extractor

    stats = {
        "sentences": len(sentences),
        "corrections": sum(len(s.corrections) for s in sentences),
        "corrected_sentences": sum(1 for s in sentences if s.corrections),
        "medical_sentences": sum(1 for s in sentences if s.is_medical),
        "roi_sentences": sum(1 for s in sentences if s.is_roi),
        "concepts": len({c.concept_id for s in sentences for c in s.concepts}),
        "keywords": sum(len(s.keywords) for s in sentences),
        "extractor": extraction.extractor if sentences else "rule",
        "llm_fallback_reason": extraction.fallback_reason if sentences else None,
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    return TextResult(sentences=sentences, stats=stats)


def run(job: StageJob) -> StageOutput:
    """The stage as the pipeline table runs it: the transcript in, checked sentences out."""
    result = process(job.inputs["transcript"], TextOptions.from_settings(job.settings))
    stats = {"sentences": len(result.sentences), **result.stats}
    return StageOutput(artifacts={"text": result}, stats=stats)
