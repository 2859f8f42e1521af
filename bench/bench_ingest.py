"""Many videos at once through real workers: total time, per-stage times, nothing stuck.

N distinct short lectures (a clip of the demo lecture, each copy made a different file by
its container metadata, so none is skipped as a duplicate) are queued at once on Redis,
with Postgres as the database, and W worker processes (`quilt worker -c 1`, one of them
with the reconciler's beat) take them through every stage.

Reported, with a baseline measured in the same run: one clip through the same stages
in-process (`quilt pipeline run`), times N / W, is what W workers would take with no
queueing or bookkeeping cost; the ratio of the measured total to it is the overhead of
the distributed run (broker, database, leases, outbox). Per stage: p50/p95 of the stage's
own time and of its wait in the queue (sent -> started). "Stuck" counts videos not
finished and stage runs left queued or running at the end: it must be 0.

    python bench/bench_ingest.py [--videos 100] [--workers 2] [--clip-s 20] [--json F]
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from bench.report import emit  # noqa: E402

DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"
PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/14"


def make_clips(folder: Path, n: int, seconds: float) -> list[Path]:
    clips = []
    for i in range(n):
        path = folder / f"lecture-{i:03d}.mp4"
        subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-y", "-t", str(seconds), "-i", str(DEMO_VIDEO),
             "-c", "copy", "-metadata", f"comment=bench copy {i}", str(path)],
            check=True,
        )  # fmt: skip
        clips.append(path)
    return clips


def pct(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p95": 0.0}
    ordered = sorted(values)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)

    return {"p50": at(0.5), "p95": at(0.95)}


def baseline_s(clip: Path) -> float:
    """One clip through every stage in-process: the unit of work without any queueing."""
    from workers.oneshot import run_pipeline  # noqa: PLC0415

    with tempfile.TemporaryDirectory() as out:
        run_pipeline(clip, out)  # warm: model loads and KB index are one-time costs
        started = time.perf_counter()
        run_pipeline(clip, out)
        return time.perf_counter() - started


def run(n_videos: int, n_workers: int, clip_s: float) -> dict:
    import redis  # noqa: PLC0415
    from sqlalchemy import func, select  # noqa: PLC0415

    from app import broker  # noqa: PLC0415
    from app import db as app_db  # noqa: PLC0415
    from app.migrate import upgrade  # noqa: PLC0415
    from app.models import StageRun, StageStatus, Video  # noqa: PLC0415
    from app.pipeline import STAGE_NAMES  # noqa: PLC0415
    from app.services.ingest import queue_file  # noqa: PLC0415
    from app.settings import get_settings  # noqa: PLC0415
    from tests.support.databases import scratch_database  # noqa: PLC0415
    from tests.support.processes import app_env, running  # noqa: PLC0415

    with (
        tempfile.TemporaryDirectory() as tmp,
        scratch_database(PG_ADMIN_URL, "bench_ingest") as url,
    ):
        tmp_path = Path(tmp)
        clips = make_clips(tmp_path, n_videos, clip_s)
        base = baseline_s(clips[0])
        upgrade(url)
        redis.Redis.from_url(REDIS_URL).flushdb()
        env = app_env(url, tmp_path / "var", QUILT_BROKER_URL=REDIS_URL)
        import os  # noqa: PLC0415

        os.environ.update(
            {k: env[k] for k in ("QUILT_DATABASE_URL", "QUILT_VAR_DIR", "QUILT_BROKER_URL")}
        )
        get_settings.cache_clear()
        app_db.reset_engine()
        broker.client.cache_clear()

        worker_args = [sys.executable, "-m", "app.cli", "worker", "-Q", "cpu,gpu", "-c", "1"]
        with contextlib.ExitStack() as stack:
            for i in range(n_workers):
                extra = ["--beat"] if i == 0 else []
                stack.enter_context(
                    running([*worker_args, *extra], env=env, log=tmp_path / f"worker-{i}.log")
                )
            time.sleep(5)  # the workers connect and load nothing yet: models load per task
            started = time.perf_counter()
            with app_db.get_sessionmaker()() as s:
                ids = [queue_file(session=s, path=c, user=None, trusted=True).id for c in clips]
            final = ("done", "failed", "skipped", "cancelled")
            deadline = time.monotonic() + max(600.0, 20 * base * n_videos / n_workers)
            while time.monotonic() < deadline:
                with app_db.get_sessionmaker()() as s:
                    left = s.scalar(
                        select(func.count()).select_from(Video).where(Video.status.not_in(final))
                    )
                if left == 0:
                    break
                time.sleep(1)
            total = time.perf_counter() - started

        with app_db.get_sessionmaker()() as s:
            statuses = dict(
                s.execute(select(Video.status, func.count()).group_by(Video.status)).all()
            )
            runs = s.scalars(select(StageRun).where(StageRun.video_id.in_(ids))).all()
            stuck_runs = sum(r.status in (StageStatus.queued, StageStatus.running) for r in runs)
            per_stage = {}
            for name in STAGE_NAMES:
                mine = [r for r in runs if r.stage == name and r.status == StageStatus.done]
                waits = [
                    (r.started_at - r.enqueued_at).total_seconds()
                    for r in mine
                    if r.started_at and r.enqueued_at
                ]
                per_stage[name] = {
                    "run_s": pct([r.duration_s or 0.0 for r in mine]),
                    "wait_s": pct(waits),
                    "attempts_over_1": sum(r.attempts > 1 for r in mine),
                }
        app_db.reset_engine()
    ideal = base * n_videos / n_workers
    return {
        "videos": n_videos,
        "workers": n_workers,
        "clip_s": clip_s,
        "total_s": round(total, 1),
        "baseline_one_clip_in_process_s": round(base, 2),
        "ideal_s (baseline x videos / workers)": round(ideal, 1),
        "ratio_total_to_ideal": round(total / ideal, 2),
        "videos_per_minute": round(60 * n_videos / total, 1),
        "statuses": statuses,
        "stuck_videos": n_videos - sum(statuses.get(k, 0) for k in ("done", "failed", "skipped")),
        "stuck_stage_runs": stuck_runs,
        "per_stage": per_stage,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clip-s", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    report = run(args.videos, args.workers, args.clip_s)
    per_stage = report.pop("per_stage")
    lines = [f"{k:40s} {v}" for k, v in report.items()]
    lines.append(
        f"{'stage':8s} {'run p50':>8s} {'run p95':>8s} {'wait p50':>9s} {'wait p95':>9s} retried"
    )
    for name, row in per_stage.items():
        lines.append(
            f"{name:8s} {row['run_s']['p50']:8.2f} {row['run_s']['p95']:8.2f} "
            f"{row['wait_s']['p50']:9.2f} {row['wait_s']['p95']:9.2f} {row['attempts_over_1']:7d}"
        )
    emit({**report, "per_stage": per_stage}, args.json, text="\n".join(lines))
    return 0 if report["stuck_videos"] == 0 and report["stuck_stage_runs"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
