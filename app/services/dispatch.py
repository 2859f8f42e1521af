"""Stage messages are sent after commit, from the stage-run rows: the rows are the outbox.

Work becomes due in a transaction (an ingest, a requeue, the previous stage finishing):
that same transaction marks the stage run ``queued`` with no ``enqueued_at``. Only after
the commit is the message sent, and ``enqueued_at`` records it. So neither a broker outage
nor a crash between commit and send can leave a ``queued`` row that nothing will run: the
reconciler (app.services.reconcile) sends whatever is still unsent, and again, once, what
was sent so long ago that the message must have been lost (a broker restarted without
persistence). A second delivery is harmless: a worker claims a stage run atomically and
a delivery that finds it done, or running under a live lease, does nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import broker
from app.models import Channel, StageRun, StageStatus, utcnow
from app.pipeline import stage

_logger = logging.getLogger(__name__)


BROKER_DOWN = "the broker is down; the work will start when the broker is back"


@dataclasses.dataclass
class Dispatch:
    sent: int = 0
    # Why sending stopped, in words for an admin; None when everything due went out.
    broker_down: str | None = None


def mark_queued(run: StageRun) -> None:
    """Make the run due: sent after this transaction commits (``send_due``)."""
    run.status, run.error, run.progress = StageStatus.queued, None, 0.0
    run.enqueued_at = None
    run.lease_expires_at, run.worker = None, None


def send_due(
    *,
    session: Session,
    video_ids: Iterable[int] | None = None,
    resend_before: dt.datetime | None = None,
    limit: int = 500,
) -> Dispatch:
    """Send the messages of queued runs that have none yet (and, with ``resend_before``,
    of those whose message went out before that time and never started). Commits."""
    due = StageRun.enqueued_at.is_(None)
    if resend_before is not None:
        due = due | (StageRun.enqueued_at < resend_before)
    query = select(StageRun).where(StageRun.status == StageStatus.queued, due)
    if video_ids is not None:
        query = query.where(StageRun.video_id.in_(list(video_ids)))
    messages: list[tuple[StageRun | Channel, str, int]] = [
        (run, stage(run.stage).task_name, run.video_id)
        for run in session.scalars(query.order_by(StageRun.id).limit(limit))
    ]
    if video_ids is None:  # listings are sent by the reconciler, or by queue_channel
        messages += _due_listings(session, resend_before, limit)
    return _send(session, messages)


def send_listing(*, session: Session, channel: Channel) -> Dispatch:
    return _send(session, [(channel, broker.TASK_EXPAND_SOURCE, channel.id)])


def waiting_for_broker(*, session: Session, video_id: int) -> bool:
    """True while a queued stage of the video has not reached the broker."""
    return (
        session.scalar(
            select(StageRun.id).where(
                StageRun.video_id == video_id,
                StageRun.status == StageStatus.queued,
                StageRun.enqueued_at.is_(None),
            )
        )
        is not None
    )


def _due_listings(
    session: Session, resend_before: dt.datetime | None, limit: int
) -> list[tuple[StageRun | Channel, str, int]]:
    due = Channel.enqueued_at.is_(None)
    if resend_before is not None:
        due = due | (Channel.enqueued_at < resend_before)
    channels = session.scalars(
        select(Channel).where(Channel.status == "queued", due).order_by(Channel.id).limit(limit)
    )
    return [(channel, broker.TASK_EXPAND_SOURCE, channel.id) for channel in channels]


def _send(session: Session, messages: list[tuple[StageRun | Channel, str, int]]) -> Dispatch:
    outcome = Dispatch()
    for row, task_name, arg in messages:
        try:
            broker.enqueue(task_name, arg)
        except Exception as exc:  # the broker is down or unreachable: the row stays due
            _logger.warning("broker unavailable, %s(%s) stays due: %r", task_name, arg, exc)
            outcome.broker_down = BROKER_DOWN
            break
        row.enqueued_at = utcnow()
        outcome.sent += 1
        session.commit()  # one row at a time: a send is never recorded before it happened
    return outcome
