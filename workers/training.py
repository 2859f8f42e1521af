"""The training task's body: one attempt of a run of open_clip's own trainer.

``run_training(run_id)`` is what the ``quilt.train`` task (gpu queue) and
``quilt train --inline`` call:

1. Claim the run atomically (queued, or running under an expired lease) for this worker;
   a duplicate or late message finds it taken or settled and does nothing.
2. Build the argv from the release (app.services.training.build_argv) and start
   ``python -m open_clip_train.main`` in a new session (its own process group, so cancel
   kills its dataloader workers too) with a parent-death signal (a worker killed with -9
   takes its trainer along instead of leaving it to train unowned). Its stdout and stderr
   go to ``trainer.log`` in the run's folder, under training_root.
3. Follow the log: each ``Train Epoch`` line is progress and a loss point, written to the
   row at most once a second together with a renewed lease. A row that is no longer this
   worker's running run (an admin cancelled it; the reconciler gave it to another worker)
   kills the process group.
4. At exit: the last ``epoch_N.pt`` becomes the run's checkpoint with its sha256, and the
   run's ``model/`` folder gets open_clip_config.json plus the weights (a hard link
   named as open_clip's ``local-dir:`` loader looks for them), so the fine-tune can be
   trained on or evaluated as ``local-dir:FOLDER``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import and_, or_, update

from app.db import session_scope
from app.models import Release, TrainingRun, utcnow
from app.services import training
from app.settings import get_settings
from workers.stage_runner import worker_name

_logger = logging.getLogger(__name__)

WRITE_EVERY_S = 1.0
STOP_GRACE_S = 10.0
PR_SET_PDEATHSIG = 1


def resolve_device(setting: str) -> str:
    if setting != "auto":
        return setting
    try:
        import torch  # noqa: PLC0415 - only where a run starts
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """In the trainer, before exec: SIGKILL when the worker that started it dies."""
    parent = os.getppid()
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        return
    if os.getppid() != parent:  # the worker died before the signal was armed
        os._exit(1)


def _lease_until():  # noqa: ANN202
    import datetime as dt  # noqa: PLC0415

    return utcnow() + dt.timedelta(seconds=get_settings().training_lease_s)


def _claim(run_id: int, holder: str) -> str | None:
    """Take the run for ``holder``: None when taken, else why not."""
    now = utcnow()
    with session_scope() as s:
        taken = s.execute(
            update(TrainingRun)
            .where(
                TrainingRun.id == run_id,
                or_(
                    TrainingRun.status == "queued",
                    and_(
                        TrainingRun.status == "running",
                        or_(
                            TrainingRun.lease_expires_at.is_(None),
                            TrainingRun.lease_expires_at < now,
                        ),
                    ),
                ),
            )
            .values(
                status="running",
                attempts=TrainingRun.attempts + 1,
                worker=holder,
                lease_expires_at=_lease_until(),
                started_at=now,
                finished_at=None,
                error=None,
                pid=None,
                wall_s=None,
                progress={},
                loss_curve=[],
                checkpoint_path=None,
                checkpoint_sha256=None,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            return None
        run = s.get(TrainingRun, run_id)
        if run is None:
            return "gone"
        return "busy" if run.status == "running" else "settled"


def _holds(run: TrainingRun | None, holder: str) -> bool:
    return run is not None and run.status == "running" and run.worker == holder


class _LogReader:
    """The complete lines appended to a file since the last read."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""

    def read(self) -> list[str]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        data = self.partial + chunk
        # tqdm-style carriage returns are line ends too.
        lines = data.replace(b"\r", b"\n").split(b"\n")
        self.partial = lines.pop()
        return [line.decode("utf-8", errors="replace") for line in lines if line.strip()]

    def rest(self) -> list[str]:
        lines = self.read()
        if self.partial.strip():
            lines.append(self.partial.decode("utf-8", errors="replace"))
        self.partial = b""
        return lines


def _kill_group(process: subprocess.Popen, pgid: int) -> None:
    """SIGTERM to the trainer's process group, SIGKILL after a grace period; then make
    sure nothing of the group is left (dataloader workers)."""
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 30.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    _reap_group(pgid)


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``; a zombie waits only for
    whoever adopted it to reap it, and holds nothing."""
    proc = Path("/proc")
    if not proc.is_dir():  # not Linux: ask the kernel whether the group has anyone
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            members.append(int(entry.name))
    return members


def _reap_group(pgid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while group_members(pgid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        if time.monotonic() > deadline:
            _logger.warning("process group %s still has members after SIGKILL", pgid)
            return
        time.sleep(0.05)


def _write(run_id: int, holder: str, lines: list, pid: int | None = None) -> bool:
    """Fold parsed lines into the row and renew the lease; False when the run is no
    longer this worker's (cancelled, or taken over)."""
    with session_scope() as s:
        run = s.get(TrainingRun, run_id)
        if not _holds(run, holder):
            return False
        for parsed in lines:
            training.apply_line(run, parsed)
        run.lease_expires_at = _lease_until()
        if pid is not None:
            run.pid = pid
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _model_config(model: str) -> dict | None:
    if model.startswith(training.LOCAL_DIR):
        path = Path(model[len(training.LOCAL_DIR) :]) / training.MODEL_CONFIG_NAME
        return json.loads(path.read_text())
    try:
        import open_clip  # noqa: PLC0415 - worker-only dependency
    except ImportError:
        return None
    cfg = open_clip.get_model_config(model)
    return {"model_cfg": cfg, "preprocess_cfg": {}} if cfg else None


def export_model(folder: Path, checkpoint: Path, model: str) -> Path | None:
    """``folder/model``: open_clip_config.json and the weights as local-dir: finds them."""
    config = _model_config(model)
    if config is None:
        return None
    target = folder / "model"
    target.mkdir(exist_ok=True)
    (target / training.MODEL_CONFIG_NAME).write_text(json.dumps(config, indent=1))
    weights = target / training.MODEL_WEIGHTS_NAME
    weights.unlink(missing_ok=True)
    try:
        os.link(checkpoint, weights)  # same bytes, no second copy on disk
    except OSError:
        shutil.copyfile(checkpoint, weights)
    return target


def _why(lines: list[str], rc: int) -> str:
    meaningful = [line for line in lines if line.strip()]
    errors = [line for line in meaningful if "Error" in line or "Exception" in line]
    last = (errors or meaningful or ["no output"])[-1].strip()
    return f"the trainer exited with code {rc}: {last[:400]}"


def _finish(run_id: int, holder: str, progress: dict | None = None, **values: object) -> bool:
    with session_scope() as s:
        run = s.get(TrainingRun, run_id)
        if not _holds(run, holder):
            return False
        if progress:
            run.progress = {**(run.progress or {}), **progress}
        for key, value in values.items():
            setattr(run, key, value)
        run.finished_at = utcnow()
        run.lease_expires_at = None
        run.pid = None
    return True


def run_training(run_id: int, *, poll_s: float = 0.25) -> str:
    """One attempt of the run; returns its status (or why it was not run)."""
    holder = worker_name()
    refused = _claim(run_id, holder)
    if refused is not None:
        _logger.info("training run %s not run: %s", run_id, refused)
        return refused
    settings = get_settings()
    try:
        with session_scope() as s:
            run = s.get(TrainingRun, run_id)
            release = s.get(Release, run.release_id)
            name = training.run_name(run)
            logs = training.logs_dir()
            device = resolve_device(settings.training_device)
            argv = training.build_argv(
                data=training.release_data(release),
                model=run.model,
                pretrained=run.pretrained,
                config=training.TrainingConfig.from_dict(run.config or {}),
                device=device,
                name=name,
                logs=logs,
                python=settings.training_python or sys.executable,
            )
            run.argv, run.device, run.output_dir = argv, device, str(logs / name)
            model = run.model
            epochs = int((run.config or {}).get("epochs", 1))
    except training.TrainingError as exc:
        _finish(run_id, holder, status="failed", error=str(exc))
        return "failed"
    folder = logs / name
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / training.LOG_NAME
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    with log_file.open("ab") as out:
        process = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=folder,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - sets only the death signal
        )
    pgid = process.pid  # a new session: the group is the trainer's pid
    _logger.info("training run %s: trainer pid %s: %s", run_id, process.pid, " ".join(argv))
    reader = _LogReader(log_file)
    seen: list[str] = []
    pending: list = []
    held, last_write, first = True, 0.0, True
    try:
        while True:
            rc = process.poll()
            lines = reader.read() if rc is None else reader.rest()
            seen = (seen + lines)[-50:]
            pending += [p for p in map(training.parse_log_line, lines) if p is not None]
            now = time.monotonic()
            if rc is not None or now - last_write >= WRITE_EVERY_S or first:
                held = _write(run_id, holder, pending, pid=process.pid if first else None)
                pending, last_write, first = [], now, False
                if not held:
                    break
            if rc is not None:
                break
            time.sleep(poll_s)
    except BaseException as exc:  # a time limit, a worker shutdown: the trainer goes too
        _kill_group(process, pgid)
        reason = "the training time limit passed" if "TimeLimit" in type(exc).__name__ else None
        _finish(
            run_id,
            holder,
            status="failed",
            error=reason or f"the worker stopped the run: {type(exc).__name__}",
            wall_s=round(time.monotonic() - started, 3),
        )
        raise
    wall_s = round(time.monotonic() - started, 3)
    if not held:
        _kill_group(process, pgid)
        with session_scope() as s:
            run = s.get(TrainingRun, run_id)
            if run is not None and run.status == "cancelled":
                run.wall_s, run.pid = wall_s, None
                _logger.info("training run %s cancelled; trainer group %s killed", run_id, pgid)
                return "cancelled"
        return "busy"  # taken over by another worker after the lease ran out
    _reap_group(pgid)  # dataloader workers that outlived the trainer
    checkpoint = folder / "checkpoints" / f"epoch_{epochs}.pt"
    if process.returncode != 0 or not checkpoint.is_file():
        why = _why(seen, process.returncode)
        if process.returncode == 0:
            why = f"the trainer finished without {checkpoint.name}: {_why(seen, 0)}"
        _finish(run_id, holder, status="failed", error=why, wall_s=wall_s)
        return "failed"
    sha = _sha256(checkpoint)
    exported = export_model(folder, checkpoint, model)
    done = _finish(
        run_id,
        holder,
        progress={
            "percent": 100,
            "model_dir": str(exported) if exported else None,
        },
        status="done",
        checkpoint_path=str(checkpoint),
        checkpoint_sha256=sha,
        wall_s=wall_s,
    )
    return "done" if done else "cancelled"
