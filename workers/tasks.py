"""Celery tasks: thin wrappers that take ids, load rows, call a stage core, save, enqueue.

The chain for one video is fetch -> asr -> frames -> text -> align; asr runs on the
``gpu`` queue, the rest on ``cpu`` (routes in app/queue.py). Every task is idempotent:
running it again replaces what it wrote before.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import queue
from app.db import session_scope
from app.media import media_path, relative_to_media, video_dir
from app.models import Channel, StageName, Video
from app.services.stages import ensure_stage_rows
from app.settings import get_settings
from workers import persist
from workers.celery_app import celery_app
from workers.stage_runner import run_stage
from workers.types import StageError

_logger = logging.getLogger(__name__)

Progress = Callable[[float], None]

# Hours-long lectures take minutes per stage on a CPU; the limits only catch hangs.
_LONG = {"acks_late": True, "soft_time_limit": 3 * 3600, "time_limit": 3 * 3600 + 120}


def _media_file(video: Video) -> Path:
    if not video.media_path:
        raise StageError("no fetched media for this video")
    return media_path(video.media_path)


# --- expand --------------------------------------------------------------------------


@celery_app.task(
    name=queue.TASK_EXPAND_SOURCE,
    queue=queue.QUEUE_CPU,
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def expand_source(channel_id: int) -> int:
    """List a channel / playlist / feed and queue one video row per entry (new ones only)."""
    from workers.stages import fetch

    with session_scope() as s:
        channel = s.get(Channel, channel_id)
        if channel is None:
            return 0
        url = channel.url
    try:
        title, entries = fetch.expand(url, _fetch_options())
    except (StageError, SoftTimeLimitExceeded) as exc:
        with session_scope() as s:
            channel = s.get(Channel, channel_id)
            channel.status = "failed"
            channel.error = getattr(exc, "reason", "listing timed out")
        return 0
    new_ids: list[int] = []
    with session_scope() as s:
        channel = s.get(Channel, channel_id)
        channel.title = title or channel.title
        known = set(s.scalars(select(Video.source_url).where(Video.channel_id == channel_id)))
        for entry in entries:
            if entry.url in known:
                continue
            known.add(entry.url)
            kind = "youtube" if "youtube.com" in entry.url or "youtu.be" in entry.url else "http"
            video = Video(
                channel_id=channel_id,
                source_kind=kind,
                source_url=entry.url,
                title=entry.title or entry.url,
                duration_s=entry.duration_s,
            )
            s.add(video)
            s.flush()
            ensure_stage_rows(s, video)
            new_ids.append(video.id)
        channel.status, channel.error = "done", None
    for video_id in new_ids:
        queue.enqueue(queue.TASK_FETCH, video_id)
    return len(new_ids)


# --- fetch ---------------------------------------------------------------------------


def _fetch_options():  # noqa: ANN202
    from workers.stages.fetch import FetchOptions

    settings = get_settings()
    return FetchOptions(
        timeout_s=settings.fetch_timeout_s, max_bytes=settings.max_video_mb * 1024 * 1024
    )


def _fetch_body(session: Session, video: Video, progress: Progress) -> dict:
    from workers.stages import fetch

    folder = video_dir(video.id)
    if video.source_kind in ("http", "youtube"):
        path, title = fetch.download(video.source_url, folder, _fetch_options(), progress)
        if title and (not video.title or video.title == video.source_url):
            video.title = title
    else:
        src = Path(video.source_url)
        if not src.is_file():
            raise StageError("source file is missing")
        suffix = src.suffix.lower() if src.suffix.isascii() and len(src.suffix) <= 8 else ""
        path = folder / f"source{suffix or '.bin'}"
        if src.resolve() != path.resolve():
            if video.source_kind == "upload":
                shutil.move(src, path)  # uploads already live in the media store
                video.source_url = str(path)
            else:
                shutil.copyfile(src, path)
    video.media_path = relative_to_media(path)
    info = fetch.probe(path)
    video.sha256 = info.sha256
    video.duration_s = info.duration_s
    video.fps = info.fps
    video.width, video.height = info.width, info.height
    video.has_audio = info.has_audio
    return {
        "bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
    }


@celery_app.task(name=queue.TASK_FETCH, queue=queue.QUEUE_CPU, **_LONG)
def fetch_video(video_id: int) -> None:
    if run_stage(video_id, StageName.fetch, _fetch_body):
        queue.enqueue(queue.TASK_ASR, video_id)


# --- asr -----------------------------------------------------------------------------


def _asr_body(session: Session, video: Video, progress: Progress) -> dict:
    if video.has_audio is False:
        raise StageError("no audio track: nothing to transcribe", status="skipped")
    from workers.stages import asr

    transcript = asr.transcribe(
        _media_file(video), asr.AsrOptions.from_settings(get_settings()), progress=progress
    )
    persist.save_transcript(session, video, transcript)
    return {
        "segments": len(transcript.segments),
        "words": len(transcript.words),
        **transcript.stats,
    }


@celery_app.task(name=queue.TASK_ASR, queue=queue.QUEUE_GPU, **_LONG)
def asr_video(video_id: int) -> None:
    if run_stage(video_id, StageName.asr, _asr_body):
        queue.enqueue(queue.TASK_FRAMES, video_id)


# --- frames --------------------------------------------------------------------------


def _frames_body(session: Session, video: Video, progress: Progress) -> dict:
    from workers.stages import frames

    out_dir = persist.fresh_frames_dir(video)
    result = frames.extract(
        _media_file(video),
        out_dir,
        frames.FramesOptions.from_settings(get_settings()),
        progress=progress,
        detector=frames.detector_from_settings(get_settings()),
    )
    corpus = persist.save_frames(session, video, result)
    return {
        **result.stats,
        **corpus,
        "kept": len(result.frames),
        "pairable": sum(f.pairable for f in result.frames),
        "chunks": len(result.chunks),
    }


@celery_app.task(name=queue.TASK_FRAMES, queue=queue.QUEUE_CPU, **_LONG)
def frames_video(video_id: int) -> None:
    if run_stage(video_id, StageName.frames, _frames_body):
        queue.enqueue(queue.TASK_TEXT, video_id)


# --- text ----------------------------------------------------------------------------


def _text_body(session: Session, video: Video, progress: Progress) -> dict:
    from workers.stages import text

    transcript = persist.load_transcript(session, video)
    result = text.process(transcript, text.TextOptions.from_settings(get_settings()))
    persist.save_text(video, result)
    return {"sentences": len(result.sentences), **result.stats}


@celery_app.task(name=queue.TASK_TEXT, queue=queue.QUEUE_CPU, **_LONG)
def text_video(video_id: int) -> None:
    if run_stage(video_id, StageName.text, _text_body):
        queue.enqueue(queue.TASK_ALIGN, video_id)


# --- align ---------------------------------------------------------------------------


def _align_body(session: Session, video: Video, progress: Progress) -> dict:
    from workers.stages import align

    frames_result, frame_rows = persist.load_frames(session, video)
    text_result = persist.load_text(video)
    result = align.align(
        frames_result, text_result, align.AlignOptions.from_settings(get_settings())
    )
    counts = persist.upsert_pairs(session, video, result, frame_rows)
    return {"pairs": len(result.pairs), **counts, **result.stats}


@celery_app.task(name=queue.TASK_ALIGN, queue=queue.QUEUE_CPU, **_LONG)
def align_video(video_id: int) -> None:
    run_stage(video_id, StageName.align, _align_body)


def run_all_inline(video_id: int) -> str:
    """Run every stage of a video in this process, in order (the CLI's `--inline`)."""
    bodies = [
        (StageName.fetch, _fetch_body),
        (StageName.asr, _asr_body),
        (StageName.frames, _frames_body),
        (StageName.text, _text_body),
        (StageName.align, _align_body),
    ]
    for stage, body in bodies:
        if not run_stage(video_id, stage, body):
            break
    with session_scope() as s:
        return s.get(Video, video_id).status
