"""Sounds-like matching of ASR n-grams against KB terms.

Whisper mishears rare medical words as strings that *sound* like them, often split
differently: "hammer toxicin and deacin" for "hematoxylin and eosin", "laminopropry" for
"lamina propria", "Hematosal Euler carcinoma" for "hepatocellular carcinoma" (tiny.en on
espeak-ng narration).
Character 3-gram TF-IDF (the scispacy linker) ranks those poorly, so a match is scored
on two spellings of both strings with word boundaries removed:

- the letters (Levenshtein similarity), and
- a coarse phonetic key in the spirit of Metaphone: silent first letters dropped per word
  (kn, pn, ps, wr), ph->f, c->k/s, x->ks, th within a word->f (the consonants listeners
  confuse most, Miller & Nicely 1955), voiced and voiceless consonants merged (b/p, d/t,
  g/k, v/f, z/s) and the labials m/b/p, h dropped, vowel runs collapsed to one vowel,
  doubled letters collapsed.

``score = 0.35 * letters + 0.65 * key``, in [0, 1]: the key carries more weight because
ASR errors keep the sound and lose the spelling ("play more thick" vs "pleomorphic":
letters 0.62, key 0.9; the garbled "hammer toxicin and deacin" vs "hematoxylin and
eosin": letters 0.6, key 0.9). Candidates come from a TF-IDF over the keys'
character 2-3 grams (exact cosine on a small sparse matrix), then are rescored exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rapidfuzz.distance.Levenshtein import distance as levenshtein

LETTER_WEIGHT = 0.35
_NON_LETTERS = re.compile(r"[^a-z]")
_VOWEL_RUNS = re.compile(r"[aeiouy]+")
_REPEATS = re.compile(r"(.)\1+")
_WORDS = re.compile(r"[a-z]+")


def _compiled(rules: list[tuple[str, str]]) -> list[tuple[re.Pattern[str], str]]:
    """(pattern, replacement) rules, applied in order with ``re.sub``."""
    return [(re.compile(pattern), replacement) for pattern, replacement in rules]


# Rules within a word, before the words are joined.
_WORD_RULES = _compiled(
    [
        # Silent first letters: "know", "pneumonia", "psammoma", "wrist".
        (r"^kn", "n"),
        (r"^pn", "n"),
        (r"^ps", "s"),
        (r"^wr", "r"),
        # th and f: the pair listeners confuse most (Miller & Nicely 1955, J Acoust Soc
        # Am 27:338), and so does Whisper ("play more thick" for "pleomorphic"). Within a
        # word only: the t and h of "at high" are not a "th".
        (r"th", "f"),
    ]
)
_RULES = _compiled(
    [
        (r"ph", "f"),
        (r"sch", "sk"),
        (r"ch", "k"),
        (r"ck", "k"),
        (r"qu", "kw"),
        (r"q", "k"),
        (r"x", "ks"),
        (r"c(?=[eiy])", "s"),
        (r"c", "k"),
        (r"th", "t"),  # across words: "at high"
        (r"wh", "w"),
        (r"dg", "j"),
        (r"h", ""),
        (r"z", "s"),
        (r"b", "p"),
        (r"d", "t"),
        (r"g", "k"),
        (r"v", "f"),
        (r"m", "p"),  # lips: m/b/p are the labials Whisper swaps ("milduct" for "bile duct")
    ]
)


def letters(text: str) -> str:
    return _NON_LETTERS.sub("", text.lower())


def phonetic_key(text: str) -> str:
    words = _WORDS.findall(text.lower())
    for pattern, repl in _WORD_RULES:
        words = [pattern.sub(repl, w) for w in words]
    s = "".join(words)
    for pattern, repl in _RULES:
        s = pattern.sub(repl, s)
    s = _VOWEL_RUNS.sub("a", s)
    return _REPEATS.sub(r"\1", s)


def similarity(a: str, b: str) -> float:
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def similarity_over(a: str, b: str, length: int) -> float:
    """1 - edit distance / ``length``, floored at 0: a similarity over part of the strings."""
    if length <= 0:
        return 1.0 if a == b else 0.0
    return max(0.0, 1.0 - levenshtein(a, b) / length)


def sounds_like(a: str, b: str) -> float:
    """How much two strings sound alike, ignoring spaces and case: 0..1."""
    return _combine(
        similarity(letters(a), letters(b)), similarity(phonetic_key(a), phonetic_key(b))
    )


def _combine(letter_sim: float, key_sim: float) -> float:
    return LETTER_WEIGHT * letter_sim + (1.0 - LETTER_WEIGHT) * key_sim


@dataclass(frozen=True)
class TermMatch:
    term: str
    concept_id: str
    score: float
    key_length: int  # length of the term's phonetic key: short keys match by chance


class TermMatcher:
    """Finds the KB term that an n-gram sounds like, if any."""

    def __init__(
        self, terms: dict[str, str], *, min_letters: int = 4, derived: frozenset[str] = frozenset()
    ) -> None:
        """``terms``: surface form (alias) -> concept id; ``derived``: forms made by the
        caller (plurals), which lose a tie to a form the KB lists."""
        self.derived = derived
        from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415

        # Abbreviations (H&E, IHC) and very short terms are never targets of a sound match;
        # of a concept's spellings that sound the same (haematoxylin, hematoxylin) the first
        # given is kept: callers list canonical names first.
        self.terms = []
        seen: set[tuple[str, str]] = set()
        for t, concept_id in terms.items():
            if len(letters(t)) < min_letters or _is_abbreviation(t):
                continue
            if (concept_id, phonetic_key(t)) in seen:
                continue
            seen.add((concept_id, phonetic_key(t)))
            self.terms.append(t)
        self.concept_of = {t: terms[t] for t in self.terms}
        self._letters = [letters(t) for t in self.terms]
        self._keys = [phonetic_key(t) for t in self.terms]
        self._vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 3), min_df=1)
        self._matrix = self._vectorizer.fit_transform(self._keys)

    def best(
        self,
        texts: list[str],
        *,
        top_k: int = 12,
        letter_weights: list[float] | None = None,
        prefixes: list[str] | None = None,
    ) -> list[TermMatch | None]:
        """For each text, the best-sounding term (or None when nothing shares a sound).

        ``letter_weights``: per text, the weight of spelling in the score (default
        ``LETTER_WEIGHT``); words the recognizer itself was unsure of say little by their
        spelling. ``prefixes``: per text, a word said just before it that is kept; both
        sides are compared with it in front, so a sound the recognizer gave to that word
        ("each lamina-yolus" for "each glomerulus") still counts. Candidates are found
        from the text alone.
        """
        import numpy as np  # noqa: PLC0415

        if not texts:
            return []
        keys = [phonetic_key(t) for t in texts]
        sims = (self._vectorizer.transform(keys) @ self._matrix.T).toarray()
        if prefixes:
            # Candidates may also share a sound with the kept word in front: all of it, or
            # only its last one or two sounds ("each lamina-yolus": the "ch" of "each" is
            # the "g" of "glomerulus"), since a term starts where a word's sound ends.
            for part in (None, 1, 2):
                part_keys = [
                    phonetic_key(f"{h} {t}") if part is None else phonetic_key(h)[-part:] + k
                    for h, t, k in zip(prefixes, texts, keys, strict=True)
                ]
                part_sims = (self._vectorizer.transform(part_keys) @ self._matrix.T).toarray()
                for n, head in enumerate(prefixes):
                    if head:
                        sims[n] = np.maximum(sims[n], part_sims[n])
        weights = letter_weights or [LETTER_WEIGHT] * len(texts)
        heads = prefixes or [""] * len(texts)
        out: list[TermMatch | None] = []
        for text, key, row, weight, head in zip(texts, keys, sims, weights, heads, strict=True):
            text_letters = letters(text)
            head_letters = letters(head)
            full_letters, full_key = letters(f"{head} {text}"), phonetic_key(f"{head} {text}")
            best: TermMatch | None = None
            for i in row.argsort()[::-1][:top_k]:
                if row[i] <= 0:
                    break
                ratio = len(self._letters[i]) / max(1, len(text_letters))
                if not 0.6 <= ratio <= 1.6:
                    continue
                if head:
                    # The kept word lends its sounds to the term, but its own letters,
                    # the same on both sides, are no evidence: the edit distance with it
                    # in front is taken over the lengths of the window and the term
                    # alone, or any short window would gain by the shared word ("the
                    # intramary" is not "the Antoni B area").
                    letter_sim = similarity_over(
                        full_letters,
                        head_letters + self._letters[i],
                        max(len(text_letters), len(self._letters[i])),
                    )
                    key_sim = similarity_over(
                        full_key,
                        phonetic_key(f"{head} {self.terms[i]}"),
                        max(len(key), len(self._keys[i])),
                    )
                else:
                    letter_sim = similarity(text_letters, self._letters[i])
                    key_sim = similarity(key, self._keys[i])
                score = weight * letter_sim + (1.0 - weight) * key_sim
                if (
                    best is None
                    or score > best.score
                    or (score == best.score and best.term in self.derived)
                ):
                    term = self.terms[i]
                    best = TermMatch(
                        term, self.concept_of[term], round(score, 4), len(self._keys[i])
                    )
            out.append(best)
        return out


def _is_abbreviation(term: str) -> bool:
    words = term.split()
    return "&" in term or any(
        sum(c.isupper() for c in w) >= 2 or any(c.isdigit() for c in w) for w in words
    )
