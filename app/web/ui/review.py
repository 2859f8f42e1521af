"""The review page: one pair at a time, decided by buttons or keyboard, next pair via htmx."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.models import Pair, User
from app.services import review
from app.settings import get_settings
from app.web import events
from app.web.deps import CurrentUser
from app.web.templating import is_htmx, render

router = APIRouter(prefix="/review")

PAGE = "review/page.html"
PANE = "review/_pane.html"
Action = Literal["approve", "reject", "save", "skip"]


def _pane(
    request: Request,
    session: Session,
    pair: Pair | None,
    *,
    mode: Literal["queue", "detail"] = "queue",
    message: str | None = None,
    error: str | None = None,
    draft: dict[str, str] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context: dict[str, Any] = {
        "pair": pair,
        "video": pair.video if pair else None,
        "mode": mode,
        # The header's counts: a full page only; htmx refreshes them by event (_counts.html).
        "counts": None if is_htmx(request) else review.queue_counts(session=session),
        "message": message,
        "error": error,
        "draft": draft or {},
        "history": review.pair_history(session=session, pair_id=pair.id)
        if pair is not None and mode == "detail"
        else [],
    }
    return render(request, PAGE, context, partial=PANE, status_code=status_code, headers=headers)


def _claim(session: Session, user: User) -> Pair | None:
    return review.claim_next(session=session, reviewer=user, lease_s=get_settings().lease_s)


@router.get("")
def review_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return _pane(request, session, _claim(session, user))


@router.get("/counts")
def counts(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return render(request, "review/_counts.html", {"counts": review.queue_counts(session=session)})


@router.get("/pairs/{pair_id}")
def pair_detail(pair_id: int, request: Request, session: SessionDep, user: CurrentUser) -> Response:
    pair = review.get_pair(session=session, pair_id=pair_id)
    return _pane(request, session, pair, mode="detail")


@router.post("/pairs/{pair_id}")
def act(
    pair_id: int,
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    action: Annotated[Action, Form()],
    version: Annotated[int, Form()],
    caption: Annotated[str | None, Form(max_length=review.MAX_TEXT_LEN)] = None,
    medical_text: Annotated[str | None, Form(max_length=review.MAX_TEXT_LEN)] = None,
    roi_text: Annotated[str | None, Form(max_length=review.MAX_TEXT_LEN)] = None,
    reason: Annotated[str | None, Form(max_length=32)] = None,
    comment: Annotated[str | None, Form(max_length=review.MAX_COMMENT_LEN)] = None,
    mode: Annotated[Literal["queue", "detail"], Form()] = "queue",
) -> Response:
    """approve / reject / save / skip. Edited caption fields are saved before a decision,
    so that pressing "a" after fixing a caption keeps the fix."""
    pair = review.get_pair(session=session, pair_id=pair_id)
    fields = {
        name: value.replace("\r\n", "\n")
        for name, value in (
            ("caption", caption),
            ("medical_text", medical_text),
            ("roi_text", roi_text),
        )
        if value is not None
    }

    def again(error: str, status_code: int, *, keep_draft: bool = True) -> Response:
        session.refresh(pair)
        return _pane(
            request,
            session,
            pair,
            mode=mode,
            error=error,
            draft=fields if keep_draft else None,
            status_code=status_code,
        )

    if action == "skip":
        review.skip(session=session, pair_id=pair_id, reviewer=user)
        return _after(
            request, session, user, mode, pair_id, f"Skipped pair #{pair_id}.", events.PAIR_SKIPPED
        )
    try:
        if action in ("approve", "reject"):
            review.validate_decision(decision=action, reason=reason, comment=comment)
        if fields:
            pair = review.edit(
                session=session, pair_id=pair_id, user=user, fields=fields, expected_version=version
            )
            version = pair.version
        if action == "save":
            return _pane(
                request,
                session,
                pair,
                mode=mode,
                message="Saved.",
                headers=events.trigger(events.PAIR_SAVED),
            )
        review.decide(
            session=session,
            pair_id=pair_id,
            reviewer=user,
            decision=action,
            reason=reason or None,
            comment=comment,
            expected_version=version,
        )
    except review.ConflictError as exc:
        return again(
            f"{exc}. This is the current version; your changes were not saved.",
            409,
            keep_draft=False,
        )
    except review.ReviewError as exc:
        return again(str(exc).capitalize() + ".", 422)
    verb = "Approved" if action == "approve" else "Rejected"
    return _after(
        request, session, user, mode, pair_id, f"{verb} pair #{pair_id}.", events.PAIR_DECIDED
    )


def _after(
    request: Request,
    session: Session,
    user: User,
    mode: str,
    pair_id: int,
    message: str,
    event: str,
) -> Response:
    """After a decision or skip: the next pair (queue) or the same pair again (detail)."""
    if mode == "detail":
        if not is_htmx(request):
            return RedirectResponse(f"/review/pairs/{pair_id}", status_code=303)
        pair = review.get_pair(session=session, pair_id=pair_id)
        return _pane(
            request, session, pair, mode="detail", message=message, headers=events.trigger(event)
        )
    if not is_htmx(request):
        return RedirectResponse("/review", status_code=303)
    return _pane(
        request, session, _claim(session, user), message=message, headers=events.trigger(event)
    )
