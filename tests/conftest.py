"""Shared fixtures: real databases (SQLite and Postgres), settings, users.

The schema always comes from the Alembic migrations. Postgres gets a fresh database per
test session; each test starts from empty tables.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

# Settings are read from the environment: make sure nothing from a developer's shell or
# .env leaks into the tests.
os.environ["QUILT_ENVIRONMENT"] = "test"
os.environ["QUILT_SECRET_KEY"] = "test-secret-key-not-for-production"

from app import broker as app_broker  # noqa: E402
from app import db as app_db  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Base  # noqa: E402
from app.settings import REPO_ROOT, Settings, get_settings  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "QUILT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("QUILT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"
DEMO_TRUTH = REPO_ROOT / "demo" / "lecture.json"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"quilt_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    app_db.reset_engine()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'quilt.db'}"
    upgrade(url)
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite (the embedded default) and once on Postgres."""
    return request.getfixturevalue(f"{request.param}_url")


def _empty_tables(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def settings(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings bound to an empty database and a private var/ folder for this test."""
    _empty_tables(database_url)
    monkeypatch.setenv("QUILT_DATABASE_URL", database_url)
    monkeypatch.setenv("QUILT_VAR_DIR", str(tmp_path / "var"))
    get_settings.cache_clear()
    app_db.reset_engine()
    app_broker.client.cache_clear()
    current = get_settings()
    current.media_root.mkdir(parents=True, exist_ok=True)
    current.releases_root.mkdir(parents=True, exist_ok=True)
    yield current
    app_db.reset_engine()
    get_settings.cache_clear()
    app_broker.client.cache_clear()


@pytest.fixture
def session(settings: Settings):
    with app_db.get_sessionmaker()() as s:
        yield s


@pytest.fixture
def file_server():
    """Serve folders over real HTTP on 127.0.0.1. Returns ``serve(folder) -> base URL``."""
    import functools
    import http.server
    import threading

    servers = []

    def serve(folder: Path) -> str:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        handler.log_message = lambda *a, **k: None  # type: ignore[method-assign]
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()
