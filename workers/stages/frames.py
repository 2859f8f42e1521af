"""Frames stage: from a lecture video to representative histology images with time spans.

Quilt-1M (Ikezogwo et al., NeurIPS 2023, section 3) kept one or a few images per stretch
of histology on screen: it classified sampled frames, grouped consecutive histology frames
into chunks, found stable intervals inside a chunk (SSIM between consecutive frames on
crops > 0.98) and kept the per-pixel median frame of a stable interval, which removes the
pointer, encoding noise and transient overlays. This module does the same, in one pass:

- Sampling (vision.sampling): one PyAV decode, in a thread of its own a few samples
  ahead of the analysis, yields a frame every ``sample_s`` seconds (by presentation
  time, so variable frame rate videos are sampled by time) and at every scene cut;
  frames nothing references are not decoded, and only the yielded ones are converted.
- Detection: ``histology.StainRuleDetector`` on the frame downscaled to 320 px, behind the
  ``HistologyDetector`` protocol so a learned ensemble can be passed in instead.
- Chunks: maximal runs of consecutive samples scoring >= ``histology_threshold``; a chunk
  shorter than ``min_chunk_s`` (its samples times ``sample_s``) is dropped as a flash.
- Runs: inside a chunk, consecutive samples whose gray 192 px centre crops (5% border
  off, where lecture overlays and progress bars sit) have SSIM > ``ssim_threshold`` form
  a stable run; consecutive samples that all differ from their predecessor (a pan or a
  zoom) form a moving run. Stable runs rank first, then longer, then higher-scoring. The
  best run of each chunk is always kept, so every chunk gives an image even when the view
  only pans; further runs need ``min_stable_s`` (3 s, as Quilt-1M's stable-frame rule), up to
  ``max_images_per_chunk``, skipping one whose perceptual hash is within
  ``dedup_hamming`` bits of an image already kept from the chunk.
- Representative: for a stable run, the per-pixel median of up to ``median_frames``
  full-resolution frames spread evenly over the run (a reservoir that halves when full);
  for a moving run, the sharpest of them (a median of a pan is a blur). Memory stays
  bounded by a few frames whatever the video length. The median is a min/max sorting
  network (~10 ms for five 720p frames, ``np.median`` took ~0.5 s) and run similarity a
  box-filter SSIM equal to skimage's (~10x faster): with the face cascade at a coarser
  pyramid step (vision.impurities) these were the stage's costs besides decoding
  (bench/bench_frames.py).
Each kept image is written as ``frame_{t_ms:08d}.jpg`` (JPEG quality 92) in ``out_dir``;
its ``KeptFrame`` carries the run's span, the mean detector score, Laplacian-variance
sharpness, a 64-bit DCT perceptual hash, and flags (detector score, face count from
OpenCV's Haar cascade: the narrator impurity the Quilt audit found).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
import cv2
import numpy as np
from skimage.metrics import structural_similarity

from workers.types import FramesResult, KeptFrame, StageError, StageJob, StageOutput
from workers.vision import dedup, impurities, magnification, sampling, tissue
from workers.vision.histology import HistologyDetector, StainRuleDetector

if TYPE_CHECKING:
    from app.settings import Settings

_logger = logging.getLogger(__name__)

ProgressFn = Callable[[float], None]

_SSIM_WIDTH = 192
_JPEG_QUALITY = 92


@dataclass
class FramesOptions:
    sample_s: float = 1.0
    histology_threshold: float = 0.5
    min_chunk_s: float = 2.0
    max_images_per_chunk: int = 2
    ssim_threshold: float = 0.98  # Quilt-1M: consecutive frames with SSIM > 0.98 are stable
    min_stable_s: float = 3.0  # for runs after a chunk's longest one (Quilt-1M's rule)
    median_frames: int = 5  # full-resolution frames per run for the median (odd: a true median)
    dedup_hamming: int = 4  # phash bits: closer images in one video are the same view
    detect_faces: bool = True  # impurities: faces, text overlays, desktop chrome; tissue crop
    cut_threshold: float = 12.0  # luma levels: scene cut (vision.sampling)
    max_chunk_s: float = 120.0  # a longer histology stretch is split at its next scene cut
    min_blur: float = 20.0  # Laplacian variance at 512 px (vision.tissue.quality)
    min_resolution: int = 160  # short side of the kept crop, px
    min_tissue_frac: float = 0.15  # tissue share of the kept crop
    min_clean_keep: float = 0.5  # a clean crop must keep this share of the tissue box

    @classmethod
    def from_settings(cls, s: Settings) -> FramesOptions:
        return cls(
            sample_s=s.frame_sample_s,
            histology_threshold=s.histology_threshold,
            min_chunk_s=s.min_chunk_s,
            max_images_per_chunk=s.max_images_per_chunk,
            dedup_hamming=s.frame_dedup_hamming,
            cut_threshold=s.frame_cut_threshold,
            max_chunk_s=s.frame_max_chunk_s,
            min_blur=s.frame_min_blur,
            min_resolution=s.frame_min_resolution,
            min_tissue_frac=s.frame_min_tissue_frac,
        )


# --- image measures ---------------------------------------------------------------------


def sharpness(bgr: np.ndarray) -> float:
    """Variance of the Laplacian of the gray image: low for blurred or out-of-focus frames."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def _ssim_view(bgr_small: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(bgr_small, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    dy, dx = h // 20, w // 20
    crop = gray[dy : h - dy, dx : w - dx]
    ch, cw = crop.shape
    height = max(8, round(ch * _SSIM_WIDTH / cw))
    return cv2.resize(crop, (_SSIM_WIDTH, height), interpolation=cv2.INTER_AREA)


def _ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004) as ``skimage.metrics.structural_similarity`` computes it
    with its defaults (7x7 uniform window, sample covariance, K1 0.01, K2 0.03, the 3 px
    border left out), with OpenCV box filters: ~0.3 ms instead of ~3 ms at 192 px. The
    border that skimage crops is the only part its reflect padding reaches, so the values
    agree to float rounding (tests/test_frames.py)."""
    if a.shape != b.shape:
        return 0.0
    if min(a.shape) < 7:
        return float(structural_similarity(a, b, data_range=255))
    x, y = a.astype(np.float64), b.astype(np.float64)
    win, pad = (7, 7), 3
    norm = 49 / 48  # sample covariance
    ux, uy = cv2.blur(x, win), cv2.blur(y, win)
    vx = norm * (cv2.blur(x * x, win) - ux * ux)
    vy = norm * (cv2.blur(y * y, win) - uy * uy)
    vxy = norm * (cv2.blur(x * y, win) - ux * uy)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(s[pad:-pad, pad:-pad].mean())


# --- chunk bookkeeping ------------------------------------------------------------------


@dataclass
class _Run:
    """Consecutive histology samples of one chunk that are all similar to their predecessor
    (a stable run) or all different from it (a moving run: panning, zooming). Keeps an
    evenly spread reservoir of full-resolution frames."""

    capacity: int
    moving: bool = False
    times: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    frames: list[tuple[float, np.ndarray]] = field(default_factory=list)
    _stride: int = 1

    def add(self, t: float, score: float, bgr: np.ndarray) -> None:
        index = len(self.times)
        self.times.append(t)
        self.scores.append(score)
        if index % self._stride == 0:
            self.frames.append((t, bgr))
            if len(self.frames) > self.capacity:
                # Keep every other frame: the reservoir stays evenly spread over the run.
                self.frames = self.frames[::2]
                self._stride *= 2

    def span(self, sample_s: float) -> float:
        return self.times[-1] - self.times[0] + sample_s

    def representative(self) -> tuple[float, np.ndarray]:
        """Stable: the per-pixel median at the middle sample's time. Moving: the sharpest
        frame (a median of a pan is a blur)."""
        if self.moving:
            return max(self.frames, key=lambda tf: sharpness(tf[1]))
        return self.times[len(self.times) // 2], _median([f for _, f in self.frames])


@dataclass
class _Candidate:
    t_s: float
    times: list[float]
    score: float
    image: np.ndarray
    span_s: float
    stable: bool
    eligible: bool  # long enough (min_stable_s) to be kept besides the chunk's best

    def rank(self) -> tuple[bool, bool, float, float, float]:
        # Stable views first (Quilt keeps stable intervals), then longer, then surer.
        return (not self.eligible, not self.stable, -self.span_s, -self.score, self.times[0])


@dataclass
class _Chunk:
    start_s: float
    last_s: float
    candidates: list[_Candidate] = field(default_factory=list)


def _median(frames: list[np.ndarray]) -> np.ndarray:
    """Per-pixel median of a few uint8 frames by an odd-even transposition sorting network
    of ``np.minimum``/``np.maximum``: n rounds of elementwise min/max, no stack and no
    float copy. Five 720p frames: ~10 ms, against ~0.5 s for ``np.median`` on the stack
    (bench/bench_frames.py). An even count averages the two middle values, rounding up."""
    if len(frames) == 1:
        return frames[0]
    s = list(frames)
    n = len(s)
    for r in range(n):
        for i in range(r % 2, n - 1, 2):
            s[i], s[i + 1] = np.minimum(s[i], s[i + 1]), np.maximum(s[i], s[i + 1])
    if n % 2:
        return s[n // 2]
    return ((s[n // 2 - 1].astype(np.uint16) + s[n // 2] + 1) >> 1).astype(np.uint8)


# --- the stage --------------------------------------------------------------------------


class _Extractor:
    def __init__(
        self, out_dir: Path, options: FramesOptions, detector: HistologyDetector, duration: float
    ) -> None:
        self.out_dir = out_dir
        self.o = options
        self.detector = detector
        self.duration = duration
        self.result = FramesResult()
        self.chunk: _Chunk | None = None
        self.run: _Run | None = None
        self.prev_view: np.ndarray | None = None
        self.samples = 0
        self.histology_samples = 0
        self.short_chunks = 0
        self.scored = 0
        self.cuts = 0
        self.unpairable = 0
        self._last: tuple[np.ndarray, float] | None = None  # thumbnail, score

    def _score(self, small: np.ndarray, cut: bool) -> float:
        """The detector's score, reused from the previous sample when nothing changed (no
        cut, 32 px thumbnails within 1.5 gray levels): most samples of a lecture repeat the
        view before them, and the detector costs ~35 ms a call."""
        thumb = cv2.resize(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (32, 18)).astype(np.float32)
        last = self._last
        if not cut and last is not None and float(np.abs(thumb - last[0]).mean()) < 1.5:
            return last[1]
        self.scored += 1
        score = self.detector.score(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))
        self._last = (thumb, score)
        return score

    def sample(self, t: float, bgr: np.ndarray, cut: bool = False) -> None:
        self.samples += 1
        self.cuts += int(cut)
        small = tissue.downscale(bgr)
        score = self._score(small, cut)
        if score < self.o.histology_threshold:
            self.close_chunk(t)
            return
        if cut and self.chunk is not None and t - self.chunk.start_s >= self.o.max_chunk_s:
            self.close_chunk(t)  # a long stretch (a slide-viewer tour) is split at a cut
        self.histology_samples += 1
        view = _ssim_view(small)
        if self.chunk is None:
            self.chunk = _Chunk(start_s=t, last_s=t)
        elif self.run is not None and self.prev_view is not None:
            similar = _ssim(self.prev_view, view) > self.o.ssim_threshold
            if len(self.run.times) == 1:
                self.run.moving = not similar
            elif similar == self.run.moving:  # a pan stopped, or a stable view changed
                self.close_run()
        self.chunk.last_s = t
        if self.run is None:
            self.run = _Run(capacity=self.o.median_frames)
        self.run.add(t, score, bgr)
        self.prev_view = view

    def close_run(self) -> None:
        if self.run is None or self.chunk is None:
            return
        run, self.run = self.run, None
        t_s, image = run.representative()
        candidate = _Candidate(
            t_s=t_s,
            times=run.times,
            score=float(np.mean(run.scores)),
            image=image,
            span_s=run.span(self.o.sample_s),
            stable=not run.moving,
            eligible=run.span(self.o.sample_s) >= self.o.min_stable_s - 1e-6,
        )
        # Keep only what can still be chosen (with slack for phash duplicates): memory is
        # bounded by 2 * max_images + 1 images, whatever the chunk's length.
        self.chunk.candidates.append(candidate)
        self.chunk.candidates.sort(key=_Candidate.rank)
        del self.chunk.candidates[2 * max(1, self.o.max_images_per_chunk) + 1 :]

    def close_chunk(self, t_next: float | None = None) -> None:
        self.prev_view = None
        if self.chunk is None:
            return
        self.close_run()
        chunk, self.chunk = self.chunk, None
        end_s = min(chunk.last_s + self.o.sample_s, max(self.duration, chunk.last_s))
        if t_next is not None:  # a cut between regular samples ends the chunk earlier
            end_s = min(end_s, t_next)
        if end_s - chunk.start_s < self.o.min_chunk_s - 1e-6:
            self.short_chunks += 1
            return
        self.result.chunks.append((round(chunk.start_s, 3), round(end_s, 3)))
        kept: list[KeptFrame] = []
        for i, cand in enumerate(chunk.candidates):
            if len(kept) >= self.o.max_images_per_chunk:
                break
            if i > 0 and not cand.eligible:
                continue
            digest = dedup.phash(cand.image)
            if any(dedup.distance(digest, k.phash or "0") <= self.o.dedup_hamming for k in kept):
                continue
            kept.append(self.write(cand, digest, end_s))
        self.result.frames.extend(sorted(kept, key=lambda k: k.t_s))

    def write(self, cand: _Candidate, digest: str, chunk_end_s: float) -> KeptFrame:
        t_s = cand.t_s
        image = cand.image
        h, w = image.shape[:2]
        flags: dict[str, Any] = {"histology_score": round(cand.score, 4), "stable": cand.stable}
        if not cand.stable:
            flags["fallback"] = "sharpest_moving"  # Quilt's fallback: no stable interval
        crop_box = None
        pairable = True
        if self.o.detect_faces:
            image, crop_box, pairable = self._clean(image, flags)
        q = tissue.quality(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        reasons = q.reasons(self.o.min_blur, self.o.min_resolution, self.o.min_tissue_frac)
        flags["quality"] = {
            "blur": q.blur,
            "resolution": q.resolution,
            "tissue_frac": q.tissue_frac,
            "ok": not reasons,
            "reasons": reasons,
        }
        if reasons:
            pairable = False
        mag = magnification.estimate(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        flags["magnification"] = {
            "bin": mag.bin,
            "confidence": mag.confidence,
            "nuclear_diameter": mag.nuclear_diameter,
            "nuclei": mag.nuclei,
        }
        flags["pairable"] = pairable
        self.unpairable += int(not pairable)
        name = f"frame_{round(t_s * 1000):08d}.jpg"
        path = self.out_dir / name
        ok = cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:
            raise OSError(f"cannot write {path}")
        ih, iw = image.shape[:2]
        return KeptFrame(
            image_path=str(path),
            t_s=round(t_s, 3),
            start_s=round(cand.times[0], 3),
            end_s=round(min(cand.times[-1] + self.o.sample_s, chunk_end_s), 3),
            width=iw,
            height=ih,
            histology_score=round(cand.score, 4),
            is_histology=True,
            magnification=mag.bin,
            sharpness=round(sharpness(image), 2),
            phash=dedup.phash(image) if crop_box else digest,
            flags=flags,
            crop_box=list(crop_box) if crop_box and crop_box != (0, 0, w, h) else None,
            pairable=pairable,
            magnification_confidence=mag.confidence,
        )

    def _clean(
        self, image: np.ndarray, flags: dict[str, Any]
    ) -> tuple[np.ndarray, tuple | None, bool]:
        """Impurities, then the tissue crop clear of them (vision.tissue.clean_crop)."""
        found = impurities.detect(image)
        flags.update(found.flags())
        box, frac = tissue.tissue_box(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        flags["tissue_frac"] = round(frac, 4)
        if box is None:
            return image, None, False
        crop = tissue.clean_crop(box, found.boxes, self.o.min_clean_keep)
        if crop is None:
            flags["occluded"] = True  # the narrator or an overlay covers the tissue
            return image, None, False
        x, y, cw, ch = crop
        return np.ascontiguousarray(image[y : y + ch, x : x + cw]), crop, True


def detector_from_settings(settings: Settings) -> HistologyDetector:
    """The stain rule alone, or an ensemble with the learned classifier when
    ``histology_weights`` names a local checkpoint (vision.learned)."""
    if not settings.histology_weights:
        return StainRuleDetector()
    from workers.vision import learned  # noqa: PLC0415 - torch only when configured

    model = learned.load(
        settings.histology_weights,
        kind=settings.histology_weights_kind,
        device=settings.histology_device,
    )
    return learned.EnsembleDetector(
        [StainRuleDetector(), model],
        rule=settings.histology_ensemble_rule,
        threshold=settings.histology_threshold,
    )


def pair_chunk_time(chunks: list[tuple[float, float]]) -> float | None:
    """Quilt's ``pair_chunk_time`` for this video: the median length of its histology
    chunks (consecutive histology time, split at ``max_chunk_s``). Quilt used one constant
    for all videos; here it is measured per video, reported in the stats, and a chunk is
    the unit that gets at most ``max_images_per_chunk`` images and its own narration."""
    if not chunks:
        return None
    return round(float(np.median([end - start for start, end in chunks])), 3)


def extract(
    video_path: str | Path,
    out_dir: str | Path,
    options: FramesOptions | None = None,
    progress: ProgressFn | None = None,
    *,
    detector: HistologyDetector | None = None,
) -> FramesResult:
    """Sample ``video_path``, keep representative histology frames as JPEGs in ``out_dir``.

    Raises ``StageError`` when the file cannot be decoded as video. Re-running replaces
    this stage's images in ``out_dir`` (``frame_*.jpg``) and nothing else.
    """
    options = options or FramesOptions()
    if options.sample_s <= 0:
        raise ValueError("sample_s must be positive")
    started = time.perf_counter()
    video_path = Path(video_path)
    if not video_path.is_file() or video_path.stat().st_size == 0:
        raise StageError(f"not a readable video file: {video_path.name}")
    out = Path(out_dir)
    try:
        container, stream, info = sampling.open_video(video_path)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise StageError(f"cannot decode video: {video_path.name}") from exc
    try:
        out.mkdir(parents=True, exist_ok=True)
        for old in out.glob("frame_*.jpg"):
            old.unlink()
        ex = _Extractor(out, options, detector or StainRuleDetector(), info.duration_s)
        frame_dt = 1.0 / info.fps if info.fps > 0 else 0.0
        last_t = 0.0
        try:
            decoded = sampling.samples(container, stream, options.sample_s, options.cut_threshold)
            # closing(): the decode thread is stopped and joined before the container
            # closes, even when the analysis raises.
            with contextlib.closing(sampling.prefetched(decoded)) as ahead:
                for smp in ahead:
                    last_t = smp.t
                    ex.sample(smp.t, smp.bgr, smp.cut)
                    if progress and info.duration_s > 0:
                        progress(min(1.0, smp.t / info.duration_s))
        except av.error.FFmpegError as exc:
            if ex.samples == 0:
                raise StageError(f"cannot decode video: {video_path.name}") from exc
            _logger.warning("frames %s: decode stopped at %.1f s: %s", video_path.name, last_t, exc)
        if ex.samples == 0:
            raise StageError(f"no decodable video frames: {video_path.name}")
        ex.duration = max(info.duration_s, last_t + frame_dt)
        ex.close_chunk()
    finally:
        container.close()
    duplicates = dedup.link_duplicates(ex.result.frames, options.dedup_hamming)

    result = ex.result
    result.stats = {
        "detector": getattr(ex.detector, "name", type(ex.detector).__name__),
        "duration_s": round(ex.duration, 3),
        "samples": ex.samples,
        "histology_samples": ex.histology_samples,
        "chunks": len(result.chunks),
        "short_chunks_dropped": ex.short_chunks,
        "kept_frames": len(result.frames),
        "unpairable_frames": ex.unpairable + duplicates,
        "duplicates_in_video": duplicates,
        "scene_cuts": ex.cuts,
        "detector_calls": ex.scored,
        "pair_chunk_time_s": pair_chunk_time(result.chunks),
        "seconds": round(time.perf_counter() - started, 3),
    }
    if progress:
        progress(1.0)
    _logger.info("frames %s: %s", video_path.name, result.stats)
    return result


def run(job: StageJob) -> StageOutput:
    """The stage as the pipeline table runs it: the fetched video in, kept frames out."""
    media = job.inputs["media"]
    result = extract(
        media.path,
        job.files,
        FramesOptions.from_settings(job.settings),
        progress=job.progress,
        detector=detector_from_settings(job.settings),
    )
    stats = {
        **result.stats,
        "kept": len(result.frames),
        "pairable": sum(f.pairable for f in result.frames),
        "chunks": len(result.chunks),
    }
    return StageOutput(artifacts={"frames": result}, stats=stats)
