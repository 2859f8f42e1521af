"""Writes ``histopath_kb.jsonl``, the histopathology knowledge base, from curated lists.

The file is in scispacy's KB JSONL format (one ``Entity`` per line: concept_id,
canonical_name, aliases, types, definition), so ``scispacy.linking_utils.KnowledgeBase``
loads it as is. Quilt-1M validated its text against UMLS; the full UMLS cannot ship with
this project (licence, size), so this is a small, hand-curated stand-in covering what
histopathology lectures talk about: organs and tissues, cell types, stains and
techniques, lesions and diagnoses, morphological descriptors and microorganisms.

The vocabulary is data, in two places next to this file:

``terms/NN-TUUU-name.txt``
    The terms, one concept a line: ``canonical name|alias|alias...``. ``#`` starts a
    comment (to the end of the line); blank lines are skipped. ``TUUU`` in the file name is
    the UMLS semantic type (TUI, one of ``semantic_types.json``) of the file's
    concepts; ``NN`` orders the files, which are read in that order, each top to bottom.
    The lists overlap: a line whose canonical name is already a concept's name or alias
    adds its new aliases to that concept rather than making another one.
``concepts.json``
    What some concepts have beside their terms, one JSON object keyed by canonical name
    (exactly as in the term file). Its fields, all optional: ``cui``, a real UMLS CUI,
    given only where it is well known and certain; ``type``, a TUI that replaces the
    file's; ``extra_types``, TUIs added after it; ``definition``; ``prompt_rank`` (1, 2,
    ...), for the most common lecture vocabulary. Every name must be a KB concept.

Ids: the ``cui`` where there is one; every other concept gets a stable project-local id
``QC:NNNNNN`` derived from its canonical name, so adding terms does not renumber old ones.

Order matters: the ASR stage builds its Whisper prompt from the KB in file order, so the
concepts with a ``prompt_rank`` come first, by rank, then the rest in term-file order.

Run: ``python -m workers.knowledge.build_kb`` (rewrites the JSONL next to this file).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
KB_PATH = HERE / "histopath_kb.jsonl"
TERMS_DIR = HERE / "terms"
CONCEPTS_PATH = HERE / "concepts.json"
# UMLS semantic type ids (TUIs) and names: one table, shared with the web app.
SEMANTIC_TYPES: dict[str, str] = json.loads((HERE / "semantic_types.json").read_text())
_TERMS_FILE = re.compile(r"(\d+)-(T\d{3})-[\w-]+\.txt")


def read_terms(folder: Path = TERMS_DIR) -> list[tuple[str, list[str]]]:
    """``(tui, [canonical name, alias, ...])`` for every term line, in reading order."""
    files = []
    for path in folder.glob("*.txt"):
        match = _TERMS_FILE.fullmatch(path.name)
        if match is None or match[2] not in SEMANTIC_TYPES:
            raise ValueError(f"{path}: not named NN-<known TUI>-<name>.txt")
        files.append((int(match[1]), path.name, match[2], path))
    out = []
    for _, _, tui, path in sorted(files):
        for line in path.read_text(encoding="utf-8").splitlines():
            names = [n.strip() for n in line.split("#", 1)[0].split("|") if n.strip()]
            if names:
                out.append((tui, names))
    return out


def local_id(name: str) -> str:
    """A stable project-local id from the canonical name (6 digits of its sha1)."""
    digest = int(hashlib.sha1(name.lower().encode()).hexdigest(), 16)
    return f"QC:{digest % 1_000_000:06d}"


def build_entities() -> list[dict]:
    concepts: dict[str, dict] = json.loads(CONCEPTS_PATH.read_text(encoding="utf-8"))
    entities: dict[str, dict] = {}  # by lower-cased canonical name
    by_surface: dict[str, str] = {}  # lower-cased name or alias -> its concept's key
    used_ids: set[str] = set()
    for tui, names in read_terms():
        canonical, aliases = names[0], names[1:]
        key = by_surface.get(canonical.lower())
        if key is not None:  # the lists overlap: a known name brings more aliases
            entity = entities[key]
            known = {a.lower() for a in [entity["canonical_name"], *entity["aliases"]]}
            for alias in aliases:
                if alias.lower() not in known:
                    entity["aliases"].append(alias)
                    known.add(alias.lower())
                    by_surface.setdefault(alias.lower(), key)
            continue
        info = concepts.get(canonical, {})
        concept_id = info.get("cui") or local_id(canonical)
        salt = 0
        while concept_id in used_ids:  # 6 digits collide now and then: salt the new name
            salt += 1
            concept_id = local_id(f"{canonical}#{salt}")
        used_ids.add(concept_id)
        key = canonical.lower()
        entities[key] = {
            "concept_id": concept_id,
            "canonical_name": canonical,
            "aliases": aliases,
            "types": [info.get("type", tui), *info.get("extra_types", [])],
            "definition": info.get("definition"),
        }
        for surface in names:
            by_surface.setdefault(surface.lower(), key)
    _add_hyphenated_variants(entities)
    missing = [n for n in concepts if entities.get(n.lower(), {}).get("canonical_name") != n]
    unknown = {t for e in entities.values() for t in e["types"]} - SEMANTIC_TYPES.keys()
    if missing or unknown:
        raise ValueError(
            f"{CONCEPTS_PATH.name}: not KB concepts {missing}, unknown types {unknown}"
        )
    ranked = sorted(
        (c["prompt_rank"], n.lower()) for n, c in concepts.items() if "prompt_rank" in c
    )
    first = {key: entities[key] for _, key in ranked}
    return [*first.values(), *(e for key, e in entities.items() if key not in first)]


# Combining prefixes that speech and ASR set apart from the stem ("pseudo-palisading",
# "sub-nuclear", "intra-epithelial": Whisper writes "high -grade", "low -power"); the
# hyphenated spelling is an alias of the closed one, so that it is found as it is.
COMBINING_PREFIXES = (
    "pseudo",
    "intra",
    "inter",
    "peri",
    "supra",
    "sub",
    "hyper",
    "hypo",
    "micro",
    "macro",
    "multi",
    "poly",
    "extra",
    "neo",
    "non",
)


def hyphenated_variants(name: str, words: set[str]) -> list[str]:
    """``name`` with one prefixed word split at its prefix, where the rest of that word is
    itself a KB word: "pseudopalisading necrosis" -> "pseudo-palisading necrosis"."""
    parts = name.split(" ")
    out = []
    for n, part in enumerate(parts):
        low = part.lower()
        for prefix in COMBINING_PREFIXES:
            rest = low[len(prefix) :]
            if low.startswith(prefix) and len(rest) >= 4 and rest in words:
                split = part[: len(prefix)] + "-" + part[len(prefix) :]
                out.append(" ".join([*parts[:n], split, *parts[n + 1 :]]))
                break
    return out


def _add_hyphenated_variants(entities: dict[str, dict]) -> None:
    surfaces = {
        surface.lower()
        for e in entities.values()
        for surface in [e["canonical_name"], *e["aliases"]]
    }
    words = {w for surface in surfaces for w in re.findall(r"[a-z]+", surface)}
    for e in entities.values():
        for name in [e["canonical_name"], *e["aliases"]]:
            for variant in hyphenated_variants(name, words):
                if variant.lower() not in surfaces:
                    e["aliases"].append(variant)
                    surfaces.add(variant.lower())


def write_kb(path: Path = KB_PATH) -> int:
    entities = build_entities()
    with open(path, "w", encoding="utf-8") as f:
        for entity in entities:
            f.write(json.dumps(entity, ensure_ascii=False) + "\n")
    return len(entities)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=KB_PATH)
    args = parser.parse_args(argv)
    count = write_kb(args.out)
    print(f"wrote {count} concepts to {args.out}")  # noqa: T201 - CLI output
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
