"""Correction of ASR garbles against the KB's terms, by sound and spelling.

Quilt-1M corrected the ASR errors on medical terms first; here that is done without an
LLM. Every 1..``max_ngram`` word window that holds at least one token that is neither an
English word nor a KB word is compared by sound and spelling with the KB's terms and their
plurals (``workers.knowledge.phonetic``, ``workers.text.plurals``); a strong match replaces
the window ("hammer toxicin and deacin" -> "hematoxylin and eosin"). Windows of ordinary
English are never touched outside a medical context, so correct narration stays as it was.
Thresholds: 0.78 in general and 0.88 for short terms (phonetic key of <= 6 sounds), where
chance matches are common ("deacin" sounds 0.77 like "desmin").

In a medical context (a KB term said as it is in the sentence or next to it), windows of
ordinary words and the recognizer's doubted words (Whisper's word probabilities) are
candidates too, under stricter rules: see ``correct_tokens`` and the options it reads
(``CorrectionOptions``, documented on the stage's ``TextOptions``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Protocol

from workers.knowledge.phonetic import LETTER_WEIGHT, TermMatch, letters, sounds_like
from workers.text.resources import KbResources
from workers.text.sentences import merge_hyphens, split_token
from workers.types import Correction

# The parts of a token: leading punctuation, the word, trailing punctuation.
_Core = tuple[str, str, str]


class CorrectionOptions(Protocol):
    """The thresholds the correction reads (the stage's ``TextOptions`` documents them)."""

    correction_threshold: float
    short_term_threshold: float
    short_key_length: int
    max_ngram: int
    english_corrections: bool
    english_threshold: float
    english_anchored_threshold: float
    english_min_key_length: int
    english_rest_threshold: float
    english_part_share: float
    lecture_term_bonus: float
    low_probability: float
    low_confidence_share: float
    low_confidence_max_ngram: int
    low_confidence_letter_discount: float
    low_word_margin: float


@dataclass(frozen=True)
class CandidateWindow:
    """Tokens [start, end) of a sentence that may be a garbled KB term."""

    start: int
    end: int
    said: str  # the window's words as heard, without their punctuation
    # Every word is an English or a KB word: the stricter rules for ordinary words apply.
    ordinary_words: bool
    # Enough of its letters are in words the recognizer doubted (``low_confidence_share``).
    low_confidence: bool
    # A stop word in front, kept as it is, whose sounds the term may share ("" if none).
    kept_word: str

    @property
    def length(self) -> int:
        return self.end - self.start


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _closed_words(text: str) -> list[str]:
    """Words with hyphenated compounds closed up: "pseudo-palisading" is "pseudopalisading"."""
    return [_stem(w) for w in re.findall(r"[a-z]+", text.lower().replace("-", ""))]


def _contains(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


class _Windows:
    """Collects the candidate windows of one sentence's tokens, in sentence order."""

    def __init__(
        self,
        cores: list[_Core],
        low: list[bool],
        res: KbResources,
        options: CorrectionOptions,
    ) -> None:
        self.cores = cores
        self.low = low  # per token: the recognizer doubted it
        self.res = res
        self.options = options
        self.found: list[CandidateWindow] = []

    def doubted_share(self, i: int, j: int) -> float:
        """The share of the letters of tokens[i:j] that are in doubted words."""
        sizes = [len(self.cores[k][1]) for k in range(i, j)]
        doubted = sum(n for n, k in zip(sizes, range(i, j), strict=True) if self.low[k])
        return doubted / sum(sizes)

    def add(
        self,
        i: int,
        j: int,
        prefix: str,
        unsure: bool = False,
        medical_context: bool = False,
        doubted: bool = False,
    ) -> None:
        """Add window tokens[i:j] to the candidates if its kind of window may be corrected."""
        res, options = self.res, self.options
        words = [self.cores[k][1] for k in range(i, j)]
        if prefix and (words[0].lower() in res.stop_words or words[-1].lower() in res.stop_words):
            return
        text = " ".join(words)
        if text.lower() in res.aliases_lower:
            return
        parts = [p for w in words for p in w.split("-") if p]
        if not all(res.known(p) for p in parts):
            self.found.append(CandidateWindow(i, j, text, False, unsure, prefix))
            return
        if prefix:
            return  # a kept word in front of ordinary words: too many ways to be wrong
        if not (options.english_corrections and medical_context and (j - i >= 2 or unsure)):
            return
        content = [p.lower() for p in parts if p.lower() not in res.stop_words]
        if not (unsure or doubted) and all(p in res.linker.term_words for p in content):
            return  # every word is a KB word and the recognizer was sure: meant as said
        self.found.append(CandidateWindow(i, j, text, True, unsure, prefix))

    def add_prefixed(self, i: int, j: int) -> None:
        """Window tokens[i+1:j] with the stop word tokens[i] kept in front of it."""
        unsure = self.doubted_share(i + 1, j) >= self.options.low_confidence_share
        self.add(i + 1, j, self.cores[i][1], unsure)


def _candidate_windows(
    cores: list[_Core],
    probs: list[float],
    low: list[bool],
    res: KbResources,
    options: CorrectionOptions,
    medical_context: bool,
    heard_probabilities: bool,
) -> list[CandidateWindow]:
    """The windows of the sentence's tokens that may be corrected, in sentence order."""
    windows = _Windows(cores, low, res, options)
    longest = max(options.max_ngram, options.low_confidence_max_ngram)
    for i in range(len(cores)):
        for j in range(i + 1, min(len(cores), i + longest) + 1):
            words = [cores[k][1] for k in range(i, j)]
            if not all(re.fullmatch(r"[A-Za-z][A-Za-z'-]*", w) for w in words):
                break
            # Punctuation inside the window (a comma, a full stop) ends it.
            if any(cores[k][2] for k in range(i, j - 1)) or any(
                cores[k][0] for k in range(i + 1, j)
            ):
                break
            unsure = heard_probabilities and (
                windows.doubted_share(i, j) >= options.low_confidence_share
            )
            if j - i > options.max_ngram and not unsure:
                continue
            first, last = words[0].lower(), words[-1].lower()
            if first in res.stop_words or last in res.stop_words:
                # A stop word at an edge is part of the garble only when the recognizer
                # doubted it or the whole window.
                edges_doubted = (first not in res.stop_words or low[i]) and (
                    last not in res.stop_words or low[j - 1]
                )
                if not (unsure or edges_doubted):
                    if first in res.stop_words and j - i >= 2 and any(low[i + 1 : j]):
                        windows.add_prefixed(i, j)
                    continue
            joint = math.prod(probs[i:j])
            windows.add(
                i,
                j,
                "",
                unsure,
                medical_context,
                doubted=j - i >= 2 and joint < options.low_probability,
            )
            if first in res.stop_words and j - i >= 2 and any(low[i + 1 : j]):
                windows.add_prefixed(i, j)
    return windows.found


def _score_limit(
    window: CandidateWindow,
    match: TermMatch,
    res: KbResources,
    options: CorrectionOptions,
    lecture_concepts: frozenset[str] | set[str],
) -> float | None:
    """The score the match must reach to replace the window; None: it may never."""
    text = window.said
    term_words = [_stem(w) for w in re.findall(r"[a-z]+", match.term.lower())]
    said_words = [_stem(w) for w in re.findall(r"[a-z]+", text.lower())]
    if _contains(said_words, term_words) or _contains(
        _closed_words(text), _closed_words(match.term)
    ):
        # The term is said as it is (or with a compound written open, "shows
        # pseudo-palisading necrosis"), next to another word: keep that word.
        return None
    if window.ordinary_words:
        if match.key_length < options.english_min_key_length:
            return None
        term_letters = letters(match.term)
        if len(term_words) == 1 and any(
            len(word) >= options.english_part_share * len(term_letters)
            for word in (said_words[0], said_words[-1])
            if term_letters.startswith(word) or term_letters.endswith(word)
        ):
            # "stroma holds" is not "stromal": a said word that is most of the term,
            # then another ("You know this to chemistry" may be immunohistochemistry).
            return None
        shared = set(said_words) & set(term_words) - res.stop_words
        said_content = [w for w in re.findall(r"[a-z]+", text.lower()) if w not in res.stop_words]
        if not shared and all(w in res.linker.term_words for w in said_content):
            return None  # KB words become another KB term only around a kept word
        if shared:
            # "mild duct" -> "bile duct": the words around the shared one must sound
            # alike on their own ("liver shows" is not "liver cells").
            rest_said = " ".join(w for w in said_words if w not in shared)
            rest_term = " ".join(w for w in term_words if w not in shared)
            if not rest_term or sounds_like(rest_said, rest_term) < options.english_rest_threshold:
                return None
        limit = options.english_anchored_threshold if shared else options.english_threshold
    else:
        limit = (
            options.short_term_threshold
            if match.key_length <= options.short_key_length
            else options.correction_threshold
        )
    if match.concept_id in lecture_concepts:
        limit -= options.lecture_term_bonus
    return limit


def _best_first(candidate: tuple[float, CandidateWindow, TermMatch]) -> tuple[float, int]:
    """Best value first; at equal value the longer window (it explains more of the garble)."""
    value, window, _match = candidate
    return -value, -window.length


def correct_tokens(
    tokens: list[str],
    res: KbResources,
    options: CorrectionOptions,
    *,
    medical_context: bool = False,
    lecture_concepts: frozenset[str] | set[str] = frozenset(),
    probabilities: list[float] | None = None,
) -> tuple[list[str], list[Correction]]:
    """Replace windows that sound like a KB term by that term.

    Candidates: windows holding a token that is neither English nor a KB word (any
    context); when ``medical_context``, multiword windows of ordinary words that mix in a
    non-KB word ("hepatic sites", "cases necrosis"), which must match a long term
    (``english_min_key_length``) at ``english_threshold``, or at
    ``english_anchored_threshold`` when they share a whole word with it; and, with word
    ``probabilities``, low-confidence windows (see ``TextOptions``), which may have stop
    words at their edges; and doubted windows of KB words ("dysplastic stroma" ->
    "desmoplastic stroma"), which must keep one of their words. A window that
    starts with a stop word is also tried with that word kept and its sound shared with
    the term ("each lamina-yolus" -> "each glomerulus").
    """
    probs = list(probabilities) if probabilities else [1.0] * len(tokens)
    tokens, probs = merge_hyphens(tokens, probs)
    cores = [split_token(t) for t in tokens]
    low = [p < options.low_probability for p in probs]
    windows = _candidate_windows(
        cores, probs, low, res, options, medical_context, bool(probabilities)
    )
    if not windows:
        return list(tokens), []

    weights = [
        LETTER_WEIGHT * (1.0 - options.low_confidence_letter_discount)
        if w.low_confidence
        else LETTER_WEIGHT
        for w in windows
    ]
    matches = res.matcher.best(
        [w.said for w in windows], letter_weights=weights, prefixes=[w.kept_word for w in windows]
    )
    # (value, window, match): a window that explains more doubted words is worth
    # low_word_margin a word more.
    scored: list[tuple[float, CandidateWindow, TermMatch]] = []
    for window, match in zip(windows, matches, strict=True):
        if match is None or letters(match.term) == letters(window.said):
            continue
        limit = _score_limit(window, match, res, options, lecture_concepts)
        if limit is not None and match.score >= limit:
            doubted = sum(low[window.start : window.end])
            scored.append((match.score + options.low_word_margin * doubted, window, match))
    scored.sort(key=_best_first)
    taken: set[int] = set()
    chosen: dict[CandidateWindow, TermMatch] = {}
    for _value, window, match in scored:
        if taken.intersection(range(window.start, window.end)):
            continue
        taken.update(range(window.start, window.end))
        chosen[window] = match

    out = list(tokens)
    corrections: list[Correction] = []
    # Replaced from the end, so that the earlier windows' token positions still hold.
    for window in sorted(chosen, key=lambda w: -w.start):
        match = chosen[window]
        i, j = window.start, window.end
        replacement = match.term
        if cores[i][1][:1].isupper() and replacement[:1].islower():
            replacement = replacement[:1].upper() + replacement[1:]
        out[i:j] = [cores[i][0] + replacement + cores[j - 1][2]] + [""] * (j - i - 1)
        corrections.append(
            Correction(window.said, replacement, round(match.score, 4), match.concept_id)
        )
    corrections.reverse()
    return [t for t in out if t], corrections
