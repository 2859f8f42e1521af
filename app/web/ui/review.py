"""The review page: one pair at a time, decided by buttons or keyboard.

In queue mode the page prefetches the next pair (``/review/ahead``) while the current one
is shown; a decision swaps the prefetched pane in at once and saves in the background
(``mode=background``: 204, or a short text error the page shows with a retry). Detail
and history mode post through htmx and stay on the pair.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.models import GoldAnswer, Pair, User
from app.services import gold, review
from app.settings import get_settings
from app.web import events
from app.web.deps import AdminUser, CurrentUser
from app.web.errors import as_sentence, error_response
from app.web.templating import is_admin, is_htmx, render
from app.web.ui.pair_context import edit_diffs, pair_view

router = APIRouter(prefix="/review")

PAGE = "review/page.html"
PANE = "review/_pane.html"
Action = Literal["approve", "reject", "save", "skip"]
Mode = Literal["queue", "detail", "history"]
MAX_HISTORY_STEP = 500


def _pane(
    request: Request,
    session: Session,
    pair: Pair | None,
    *,
    mode: Mode = "queue",
    message: str | None = None,
    step: int = 0,
    decision: review.ReviewerHistoryItem | None = None,
    error: str | None = None,
    draft: dict[str, str] | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    history = (
        review.pair_history(
            session=session, pair_id=pair.id, viewer=getattr(request.state, "user", None)
        )
        if pair is not None and mode != "queue"
        else []
    )
    context: dict[str, Any] = {
        "pair": pair,
        "video": pair.video if pair else None,
        "mode": mode,
        "step": step,
        "decision": decision,
        "view": pair_view(session, pair) if pair is not None else {},
        "editable": set(review.EDITABLE_FIELDS),
        # The header's counts: a full page only; htmx refreshes them by event (_counts.html).
        "counts": None if is_htmx(request) else review.queue_counts(session=session),
        "message": message,
        "error": error,
        "draft": draft or {},
        "history": history,
        # Caption, medical and ROI edits as word diffs, by the entry's place in history.
        "history_diffs": [
            edit_diffs(e.before, e.after) if e.kind == "edit" else {} for e in history
        ],
        # Detail mode, admins only: the pair's known answer, if one was given (gold form).
        # Reviewers are never told which pairs are gold: their votes on them are scored.
        "gold": session.get(GoldAnswer, pair.id)
        if pair is not None and mode == "detail" and is_admin(request)
        else None,
    }
    return render(request, PAGE, context, partial=PANE, status_code=status_code, headers=headers)


def _claim(session: Session, user: User) -> Pair | None:
    return review.claim_next(session=session, reviewer=user, lease_s=get_settings().lease_s)


@router.get("")
def review_page(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    return _pane(request, session, _claim(session, user))


@router.get("/ahead")
def ahead(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    exclude: Annotated[list[int], Query(max_length=50)] = [],  # noqa: B006 - FastAPI query list
) -> Response:
    """The pane of the pair after the ones in ``exclude``, leased now: the page keeps it
    ready and swaps it in the moment the current pair is decided."""
    pair = review.claim_ahead(session=session, reviewer=user, exclude=exclude)
    return _pane(request, session, pair)


@router.get("/mine/{step}")
def mine(step: int, request: Request, session: SessionDep, user: CurrentUser) -> Response:
    """Back through one's own decisions: ``step`` 1 is the last decision."""
    items = (
        review.reviewer_history(session=session, reviewer=user, limit=step)
        if 1 <= step <= MAX_HISTORY_STEP
        else []
    )
    if len(items) < step or not items:
        return error_response(request, 404, "No earlier decision.")
    item = items[step - 1]
    pair = review.get_pair(session=session, pair_id=item.pair_id)
    return _pane(request, session, pair, mode="history", step=step, decision=item)


@router.post("/undo")
def undo(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    confirm: Annotated[bool, Form()] = False,
) -> Response:
    """Take back one's last decision; the pair comes back on screen to decide again. A
    decision in a release needs the ``confirm`` field (else 409 with why)."""
    try:
        pair = review.undo_last(session=session, reviewer=user, confirm=confirm)
    except review.ConflictError as exc:
        # Answered here, while the session is open (the rollback expired the user row).
        return error_response(request, 409, as_sentence(exc))
    if pair is None:
        return error_response(request, 404, "Nothing to undo.")
    message = f"Undid your decision on pair #{pair.id}."
    if not is_htmx(request):
        return RedirectResponse("/review", status_code=303)
    return _pane(
        request, session, pair, message=message, headers=events.trigger(events.PAIR_UNDONE)
    )


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
    caption: Annotated[str | None, Form(max_length=review.MAX_TEXT_LEN)] = None,  # service: 2,000
    medical_text: Annotated[str | None, Form(max_length=review.MAX_TEXT_LEN)] = None,
    roi_text: Annotated[str | None, Form(max_length=review.MAX_TEXT_LEN)] = None,
    reason: Annotated[str | None, Form(max_length=32)] = None,
    comment: Annotated[str | None, Form(max_length=review.MAX_COMMENT_LEN)] = None,
    mode: Annotated[Literal["queue", "detail", "history", "background"], Form()] = "queue",
    magnification: Annotated[str | None, Form(max_length=8)] = None,
    subpathology: Annotated[str | None, Form(max_length=64)] = None,
    not_histology: Annotated[str | None, Form(max_length=8)] = None,
    tags: Annotated[str | None, Form(max_length=1)] = None,
    confirm: Annotated[bool, Form()] = False,
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
    if tags:
        # The form's tag fieldset was sent (an unchecked box sends nothing, so only a
        # form that carries the fieldset may clear a tag).
        tag_values: dict[str, object] = {
            "magnification": int(magnification)
            if magnification and magnification.isdigit()
            else None,
            "subpathology": subpathology or None,
            "not_histology": not_histology == "on",
        }
        fields.update({k: v for k, v in tag_values.items() if k in review.EDITABLE_FIELDS})
    background = mode == "background"

    def again(error: str, status_code: int, *, keep_draft: bool = True) -> Response:
        if background:
            # The page has moved on; it shows this text in a notice with a retry.
            return Response(error, status_code=status_code, media_type="text/plain")
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
        if background:
            return Response(status_code=204, headers=events.trigger(events.PAIR_SKIPPED))
        return _after(
            request, session, user, mode, pair_id, f"Skipped pair #{pair_id}.", events.PAIR_SKIPPED
        )
    try:
        if action in ("approve", "reject"):
            review.validate_decision(decision=action, reason=reason, comment=comment)
            # Checked before the edit is saved: approving a pair ticked not histology is
            # refused as a whole (the tick and the approval contradict each other).
            review.refuse_not_histology(
                decision=action, not_histology=fields.get("not_histology", pair.not_histology)
            )
        if fields:
            pair = review.edit(
                session=session, pair_id=pair_id, user=user, fields=fields, expected_version=version
            )
            version = pair.version
        if action == "save":
            if background:
                return Response(status_code=204, headers=events.trigger(events.PAIR_SAVED))
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
            confirm=confirm,
        )
    except review.ConflictError as exc:
        return again(
            f"{exc}. This is the current version; your changes were not saved.",
            409,
            keep_draft=False,
        )
    except review.ReviewError as exc:
        return again(as_sentence(exc), 422)
    if background:
        return Response(status_code=204, headers=events.trigger(events.PAIR_DECIDED))
    verb = "Approved" if action == "approve" else "Rejected"
    return _after(
        request, session, user, mode, pair_id, f"{verb} pair #{pair_id}.", events.PAIR_DECIDED
    )


@router.post("/pairs/{pair_id}/gold")
def mark_gold(
    pair_id: int,
    request: Request,
    session: SessionDep,
    admin: AdminUser,
    decision: Annotated[Literal["approve", "reject"], Form()],
    reason: Annotated[str | None, Form(max_length=32)] = None,
) -> Response:
    """Admins: give the pair a known answer; it is then mixed into every reviewer's queue
    and their votes on it are scored (gold accuracy on the dashboard)."""
    pair = review.get_pair(session=session, pair_id=pair_id)
    try:
        gold.mark_gold(
            session=session, pair_id=pair_id, admin=admin, decision=decision, reason=reason or None
        )
    except review.ReviewError as exc:
        session.rollback()
        session.refresh(pair)
        return _pane(
            request,
            session,
            pair,
            mode="detail",
            error=as_sentence(exc),
            status_code=422,
        )
    if not is_htmx(request):
        return RedirectResponse(f"/review/pairs/{pair_id}", status_code=303)
    pair = review.get_pair(session=session, pair_id=pair_id)
    verb = "approve" if decision == "approve" else "reject"
    return _pane(request, session, pair, mode="detail", message=f"Pair #{pair_id} is gold: {verb}.")


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
    if mode in ("detail", "history"):
        if not is_htmx(request):
            return RedirectResponse(f"/review/pairs/{pair_id}", status_code=303)
        pair = review.get_pair(session=session, pair_id=pair_id)
        return _pane(
            request, session, pair, mode=mode, message=message, headers=events.trigger(event)
        )
    if not is_htmx(request):
        return RedirectResponse("/review", status_code=303)
    return _pane(
        request, session, _claim(session, user), message=message, headers=events.trigger(event)
    )
