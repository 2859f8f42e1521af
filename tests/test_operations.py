"""Nothing stuck, nothing done twice: atomic claims, leases, the outbox, the reconciler.

The database and the broker are real (SQLite and Postgres; the embedded filesystem
broker, and a Redis address where nothing listens for an outage).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import json
import threading
import time

import pytest
from sqlalchemy import func, select

from app import broker
from app.models import Channel, LoginFailure, StageRun, StageStatus, Video, utcnow
from app.pipeline import FIRST_STAGE, RetryPolicy, Stage, stage
from app.services import control, dispatch
from app.services.ingest import queue_file, queue_url, requeue_video
from app.services.reconcile import reconcile
from app.settings import get_settings
from tests.conftest import DEMO_VIDEO
from workers import tasks
from workers.stage_runner import Outcome, run_stage, run_with_retries, worker_name

DEAD_REDIS = "redis://127.0.0.1:1/0"  # port 1: nothing listens, connections are refused


def _sent(settings) -> list[tuple[str, list]]:
    sent = []
    for path in sorted((settings.broker_dir / "out").glob("*.msg")):
        message = json.loads(path.read_text())
        body = json.loads(__import__("base64").b64decode(message["body"]))
        sent.append((message["headers"]["task"], body[0]))
    return sent


def _run(session, video_id: int, name: str) -> StageRun:
    session.expire_all()
    return session.scalar(
        select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == name)
    )


def _use_broker(monkeypatch, url: str) -> None:
    monkeypatch.setenv("QUILT_BROKER_URL", url)
    get_settings.cache_clear()
    broker.client.cache_clear()


def test_queueing_writes_the_due_run_then_sends_it(settings, session) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    run = _run(session, video.id, FIRST_STAGE.name)
    assert run.status == StageStatus.queued and run.enqueued_at is not None
    assert _sent(settings) == [(FIRST_STAGE.task_name, [video.id])]
    assert not dispatch.waiting_for_broker(session=session, video_id=video.id)


def test_a_broker_outage_at_queue_time_loses_nothing(settings, session, monkeypatch) -> None:
    _use_broker(monkeypatch, DEAD_REDIS)
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    channel = queue_url(session=session, url="https://www.youtube.com/@pathology", user=None)
    run = _run(session, video.id, FIRST_STAGE.name)
    assert run.status == StageStatus.queued and run.enqueued_at is None
    assert dispatch.waiting_for_broker(session=session, video_id=video.id)
    assert session.get(Channel, channel.id).enqueued_at is None
    assert reconcile(session=session).broker_down == dispatch.BROKER_DOWN

    _use_broker(monkeypatch, "filesystem://")  # the broker is back
    report = reconcile(session=session)
    assert report.broker_down is None and report.sent == 2
    assert sorted(_sent(settings)) == sorted(
        [(FIRST_STAGE.task_name, [video.id]), (broker.TASK_EXPAND_SOURCE, [channel.id])]
    )
    assert not dispatch.waiting_for_broker(session=session, video_id=video.id)
    assert reconcile(session=session).sent == 0  # sent once; not again until presumed lost


def test_a_delivery_runs_a_stage_once(settings, session) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    fetch_task = tasks.STAGE_TASKS[FIRST_STAGE.name]
    assert fetch_task(video.id) == Outcome.done
    assert fetch_task(video.id) == Outcome.already_done  # a redelivery
    run = _run(session, video.id, FIRST_STAGE.name)
    assert run.attempts == 1 and run.lease_expires_at is None
    following = _run(session, video.id, "asr")
    assert following.status == StageStatus.queued and following.enqueued_at is not None


def test_a_live_lease_keeps_a_second_worker_out_and_a_dead_one_lets_it_in(
    settings, session
) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    run = _run(session, video.id, FIRST_STAGE.name)
    run.status, run.worker, run.attempts = StageStatus.running, "other-host:1", 1
    run.lease_expires_at = utcnow() + dt.timedelta(seconds=60)
    session.commit()
    assert run_stage(video.id, stage(FIRST_STAGE.name)) == Outcome.busy

    run = _run(session, video.id, FIRST_STAGE.name)
    run.lease_expires_at = utcnow() - dt.timedelta(seconds=1)  # its worker stopped beating
    session.commit()
    assert run_stage(video.id, stage(FIRST_STAGE.name)) == Outcome.done
    run = _run(session, video.id, FIRST_STAGE.name)
    assert (run.status, run.attempts) == (StageStatus.done, 2)


def test_the_reconciler_requeues_a_dead_workers_stage_then_gives_up(
    settings, session, monkeypatch
) -> None:
    monkeypatch.setattr(settings, "stage_max_attempts", 2)
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True, enqueue=False)
    run = _run(session, video.id, "asr")
    run.status, run.worker, run.attempts = StageStatus.running, "gone-host:7", 1
    run.lease_expires_at = utcnow() - dt.timedelta(seconds=5)
    session.commit()

    report = reconcile(session=session)
    assert (report.lost_requeued, report.sent) == (1, 1)
    run = _run(session, video.id, "asr")
    assert run.status == StageStatus.queued and "gone-host:7 stopped answering" in run.error
    assert _sent(settings) == [(stage("asr").task_name, [video.id])]

    run.status, run.attempts, run.worker = StageStatus.running, 2, "gone-host:7"
    run.lease_expires_at = utcnow() - dt.timedelta(seconds=5)
    session.commit()
    assert reconcile(session=session).lost_failed == 1
    run = _run(session, video.id, "asr")
    assert run.status == StageStatus.failed
    assert run.error == "gave up after 2 attempts: gone-host:7 stopped answering"
    video = session.get(Video, video.id)
    assert video.status == "failed" and video.error.startswith("asr: gave up")
    assert _run(session, video.id, "frames").status == StageStatus.skipped


def test_the_reconciler_resumes_a_video_whose_next_stage_was_never_made_due(
    settings, session
) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True, enqueue=False)
    run = _run(session, video.id, FIRST_STAGE.name)
    run.status = StageStatus.done
    row = session.get(Video, video.id)
    row.status = "processing"
    session.commit()
    # Fresh activity may be an in-process run between two stages: left alone.
    assert reconcile(session=session).successors_queued == 0
    later = utcnow() + dt.timedelta(seconds=settings.stage_lease_s + 1)
    assert reconcile(session=session, now=later).successors_queued == 1
    assert _run(session, video.id, "asr").status == StageStatus.queued
    assert _sent(settings) == [(stage("asr").task_name, [video.id])]


def test_a_message_lost_with_the_broker_is_sent_again_once_presumed_lost(settings, session) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    assert reconcile(session=session).sent == 0
    later = utcnow() + dt.timedelta(seconds=settings.stage_resend_after_s + 1)
    assert reconcile(session=session, now=later).sent == 1
    assert _sent(settings) == [(FIRST_STAGE.task_name, [video.id])] * 2


def test_a_heartbeat_names_its_worker() -> None:
    host, pid = worker_name().rsplit(":", 1)
    assert host and pid.isdigit()


def test_the_same_file_twice_is_processed_once(settings, session, tmp_path) -> None:
    copy = tmp_path / "renamed copy.mp4"
    copy.write_bytes(DEMO_VIDEO.read_bytes())
    first = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    second = queue_file(session=session, path=copy, user=None, trusted=True)
    fetch_task = tasks.STAGE_TASKS[FIRST_STAGE.name]
    assert fetch_task(second.id) == Outcome.done  # fetched first: the original
    assert fetch_task(first.id) == Outcome.skipped
    session.expire_all()
    duplicate = session.get(Video, first.id)
    assert duplicate.duplicate_of_id == second.id and duplicate.status == "skipped"
    assert duplicate.error.startswith(f"fetch: duplicate of video #{second.id}")
    assert duplicate.sha256 == session.get(Video, second.id).sha256
    assert _run(session, first.id, "asr").status == StageStatus.skipped
    assert session.get(Video, second.id).duplicate_of_id is None


def test_a_cancelled_video_is_left_alone_until_requeued(settings, session) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    control.cancel_video(session=session, video=video, user=None)
    session.expire_all()
    assert session.get(Video, video.id).status == "cancelled"
    assert {r.status for r in session.get(Video, video.id).stage_runs} == {"cancelled"}
    assert tasks.STAGE_TASKS[FIRST_STAGE.name](video.id) == Outcome.settled  # its message
    later = utcnow() + dt.timedelta(days=1)
    assert reconcile(session=session, now=later).sent == 0
    with pytest.raises(control.ControlError, match="nothing to cancel"):
        control.cancel_video(session=session, video=session.get(Video, video.id), user=None)
    requeue_video(session=session, video=session.get(Video, video.id), user=None)
    assert tasks.STAGE_TASKS[FIRST_STAGE.name](video.id) == Outcome.done


def test_cancelling_a_running_stage_stops_it_and_keeps_nothing(settings, session) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    long_stage = dataclasses.replace(
        stage(FIRST_STAGE.name), core="tests.support.cores:works_until_stopped", reads=(), writes=()
    )
    outcome: list[Outcome] = []
    worker = threading.Thread(target=lambda: outcome.append(run_stage(video.id, long_stage)))
    worker.start()
    try:
        for _ in range(600):
            if (settings.var_dir / "started").exists():
                break
            time.sleep(0.05)
        control.cancel_video(session=session, video=session.get(Video, video.id), user=None)
    finally:
        worker.join(timeout=120)
    assert outcome == [Outcome.cancelled]
    run = _run(session, video.id, FIRST_STAGE.name)
    assert run.status == StageStatus.cancelled and run.stats == {}
    assert run.error == "cancelled by an admin"


def test_a_changed_setting_makes_runs_outdated_and_rerun_replaces_them(
    settings, session, monkeypatch
) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    assert tasks.STAGE_TASKS[FIRST_STAGE.name](video.id) == Outcome.done
    fetch = _run(session, video.id, FIRST_STAGE.name)
    assert fetch.pipeline_version == stage("fetch").version_for(settings)
    # Pretend the video went through; its align run was made with the old pad.
    row = session.get(Video, video.id)
    row.status = "done"
    for run in row.stage_runs:
        run.status = StageStatus.done
        run.pipeline_version = stage(run.stage).version_for(settings)
    session.commit()
    assert control.outdated_runs(session=session, stage="align") == []

    monkeypatch.setattr(settings, "align_pad_s", settings.align_pad_s + 1.0)
    assert [r.video_id for r in control.outdated_runs(session=session, stage="align")] == [video.id]
    assert control.outdated_runs(session=session, stage="asr") == []  # asr ignores the pad
    assert control.rerun_outdated(session=session, stage="align", user=None) == [video.id]
    session.expire_all()
    assert _run(session, video.id, "align").status == StageStatus.queued
    assert _run(session, video.id, "text").status == StageStatus.done  # earlier stages kept
    assert (stage("align").task_name, [video.id]) in _sent(settings)


def test_housekeeping_drops_failed_logins_that_no_longer_count(settings, session) -> None:
    old = utcnow() - dt.timedelta(seconds=settings.login_ip_window_s + 60)
    session.add_all(
        [
            LoginFailure(address="10.0.0.9", username="x", at=old),
            LoginFailure(address="10.0.0.9", username="x", at=utcnow()),
        ]
    )
    session.commit()
    assert tasks.housekeeping() == {"login_failures_pruned": 1}
    assert session.scalar(select(func.count()).select_from(LoginFailure)) == 1


def test_running_again_from_a_later_stage_fetches_first_when_the_source_is_gone(
    settings, session
) -> None:
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True)
    assert tasks.STAGE_TASKS[FIRST_STAGE.name](video.id) == Outcome.done
    session.expire_all()
    row = session.get(Video, video.id)
    requeue_video(session=session, video=row, user=None, from_stage="frames")
    assert _run(session, video.id, "asr").status == StageStatus.queued  # asr never ran
    (settings.media_root / session.get(Video, video.id).media_path).unlink()  # quilt gc
    _run(session, video.id, "asr").status = StageStatus.done
    session.commit()
    requeue_video(
        session=session, video=session.get(Video, video.id), user=None, from_stage="frames"
    )
    assert _run(session, video.id, FIRST_STAGE.name).status == StageStatus.queued


class _FlakyMedia(http.server.BaseHTTPRequestHandler):
    """Serves the demo lecture, after answering 503 to the first ``failures`` requests."""

    failures = 1
    seen = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server hook
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.send_error(503, "Service Unavailable")
            return
        body = DEMO_VIDEO.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:  # noqa: ANN002
        pass


@pytest.fixture
def flaky_media(settings, monkeypatch):
    monkeypatch.setenv("QUILT_FETCH_ALLOW_NETWORKS", '["127.0.0.1"]')
    get_settings.cache_clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FlakyMedia)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _FlakyMedia.seen = 0
    yield f"http://127.0.0.1:{server.server_address[1]}/lecture.mp4", _FlakyMedia
    server.shutdown()
    server.server_close()


def _fetch_with(attempts: int) -> Stage:
    return dataclasses.replace(
        stage("fetch"), retry=RetryPolicy(max_attempts=attempts, backoff_s=0)
    )


def test_a_server_error_on_download_is_retried_then_fetched(settings, session, flaky_media) -> None:
    url, server = flaky_media
    server.failures = 1
    video = queue_url(session=session, url=url, user=None, enqueue=False)
    assert run_with_retries(video.id, _fetch_with(3)) == Outcome.done
    run = _run(session, video.id, FIRST_STAGE.name)
    assert (run.status, run.attempts) == (StageStatus.done, 2)
    assert server.seen >= 2


def test_a_server_that_keeps_failing_fails_the_video_after_the_attempts(
    settings, session, flaky_media
) -> None:
    url, server = flaky_media
    server.failures = 10**6
    video = queue_url(session=session, url=url, user=None, enqueue=False)
    assert run_with_retries(video.id, _fetch_with(2)) == Outcome.failed
    run = _run(session, video.id, FIRST_STAGE.name)
    assert run.attempts == 2
    assert "503" in run.error and run.error.endswith("(gave up after retries)")
