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
4. Linking and validation: the mentions are the KB aliases the sentence says as they are,
   its noun phrases (``noun_phrases``: a parser-free chunker, since no spaCy parser model
   can be had offline) and its keywords, with their 1-3 word sub-phrases; they are linked
   to the KB with scispacy's linker (cosine of char 3-gram TF-IDF). A mention made only of ordinary English words
   must score 0.85 rather than ``link_threshold`` (0.6): "area" is 0.69 from
   "portal area", but a garbled medical word is not an English word and links at 0.6-0.7.
   ``is_medical``: at least one validated concept.
5. ROI: ``is_roi`` when the sentence has a pointing cue ("here", "this area", "the arrow",
   "at higher power", "you can see", ...).
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workers.knowledge.lexicon import is_english_word
from workers.knowledge.linker import KnowledgeBaseLinker, get_linker
from workers.knowledge.phonetic import LETTER_WEIGHT, TermMatcher, letters, sounds_like
from workers.types import Concept, Correction, Sentence, TextResult, Transcript
from workers.text.extract import SentenceView, llm_extract, rule_extract
from workers.text.llm import LlmConfig

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
    # Windows of ordinary English words ("hepatic sites", "cases necrosis"): only in a
    # medical context, only towards long terms, and with a stricter score (see module doc).
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


# --- sentences --------------------------------------------------------------------------


@dataclass
class _RawSentence:
    start_s: float
    end_s: float
    tokens: list[str]
    probabilities: list[float] = field(default_factory=list)  # per token; [] if unknown


def split_sentences(
    transcript: Transcript, *, pause_s: float = 1.0, max_sentence_s: float = 30.0
) -> list[_RawSentence]:
    """Group the transcript's words into sentences with the time span of their words."""
    sentences: list[_RawSentence] = []
    current: list[str] = []
    probabilities: list[float] = []
    start = end = 0.0

    def flush() -> None:
        if current:
            sentences.append(_RawSentence(start, end, list(current), list(probabilities)))
            current.clear()
            probabilities.clear()

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
            probabilities.append(word.probability)
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
        # Plural forms are targets too: "hepatic sites" is "hepatocytes", not "hepatocyte";
        # but only of count nouns (see COUNT_NOUN_TYPES).
        countable = {
            cui
            for cui, entity in linker.kb.cui_to_entity.items()
            if set(entity.types) & COUNT_NOUN_TYPES
        }
        listed = set(terms)
        plurals = {(pluralize(s), c) for s, c in terms.items() if c in countable}
        for surface, concept_id in list(terms.items()):
            if concept_id not in countable or (surface, concept_id) in plurals:
                continue  # a mass noun, or a listed plural ("lumina" of "lumen")
            plural = pluralize(surface)
            if plural != surface:
                terms.setdefault(plural, concept_id)
        self.aliases_lower = frozenset(a.lower() for a in linker.kb.alias_to_cuis)
        self.matcher = TermMatcher(terms, derived=frozenset(set(terms) - listed))
        # Aliases that show a medical context when said as they are: multiword ones and
        # single words that are not ordinary English ("hepatocytes", not "cell" or "mass").
        self.specific_aliases: dict[str, str] = {}
        for alias, cuis in linker.kb.alias_to_cuis.items():
            words = re.findall(r"[a-z0-9]+", alias.lower())
            if not words or (len(words) == 1 and (is_english_word(words[0]) or len(words[0]) < 4)):
                continue
            self.specific_aliases.setdefault(" ".join(words), sorted(cuis)[0])
            if countable & set(cuis):
                plural = " ".join(re.findall(r"[a-z0-9]+", pluralize(alias.lower())))
                self.specific_aliases.setdefault(plural, sorted(cuis)[0])
        self.max_alias_words = 6

    def known(self, word: str) -> bool:
        w = word.lower()
        return w in self.linker.term_words or is_english_word(w)


ADJECTIVE_ENDINGS: tuple[str, ...] = (
    "al",
    "ic",
    "ac",  # cardiac, iliac
    "ous",
    "ive",
    "oid",
    "ar",
    "ary",
    "ed",
    "ing",
    "form",  # cribriform, storiform
)
# Words that name a state or a quality rather than a thing: "atypia", "pleomorphism".
MASS_ENDINGS: tuple[str, ...] = ("ia", "ism", "istry")
# UMLS semantic types whose names are count nouns: structures (T017, T023), tissues with
# countable units (T024: crypts, follicles), cells and their parts (T025, T026), findings
# (T033: mitotic figures, crescents), lesions (T020), tumours (T191), places (T082) and
# devices (T074). Organisms ("Legionella"), diseases ("cirrhosis"), stains, techniques,
# proteins, substances and processes ("necrosis") have no plural a lecture says: a
# generated one ("legionellas", "necroses") only steals matches from real terms.
COUNT_NOUN_TYPES = frozenset(
    {"T017", "T020", "T023", "T024", "T025", "T026", "T033", "T074", "T082", "T191"}
)
# Latin -us words whose plural is English: "sinuses", not "sini".
_ENGLISH_US_PLURALS = frozenset({"sinus", "plexus", "pus", "virus", "meatus", "fetus"})
# A name with a complement is pluralized at its head: "crypts of Lieberkuhn",
# "carcinomas in situ".
_COMPLEMENT = re.compile(r" (?:of|in|ex|with) ")


def pluralize(term: str) -> str:
    """The plural of a term's head noun (English and the Latin/Greek forms of histology)."""
    complement = _COMPLEMENT.search(term)
    if complement:
        head_noun = pluralize(term[: complement.start()])
        return head_noun + term[complement.start() :]
    head, _, last = term.rpartition(" ")
    low = last.lower()
    if not low.isalpha() or len(low) < 3:
        return term
    # Adjectives ("luminal", "pleomorphic", "caseous"), words that are plural already
    # ("nuclei", "glomeruli") and mass nouns ("atypia", "immunohistochemistry") have no
    # plural to match.
    if low.endswith(ADJECTIVE_ENDINGS + MASS_ENDINGS + ("i", "ae")):
        return term
    if low in _ENGLISH_US_PLURALS:
        return f"{head} {last}es" if head else f"{last}es"
    for singular, plural in (
        ("us", "i"),  # nucleus -> nuclei
        ("um", "a"),  # epithelium -> epithelia
        ("is", "es"),  # metastasis -> metastases
        ("ma", "mas"),
        ("on", "a"),  # ganglion -> ganglia, mitochondrion -> mitochondria
        ("men", "mina"),  # lumen -> lumina, foramen -> foramina
        ("x", "ces"),  # cortex -> cortices
        ("y", "ies"),
    ):
        if low.endswith(singular) and not (singular == "y" and low[-2] in "aeiou"):
            # Only the Greek -on nouns take -a; "lesion", "excision", "colon" take -s.
            if singular == "on" and not low.endswith(("rion", "glion")):
                continue
            if singular == "x" and not low.endswith(("ex", "ix")):
                continue
            if singular == "men" and not low.endswith(("umen", "amen")):
                continue
            if singular == "x":
                plural_last = last[:-2] + "ices"
            else:
                plural_last = last[: len(last) - len(singular)] + plural
            return f"{head} {plural_last}" if head else plural_last
    if low.endswith(("s", "sh", "ch")):
        if low.endswith(("ss", "sh", "ch")):
            last = last + "es"
        else:
            return term
    else:
        last = last + "s"
    return f"{head} {last}" if head else last


def _has_inner_capital(text: str) -> bool:
    return any(c.isupper() for c in text[1:])


_RESOURCES: dict[tuple[str, str | None, frozenset[str]], _Resources] = {}


def _resources(options: TextOptions) -> _Resources:
    linker = get_linker(options.kb_path, options.kb_cache_dir)
    key = (str(linker.kb_path), options.kb_cache_dir, options.extra_stop_words)
    if key not in _RESOURCES:
        _RESOURCES[key] = _Resources(linker, options.extra_stop_words)
    return _RESOURCES[key]


def _stem(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def _closed_words(text: str) -> list[str]:
    """Words with hyphenated compounds closed up: "pseudo-palisading" is "pseudopalisading"."""
    return [_stem(w) for w in re.findall(r"[a-z]+", text.lower().replace("-", ""))]


def _contains(hay: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return any(hay[i : i + n] == needle for i in range(len(hay) - n + 1))


def merge_hyphen_tokens(tokens: list[str]) -> list[str]:
    """Whisper writes compounds as "low -power": join a "-word" token to the one before."""
    return _merge_hyphens(tokens, [1.0] * len(tokens))[0]


def _merge_hyphens(tokens: list[str], probs: list[float]) -> tuple[list[str], list[float]]:
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


def alias_mentions(tokens: list[str], res: _Resources) -> dict[str, str]:
    """Specific KB aliases that appear as they are in these tokens: {alias: concept id}."""
    words = [w for t in tokens for w in re.findall(r"[a-z0-9]+", t.lower())]
    found: dict[str, str] = {}
    for i in range(len(words)):
        for n in range(1, min(res.max_alias_words, len(words) - i) + 1):
            alias = " ".join(words[i : i + n])
            concept = res.specific_aliases.get(alias)
            if concept is not None:
                found.setdefault(alias, concept)
    return found


def lecture_mentions(tokens: list[str], res: _Resources) -> set[str]:
    """Concept ids whose specific aliases appear as they are in these tokens."""
    return set(alias_mentions(tokens, res).values())


def _add_window(
    windows: list[tuple[int, int, str, bool, bool, str]],
    res: _Resources,
    options: TextOptions,
    cores: list[tuple[str, str, str]],
    i: int,
    j: int,
    prefix: str,
    low: list[bool],
    unsure: bool = False,
    medical_context: bool = False,
    doubted: bool = False,
) -> None:
    """Add window tokens[i:j] to the candidates if its kind of window may be corrected."""
    words = [cores[k][1] for k in range(i, j)]
    if prefix and (words[0].lower() in res.stop_words or words[-1].lower() in res.stop_words):
        return
    text = " ".join(words)
    if text.lower() in res.aliases_lower:
        return
    parts = [p for w in words for p in w.split("-") if p]
    if not all(res.known(p) for p in parts):
        windows.append((i, j, text, False, unsure, prefix))
        return
    if prefix:
        return  # a kept word in front of ordinary words: too many ways to be wrong
    if not (options.english_corrections and medical_context and (j - i >= 2 or unsure)):
        return
    content = [p.lower() for p in parts if p.lower() not in res.stop_words]
    if not (unsure or doubted) and all(p in res.linker.term_words for p in content):
        return  # every word is a KB word and the recognizer was sure: meant as said
    windows.append((i, j, text, True, unsure, prefix))


def _add_prefixed(
    windows: list[tuple[int, int, str, bool, bool, str]],
    res: _Resources,
    options: TextOptions,
    cores: list[tuple[str, str, str]],
    i: int,
    j: int,
    low: list[bool],
    sizes: list[int],
) -> None:
    """Window tokens[i+1:j] with the stop word tokens[i] kept in front of it."""
    rest = sizes[1:]
    share = sum(n for n, k in zip(rest, range(i + 1, j), strict=True) if low[k]) / sum(rest)
    unsure = share >= options.low_confidence_share
    _add_window(windows, res, options, cores, i + 1, j, cores[i][1], low, unsure)


def correct_tokens(
    tokens: list[str],
    res: _Resources,
    options: TextOptions,
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
    tokens, probs = _merge_hyphens(tokens, probs)
    cores = [_split_token(t) for t in tokens]
    low = [p < options.low_probability for p in probs]
    # (i, j, text, english, low-confidence, kept prefix word)
    windows: list[tuple[int, int, str, bool, bool, str]] = []
    longest = max(options.max_ngram, options.low_confidence_max_ngram)
    for i in range(len(tokens)):
        for j in range(i + 1, min(len(tokens), i + longest) + 1):
            words = [cores[k][1] for k in range(i, j)]
            if not all(re.fullmatch(r"[A-Za-z][A-Za-z'-]*", w) for w in words):
                break
            # Punctuation inside the window (a comma, a full stop) ends it.
            if any(cores[k][2] for k in range(i, j - 1)) or any(
                cores[k][0] for k in range(i + 1, j)
            ):
                break
            sizes = [len(w) for w in words]
            low_share = sum(n for n, k in zip(sizes, range(i, j), strict=True) if low[k]) / sum(
                sizes
            )
            unsure = bool(probabilities) and low_share >= options.low_confidence_share
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
                        _add_prefixed(windows, res, options, cores, i, j, low, sizes)
                    continue
            joint = math.prod(probs[i:j])
            _add_window(
                windows,
                res,
                options,
                cores,
                i,
                j,
                "",
                low,
                unsure,
                medical_context,
                doubted=j - i >= 2 and joint < options.low_probability,
            )
            if first in res.stop_words and j - i >= 2 and any(low[i + 1 : j]):
                _add_prefixed(windows, res, options, cores, i, j, low, sizes)
    if not windows:
        return list(tokens), []

    weights = [
        LETTER_WEIGHT * (1.0 - options.low_confidence_letter_discount) if w[4] else LETTER_WEIGHT
        for w in windows
    ]
    matches = res.matcher.best(
        [w[2] for w in windows], letter_weights=weights, prefixes=[w[5] for w in windows]
    )
    scored = []
    for (i, j, text, english, _unsure, _prefix), match in zip(windows, matches, strict=True):
        if match is None or letters(match.term) == letters(text):
            continue
        term_words = [_stem(w) for w in re.findall(r"[a-z]+", match.term.lower())]
        said_words = [_stem(w) for w in re.findall(r"[a-z]+", text.lower())]
        if _contains(said_words, term_words) or _contains(
            _closed_words(text), _closed_words(match.term)
        ):
            # The term is said as it is (or with a compound written open, "shows
            # pseudo-palisading necrosis"), next to another word: keep that word.
            continue
        if english:
            if match.key_length < options.english_min_key_length:
                continue
            term_letters = letters(match.term)
            if len(term_words) == 1 and any(
                len(word) >= options.english_part_share * len(term_letters)
                for word in (said_words[0], said_words[-1])
                if term_letters.startswith(word) or term_letters.endswith(word)
            ):
                # "stroma holds" is not "stromal": a said word that is most of the term,
                # then another ("You know this to chemistry" may be immunohistochemistry).
                continue
            shared = set(said_words) & set(term_words) - res.stop_words
            said_content = [
                w for w in re.findall(r"[a-z]+", text.lower()) if w not in res.stop_words
            ]
            if not shared and all(w in res.linker.term_words for w in said_content):
                continue  # KB words become another KB term only around a kept word
            if shared:
                # "mild duct" -> "bile duct": the words around the shared one must sound
                # alike on their own ("liver shows" is not "liver cells").
                rest_said = " ".join(w for w in said_words if w not in shared)
                rest_term = " ".join(w for w in term_words if w not in shared)
                if (
                    not rest_term
                    or sounds_like(rest_said, rest_term) < options.english_rest_threshold
                ):
                    continue
            limit = options.english_anchored_threshold if shared else options.english_threshold
        else:
            limit = (
                options.short_term_threshold
                if match.key_length <= options.short_key_length
                else options.correction_threshold
            )
        if match.concept_id in lecture_concepts:
            limit -= options.lecture_term_bonus
        if match.score >= limit:
            doubted = sum(low[i:j])
            scored.append(
                (match.score + options.low_word_margin * doubted, j - i, i, j, text, match)
            )
    # Best first, a window that explains more doubted words worth low_word_margin a word;
    # at equal value the longer window wins (it explains more of the garble).
    scored.sort(key=lambda s: (-s[0], -s[1]))
    taken: set[int] = set()
    chosen = []
    for _value, _n, i, j, text, match in scored:
        if taken.intersection(range(i, j)):
            continue
        taken.update(range(i, j))
        chosen.append((i, j, text, match, match.score))

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


def noun_phrases(tokens: list[str], stop_words: frozenset[str]) -> list[str]:
    """Shallow noun phrases without a parser (no spaCy parser model can be had offline):
    runs of content words between closed-class words (spaCy's stop words hold the
    determiners, pronouns, prepositions, conjunctions and auxiliaries) and punctuation,
    with adverbs (-ly) trimmed from their edges: "the markedly atypical glands" gives
    "atypical glands". Lecture speech is mostly such phrases, and a KB term is one."""
    out: list[str] = []
    for phrase in rake_phrases(tokens, stop_words, max_words=6):
        words = phrase.split()
        while words and words[0].endswith("ly") and len(words[0]) > 4:
            words.pop(0)
        while words and words[-1].endswith("ly") and len(words[-1]) > 4:
            words.pop()
        if words and len(letters("".join(words))) >= 3:
            out.append(" ".join(words))
    return out


def _mentions(
    phrases: list[str], stop_words: frozenset[str], aliases: Iterable[str] = ()
) -> list[str]:
    """What the linker is asked about: KB aliases found as they are, then the phrases and
    their 1-3 word sub-phrases, without stop-word edges."""
    seen: dict[str, None] = dict.fromkeys(aliases)
    for phrase in phrases:
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
    # Medical context: which sentences (with their neighbours) say a KB term as it is,
    # and which concepts the lecture says correctly somewhere.
    mentioned = [lecture_mentions(sentence.tokens, res) for sentence in raw]
    lecture_concepts = {c for found in mentioned for c in found}
    reach = options.context_sentences
    corrected: list[tuple[_RawSentence, list[str], list[Correction]]] = []
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
        # Linking (issue 4, item 3): mentions from the KB aliases the sentence says and
        # from its noun phrases (which include every keyword: validation, item 4).
        mentions = _mentions(
            [*keywords, *noun_phrases(tokens, res.stop_words)],
            res.stop_words,
            alias_mentions(tokens, res),
        )
        concepts = validate(mentions, res, options)
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
