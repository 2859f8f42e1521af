"""Evaluations (admins): CLIP_benchmark on a checkpoint, queued on the gpu queue; the list,
one evaluation, and the comparison by benchmark (checkpoints and releases side by side)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path

from app.db import SessionDep
from app.models import Evaluation
from app.services import evaluation as evaluations
from app.web.api.schemas import BenchmarkOut, EvaluationIn, EvaluationOut, EvaluationQueuedOut
from app.web.deps import AdminUser

router = APIRouter(prefix="/evaluations", tags=["evaluations"])


@router.get("", response_model=list[EvaluationOut])
def list_evaluations(session: SessionDep, user: AdminUser) -> list[EvaluationOut]:
    """Newest first."""
    return [EvaluationOut.model_validate(e) for e in evaluations.list_evaluations(session=session)]


@router.post("", response_model=EvaluationQueuedOut, status_code=201)
def queue_evaluation(
    body: EvaluationIn, session: SessionDep, user: AdminUser
) -> EvaluationQueuedOut:
    """Queue an evaluation; paths must lie under the training root or evaluation_dirs."""
    try:
        sent = evaluations.queue_evaluation(
            session=session,
            user=user,
            task=body.task,
            checkpoint=body.checkpoint,
            model=body.model,
            training_run_id=body.training_run_id,
            release_version=body.release,
            dataset_path=body.dataset_path,
            split=body.split,
            web=True,
        )
    except evaluations.EvaluationError as exc:
        session.rollback()
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    out = EvaluationOut.model_validate(sent.evaluation).model_dump()
    return EvaluationQueuedOut(**out, broker_down=sent.broker_down)


@router.get("/compare", response_model=list[BenchmarkOut])
def compare(session: SessionDep, user: AdminUser) -> list[BenchmarkOut]:
    """Done evaluations by (dataset, split, task): one row per evaluation, and one per
    release the checkpoints were trained on (best and mean of each metric)."""
    return [BenchmarkOut.model_validate(b) for b in evaluations.compare(session=session)]


@router.get("/{evaluation_id}", response_model=EvaluationOut)
def get_evaluation(
    session: SessionDep, user: AdminUser, evaluation_id: int = Path(ge=0, le=2**31 - 1)
) -> EvaluationOut:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise HTTPException(status_code=404, detail="no such evaluation")
    return EvaluationOut.model_validate(evaluation)
