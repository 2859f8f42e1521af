"""The admins' worker page and ``GET /api/workers``, on both databases: the embedded
filesystem broker and Redis with no worker ("no worker answered", queue lengths counted
from the broker's own files and lists), a broker that is down (said in words), running
stage runs with their lease and holder, the live refresh, and reviewers kept out. The
slow test starts a real worker process on each broker and finds it with its queues."""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import time

import pytest
import redis

from app import broker
from app.models import StageRun, utcnow
from app.settings import get_settings
from tests.conftest import REDIS_URL
from tests.support.processes import app_env, running
from tests.support.seed import make_video
from tests.support.web import HX


def _use_broker(monkeypatch, url: str | None, *, timeout_s: float | None = 0.3) -> None:
    """Point the app at ``url`` (None: the embedded filesystem broker) from now on."""
    if url is None:
        monkeypatch.delenv("QUILT_BROKER_URL", raising=False)
    else:
        monkeypatch.setenv("QUILT_BROKER_URL", url)
    if timeout_s is not None:  # nobody answers anyway: no need to wait the default
        monkeypatch.setenv("QUILT_WORKER_INSPECT_TIMEOUT_S", str(timeout_s))
    get_settings.cache_clear()
    broker.client.cache_clear()
    broker.client()  # the filesystem broker's folders are made with its configuration


@pytest.fixture
def redis_db():
    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def _queues(report: dict) -> dict[str, int | None]:
    return {q["name"]: q["length"] for q in report["queues"]}


def test_filesystem_broker_without_a_worker(admin, reviewer_client, session, monkeypatch):
    _use_broker(monkeypatch, None)
    broker.enqueue(broker.TASK_RECONCILE)  # one message file waits on cpu
    broker.enqueue(broker.TASK_RECONCILE)
    broker.client().send_task("quilt.asr", args=[1], queue="gpu")
    video = make_video(session, title="Liver <b>lecture</b>", status="processing")
    now = utcnow()
    session.add_all(
        [
            StageRun(
                video_id=video.id,
                stage="asr",
                status="running",
                attempts=2,
                progress=0.25,
                started_at=now - dt.timedelta(minutes=3),
                worker="gpu-box:4242",
                lease_expires_at=now + dt.timedelta(seconds=90),
            ),
            StageRun(
                video_id=video.id,
                stage="frames",
                status="running",
                attempts=1,
                started_at=now - dt.timedelta(hours=1),
                worker="cpu-box:77",
                lease_expires_at=now - dt.timedelta(minutes=10),
            ),
            StageRun(video_id=video.id, stage="fetch", status="done"),
        ]
    )
    session.commit()

    report = admin.get("/api/workers").json()
    assert report["transport"] == "filesystem" and report["reachable"] is True, report["problem"]
    assert report["problem"].startswith("No worker answered within")
    assert report["workers"] == []
    assert _queues(report) == {"cpu": 2, "gpu": 1}
    assert report["unacknowledged"] is None
    runs = {r["stage"]: r for r in report["running"]}
    assert set(runs) == {"asr", "frames"}
    assert runs["asr"]["holder"] == "gpu-box:4242" and runs["asr"]["worker"] is None
    assert runs["asr"]["lease_expired"] is False and runs["frames"]["lease_expired"] is True
    # A running stage renews its lease every quarter lease: the lease's start is the
    # holder's last heartbeat.
    lease = dt.timedelta(seconds=get_settings().stage_lease_s)
    heartbeat = dt.datetime.fromisoformat(runs["asr"]["last_heartbeat_at"])
    expires = dt.datetime.fromisoformat(runs["asr"]["lease_expires_at"])
    assert expires - heartbeat == lease

    page = admin.get("/admin/workers")
    assert page.status_code == 200 and "<html" in page.text
    text = page.text
    assert "No worker answered within" in text
    assert 'hx-get="/admin/workers/panel" hx-trigger="every 5s"' in text
    assert "gpu-box:4242" in text and "cpu-box:77" in text and "expired" in text
    assert "Liver &lt;b&gt;lecture&lt;/b&gt;" in text
    assert 'href="/admin/workers" aria-current="page"' in text  # the nav link
    # The panel alone, as htmx refreshes it.
    for url in ("/admin/workers/panel", "/admin/workers"):
        panel = admin.get(url, headers=HX)
        assert panel.status_code == 200 and "<html" not in panel.text, url
        assert panel.text.lstrip().startswith('<div id="workers"'), url

    for url in ("/admin/workers", "/admin/workers/panel", "/api/workers"):
        assert reviewer_client.get(url).status_code == 403, url


def test_expired_control_messages_are_swept(admin, monkeypatch):
    """A stopped worker's mailbox gets a copy of every broadcast on the filesystem broker,
    and nothing reads it: copies past their expiry go."""
    _use_broker(monkeypatch, None)
    folder = get_settings().broker_dir / "out"
    old = folder / "1_abc.quilt-cpu@gone.celery.pidbox.msg"
    old.write_text("{}")
    past = time.time() - 3600
    os.utime(old, (past, past))
    fresh = folder / "2_def.quilt-cpu@gone.celery.pidbox.msg"
    fresh.write_text("{}")
    waiting = folder / "3_ghi.cpu.msg"
    waiting.write_text("{}")
    os.utime(waiting, (past, past))
    assert _queues(admin.get("/api/workers").json()) == {"cpu": 1, "gpu": 0}
    assert not old.exists() and fresh.exists() and waiting.exists()


def test_redis_broker_without_a_worker(admin, session, monkeypatch, redis_db):
    _use_broker(monkeypatch, REDIS_URL)
    broker.enqueue(broker.TASK_RECONCILE)
    # A message with a priority goes to a list of its own (kombu: "gpu\x06\x163").
    broker.client().send_task("quilt.asr", args=[1], queue="gpu", priority=5)
    broker.client().send_task("quilt.asr", args=[2], queue="gpu")
    assert redis_db.llen("cpu") == 1 and redis_db.llen("gpu") == 1

    report = admin.get("/api/workers").json()
    assert report["transport"] == "redis" and report["reachable"] is True
    assert "No worker answered" in report["problem"]
    assert _queues(report) == {"cpu": 1, "gpu": 2}
    assert report["unacknowledged"] == 0
    page = admin.get("/admin/workers").text
    assert "No worker answered" in page and 'id="queue-list"' in page


def test_a_broker_that_is_down_is_said_in_words(admin, session, monkeypatch):
    _use_broker(monkeypatch, "redis://:secret@127.0.0.1:1/0")  # nothing listens there
    report = admin.get("/api/workers").json()
    assert report["reachable"] is False
    assert report["problem"].startswith("The broker (redis://:**@127.0.0.1:1/0) cannot be reached")
    assert "secret" not in str(report)
    assert _queues(report) == {"cpu": None, "gpu": None}
    page = admin.get("/admin/workers")
    assert page.status_code == 200
    assert "cannot be reached" in page.text and "unknown" in page.text
    assert "Traceback" not in page.text and "secret" not in page.text


@pytest.fixture
def reviewer_client(web_app, session):
    """A second client, signed in as a reviewer, next to ``admin``."""
    from fastapi.testclient import TestClient

    from tests.support.seed import make_user
    from tests.support.web import api_login

    make_user(session, "rita")
    with TestClient(web_app, follow_redirects=False) as other:
        api_login(other, "rita")
        yield other


# --- a real worker --------------------------------------------------------------------


def _until_a_worker_answers(admin, worker, deadline_s: float = 120) -> dict:
    """The first report in which the worker answered ping, stats and active_queues: waits
    for the worker to start (and, on a busy machine, for a round in which no reply came
    late), so that nothing below depends on timing."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert worker.poll() is None, "the worker died"
        report = admin.get("/api/workers").json()
        found = report["workers"]
        if found and found[0]["answered_ping"] and found[0]["queues"] and found[0]["pool"]:
            return report
        time.sleep(1)
    raise AssertionError(f"no worker answered in {deadline_s}s: {report['problem']}")


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
@pytest.mark.parametrize("transport", ["filesystem", "redis"])
def test_a_real_worker_shows_up_with_its_queues(
    transport, admin, session, settings, monkeypatch, redis_db, tmp_path
):
    url = REDIS_URL if transport == "redis" else None
    _use_broker(monkeypatch, url, timeout_s=None)
    env = app_env(settings.database_url, settings.var_dir)  # QUILT_BROKER_URL as set here
    command = [sys.executable, "-m", "app.cli", "worker", "-Q", "cpu,gpu", "-c", "1"]
    with running(command, env=env, log=tmp_path / "worker.log", stop_timeout_s=20) as worker:
        report = _until_a_worker_answers(admin, worker)
        [found] = report["workers"]
        assert found["name"] == f"quilt-cpu,gpu@{socket.gethostname()}"
        assert found["queues"] == ["cpu", "gpu"] and found["answered_ping"] is True
        assert (found["pool"], found["concurrency"]) == ("prefork", 1)
        assert found["pid"] == worker.pid and len(found["processes"]) == 1
        assert found["active"] == []
        assert {q["name"]: q["consumers"] for q in report["queues"]} == {
            "cpu": [found["name"]],
            "gpu": [found["name"]],
        }
        assert report["problem"] is None

        # A stage run held by the worker's pool process is matched to the worker, and its
        # lease renewal is the worker's last heartbeat.
        video = make_video(session, status="processing")
        expires = utcnow() + dt.timedelta(seconds=60)
        holder = f"{socket.gethostname()}:{found['processes'][0]}"
        session.add(
            StageRun(
                video_id=video.id,
                stage="frames",
                status="running",
                worker=holder,
                lease_expires_at=expires,
            )
        )
        session.commit()
        report = _until_a_worker_answers(admin, worker)
        [run] = report["running"]
        assert (run["holder"], run["worker"]) == (holder, found["name"])
        assert report["workers"][0]["last_heartbeat_at"] == run["last_heartbeat_at"]

        deadline = time.monotonic() + 60
        page = admin.get("/admin/workers").text
        while "pong" not in page and time.monotonic() < deadline:  # a round's reply came late
            page = admin.get("/admin/workers").text
        assert found["name"] in page and "pong" in page and "No worker answered" not in page
        assert holder in page
