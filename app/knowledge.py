"""The knowledge base as the web app sees it: concept id -> name, semantic types, aliases.

The pipeline links text with scispacy (workers/); the app only needs to *show* the
concepts a pair carries, so it reads the same scispacy-format JSONL file directly
(``settings.resolved_kb_path``) and never imports scispacy or spaCy. The file is read
once per process (the KB is small; a UMLS-sized one would be a few hundred MB, which
is why the map is cached rather than re-read per page).

``highlight`` splits a text into plain and concept-mention segments for the templates,
which escape every segment: nothing here builds HTML.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from app.settings import get_settings

_logger = logging.getLogger(__name__)


@functools.cache
def semantic_type_names() -> dict[str, str]:
    return json.loads(get_settings().semantic_types_path.read_text())


@dataclasses.dataclass(frozen=True)
class Concept:
    concept_id: str
    name: str
    types: tuple[str, ...]
    aliases: tuple[str, ...]

    @property
    def type_names(self) -> list[str]:
        names = semantic_type_names()
        return [names.get(t, t) for t in self.types]  # an unknown code as itself

    @property
    def label(self) -> str:
        """What the hover shows: name, then the semantic types."""
        kinds = ", ".join(self.type_names)
        return f"{self.name} ({kinds}) · {self.concept_id}" if kinds else self.name


@dataclasses.dataclass(frozen=True)
class Segment:
    text: str
    concept: Concept | None = None


@functools.lru_cache(maxsize=4)
def _load(path: Path) -> dict[str, Concept]:
    concepts: dict[str, Concept] = {}
    try:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                line = line.strip()
                if not line:
                    continue
                try:
                    row = json.loads(line)
                    concept = Concept(
                        concept_id=str(row["concept_id"]),
                        name=str(row.get("canonical_name") or row["concept_id"]),
                        types=tuple(str(t) for t in row.get("types") or ()),
                        aliases=tuple(str(a) for a in row.get("aliases") or ()),
                    )
                except (ValueError, KeyError, TypeError):
                    _logger.warning("knowledge base %s: line %d is not a concept", path, number)
                    continue
                concepts[concept.concept_id] = concept
    except OSError as exc:
        _logger.warning("knowledge base %s cannot be read: %s", path, exc)
    return concepts


def concepts() -> dict[str, Concept]:
    """Every concept of the configured KB by id (read once per process and path)."""
    return _load(get_settings().resolved_kb_path)


def _concept_id(item: object) -> str | None:
    """A pair's ``umls`` holds ids; older rows (and tests) may hold {"cui": ..} dicts."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        value = item.get("cui") or item.get("concept_id")
        return str(value) if value else None
    return None


def concepts_of(umls: Iterable[object] | None) -> list[Concept]:
    """The pair's concepts, in its order; ids missing from the KB get a bare entry."""
    known = concepts()
    found: list[Concept] = []
    seen: set[str] = set()
    for item in umls or ():
        concept_id = _concept_id(item)
        if not concept_id or concept_id in seen:
            continue
        seen.add(concept_id)
        concept = known.get(concept_id)
        if concept is None:
            name = (item.get("name") if isinstance(item, dict) else None) or concept_id
            concept = Concept(concept_id=concept_id, name=str(name), types=(), aliases=())
        found.append(concept)
    return found


def highlight(text: str, pair_concepts: Sequence[Concept]) -> list[Segment]:
    """``text`` cut into segments; mentions of a concept's name or aliases are marked.

    Longest surface forms win ("bile duct" over "duct"); matching is case-insensitive
    on word boundaries, so "HE" in "the" is never a mention.
    """
    if not text:
        return []
    surfaces: dict[str, Concept] = {}
    for concept in pair_concepts:
        for surface in (concept.name, *concept.aliases):
            surface = surface.strip()
            if len(surface) >= 2:
                surfaces.setdefault(surface.lower(), concept)
    if not surfaces:
        return [Segment(text)]
    alternatives = sorted(surfaces, key=len, reverse=True)
    pattern = re.compile(
        r"(?<!\w)(" + "|".join(re.escape(s) for s in alternatives) + r")(?!\w)", re.IGNORECASE
    )
    segments: list[Segment] = []
    position = 0
    for match in pattern.finditer(text):
        if match.start() > position:
            segments.append(Segment(text[position : match.start()]))
        segments.append(Segment(match.group(0), surfaces[match.group(0).lower()]))
        position = match.end()
    if position < len(text):
        segments.append(Segment(text[position:]))
    return segments
