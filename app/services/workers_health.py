"""What the workers are doing: the admins' worker page and ``GET /api/workers``.

Three sources, each read under a short deadline, so that the page answers within a couple
of seconds whatever is down, and says in words what it could not see:

- the workers, through Celery's remote control: ``ping``, ``stats`` (pid, pool and its
  processes), ``active_queues`` and ``active`` (tasks with their arguments and start
  time), broadcast at once from four threads, each on a connection of its own, and
  waited for ``settings.worker_inspect_timeout_s`` (the filesystem transport polls its
  folder once a second, so it gets that second on top). The broker is first reached
  with a single try: a broker that is down is said so at once instead of being retried.
- the broker's queues: Redis keeps one list per queue and priority level (the queue's
  name, and ``name\\x06\\x16N`` for kombu's other priority steps; LLEN of each, summed)
  and a hash of delivered, unacknowledged messages; the filesystem transport keeps one
  file per message in its folder, named ``..._uuid.QUEUE.msg``.
- the database: stage runs that are running, with their holder (``host:pid``) and lease.
  A running stage renews its lease every quarter lease, so the lease's start is the
  worker's last heartbeat; an expired lease means the holder died and the reconciler
  will queue the stage again. A holder is matched to the Celery worker whose pool runs
  that pid on that host.

The filesystem transport copies every broadcast into each mailbox ever bound, a
stopped worker's included, and nothing reads those copies; they carry an expiry of a few
seconds, so copies older than ``CONTROL_MESSAGE_MAX_AGE_S`` are removed here, or a page
left open next to a stopped worker would fill the broker folder.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kombu.utils.url import maybe_sanitize_url
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import broker
from app.models import StageRun, StageStatus, Video, utcnow
from app.settings import Settings, get_settings

COMMANDS = ("ping", "stats", "active_queues", "active")
# The filesystem transport's polling interval (kombu's default) when not configured.
FILESYSTEM_POLL_S = 1.0
CONTROL_MESSAGE_MAX_AGE_S = 60.0
ARGS_SHOWN = 200
# kombu's Redis transport: priority steps and the separator of a priority level's list.
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_UNACKED = "unacked"


@dataclass
class ActiveTask:
    id: str
    name: str
    args: str
    started_at: dt.datetime | None
    running_s: float | None
    pid: int | None


@dataclass
class WorkerInfo:
    name: str
    answered_ping: bool
    queues: list[str]
    pool: str | None
    concurrency: int | None
    processes: list[int]
    pid: int | None
    uptime_s: float | None
    active: list[ActiveTask]
    # The latest lease renewal of a stage that runs in this worker's processes.
    last_heartbeat_at: dt.datetime | None = None


@dataclass
class QueueInfo:
    name: str
    length: int | None  # None: the broker could not be read
    consumers: list[str]


@dataclass
class RunningStage:
    video_id: int
    video_title: str | None
    stage: str
    holder: str | None  # host:pid of the process that holds the lease
    worker: str | None  # the Celery worker that runs that process, when one answered
    attempts: int
    progress: float
    started_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    lease_expired: bool


@dataclass
class WorkersReport:
    checked_at: dt.datetime
    broker: str  # the broker URL, password masked
    transport: str
    reachable: bool
    # What could not be seen, in words (None: everything answered).
    problem: str | None
    workers: list[WorkerInfo] = field(default_factory=list)
    queues: list[QueueInfo] = field(default_factory=list)
    # Redis: messages delivered to workers and not yet acknowledged (tasks acknowledge
    # when they end): running and prefetched tasks.
    unacknowledged: int | None = None
    running: list[RunningStage] = field(default_factory=list)


def _transport(url: str) -> str:
    return url.split("://", 1)[0] if "://" in url else url


def _sentence(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200].rstrip(".")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite: naive UTC


def inspect_wait_s(settings: Settings) -> float:
    wait = settings.worker_inspect_timeout_s
    if settings.broker_url.startswith("filesystem://"):
        options = broker.client().conf.broker_transport_options or {}
        wait += float(options.get("polling_interval", FILESYSTEM_POLL_S))
    return wait


# --- the workers ------------------------------------------------------------------------


def _check_broker(timeout: float) -> None:
    """Reach the broker once (no retries): raises when it is down."""
    with broker.client().connection_for_write(connect_timeout=timeout) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        conn.default_channel  # noqa: B018 - Redis connects (and pings) when the channel opens


def _ask(command: str, wait: float, timeout: float, replies: dict[str, Any]) -> None:
    app = broker.client()
    options: dict[str, Any] = {}
    if app.conf.broker_url.startswith("filesystem://"):
        options["polling_interval"] = 0.1  # our side reads the replies promptly
    with app.connection_for_write(connect_timeout=timeout, transport_options=options) as conn:
        answer = getattr(app.control.inspect(timeout=wait, connection=conn), command)()
    replies[command] = answer or {}


def _inspect(settings: Settings) -> tuple[dict[str, dict[str, Any]], bool, str | None]:
    """Each command's replies by worker name, whether the broker was reached, and what
    went wrong in words (None: nothing)."""
    timeout = settings.worker_inspect_timeout_s
    label = maybe_sanitize_url(settings.broker_url)
    try:
        _check_broker(timeout)
    except Exception as exc:  # any failure to connect reads the same on the page
        return {}, False, f"The broker ({label}) cannot be reached: {_sentence(exc)}."
    wait = inspect_wait_s(settings)
    replies: dict[str, Any] = {}
    failures: dict[str, BaseException] = {}

    def run(command: str) -> None:
        try:
            _ask(command, wait, timeout, replies)
        except Exception as exc:
            failures[command] = exc

    if settings.broker_url.startswith("filesystem://"):
        # The filesystem transport rewrites its exchange table file in place when a reply
        # queue binds; two binds at once can leave it corrupt for good. One question at a
        # time there (the embedded single-machine setup: a slower page, a sound broker).
        def run_all() -> None:
            for command in COMMANDS:
                run(command)

        threads = [threading.Thread(target=run_all, name="inspect", daemon=True)]
        rounds = len(COMMANDS)
    else:
        threads = [
            threading.Thread(target=run, args=(c,), name=f"inspect-{c}", daemon=True)
            for c in COMMANDS
        ]
        rounds = 1
    for thread in threads:
        thread.start()
    # A broker that goes away halfway can leave kombu retrying: the page does not wait.
    deadline = time.monotonic() + rounds * (wait + timeout) + 1.0
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(thread.is_alive() for thread in threads):
        # The broker was reached just above; a question still unanswered now means a slow
        # broker or a busy machine, which is what the page should say, not "unreachable".
        late = (
            f"No worker answered within {rounds * (wait + timeout):.0f} s: the broker or this machine "
            "is slow to answer, or it went away meanwhile."
        )
        return dict(replies), True, late
    if failures and not replies:
        first = next(iter(failures.values()))
        return {}, False, f"The broker ({label}) cannot be asked: {_sentence(first)}."
    if not any(replies.get(c) for c in COMMANDS):
        return (
            replies,
            True,
            (
                f"No worker answered within {wait:.1f} s: none is running, or none can reach "
                "the broker."
            ),
        )
    return replies, True, None


def _task(info: dict[str, Any], now: float) -> ActiveTask:
    start = info.get("time_start")
    args = ", ".join(
        [repr(a) for a in info.get("args") or []]
        + [f"{k}={v!r}" for k, v in (info.get("kwargs") or {}).items()]
    )
    return ActiveTask(
        id=str(info.get("id") or ""),
        name=str(info.get("name") or info.get("type") or "?"),
        args=args if len(args) <= ARGS_SHOWN else args[: ARGS_SHOWN - 1] + "…",
        started_at=dt.datetime.fromtimestamp(start, dt.UTC) if start else None,
        running_s=max(0.0, now - start) if start else None,
        pid=info.get("worker_pid"),
    )


def _workers(replies: dict[str, dict[str, Any]]) -> list[WorkerInfo]:
    now = time.time()
    names = sorted(set().union(*(replies.get(c) or {} for c in COMMANDS)))
    workers = []
    for name in names:
        stats = (replies.get("stats") or {}).get(name) or {}
        pool = stats.get("pool") or {}
        implementation = pool.get("implementation")
        workers.append(
            WorkerInfo(
                name=name,
                answered_ping=name in (replies.get("ping") or {}),
                queues=[
                    q.get("name", "?") for q in (replies.get("active_queues") or {}).get(name) or []
                ],
                pool=implementation.rsplit(".", 1)[-1].split(":")[0] if implementation else None,
                concurrency=pool.get("max-concurrency"),
                processes=list(pool.get("processes") or []),
                pid=stats.get("pid"),
                uptime_s=stats.get("uptime"),
                active=[_task(t, now) for t in (replies.get("active") or {}).get(name) or []],
            )
        )
    return workers


# --- the queues -------------------------------------------------------------------------


def _redis_lengths(settings: Settings, names: list[str]) -> tuple[dict[str, int], int]:
    import redis  # noqa: PLC0415 - the Redis transport's client, only with a Redis broker

    timeout = settings.worker_inspect_timeout_s
    prefix = (broker.client().conf.broker_transport_options or {}).get("global_keyprefix", "")
    client = redis.Redis.from_url(
        settings.broker_url, socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                for step in REDIS_PRIORITY_STEPS:
                    key = name if step == 0 else f"{name}{REDIS_PRIORITY_SEP}{step}"
                    pipe.llen(prefix + key)
            pipe.hlen(prefix + REDIS_UNACKED)
            counts = pipe.execute()
    finally:
        client.close()
    steps = len(REDIS_PRIORITY_STEPS)
    lengths = {name: sum(counts[i * steps : (i + 1) * steps]) for i, name in enumerate(names)}
    return lengths, counts[-1]


def _filesystem_folder() -> Path | None:
    options = broker.client().conf.broker_transport_options or {}
    folder = options.get("data_folder_in")
    return Path(folder) if folder else None


def _filesystem_lengths(names: list[str]) -> dict[str, int]:
    """Message files per queue (kombu names them ``TIME_UUID.QUEUE.msg``); expired
    control messages are swept on the way (see the module docstring)."""
    folder = _filesystem_folder()
    lengths = dict.fromkeys(names, 0)
    if folder is None or not folder.is_dir():
        return lengths
    wanted = {f"{name}.msg": name for name in names}
    stale = time.time() - CONTROL_MESSAGE_MAX_AGE_S
    for entry in os.scandir(folder):
        queue_part = entry.name.partition(".")[2]
        if queue_part in wanted:
            lengths[wanted[queue_part]] += 1
        elif queue_part.endswith(".pidbox.msg"):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < stale:
                    os.unlink(entry.path)
            except OSError:  # taken meanwhile
                pass
    return lengths


def _declared_queues() -> set[str]:
    queues = {route["queue"] for route in broker.TASK_ROUTES.values()}
    default = broker.client().conf.task_default_queue
    return queues | ({default} if default else set())


def _queues(
    settings: Settings, workers: list[WorkerInfo], reachable: bool
) -> tuple[list[QueueInfo], int | None, str | None]:
    names = sorted(_declared_queues().union(*(w.queues for w in workers)))
    consumers = {n: [w.name for w in workers if n in w.queues] for n in names}
    lengths: dict[str, int] = {}
    unacked: int | None = None
    problem = None
    transport = _transport(settings.broker_url)
    try:
        if transport in ("redis", "rediss") and reachable:
            lengths, unacked = _redis_lengths(settings, names)
        elif transport == "filesystem":
            lengths = _filesystem_lengths(names)
    except Exception as exc:  # the page shows the rest
        problem = f"The queues' lengths could not be read: {_sentence(exc)}."
    queues = [QueueInfo(name=n, length=lengths.get(n), consumers=consumers[n]) for n in names]
    return queues, unacked, problem


# --- the stage runs ---------------------------------------------------------------------


def _running(session: Session, settings: Settings, workers: list[WorkerInfo]) -> list[RunningStage]:
    now = utcnow()
    lease = dt.timedelta(seconds=settings.stage_lease_s)
    by_process: dict[tuple[str, int], WorkerInfo] = {}
    for worker in workers:
        host = worker.name.split("@", 1)[-1]
        for pid in [*worker.processes, *([worker.pid] if worker.pid else [])]:
            by_process[(host, pid)] = worker
    rows = session.execute(
        select(StageRun, Video.title)
        .join(Video, Video.id == StageRun.video_id)
        .where(StageRun.status == StageStatus.running)
        .order_by(StageRun.started_at, StageRun.id)
    ).all()
    running = []
    for run, title in rows:
        expires = _utc(run.lease_expires_at)
        heartbeat = expires - lease if expires else None
        worker = None
        if run.worker and ":" in run.worker:
            host, _, pid = run.worker.rpartition(":")
            worker = by_process.get((host, int(pid))) if pid.isdigit() else None
        if worker is not None and heartbeat is not None:
            last = worker.last_heartbeat_at
            worker.last_heartbeat_at = heartbeat if last is None else max(last, heartbeat)
        running.append(
            RunningStage(
                video_id=run.video_id,
                video_title=title,
                stage=run.stage,
                holder=run.worker,
                worker=worker.name if worker else None,
                attempts=run.attempts,
                progress=run.progress,
                started_at=_utc(run.started_at),
                lease_expires_at=expires,
                last_heartbeat_at=heartbeat,
                lease_expired=expires is None or expires < now,
            )
        )
    return running


def workers_report(session: Session) -> WorkersReport:
    settings = get_settings()
    replies, reachable, problem = _inspect(settings)
    workers = _workers(replies)
    queues, unacked, queue_problem = _queues(settings, workers, reachable)
    return WorkersReport(
        checked_at=utcnow(),
        broker=maybe_sanitize_url(settings.broker_url),
        transport=_transport(settings.broker_url),
        reachable=reachable,
        problem=" ".join(p for p in (problem, queue_problem) if p) or None,
        workers=workers,
        queues=queues,
        unacknowledged=unacked,
        running=_running(session, settings, workers),
    )
