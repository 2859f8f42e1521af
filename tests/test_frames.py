"""Frames stage and histology detector on real images and real videos made on the fly.

Histology: scikit-image's IHC image and the H&E image of the stardist wheel (a copy in
tests/data). Non-histology: scikit-image's
page (text), astronaut (a face) and retina (a fundus photograph). Videos are encoded with
ffmpeg (libx264) from those stills, so every test decodes real H.264.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
import skimage.data

from workers.stages import frames as frames_stage
from workers.stages.frames import FramesOptions, extract
from workers.types import StageError
from workers.vision.dedup import distance as phash_distance
from workers.vision.dedup import phash
from workers.vision.histology import StainRuleDetector, features

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"
DEMO_TRUTH = REPO_ROOT / "demo" / "lecture.json"
HE_IMAGE = REPO_ROOT / "tests" / "data" / "he_histo.jpg"
THRESHOLD = FramesOptions().histology_threshold


# --- real images ----------------------------------------------------------------------


@pytest.fixture(scope="session")
def he_rgb() -> np.ndarray:
    """The stardist wheel's H&E sample (500x300), as RGB (copied into tests/data)."""
    bgr = cv2.imread(str(HE_IMAGE), cv2.IMREAD_COLOR)
    assert bgr is not None, HE_IMAGE
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.stack([image] * 3, axis=-1) if image.ndim == 2 else image[..., :3]


@pytest.fixture(scope="session")
def images(he_rgb: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "he": he_rgb,
        "ihc": skimage.data.immunohistochemistry(),
        "page": _rgb(skimage.data.page()),
        "astronaut": skimage.data.astronaut(),
        "retina": skimage.data.retina(),
    }


def _letterbox(rgb: np.ndarray, width: int = 640, height: int = 360) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    resized = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    y, x = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[y : y + resized.shape[0], x : x + resized.shape[1]] = resized
    return canvas


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(
        ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# Scores measured when the rule was written: histology 1.0, the rest 0.0 (histology.py).
@pytest.mark.parametrize("name", ["he", "ihc"])
def test_detector_scores_real_histology_above_threshold(images: dict, name: str) -> None:
    detector = StainRuleDetector()
    rgb = images[name]
    h, w = rgb.shape[:2]
    variants = {
        "original": rgb,
        "centre crop": rgb[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4],
        "letterboxed 16:9": _letterbox(rgb),
        "jpeg q40": _jpeg(rgb, 40),
        "darker": (rgb * 0.8).astype(np.uint8),
    }
    for variant, image in variants.items():
        score = detector.score(image)
        assert score >= 0.9, f"{name} {variant}: {score} {features(image).as_dict()}"


@pytest.mark.parametrize("name", ["page", "astronaut", "retina"])
def test_detector_scores_non_histology_below_threshold(images: dict, name: str) -> None:
    detector = StainRuleDetector()
    for image in (images[name], _letterbox(images[name]), _jpeg(images[name], 40)):
        score = detector.score(image)
        assert score <= 0.05, f"{name}: {score} {features(image).as_dict()}"
    assert THRESHOLD > 0.05


def test_detector_other_natural_images_below_threshold() -> None:
    detector = StainRuleDetector()
    for name in ("coffee", "chelsea", "rocket", "hubble_deep_field", "colorwheel", "camera"):
        image = _rgb(getattr(skimage.data, name)())
        assert detector.score(image) < THRESHOLD, name


def test_phash_is_stable_under_jpeg_and_separates_images(images: dict) -> None:
    bgr = {k: cv2.cvtColor(v, cv2.COLOR_RGB2BGR) for k, v in images.items()}
    he = phash(bgr["he"])
    assert re.fullmatch(r"[0-9a-f]{16}", he)
    assert phash_distance(he, phash(cv2.cvtColor(_jpeg(images["he"], 40), cv2.COLOR_RGB2BGR))) <= 4
    assert phash_distance(he, phash(bgr["ihc"])) > 16
    assert phash_distance(phash(bgr["page"]), phash(bgr["retina"])) > 16


# --- videos -----------------------------------------------------------------------------


def _encode(path: Path, segments: list[tuple[np.ndarray, float]], fps: int = 10) -> Path:
    """An H.264 mp4 of still RGB frames (640x360), each shown for its seconds."""
    cmd = [
        "ffmpeg", "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", "640x360", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    for rgb, seconds in segments:
        frame = cv2.cvtColor(_letterbox(rgb), cv2.COLOR_RGB2BGR).tobytes()
        for _ in range(round(seconds * fps)):
            proc.stdin.write(frame)
    proc.stdin.close()
    assert proc.wait() == 0, proc.stderr.read() if proc.stderr else ""
    return path


# (name, seconds): histology at 3-9 s and 13-19 s.
LECTURE = [("page", 3), ("he", 6), ("astronaut", 4), ("ihc", 6), ("retina", 4)]


def _spans(layout: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    spans, t = [], 0.0
    for name, seconds in layout:
        spans.append((name, t, t + seconds))
        t += seconds
    return spans


@pytest.fixture(scope="module")
def lecture_video(images: dict, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("lecture")
    return _encode(folder / "lecture.mp4", [(images[n], s) for n, s in LECTURE])


def test_extract_keeps_histology_segments_only(lecture_video: Path, tmp_path: Path) -> None:
    options = FramesOptions()
    seen: list[float] = []
    result = extract(lecture_video, tmp_path / "images", options, progress=seen.append)

    assert result.chunks == [(3.0, 9.0), (13.0, 19.0)]
    for name, start, end in _spans(LECTURE):
        inside = [f for f in result.frames if start <= f.t_s < end]
        if name in ("he", "ihc"):
            assert 1 <= len(inside) <= options.max_images_per_chunk, name
            for f in inside:
                assert start <= f.start_s <= f.t_s <= f.end_s <= end
        else:
            assert inside == [], name
    assert len(result.frames) == 2  # each segment is one static view: one image each

    for f in result.frames:
        path = Path(f.image_path)
        assert path.parent == tmp_path / "images"
        assert path.name == f"frame_{round(f.t_s * 1000):08d}.jpg"
        image = cv2.imread(str(path))
        assert image.shape == (f.height, f.width, 3)
        # Cropped to the tissue: the letterbox bars are gone, the full height is kept.
        x, y, w, h = f.crop_box or (0, 0, 640, 360)
        assert (w, h) == (f.width, f.height) and h == 360 and w < 640
        assert f.is_histology and f.histology_score >= options.histology_threshold
        assert f.flags["histology_score"] == f.histology_score
        assert f.flags["stable"] is True and f.flags["face"] is False
        assert f.flags["text_overlay"] is False and f.flags["desktop"] is False
        assert f.pairable and f.flags["pairable"] and f.flags["quality"]["ok"]
        assert re.fullmatch(r"[0-9a-f]{16}", f.phash or "")
        assert f.sharpness and f.sharpness > 50
        assert f.magnification in (0, 1, 2)
    assert sorted(p.name for p in (tmp_path / "images").iterdir()) == sorted(
        Path(f.image_path).name for f in result.frames
    )

    # 0, 1, ..., 22 s of a 23 s video; the cuts fall on whole seconds, so no extra samples.
    assert result.stats["samples"] == 23
    assert result.stats["scene_cuts"] == 4
    assert result.stats["detector_calls"] == 5  # once a view: the others reuse the score
    assert result.stats["pair_chunk_time_s"] == 6.0
    assert result.stats["histology_samples"] == 12
    assert result.stats["chunks"] == 2 and result.stats["kept_frames"] == 2
    assert result.stats["seconds"] > 0
    assert seen[-1] == 1.0 and seen == sorted(seen)


def test_extract_is_idempotent(lecture_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "images"
    (out).mkdir()
    (out / "frame_99999999.jpg").write_bytes(b"stale")
    first = extract(lecture_video, out, FramesOptions(detect_faces=False))
    second = extract(lecture_video, out, FramesOptions(detect_faces=False))
    strip = [(f.image_path, f.t_s, f.start_s, f.end_s, f.phash) for f in first.frames]
    assert strip == [(f.image_path, f.t_s, f.start_s, f.end_s, f.phash) for f in second.frames]
    assert first.chunks == second.chunks
    assert not (out / "frame_99999999.jpg").exists()


def test_representative_is_the_median_of_a_stable_run(images: dict, tmp_path: Path) -> None:
    """A small pointer visiting a static slide is gone from the median frame (Quilt's reason
    for the median); SSIM on the crop still calls the run stable."""
    base = _letterbox(images["he"])
    segments = [(_rgb(skimage.data.page()), 2)]
    for i in range(6):
        frame = base.copy()
        x = 100 + 80 * i
        cv2.circle(frame, (x, 180), 4, (0, 255, 0), -1)
        segments.append((frame, 1))
    segments.append((_rgb(skimage.data.page()), 2))
    video = _encode(tmp_path / "pointer.mp4", segments)
    result = extract(video, tmp_path / "images", FramesOptions(ssim_threshold=0.95))
    assert len(result.frames) == 1
    kept = cv2.cvtColor(cv2.imread(result.frames[0].image_path), cv2.COLOR_BGR2RGB)
    green = (kept[..., 1].astype(int) - kept[..., 0] > 120) & (kept[..., 1] > 200)
    assert green.sum() == 0
    assert result.frames[0].start_s == 2.0 and result.frames[0].end_s == 8.0


def test_max_images_per_chunk_and_min_chunk(images: dict, tmp_path: Path) -> None:
    he, ihc = images["he"], images["ihc"]
    h, w = ihc.shape[:2]
    ihc_zoom = cv2.resize(ihc[: h // 2, : w // 2], (w, h), interpolation=cv2.INTER_CUBIC)
    page = _rgb(skimage.data.page())
    # One chunk of three distinct 4 s views, then a 1 s histology flash.
    video = _encode(
        tmp_path / "three.mp4",
        [(page, 2), (he, 4), (ihc, 4), (ihc_zoom, 4), (page, 2), (he, 1), (page, 2)],
    )
    two = extract(video, tmp_path / "two", FramesOptions(max_images_per_chunk=2))
    assert two.chunks == [(2.0, 14.0)]
    assert len(two.frames) == 2
    assert two.stats["short_chunks_dropped"] == 1
    one = extract(video, tmp_path / "one", FramesOptions(max_images_per_chunk=1))
    assert len(one.frames) == 1
    three = extract(video, tmp_path / "three", FramesOptions(max_images_per_chunk=3))
    assert [(f.start_s, f.end_s) for f in three.frames] == [(2.0, 6.0), (6.0, 10.0), (10.0, 14.0)]
    # min_chunk_s: the 1 s flash counts once it is allowed.
    flash = extract(video, tmp_path / "flash", FramesOptions(min_chunk_s=1.0))
    assert flash.chunks == [(2.0, 14.0), (16.0, 17.0)]


@pytest.mark.parametrize("content", [b"", b"this is a text file, not a video\n" * 20])
def test_unreadable_video_raises_stage_error(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "lecture.mp4"
    bad.write_bytes(content)
    with pytest.raises(StageError) as info:
        extract(bad, tmp_path / "out")
    assert info.value.status == "failed"
    assert "\n" not in info.value.reason
    with pytest.raises(StageError):
        extract(tmp_path / "missing.mp4", tmp_path / "out")


def test_options_from_settings() -> None:
    from app.settings import Settings

    s = Settings(
        frame_sample_s=2.0, histology_threshold=0.7, min_chunk_s=4.0, max_images_per_chunk=3
    )
    o = FramesOptions.from_settings(s)
    assert (o.sample_s, o.histology_threshold, o.min_chunk_s, o.max_images_per_chunk) == (
        2.0, 0.7, 4.0, 3,
    )  # fmt: skip


# --- the bundled demo lecture -----------------------------------------------------------


def test_demo_lecture_frames_match_ground_truth(tmp_path: Path) -> None:
    truth = json.loads(DEMO_TRUTH.read_text())
    options = FramesOptions()
    result = extract(DEMO_VIDEO, tmp_path / "images", options)
    for seg in truth["segments"]:
        inside = [f for f in result.frames if seg["start_s"] <= f.t_s < seg["end_s"]]
        if seg["is_histology"]:
            assert inside, f"no frame in histology segment {seg['index']} ({seg['kind']})"
        else:
            assert not inside, f"frames in non-histology segment {seg['index']} ({seg['kind']})"
    for start, end in result.chunks:
        in_chunk = [f for f in result.frames if start <= f.t_s < end]
        assert 1 <= len(in_chunk) <= options.max_images_per_chunk
    assert frames_stage.__doc__  # the why lives in the module docstring


def test_fast_ssim_and_median_match_the_reference() -> None:
    """The stage's box-filter SSIM equals skimage's default SSIM, and its sorting-network
    median equals ``np.median`` (odd counts exactly; even counts within the rounding)."""
    from skimage.metrics import structural_similarity  # noqa: PLC0415

    from workers.stages.frames import _median, _ssim  # noqa: PLC0415

    rng = np.random.default_rng(3)
    for shape in ((108, 192), (12, 40)):
        a = rng.integers(0, 256, shape, dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-25, 25, shape), 0, 255).astype(np.uint8)
        assert _ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=255), abs=1e-9)
        assert _ssim(a, a) == pytest.approx(1.0)
    for n in (2, 3, 4, 5):
        frames = [rng.integers(0, 256, (36, 64, 3), dtype=np.uint8) for _ in range(n)]
        ref = np.median(np.stack(frames).astype(float), axis=0)
        got = _median(frames)
        assert got.dtype == np.uint8
        assert np.abs(got - ref).max() <= (0 if n % 2 else 0.5)


def test_prefetched_keeps_order_errors_and_stops_its_thread() -> None:
    import threading

    from workers.vision.sampling import prefetched

    def decode(n: int, fail_at: int | None = None):
        for i in range(n):
            if i == fail_at:
                raise RuntimeError("decode stopped")
            yield i

    assert list(prefetched(decode(50), depth=2)) == list(range(50))
    # A decode error half-way comes out after the samples decoded before it.
    got: list[int] = []
    with pytest.raises(RuntimeError, match="decode stopped"):
        for i in prefetched(decode(50, fail_at=7), depth=3):
            got.append(i)
    assert got == list(range(7))
    # A consumer that stops early leaves no decode thread behind (the container may close).
    before = {t.ident for t in threading.enumerate()}
    gen = prefetched(decode(10_000), depth=2)
    assert next(gen) == 0
    gen.close()
    assert not [
        t for t in threading.enumerate() if t.name == "frames-decode" and t.ident not in before
    ]
