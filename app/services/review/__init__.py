"""The review workspace's services: queue, decisions, edits, history, listings.

Modules (each one concern; this package re-exports their public names, so callers write
``from app.services import review`` and ``review.claim_next(...)``):

- ``queue``: filters, ``claim_next`` / ``claim_batch`` / ``claim_ahead`` (the hot path);
- ``leases``: ``lease_next``, the one way a pair is leased from a queue (the review queue,
  the grid and adjudication), and how concurrent claims stay apart;
- ``decisions``: ``decide``, ``decide_many`` (grid triage), ``skip``, ``validate_decision``;
- ``edits``: caption fields and tags, with PairRevision rows;
- ``history``: ``pair_history``, ``reviewer_history``, ``undo_last``;
- ``listing``: ``list_pairs``, ``filter_options``, ``queue_counts`` (reads only);
- ``rows``: the row steps shared with adjudication and gold answers (lock the pair, write
  a verdict, standing votes);
- ``errors``: ``ReviewError``, ``PairNotFoundError``, ``ConflictError``,
  ``NotAllowedError``.

Adjudication, gold pairs and agreement live next door: app/services/adjudication.py,
gold.py and agreement.py.

History is append-only: decisions are Review rows (with the status before and after),
edits PairRevision rows, and an undo is a Review of its own that names the one it takes
back. Every public function commits its own unit of work: a lease that is not committed
protects nothing.
"""

from app.services.review.decisions import (
    MAX_COMMENT_LEN,
    BatchOutcome,
    Decision,
    decide,
    decide_many,
    skip,
    validate_decision,
)
from app.services.review.edits import (
    EDITABLE_FIELDS,
    MAX_CAPTION_LEN,
    MAX_TEXT_LEN,
    TAG_FIELDS,
    TEXT_FIELDS,
    edit,
)
from app.services.review.errors import (
    ConflictError,
    NotAllowedError,
    PairNotFoundError,
    ReviewError,
)
from app.services.review.history import (
    HistoryEntry,
    ReviewerHistoryItem,
    pair_history,
    reviewer_history,
    undo_last,
)
from app.services.review.listing import (
    FilterOptions,
    QueueCounts,
    filter_options,
    list_pairs,
    queue_counts,
)
from app.services.review.queue import (
    NO_FILTERS,
    QueueFilters,
    claim_ahead,
    claim_batch,
    claim_next,
)
from app.services.review.rows import NOT_HISTOLOGY_APPROVAL, get_pair, refuse_not_histology

__all__ = [
    "EDITABLE_FIELDS",
    "MAX_CAPTION_LEN",
    "MAX_COMMENT_LEN",
    "MAX_TEXT_LEN",
    "NOT_HISTOLOGY_APPROVAL",
    "NO_FILTERS",
    "TAG_FIELDS",
    "TEXT_FIELDS",
    "BatchOutcome",
    "ConflictError",
    "Decision",
    "FilterOptions",
    "HistoryEntry",
    "NotAllowedError",
    "PairNotFoundError",
    "QueueCounts",
    "QueueFilters",
    "ReviewError",
    "ReviewerHistoryItem",
    "claim_ahead",
    "claim_batch",
    "claim_next",
    "decide",
    "decide_many",
    "edit",
    "filter_options",
    "get_pair",
    "list_pairs",
    "pair_history",
    "queue_counts",
    "refuse_not_histology",
    "reviewer_history",
    "skip",
    "undo_last",
    "validate_decision",
]
