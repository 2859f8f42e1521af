"""Pydantic models of the JSON API (what /api/openapi.json documents).

Where a service already returns a dataclass (history entries, votes, batch outcomes,
agreement and dashboard figures), the response model is made from it (``_out``), so the
fields are declared once, in the service. The others describe ORM rows (pairs, videos,
releases) or request bodies and are written out here.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from app.models import SUBPATHOLOGIES, RejectReason
from app.services.adjudication import Vote
from app.services.agreement import AgreementReport, EditDistance, PairwiseAgreement
from app.services.channels import ChannelYield, FilteredEntry, Listing
from app.services.dashboards import Progress, ReviewerStats, ThroughputBucket
from app.services.evaluation import Benchmark, EvaluationRow, ReleaseGroup
from app.services.gold import GoldAccuracy
from app.services.review import BatchOutcome, HistoryEntry, ReviewerHistoryItem

# Ids and versions are 32-bit integer columns: larger numbers are invalid input (422),
# not a database error.
DbInt = Annotated[int, Field(ge=0, le=2**31 - 1)]


def _out(
    source: type,
    name: str,
    *,
    drop: tuple[str, ...] = (),
    config: ConfigDict | None = None,
    **fields: Any,
) -> type[BaseModel]:
    """The response model ``name`` of the service dataclass ``source``: its fields in
    order, with their types and defaults, less ``drop``; ``fields`` (``(type, default or
    Field(...))``) add fields (a property's value) or replace one in place (a nested
    dataclass by its response model). Read from the dataclass's attributes."""
    hints = typing.get_type_hints(source)
    declared: dict[str, Any] = {
        f.name: (hints[f.name], ... if f.default is dataclasses.MISSING else f.default)
        for f in dataclasses.fields(source)
        if f.name not in drop
    }
    return create_model(
        name,
        __config__=ConfigDict(from_attributes=True, **(config or {})),
        __module__=__name__,
        **{**declared, **fields},
    )


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
    confirm: bool = Field(
        default=False,
        description="Change a settled pair (approved or rejected) on purpose; without it, 409.",
    )


class EditIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caption: str | None = Field(
        default=None, max_length=2_000, description="At most 2,000 characters (a caption)."
    )
    medical_text: str | None = Field(default=None, max_length=20_000)
    roi_text: str | None = Field(default=None, max_length=20_000)
    magnification: int | None = Field(default=None, ge=0, le=200)
    subpathology: Literal[SUBPATHOLOGIES] | None = None
    not_histology: bool | None = None
    version: DbInt


HistoryEntryOut = _out(HistoryEntry, "HistoryEntryOut")


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
    pipeline_version: str | None


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
    duplicate_of_id: int | None


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


class StageVersionOut(BaseModel):
    stage: str
    queue: str
    version: str  # what a run made now would record
    outdated: int  # finished runs made by another version


class RerunIn(BaseModel):
    stage: str = Field(max_length=16)
    channel_id: int | None = Field(None, ge=1, le=2**31 - 1)


class RerunOut(BaseModel):
    stage: str
    video_ids: list[int]


class CancelledOut(BaseModel):
    cancelled_videos: int


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


# --- the review workspace: queue filters, grid, undo, history, adjudication, dashboards --


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
    confirm: bool = Field(
        default=False,
        description="Change a settled pair (approved or rejected) on purpose; without it, 409.",
    )


class UndoIn(BaseModel):
    confirm: bool = Field(
        default=False,
        description="Undo a decision whose pair is in a release; without it, 409. Releases "
        "stay as they are; the next release picks the change up.",
    )


BatchOutcomeOut = _out(BatchOutcome, "BatchOutcomeOut")
# The API gives the image's URL where the service has its path under the media root.
ReviewerHistoryItemOut = _out(
    ReviewerHistoryItem, "ReviewerHistoryItemOut", drop=("image_path",), image_url=(str, ...)
)


class IdLabelOut(BaseModel):
    id: int
    label: str


class FilterOptionsOut(BaseModel):
    channels: list[IdLabelOut]
    videos: list[IdLabelOut]
    sources: list[str]
    magnifications: list[int]
    statuses: list[str]


VoteOut = _out(Vote, "VoteOut")


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


GoldAccuracyOut = _out(GoldAccuracy, "GoldAccuracyOut", accuracy=(float | None, ...))
PairwiseAgreementOut = _out(PairwiseAgreement, "PairwiseAgreementOut")
EditDistanceOut = _out(EditDistance, "EditDistanceOut")
AgreementOut = _out(
    AgreementReport,
    "AgreementOut",
    pairwise=(list[PairwiseAgreementOut], ...),
    caption_edits=(list[EditDistanceOut], ...),
)
ProgressOut = _out(
    Progress,
    "ProgressOut",
    config=ConfigDict(populate_by_name=True),
    total=(int, ...),
    done=(float, Field(description="(approved + rejected) / total")),
    yield_=(float, Field(alias="yield", description="approved / total")),
)
ReviewerStatsOut = _out(ReviewerStats, "ReviewerStatsOut")
ThroughputOut = _out(ThroughputBucket, "ThroughputOut")


# --- channels -------------------------------------------------------------------------


class ChannelFiltersIn(BaseModel):
    """Which listed videos a channel takes (app.services.channels.ChannelFilters). A
    listing that does not say a video's duration or upload date lets it through those."""

    model_config = ConfigDict(extra="forbid")
    min_duration_s: float | None = Field(None, ge=0, le=7 * 86400)
    max_duration_s: float | None = Field(None, ge=0, le=7 * 86400)
    include_keywords: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list,
        max_length=50,
        description="Take a title with any of these (case-insensitive); empty: any title.",
    )
    exclude_keywords: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list,
        max_length=50,
        description="Leave out a title with any of these (case-insensitive).",
    )
    uploaded_after: dt.date | None = Field(None, description="Uploaded on or after this date.")
    skip_seen: bool = Field(True, description="Leave out a URL that is a video elsewhere already.")


class ChannelFiltersOut(ChannelFiltersIn):
    model_config = ConfigDict(extra="ignore")


RecrawlSeconds = Annotated[int, Field(ge=600, le=366 * 86400)]


class ChannelQueueIn(BaseModel):
    url: str = Field(min_length=1, max_length=2048)
    filters: ChannelFiltersIn | None = None
    recrawl_every_s: RecrawlSeconds | None = Field(
        None, description="List the channel again this often (new videos only); null: never."
    )


class ChannelPatchIn(BaseModel):
    """What is sent is replaced (``filters`` as a whole); ``recrawl_every_s: null`` stops
    the re-crawl."""

    model_config = ConfigDict(extra="forbid")
    filters: ChannelFiltersIn | None = None
    recrawl_every_s: RecrawlSeconds | None = None


class ChannelOut(BaseModel):
    id: int
    url: str
    title: str | None
    status: str
    error: str | None
    created_at: dt.datetime
    crawled_at: dt.datetime | None
    next_crawl_at: dt.datetime | None
    recrawl_every_s: int | None
    filters: ChannelFiltersOut
    video_count: int


FilteredEntryOut = _out(FilteredEntry, "FilteredEntryOut")
ListingOut = _out(Listing, "ListingOut", filtered_entries=(list[FilteredEntryOut], ...))
ChannelYieldOut = _out(ChannelYield, "ChannelYieldOut")


class ChannelDetailOut(ChannelOut):
    yield_: ChannelYieldOut = Field(alias="yield")
    last_listing: ListingOut | None
    model_config = ConfigDict(populate_by_name=True)


class CrawlOut(BaseModel):
    channel_id: int
    status: str
    broker_down: str | None


# --- releases: creation options, detail, diff -------------------------------------------


class ReleaseCreateIn(ReleaseIn):
    """A new release: ReleaseIn plus the selection and sharding options of
    ``quilt release create``."""

    samples_per_shard: int | None = Field(default=None, ge=1, le=1_000_000)
    min_shards: int | None = Field(default=None, ge=1, le=10_000)
    sources: list[Literal["file", "upload", "http", "youtube"]] = Field(
        default_factory=list, max_length=4
    )
    min_reviews: int | None = Field(default=None, ge=0, le=10_000)
    until: str | None = Field(default=None, max_length=40)  # ISO date or datetime, UTC
    parent: str | None = Field(default=None, min_length=1, max_length=64)


class ReleaseDetailOut(ReleaseOut):
    parent_id: int | None
    selection: dict[str, Any]


class ReleaseDiffEntryOut(BaseModel):
    pair_id: int
    old_key: str | None
    new_key: str | None
    split: str
    caption: str
    changed: list[str]
    old_caption: str | None


class ReleaseDiffOut(BaseModel):
    old_version: str | None
    new_version: str
    counts: dict[str, int]
    added: list[ReleaseDiffEntryOut]
    removed: list[ReleaseDiffEntryOut]
    edited: list[ReleaseDiffEntryOut]


# --- evaluations (app/services/evaluation.py) ------------------------------------------


class EvaluationIn(BaseModel):
    """A checkpoint (or a training run's) evaluated on a release or an evaluation folder."""

    task: Literal["zeroshot_retrieval", "zeroshot_classification", "linear_probe"]
    checkpoint: str | None = Field(default=None, max_length=1024)
    model: str | None = Field(default=None, max_length=255)
    training_run_id: DbInt | None = None
    release: str | None = Field(default=None, max_length=64)
    dataset_path: str | None = Field(default=None, max_length=1024)
    split: Literal["test", "val", "train"] = "test"


class EvaluationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())
    id: int
    training_run_id: int | None
    checkpoint_path: str
    model: str
    release_id: int | None
    dataset_path: str | None
    split: str
    task: str
    status: str
    metrics: dict[str, Any] = Field(
        description="metric name -> value, and `run`: the CLIP_benchmark argv, device, samples"
    )
    error: str | None
    enqueued_at: dt.datetime | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class EvaluationQueuedOut(EvaluationOut):
    broker_down: str | None = None


EvaluationRowOut = _out(EvaluationRow, "EvaluationRowOut", config={"protected_namespaces": ()})
ReleaseGroupOut = _out(ReleaseGroup, "ReleaseGroupOut")
BenchmarkOut = _out(
    Benchmark,
    "BenchmarkOut",
    rows=(list[EvaluationRowOut], ...),
    by_release=(list[ReleaseGroupOut], ...),
)


# --- training runs (app/services/training.py) ----------------------------------------------


class TrainingIn(BaseModel):
    model_config = ConfigDict(protected_namespaces=())
    release: str = Field(min_length=1, max_length=64, description="release version (or id)")
    model: str = Field(
        min_length=1,
        max_length=1024,
        description="an open_clip model name, or local-dir:FOLDER under the training folders",
    )
    pretrained: str | None = Field(default=None, max_length=1024)
    epochs: int = Field(default=1, ge=1, le=1000)
    batch_size: int = Field(default=32, ge=2, le=65536)
    lr: float = Field(default=5e-6, gt=0, le=1)
    wd: float = Field(default=0.1, ge=0, le=10)
    warmup: int | None = Field(default=None, ge=0, le=10**7)
    workers: int = Field(default=2, ge=0, le=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)


class TrainingRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())
    id: int
    release_id: int
    status: str = Field(description="queued, running, done, failed or cancelled")
    model: str
    pretrained: str | None
    config: dict[str, Any]
    argv: list[str] = Field(description="the command line of open_clip's trainer")
    progress: dict[str, Any] = Field(description="epoch, epochs, step, steps, samples_per_s, val")
    loss_curve: list[list[float]] = Field(description="[step, loss] points")
    output_dir: str | None
    checkpoint_path: str | None = Field(
        description="the final epoch_N.pt, under the training folder"
    )
    checkpoint_sha256: str | None
    device: str | None
    worker: str | None
    pid: int | None
    attempts: int
    error: str | None
    wall_s: float | None
    enqueued_at: dt.datetime | None
    lease_expires_at: dt.datetime | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
