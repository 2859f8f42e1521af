"""Mentions of KB concepts in a sentence, and their validation with the KB linker.

Quilt-1M kept only text whose keywords are valid UMLS concepts ("medical text"). Here the
mentions of a sentence are the KB aliases it says as they are (``alias_mentions``), its
noun phrases and its keywords, with their 1-3 word sub-phrases (``linker_mentions``); they
are linked to the KB with scispacy's linker (cosine of char 3-gram TF-IDF). A mention made
only of ordinary English words must score ``english_link_threshold`` (0.85) rather than
``link_threshold`` (0.6): "area" is 0.69 from "portal area", but a garbled medical word is
not an English word and links at 0.6-0.7 (``validate``).

The aliases a sentence says as they are also show a medical context, which the correction
reads (``lecture_mentions``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from workers.knowledge.lexicon import is_english_word
from workers.knowledge.phonetic import letters
from workers.text.resources import KbResources
from workers.types import Concept


def alias_mentions(tokens: list[str], res: KbResources) -> dict[str, str]:
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


def lecture_mentions(tokens: list[str], res: KbResources) -> set[str]:
    """Concept ids whose specific aliases appear as they are in these tokens."""
    return set(alias_mentions(tokens, res).values())


def linker_mentions(
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


def validate(
    mentions: list[str],
    res: KbResources,
    *,
    link_threshold: float,
    english_link_threshold: float,
) -> list[Concept]:
    """Link mentions to KB concepts; one concept per id, its best-scoring mention."""
    best: dict[str, Concept] = {}
    exact: list[str] = []  # mentions that are a KB alias: their parts add nothing
    for concept in res.linker.link(mentions, threshold=link_threshold):
        if any(f" {concept.mention} " in f" {m} " for m in exact):
            continue
        ordinary = all(is_english_word(w) for w in concept.mention.split())
        if ordinary and concept.score < english_link_threshold:
            continue
        if concept.score >= 0.95:
            exact.append(concept.mention)
        kept = best.get(concept.concept_id)
        if kept is None or concept.score > kept.score:
            best[concept.concept_id] = concept
    return sorted(best.values(), key=lambda c: (-c.score, c.concept_id))
