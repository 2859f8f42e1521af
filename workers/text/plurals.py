"""Plurals of KB terms, so that a garble of a plural is corrected to the plural.

"hepatic sites" is "hepatocytes", not "hepatocyte": the correction's targets hold the
plural of every count noun in the KB (``COUNT_NOUN_TYPES``), made at the term's head noun
with the English and the Latin/Greek forms histology uses (nucleus -> nuclei, lumen ->
lumina, cortex -> cortices). Mass nouns and adjectives get none: a generated "necroses"
only steals matches from real terms.
"""

from __future__ import annotations

import re

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
COUNT_NOUN_TYPES: frozenset[str] = frozenset(
    {"T017", "T020", "T023", "T024", "T025", "T026", "T033", "T074", "T082", "T191"}
)
# Latin -us words whose plural is English: "sinuses", not "sini".
_ENGLISH_US_PLURALS: frozenset[str] = frozenset(
    {"sinus", "plexus", "pus", "virus", "meatus", "fetus"}
)
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
