"""Keywords and noun phrases of a sentence, without NLTK data or a spaCy parser model.

Keywords are RAKE's (Rose et al. 2010), written here since NLTK data cannot be downloaded:
candidate phrases are runs of content words between stop words (spaCy's English stop
words, plus the fillers of spoken lectures, ``FILLER_WORDS``) and punctuation, scored over
the whole transcript; each sentence keeps its own candidates ranked by their document
score. Noun phrases come from the same runs (``noun_phrases``): a parser-free chunker,
since no spaCy parser model can be had offline.
"""

from __future__ import annotations

from collections import defaultdict

from workers.knowledge.phonetic import letters
from workers.text.sentences import split_token

# Fillers of spoken lectures, on top of spaCy's stop words, for RAKE and mention finding.
FILLER_WORDS: frozenset[str] = frozenset(
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


def rake_phrases(tokens: list[str], stop_words: frozenset[str], max_words: int = 4) -> list[str]:
    """Candidate phrases: runs of content words between stop words and punctuation."""
    phrases: list[str] = []
    current: list[str] = []
    for token in tokens:
        lead, core, trail = split_token(token)
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
