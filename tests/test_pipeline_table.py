"""The pipeline table drives everything: tasks, routes, the order, retries, the stores."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from app import broker, pipeline
from app.models import StageRun, Video
from app.pipeline import PIPELINE, RetryPolicy, Stage
from app.services.ingest import queue_file, queue_upload, requeue_video
from tests.conftest import DEMO_VIDEO
from tests.support import media
from workers import tasks
from workers.celery_app import celery_app
from workers.runner import load_core
from workers.stage_runner import Outcome, run_all_inline, run_stage, run_with_retries


def test_every_stage_has_its_task_route_and_core() -> None:
    for stage in PIPELINE:
        task = celery_app.tasks[stage.task_name]
        assert tasks.STAGE_TASKS[stage.name].name == task.name
        assert task.queue == stage.queue == broker.TASK_ROUTES[stage.task_name]["queue"]
        assert (task.soft_time_limit, task.time_limit) == (
            stage.soft_time_limit_s,
            stage.time_limit_s,
        )
        assert task.max_retries == stage.retry.max_attempts - 1
        assert task.acks_late
        assert callable(load_core(stage))
    assert [s.name for s in PIPELINE] == list(pipeline.STAGE_NAMES)


def test_each_stage_reads_what_an_earlier_stage_wrote() -> None:
    available = {"source"}  # what a queued video starts with
    for stage in PIPELINE:
        assert set(stage.reads) <= available, stage.name
        available |= set(stage.writes)


def test_redis_visibility_timeout_outlasts_every_stage() -> None:
    from app.settings import Settings

    config = broker.celery_config(Settings(broker_url="redis://127.0.0.1:6379/15"))
    for timeout in (
        config["broker_transport_options"]["visibility_timeout"],
        config["result_backend_transport_options"]["visibility_timeout"],
        config["visibility_timeout"],
    ):
        assert timeout > max(stage.time_limit_s for stage in PIPELINE)


def test_retry_policy_matches_transient_faults_only() -> None:
    policy = RetryPolicy(backoff_s=10, backoff_max_s=25)
    assert policy.covers(ConnectionResetError("reset"))  # a ConnectionError
    assert policy.covers(TimeoutError())
    assert not policy.covers(ValueError("bad input"))
    assert [policy.delay_s(n) for n in (1, 2, 3)] == [10, 20, 25]


def _test_stage(core: str, attempts: int) -> Stage:
    # A real entry of the table with a test core, so the bookkeeping around it is real.
    return dataclasses.replace(
        pipeline.stage("frames"),
        core=f"tests.support.cores:{core}",
        reads=(),
        writes=(),
        retry=RetryPolicy(max_attempts=attempts, backoff_s=0.0),
    )


def _queued_demo(session) -> int:
    return queue_file(session=session, path=DEMO_VIDEO, user=None, trusted=True, enqueue=False).id


def _run_row(session, video_id: int, name: str) -> StageRun:
    session.expire_all()
    return session.scalar(
        select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == name)
    )


def test_a_transient_fault_is_left_for_a_retry_then_runs(settings, session) -> None:
    video_id = _queued_demo(session)
    stage = _test_stage("flaky_then_done", attempts=3)
    with pytest.raises(ConnectionResetError):
        run_stage(video_id, stage, may_retry=True)
    row = _run_row(session, video_id, "frames")
    assert row.status == "queued" and row.error.startswith("will retry: ConnectionResetError")
    assert row.lease_expires_at is None
    assert run_stage(video_id, stage, may_retry=True) == Outcome.done
    row = _run_row(session, video_id, "frames")
    assert (row.status, row.attempts, row.stats) == ("done", 2, {"calls": 2})


def test_inline_runs_retry_by_the_policy_and_give_up_with_a_reason(settings, session) -> None:
    video_id = _queued_demo(session)
    assert run_with_retries(video_id, _test_stage("always_flaky", attempts=2)) == Outcome.failed
    row = _run_row(session, video_id, "frames")
    assert row.attempts == 2
    assert row.error.startswith("internal error in frames: ConnectionResetError")
    assert (settings.var_dir / "flaky-calls").read_text() == "2"
    video = session.get(Video, video_id)
    assert video.status == "failed"
    later = _run_row(session, video_id, "text")
    assert later.status == "skipped" and later.error == "not run: frames failed"


def test_bad_input_is_never_retried(settings, session) -> None:
    video_id = _queued_demo(session)
    assert run_with_retries(video_id, _test_stage("bad_input", attempts=3)) == Outcome.failed
    assert (settings.var_dir / "flaky-calls").read_text() == "1"
    assert _run_row(session, video_id, "frames").error == "not a readable video file"


def _broker_messages(settings) -> list[str]:
    names = []
    for path in sorted((settings.broker_dir / "out").glob("*.msg")):
        names.append(json.loads(path.read_text())["headers"]["task"])
    return names


def test_a_finished_stage_task_enqueues_the_next_stage_of_the_table(settings, session) -> None:
    video_id = _queued_demo(session)
    assert tasks.STAGE_TASKS["fetch"](video_id) == Outcome.done
    assert _broker_messages(settings) == [pipeline.next_stage("fetch").task_name]
    session.expire_all()
    video = session.get(Video, video_id)
    assert video.sha256 and video.has_audio and (settings.media_root / video.media_path).is_file()


def test_a_failed_upload_can_be_requeued_and_finds_its_source(
    settings, session, tmp_path: Path
) -> None:
    corrupt = media.corrupt_video(tmp_path)
    with corrupt.open("rb") as stream:
        video = queue_upload(session=session, filename="lecture.mp4", stream=stream, user=None)
    assert run_all_inline(video.id) == "failed"
    requeue_video(session=session, video=session.get(Video, video.id), user=None)
    assert run_all_inline(video.id) == "failed"
    session.expire_all()
    error = session.get(Video, video.id).error
    assert error.startswith("fetch: not a readable video file"), error


# Settings that change how fast or where a stage runs, how it reaches a service, or
# whether it takes an input at all (the size limits), but not what it produces from an
# input it takes: they stay out of the pipeline version.
NOT_OUTPUT = {"asr_device", "asr_compute_type", "asr_batch_size", "llm_api_key", "llm_timeout_s",
              "var_dir", "histology_device", "max_video_duration_s", "max_video_frames",
              "max_video_pixels"}  # fmt: skip


def _perturbed(value: object) -> object | None:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int | float):
        return value + 1
    if isinstance(value, str):
        return value + "-other"
    if isinstance(value, Path):
        return value / "other"
    return None


@pytest.mark.parametrize(
    ("name", "options_path"),
    [
        ("asr", "workers.stages.asr:AsrOptions"),
        ("frames", "workers.stages.frames:FramesOptions"),
        ("text", "workers.stages.text:TextOptions"),
        ("align", "workers.stages.align:AlignOptions"),
    ],
)
def test_the_version_covers_every_setting_that_shapes_a_stage(name: str, options_path: str) -> None:
    import importlib

    from app.settings import Settings

    module, _, cls_name = options_path.partition(":")
    options_cls = getattr(importlib.import_module(module), cls_name)
    base = Settings()
    declared = {key.removeprefix("resolved_") for key in pipeline.stage(name).settings}
    before = repr(options_cls.from_settings(base))
    for field, value in base.model_dump().items():
        other = _perturbed(value)
        if other is None or field in NOT_OUTPUT:
            continue
        changed = repr(options_cls.from_settings(base.model_copy(update={field: other})))
        if changed != before:
            assert field in declared, f"{name} reads {field}: add it to its settings"
