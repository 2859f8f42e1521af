"""The per-KB resources of the text stage, built once per KB and stop-word set.

Correction, linking and keywords all read them: the scispacy linker over the KB, the
sound matcher over the KB's terms and their plurals (the correction's targets), the stop
words (spaCy's English ones, which hold the closed-class words, and the lecture fillers)
and the KB aliases that show a medical context when a sentence says them as they are.
Building the matcher takes seconds, so ``kb_resources`` keeps them per process.
"""

from __future__ import annotations

import re
from typing import Protocol

from workers.knowledge.lexicon import is_english_word
from workers.knowledge.linker import KnowledgeBaseLinker, get_linker
from workers.knowledge.phonetic import TermMatcher
from workers.text.plurals import COUNT_NOUN_TYPES, pluralize


class KbOptions(Protocol):
    """What picks the resources: the KB, its linker cache and the extra stop words."""

    kb_path: str | None
    kb_cache_dir: str | None
    extra_stop_words: frozenset[str]


class KbResources:
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


def _has_inner_capital(text: str) -> bool:
    return any(c.isupper() for c in text[1:])


_RESOURCES: dict[tuple[str, str | None, frozenset[str]], KbResources] = {}


def kb_resources(options: KbOptions) -> KbResources:
    """The resources of the options' KB and stop words, built on first use."""
    linker = get_linker(options.kb_path, options.kb_cache_dir)
    key = (str(linker.kb_path), options.kb_cache_dir, options.extra_stop_words)
    if key not in _RESOURCES:
        _RESOURCES[key] = KbResources(linker, options.extra_stop_words)
    return _RESOURCES[key]
