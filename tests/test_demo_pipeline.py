"""The demo lecture through every stage task against the real database, twice.

Checks the demo's ground truth (a pair for every histology segment, none elsewhere, at
most two images a segment) and that re-running stages replaces outputs without
duplicating pairs or touching reviewed ones.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.models import Frame, Pair, PairStatus, Review, StageRun, TranscriptSegment, Video
from app.pipeline import PIPELINE
from app.services.ingest import queue_file, requeue_video
from tests.conftest import DEMO_TRUTH, DEMO_VIDEO
from workers import tasks
from workers.stage_runner import run_all_inline

pytestmark = pytest.mark.slow


def _segment_of(t: float, segments: list[dict]) -> dict:
    return next(s for s in segments if s["start_s"] <= t < s["end_s"])


def test_demo_lecture_end_to_end_and_rerun(settings, session) -> None:
    truth = json.loads(DEMO_TRUTH.read_text())["segments"]
    video = queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True, enqueue=False)
    assert run_all_inline(video.id) == "done"
    session.expire_all()

    pairs = session.scalars(
        select(Pair).where(Pair.video_id == video.id).order_by(Pair.start_s)
    ).all()
    assert pairs, "no pairs from the demo lecture"
    per_segment: dict[int, int] = {}
    for pair in pairs:
        mid = (pair.start_s + pair.end_s) / 2
        segment = _segment_of(mid, truth)
        assert segment["is_histology"], f"pair at {mid:.1f}s lies in a {segment['kind']} segment"
        per_segment[segment["index"]] = per_segment.get(segment["index"], 0) + 1
        assert pair.status == PairStatus.pending
        assert pair.umls and pair.caption and pair.noisy_text
        assert (settings.media_root / pair.image_path).is_file()
    histology = [s["index"] for s in truth if s["is_histology"]]
    assert sorted(per_segment) == histology
    assert max(per_segment.values()) <= 2

    segments_before = session.scalars(select(TranscriptSegment.id)).all()
    assert segments_before

    # A reviewer approves one pair, then every stage after fetch runs again.
    approved = pairs[0]
    approved.status = PairStatus.approved
    session.add(Review(pair_id=approved.id, reviewer_id=_reviewer(session).id, decision="approve"))
    session.commit()
    ids_before = {p.id for p in pairs}

    # A redelivered message of a finished stage does nothing...
    assert tasks.STAGE_TASKS["asr"](video.id) == "already_done"
    # ...a re-run is asked for, and each task also sends the next stage to the broker.
    requeue_video(session=session, video=session.get(Video, video.id), user=None, from_stage="asr")
    for stage in PIPELINE[1:]:
        assert tasks.STAGE_TASKS[stage.name](video.id) == "done"
    session.expire_all()

    after = session.scalars(select(Pair).where(Pair.video_id == video.id)).all()
    assert len(after) == len(pairs)
    assert session.get(Pair, approved.id).status == PairStatus.approved
    # Untouched pending pairs keep their identity too (same key -> same row).
    assert {p.id for p in after} == ids_before
    assert session.scalars(select(Frame).where(Frame.video_id == video.id)).all()
    assert len(session.scalars(select(TranscriptSegment.id)).all()) == len(segments_before)
    runs = {
        r.stage: r for r in session.scalars(select(StageRun).where(StageRun.video_id == video.id))
    }
    assert runs["align"].attempts == 2 and runs["fetch"].attempts == 1


def _reviewer(session):
    from app.services.users import create_user

    return create_user(session=session, username="rev", password="reviewer-pass", role="reviewer")
