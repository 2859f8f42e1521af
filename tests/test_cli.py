"""The `quilt` console script as a user runs it (subprocesses against a real database)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from app.models import User, Video
from app.passwords import verify_password
from tests.conftest import DEMO_VIDEO

QUILT = Path(sys.executable).parent / "quilt"


def _quilt(settings, *args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(
        QUILT_DATABASE_URL=settings.database_url, QUILT_VAR_DIR=str(settings.var_dir), **env
    )
    return subprocess.run(
        [str(QUILT), *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_usage_without_command() -> None:
    proc = subprocess.run([str(QUILT)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    for command in (
        "db upgrade",
        "user add",
        "ingest",
        "worker",
        "serve",
        "pipeline run",
        "release create",
        "demo",
    ):
        assert command in proc.stdout


def test_db_user_ingest_release(settings, session) -> None:
    assert _quilt(settings, "db", "upgrade").returncode == 0
    proc = _quilt(
        settings, "user", "add", "alice", "--role", "reviewer", QUILT_NEW_PASSWORD="a-long-password"
    )
    assert proc.returncode == 0, proc.stderr
    user = session.scalar(select(User).where(User.username == "alice"))
    assert user.role == "reviewer" and verify_password(user.password_hash, "a-long-password")
    assert not verify_password(user.password_hash, "wrong-password")

    again = _quilt(settings, "user", "add", "alice", QUILT_NEW_PASSWORD="a-long-password")
    assert again.returncode == 1 and again.stderr.startswith("error: user 'alice' exists")

    generated = _quilt(settings, "user", "add", "bob")
    assert generated.returncode == 0 and "with password " in generated.stdout

    # A password reset ends alice's sessions and lifts a lockout; unlock lifts one alone.
    user.failed_logins, user.locked_until = 5, dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    session.commit()
    version = user.session_version
    reset = _quilt(settings, "user", "password", "alice", QUILT_NEW_PASSWORD="another-long-one")
    assert reset.returncode == 0, reset.stderr
    session.expire_all()
    user = session.scalar(select(User).where(User.username == "alice"))
    assert verify_password(user.password_hash, "another-long-one")
    assert user.session_version == version + 1 and user.locked_until is None
    user.failed_logins, user.locked_until = 5, dt.datetime(2100, 1, 1, tzinfo=dt.UTC)
    session.commit()
    assert _quilt(settings, "user", "unlock", "alice").returncode == 0
    session.expire_all()
    assert session.scalar(select(User).where(User.username == "alice")).locked_until is None
    nobody = _quilt(settings, "user", "unlock", "nobody")
    assert nobody.returncode == 1 and nobody.stderr.startswith("error: no user 'nobody'")

    proc = _quilt(settings, "ingest", str(DEMO_VIDEO))
    assert proc.returncode == 0 and proc.stdout.startswith("queued video ")
    session.expire_all()
    video = session.scalar(select(Video))
    assert video.source_kind == "file" and video.status == "queued"
    messages = list((settings.broker_dir / "out").glob("*"))
    assert [json.loads(m.read_text())["headers"]["task"] for m in messages] == ["quilt.fetch"]

    missing = _quilt(settings, "ingest", "/no/such/file.mp4")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no such file")

    empty = _quilt(settings, "release", "create", "v1")
    assert empty.returncode == 1 and "no approved pairs" in empty.stderr
    assert _quilt(settings, "release", "list").stdout.strip() == "no releases yet"
