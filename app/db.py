"""Engine and sessions. Routes take ``SessionDep``; tasks and the CLI use ``session_scope``."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker

from app.settings import get_settings


def make_engine(url: str, pool_size: int = 30) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:  # noqa: ANN001
            # WAL lets the web server read while a worker writes; foreign keys are off by
            # default in SQLite and the schema relies on them.
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=10, pool_recycle=3600)

    @event.listens_for(engine, "checkout")
    def _drop_broken(dbapi_conn, _record, _proxy) -> None:  # noqa: ANN001
        # A cheap stand-in for pool_pre_ping, whose ``SELECT 1`` costs a round trip on
        # every request (the review queue's hot path): a connection that the driver
        # already knows is closed or broken is replaced here, without asking the server.
        # One that died silently (a server restart) fails its first statement instead;
        # SQLAlchemy then invalidates the whole pool, so each process loses one request,
        # not one per pooled connection.
        if getattr(dbapi_conn, "closed", False) or getattr(dbapi_conn, "broken", False):
            raise exc.DisconnectionError("connection closed")

    return engine


@functools.lru_cache
def get_engine() -> Engine:
    settings = get_settings()
    return make_engine(settings.database_url, settings.db_pool_size)


@functools.lru_cache
def get_sessionmaker() -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(), expire_on_commit=False)


def reset_engine() -> None:
    """Forget the cached engine (tests switch databases between runs)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()
    get_sessionmaker.cache_clear()


@contextlib.contextmanager
def session_scope() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def get_db() -> Iterator[Session]:
    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_db)]
