"""Fixtures more than one test module uses: real databases (SQLite and Postgres) and the
settings bound to them, an HTTP file server, the web app with signed-in clients, a review
team, a live server with a Chromium page, and the text stage's options.

The schema always comes from the Alembic migrations. Postgres gets a fresh database per
test session; each test starts from empty tables. Helpers that are not fixtures are in
tests/support/.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

# Settings are read from the environment: make sure nothing from a developer's shell or
# .env leaks into the tests.
os.environ["QUILT_ENVIRONMENT"] = "test"
os.environ["QUILT_SECRET_KEY"] = "test-secret-key-not-for-production"

from app import broker as app_broker  # noqa: E402
from app import db as app_db  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.models import Base, Pair, Role, User  # noqa: E402
from app.settings import REPO_ROOT, Settings, get_settings  # noqa: E402
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402
from tests.support.databases import scratch_database  # noqa: E402
from tests.support.live_server import serving  # noqa: E402
from tests.support.processes import app_env  # noqa: E402
from tests.support.seed import make_pair, make_user, make_video  # noqa: E402
from tests.support.text import KB_PATH  # noqa: E402
from tests.support.web import api_login  # noqa: E402
from workers.stages.text import TextOptions  # noqa: E402

PG_ADMIN_URL = os.environ.get(
    "QUILT_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("QUILT_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"
DEMO_TRUTH = REPO_ROOT / "demo" / "lecture.json"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with scratch_database(PG_ADMIN_URL, "quilt_test") as url:
        upgrade(url)
        yield url


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


# --- the web app ----------------------------------------------------------------------


@pytest.fixture
def web_app(settings: Settings) -> FastAPI:
    from app.web.main import create_app  # noqa: PLC0415 - about a second; web tests only

    return create_app()


@pytest.fixture
def client(web_app: FastAPI) -> Iterator[TestClient]:
    """An anonymous client of the app; redirects are returned, not followed."""
    with TestClient(web_app, follow_redirects=False) as c:
        yield c


def _signed_in(client: TestClient, session: Session, username: str, role: Role) -> TestClient:
    client.user = make_user(session, username, role)
    client.token = api_login(client, username)
    return client


@pytest.fixture
def reviewer(client: TestClient, session: Session) -> TestClient:
    """``client`` signed in as the reviewer rita: ``.user`` is her row, ``.token`` the CSRF
    token that forms carry (no CSRF header is set)."""
    return _signed_in(client, session, "rita", Role.reviewer)


@pytest.fixture
def admin(client: TestClient, session: Session) -> TestClient:
    """``client`` signed in as the admin ada (``.user``, ``.token`` as for ``reviewer``)."""
    return _signed_in(client, session, "ada", Role.admin)


# --- a review team --------------------------------------------------------------------


@pytest.fixture
def team(session: Session) -> tuple[list[Pair], tuple[User, User, User], User]:
    """Three pending pairs (priorities 0.1, 0.2, 0.3), the reviewers alice, bob and carol,
    and the admin ada."""
    video = make_video(session)
    pairs = [make_pair(session, video, priority=p) for p in (0.1, 0.2, 0.3)]
    alice, bob, carol = (make_user(session, name) for name in ("alice", "bob", "carol"))
    return pairs, (alice, bob, carol), make_user(session, "ada", Role.admin)


# --- a real server and a real browser -------------------------------------------------


@pytest.fixture
def live_server(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """Base URL of the app under uvicorn in a subprocess, sharing ``settings`` (database,
    media, releases); its log is live-server.log in the test's tmp_path."""
    env = app_env(settings.database_url, settings.var_dir)
    with serving(env, log=tmp_path / "live-server.log") as (base, _process):
        yield base


@pytest.fixture
def browser_page():
    """A Chromium page (1400x950) through Playwright; skipped where Playwright is missing."""
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 950})
        try:
            yield page
        finally:
            browser.close()


# --- the text stage -------------------------------------------------------------------


@pytest.fixture(scope="session")
def text_options(tmp_path_factory: pytest.TempPathFactory) -> TextOptions:
    """The text stage's options on the bundled knowledge base, with a linker cache made
    once per test session."""
    return TextOptions(kb_path=str(KB_PATH), kb_cache_dir=str(tmp_path_factory.mktemp("kb")))
