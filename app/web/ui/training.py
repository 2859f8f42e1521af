"""The admin pages of training runs: start a fine-tune of a release, follow its progress,
loss curve (an inline SVG drawn on the server) and log, cancel or retry it, and download
its checkpoint. Admins only, declared on the router."""

from __future__ import annotations

from typing import Annotated, Any, Unpack

from fastapi import APIRouter, Depends, Form, HTTPException, Path, Request
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import FileResponse, RedirectResponse, Response

from app.db import SessionDep
from app.models import Release, TrainingRun
from app.services import training
from app.web.deps import AdminUser, get_admin_user
from app.web.security import SANDBOX_POLICY
from app.web.templating import is_htmx, render
from app.web.ui.forms import Outcome, form_page

router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])

RunId = Annotated[int, Path(ge=1, le=2**31 - 1)]
CHART_W, CHART_H, CHART_PAD = 640, 220, 8


def loss_chart(curve: list, width: int = CHART_W, height: int = CHART_H) -> dict[str, Any]:
    """The loss curve as an SVG polyline's points, scaled into the box."""
    points = [(float(s), float(v)) for s, v in curve or []]
    if not points:
        return {"points": "", "width": width, "height": height, "n": 0}
    steps = [s for s, _ in points]
    losses = [v for _, v in points]
    s0, s1 = min(steps), max(steps)
    lo, hi = min(losses), max(losses)
    span_s, span_v = (s1 - s0) or 1.0, (hi - lo) or 1.0
    inner_w, inner_h = width - 2 * CHART_PAD, height - 2 * CHART_PAD

    def xy(step: float, value: float) -> str:
        x = CHART_PAD + (step - s0) / span_s * inner_w
        y = CHART_PAD + (hi - value) / span_v * inner_h
        return f"{x:.1f},{y:.1f}"

    return {
        "points": " ".join(xy(s, v) for s, v in points),
        "width": width,
        "height": height,
        "n": len(points),
        "first_step": int(s0),
        "last_step": int(s1),
        "min": lo,
        "max": hi,
        "last": losses[-1],
    }


def _run_or_404(session: Session, run_id: int) -> TrainingRun:
    run = session.get(TrainingRun, run_id)
    if run is None:
        raise HTTPException(404)
    return run


def _list_context(session: Session) -> dict[str, Any]:
    runs = training.list_runs(session=session)
    releases = session.scalars(
        select(Release).where(Release.status == "ready").order_by(Release.id.desc())
    ).all()
    versions = {r.id: r.version for r in session.scalars(select(Release)).all()}
    return {
        "runs": runs,
        "releases": releases,
        "versions": versions,
        "active": any(r.status in training.ACTIVE for r in runs),
    }


def _page(request: Request, session: Session, **outcome: Unpack[Outcome]) -> Response:
    return form_page(request, "training", _list_context(session), **outcome)


@router.get("/training")
def training_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _page(request, session)


@router.get("/training/runs")
def training_runs(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return render(request, "admin/_training_runs.html", _list_context(session))


@router.post("/training")
def start_training(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    release: Annotated[str, Form(min_length=1, max_length=64)],
    model: Annotated[str, Form(min_length=1, max_length=1024)],
    epochs: Annotated[int, Form(ge=1, le=1000)] = 1,
    batch_size: Annotated[int, Form(ge=2, le=65536)] = 32,
    lr: Annotated[float, Form(gt=0, le=1)] = 5e-6,
    pretrained: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    form = {
        "release": release,
        "model": model,
        "pretrained": pretrained,
        "epochs": str(epochs),
        "batch_size": str(batch_size),
        "lr": str(lr),
    }
    try:
        run = training.create_run(
            session=session,
            release=training.find_release(session, release),
            model=model,
            pretrained=pretrained or None,
            config=training.TrainingConfig(epochs=epochs, batch_size=batch_size, lr=lr),
            user=user,
        )
    except training.TrainingError as exc:
        session.rollback()
        return _page(request, session, error=str(exc), form=form, status_code=422)
    if not is_htmx(request):
        return RedirectResponse(f"/admin/training/{run.id}", status_code=303)
    return _page(request, session, message=f"Queued training run #{run.id}.")


def _run_context(session: Session, run: TrainingRun) -> dict[str, Any]:
    release = session.get(Release, run.release_id)
    return {
        "run": run,
        "release": release,
        "chart": loss_chart(run.loss_curve),
        "log_tail": training.log_tail(run),
        "checkpoint": training.checkpoint_file(run) is not None,
        "model_dir": training.model_dir(run),
        "active": run.status in training.ACTIVE,
    }


def _panel(request: Request, session: Session, run: TrainingRun, **extra: Any) -> Response:
    return render(request, "admin/_training_run.html", {**_run_context(session, run), **extra})


@router.get("/training/{run_id}")
def training_run(run_id: RunId, request: Request, session: SessionDep, user: AdminUser) -> Response:
    run = _run_or_404(session, run_id)
    return render(
        request,
        "admin/training_run.html",
        _run_context(session, run),
        partial="admin/_training_run.html",
    )


@router.get("/training/{run_id}/panel")
def training_panel(
    run_id: RunId, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    return _panel(request, session, _run_or_404(session, run_id))


@router.post("/training/{run_id}/cancel")
def cancel_training(
    run_id: RunId, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    run = _run_or_404(session, run_id)
    message = error = None
    try:
        training.cancel_run(session=session, run=run, user=user)
        message = "Cancelled: the trainer's processes are stopped."
    except training.TrainingError as exc:
        error = str(exc)
    if not is_htmx(request):
        return RedirectResponse(f"/admin/training/{run_id}", status_code=303)
    return _panel(request, session, run, message=message, error=error)


@router.post("/training/{run_id}/retry")
def retry_training(
    run_id: RunId, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    run = _run_or_404(session, run_id)
    try:
        new = training.retry_run(session=session, run=run, user=user)
    except training.TrainingError as exc:
        session.rollback()
        if not is_htmx(request):
            return RedirectResponse(f"/admin/training/{run_id}", status_code=303)
        return _panel(request, session, run, error=str(exc))
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": f"/admin/training/{new.id}"})
    return RedirectResponse(f"/admin/training/{new.id}", status_code=303)


@router.get("/training/{run_id}/checkpoint")
def training_checkpoint(run_id: RunId, session: SessionDep, user: AdminUser) -> Response:
    run = _run_or_404(session, run_id)
    file = training.checkpoint_file(run)
    if file is None:
        raise HTTPException(404)
    return FileResponse(
        file,
        media_type="application/octet-stream",
        filename=f"run-{run.id}-{file.name}",
        headers={"Content-Security-Policy": SANDBOX_POLICY},
    )
