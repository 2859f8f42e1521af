"""Text stage: from an ASR transcript to sentences that are corrected, keyworded, validated.

Quilt-1M (Ikezogwo et al., NeurIPS 2023, sec. 3.1) cleaned its ASR text in three steps:
correct the ASR errors on medical terms, extract keywords, and keep only text whose
keywords are valid UMLS concepts ("medical text"); then it pulled out "ROI text", the
sentences where the narrator points at a region of the image. This first cleanup follows
the same steps without an LLM (an optional LLM corrector can be added later behind
``TextOptions``; nothing here depends on one):

1. Sentences: the transcript's words are grouped into sentences at sentence punctuation,
   at a pause longer than ``pause_s`` (1 s: narrators pause between statements, and
   Whisper drops punctuation on long run-ons) or at ``max_sentence_s``. Each sentence
   keeps the time span of its words.
2. Correction: every 1..``max_ngram`` word window that holds at least one token that is
   neither an English word nor a KB word is compared by sound and spelling with the KB's
   terms (``workers.knowledge.phonetic``); a strong match replaces the window
   ("hammer toxicin and deacin" -> "hematoxylin and eosin"). Windows of ordinary English
   are never touched, so correct narration stays as it was. Thresholds: 0.78 in general
   and 0.88 for short terms (phonetic key of <= 6 sounds), where chance matches are
   common ("deacin" sounds 0.77 like "desmin").
3. Keywords: RAKE (Rose et al. 2010) over the whole transcript, written here (NLTK data
   cannot be downloaded), with spaCy's English stop words as phrase delimiters; each
   sentence keeps its own candidate phrases ranked by their document score.
4. Validation: keywords and their 1-3 word sub-phrases are linked to the KB with scispacy's
   linker (cosine of char 3-gram TF-IDF). A mention made only of ordinary English words
   must score 0.85 rather than ``link_threshold`` (0.6): "area" is 0.69 from
   "portal area", but a garbled medical word is not an English word and links at 0.6-0.7.
   ``is_medical``: at least one validated concept.
5. ROI: ``is_roi`` when the sentence has a pointing cue ("here", "this area", "the arrow",
   "at higher power", "you can see", ...).
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from workers.knowledge.lexicon import is_english_word
from workers.knowledge.linker import KnowledgeBaseLinker, get_linker
from workers.knowledge.phonetic import TermMatcher, letters
from workers.stages.types import Concept, Correction, Sentence, TextResult, Transcript

_logger = logging.getLogger(__name__)

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
# Fillers of spoken lectures, on top of spaCy's stop words, for RAKE and mention finding.
FILLER_WORDS = frozenset(
    [
        "um",
        "uh",
        "okay",
        "ok",
        "oh",
        "yeah",
        "yes",
        "right",
        "so",
        "like",
        "just",
        "really",
        "actually",
        "basically",
        "see",
        "look",
        "let",
        "lets",
        "going",
        "gonna",
        "want",
        "kind",
        "sort",
        "thing",
        "things",
        "lot",
        "bit",
        "little",
    ]
)
_SENTENCE_END = re.compile(r"[.?!]+[\"')\]]*$")
_PHRASE_BREAK = re.compile(r"[,;:()\[\]\"]$|^[\"(\[]")
_TOKEN_CORE = re.compile(r"^([^\w&]*)(.*?)([^\w&]*)$")


@dataclass
class TextOptions:
    kb_path: str | None = None  # None: the KB bundled in workers/knowledge
    kb_cache_dir: str | None = None  # None: settings.var_dir / "kb-cache"
    link_threshold: float = 0.6
    english_link_threshold: float = 0.85
    correction_threshold: float = 0.78
    short_term_threshold: float = 0.88
    short_key_length: int = 6
    max_ngram: int = 4
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
        )


# --- sentences --------------------------------------------------------------------------


@dataclass
class _RawSentence:
    start_s: float
    end_s: float
    tokens: list[str]


def split_sentences(
    transcript: Transcript, *, pause_s: float = 1.0, max_sentence_s: float = 30.0
) -> list[_RawSentence]:
    """Group the transcript's words into sentences with the time span of their words."""
    sentences: list[_RawSentence] = []
    current: list[str] = []
    start = end = 0.0

    def flush() -> None:
        if current:
            sentences.append(_RawSentence(start, end, list(current)))
            current.clear()

    for segment in transcript.segments:
        if not segment.words:
            # No word timestamps: one sentence per sentence-ending punctuation mark, each
            # with the segment's span (the finest timing there is).
            flush()
            for part in re.split(r"(?<=[.?!])\s+", segment.text.strip()):
                if part.strip():
                    sentences.append(_RawSentence(segment.start, segment.end, part.split()))
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
            end = word.end
            if _SENTENCE_END.search(token):
                flush()
    flush()
    return sentences


# --- correction -------------------------------------------------------------------------


def _split_token(token: str) -> tuple[str, str, str]:
    m = _TOKEN_CORE.match(token)
    assert m is not None
    return m.group(1), m.group(2), m.group(3)


class _Resources:
    """The KB linker, a sound matcher over its terms and the word sets, built once."""

    def __init__(self, linker: KnowledgeBaseLinker, extra_stop_words: frozenset[str]) -> None:
        from spacy.lang.en.stop_words import STOP_WORDS  # noqa: PLC0415

        self.linker = linker
        self.stop_words = frozenset(w.lower() for w in STOP_WORDS) | extra_stop_words
        terms: dict[str, str] = {}
        for entity in linker.kb.cui_to_entity.values():  # canonical name first
            for alias in [entity.canonical_name, *entity.aliases]:
                surface = alias if _has_inner_capital(alias) else alias.lower()
                terms.setdefault(surface, entity.concept_id)
        self.aliases_lower = frozenset(a.lower() for a in linker.kb.alias_to_cuis)
        self.matcher = TermMatcher(terms)

    def known(self, word: str) -> bool:
        w = word.lower()
        return w in self.linker.term_words or is_english_word(w)


def _has_inner_capital(text: str) -> bool:
    return any(c.isupper() for c in text[1:])


_RESOURCES: dict[tuple[str, str | None, frozenset[str]], _Resources] = {}


def _resources(options: TextOptions) -> _Resources:
    linker = get_linker(options.kb_path, options.kb_cache_dir)
    key = (str(linker.kb_path), options.kb_cache_dir, options.extra_stop_words)
    if key not in _RESOURCES:
        _RESOURCES[key] = _Resources(linker, options.extra_stop_words)
    return _RESOURCES[key]


def correct_tokens(
    tokens: list[str], res: _Resources, options: TextOptions
) -> tuple[list[str], list[Correction]]:
    """Replace windows of non-words that sound like a KB term by that term."""
    cores = [_split_token(t) for t in tokens]
    windows: list[tuple[int, int, str]] = []
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + options.max_ngram) + 1):
            words = [cores[k][1] for k in range(i, j)]
            if not all(re.fullmatch(r"[A-Za-z][A-Za-z'-]*", w) for w in words):
                break
            # Punctuation inside the window (a comma, a full stop) ends it.
            if any(cores[k][2] for k in range(i, j - 1)) or any(
                cores[k][0] for k in range(i + 1, j)
            ):
                break
            if words[0].lower() in res.stop_words or words[-1].lower() in res.stop_words:
                continue
            if all(res.known(w) for w in words):
                continue
            text = " ".join(words)
            if text.lower() in res.aliases_lower:
                continue
            windows.append((i, j, text))
    if not windows:
        return list(tokens), []

    scored = []
    for (i, j, text), match in zip(windows, res.matcher.best([w[2] for w in windows]), strict=True):
        if match is None:
            continue
        limit = (
            options.short_term_threshold
            if match.key_length <= options.short_key_length
            else options.correction_threshold
        )
        if match.score >= limit and letters(match.term) != letters(text):
            scored.append((match.score, j - i, i, j, text, match))
    # Best first; at equal score the longer window wins (it explains more of the garble).
    scored.sort(key=lambda s: (-s[0], -s[1]))
    taken: set[int] = set()
    chosen = []
    for score, _n, i, j, text, match in scored:
        if taken.intersection(range(i, j)):
            continue
        taken.update(range(i, j))
        chosen.append((i, j, text, match, score))

    out = list(tokens)
    corrections: list[Correction] = []
    for i, j, text, match, score in sorted(chosen, key=lambda c: -c[0]):
        replacement = match.term
        if cores[i][1][:1].isupper() and replacement[:1].islower():
            replacement = replacement[:1].upper() + replacement[1:]
        out[i:j] = [cores[i][0] + replacement + cores[j - 1][2]] + [""] * (j - i - 1)
        corrections.append(Correction(text, replacement, round(score, 4), match.concept_id))
    corrections.reverse()
    return [t for t in out if t], corrections


# --- keywords (RAKE) --------------------------------------------------------------------


def rake_phrases(tokens: list[str], stop_words: frozenset[str], max_words: int = 4) -> list[str]:
    """Candidate phrases: runs of content words between stop words and punctuation."""
    phrases: list[str] = []
    current: list[str] = []
    for token in tokens:
        lead, core, trail = _split_token(token)
        word = core.lower()
        is_content = (
            bool(word)
            and word not in stop_words
            and any(c.isalpha() for c in word)
            and not word.isdigit()
        )
        if lead and current:
            phrases.append(" ".join(current))
            current = []
        if is_content:
            current.append(word)
            if len(current) > max_words:
                # Over-long runs are rarely one term: cut them.
                phrases.append(" ".join(current[:-1]))
                current = current[-1:]
        elif current:
            phrases.append(" ".join(current))
            current = []
        if trail and current:
            phrases.append(" ".join(current))
            current = []
    if current:
        phrases.append(" ".join(current))
    return [p for p in phrases if len(letters(p)) >= 3]


def rake_scores(phrase_lists: list[list[str]]) -> dict[str, float]:
    """RAKE: word score deg(w)/freq(w); a phrase scores the sum of its words' scores."""
    freq: dict[str, int] = defaultdict(int)
    degree: dict[str, int] = defaultdict(int)
    for phrases in phrase_lists:
        for phrase in phrases:
            words = phrase.split()
            for w in words:
                freq[w] += 1
                degree[w] += len(words)
    word_score = {w: degree[w] / freq[w] for w in freq}
    return {
        phrase: sum(word_score[w] for w in phrase.split())
        for phrases in phrase_lists
        for phrase in phrases
    }


# --- validation -------------------------------------------------------------------------


def _mentions(keywords: list[str], stop_words: frozenset[str]) -> list[str]:
    """Keywords and their 1-3 word sub-phrases, without stop-word edges."""
    seen: dict[str, None] = {}
    for phrase in keywords:
        words = phrase.split()
        for n in range(min(3, len(words)), 0, -1):
            for i in range(len(words) - n + 1):
                sub = words[i : i + n]
                if sub[0] in stop_words or sub[-1] in stop_words:
                    continue
                if len(letters("".join(sub))) >= 3:
                    seen.setdefault(" ".join(sub), None)
    return list(seen)


def validate(mentions: list[str], res: _Resources, options: TextOptions) -> list[Concept]:
    """Link mentions to KB concepts; one concept per id, its best-scoring mention."""
    best: dict[str, Concept] = {}
    exact: list[str] = []  # mentions that are a KB alias: their parts add nothing
    for concept in res.linker.link(mentions, threshold=options.link_threshold):
        if any(f" {concept.mention} " in f" {m} " for m in exact):
            continue
        ordinary = all(is_english_word(w) for w in concept.mention.split())
        if ordinary and concept.score < options.english_link_threshold:
            continue
        if concept.score >= 0.95:
            exact.append(concept.mention)
        kept = best.get(concept.concept_id)
        if kept is None or concept.score > kept.score:
            best[concept.concept_id] = concept
    return sorted(best.values(), key=lambda c: (-c.score, c.concept_id))


# --- the stage --------------------------------------------------------------------------


def process(transcript: Transcript, options: TextOptions | None = None) -> TextResult:
    """Sentences of the transcript, corrected, with keywords, KB concepts and ROI flags."""
    options = options or TextOptions()
    started = time.perf_counter()
    res = _resources(options)
    roi_patterns = [re.compile(p, re.IGNORECASE) for p in options.roi_cues]

    raw = split_sentences(
        transcript, pause_s=options.pause_s, max_sentence_s=options.max_sentence_s
    )
    corrected: list[tuple[_RawSentence, list[str], list[Correction]]] = []
    for sentence in raw:
        tokens, corrections = correct_tokens(sentence.tokens, res, options)
        corrected.append((sentence, tokens, corrections))

    phrase_lists = [rake_phrases(tokens, res.stop_words) for _, tokens, _ in corrected]
    scores = rake_scores(phrase_lists)

    sentences: list[Sentence] = []
    for (sentence, tokens, corrections), phrases in zip(corrected, phrase_lists, strict=True):
        keywords = sorted(dict.fromkeys(phrases), key=lambda p: (-scores[p], p))
        keywords = keywords[: options.max_keywords]
        concepts = validate(_mentions(keywords, res.stop_words), res, options)
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
                is_medical=bool(concepts),
                is_roi=any(p.search(text) for p in roi_patterns),
            )
        )

    stats = {
        "sentences": len(sentences),
        "corrections": sum(len(s.corrections) for s in sentences),
        "corrected_sentences": sum(1 for s in sentences if s.corrections),
        "medical_sentences": sum(1 for s in sentences if s.is_medical),
        "roi_sentences": sum(1 for s in sentences if s.is_roi),
        "concepts": len({c.concept_id for s in sentences for c in s.concepts}),
        "keywords": sum(len(s.keywords) for s in sentences),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    return TextResult(sentences=sentences, stats=stats)
