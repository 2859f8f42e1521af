"""Admin pages of the evaluations: queue CLIP_benchmark on a checkpoint, watch the runs,
and compare them (checkpoints side by side; releases side by side by the release each
checkpoint was trained on)."""

from __future__ import annotations

from typing import Annotated, Unpack

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.models import Evaluation, Release, TrainingRun
from app.services import evaluation as evaluations
from app.services import releases
from app.web import errors
from app.web.deps import AdminUser, get_admin_user
from app.web.templating import is_htmx, render
from app.web.ui.forms import Outcome, form_page

# For admins only, declared on the router as in admin.py.
router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])


def _evaluations(request: Request, session: Session, **outcome: Unpack[Outcome]) -> Response:
    listed = evaluations.list_evaluations(session=session)
    data = {
        "evaluations": listed,
        "metrics": {e.id: evaluations.metric_values(e) for e in listed},
        "versions": {r.id: r.version for r in session.scalars(select(Release))},
        "ready_releases": [
            r
            for r in releases.list_releases(session=session, newest_first=True)
            if r.status == "ready"
        ],
        "runs": list(
            session.scalars(
                select(TrainingRun)
                .where(TrainingRun.checkpoint_path.is_not(None))
                .order_by(TrainingRun.id.desc())
                .limit(200)
            )
        ),
        "tasks": evaluations.TASKS,
        "splits": evaluations.SPLITS,
        "allowed_roots": evaluations.allowed_roots(),
    }
    return form_page(request, "evaluations", data, **outcome)


@router.get("/evaluations")
def evaluations_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _evaluations(request, session)


@router.post("/evaluations")
def queue_evaluation(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    task: Annotated[str, Form(max_length=32)],
    checkpoint: Annotated[str, Form(max_length=1024)] = "",
    model: Annotated[str, Form(max_length=255)] = "",
    training_run_id: Annotated[str, Form(max_length=12)] = "",
    release: Annotated[str, Form(max_length=64)] = "",
    dataset_path: Annotated[str, Form(max_length=1024)] = "",
    split: Annotated[str, Form(max_length=16)] = "test",
) -> Response:
    typed = {"task": task, "checkpoint": checkpoint, "model": model, "split": split,
             "training_run_id": training_run_id, "release": release,
             "dataset_path": dataset_path}  # fmt: skip
    try:
        run_id = int(training_run_id) if training_run_id.strip() else None
    except ValueError:
        run_id = -1  # no such run: the service says so
    try:
        sent = evaluations.queue_evaluation(
            session=session,
            user=user,
            task=task,
            checkpoint=checkpoint.strip() or None,
            model=model.strip() or None,
            training_run_id=run_id,
            release_version=release.strip() or None,
            dataset_path=dataset_path.strip() or None,
            split=split,
            web=True,
        )
    except evaluations.EvaluationError as exc:
        session.rollback()
        return _evaluations(
            request, session, error=errors.as_sentence(exc), form=typed, status_code=422
        )
    if not is_htmx(request):
        return RedirectResponse("/admin/evaluations", status_code=303)
    message = f"Queued evaluation #{sent.evaluation.id} on the gpu queue."
    if sent.broker_down:
        message = f"Evaluation #{sent.evaluation.id} is recorded; {sent.broker_down}."
    return _evaluations(request, session, message=message)


@router.post("/evaluations/{evaluation_id}/again")
def evaluation_again(
    evaluation_id: int, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    evaluation = session.get(Evaluation, evaluation_id)
    if evaluation is None:
        raise HTTPException(404, f"evaluation {evaluation_id} not found")
    try:
        sent = evaluations.send_again(session=session, evaluation=evaluation, user=user)
    except evaluations.EvaluationError as exc:
        return _evaluations(request, session, error=errors.as_sentence(exc), status_code=409)
    if not is_htmx(request):
        return RedirectResponse("/admin/evaluations", status_code=303)
    message = f"Sent evaluation #{evaluation_id} again."
    if sent.broker_down:
        message = f"Evaluation #{evaluation_id} is queued; {sent.broker_down}."
    return _evaluations(request, session, message=message)


@router.get("/evaluations/compare")
def evaluations_compare(request: Request, session: SessionDep, user: AdminUser) -> Response:
    """Done evaluations by benchmark: checkpoints side by side, releases side by side."""
    return render(
        request,
        "admin/evaluations_compare.html",
        {"benchmarks": evaluations.compare(session=session)},
    )
