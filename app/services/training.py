"""Training runs: fine-tunes of a CLIP model on a release, by open_clip's own trainer.

The job never copies open_clip's training loop: a run is the argv of
``python -m open_clip_train.main`` built from a release (``build_argv``), started by the
task on the ``gpu`` queue (workers/training.py) in a process group of its own. This module
is the part the web app and the CLI share, with no torch in it:

- ``release_data``: the release's WebDataset shards per split and their sample counts,
  from ``shards/sizes.json`` (``{"train-000000.tar": N}``) or, for a release written
  before that file existed, by counting each tar's samples;
- ``create_run`` / ``retry_run`` / ``cancel_run``: the rows, audited. A run is queued in
  its transaction and its message sent after commit (``send_due_runs``), the outbox
  pattern of app.services.dispatch; cancel is a status the running task reads within a
  second, and it kills the trainer's process group;
- ``parse_log_line``: progress and loss from the trainer's own log lines
  (``Train Epoch: E [n/N (p%)] ... Loss: x (avg)``, open_clip_train/train.py);
- ``reconcile_runs``: a running run whose lease expired (its worker died, and the trainer
  with it: the task starts it with a parent-death signal) is queued again, up to
  ``training_max_attempts``, then failed; queued runs whose message never went out, or
  went out long ago and never started, are sent again. The task's atomic claim makes a
  duplicate message harmless.

Every path a run writes is under ``settings.training_root`` (``runs/run-ID-aATTEMPT/``);
the row keeps absolute paths (output folder, checkpoint), and whatever serves them checks
them with ``resolve_inside`` against the root.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import math
import re
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app import broker
from app.media import UnsafePathError, resolve_inside
from app.models import Release, TrainingRun, User, utcnow
from app.services import audit
from app.services.releases import ReleaseError, release_dir
from app.settings import get_settings

_logger = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
FINISHED = ("done", "failed", "cancelled")
LOCAL_DIR = "local-dir:"
MODEL_CONFIG_NAME = "open_clip_config.json"
# The name open_clip's local-dir: loader looks for first among .bin weights.
MODEL_WEIGHTS_NAME = "open_clip_pytorch_model.bin"
LOG_NAME = "trainer.log"
MAX_CURVE_POINTS = 2000
CURVE_POINTS_PER_EPOCH = 200
_MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_SHARD_RE = re.compile(r"^(train|val|test)-(\d{6})\.tar$")
_IMAGE_EXTS = frozenset({"jpg", "jpeg", "png", "webp"})


class TrainingError(ValueError):
    """A request that cannot be trained (bad release, model, numbers); says why."""


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """What an admin chooses; the rest of the argv follows from the release and device."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 5e-6
    wd: float = 0.1
    warmup: int | None = None  # steps; None: a tenth of all steps
    workers: int = 2  # dataloader workers, at most one per train shard
    seed: int = 0

    def check(self) -> TrainingConfig:
        if not 1 <= self.epochs <= 1000:
            raise TrainingError("epochs must be between 1 and 1000")
        if not 2 <= self.batch_size <= 65536:
            raise TrainingError("batch size must be between 2 and 65536 (contrastive loss)")
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise TrainingError("learning rate must be in (0, 1]")
        if not (math.isfinite(self.wd) and 0 <= self.wd <= 10):
            raise TrainingError("weight decay must be in [0, 10]")
        if self.warmup is not None and not 0 <= self.warmup <= 10**7:
            raise TrainingError("warmup must be between 0 and 10,000,000 steps")
        if not 0 <= self.workers <= 64:
            raise TrainingError("workers must be between 0 and 64")
        if not 0 <= self.seed <= 2**31 - 1:
            raise TrainingError("seed must be a non-negative 32-bit integer")
        return self

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


# --- the release's data ------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SplitData:
    split: str
    shards: tuple[Path, ...]  # absolute, in order
    sizes: dict[str, int]  # shard file name -> samples

    @property
    def samples(self) -> int:
        return sum(self.sizes.values())

    @property
    def pattern(self) -> str:
        """What open_clip's --train-data / --val-data take: ``dir/train-{000000..000003}.tar``
        for consecutive shards, else the paths joined by ``::`` (its list separator)."""
        numbers = [int(_SHARD_RE.match(p.name).group(2)) for p in self.shards]
        if len(self.shards) == 1:
            return str(self.shards[0])
        if numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            folder = self.shards[0].parent
            return f"{folder}/{self.split}-{{{numbers[0]:06d}..{numbers[-1]:06d}}}.tar"
        return "::".join(str(p) for p in self.shards)


@dataclasses.dataclass(frozen=True)
class ReleaseData:
    folder: Path
    splits: dict[str, SplitData]
    sizes_from: str  # "sizes.json" or "counted" (a release without shards/sizes.json)


def count_tar_samples(path: Path) -> int:
    """Samples in a WebDataset tar: keys with a caption and an image (what open_clip keeps)."""
    kinds: dict[str, set[str]] = {}
    with tarfile.open(path, mode="r:") as tar:
        for member in tar:
            if not member.isfile() or "." not in member.name:
                continue
            key, ext = member.name.split(".", 1)
            kinds.setdefault(key, set()).add(ext.lower())
    return sum(1 for exts in kinds.values() if "txt" in exts and exts & _IMAGE_EXTS)


def release_data(release: Release) -> ReleaseData:
    """The release's shards per split with their sample counts. Raises TrainingError."""
    if release.status != "ready":
        raise TrainingError(f"release {release.version} is {release.status}, not ready")
    try:
        folder = release_dir(release)
    except (ReleaseError, UnsafePathError) as exc:
        raise TrainingError(str(exc)) from None
    shard_dir = folder / "shards"
    shards: dict[str, list[Path]] = {}
    for path in sorted(shard_dir.glob("*.tar")) if shard_dir.is_dir() else []:
        match = _SHARD_RE.match(path.name)
        if match:
            shards.setdefault(match.group(1), []).append(path)
    if not shards.get("train"):
        raise TrainingError(f"release {release.version} has no train shards in {shard_dir}")
    sizes_file = shard_dir / "sizes.json"
    if sizes_file.is_file():
        try:
            sizes = {str(k): int(v) for k, v in json.loads(sizes_file.read_text()).items()}
        except (ValueError, AttributeError, TypeError) as exc:
            raise TrainingError(f"{sizes_file} is not a JSON object of counts: {exc}") from None
        missing = [p.name for paths in shards.values() for p in paths if p.name not in sizes]
        if missing:
            raise TrainingError(f"{sizes_file} has no count for {', '.join(missing[:5])}")
        sizes_from = "sizes.json"
    else:
        # A release from before shards/sizes.json: count the samples (headers only).
        _logger.info("release %s has no shards/sizes.json: counting", release.version)
        sizes = {p.name: count_tar_samples(p) for paths in shards.values() for p in paths}
        sizes_from = "counted"
    splits = {
        split: SplitData(split, tuple(paths), {p.name: sizes[p.name] for p in paths})
        for split, paths in shards.items()
    }
    return ReleaseData(folder=folder, splits=splits, sizes_from=sizes_from)


# --- the argv ----------------------------------------------------------------------------


def run_name(run: TrainingRun) -> str:
    """open_clip's --name: a fresh one per attempt (the trainer refuses an existing one)."""
    return f"run-{run.id}-a{run.attempts}"


def training_root() -> Path:
    root = get_settings().training_root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def logs_dir() -> Path:
    return resolve_inside(training_root(), "runs")


def steps_per_epoch(samples: int, batch_size: int, workers: int) -> int:
    """As open_clip_train.data.get_wds_dataset rounds them (one process, no accumulation)."""
    batches = math.ceil(samples / batch_size)
    per_worker = math.ceil(batches / max(1, workers))
    return per_worker * max(1, workers)


def build_argv(
    *,
    data: ReleaseData,
    model: str,
    pretrained: str | None,
    config: TrainingConfig,
    device: str,
    name: str,
    logs: Path,
    python: str,
) -> list[str]:
    """The command line of open_clip's trainer for one attempt of a run."""
    train = data.splits["train"]
    if train.samples < config.batch_size:
        raise TrainingError(
            f"the train split has {train.samples} samples, fewer than one batch of "
            f"{config.batch_size}"
        )
    workers = min(config.workers, len(train.shards))
    steps = steps_per_epoch(train.samples, config.batch_size, workers)
    total = steps * config.epochs
    warmup = config.warmup if config.warmup is not None else max(1, total // 10)
    argv = [
        python,
        "-m",
        "open_clip_train.main",
        "--dataset-type",
        "webdataset",
        "--train-data",
        train.pattern,
        "--train-num-samples",
        str(train.samples),
    ]
    val = data.splits.get("val")
    if val is not None and val.samples > 0:
        argv += ["--val-data", val.pattern, "--val-num-samples", str(val.samples)]
    argv += ["--model", model]
    if pretrained:
        argv += ["--pretrained", pretrained]
    argv += [
        "--epochs",
        str(config.epochs),
        "--batch-size",
        str(config.batch_size),
        "--lr",
        repr(float(config.lr)),
        "--wd",
        repr(float(config.wd)),
        "--warmup",
        str(warmup),
        "--workers",
        str(workers),
        "--precision",
        "amp" if device.startswith("cuda") else "fp32",
        "--device",
        device,
        "--seed",
        str(config.seed),
        "--logs",
        str(logs),
        "--name",
        name,
        "--save-frequency",
        "1",
        "--log-every-n-steps",
        str(max(1, math.ceil(steps / CURVE_POINTS_PER_EPOCH))),
    ]
    return argv


# --- the trainer's log -------------------------------------------------------------------

_TRAIN_RE = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+) \((\d+)%\)\]")
_LOSS_RE = re.compile(r"(?:^|\s)Loss: ([-+0-9.eEnaif]+)")
_RATE_RE = re.compile(r"Batch \(t\): [0-9.]+, ([0-9.eE+]+)/s")
_EVAL_RE = re.compile(r"Eval Epoch: (\d+) (.*)$")
_METRIC_RE = re.compile(r"([A-Za-z][\w@]*): (-?[0-9.]+)")


@dataclasses.dataclass(frozen=True)
class TrainLine:
    epoch: int  # 0-based, as open_clip logs it
    samples: int  # seen in this epoch
    samples_per_epoch: int
    percent: int
    loss: float | None
    samples_per_s: float | None


@dataclasses.dataclass(frozen=True)
class EvalLine:
    epoch: int  # completed epochs
    metrics: dict[str, float]


def parse_log_line(line: str) -> TrainLine | EvalLine | None:
    match = _TRAIN_RE.search(line)
    if match:
        loss = _LOSS_RE.search(line[match.end() :])
        rate = _RATE_RE.search(line)
        try:
            loss_value = float(loss.group(1)) if loss else None
        except ValueError:
            loss_value = None
        return TrainLine(
            epoch=int(match.group(1)),
            samples=int(match.group(2)),
            samples_per_epoch=int(match.group(3)),
            percent=int(match.group(4)),
            loss=loss_value if loss_value is not None and math.isfinite(loss_value) else None,
            samples_per_s=float(rate.group(1)) if rate else None,
        )
    match = _EVAL_RE.search(line)
    if match and "[" not in match.group(2):  # the summary, not a progress line
        metrics = {k: float(v) for k, v in _METRIC_RE.findall(match.group(2))}
        return EvalLine(epoch=int(match.group(1)), metrics=metrics)
    return None


def apply_line(run: TrainingRun, parsed: TrainLine | EvalLine) -> None:
    """Fold one parsed log line into the run's progress and loss curve."""
    config = TrainingConfig.from_dict(run.config or {})
    progress = dict(run.progress or {})
    if isinstance(parsed, EvalLine):
        progress["val"] = parsed.metrics
        run.progress = progress
        return
    per_epoch = max(1, round(parsed.samples_per_epoch / config.batch_size))
    step_in_epoch = round(parsed.samples / config.batch_size)
    step = parsed.epoch * per_epoch + step_in_epoch
    progress.update(
        epoch=parsed.epoch + 1,
        epochs=config.epochs,
        step=step,
        steps=per_epoch * config.epochs,
        percent=parsed.percent,
    )
    if parsed.samples_per_s is not None:
        progress["samples_per_s"] = parsed.samples_per_s
    run.progress = progress
    if parsed.loss is not None:
        curve = [list(p) for p in (run.loss_curve or [])]
        curve.append([step, round(parsed.loss, 6)])
        if len(curve) > MAX_CURVE_POINTS:  # thin out, keeping the latest point
            curve = curve[-1::-2][::-1]
        run.loss_curve = curve


# --- rows --------------------------------------------------------------------------------


def _allowed_dirs() -> list[Path]:
    settings = get_settings()
    return [training_root(), *(Path(p).resolve() for p in settings.training_model_dirs)]


def _inside_allowed(path: Path) -> bool:
    resolved = path.resolve()
    return any(resolved == root or root in resolved.parents for root in _allowed_dirs())


def check_model(model: str, pretrained: str | None, *, trusted: bool) -> tuple[str, str | None]:
    """An open_clip model name or ``local-dir:PATH`` (a folder with open_clip_config.json),
    and an optional pretrained file or tag. Untrusted callers (the web) may name folders
    and files only under training_root or training_model_dirs."""
    model = model.strip()
    pretrained = (pretrained or "").strip() or None
    if model.startswith(LOCAL_DIR):
        folder = Path(model[len(LOCAL_DIR) :]).expanduser()
        if not folder.is_absolute():
            raise TrainingError("local-dir: needs an absolute folder")
        if not trusted and not _inside_allowed(folder):
            raise TrainingError("that model folder is outside the allowed training folders")
        if not (folder / MODEL_CONFIG_NAME).is_file():
            raise TrainingError(f"{folder} has no {MODEL_CONFIG_NAME}")
        model = LOCAL_DIR + str(folder.resolve())
    elif not _MODEL_NAME_RE.match(model) or ".." in model:
        raise TrainingError("model must be an open_clip model name or local-dir:/FOLDER")
    if pretrained is not None:
        if "/" in pretrained or pretrained.startswith("~"):
            file = Path(pretrained).expanduser()
            if not trusted and not _inside_allowed(file):
                raise TrainingError("that pretrained file is outside the allowed training folders")
            if not file.is_file():
                raise TrainingError(f"no pretrained file at {file}")
            pretrained = str(file.resolve())
        elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", pretrained):
            raise TrainingError("pretrained must be a file path or an open_clip pretrained tag")
    return model, pretrained


def find_release(session: Session, ref: str | int) -> Release:
    if isinstance(ref, int) or str(ref).isdigit():
        release = session.get(Release, int(ref))
        if release is not None:
            return release
    release = session.scalar(select(Release).where(Release.version == str(ref)))
    if release is None:
        raise TrainingError(f"no release {ref!r}")
    return release


def create_run(
    *,
    session: Session,
    release: Release,
    model: str,
    pretrained: str | None,
    config: TrainingConfig,
    user: User | None,
    trusted: bool = False,
    enqueue: bool = True,
    retry_of: int | None = None,
) -> TrainingRun:
    """Queue a fine-tune of ``model`` on ``release``. Commits; sends the message after the
    commit (with ``enqueue``; else the caller runs it, as ``quilt train --inline`` does)."""
    config.check()
    model, pretrained = check_model(model, pretrained, trusted=trusted)
    data = release_data(release)
    train = data.splits["train"]
    if train.samples < config.batch_size:
        raise TrainingError(
            f"the train split of {release.version} has {train.samples} samples, fewer than "
            f"one batch of {config.batch_size}"
        )
    stored = dataclasses.asdict(config)
    stored["sizes_from"] = data.sizes_from
    if retry_of is not None:
        stored["retry_of"] = retry_of
    run = TrainingRun(
        release_id=release.id,
        status="queued",
        model=model,
        pretrained=pretrained,
        config=stored,
        argv=[],
        progress={},
        loss_curve=[],
        created_by_id=user.id if user else None,
        created_at=utcnow(),
    )
    session.add(run)
    session.flush()
    audit.record(
        session=session,
        user=user,
        action="training.create",
        target=f"training_run:{run.id}",
        release=release.version,
        model=model,
        retry_of=retry_of,
    )
    session.commit()
    if enqueue:
        send_due_runs(session=session, run_ids=[run.id])
    return run


def retry_run(*, session: Session, run: TrainingRun, user: User | None) -> TrainingRun:
    """A new run with what ``run`` asked for (its row stays as the record)."""
    session.refresh(run)
    if run.status not in FINISHED:
        raise TrainingError(f"run {run.id} is {run.status}; only a finished run is retried")
    release = session.get(Release, run.release_id)
    return create_run(
        session=session,
        release=release,
        model=run.model,
        pretrained=run.pretrained,
        config=TrainingConfig.from_dict(run.config or {}),
        user=user,
        trusted=True,  # checked when the first run was made
        retry_of=run.id,
    )


def cancel_run(*, session: Session, run: TrainingRun, user: User | None) -> TrainingRun:
    """Cancel a queued or running run. A running one's task sees the status within about
    a second and kills the trainer's process group. Commits."""
    session.refresh(run)
    was = run.status
    # One conditional UPDATE: a run that finished meanwhile is not turned into cancelled.
    changed = session.execute(
        update(TrainingRun)
        .where(TrainingRun.id == run.id, TrainingRun.status.in_(ACTIVE))
        .values(
            status="cancelled",
            error=f"cancelled by {user.username if user else 'the command line'}",
            finished_at=utcnow(),
            lease_expires_at=None,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if not changed:
        session.rollback()
        session.refresh(run)
        raise TrainingError(f"run {run.id} is {run.status}; there is nothing to cancel")
    audit.record(
        session=session,
        user=user,
        action="training.cancel",
        target=f"training_run:{run.id}",
        was=was,
    )
    session.commit()
    session.refresh(run)
    return run


def list_runs(*, session: Session, limit: int = 100) -> list[TrainingRun]:
    return list(
        session.scalars(select(TrainingRun).order_by(TrainingRun.id.desc()).limit(limit)).all()
    )


def run_folder(run: TrainingRun) -> Path | None:
    if not run.output_dir:
        return None
    try:
        return resolve_inside(training_root(), run.output_dir)
    except UnsafePathError:
        return None


def log_path(run: TrainingRun) -> Path | None:
    folder = run_folder(run)
    return folder / LOG_NAME if folder is not None else None


def log_tail(run: TrainingRun, *, lines: int = 40, max_bytes: int = 64 * 1024) -> list[str]:
    path = log_path(run)
    if path is None or not path.is_file():
        return []
    with path.open("rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - max_bytes))
        text = f.read().decode("utf-8", errors="replace")
    return text.splitlines()[-lines:]


def checkpoint_file(run: TrainingRun) -> Path | None:
    """The run's final checkpoint, only if it is a file under training_root."""
    if run.status != "done" or not run.checkpoint_path:
        return None
    try:
        path = resolve_inside(training_root(), run.checkpoint_path)
    except UnsafePathError:
        return None
    return path if path.is_file() else None


def model_dir(run: TrainingRun) -> Path | None:
    """The folder ``local-dir:`` loads (open_clip_config.json + weights), when exported."""
    folder = run_folder(run)
    if folder is None or run.status != "done":
        return None
    model = folder / "model"
    return model if (model / MODEL_CONFIG_NAME).is_file() else None


# --- the outbox and the reconciler -------------------------------------------------------


@dataclasses.dataclass
class TrainingReconciled:
    requeued: int = 0
    failed: int = 0
    sent: int = 0
    broker_down: str | None = None


def send_due_runs(
    *,
    session: Session,
    run_ids: Iterable[int] | None = None,
    resend_before: dt.datetime | None = None,
) -> TrainingReconciled:
    """Send the message of every queued run that has none yet (and, with
    ``resend_before``, of those sent before then that never started). Commits per run."""
    outcome = TrainingReconciled()
    due = TrainingRun.enqueued_at.is_(None)
    if resend_before is not None:
        due = due | (TrainingRun.enqueued_at < resend_before)
    query = select(TrainingRun).where(TrainingRun.status == "queued", due)
    if run_ids is not None:
        query = query.where(TrainingRun.id.in_(list(run_ids)))
    query = query.order_by(TrainingRun.id).limit(100).execution_options(populate_existing=True)
    for run in session.scalars(query).all():
        try:
            broker.enqueue(broker.TASK_TRAIN, run.id)
        except Exception as exc:  # the broker is down: the run stays due
            _logger.warning("broker unavailable, training run %s stays due: %r", run.id, exc)
            outcome.broker_down = "the broker is down; the run starts when it is back"
            break
        run.enqueued_at = utcnow()
        outcome.sent += 1
        session.commit()
    return outcome


def reconcile_runs(*, session: Session, now: dt.datetime | None = None) -> TrainingReconciled:
    """Runs whose worker stopped answering: queued again or, out of attempts, failed."""
    settings = get_settings()
    now = now or utcnow()
    report = TrainingReconciled()
    # populate_existing: a session that loaded these rows before (expire_on_commit is off)
    # must see their status now, or an unchanged-looking status would not be written.
    lost = session.scalars(
        select(TrainingRun)
        .where(TrainingRun.status == "running", TrainingRun.lease_expires_at < now)
        .execution_options(populate_existing=True)
    ).all()
    for run in lost:
        holder = run.worker or "a worker"
        if run.attempts >= settings.training_max_attempts:
            run.status = "failed"
            run.error = f"gave up after {run.attempts} attempts: {holder} stopped answering"
            run.finished_at = now
            report.failed += 1
        else:
            run.status = "queued"
            run.error = f"requeued: {holder} stopped answering"
            run.enqueued_at = None
            report.requeued += 1
        run.lease_expires_at, run.pid = None, None
        _logger.warning("training run %s: lease expired (%s)", run.id, holder)
    session.commit()
    resend_before = now - dt.timedelta(seconds=settings.stage_resend_after_s)
    sent = send_due_runs(session=session, resend_before=resend_before)
    report.sent, report.broker_down = sent.sent, sent.broker_down
    return report
