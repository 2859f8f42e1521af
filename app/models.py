"""ORM models of the curation domain (see docs/architecture.md).

The schema itself comes from the Alembic migrations; tests check that the two agree.
JSON columns hold per-row details whose shape belongs to one stage (stats, flags, word
timings); everything that is filtered or joined on is a real column.
"""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    func,
    text,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON}


class Role(enum.StrEnum):
    admin = "admin"
    reviewer = "reviewer"


class VideoStatus(enum.StrEnum):
    queued = "queued"
    processing = "processing"
    done = "done"
    failed = "failed"  # unreadable or broken input; `error` says why
    skipped = "skipped"  # readable but out of scope (no speech, not English); `error` says why
    cancelled = "cancelled"  # an admin stopped it; `error` says who


class StageStatus(enum.StrEnum):
    pending = "pending"
    queued = "queued"  # due: its message is sent, or will be (``enqueued_at``)
    running = "running"
    done = "done"
    failed = "failed"
    skipped = "skipped"
    cancelled = "cancelled"


class PairStatus(enum.StrEnum):
    pending = "pending"
    approved = "approved"
    rejected = "rejected"
    # k reviews (settings.reviews_per_pair) that disagree: waits for an admin's adjudication.
    disputed = "disputed"


# Quilt-1M's sub-pathology categories (Ikezogwo et al. 2023, fig. 2): the tag's values.
SUBPATHOLOGIES: tuple[str, ...] = (
    "breast",
    "cardiac",
    "cytopathology",
    "dermatopathology",
    "endocrine",
    "gastrointestinal",
    "genitourinary",
    "gynecologic",
    "head_and_neck",
    "hematopathology",
    "hepatobiliary",
    "neuropathology",
    "ophthalmic",
    "pediatric",
    "pulmonary",
    "renal",
    "soft_tissue_bone",
    "other",
)


class ReviewKind(enum.StrEnum):
    review = "review"  # a reviewer's decision (one vote of the k a pair needs)
    adjudication = "adjudication"  # an admin settles a disputed pair (or overrides)
    undo = "undo"  # takes back the review named by undoes_id; nothing is deleted


class RejectReason(enum.StrEnum):
    not_histology = "not_histology"
    impurity = "impurity"  # narrator / desktop / text overlay in the image
    text_mismatch = "text_mismatch"
    poor_quality = "poor_quality"
    duplicate = "duplicate"
    patient_info = "patient_info"
    other = "other"


REJECT_REASON_LABELS: dict[RejectReason, str] = {
    RejectReason.not_histology: "Not histology",
    RejectReason.impurity: "Narrator / desktop / text overlay in the image",
    RejectReason.text_mismatch: "Text does not match image",
    RejectReason.poor_quality: "Poor image quality",
    RejectReason.duplicate: "Duplicate",
    RejectReason.patient_info: "Identifiable patient information",
    RejectReason.other: "Other",
}


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.reviewer)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Sessions carry the version they began under; logout and a password change bump it,
    # which ends every session of the user, copied cookies included.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # Consecutive failed logins, and the lockout they led to.
    failed_logins: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class LoginFailure(Base):
    """One failed login, by client address: the per-address rate limit counts these."""

    __tablename__ = "login_failures"
    __table_args__ = (Index("ix_login_failures_address_at", "address", "at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    address: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Channel(Base):
    """A source that expands into videos: a YouTube channel or playlist, a feed."""

    __tablename__ = "channels"
    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    title: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The outbox of its listing task, as for stage runs: when it was last sent.
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # Which listed videos to take (duration range, title keywords, upload date), and how
    # often to list the channel again for new ones (None: only when asked).
    filters: Mapped[dict] = mapped_column(JSON, default=dict, server_default=text("'{}'"))
    recrawl_every_s: Mapped[int | None] = mapped_column(Integer)
    crawled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    videos: Mapped[list[Video]] = relationship(back_populates="channel")


class Video(Base):
    __tablename__ = "videos"
    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="SET NULL"))
    source_kind: Mapped[str] = mapped_column(String(16))  # file | upload | http | youtube
    source_url: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str | None] = mapped_column(String(512))
    status: Mapped[str] = mapped_column(String(16), default=VideoStatus.queued, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    # Path of the fetched media, relative to settings.media_root.
    media_path: Mapped[str | None] = mapped_column(String(1024))
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    duration_s: Mapped[float | None] = mapped_column(Float)
    fps: Mapped[float | None] = mapped_column(Float)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    has_audio: Mapped[bool | None] = mapped_column(Boolean)
    language: Mapped[str | None] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # The same file (sha256) already processed: this video links to it and runs nothing.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("videos.id", ondelete="SET NULL", name="fk_videos_duplicate_of_id_videos")
    )
    # What the source said of itself (yt-dlp: uploader, upload date, licence, captions...).
    source_info: Mapped[dict] = mapped_column(JSON, default=dict, server_default=text("'{}'"))

    channel: Mapped[Channel | None] = relationship(back_populates="videos")
    stage_runs: Mapped[list[StageRun]] = relationship(
        back_populates="video", cascade="all, delete-orphan", order_by="StageRun.id"
    )


class StageRun(Base):
    """The latest run of one stage on one video. Re-running a stage updates this row."""

    __tablename__ = "stage_runs"
    __table_args__ = (
        UniqueConstraint("video_id", "stage"),
        Index("ix_stage_runs_status", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    stage: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=StageStatus.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    duration_s: Mapped[float | None] = mapped_column(Float)
    stats: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    # The outbox: when the message of a queued run was last sent (None: not yet).
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    # A running stage's lease, renewed by its worker's heartbeat; past it, the reconciler
    # takes the worker for dead and queues the stage again.
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    worker: Mapped[str | None] = mapped_column(String(255))  # host:pid holding the lease
    # The stage's code version and a digest of the settings it ran with (app.pipeline).
    pipeline_version: Mapped[str | None] = mapped_column(String(64))

    video: Mapped[Video] = relationship(back_populates="stage_runs")


class TranscriptSegment(Base):
    __tablename__ = "transcript_segments"
    __table_args__ = (Index("ix_transcript_segments_video_start", "video_id", "start_s"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    avg_logprob: Mapped[float | None] = mapped_column(Float)
    no_speech_prob: Mapped[float | None] = mapped_column(Float)
    # [{"word": str, "start": float, "end": float, "probability": float}, ...]
    words: Mapped[list] = mapped_column(JSON, default=list)
    # Output of the text stage for this segment: corrected text, corrections, concepts.
    text_info: Mapped[dict] = mapped_column(JSON, default=dict)


class Frame(Base):
    """A representative image of a histology interval, as kept by the frames stage."""

    __tablename__ = "frames"
    __table_args__ = (Index("ix_frames_video_start", "video_id", "start_s"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    image_path: Mapped[str] = mapped_column(String(1024))  # relative to media_root
    t_s: Mapped[float] = mapped_column(Float)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    histology_score: Mapped[float] = mapped_column(Float)
    is_histology: Mapped[bool] = mapped_column(Boolean)
    magnification: Mapped[int | None] = mapped_column(Integer)
    sharpness: Mapped[float | None] = mapped_column(Float)
    phash: Mapped[str | None] = mapped_column(String(32), index=True)
    flags: Mapped[dict] = mapped_column(JSON, default=dict)
    crop_box: Mapped[list | None] = mapped_column(JSON)
    # False: shown to reviewers but not paired (narrator over the tissue, poor quality, a
    # duplicate); flags say why.
    pairable: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    magnification_confidence: Mapped[float | None] = mapped_column(Float)
    # The sharpest near-duplicate in the corpus (workers.vision.dedup), when not this one.
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("frames.id", ondelete="SET NULL"), index=True
    )


class FrameHashBand(Base):
    """One 16-bit band of a frame's pHash: the corpus-wide near-duplicate index
    (multi-index hashing; workers/vision/dedup.py)."""

    __tablename__ = "frame_hash_bands"
    __table_args__ = (Index("ix_frame_hash_bands_band_value", "band", "value"),)
    frame_id: Mapped[int] = mapped_column(
        ForeignKey("frames.id", ondelete="CASCADE"), primary_key=True
    )
    band: Mapped[int] = mapped_column(Integer, primary_key=True)
    value: Mapped[int] = mapped_column(Integer)


class Pair(Base):
    """A candidate image-text pair: what pathologists review and releases freeze."""

    __tablename__ = "pairs"
    __table_args__ = (
        Index("ix_pairs_status_priority", "status", "priority", "id"),
        Index("ix_pairs_video", "video_id"),
        # The claim's walk: only pending pairs, in queue order. Partial, so that it stays
        # as small as the backlog however many pairs have been decided: the review queue's
        # claim must stay flat as pairs grow to millions.
        Index(
            "ix_pairs_pending_queue",
            "priority",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # Identity of a pair across re-runs of the pipeline: hash of video, image span and
    # medical text. Re-running align never creates a second row with the same key.
    pair_key: Mapped[str] = mapped_column(String(64), unique=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id", ondelete="CASCADE"))
    frame_id: Mapped[int | None] = mapped_column(ForeignKey("frames.id", ondelete="SET NULL"))
    image_path: Mapped[str] = mapped_column(String(1024))  # relative to media_root
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    caption: Mapped[str] = mapped_column(Text)
    noisy_text: Mapped[str] = mapped_column(Text, default="")
    corrected_text: Mapped[str] = mapped_column(Text, default="")
    medical_text: Mapped[str] = mapped_column(Text, default="")
    roi_text: Mapped[str] = mapped_column(Text, default="")
    umls: Mapped[list] = mapped_column(JSON, default=list)
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    magnification: Mapped[int | None] = mapped_column(Integer)
    # Reviewer tags: Quilt's sub-pathology category and "not histology".
    subpathology: Mapped[str | None] = mapped_column(String(32))
    not_histology: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    scores: Mapped[dict] = mapped_column(JSON, default=dict)
    # The text cleanup of this pair step by step, so a reviewer can see what changed and
    # why: noisy -> corrected with the corrections and their scores, keywords, validated
    # concepts (AlignedPair.denoising).
    denoising: Mapped[dict] = mapped_column(JSON, default=dict, server_default="{}")
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    # Lower is reviewed first; defaults to the pipeline confidence.
    priority: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16), default=PairStatus.pending)
    reject_reason: Mapped[str | None] = mapped_column(String(32))
    reject_comment: Mapped[str | None] = mapped_column(Text)
    # Optimistic concurrency: every write bumps it; a stale write is refused.
    version: Mapped[int] = mapped_column(Integer, default=1)
    # Consensus: active (not undone) reviews so far, and how many the pair needs (None:
    # settings.reviews_per_pair). A vote that does not settle the pair leaves version alone.
    review_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    reviews_needed: Mapped[int | None] = mapped_column(Integer)
    reviewed_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )

    video: Mapped[Video] = relationship()


class PairRevision(Base):
    """Append-only history of a pair's caption fields: who changed what, before and after."""

    __tablename__ = "pair_revisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    before: Mapped[dict] = mapped_column(JSON)
    after: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Review(Base):
    """One decision on one pair (append-only): a vote, an adjudication, or an undo.

    An undo is a row of its own (kind ``undo``, ``undoes_id`` naming the review it takes
    back); the undone review stays. ``status_before`` / ``status_after`` record what the
    row did to the pair, ``pair_version`` the version the decision was made on.
    """

    __tablename__ = "reviews"
    __table_args__ = (Index("ix_reviews_reviewer_history", "reviewer_id", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(
        String(16), default=ReviewKind.review, server_default="review"
    )
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject (undo: the undone one)
    reason: Mapped[str | None] = mapped_column(String(32))
    comment: Mapped[str | None] = mapped_column(Text)
    undoes_id: Mapped[int | None] = mapped_column(ForeignKey("reviews.id"), unique=True)
    pair_version: Mapped[int | None] = mapped_column(Integer)
    status_before: Mapped[str | None] = mapped_column(String(16))
    status_after: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class GoldAnswer(Base):
    """A pair with a known answer, mixed into reviewers' queues to measure their accuracy."""

    __tablename__ = "gold_answers"
    pair_id: Mapped[int] = mapped_column(
        ForeignKey("pairs.id", ondelete="CASCADE"), primary_key=True
    )
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    reason: Mapped[str | None] = mapped_column(String(32))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Assignment(Base):
    """A reviewer's lease on a pair. Expired, uncompleted leases go back to the queue."""

    __tablename__ = "assignments"
    __table_args__ = (
        UniqueConstraint("pair_id", "reviewer_id"),
        Index("ix_assignments_open", "pair_id", "completed_at", "expires_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    pair_id: Mapped[int] = mapped_column(ForeignKey("pairs.id", ondelete="CASCADE"))
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    leased_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    completed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Release(Base):
    """A versioned, immutable dataset release: approved pairs frozen at creation time."""

    __tablename__ = "releases"
    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="building")  # building|ready|failed
    error: Mapped[str | None] = mapped_column(Text)
    pair_count: Mapped[int] = mapped_column(Integer, default=0)
    path: Mapped[str | None] = mapped_column(String(1024))  # relative to releases_root
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The release this one was cut after (its changelog is the diff against it), and the
    # selection it froze (statuses, sources, minimum reviews, cut-off date).
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("releases.id", ondelete="SET NULL", name="fk_releases_parent_id_releases")
    )
    selection: Mapped[dict] = mapped_column(JSON, default=dict, server_default=text("'{}'"))


class ReleaseItem(Base):
    """A pair as frozen into a release: a copy, so later edits never change a release."""

    __tablename__ = "release_items"
    __table_args__ = (UniqueConstraint("release_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id", ondelete="CASCADE"))
    pair_id: Mapped[int | None] = mapped_column(ForeignKey("pairs.id", ondelete="SET NULL"))
    key: Mapped[str] = mapped_column(String(64))
    split: Mapped[str] = mapped_column(String(8))  # train | val | test
    data: Mapped[dict] = mapped_column(JSON)


class TrainingRun(Base):
    """A fine-tune of a CLIP model on a release, run by open_clip's own trainer on the
    ``gpu`` queue: what was asked, the argv it ran, its progress, loss curve and checkpoint."""

    __tablename__ = "training_runs"
    __table_args__ = (Index("ix_training_runs_status", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    model: Mapped[str] = mapped_column(String(255))  # an open_clip name or local-dir:PATH
    pretrained: Mapped[str | None] = mapped_column(String(1024))
    config: Mapped[dict] = mapped_column(JSON, default=dict)  # epochs, batch size, lr, ...
    argv: Mapped[list] = mapped_column(JSON, default=list)  # what open_clip_train.main ran
    progress: Mapped[dict] = mapped_column(JSON, default=dict)  # epoch, step, steps
    loss_curve: Mapped[list] = mapped_column(JSON, default=list)  # [[step, loss], ...]
    output_dir: Mapped[str | None] = mapped_column(String(1024))
    checkpoint_path: Mapped[str | None] = mapped_column(String(1024))
    checkpoint_sha256: Mapped[str | None] = mapped_column(String(64))
    device: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(255))
    pid: Mapped[int | None] = mapped_column(Integer)  # the trainer's process group, to cancel
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    wall_s: Mapped[float | None] = mapped_column(Float)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    lease_expires_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Evaluation(Base):
    """CLIP_benchmark on a checkpoint: a release's split or an evaluation folder."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_status", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL")
    )
    checkpoint_path: Mapped[str] = mapped_column(String(1024))
    model: Mapped[str] = mapped_column(String(255))
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"))
    dataset_path: Mapped[str | None] = mapped_column(String(1024))  # an evaluation folder
    split: Mapped[str] = mapped_column(String(16), default="test")
    # zeroshot_retrieval | zeroshot_classification | linear_probe
    task: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    metrics: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEvent(Base):
    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, server_default=func.now()
    )
