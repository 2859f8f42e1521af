"""Build the bundled demo lecture: ``demo/lecture.mp4`` and its ground truth ``demo/lecture.json``.

The demo is a short narrated "pathology lecture" made only from real images that ship
inside PyPI packages, so it can be rebuilt anywhere with the package registry and apt:

* histology: scikit-image's ``immunohistochemistry()`` (colonic glands, DAB chromogen with
  hematoxylin counterstain) and the stardist wheel's ``stardist/data/images/histo.jpg``
  (an H&E section). The wheel is fetched with ``pip download`` and read as a zip; stardist
  is never installed.
* non-histology: a rendered title slide, scikit-image's ``astronaut()`` (a face photo),
  ``retina()`` (a fundus photograph) and a rendered summary slide.

Each segment shows one static view (one histology segment pans slowly) while espeak-ng
reads its narration; every segment's speech is padded with silence to the segment's
length, so ``lecture.json`` gives exact segment boundaries for the frame, ASR and
alignment stages to be scored against. Histology narration uses real key terms and the
region-of-interest cues ("here", "in this area", "at higher power") that Quilt-1M's
alignment relies on (Ikezogwo et al., NeurIPS 2023, section 3).

The build is deterministic: fixed crops, fixed voice and rate, no randomness, and the
encoders run with bitexact flags and no metadata. It needs ffmpeg (libx264, aac),
espeak-ng and sox on PATH, and pillow and scikit-image in the environment. Speech, ffmpeg
and ffprobe go through the helpers the tests make their media with (tests/support/media.py).

Usage: ``python scripts/make_demo.py [--out-dir demo] [--stardist-wheel PATH]``
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO_ROOT))

from tests.support.media import (  # noqa: E402
    AAC_MONO,
    FFMPEG,
    WORDS_PER_MINUTE,
    probe,
    run,
    speak,
)

WIDTH, HEIGHT = 1280, 720
FPS = 5
VOICE = "en-us"
SAMPLE_RATE = 22050  # espeak-ng's native rate; resampling would only add bytes
LEAD_S = 0.5  # silence before the speech in each segment
MIN_TAIL_S = 0.6  # at least this much silence after it, so segment edges stay quiet
MIN_SEGMENT_S = 8
MAX_SEGMENT_S = 15
MAX_VIDEO_BYTES = 5 * 1024 * 1024

STARDIST_IMAGE = "stardist/data/images/histo.jpg"

Box = tuple[float, float, float, float]  # (left, top, right, bottom) in source pixels


@dataclass(frozen=True)
class SegmentSpec:
    """One segment of the lecture: what is on screen and what is said."""

    kind: str  # histology | title_slide | photo | fundus | text_slide
    source_image: str
    narration: str
    key_terms: tuple[str, ...]
    view: str  # "fit" (whole image, letterboxed), "crop" (box fills frame), "pan", "slide"
    box: Box | None = None  # crop, or pan start
    box_end: Box | None = None  # pan end
    background: tuple[int, int, int] = (0, 0, 0)

    @property
    def is_histology(self) -> bool:
        return self.kind == "histology"


TITLE_LINES = (
    "Pathology of the Colon",
    "Glands, stroma and nuclei on H&E and immunohistochemistry",
    "Gastrointestinal Pathology \u00b7 Lecture 7",
)
SUMMARY_LINES = (
    "Summary",
    "Architecture first, at low power",
    "Then cytology at high power: nuclei, mitoses",
    "Immunohistochemistry supports the diagnosis",
)

# IHC is 512x512 and H&E 500x300; every crop box is 16:9 so it fills the frame unstretched.
SEGMENTS: tuple[SegmentSpec, ...] = (
    SegmentSpec(
        kind="title_slide",
        source_image="rendered:title",
        narration=(
            "Welcome to this lecture on gastrointestinal pathology. Today we will talk "
            "about cancer of the large bowel."
        ),
        key_terms=("gastrointestinal pathology", "large bowel"),
        view="slide",
    ),
    SegmentSpec(
        kind="histology",
        source_image="skimage:ihc.png",
        narration=(
            "Here is a low power view of the colon, stained by immunohistochemistry. "
            "Brown chromogen outlines the glands, and the nuclei are blue with hematoxylin."
        ),
        key_terms=(
            "low power",
            "colon",
            "immunohistochemistry",
            "glands",
            "brown chromogen",
            "nuclei",
            "hematoxylin",
        ),
        view="fit",
    ),
    SegmentSpec(
        kind="histology",
        source_image="skimage:ihc.png",
        narration=(
            "At higher power, look at this small gland. The epithelium is crowded, and "
            "in this area the desmoplastic stroma holds a few lymphocytes."
        ),
        key_terms=("higher power", "gland", "epithelium", "desmoplastic stroma", "lymphocytes"),
        view="crop",
        box=(142.0, 299.0, 494.0, 497.0),
    ),
    SegmentSpec(
        kind="photo",
        source_image="skimage:astronaut.png",
        narration=(
            "Before we go on, a personal note. This is a photo of an astronaut in her "
            "space suit, who inspired me as a student."
        ),
        key_terms=("photo", "astronaut"),
        view="fit",
        background=(40, 40, 40),
    ),
    SegmentSpec(
        kind="histology",
        source_image=f"stardist:{STARDIST_IMAGE}",
        narration=(
            "Now a hematoxylin and eosin section of a poorly differentiated adenocarcinoma. "
            "Here the tumor grows in solid sheets of pleomorphic nuclei."
        ),
        key_terms=("hematoxylin and eosin", "adenocarcinoma", "nuclei", "pleomorphic"),
        view="pan",
        box=(0.0, 0.0, 416.0, 234.0),
        box_end=(84.0, 66.0, 500.0, 300.0),
    ),
    SegmentSpec(
        kind="histology",
        source_image=f"stardist:{STARDIST_IMAGE}",
        narration=(
            "At high power, in this area you can see mitotic figures and prominent "
            "nucleoli. Hyperchromatic nuclei like these mark a high grade carcinoma."
        ),
        key_terms=(
            "high power",
            "mitotic figures",
            "nucleoli",
            "hyperchromatic",
            "nuclei",
            "carcinoma",
        ),
        view="crop",
        box=(140.0, 82.5, 380.0, 217.5),
    ),
    SegmentSpec(
        kind="fundus",
        source_image="skimage:retina.jpg",
        narration=(
            "From our eye clinic, this is a fundus photograph of the retina, showing the "
            "optic disc and the retinal vessels."
        ),
        key_terms=("fundus", "retina", "optic disc"),
        view="fit",
    ),
    SegmentSpec(
        kind="histology",
        source_image="skimage:ihc.png",
        narration=(
            "Normal colonic crypts are straight tubes of goblet cells in the lamina "
            "propria. Here the glands are large and have lost their goblet cells."
        ),
        key_terms=("colonic crypts", "goblet cells", "lamina propria", "glands"),
        view="crop",
        box=(150.0, 0.0, 470.0, 180.0),
    ),
    SegmentSpec(
        kind="text_slide",
        source_image="rendered:summary",
        narration=(
            "In summary, study the architecture at low power, then the cytology at high "
            "power, and use immunohistochemistry to support the diagnosis. Thank you."
        ),
        key_terms=("low power", "high power", "immunohistochemistry"),
        view="slide",
    ),
)


@dataclass(frozen=True)
class BuiltSegment:
    spec: SegmentSpec
    index: int
    start_s: float
    end_s: float
    speech_s: float

    def to_json(self) -> dict[str, object]:
        return {
            "index": self.index,
            "start_s": self.start_s,
            "end_s": self.end_s,
            "kind": self.spec.kind,
            "is_histology": self.spec.is_histology,
            "source_image": self.spec.source_image,
            "narration": self.spec.narration,
            "key_terms": list(self.spec.key_terms),
            "speech_start_s": round(self.start_s + LEAD_S, 3),
            "speech_end_s": round(self.start_s + LEAD_S + self.speech_s, 3),
        }


# --- source images -----------------------------------------------------------------------


def _stardist_wheel(work: Path, wheel: Path | None) -> Path:
    if wheel is not None:
        return wheel
    # --no-deps: only the wheel's bundled sample image is needed, never stardist itself.
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "stardist",
            "--no-deps",
            "--only-binary",
            ":all:",
            "-d",
            str(work),
            "--quiet",
        ]
    )
    found = sorted(glob.glob(str(work / "stardist-*.whl")))
    if not found:
        raise RuntimeError("pip download stardist produced no wheel")
    return Path(found[-1])


def load_sources(work: Path, stardist_wheel: Path | None) -> dict[str, Image.Image]:
    import skimage.data

    with zipfile.ZipFile(_stardist_wheel(work, stardist_wheel)) as wheel:
        histo = Image.open(io.BytesIO(wheel.read(STARDIST_IMAGE))).convert("RGB")
    return {
        "skimage:ihc.png": Image.fromarray(skimage.data.immunohistochemistry()),
        "skimage:astronaut.png": Image.fromarray(skimage.data.astronaut()),
        "skimage:retina.jpg": Image.fromarray(skimage.data.retina()),
        f"stardist:{STARDIST_IMAGE}": histo,
        "rendered:title": render_slide(TITLE_LINES, title=True),
        "rendered:summary": render_slide(SUMMARY_LINES, title=False),
    }


# --- frames ------------------------------------------------------------------------------


def _font(size: int, bold: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    names = ["DejaVuSans-Bold.ttf", "DejaVuSans.ttf"] if bold else ["DejaVuSans.ttf"]
    for name in names:
        for folder in ("/usr/share/fonts/truetype/dejavu", ""):
            try:
                return ImageFont.truetype(str(Path(folder) / name) if folder else name, size)
            except OSError:
                continue
    return ImageFont.load_default(size=size)


def render_slide(lines: Sequence[str], *, title: bool) -> Image.Image:
    """A plain lecture slide: a title slide (centred) or a heading with bullets."""
    if title:
        img = Image.new("RGB", (WIDTH, HEIGHT), (24, 48, 96))
        draw = ImageDraw.Draw(img)
        fonts = [_font(64, bold=True), _font(34), _font(28)]
        colors = [(255, 255, 255), (210, 225, 245), (170, 190, 220)]
        ys = [250, 350, 430]
        for text, font, color, y in zip(lines, fonts, colors, ys, strict=True):
            w = draw.textlength(text, font=font)
            draw.text(((WIDTH - w) / 2, y), text, font=font, fill=color)
        return img
    img = Image.new("RGB", (WIDTH, HEIGHT), (250, 250, 246))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, WIDTH, 130), fill=(24, 48, 96))
    draw.text((80, 35), lines[0], font=_font(56, bold=True), fill=(255, 255, 255))
    body = _font(40)
    for i, text in enumerate(lines[1:]):
        y = 220 + i * 110
        draw.ellipse((90, y + 14, 106, y + 30), fill=(24, 48, 96))
        draw.text((135, y), text, font=body, fill=(30, 30, 30))
    return img


def _fit(img: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    scale = min(WIDTH / img.width, HEIGHT / img.height)
    size = (round(img.width * scale), round(img.height * scale))
    frame = Image.new("RGB", (WIDTH, HEIGHT), background)
    frame.paste(
        img.resize(size, Image.Resampling.LANCZOS),
        ((WIDTH - size[0]) // 2, (HEIGHT - size[1]) // 2),
    )
    return frame


def _crop(img: Image.Image, box: Box) -> Image.Image:
    return img.resize((WIDTH, HEIGHT), Image.Resampling.LANCZOS, box=box)


def segment_frames(spec: SegmentSpec, img: Image.Image, n_frames: int) -> Iterator[bytes]:
    """Raw RGB24 frames of one segment."""
    if spec.view == "pan":
        assert spec.box is not None and spec.box_end is not None
        for i in range(n_frames):
            t = i / max(n_frames - 1, 1)
            box = tuple(a + (b - a) * t for a, b in zip(spec.box, spec.box_end, strict=True))
            yield _crop(img, box).tobytes()  # type: ignore[arg-type]
        return
    if spec.view == "crop":
        assert spec.box is not None
        frame = _crop(img, spec.box)
    elif spec.view == "fit":
        frame = _fit(img, spec.background)
    else:  # slide: rendered at frame size
        frame = img
    data = frame.tobytes()
    for _ in range(n_frames):
        yield data


# --- audio -------------------------------------------------------------------------------


def build_audio(specs: Sequence[SegmentSpec], work: Path) -> tuple[Path, list[BuiltSegment]]:
    built: list[BuiltSegment] = []
    parts: list[str] = []
    start = 0
    for i, spec in enumerate(specs):
        speech = work / f"speech_{i:02d}.wav"
        speech_s = speak(spec.narration, speech, VOICE)
        # Whole seconds keep every boundary on a frame at any integer fps.
        seconds = max(MIN_SEGMENT_S, math.ceil(LEAD_S + speech_s + MIN_TAIL_S))
        if seconds > MAX_SEGMENT_S:
            raise ValueError(f"segment {i}: narration is {speech_s:.1f} s, too long")
        part = work / f"segment_{i:02d}.wav"
        run(
            [
                "sox",
                str(speech),
                "-r",
                str(SAMPLE_RATE),
                "-c",
                "1",
                "-b",
                "16",
                str(part),
                "pad",
                str(LEAD_S),
                str(MAX_SEGMENT_S),
                "trim",
                "0",
                str(seconds),
            ]
        )
        parts.append(str(part))
        built.append(BuiltSegment(spec, i, float(start), float(start + seconds), speech_s))
        start += seconds
    narration = work / "narration.wav"
    run(["sox", *parts, str(narration)])
    return narration, built


# --- encode ------------------------------------------------------------------------------


def encode(
    frames: Callable[[], Iterator[bytes]], narration: Path, boundaries: Sequence[float], out: Path
) -> None:
    keyframes = ",".join(f"{t:g}" for t in boundaries)
    args = [
        *FFMPEG,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "rgb24",
        "-s",
        f"{WIDTH}x{HEIGHT}",
        "-r",
        str(FPS),
        "-i",
        "pipe:0",
        "-i",
        str(narration),
        "-map",
        "0:v:0",
        "-map",
        "1:a:0",
        "-c:v",
        "libx264",
        "-preset",
        "slow",
        "-crf",
        "30",
        "-tune",
        "stillimage",
        "-pix_fmt",
        "yuv420p",
        "-g",
        str(FPS * 10),
        "-force_key_frames",
        keyframes,
        *AAC_MONO,
        "-movflags",
        "+faststart",
        "-map_metadata",
        "-1",
        "-fflags",
        "+bitexact",
        "-flags:v",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        str(out),
    ]
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        for frame in frames():
            proc.stdin.write(frame)
    finally:
        proc.stdin.close()
    err = proc.stderr.read() if proc.stderr else b""
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed: {err.decode(errors='replace')}")


def build(out_dir: Path, stardist_wheel: Path | None = None) -> dict[str, object]:
    for spec in SEGMENTS:
        for term in spec.key_terms:
            if term.lower() not in spec.narration.lower():
                raise ValueError(f"key term {term!r} is not in the narration: {spec.narration}")
    out_dir.mkdir(parents=True, exist_ok=True)
    video = out_dir / "lecture.mp4"
    with tempfile.TemporaryDirectory(prefix="quilt-demo-") as tmp:
        work = Path(tmp)
        sources = load_sources(work, stardist_wheel)
        narration, built = build_audio(SEGMENTS, work)

        def frames() -> Iterator[bytes]:
            for seg in built:
                n = round((seg.end_s - seg.start_s) * FPS)
                yield from segment_frames(seg.spec, sources[seg.spec.source_image], n)

        encode(frames, narration, [seg.start_s for seg in built], work / "lecture.mp4")
        shutil.move(str(work / "lecture.mp4"), video)

    duration = built[-1].end_s
    info = probe(video)
    if not info:
        raise RuntimeError(f"ffprobe cannot read {video}")
    kinds = sorted(str(s["codec_type"]) for s in info["streams"])  # type: ignore[index]
    probed = float(info["format"]["duration"])  # type: ignore[index]
    if kinds != ["audio", "video"] or abs(probed - duration) > 0.2:
        raise RuntimeError(f"unexpected encode: {info}")
    size = video.stat().st_size
    if size > MAX_VIDEO_BYTES:
        raise RuntimeError(f"{video} is {size} bytes, over {MAX_VIDEO_BYTES}")

    truth = {
        "video": video.name,
        "duration_s": duration,
        "fps": FPS,
        "width": WIDTH,
        "height": HEIGHT,
        "voice": f"espeak-ng -v {VOICE} -s {WORDS_PER_MINUTE}",
        "sources": {
            "skimage:ihc.png": "scikit-image data.immunohistochemistry(): colonic glands, "
            "FHL2 IHC with DAB and hematoxylin counterstain (CMMI; no known copyright "
            "restrictions)",
            f"stardist:{STARDIST_IMAGE}": "H&E sample image from the stardist wheel (BSD-3)",
            "skimage:astronaut.png": "scikit-image data.astronaut(): Eileen Collins, NASA "
            "(public domain)",
            "skimage:retina.jpg": "scikit-image data.retina(): fundus photograph, "
            "M. Haggstrom, Wikimedia Commons (CC0)",
            "rendered:title": "title slide rendered with Pillow",
            "rendered:summary": "summary slide rendered with Pillow",
        },
        "segments": [seg.to_json() for seg in built],
    }
    (out_dir / "lecture.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    return {
        "video": str(video),
        "bytes": size,
        "duration_s": duration,
        "probed_s": probed,
        "segments": len(built),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=REPO_ROOT / "demo")
    parser.add_argument(
        "--stardist-wheel",
        type=Path,
        default=None,
        help="use this stardist wheel instead of pip download",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    summary = build(args.out_dir, args.stardist_wheel)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
