"""A scratch Postgres database: made next to the server's admin database, dropped after."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

from sqlalchemy import create_engine, text

from app import db as app_db


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str, *, keep: bool = False) -> Iterator[str]:
    """The URL of a new, empty database named ``PREFIX_<random>`` on ``admin_url``'s server.

    Dropped on the way out (connections still open to it are ended), unless ``keep``; the
    app's engine is reset first, so that its pool holds no connection to it.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        app_db.reset_engine()
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
