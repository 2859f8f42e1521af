"""Pydantic models of the JSON API (what /api/openapi.json documents)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import SUBPATHOLOGIES, RejectReason

# Ids and versions are 32-bit integer columns: larger numbers are invalid input (422),
# not a database error.
DbInt = Annotated[int, Field(ge=0, le=2**31 - 1)]


class LoginIn(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    username: str
    role: str


class SessionOut(BaseModel):
    user: UserOut
    csrf_token: str = Field(description="Send it back in the X-CSRF-Token header on writes.")


class PairOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    video_id: int
    image_url: str
    start_s: float
    end_s: float
    caption: str
    noisy_text: str
    corrected_text: str
    medical_text: str
    roi_text: str
    umls: list[Any]
    keywords: list[Any]
    magnification: int | None
    subpathology: str | None
    not_histology: bool
    confidence: float
    priority: float
    status: str
    reject_reason: str | None
    reject_comment: str | None
    version: int
    review_count: int = Field(description="Standing reviews so far (k are needed)")
    reviewed_by_id: int | None
    reviewed_at: dt.datetime | None


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: RejectReason | None = None
    comment: str | None = Field(default=None, max_length=2000)
    version: int = Field(
        ge=0, le=2**31 - 1, description="The version the decision was made on (409 if stale)."
    )


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caption: str | None = Field(default=None, max_length=20_000)
    medical_text: str | None = Field(default=None, max_length=20_000)
    roi_text: str | None = Field(default=None, max_length=20_000)
    magnification: int | None = Field(default=None, ge=0, le=200)
    subpathology: Literal[SUBPATHOLOGIES] | None = None  # type: ignore[valid-type]
    not_histology: bool | None = None
    version: DbInt


class HistoryEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    kind: Literal["edit", "review", "adjudication", "undo"]
    created_at: dt.datetime
    username: str | None
    decision: str | None = None
    reason: str | None = None
    comment: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


class StageRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    stage: str
    status: str
    attempts: int
    progress: float
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    duration_s: float | None
    stats: dict[str, Any]
    error: str | None


class VideoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    channel_id: int | None
    source_kind: str
    source_url: str
    title: str | None
    status: str
    error: str | None
    duration_s: float | None
    created_at: dt.datetime


class VideoDetailOut(VideoOut):
    stage_runs: list[StageRunOut]
    pair_counts: dict[str, int]
    segment_count: int


class VideoList(BaseModel):
    total: int
    items: list[VideoOut]


class QueueIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    kind: Literal["auto", "video", "channel"] = "auto"


class QueuedOut(BaseModel):
    kind: Literal["video", "channel"]
    id: int


class ReleaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    version: str
    status: str
    error: str | None
    pair_count: int
    manifest_sha256: str | None
    notes: str | None
    created_at: dt.datetime


class ReleaseIn(BaseModel):
    version: str = Field(min_length=1, max_length=64)
    notes: str | None = Field(default=None, max_length=4000)


class StatsOut(BaseModel):
    pairs: dict[str, int]  # pending, approved, rejected (and disputed when there are any)
    leased: int
    videos: dict[str, int]
    releases: int


# --- review depth (issue 5): queue filters, grid, undo, history, consensus, dashboards --


class PairPage(BaseModel):
    total: int
    items: list[PairOut]


class ClaimBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=24, ge=1, le=48)
    channel_id: DbInt | None = None
    video_id: DbInt | None = None
    source: Literal["file", "upload", "http", "youtube"] | None = None
    magnification: DbInt | None = None


class BatchItemIn(BaseModel):
    pair_id: DbInt
    version: DbInt


class BatchDecisionIn(BaseModel):
    items: list[BatchItemIn] = Field(min_length=1, max_length=200)
    decision: Literal["approve", "reject"]
    reason: RejectReason | None = None
    comment: str | None = Field(default=None, max_length=2000)


class BatchOutcomeOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    pair_id: int
    ok: bool
    status: str | None = None
    version: int | None = None
    error: str | None = None
    conflict: bool = False


class ReviewerHistoryItemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    review_id: int
    pair_id: int
    kind: str
    decision: str
    reason: str | None
    comment: str | None
    created_at: dt.datetime
    undone: bool
    pair_status: str
    pair_version: int
    caption: str
    image_url: str


class IdLabelOut(BaseModel):
    id: int
    label: str


class FilterOptionsOut(BaseModel):
    channels: list[IdLabelOut]
    videos: list[IdLabelOut]
    sources: list[str]
    magnifications: list[int]
    statuses: list[str]


class VoteOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    review_id: int
    reviewer_id: int
    username: str | None
    decision: str
    reason: str | None
    comment: str | None
    created_at: dt.datetime


class AdjudicationItemOut(BaseModel):
    pair: PairOut
    votes: list[VoteOut]


class AdjudicationPage(BaseModel):
    total: int
    items: list[AdjudicationItemOut]


class GoldIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: RejectReason | None = None


class GoldOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    pair_id: int
    decision: str
    reason: str | None
    created_by_id: int | None
    created_at: dt.datetime


class GoldAccuracyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    reviewer_id: int
    username: str
    answered: int
    correct: int
    reason_correct: int
    accuracy: float | None


class PairwiseAgreementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    reviewer_a: str
    reviewer_b: str
    common: int
    percent_agreement: float
    cohen_kappa: float | None


class EditDistanceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    reviewer_a: str
    reviewer_b: str
    common: int
    mean_chars: float
    mean_normalized: float


class AgreementOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    pairwise: list[PairwiseAgreementOut]
    fleiss_kappa: float | None
    fleiss_items: int
    fleiss_raters: int
    krippendorff_alpha: float | None
    alpha_items: int
    caption_edits: list[EditDistanceOut]


class ProgressOut(BaseModel):
    id: int | None
    label: str
    pending: int
    approved: int
    rejected: int
    disputed: int
    total: int
    done: float = Field(description="(approved + rejected) / total")
    yield_: float = Field(alias="yield", description="approved / total")

    model_config = ConfigDict(populate_by_name=True)


class ReviewerStatsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    reviewer_id: int
    username: str
    decisions: int
    approvals: int
    rejections: int
    undos: int
    adjudications: int
    per_hour: float
    median_s_between: float | None
    mean_kappa: float | None
    gold_answered: int
    gold_accuracy: float | None


class ThroughputOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    start: dt.datetime
    username: str
    decisions: int
