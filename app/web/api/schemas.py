"""Pydantic models of the JSON API (what /api/openapi.json documents)."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.models import RejectReason


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
    confidence: float
    priority: float
    status: str
    reject_reason: str | None
    reject_comment: str | None
    version: int
    reviewed_by_id: int | None
    reviewed_at: dt.datetime | None


class DecisionIn(BaseModel):
    decision: Literal["approve", "reject"]
    reason: RejectReason | None = None
    comment: str | None = Field(default=None, max_length=2000)
    version: int = Field(description="The version the decision was made on (409 if stale).")


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caption: str | None = Field(default=None, max_length=20_000)
    medical_text: str | None = Field(default=None, max_length=20_000)
    roi_text: str | None = Field(default=None, max_length=20_000)
    version: int


class HistoryEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    kind: Literal["edit", "review"]
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
    pairs: dict[str, int]
    leased: int
    videos: dict[str, int]
    releases: int
