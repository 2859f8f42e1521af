"""The ``quilt`` command. Every subcommand is a ``main(argv)`` so tests call what users run.

quilt db upgrade                      migrate the database to the latest schema
quilt user add NAME --role ROLE       create an account (password prompted or generated)
quilt ingest SOURCE [--kind K]        queue a file, URL, YouTube video, channel or playlist
quilt worker [-Q cpu,gpu]             run a Celery worker
quilt serve [--port N]                run the web app
quilt pipeline run VIDEO --out DIR    run the pipeline on one video, no database or broker
quilt release create|verify|list      freeze approved pairs into a release; check one
quilt train RELEASE --model M --epochs N   fine-tune a CLIP model on a release (open_clip)
quilt evaluate CHECKPOINT --model M --release V|--dataset DIR   CLIP_benchmark on a checkpoint
quilt gc [--dry-run]                  delete sources past retention and orphan media folders
quilt demo                            everything at once on the embedded default (make run)
"""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
from pathlib import Path

from app.settings import get_settings


def _db(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quilt db")
    parser.add_argument("action", choices=["upgrade"])
    parser.parse_args(argv)
    from app.migrate import upgrade

    upgrade()
    print(f"database at head: {_redact(get_settings().database_url)}")
    return 0


def _user(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quilt user")
    parser.add_argument(
        "action",
        choices=["add", "password", "unlock"],
        help="add: a new account; password: set a new one (ends every session of the "
        "user and lifts a lockout); unlock: lift a lockout now",
    )
    parser.add_argument("username")
    parser.add_argument("--role", choices=["admin", "reviewer"], default="reviewer")
    parser.add_argument(
        "--password-env",
        default="QUILT_NEW_PASSWORD",
        help="environment variable holding the password (default QUILT_NEW_PASSWORD); "
        "when unset, the password is asked for on a terminal or generated",
    )
    args = parser.parse_args(argv)
    from sqlalchemy import select

    from app.db import session_scope
    from app.models import User
    from app.services import users

    password, generated = "", False
    if args.action != "unlock":
        password = os.environ.get(args.password_env, "")
        if not password:
            if sys.stdin.isatty():
                password = getpass.getpass(f"password for {args.username}: ")
            else:
                from app.passwords import generate_password

                password, generated = generate_password(), True
    try:
        with session_scope() as session:
            if args.action == "add":
                users.create_user(
                    session=session, username=args.username, password=password, role=args.role
                )
                done = f"created {args.role} {args.username}"
            else:
                user = session.scalar(select(User).where(User.username == args.username))
                if user is None:
                    raise users.UserError(f"no user {args.username!r}")
                if args.action == "password":
                    users.set_password(session=session, user=user, password=password)
                    done = f"new password for {args.username}; their sessions have ended"
                else:
                    users.unlock(user=user)
                    done = f"unlocked {args.username}"
    except users.UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(done + (f" with password {password}" if generated else ""))
    return 0


def _ingest(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quilt ingest")
    parser.add_argument("source", help="a local video file, an http(s) URL, a YouTube URL")
    parser.add_argument(
        "--kind",
        choices=["auto", "video", "channel"],
        default="auto",
        help="channel: expand the URL into its videos (auto detects YouTube)",
    )
    parser.add_argument(
        "--inline",
        action="store_true",
        help="run all stages here and now instead of queueing (files and single videos only)",
    )
    args = parser.parse_args(argv)
    from app.db import session_scope
    from app.services.ingest import IngestError, queue_file, queue_url

    is_url = args.source.startswith(("http://", "https://"))
    try:
        with session_scope() as session:
            if is_url:
                item = queue_url(
                    session=session,
                    url=args.source,
                    user=None,
                    kind=args.kind,
                    enqueue=not args.inline,
                )
            else:
                item = queue_file(
                    session=session,
                    path=Path(args.source),
                    user=None,
                    trusted=True,
                    enqueue=not args.inline,
                )
            item_id, kind = item.id, type(item).__name__.lower()
    except IngestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.inline:
        if kind != "video":
            print("error: --inline takes a single video", file=sys.stderr)
            return 1
        from workers.stage_runner import run_all_inline

        status = run_all_inline(item_id)
        print(f"video {item_id}: {status}")
        return 0 if status == "done" else 2
    print(f"queued {kind} {item_id}")
    return 0


def _worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quilt worker")
    parser.add_argument("-Q", "--queues", default="cpu,gpu")
    parser.add_argument("-c", "--concurrency", type=int, default=0)
    parser.add_argument("--loglevel", default="INFO")
    parser.add_argument(
        "--beat",
        action="store_true",
        help="also run the scheduler of the reconciler (exactly one per deployment)",
    )
    args = parser.parse_args(argv)
    from app.settings import get_settings
    from workers.celery_app import celery_app

    worker_argv = [
        "worker",
        "-Q",
        args.queues,
        "--loglevel",
        args.loglevel,
        "--without-gossip",
        "--without-mingle",
        "-n",
        f"quilt-{args.queues}@%h",
    ]
    if args.concurrency:
        worker_argv += ["--concurrency", str(args.concurrency)]
    if args.beat:
        schedule = get_settings().var_dir / "celerybeat-schedule"
        schedule.parent.mkdir(parents=True, exist_ok=True)
        worker_argv += ["--beat", "--schedule", str(schedule)]
    celery_app.worker_main(worker_argv)
    return 0


def _serve(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="quilt serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(
        "app.web.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        proxy_headers=True,
        log_level="info",
    )
    return 0


def _pipeline(argv: list[str]) -> int:
    if not argv or argv[0] != "run":
        print("usage: quilt pipeline run VIDEO --out DIR", file=sys.stderr)
        return 2
    from workers.oneshot import main as pipeline_main

    return pipeline_main(argv[1:])


def _release(argv: list[str]) -> int:
    from app.release_cli import main as release_main

    return release_main(argv)


def _size(n: int) -> str:
    """Bytes for people: 999 bytes, 1.0 KB, 3.7 MB (powers of 1000)."""
    if n < 1000:
        return f"{n} bytes"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1000
        if round(value, 1) < 1000 or unit == "TB":
            break
    return f"{value:.1f} {unit}"


def _gc(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="quilt gc",
        description="Delete the source media of done or skipped videos that finished more "
        "than QUILT_DELETE_SOURCE_AFTER_S ago (frames, text and releases stay), and media "
        "folders whose video no longer exists. Only inside the media root; links are left "
        "alone.",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list what would be deleted, with sizes"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    from app.db import session_scope
    from app.services.storage import as_dict, collect_garbage

    with session_scope() as session:
        report = collect_garbage(session, dry_run=args.dry_run)
    if args.json:
        import json

        print(json.dumps(as_dict(report), indent=2))
        return 0
    if report.retention_s is None:
        print("sources are kept: QUILT_DELETE_SOURCE_AFTER_S is not set")
    else:
        print(
            f"sources of done or skipped videos are deleted {report.retention_s} s after they finish"
        )
    verb = "would delete" if report.dry_run else "deleted"
    for item in report.items:
        shared = "" if item.freed_bytes == item.bytes else " (another link keeps the data)"
        print(
            f"{verb} {item.kind} of video {item.video_id}: {item.path} {item.bytes} bytes{shared}"
        )
    for skip in report.skipped:
        print(f"left alone {skip.path}: {skip.reason}")
    total = f"{len(report.items)} items, {report.bytes} bytes ({_size(report.bytes)})"
    freed = _size(report.freed_bytes)
    print(f"{total}; " + (f"would free {freed}" if report.dry_run else f"freed {freed}"))
    return 0


def _train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="quilt train",
        description="Fine-tune a CLIP model on a release with open_clip's own trainer "
        "(python -m open_clip_train.main), as a task on the gpu queue; the run's progress, "
        "loss curve, log and checkpoint are on /admin/training. Also: --list, --cancel ID.",
    )
    parser.add_argument("release", nargs="?", help="release version (or id)")
    parser.add_argument(
        "--model", help="an open_clip model name, or local-dir:FOLDER (open_clip_config.json)"
    )
    parser.add_argument("--pretrained", help="weights file (or open_clip tag) to start from")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-6)
    parser.add_argument("--wd", type=float, default=0.1)
    parser.add_argument("--warmup", type=int, help="warmup steps (default: a tenth of all)")
    parser.add_argument("--workers", type=int, default=2, help="dataloader workers (<= shards)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--inline", action="store_true", help="train here and now instead of queueing"
    )
    parser.add_argument("--list", action="store_true", help="list the training runs")
    parser.add_argument("--cancel", type=int, metavar="ID", help="cancel a queued or running run")
    args = parser.parse_args(argv)
    from app.db import session_scope
    from app.models import TrainingRun
    from app.services import training

    try:
        with session_scope() as session:
            if args.list:
                for run in training.list_runs(session=session):
                    step = run.progress.get("step", 0) if run.progress else 0
                    steps = run.progress.get("steps", "?") if run.progress else "?"
                    print(f"{run.id}\t{run.status}\t{run.model}\tstep {step}/{steps}")
                return 0
            if args.cancel is not None:
                run = session.get(TrainingRun, args.cancel)
                if run is None:
                    raise training.TrainingError(f"no training run {args.cancel}")
                training.cancel_run(session=session, run=run, user=None)
                print(f"cancelled training run {run.id}")
                return 0
            if not args.release or not args.model:
                parser.error("RELEASE and --model are required to start a run")
            config = training.TrainingConfig(
                epochs=args.epochs,
                batch_size=args.batch_size,
                lr=args.lr,
                wd=args.wd,
                warmup=args.warmup,
                workers=args.workers,
                seed=args.seed,
            )
            run = training.create_run(
                session=session,
                release=training.find_release(session, args.release),
                model=args.model,
                pretrained=args.pretrained,
                config=config,
                user=None,
                trusted=True,
                enqueue=not args.inline,
            )
            run_id = run.id
    except training.TrainingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.inline:
        print(f"queued training run {run_id}")
        return 0
    from workers.training import run_training

    status = run_training(run_id)
    with session_scope() as session:
        run = session.get(TrainingRun, run_id)
        print(f"training run {run_id}: {status}")
        if run.checkpoint_path:
            print(f"checkpoint {run.checkpoint_path} sha256 {run.checkpoint_sha256}")
        if run.error:
            print(run.error, file=sys.stderr)
    return 0 if status == "done" else 2


def _evaluate(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="quilt evaluate",
        description="Evaluate a checkpoint with CLIP_benchmark (zero-shot retrieval, zero-shot "
        "classification or a linear probe) on a release's CLIP_benchmark split or on an "
        "evaluation folder (CLIP_benchmark's WebDataset layout, or an ImageFolder: a folder "
        "per class), as a task on the gpu queue; results on /admin/evaluations. Also: --list.",
    )
    parser.add_argument("checkpoint", nargs="?", help="the checkpoint file")
    parser.add_argument(
        "--model", help="an open_clip model name, or local-dir:FOLDER (open_clip_config.json)"
    )
    parser.add_argument(
        "--run", type=int, metavar="ID", help="a training run: its checkpoint and model"
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--release", help="evaluate on this release's CLIP_benchmark split")
    where.add_argument("--dataset", help="evaluate on this evaluation folder")
    parser.add_argument("--split", default="test", choices=["test", "val", "train"])
    parser.add_argument(
        "--task",
        default="zeroshot_retrieval",
        choices=["zeroshot_retrieval", "zeroshot_classification", "linear_probe"],
    )
    parser.add_argument(
        "--inline", action="store_true", help="evaluate here and now instead of queueing"
    )
    parser.add_argument("--list", action="store_true", help="list the evaluations")
    args = parser.parse_args(argv)
    import json

    from app.db import session_scope
    from app.models import Evaluation
    from app.services import evaluation

    if args.list:
        with session_scope() as session:
            for row in evaluation.list_evaluations(session=session):
                values = evaluation.metric_values(row)
                shown = ", ".join(f"{k} {v:.3f}" for k, v in values.items())
                print(f"{row.id}\t{row.status}\t{row.task}\t{row.checkpoint_path}\t"
                      f"{shown or row.error or ''}")  # fmt: skip
        return 0
    try:
        with session_scope() as session:
            sent = evaluation.queue_evaluation(
                session=session,
                user=None,
                task=args.task,
                checkpoint=args.checkpoint,
                model=args.model,
                training_run_id=args.run,
                release_version=args.release,
                dataset_path=args.dataset,
                split=args.split,
                enqueue=not args.inline,
            )
            evaluation_id, broker_down = sent.evaluation.id, sent.broker_down
    except evaluation.EvaluationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.inline:
        print(f"queued evaluation {evaluation_id}" + (f"; {broker_down}" if broker_down else ""))
        return 0
    from workers.evaluation import run_evaluation

    status = run_evaluation(evaluation_id)
    with session_scope() as session:
        row = session.get(Evaluation, evaluation_id)
        if status == "done":
            print(json.dumps(evaluation.metric_values(row), indent=2))
        else:
            print(f"error: {row.error}", file=sys.stderr)
    return 0 if status == "done" else 2


def _demo(argv: list[str]) -> int:
    from app.demo import main as demo_main

    return demo_main(argv)


COMMANDS = {
    "db": _db,
    "user": _user,
    "ingest": _ingest,
    "worker": _worker,
    "serve": _serve,
    "pipeline": _pipeline,
    "release": _release,
    "gc": _gc,
    "evaluate": _evaluate,
    "train": _train,
    "demo": _demo,
}


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Our own progress at INFO; libraries (alembic, nmslib, kombu) only when they warn.
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for name in ("app", "workers"):
        logging.getLogger(name).setLevel(logging.INFO)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        print(__doc__)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
