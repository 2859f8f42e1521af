"""What the pair view shows besides the pair's own fields: the ASR-to-corrected word
diff, knowledge-base concepts highlighted in the text, the transcript around the image,
the source video and the tag choices. Pure functions of rows; the pages call them.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from typing import Any

from sqlalchemy.orm import Session

from app import knowledge, models
from app.models import Pair
from app.web import queries

# Seconds of narration shown on each side of the image's span: lecturers often name what
# a slide shows just before it appears or just after it has gone.
TRANSCRIPT_MARGIN_S = 30.0

# Quilt-1M's sub-pathology categories (Ikezogwo et al. 2023), the tag choices; the values
# are the review service's (app.models.SUBPATHOLOGIES), the labels what people read.
_SUBPATHOLOGY_LABELS = {
    "head_and_neck": "Head and neck",
    "soft_tissue_bone": "Soft tissue / bone",
}
SUBPATHOLOGIES: tuple[tuple[str, str], ...] = tuple(
    (value, _SUBPATHOLOGY_LABELS.get(value, value.replace("_", " ").capitalize()))
    for value in models.SUBPATHOLOGIES
)
# Quilt's magnification bins (README: 0 <=10x, 1 20x, 2 >=40x); older rows keep the x value.
MAGNIFICATIONS: tuple[tuple[int, str], ...] = ((0, "≤10×"), (1, "20×"), (2, "≥40×"))

_WORDS = re.compile(r"\S+")


@dataclasses.dataclass(frozen=True)
class DiffPiece:
    op: str  # equal | insert | delete
    text: str


def word_diff(before: str, after: str) -> list[DiffPiece]:
    """Word-level diff of ``before`` -> ``after`` (difflib; the templates render ins/del)."""
    a, b = _WORDS.findall(before or ""), _WORDS.findall(after or "")
    pieces: list[DiffPiece] = []
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            pieces.append(DiffPiece("equal", " ".join(a[i1:i2])))
            continue
        if tag in ("delete", "replace"):
            pieces.append(DiffPiece("delete", " ".join(a[i1:i2])))
        if tag in ("insert", "replace"):
            pieces.append(DiffPiece("insert", " ".join(b[j1:j2])))
    return pieces


DIFFED_FIELDS = ("caption", "medical_text", "roi_text")


def edit_diffs(before: dict | None, after: dict | None) -> dict[str, list[DiffPiece]]:
    """The text fields of one edit in a pair's history as word diffs (the same rendering as
    the ASR vs corrected text): a one-word fix reads as one word, not the whole caption
    replaced. Tags and other fields are left out (the template shows them as before/after)."""
    before, after = before or {}, after or {}
    return {
        name: word_diff(str(before.get(name) or ""), str(value or ""))
        for name, value in after.items()
        if name in DIFFED_FIELDS
    }


def magnification_label(value: int | None) -> str | None:
    if value is None:
        return None
    if value in dict(MAGNIFICATIONS):
        return dict(MAGNIFICATIONS)[value]
    return f"{value}×"


def magnification_choices(current: int | None) -> list[tuple[int, str]]:
    """Quilt's bins, plus the pair's own value when it is an older x value (so that
    saving the form never drops it)."""
    choices = list(MAGNIFICATIONS)
    if current is not None and current not in dict(choices):
        choices.append((current, f"{current}×"))
    return choices


# The frames stage's impurity flags, as the reviewer reads them (workers/vision/impurities).
_IMPURITY_NOTES = {
    "face": "narrator in the lecture frame",
    "text_overlay": "text overlay in the lecture frame",
    "desktop": "desktop or slide software in the lecture frame",
}


def frame_notes(frame: models.Frame | None) -> list[str]:
    """What the frames stage saw in the pair's image, in a few words each: impurities it
    cropped away, quality warnings, its histology score. The reviewer checks the crop
    and the image against these (reject reasons "narrator / desktop / text overlay" and
    "poor image quality")."""
    if frame is None:
        return []
    flags = frame.flags or {}
    notes = [text for flag, text in _IMPURITY_NOTES.items() if flags.get(flag)]
    if frame.crop_box:
        notes.append("cropped to the tissue" + (" around them" if notes else ""))
    quality = flags.get("quality") or {}
    notes += [f"quality: {reason}" for reason in quality.get("reasons") or [] if reason]
    if flags.get("fallback"):
        notes.append("no stable view: sharpest frame of a pan")
    notes.append(f"histology score {frame.histology_score:.2f}")
    return notes


def pair_view(session: Session, pair: Pair) -> dict[str, Any]:
    """Template context for the parts of the pair view that are not plain pair fields."""
    concepts = knowledge.concepts_of(pair.umls)
    segments = queries.transcript_around(
        session=session,
        video_id=pair.video_id,
        start_s=pair.start_s - TRANSCRIPT_MARGIN_S,
        end_s=pair.end_s + TRANSCRIPT_MARGIN_S,
    )
    video = pair.video
    return {
        "concepts": concepts,
        "text_diff": word_diff(pair.noisy_text, pair.corrected_text),
        "medical_marked": knowledge.highlight(pair.medical_text, concepts),
        "roi_marked": knowledge.highlight(pair.roi_text, concepts),
        "corrected_marked": knowledge.highlight(pair.corrected_text, concepts),
        "transcript": [
            {
                "start_s": s.start_s,
                "end_s": s.end_s,
                "text": s.text,
                "inside": s.end_s > pair.start_s and s.start_s < pair.end_s,
            }
            for s in segments
        ],
        "video_url": f"/media/{video.media_path}" if video and video.media_path else None,
        "subpathologies": SUBPATHOLOGIES,
        "magnifications": magnification_choices(pair.magnification),
        "magnification_label": magnification_label(pair.magnification),
        "frame_notes": frame_notes(session.get(models.Frame, pair.frame_id))
        if pair.frame_id
        else [],
    }
