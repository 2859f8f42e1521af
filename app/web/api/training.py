"""Training runs, for admins: start a fine-tune of a release, list and read runs, cancel
or retry one (app/services/training.py). The checkpoint itself is downloaded from the
admin page (/admin/training/ID/checkpoint)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from app.db import SessionDep
from app.models import TrainingRun
from app.services import training
from app.web.api.schemas import TrainingIn, TrainingRunOut
from app.web.deps import AdminUser

router = APIRouter(prefix="/training", tags=["training"])

RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _run(session, run_id: int) -> TrainingRun:  # noqa: ANN001
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise HTTPException(404, f"no training run {run_id}")
    return run


@router.get("", response_model=list[TrainingRunOut])
def list_runs(
    session: SessionDep,
    user: AdminUser,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[TrainingRunOut]:
    """Training runs, newest first."""
    return [
        TrainingRunOut.model_validate(r) for r in training.list_runs(session=session, limit=limit)
    ]


@router.post("", response_model=TrainingRunOut, status_code=201)
def start(body: TrainingIn, session: SessionDep, user: AdminUser) -> TrainingRunOut:
    """Queue a fine-tune on the gpu queue; 422 says why a request cannot be trained."""
    config = training.TrainingConfig(
        epochs=body.epochs,
        batch_size=body.batch_size,
        lr=body.lr,
        wd=body.wd,
        warmup=body.warmup,
        workers=body.workers,
        seed=body.seed,
    )
    try:
        run = training.create_run(
            session=session,
            release=training.find_release(session, body.release),
            model=body.model,
            pretrained=body.pretrained,
            config=config,
            user=user,
        )
    except training.TrainingError as exc:
        session.rollback()
        raise HTTPException(422, str(exc)) from None
    return TrainingRunOut.model_validate(run)


@router.get("/{run_id}", response_model=TrainingRunOut)
def get_run(run_id: RunId, session: SessionDep, user: AdminUser) -> TrainingRunOut:
    return TrainingRunOut.model_validate(_run(session, run_id))


@router.post("/{run_id}/cancel", response_model=TrainingRunOut)
def cancel(run_id: RunId, session: SessionDep, user: AdminUser) -> TrainingRunOut:
    """Cancel a queued or running run; its trainer's process group is killed within
    about a second. 409 when the run has already finished."""
    try:
        run = training.cancel_run(session=session, run=_run(session, run_id), user=user)
    except training.TrainingError as exc:
        raise HTTPException(409, str(exc)) from None
    return TrainingRunOut.model_validate(run)


@router.post("/{run_id}/retry", response_model=TrainingRunOut, status_code=201)
def retry(run_id: RunId, session: SessionDep, user: AdminUser) -> TrainingRunOut:
    """A new run with what a finished run asked for. 409 while it is still active."""
    run = _run(session, run_id)
    try:
        new = training.retry_run(session=session, run=run, user=user)
    except training.TrainingError as exc:
        session.rollback()
        status = 409 if run.status in training.ACTIVE else 422
        raise HTTPException(status, str(exc)) from None
    return TrainingRunOut.model_validate(new)
