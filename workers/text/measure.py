"""Measures of the text stage: key-term recall and words changed.

- ``key_term_recall``: of the key terms a narration says (with multiplicity), the share
  written correctly in a text. A term counts when any accepted spelling of it appears
  (the KB aliases of its concept, e.g. "optic disk" for "optic disc") and plural and
  singular are not told apart ("colonic crypt" for "colonic crypts"): the measure is
  whether the term is there, not its inflection.
- ``changed_word_rate``: the share of a text's words that the cleanup replaced (difflib
  over lower-case word tokens). On correct text every change is a wrong change.
- ``word_error_rate``: (substitutions + deletions + insertions) / reference words, by a
  word-level Levenshtein alignment of lower-case word tokens (what the domain prompt does
  to ASR; bench/bench_asr.py).

Both are pure functions; tests and ``bench/bench_text.py`` use them.
"""

from __future__ import annotations

import difflib
import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from rapidfuzz.distance.Levenshtein import distance as levenshtein

_WORD = re.compile(r"[a-z0-9]+")


def _stem(word: str) -> str:
    # Plural and singular alike: crypts/crypt, nuclei/nucleus are not the same stem, but
    # the KB lists such pairs as aliases of one concept.
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _norm(text: str) -> tuple[str, ...]:
    return tuple(_stem(w) for w in _WORD.findall(text.lower()))


def spellings(term: str, kb_path: Path | str | None = None) -> set[tuple[str, ...]]:
    """The accepted spellings of a term: itself and the aliases of KB concepts it names."""
    out = {_norm(term)}
    for names in _alias_groups(str(kb_path) if kb_path else None):
        if _norm(term) in names:
            out |= names
    return out


_GROUPS: dict[str | None, list[set[tuple[str, ...]]]] = {}


def _alias_groups(kb_path: str | None) -> list[set[tuple[str, ...]]]:
    if kb_path not in _GROUPS:
        path = (
            Path(kb_path)
            if kb_path
            else (Path(__file__).resolve().parent.parent / "knowledge" / "histopath_kb.jsonl")
        )
        groups = []
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    e = json.loads(line)
                    groups.append({_norm(a) for a in [e["canonical_name"], *e["aliases"]]})
        _GROUPS[kb_path] = groups
    return _GROUPS[kb_path]


def _count(needle: tuple[str, ...], hay: tuple[str, ...]) -> int:
    n = len(needle)
    if not n:
        return 0
    return sum(1 for i in range(len(hay) - n + 1) if hay[i : i + n] == needle)


def key_term_recall(
    text: str, key_terms: Iterable[str], kb_path: Path | str | None = None
) -> tuple[float, list[str]]:
    """(recall, missed terms): each key term occurrence found in ``text``, any spelling."""
    expected = Counter(t.lower() for t in key_terms)
    hay = _norm(text)
    hits = 0
    missed: list[str] = []
    for term, wanted in sorted(expected.items()):
        found = 0
        for spelling in spellings(term, kb_path):
            found += _count(spelling, hay)
        hits += min(found, wanted)
        missed.extend([term] * max(0, wanted - found))
    total = sum(expected.values())
    return (hits / total if total else 1.0), missed


def changed_word_rate(originals: list[str], outputs: list[str]) -> tuple[float, int, int]:
    """(rate, changed words, words): words of ``originals`` not kept in ``outputs``."""
    changed = total = 0
    for original, output in zip(originals, outputs, strict=True):
        a = _WORD.findall(original.lower())
        b = _WORD.findall(output.lower())
        kept = sum(
            block.size
            for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks()
        )
        changed += len(a) - kept
        total += len(a)
    return (changed / total if total else 0.0), changed, total


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER of ``hypothesis`` against ``reference``: word edits over reference words."""
    ref = _WORD.findall(reference.lower())
    hyp = _WORD.findall(hypothesis.lower())
    if not ref:
        return float(bool(hyp))
    return levenshtein(ref, hyp) / len(ref)


def load_control_sentences(path: Path | str) -> list[str]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]
