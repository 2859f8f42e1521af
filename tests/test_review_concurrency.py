"""The queue's guarantees under concurrency: many reviewers (threads, each with its own
connection) claiming and deciding at once. No pair is leased to more reviewers than it
needs, none to the same reviewer twice, no decision is lost."""

from __future__ import annotations

import collections
import random
import threading

import pytest
from sqlalchemy import func, select

from app import db as app_db
from app.models import Pair, Review, User
from app.services import review
from tests.support.review import LEASE_S
from tests.support.seed import make_pair, make_user, make_video


def _run_reviewers(session, *, n_pairs: int, n_reviewers: int, k: int):
    video = make_video(session)
    for i in range(n_pairs):
        make_pair(session, video, priority=(i * 7919 % n_pairs) / n_pairs)
    reviewers = [make_user(session, f"rev{i}") for i in range(n_reviewers)]
    maker = app_db.get_sessionmaker()
    claims: list[tuple[int, int]] = []  # (pair, reviewer), in no particular order
    decided: list[tuple[int, int, str]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n_reviewers)

    def work(user_id: int, seed: int) -> None:
        rng = random.Random(seed)
        try:
            with maker() as own:
                me = own.get(User, user_id)
                barrier.wait()
                while True:
                    pair = review.claim_next(
                        session=own, reviewer=me, lease_s=LEASE_S, reviews_per_pair=k, gold_every=0
                    )
                    if pair is None:
                        return
                    with lock:
                        claims.append((pair.id, me.id))
                    decision = rng.choice(["approve", "reject"])
                    review.decide(
                        session=own,
                        pair_id=pair.id,
                        reviewer=me,
                        decision=decision,
                        reason="poor_quality" if decision == "reject" else None,
                        expected_version=pair.version,
                        reviews_per_pair=k,
                    )
                    with lock:
                        decided.append((pair.id, me.id, decision))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r.id, i)) for i, r in enumerate(reviewers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    return claims, decided


@pytest.mark.parametrize("k", [1, 2])
def test_many_reviewers_no_double_assignment_no_lost_decision(session, database_url, k):
    postgres = database_url.startswith("postgresql")
    n_pairs, n_reviewers = (120, 16) if postgres else (40, 6)
    claims, decided = _run_reviewers(session, n_pairs=n_pairs, n_reviewers=n_reviewers, k=k)

    # Every claim was decided (each reviewer decides what it claimed, without conflict).
    assert len(claims) == len(decided) == n_pairs * k
    per_pair = collections.Counter(pair for pair, _ in claims)
    assert set(per_pair.values()) == {k}, "a pair was handed out more or fewer than k times"
    assert len(set(claims)) == len(claims), "a reviewer got the same pair twice"

    # No lost decision: every decision the reviewers saw succeed is a row, and each
    # pair's status is what its k votes say.
    rows = session.execute(select(Review.pair_id, Review.reviewer_id, Review.decision)).all()
    assert sorted(map(tuple, rows)) == sorted(decided)
    votes: dict[int, set[str]] = collections.defaultdict(set)
    for pair_id, _, decision in decided:
        votes[pair_id].add(decision)
    statuses = dict(session.execute(select(Pair.id, Pair.status)).all())
    counts = dict(session.execute(select(Pair.id, Pair.review_count)).all())
    for pair_id, seen in votes.items():
        expected = (
            {"approve": "approved", "reject": "rejected"}[next(iter(seen))]
            if len(seen) == 1
            else "disputed"
        )
        assert statuses[pair_id] == expected
        assert counts[pair_id] == k
    assert (
        session.scalar(select(func.count()).select_from(Pair).where(Pair.status == "pending")) == 0
    )
