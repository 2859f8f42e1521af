"""Inter-rater agreement: the statistics, and ``report`` over the reviewers' votes and
caption edits (what the agreement page and /api/stats/agreement show).

The statistics are implemented here (numpy only) so that their definitions are in plain
sight and tested against the textbook examples:

- Cohen's kappa (Cohen 1960) for two reviewers who rated the same pairs:
  kappa = (p_o - p_e) / (1 - p_e), p_e from each reviewer's own label frequencies.
- Fleiss' kappa (Fleiss 1971) for many reviewers, the same number n of ratings per pair.
- Krippendorff's alpha, nominal (Krippendorff 2011, "Computing Krippendorff's
  alpha-reliability"): any number of ratings per pair, missing ones allowed; this is the
  overall figure when pairs got different numbers of reviews.
- Levenshtein edit distance (and its normalised form) between two reviewers' captions.

Degenerate inputs (no items, or chance agreement of 1: everyone used one label) have no
defined kappa; the functions return None there rather than a misleading 0 or 1.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Hashable, Sequence

import numpy as np
from rapidfuzz.distance.Levenshtein import distance as levenshtein
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import PairRevision, Review, User
from app.services.review.rows import standing_votes


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float | None:
    """Cohen's kappa of two raters' labels on the same items (``a[i]``, ``b[i]``)."""
    if len(a) != len(b):
        raise ValueError("both raters must rate the same items")
    if not a:
        return None
    labels = sorted(set(a) | set(b), key=repr)
    index = {label: i for i, label in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in zip(a, b, strict=True):
        table[index[x], index[y]] += 1
    n = table.sum()
    p_o = np.trace(table) / n
    p_e = float((table.sum(axis=1) / n) @ (table.sum(axis=0) / n))
    if p_e >= 1.0:
        return None
    return float((p_o - p_e) / (1.0 - p_e))


def fleiss_kappa(counts: Sequence[Sequence[float]] | np.ndarray) -> float | None:
    """Fleiss' kappa from an items x categories table of counts (``counts[i][j]``: how
    many raters put item i in category j). Every item must have the same number of
    ratings, at least two."""
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2 or table.shape[0] == 0:
        return None
    per_item = table.sum(axis=1)
    n = per_item[0]
    if n < 2 or not np.allclose(per_item, n):
        raise ValueError("Fleiss' kappa needs the same number (>= 2) of ratings per item")
    p_j = table.sum(axis=0) / table.sum()
    p_i = ((table * table).sum(axis=1) - n) / (n * (n - 1))
    p_bar = p_i.mean()
    p_e = float((p_j * p_j).sum())
    if p_e >= 1.0:
        return None
    return float((p_bar - p_e) / (1.0 - p_e))


def krippendorff_alpha_nominal(units: Sequence[Sequence[Hashable | None]]) -> float | None:
    """Krippendorff's alpha for nominal data. ``units[u]`` lists the values the raters
    gave unit u (None: that rater did not rate it). Units with fewer than two values are
    not pairable and are left out, as the definition says."""
    values = [[v for v in unit if v is not None] for unit in units]
    values = [v for v in values if len(v) >= 2]
    if not values:
        return None
    labels = sorted({v for unit in values for v in unit}, key=repr)
    index = {label: i for i, label in enumerate(labels)}
    # Coincidence matrix: each ordered pair of values within a unit, weighted 1/(m_u - 1).
    o = np.zeros((len(labels), len(labels)))
    for unit in values:
        m = len(unit)
        counts = np.zeros(len(labels))
        for v in unit:
            counts[index[v]] += 1
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    n_c = o.sum(axis=1)
    n = n_c.sum()
    observed = n - np.trace(o)  # disagreeing coincidences (nominal metric: 1 off-diagonal)
    expected = (n * n - (n_c * n_c).sum()) / (n - 1)
    if expected == 0:
        return None
    return float(1.0 - observed / expected)


def normalized_edit_distance(a: str, b: str) -> float:
    """Levenshtein distance divided by the longer length: 0 identical, 1 nothing shared."""
    longest = max(len(a), len(b))
    return levenshtein(a, b) / longest if longest else 0.0


# --- the report ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairwiseAgreement:
    reviewer_a: str
    reviewer_b: str
    common: int  # pairs both decided
    percent_agreement: float
    cohen_kappa: float | None


@dataclasses.dataclass(frozen=True)
class EditDistance:
    reviewer_a: str
    reviewer_b: str
    common: int  # pairs whose caption both edited
    mean_chars: float
    mean_normalized: float  # Levenshtein / longer length, 0 identical ... 1 disjoint


@dataclasses.dataclass(frozen=True)
class AgreementReport:
    pairwise: list[PairwiseAgreement]
    fleiss_kappa: float | None
    fleiss_items: int  # pairs with the most common number of votes (Fleiss needs equal n)
    fleiss_raters: int
    krippendorff_alpha: float | None
    alpha_items: int  # pairs with >= 2 votes
    caption_edits: list[EditDistance]


def _votes_by_pair(session: Session) -> dict[int, dict[str, str]]:
    """pair id -> {reviewer name: decision}: each reviewer's last standing vote, only on
    pairs that at least two reviewers decided (gold pairs included: they are votes too)."""
    standing = standing_votes()
    multi = (
        select(Review.pair_id)
        .where(standing)
        .group_by(Review.pair_id)
        .having(func.count(func.distinct(Review.reviewer_id)) >= 2)
    )
    rows = session.execute(
        select(Review.pair_id, User.username, Review.decision)
        .join(User, User.id == Review.reviewer_id)
        .where(standing, Review.pair_id.in_(multi))
        .order_by(Review.id)
    ).all()
    out: dict[int, dict[str, str]] = collections.defaultdict(dict)
    for pair_id, username, decision in rows:
        out[pair_id][username] = decision
    return out


def report(*, session: Session) -> AgreementReport:
    """Cohen's kappa per reviewer pair, Fleiss' kappa and Krippendorff's alpha overall on
    the approve/reject votes, and the edit distance between reviewers' caption edits."""
    votes = _votes_by_pair(session)
    by_reviewer_pair: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for per_pair in votes.values():
        for a, b in itertools.combinations(sorted(per_pair), 2):
            xs, ys = by_reviewer_pair.setdefault((a, b), ([], []))
            xs.append(per_pair[a])
            ys.append(per_pair[b])
    pairwise = [
        PairwiseAgreement(
            a,
            b,
            len(xs),
            sum(x == y for x, y in zip(xs, ys, strict=True)) / len(xs),
            cohen_kappa(xs, ys),
        )
        for (a, b), (xs, ys) in sorted(by_reviewer_pair.items())
    ]
    units = [list(per_pair.values()) for per_pair in votes.values()]
    alpha = krippendorff_alpha_nominal(units)
    fleiss: float | None = None
    fleiss_items = fleiss_raters = 0
    if units:
        fleiss_raters = collections.Counter(len(u) for u in units).most_common(1)[0][0]
        table = [[u.count("approve"), u.count("reject")] for u in units if len(u) == fleiss_raters]
        fleiss_items = len(table)
        fleiss = fleiss_kappa(table)
    return AgreementReport(
        pairwise=pairwise,
        fleiss_kappa=fleiss,
        fleiss_items=fleiss_items,
        fleiss_raters=fleiss_raters,
        krippendorff_alpha=alpha,
        alpha_items=len(units),
        caption_edits=caption_edit_distances(session=session),
    )


def caption_edit_distances(*, session: Session) -> list[EditDistance]:
    """For every pair whose caption two reviewers edited: the Levenshtein distance
    between each one's last caption, averaged per reviewer pair."""
    rows = session.execute(
        select(PairRevision.pair_id, User.username, PairRevision.after)
        .join(User, User.id == PairRevision.user_id)
        .order_by(PairRevision.id)
    ).all()
    captions: dict[int, dict[str, str]] = collections.defaultdict(dict)
    for pair_id, username, after in rows:
        if isinstance(after, dict) and isinstance(after.get("caption"), str):
            captions[pair_id][username] = after["caption"]
    sums: dict[tuple[str, str], list[float]] = {}
    for per_pair in captions.values():
        for a, b in itertools.combinations(sorted(per_pair), 2):
            s = sums.setdefault((a, b), [0, 0.0, 0.0])
            s[0] += 1
            s[1] += levenshtein(per_pair[a], per_pair[b])
            s[2] += normalized_edit_distance(per_pair[a], per_pair[b])
    return [
        EditDistance(a, b, int(n), chars / n, norm / n)
        for (a, b), (n, chars, norm) in sorted(sums.items())
    ]
