"""The queue's hot path (claim, then decide) on both databases: what each statement
writes, and how many statements it takes on Postgres (with 50 reviewers at once, every
round trip to the database counts). Also the Postgres pool: no ping per checkout, its size
from the settings."""

from __future__ import annotations

import contextlib
import datetime as dt

from sqlalchemy import event, func, select

from app import db as app_db
from app.models import Assignment, AuditEvent, Pair, PairStatus, Review, utcnow
from app.services import review
from tests.support.review import LEASE_S, vote
from tests.support.seed import make_pair, make_user, make_video


@contextlib.contextmanager
def _statements(engine):
    """The SQL statements ``engine`` sends while the block runs."""
    seen: list[str] = []

    def count(conn, cursor, statement, *args) -> None:  # noqa: ANN001
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_own_expired_lease_is_renewed_not_doubled(session):
    video = make_video(session)
    pair = make_pair(session, video, priority=0.1)
    alice = make_user(session, "alice")
    t0 = utcnow()
    assert review.claim_next(session=session, reviewer=alice, lease_s=60, now=t0).id == pair.id
    later = t0 + dt.timedelta(seconds=61)
    again = review.claim_next(session=session, reviewer=alice, lease_s=60, now=later, gold_every=0)
    assert again.id == pair.id
    leases = session.scalars(select(Assignment).execution_options(populate_existing=True)).all()
    assert len(leases) == 1
    assert leases[0].completed_at is None
    expires = leases[0].expires_at.replace(tzinfo=None)
    assert expires == (later + dt.timedelta(seconds=60)).replace(tzinfo=None)


def test_decide_returns_the_pair_as_committed(session):
    video = make_video(session)
    pair = make_pair(session, video, priority=0.1)
    alice = make_user(session, "alice")
    claimed = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S, gold_every=0)
    decided = review.decide(
        session=session,
        pair_id=claimed.id,
        reviewer=alice,
        decision="reject",
        reason="poor_quality",
        expected_version=claimed.version,
    )
    with app_db.get_sessionmaker()() as other:
        stored = other.get(Pair, pair.id)
        assert (decided.status, decided.version, decided.review_count) == (
            stored.status,
            stored.version,
            stored.review_count,
        )
        assert (decided.reject_reason, decided.reviewed_by_id) == ("poor_quality", alice.id)
        lease = other.scalars(select(Assignment)).one()
        assert lease.completed_at is not None
        assert lease.leased_at is not None and lease.expires_at > lease.leased_at
    assert decided.status == PairStatus.rejected


def test_decide_without_a_lease_still_passes_the_pair_for_good(session):
    video = make_video(session)
    pair = make_pair(session, video, priority=0.1)
    make_pair(session, video, priority=0.2)
    alice = make_user(session, "alice")
    vote(session, alice, pair, "approve", k=2, version=1)
    lease = session.scalars(select(Assignment)).one()
    assert lease.completed_at is not None
    nxt = review.claim_next(
        session=session, reviewer=alice, lease_s=LEASE_S, reviews_per_pair=2, gold_every=0
    )
    assert nxt.id != pair.id


def test_hot_path_statement_counts_on_postgres(session, database_url):
    video = make_video(session)
    for i in range(5):
        make_pair(session, video, priority=i / 10)
    alice = make_user(session, "alice")
    with _statements(session.get_bind()) as claim_sql:
        pair = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S, gold_every=0)
    with _statements(session.get_bind()) as decide_sql:
        review.decide(
            session=session,
            pair_id=pair.id,
            reviewer=alice,
            decision="approve",
            expected_version=pair.version,
        )
    assert session.scalar(select(func.count()).select_from(Review)) == 1
    assert session.scalar(select(func.count()).select_from(AuditEvent)) == 1
    if database_url.startswith("postgresql"):
        # Claim: lease (walk + upsert) and re-check. Decide: lock, read votes, pair,
        # review, lease, audit.
        assert len(claim_sql) == 2, claim_sql
        assert len(decide_sql) == 6, decide_sql


def test_postgres_pool_replaces_a_closed_connection_without_a_ping(postgres_url):
    """No pool_pre_ping round trip on the hot path, yet a connection the driver knows is
    closed is never handed out: the checkout check replaces it."""
    from sqlalchemy import text

    engine = app_db.make_engine(postgres_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select 1")).scalar_one() == 1
            conn.commit()
            dbapi_conn = conn.connection.dbapi_connection
        dbapi_conn.close()  # dies while pooled
        with _statements(engine) as seen, engine.connect() as conn:
            assert conn.execute(text("select 2")).scalar_one() == 2
        assert [s for s in seen if s.strip().lower().startswith("select")] == ["select 2"]
    finally:
        engine.dispose()


def test_postgres_pool_size_comes_from_the_settings(postgres_url, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("QUILT_DATABASE_URL", postgres_url)
    monkeypatch.setenv("QUILT_DB_POOL_SIZE", "7")
    get_settings.cache_clear()
    app_db.reset_engine()
    try:
        pool = app_db.get_engine().pool
        assert pool.size() == 7 and pool._max_overflow == 10
    finally:
        app_db.reset_engine()
        get_settings.cache_clear()
