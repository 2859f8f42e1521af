"""Caption edits and tags: ``edit`` appends a PairRevision with the before and after
values, under optimistic concurrency (``UPDATE ... WHERE version = :seen``; no row changed
means someone else wrote first: ``ConflictError``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import (
    SUBPATHOLOGIES,
    Pair,
    PairRevision,
    User,
)
from app.services import audit
from app.services.review.errors import ConflictError, ReviewError
from app.services.review.rows import bump, get_pair

TEXT_FIELDS: tuple[str, ...] = ("caption", "medical_text", "roi_text")
TAG_FIELDS: tuple[str, ...] = ("magnification", "subpathology", "not_histology")
EDITABLE_FIELDS: tuple[str, ...] = TEXT_FIELDS + TAG_FIELDS
MAX_TEXT_LEN = 20_000
# A caption is what a CLIP model is trained on: a sentence or a few, not a transcript.
MAX_CAPTION_LEN = 2_000
# Bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069) make text display in an
# order other than the one stored (a caption that reads one way and trains another): they
# are stripped from text fields on save, silently, since they are invisible where pasted.
BIDI_CONTROLS = dict.fromkeys([*range(0x202A, 0x202F), *range(0x2066, 0x206A)])


def strip_bidi(text: str) -> str:
    """``text`` without bidi override or isolate characters."""
    return text.translate(BIDI_CONTROLS)


def _check_field(name: str, value: Any) -> None:
    if name in TEXT_FIELDS:
        if not isinstance(value, str):
            raise ReviewError(f"{name}: must be text")
        limit = MAX_CAPTION_LEN if name == "caption" else MAX_TEXT_LEN
        if len(value) > limit:
            raise ReviewError(f"{name}: at most {limit:,} characters")
    elif name == "magnification":
        # Quilt's bins 0-2; older rows keep the objective's x value (e.g. 20).
        if value is not None and (type(value) is not int or not 0 <= value <= 200):
            raise ReviewError("magnification: a bin (0, 1, 2), an x value, or empty")
    elif name == "subpathology":
        if value is not None and value not in SUBPATHOLOGIES:
            raise ReviewError(f"subpathology: one of {', '.join(SUBPATHOLOGIES)}, or empty")
    elif name == "not_histology" and type(value) is not bool:
        raise ReviewError("not_histology: true or false")


def edit(
    *,
    session: Session,
    pair_id: int,
    user: User,
    fields: dict[str, Any],
    expected_version: int,
) -> Pair:
    """Change caption fields and tags (EDITABLE_FIELDS); append a PairRevision with the
    before and after values. Text fields lose bidi control characters (``strip_bidi``);
    a caption is at most MAX_CAPTION_LEN characters, other text MAX_TEXT_LEN.

    Fields equal to their current value are ignored; when nothing changes, nothing is
    written (but a stale ``expected_version`` is still refused).
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ReviewError(f"not editable: {', '.join(sorted(unknown))}")
    fields = {
        k: strip_bidi(v) if k in TEXT_FIELDS and isinstance(v, str) else v
        for k, v in fields.items()
    }
    for name, value in fields.items():
        _check_field(name, value)
    if "caption" in fields and not fields["caption"].strip():
        raise ReviewError("caption: must not be empty")
    pair = get_pair(session=session, pair_id=pair_id)
    session.refresh(pair)
    if pair.version != expected_version:
        raise ConflictError(
            f"pair {pair_id} was changed by someone else (version {pair.version}, "
            f"you had {expected_version})",
            current_version=pair.version,
        )
    before = {k: getattr(pair, k) for k, v in fields.items() if getattr(pair, k) != v}
    if not before:
        return pair
    after = {k: fields[k] for k in before}
    bump(session=session, pair_id=pair_id, expected_version=expected_version, values=after)
    session.add(PairRevision(pair_id=pair_id, user_id=user.id, before=before, after=after))
    audit.record(
        session=session,
        user=user,
        action="pair.edit",
        target=f"pair:{pair_id}",
        fields=sorted(after),
        version=expected_version + 1,
    )
    session.commit()
    session.refresh(pair)
    return pair
