"""Offline entity linking against the histopathology knowledge base with scispacy.

Quilt-1M validated ASR text against UMLS with scispacy's linker. scispacy's linker is a
character 3-gram TF-IDF nearest-neighbour search over every alias of the KB; its own index
builder (``create_tfidf_ann_index``) refuses to run on Python 3.11 (a scipy float16 check)
and drops 3-grams seen in fewer than 10 aliases, which empties most of a small KB. So the
four ``LinkerPaths`` files are written here, the same way but with ``min_df=1``:

- ``tfidf_vectorizer.joblib``: ``TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3))``;
- ``tfidf_vectors_sparse.npz``: the aliases' TF-IDF vectors, float32 (scipy >= 1.11 has no
  sparse float16, which is what scispacy's builder checks for; its loader casts to float32);
- ``nmslib_index.bin``: an nmslib HNSW index in the ``cosinesimil_sparse`` space;
- ``concept_aliases.json``: index row -> alias.

They are cached in a folder named by the KB file's sha256 (default
``settings.var_dir / "kb-cache"``), so editing the KB rebuilds them and nothing else does.
scispacy's own ``CandidateGenerator`` and ``EntityLinker`` then run offline on them.

Scores are scispacy's: cosine similarity of char 3-gram TF-IDF vectors. Garbled ASR
mentions of a term score 0.6-0.7 (measured on tiny.en transcripts of espeak-ng
narration), hence ``settings.link_threshold`` 0.6.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from workers.types import Concept

_logger = logging.getLogger(__name__)

# Bump when the way the index files are built changes: old caches are then ignored.
INDEX_VERSION = "1"
DEFAULT_THRESHOLD = 0.6


@dataclass(frozen=True)
class Candidate:
    """One KB concept near a mention: the alias that matched and its cosine similarity."""

    concept_id: str
    alias: str
    score: float


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def default_cache_dir() -> Path:
    from app.settings import get_settings  # noqa: PLC0415 - settings only for the default

    return get_settings().var_dir / "kb-cache"


def build_linker_paths(kb_path: Path, cache_dir: Path):  # -> scispacy LinkerPaths
    """Write (once per KB content) the four files scispacy's ``LinkerPaths`` names."""
    import joblib  # noqa: PLC0415
    import nmslib  # noqa: PLC0415
    import numpy  # noqa: PLC0415
    import scipy.sparse  # noqa: PLC0415
    from scispacy.candidate_generation import LinkerPaths  # noqa: PLC0415
    from scispacy.linking_utils import KnowledgeBase  # noqa: PLC0415
    from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: PLC0415

    kb_path = Path(kb_path)
    target = Path(cache_dir) / f"{file_sha256(kb_path)[:16]}-v{INDEX_VERSION}"
    if target.is_dir():
        paths = LinkerPaths.from_directory(target)
        if paths.is_locally_cached():
            return paths

    kb = KnowledgeBase(str(kb_path))
    aliases = list(kb.alias_to_cuis.keys())
    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(3, 3), min_df=1, dtype=numpy.float32
    )
    vectors = vectorizer.fit_transform(aliases)
    # nmslib crashes on all-zero vectors (aliases shorter than a 3-gram).
    keep = numpy.asarray(vectors.sum(axis=1) != 0).reshape(-1)
    aliases = [a for a, k in zip(aliases, keep, strict=True) if k]
    vectors = vectors[keep]

    index = nmslib.init(
        method="hnsw", space="cosinesimil_sparse", data_type=nmslib.DataType.SPARSE_VECTOR
    )
    index.addDataPointBatch(vectors)
    # A small KB: HNSW with generous M/efConstruction builds in well under a second and
    # keeps recall near exact search.
    index.createIndex(
        {"M": 32, "efConstruction": 400, "post": 0, "indexThreadQty": os.cpu_count() or 1},
        print_progress=False,
    )

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        tmp_paths = LinkerPaths.from_directory(tmp)
        joblib.dump(vectorizer, tmp_paths.tfidf_vectorizer)
        scipy.sparse.save_npz(tmp_paths.tfidf_vectors, vectors)
        Path(tmp_paths.concept_aliases_list).write_text(json.dumps(aliases), encoding="utf-8")
        index.saveIndex(tmp_paths.ann_index)
        try:
            os.replace(tmp, target)  # atomic when target does not exist yet
        except OSError:
            # Another process built it first (or a stale partial dir): replace it.
            shutil.rmtree(target, ignore_errors=True)
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _logger.info("built KB linker index for %s (%d aliases) in %s", kb_path, len(aliases), target)
    return LinkerPaths.from_directory(target)


class KnowledgeBaseLinker:
    """scispacy's candidate generator and entity linker over one KB file, built offline."""

    def __init__(
        self,
        kb_path: Path | str,
        *,
        cache_dir: Path | str | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        ef_search: int = 200,
    ) -> None:
        from scispacy.candidate_generation import CandidateGenerator  # noqa: PLC0415
        from scispacy.linking import EntityLinker  # noqa: PLC0415
        from scispacy.linking_utils import KnowledgeBase  # noqa: PLC0415

        self.kb_path = Path(kb_path)
        self.threshold = threshold
        paths = build_linker_paths(self.kb_path, Path(cache_dir or default_cache_dir()))
        self.kb = KnowledgeBase(str(self.kb_path))
        aliases, vectorizer, index = paths.load(ef_search=ef_search)
        self.candidate_generator = CandidateGenerator(
            ann_index=index,
            tfidf_vectorizer=vectorizer,
            ann_concept_aliases_list=aliases,
            kb=self.kb,
        )
        # For spaCy pipelines (``doc.ents`` -> ``span._.kb_ents``). Most of the KB has no
        # definition, so scispacy's "definitions only" filter is off.
        self.entity_linker = EntityLinker(
            candidate_generator=self.candidate_generator,
            threshold=threshold,
            filter_for_definitions=False,
            resolve_abbreviations=True,
        )
        self.aliases: list[str] = aliases
        self.term_words: frozenset[str] = frozenset(
            w.lower()
            for a in self.kb.alias_to_cuis
            for w in a.replace("-", " ").replace("/", " ").split()
            if w.isalpha()
        )

    def entity(self, concept_id: str):  # -> scispacy Entity
        return self.kb.cui_to_entity[concept_id]

    def candidates(self, mentions: list[str], k: int = 30) -> list[list[Candidate]]:
        """For each mention, KB concepts by descending similarity (best alias each)."""
        if not mentions:
            return []
        out: list[list[Candidate]] = []
        for batch in self.candidate_generator(list(mentions), k):
            ranked = []
            for cand in batch:
                best = max(range(len(cand.similarities)), key=lambda i: cand.similarities[i])
                ranked.append(
                    Candidate(cand.concept_id, cand.aliases[best], float(cand.similarities[best]))
                )
            ranked.sort(key=lambda c: (-c.score, c.concept_id))
            out.append(ranked)
        return out

    def link(self, mentions: list[str], threshold: float | None = None) -> list[Concept]:
        """The best concept of each mention that reaches the threshold (others are dropped)."""
        limit = self.threshold if threshold is None else threshold
        concepts: list[Concept] = []
        for mention, ranked in zip(mentions, self.candidates(mentions), strict=True):
            if ranked and ranked[0].score >= limit:
                best = ranked[0]
                entity = self.entity(best.concept_id)
                concepts.append(
                    Concept(
                        concept_id=best.concept_id,
                        name=entity.canonical_name,
                        types=list(entity.types),
                        mention=mention,
                        score=round(best.score, 4),
                    )
                )
        return concepts


@functools.cache
def _cached_linker(kb_path: str, sha: str, cache_dir: str) -> KnowledgeBaseLinker:
    del sha  # part of the cache key only: an edited KB file gets a new linker
    return KnowledgeBaseLinker(kb_path, cache_dir=cache_dir)


def get_linker(
    kb_path: Path | str | None = None, cache_dir: Path | str | None = None
) -> KnowledgeBaseLinker:
    """The linker of a KB, loaded once per process (and again only if the file changes)."""
    if kb_path is None:
        from app.settings import get_settings  # noqa: PLC0415

        kb_path = get_settings().resolved_kb_path
    path = Path(kb_path).resolve()
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _cached_linker(str(path), file_sha256(path), str(cache.resolve()))


def prompt_terms(kb_path: Path | str, max_chars: int = 600) -> list[str]:
    """Canonical names in KB file order (most common lecture terms first), up to max_chars."""
    terms: list[str] = []
    used = 0
    with open(kb_path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            name = json.loads(line)["canonical_name"]
            if used + len(name) + 2 > max_chars:
                break
            terms.append(name)
            used += len(name) + 2
    return terms
