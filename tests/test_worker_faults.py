"""Faults with real processes: a worker killed with SIGKILL mid-stage, a broker restarted
without persistence. Each time the video still finishes, with the same pairs as an
undisturbed run, no duplicate pair and no stage run left running.

The worker runs with the reconciler's beat embedded and short leases, so a dead worker is
noticed in seconds rather than minutes. The broker is a private redis-server on a free
port, started and restarted by the test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app import db as app_db
from app.models import Pair, StageRun, StageStatus, Video
from app.services.ingest import queue_file
from tests.conftest import DEMO_VIDEO
from tests.support.live_server import free_port
from tests.support.processes import app_env, running
from workers.oneshot import run_pipeline

pytestmark = pytest.mark.slow

FAST_OPERATIONS = {
    "QUILT_STAGE_LEASE_S": "6",
    "QUILT_RECONCILE_EVERY_S": "1",
    "QUILT_STAGE_RESEND_AFTER_S": "15",
}


def _redis_server(port: int, folder: Path) -> subprocess.Popen:
    # No persistence: a restart loses every queued message, as the default Redis does.
    return subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_redis(port: int) -> None:
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.1)
    raise AssertionError("redis-server did not start")


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port, folder = free_port(), tmp_path / "redis"
    folder.mkdir()
    server = _redis_server(port, folder)
    _wait_redis(port)
    yield port, folder
    server.kill()


@pytest.fixture
def database_url(postgres_url: str, private_redis, monkeypatch: pytest.MonkeyPatch) -> str:
    """Postgres only; the private broker is set before the settings are read."""
    monkeypatch.setenv("QUILT_BROKER_URL", f"redis://127.0.0.1:{private_redis[0]}/0")
    return postgres_url


def _worker_args() -> list[str]:
    return [sys.executable, "-m", "app.cli", "worker", "-Q", "cpu,gpu", "-c", "1", "--beat"]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it (the worker and its pool)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    stack = [pid]
    while stack:
        current = stack.pop()
        stack.extend(children.get(current, []))
        with contextlib.suppress(ProcessLookupError):  # it ended on its own meanwhile
            os.kill(current, signal.SIGKILL)


def _wait_until(check, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with app_db.get_sessionmaker()() as s:
            value = check(s)
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"not within {timeout_s:.0f} s: {what}")


def _stage_status(video_id: int, stage: str):
    def check(s) -> bool:
        run = s.scalar(
            select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)
        )
        return run is not None and run.status == StageStatus.running

    return check


def _finished(video_id: int):
    return lambda s: s.get(Video, video_id).status in ("done", "failed", "skipped")


@pytest.fixture(scope="module")
def reference_pairs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple]:
    """The demo's pairs from an undisturbed in-process run."""
    result = run_pipeline(DEMO_VIDEO, tmp_path_factory.mktemp("reference"))
    return sorted((p.start_s, p.end_s, p.medical_text) for p in result.pairs)


def _assert_finished_cleanly(video_id: int, reference: list[tuple]) -> None:
    with app_db.get_sessionmaker()() as s:
        assert s.get(Video, video_id).status == "done", s.get(Video, video_id).error
        runs = s.scalars(select(StageRun).where(StageRun.video_id == video_id)).all()
        assert {r.status for r in runs} == {StageStatus.done}
        pairs = s.scalars(select(Pair).where(Pair.video_id == video_id)).all()
        keys = [p.pair_key for p in pairs]
        assert len(keys) == len(set(keys))
        assert sorted((p.start_s, p.end_s, p.medical_text) for p in pairs) == reference


@pytest.mark.parametrize("stage", ["asr", "frames"])
def test_a_worker_killed_mid_stage_is_replaced_and_the_video_finishes(
    settings, session, tmp_path, reference_pairs, stage
) -> None:
    env = app_env(
        settings.database_url,
        settings.var_dir,
        QUILT_BROKER_URL=settings.broker_url,
        **FAST_OPERATIONS,
    )
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    with running(_worker_args(), env=env, log=tmp_path / "worker-1.log") as first:
        _wait_until(_stage_status(video.id, stage), 180, f"{stage} running")
        _kill_tree(first.pid)
        first.wait()
    with running(_worker_args(), env=env, log=tmp_path / "worker-2.log"):
        _wait_until(_finished(video.id), 240, "the video finished")
    _assert_finished_cleanly(video.id, reference_pairs)
    with app_db.get_sessionmaker()() as s:
        run = s.scalar(
            select(StageRun).where(StageRun.video_id == video.id, StageRun.stage == stage)
        )
        assert run.attempts == 2


def test_a_broker_restart_without_persistence_loses_no_video(
    settings, session, tmp_path, private_redis, reference_pairs
) -> None:
    port, folder = private_redis
    env = app_env(
        settings.database_url,
        settings.var_dir,
        QUILT_BROKER_URL=settings.broker_url,
        **FAST_OPERATIONS,
    )
    first = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    with running(_worker_args(), env=env, log=tmp_path / "worker.log"):
        _wait_until(_stage_status(first.id, "asr"), 180, "asr running")
        # Queued behind the running stage: its message is in Redis when Redis goes.
        # (The same file again, so it ends as a duplicate once fetched.)
        second_path = tmp_path / "again.mp4"
        second_path.write_bytes(DEMO_VIDEO.read_bytes())
        second = queue_file(session=session, path=second_path, user=None, trusted=True)
        subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], check=False)
        time.sleep(1)
        restarted = _redis_server(port, folder)
        try:
            _wait_redis(port)
            _wait_until(_finished(first.id), 300, "the first video finished")
            _wait_until(_finished(second.id), 300, "the second video finished")
        finally:
            restarted.kill()
    _assert_finished_cleanly(first.id, reference_pairs)
    with app_db.get_sessionmaker()() as s:
        # The second copy's lost message was sent again: it was fetched, and found to be
        # the same file as the first.
        again = s.get(Video, second.id)
        assert (again.status, again.duplicate_of_id) == ("skipped", first.id)


# --- a database restart ----------------------------------------------------------------


def _pg_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed (make test installs postgresql)")
    return str(found[-1])


def _as_postgres(args: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; the postgresql package makes this user.
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a free port, which the test may restart."""

    def __init__(self, folder: Path) -> None:
        self.data, self.port = folder / "data", free_port()
        folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        subprocess.run(
            _as_postgres(
                [_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres"]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        self.log = folder / "server.log"

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.data}"
        subprocess.run(
            _as_postgres([_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                          "-o", options, "-w", *args]),
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> None:
        self._ctl("start")

    def restart(self) -> None:
        self._ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self._ctl("-m", "immediate", "stop")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def test_a_database_restart_mid_stage_loses_no_video(
    tmp_path, private_redis, reference_pairs, monkeypatch
) -> None:
    from app.migrate import upgrade
    from app.settings import get_settings

    # Outside pytest's own temporary folder, which only root may enter.
    folder = Path(tempfile.mkdtemp(prefix="quilt-pg-"))
    server = PrivatePostgres(folder)
    server.start()
    try:
        upgrade(server.url)
        monkeypatch.setenv("QUILT_DATABASE_URL", server.url)
        monkeypatch.setenv("QUILT_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("QUILT_BROKER_URL", f"redis://127.0.0.1:{private_redis[0]}/0")
        get_settings.cache_clear()
        app_db.reset_engine()
        from app import broker

        broker.client.cache_clear()
        settings = get_settings()
        env = app_env(
            settings.database_url,
            settings.var_dir,
            QUILT_BROKER_URL=settings.broker_url,
            **FAST_OPERATIONS,
        )
        with app_db.get_sessionmaker()() as s:
            video = queue_file(session=s, path=DEMO_VIDEO, user=None, trusted=True)
        with running(_worker_args(), env=env, log=tmp_path / "worker.log"):
            _wait_until(_stage_status(video.id, "asr"), 180, "asr running")
            server.restart()  # every connection of the worker is cut mid-stage
            app_db.reset_engine()
            _wait_until(_finished(video.id), 300, "the video finished")
        _assert_finished_cleanly(video.id, reference_pairs)
    finally:
        app_db.reset_engine()
        get_settings.cache_clear()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
