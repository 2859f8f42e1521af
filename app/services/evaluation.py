"""Evaluation jobs: CLIP_benchmark on a checkpoint, queued here, run on the ``gpu`` queue.

An evaluation is one row (``Evaluation``): a checkpoint and its open_clip model (a built-in
name or ``local-dir:PATH``), what it is evaluated on (a release's CLIP_benchmark split, or
an evaluation folder: CLIP_benchmark's WebDataset layout or an ImageFolder) and one task
(zero-shot retrieval, zero-shot classification, linear probe). ``queue_evaluation`` checks
what it can without torch, writes the row, commits and only then sends the task
(workers/evaluation.py runs it); a row whose message could not be sent stays ``queued``
with no ``enqueued_at`` and ``send_again`` sends it. The worker fills ``metrics`` (flat:
metric name -> number, plus ``run``: the argv, device, sample count, classes) or ``error``.

A checkpoint that one training run wrote is linked to that run, so evaluations can be
compared by the release each checkpoint was trained on ("did v2's curation help?").

The web app may name checkpoints, model folders and evaluation folders only under
``training_root`` and ``evaluation_dirs``; the CLI may name any path (its user has the
shell). This module never imports torch: the web install has none.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import broker
from app.models import Evaluation, Release, TrainingRun, User, utcnow
from app.services import audit
from app.settings import get_settings

_logger = logging.getLogger(__name__)

TASKS = ("zeroshot_retrieval", "zeroshot_classification", "linear_probe")
SPLITS = ("test", "val", "train")
LOCAL_DIR = "local-dir:"
# Keys of CLIP_benchmark's result that describe the run rather than measure the model.
RUN_KEY = "run"
BROKER_DOWN = "the broker is down; send it again when the broker is back"


class EvaluationError(ValueError):
    """What is wrong with an evaluation request, in words for the person who made it."""


@dataclasses.dataclass
class Sent:
    evaluation: Evaluation
    # Why the task was not sent, in words for an admin; None when it went out.
    broker_down: str | None = None


# --- queueing --------------------------------------------------------------------------


def allowed_roots() -> list[Path]:
    """Where the web app may point an evaluation: the training runs' folder and
    ``evaluation_dirs``."""
    settings = get_settings()
    return [Path(settings.training_root), *(Path(p) for p in settings.evaluation_dirs)]


def _inside_allowed(path: Path) -> bool:
    resolved = path.resolve()
    return any(
        resolved == root.resolve() or root.resolve() in resolved.parents for root in allowed_roots()
    )


def _check_path(path: Path, *, what: str, web: bool, is_dir: bool) -> Path:
    if web and not _inside_allowed(path):
        roots = ", ".join(str(r) for r in allowed_roots())
        raise EvaluationError(f"{what} must be under one of: {roots}")
    if is_dir and not path.is_dir():
        raise EvaluationError(f"{what} not found: {path} is not a folder")
    if not is_dir and not path.is_file():
        raise EvaluationError(f"{what} not found: {path} is not a file")
    return path.resolve()


def _check_model(model: str, *, web: bool) -> str:
    model = model.strip()
    if not model:
        raise EvaluationError(
            "name the open_clip model (a name such as ViT-B-32, or local-dir:PATH)"
        )
    if model.startswith(LOCAL_DIR):
        folder = _check_path(
            Path(model[len(LOCAL_DIR) :]), what="the model folder", web=web, is_dir=True
        )
        if not (folder / "open_clip_config.json").is_file():
            raise EvaluationError(f"the model folder {folder} has no open_clip_config.json")
        return LOCAL_DIR + str(folder)
    if "/" in model or model.startswith("hf-hub:"):
        # Nothing is downloaded at run time: a model is a built-in config or a local folder.
        raise EvaluationError(f"unknown model {model!r}: give an open_clip name or local-dir:PATH")
    return model


def _training_run_of(session: Session, checkpoint: Path) -> TrainingRun | None:
    for run in session.scalars(select(TrainingRun).where(TrainingRun.checkpoint_path.is_not(None))):
        try:
            if Path(run.checkpoint_path).resolve() == checkpoint:
                return run
        except OSError:
            continue
    return None


def queue_evaluation(
    *,
    session: Session,
    user: User | None,
    task: str,
    checkpoint: str | None = None,
    model: str | None = None,
    training_run_id: int | None = None,
    release_version: str | None = None,
    dataset_path: str | None = None,
    split: str = "test",
    web: bool = False,
    enqueue: bool = True,
) -> Sent:
    """Check the request, write the row (status queued), commit, then send the task.

    The checkpoint and model come from ``training_run_id`` when they are not given. What
    is evaluated is a release (its ``clip_benchmark`` folder for retrieval,
    ``clip_benchmark_classification`` otherwise) or ``dataset_path``, exactly one.
    ``web``: paths must lie under ``allowed_roots()``."""
    if task not in TASKS:
        raise EvaluationError(f"unknown task {task!r}: one of {', '.join(TASKS)}")
    if split not in SPLITS:
        raise EvaluationError(f"unknown split {split!r}: one of {', '.join(SPLITS)}")
    run: TrainingRun | None = None
    if training_run_id is not None:
        run = session.get(TrainingRun, training_run_id)
        if run is None:
            raise EvaluationError(f"no training run {training_run_id}")
        if not checkpoint:
            if not run.checkpoint_path:
                raise EvaluationError(
                    f"training run {run.id} has no checkpoint yet (status {run.status})"
                )
            checkpoint = run.checkpoint_path
        model = model or run.model
    if not checkpoint or not checkpoint.strip():
        raise EvaluationError("name a checkpoint file (or a training run with one)")
    if not model:
        raise EvaluationError(
            "name the open_clip model (a name such as ViT-B-32, or local-dir:PATH)"
        )
    checkpoint_file = _check_path(
        Path(checkpoint.strip()), what="the checkpoint", web=web, is_dir=False
    )
    model_name = _check_model(model, web=web)
    if run is None:
        run = _training_run_of(session, checkpoint_file)

    release: Release | None = None
    folder: Path | None = None
    if bool(release_version) == bool(dataset_path and dataset_path.strip()):
        raise EvaluationError("evaluate on a release or on an evaluation folder (one of them)")
    if release_version:
        release = session.scalar(select(Release).where(Release.version == release_version))
        if release is None:
            raise EvaluationError(f"no release {release_version!r}")
        if release.status != "ready":
            raise EvaluationError(f"release {release.version!r} is {release.status}, not ready")
    else:
        folder = _check_path(
            Path(dataset_path.strip()), what="the evaluation folder", web=web, is_dir=True
        )

    evaluation = Evaluation(
        training_run_id=run.id if run else None,
        checkpoint_path=str(checkpoint_file),
        model=model_name,
        release_id=release.id if release else None,
        dataset_path=str(folder) if folder else None,
        split=split,
        task=task,
        status="queued",
        metrics={},
        created_by_id=user.id if user else None,
    )
    session.add(evaluation)
    session.flush()
    audit.record(
        session=session,
        user=user,
        action="evaluation.queue",
        target=f"evaluation:{evaluation.id}",
        details={"task": task, "checkpoint": str(checkpoint_file), "model": model_name},
    )
    session.commit()
    if not enqueue:
        return Sent(evaluation)
    return send(session=session, evaluation=evaluation)


def send(*, session: Session, evaluation: Evaluation) -> Sent:
    """Send the task of a queued evaluation; ``enqueued_at`` records that it went out."""
    try:
        broker.enqueue(broker.TASK_EVALUATE, evaluation.id)
    except Exception as exc:  # the broker is down or unreachable: the row stays unsent
        _logger.warning("broker unavailable, evaluation %s stays unsent: %r", evaluation.id, exc)
        return Sent(evaluation, broker_down=BROKER_DOWN)
    evaluation.enqueued_at = utcnow()
    session.commit()
    return Sent(evaluation)


def send_again(*, session: Session, evaluation: Evaluation, user: User | None) -> Sent:
    """Run a failed evaluation again, or send one whose message never went out."""
    unsent = evaluation.status == "queued" and evaluation.enqueued_at is None
    if evaluation.status != "failed" and not unsent:
        raise EvaluationError(
            f"evaluation {evaluation.id} is {evaluation.status}: only a failed or unsent one "
            "is sent again"
        )
    evaluation.status, evaluation.error, evaluation.metrics = "queued", None, {}
    evaluation.enqueued_at = evaluation.started_at = evaluation.finished_at = None
    audit.record(
        session=session,
        user=user,
        action="evaluation.requeue",
        target=f"evaluation:{evaluation.id}",
    )
    session.commit()
    return send(session=session, evaluation=evaluation)


# --- what the worker records --------------------------------------------------------------


def mark_running(*, session: Session, evaluation: Evaluation) -> None:
    evaluation.status, evaluation.error = "running", None
    evaluation.started_at, evaluation.finished_at = utcnow(), None
    session.commit()


def mark_done(*, session: Session, evaluation: Evaluation, metrics: dict[str, Any]) -> None:
    evaluation.status, evaluation.error = "done", None
    evaluation.metrics = metrics
    evaluation.finished_at = utcnow()
    session.commit()


def mark_failed(*, session: Session, evaluation: Evaluation, error: str) -> None:
    evaluation.status, evaluation.error = "failed", error
    evaluation.metrics = {}
    evaluation.finished_at = utcnow()
    session.commit()


def split_metrics(result: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
    """CLIP_benchmark's ``metrics`` as (finite numbers that measure the model, the rest).

    acc5 is NaN below five classes: a JSON column holds no NaN, so it goes to the rest as
    null. The linear probe's weight decay, epochs, seed, shots and normalisation describe
    the run."""
    about_the_run = {"weight_decay", "epochs", "seed", "fewshot_k", "normalized"}
    measured: dict[str, float] = {}
    rest: dict[str, Any] = {}
    for key, value in result.items():
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if key in about_the_run or not number or not math.isfinite(value):
            rest[key] = value if not number or math.isfinite(value) else None
        else:
            measured[key] = float(value)
    return measured, rest


# --- listing and comparison ----------------------------------------------------------------


def list_evaluations(*, session: Session, limit: int = 500) -> list[Evaluation]:
    return list(session.scalars(select(Evaluation).order_by(Evaluation.id.desc()).limit(limit)))


def metric_values(evaluation: Evaluation) -> dict[str, float]:
    """The numbers of an evaluation's metrics (not its ``run`` details)."""
    return {
        k: float(v)
        for k, v in (evaluation.metrics or {}).items()
        if k != RUN_KEY and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _metric_order(names: set[str]) -> list[str]:
    """Retrieval recalls by k (image then text), then accuracies, then the rest."""

    def key(name: str) -> tuple[int, int, str]:
        if "@" in name:
            head, _, k = name.partition("@")
            return (0, int(k) if k.isdigit() else 0, head)
        return (1, 0, name)

    return sorted(names, key=key)


@dataclasses.dataclass
class EvaluationRow:
    id: int
    checkpoint: str
    model: str
    trained_on: str | None  # the training run's release version
    training_run_id: int | None
    evaluated_on: str  # release version and split, or the folder
    task: str
    status: str
    finished_at: dt.datetime | None
    metrics: dict[str, float]


@dataclasses.dataclass
class ReleaseGroup:
    """The evaluations of checkpoints trained on one release, on one benchmark."""

    trained_on: str  # a release version, or "(no training run)"
    evaluations: int
    best: dict[str, float]  # metric -> best value among them
    mean: dict[str, float]


@dataclasses.dataclass
class Benchmark:
    """One thing evaluated (dataset, split, task): checkpoints and releases side by side."""

    evaluated_on: str
    task: str
    metric_names: list[str]
    rows: list[EvaluationRow]
    by_release: list[ReleaseGroup]


NO_TRAINING_RUN = "(no training run)"


def _evaluated_on(evaluation: Evaluation, versions: dict[int, str]) -> str:
    if evaluation.release_id is not None:
        return f"release {versions.get(evaluation.release_id, evaluation.release_id)} / {evaluation.split}"
    return f"{evaluation.dataset_path} / {evaluation.split}"


def compare(*, session: Session, evaluation_ids: list[int] | None = None) -> list[Benchmark]:
    """Done evaluations grouped by what they were evaluated on and the task: in each
    group, one row per evaluation (checkpoints side by side) and one per release the
    checkpoints were trained on (releases side by side: best and mean of each metric)."""
    query = select(Evaluation).where(Evaluation.status == "done").order_by(Evaluation.id)
    if evaluation_ids:
        query = query.where(Evaluation.id.in_(evaluation_ids))
    evaluations = list(session.scalars(query))
    versions = {r.id: r.version for r in session.scalars(select(Release))}
    runs = {
        r.id: r
        for r in session.scalars(
            select(TrainingRun).where(
                TrainingRun.id.in_({e.training_run_id for e in evaluations if e.training_run_id})
            )
        )
    }
    groups: dict[tuple[str, str], list[EvaluationRow]] = defaultdict(list)
    for evaluation in evaluations:
        run = runs.get(evaluation.training_run_id) if evaluation.training_run_id else None
        row = EvaluationRow(
            id=evaluation.id,
            checkpoint=evaluation.checkpoint_path,
            model=evaluation.model,
            trained_on=versions.get(run.release_id) if run else None,
            training_run_id=run.id if run else None,
            evaluated_on=_evaluated_on(evaluation, versions),
            task=evaluation.task,
            status=evaluation.status,
            finished_at=evaluation.finished_at,
            metrics=metric_values(evaluation),
        )
        groups[(row.evaluated_on, row.task)].append(row)
    benchmarks = []
    for (evaluated_on, task), rows in sorted(groups.items()):
        names = _metric_order({name for row in rows for name in row.metrics})
        by_release: dict[str, list[EvaluationRow]] = defaultdict(list)
        for row in rows:
            by_release[row.trained_on or NO_TRAINING_RUN].append(row)
        release_groups = []
        for trained_on, members in sorted(by_release.items()):
            best, mean = {}, {}
            for name in names:
                values = [m.metrics[name] for m in members if name in m.metrics]
                if values:
                    best[name] = max(values)
                    mean[name] = sum(values) / len(values)
            release_groups.append(ReleaseGroup(trained_on, len(members), best, mean))
        benchmarks.append(Benchmark(evaluated_on, task, names, rows, release_groups))
    return benchmarks
