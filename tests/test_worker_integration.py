"""A real Celery worker process on the real Redis broker takes the demo lecture from
ingest to pending pairs, with Postgres as the database."""

from __future__ import annotations

import sys
import time

import pytest
import redis
from sqlalchemy import func, select

from app import db as app_db
from app.models import Pair, PairStatus, StageRun, StageStatus, Video, VideoStatus
from app.services.ingest import queue_file
from tests.conftest import DEMO_VIDEO, REDIS_URL
from tests.support import media
from tests.support.processes import app_env, running

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_broker(monkeypatch: pytest.MonkeyPatch) -> str:
    redis.Redis.from_url(REDIS_URL).flushdb()
    monkeypatch.setenv("QUILT_BROKER_URL", REDIS_URL)
    return REDIS_URL


@pytest.fixture
def database_url(postgres_url: str, redis_broker: str) -> str:
    """Postgres only; the Redis broker is set before the settings are read."""
    return postgres_url


@pytest.fixture
def worker(redis_broker: str, settings, tmp_path):
    """``quilt worker`` on both queues, one process, bound to the test's database and var/."""
    env = app_env(settings.database_url, settings.var_dir, QUILT_BROKER_URL=redis_broker)
    command = [
        sys.executable,
        "-m",
        "app.cli",
        "worker",
        "-Q",
        "cpu,gpu",
        "-c",
        "1",
        "--loglevel",
        "INFO",
    ]
    with running(command, env=env, log=tmp_path / "worker.log", stop_timeout_s=20) as process:
        yield process


def _wait_for(video_ids: list[int], timeout_s: float, worker) -> dict[int, str]:
    final = {VideoStatus.done, VideoStatus.failed, VideoStatus.skipped}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        with app_db.get_sessionmaker()() as s:
            statuses = {
                v.id: v.status for v in s.scalars(select(Video).where(Video.id.in_(video_ids)))
            }
        if all(status in final for status in statuses.values()):
            return statuses
        time.sleep(1)
    raise AssertionError(f"videos not finished in {timeout_s}s: {statuses}")


def test_worker_takes_demo_and_bad_input_to_the_end(settings, session, worker, tmp_path) -> None:
    assert settings.broker_url == REDIS_URL  # the test process enqueues on the real Redis
    demo = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    # A bad file queued right behind the demo must not stop the worker.
    bad = queue_file(session=session, path=media.non_video_file(tmp_path), user=None, trusted=True)
    after = queue_file(
        session=session, path=media.video_without_audio(tmp_path), user=None, trusted=True
    )
    statuses = _wait_for([demo.id, bad.id, after.id], 300, worker)
    assert statuses == {demo.id: "done", bad.id: "failed", after.id: "skipped"}

    with app_db.get_sessionmaker()() as s:
        pending = s.scalar(
            select(func.count())
            .select_from(Pair)
            .where(Pair.video_id == demo.id, Pair.status == PairStatus.pending)
        )
        assert pending >= 1
        runs = s.scalars(select(StageRun).where(StageRun.video_id == demo.id)).all()
        assert {r.stage: r.status for r in runs} == {
            "fetch": StageStatus.done,
            "asr": StageStatus.done,
            "frames": StageStatus.done,
            "text": StageStatus.done,
            "align": StageStatus.done,
        }
        assert all(r.attempts == 1 and r.duration_s is not None for r in runs)
        bad_video = s.get(Video, bad.id)
        assert bad_video.error.startswith("fetch: not a readable video file")
        no_audio = s.get(Video, after.id)
        assert no_audio.error == "asr: no audio track: nothing to transcribe"
