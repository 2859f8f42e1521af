"""Dataclasses passed between the pipeline stage cores, and the job a core is given.

Each stage core is a pure function over files and these dataclasses: no SQLAlchemy, no
Celery. The runner (workers/runner.py) hands a core a ``StageJob`` holding the artifacts
the stage reads (as the pipeline table, app/pipeline.py, names them) and takes back a
``StageOutput``; a store keeps the artifacts between stages: database rows and media
files for the workers, an output folder for ``quilt pipeline run``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from app.settings import Settings


class StageError(Exception):
    """Bad or out-of-scope input. ``status`` goes on the video row, ``reason`` is one line.

    ``failed``: the input cannot be processed (corrupt, empty, not a video).
    ``skipped``: the input is readable but out of scope (no speech, not English).
    """

    def __init__(self, reason: str, *, status: Literal["failed", "skipped"] = "failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TransientError(StageError):
    """A fault that may pass on its own (a network timeout, a reset connection, a server's
    5xx or 429): the runner retries it by the stage's retry policy, and only after the
    last attempt does the video fail, with this reason."""


@dataclass
class StageJob:
    """What a stage core gets: its inputs by artifact name, the settings it builds its
    options from, a progress callback (fraction of the stage done), and ``files``: a
    fresh folder for the files it writes (None where the store keeps none)."""

    inputs: dict[str, Any]
    settings: Settings
    progress: Callable[[float], None] | None = None
    files: Path | None = None


@dataclass
class StageOutput:
    """What a stage core returns: the artifacts it writes, by name, and its stats."""

    artifacts: dict[str, Any]
    stats: dict[str, Any] = field(default_factory=dict)


# --- fetch / probe -------------------------------------------------------------------


@dataclass
class ProbeResult:
    path: str
    sha256: str
    size_bytes: int
    duration_s: float
    has_video: bool
    has_audio: bool
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    video_codec: str | None = None
    audio_codec: str | None = None


@dataclass
class MediaSource:
    """Where a video comes from: ``kind`` is file, upload, http or youtube."""

    kind: str
    location: str  # a local path for file and upload, else a URL


@dataclass
class FetchedMedia:
    """A video on local disk, probed; ``title`` is the source's own title when it has one."""

    path: Path
    probe: ProbeResult
    title: str | None = None


@dataclass
class SourceEntry:
    """One video found by expanding a source URL (a channel or playlist gives many), with
    what the listing said of it. yt-dlp's flat extraction makes one request per page of
    the listing and none per video, so only some fields are ever there (None otherwise):

    - YouTube channels and playlists: title, duration, uploader and channel (name, id),
      view count, availability (public, unlisted, ...), live status, and an upload date
      that is approximate (from "3 weeks ago": yt-dlp's ``approximate_date``).
    - RSS / podcast feeds (the generic extractor): title, duration (``itunes:duration``)
      and the upload date (``pubDate``).
    - license and captions are not in a flat listing of either; they are kept when an
      extractor gives full video entries in its listing.
    """

    url: str
    title: str | None = None
    external_id: str | None = None
    duration_s: float | None = None
    uploader: str | None = None
    channel: str | None = None
    channel_id: str | None = None
    upload_date: str | None = None  # ISO date, YYYY-MM-DD
    view_count: int | None = None
    availability: str | None = None
    live_status: str | None = None
    license: str | None = None
    # Whether subtitles or automatic captions exist (None: the listing does not say).
    has_captions: bool | None = None

    def source_info(self) -> dict[str, Any]:
        """The source's metadata as ``Video.source_info`` keeps it: the fields the listing
        gave, less the url, title and duration (their own columns)."""
        skip = ("url", "title", "duration_s")
        return {k: v for k, v in asdict(self).items() if k not in skip and v is not None}


# --- asr -----------------------------------------------------------------------------


@dataclass
class Word:
    word: str
    start: float
    end: float
    probability: float


@dataclass
class Segment:
    idx: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    compression_ratio: float | None = None


@dataclass
class Transcript:
    language: str
    language_probability: float
    duration_s: float
    segments: list[Segment] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]


# --- frames --------------------------------------------------------------------------


@dataclass
class KeptFrame:
    """A representative image of one histology interval, written to ``image_path``."""

    image_path: str
    t_s: float  # time of the representative frame
    start_s: float  # the interval it stands for
    end_s: float
    width: int
    height: int
    histology_score: float
    is_histology: bool
    magnification: int | None = None  # Quilt's bins: 0 (<=10x), 1 (20x), 2 (>=40x)
    sharpness: float | None = None
    phash: str | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    crop_box: list[int] | None = None  # x, y, w, h in the source frame
    # False: not to be paired (narrator over the tissue, poor quality, a duplicate);
    # flags say why. The frame is still stored and shown to reviewers.
    pairable: bool = True
    magnification_confidence: float | None = None
    duplicate_of_id: int | None = None  # corpus-wide duplicate link (frames.id), set by persist


@dataclass
class FramesResult:
    frames: list[KeptFrame] = field(default_factory=list)
    # Consecutive histology time spans, (start_s, end_s).
    chunks: list[tuple[float, float]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    def pairable(self) -> tuple[FramesResult, list[int]]:
        """The frames to pair (not the narrator-occluded, poor or duplicate ones), and for
        each its index in ``frames``, so that pairs can point back at the full list."""
        index_map = [i for i, f in enumerate(self.frames) if f.pairable]
        chosen = [self.frames[i] for i in index_map]
        return FramesResult(frames=chosen, chunks=self.chunks, stats=self.stats), index_map


# --- text ----------------------------------------------------------------------------


@dataclass
class Correction:
    original: str
    replacement: str
    score: float
    concept_id: str | None = None


@dataclass
class Concept:
    concept_id: str
    name: str
    types: list[str]
    mention: str
    score: float


@dataclass
class Sentence:
    """A sentence of narration with its time span and the text stage's findings."""

    start_s: float
    end_s: float
    noisy_text: str
    corrected_text: str
    corrections: list[Correction] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    concepts: list[Concept] = field(default_factory=list)
    is_medical: bool = False
    is_roi: bool = False
    extractor: str = "rule"  # who decided is_medical / is_roi: "rule" or "llm"


@dataclass
class TextResult:
    sentences: list[Sentence] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


# --- align ---------------------------------------------------------------------------


@dataclass
class AlignedPair:
    """One (image, medical text) pair. Field names match pairs.jsonl and the pairs table."""

    frame_index: int  # index into FramesResult.frames
    image_path: str
    start_s: float
    end_s: float
    text: str  # the caption
    noisy_text: str
    corrected_text: str
    medical_text: str
    roi_text: str
    umls: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)
    magnification: int | None = None
    scores: dict[str, float] = field(default_factory=dict)
    confidence: float = 0.0
    # The text cleanup step by step: noisy -> corrected with each correction and its
    # score, the keywords and the validated concepts of the medical sentences.
    denoising: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlignResult:
    pairs: list[AlignedPair] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def to_dict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
