"""Bad-input media fixtures for the pipeline's error-handling tests.

Each generator writes one real file into a given folder and returns its path. They make
what real users upload by mistake or by malice: a corrupt or truncated mp4, a video
without an audio stream, a silent lecture, a lecture in another language, empty and
non-video files named ``.mp4``, an audio-only file, and a valid video with a hostile file
name. Stages must give such an item a status and an error message and go on (one bad
item never fails a batch); these files let tests check that with real media and no
mocks.

Everything is made with ffmpeg, espeak-ng and sox from apt, at 640x360 and 5 fps with the
fastest x264 preset, so each file takes well under two seconds. The histology picture is
scikit-image's bundled IHC image of colonic glands, read from the installed package's data
folder. Commands are argument lists (never a shell), which is also why the hostile name is
safe to create. ``scripts/make_demo.py`` builds the demo lecture with the same speech,
ffmpeg and ffprobe helpers.

This module holds no tests; test modules import it::

    from tests.support import media
    path = media.silent_video(tmp_path)
"""

from __future__ import annotations

import json
import logging
import random
import shutil
import subprocess
import wave
from collections.abc import Sequence
from importlib.util import find_spec
from pathlib import Path

_logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_VIDEO = REPO_ROOT / "demo" / "lecture.mp4"

WIDTH, HEIGHT, FPS = 640, 360, 5
WORDS_PER_MINUTE = 150

# ffmpeg, quiet, overwriting its output; and the mono AAC track every file here carries.
FFMPEG = ("ffmpeg", "-hide_banner", "-loglevel", "error", "-y")
AAC_MONO = ("-c:a", "aac", "-b:a", "48k", "-ac", "1")

ENGLISH_NARRATION = (
    "Here at high power you can see the colonic crypts, lined by goblet cells, "
    "in the lamina propria."
)
# Spanish, as a pathologist would say it: "Here, at high power, we see colonic crypts with
# goblet cells in the lamina propria." Whisper models that are English-only mangle it.
SPANISH_NARRATION = (
    "Aquí, a gran aumento, vemos las criptas del colon con células caliciformes en la "
    "lámina propia, y algunos linfocitos en el estroma."
)
# A valid name on Linux (no slash, no NUL) that breaks naive shell quoting, option parsing,
# HTML rendering and ASCII-only code.
HOSTILE_NAME = (
    "-rf lecture \"quoted\" 'single'; rm -rf ~; $(touch pwned) `id` & | "
    "<script>alert(1)<script> Gewebe\u2013Schnitt \u00fc \u7d44\u7e54 \U0001f52c.mp4"
)


def histology_image() -> Path:
    """scikit-image's bundled IHC image (colonic glands, DAB and hematoxylin)."""
    spec = find_spec("skimage")
    if spec is None or spec.origin is None:
        raise RuntimeError("scikit-image is needed for the histology fixture image")
    return Path(spec.origin).parent / "data" / "ihc.png"


# --- tools ----------------------------------------------------------------------------


def run(args: Sequence[str]) -> None:
    """Run a command (an argument list); its error output is in the exception if it fails."""
    _logger.debug("run: %s", " ".join(args))
    subprocess.run(list(args), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def ffmpeg(*args: str) -> None:
    run([*FFMPEG, *args])


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def speak(text: str, out: Path, voice: str = "en-us") -> float:
    """espeak-ng reads ``text`` into the wav ``out``; returns its length in seconds."""
    # The text goes through a file so a leading "-" can never be read as an option.
    text_file = out.with_suffix(".txt")
    text_file.write_text(text, encoding="utf-8")
    run(
        [
            "espeak-ng",
            "-v",
            voice,
            "-s",
            str(WORDS_PER_MINUTE),
            "-w",
            str(out),
            "-f",
            str(text_file),
        ]
    )
    text_file.unlink()
    return wav_seconds(out)


def probe(path: Path) -> dict:
    """ffprobe's JSON of the container and its streams; {} when ffprobe cannot read it."""
    result = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "format=duration:stream=codec_type,codec_name,pix_fmt,width,height",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        return {}
    return json.loads(result.stdout)


def _video_input(image: Path, seconds: float) -> list[str]:
    return ["-loop", "1", "-framerate", str(FPS), "-t", f"{seconds:.3f}", "-i", str(image)]


def _video_output() -> list[str]:
    scale = (
        f"scale={WIDTH}:{HEIGHT}:force_original_aspect_ratio=decrease,"
        f"pad={WIDTH}:{HEIGHT}:(ow-iw)/2:(oh-ih)/2,format=yuv420p"
    )
    return [
        "-vf",
        scale,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-tune",
        "stillimage",
        "-r",
        str(FPS),
    ]


# --- files ----------------------------------------------------------------------------


def narrated_video(
    dir: Path | str,
    text: str,
    image: Path | str | None = None,
    seconds: float | None = None,
    *,
    voice: str = "en-us",
    name: str = "narrated.mp4",
    faststart: bool = True,
) -> Path:
    """An mp4 of a still image with espeak-ng reading ``text``.

    ``seconds`` defaults to the speech length plus half a second; a longer value pads the
    audio with silence, a shorter one cuts the speech.
    """
    folder = Path(dir)
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / name
    speech = folder / f".{out.stem}-speech.wav"
    speech_s = speak(text, speech, voice)
    duration = seconds if seconds is not None else speech_s + 0.5
    ffmpeg(
        *_video_input(Path(image) if image else histology_image(), duration),
        *("-i", str(speech), "-map", "0:v:0", "-map", "1:a:0", "-af", "apad"),
        *("-t", f"{duration:.3f}"),
        *_video_output(),
        *AAC_MONO,
        *(["-movflags", "+faststart"] if faststart else []),
        str(out),
    )
    speech.unlink()
    return out


def video_without_audio(dir: Path | str) -> Path:
    """Four seconds of a histology image and no audio stream at all."""
    out = Path(dir) / "no_audio.mp4"
    ffmpeg(*_video_input(histology_image(), 4.0), *_video_output(), "-an", str(out))
    return out


def silent_video(dir: Path | str) -> Path:
    """Ten seconds of a histology image with an audio track of pure digital silence."""
    out = Path(dir) / "silent.mp4"
    ffmpeg(
        *_video_input(histology_image(), 10.0),
        *("-f", "lavfi", "-t", "10", "-i", "anullsrc=r=16000:cl=mono"),
        *("-map", "0:v:0", "-map", "1:a:0", "-t", "10"),
        *_video_output(),
        *AAC_MONO,
        str(out),
    )
    return out


def non_english_video(dir: Path | str) -> Path:
    """About ten seconds of a histology image narrated in Spanish by espeak-ng."""
    return narrated_video(
        dir, SPANISH_NARRATION, seconds=10.0, voice="es", name="spanish_lecture.mp4"
    )


def corrupt_video(dir: Path | str) -> Path:
    """A real narrated mp4 whose middle is cut out and replaced by garbage bytes.

    It is written without faststart, so the moov atom sits at the end; shortening the file
    leaves the mdat size pointing past the end and the container cannot be opened at all
    ("moov atom not found"). The garbage is seeded, so the file is the same every time.
    """
    folder = Path(dir)
    good = narrated_video(
        folder, ENGLISH_NARRATION, seconds=4.0, name=".corrupt-source.mp4", faststart=False
    )
    data = good.read_bytes()
    good.unlink()
    n = len(data)
    garbage = random.Random(0).randbytes(n // 5)
    out = folder / "corrupt.mp4"
    out.write_bytes(data[: n // 4] + garbage + data[n // 2 + n // 4 :])
    return out


def truncated_video(dir: Path | str) -> Path:
    """The first 30% of the demo lecture's bytes: the header opens, decoding runs dry."""
    data = DEMO_VIDEO.read_bytes()
    out = Path(dir) / "truncated.mp4"
    out.write_bytes(data[: int(len(data) * 0.3)])
    return out


def empty_file(dir: Path | str) -> Path:
    """Zero bytes, named like a video."""
    out = Path(dir) / "empty.mp4"
    out.write_bytes(b"")
    return out


def non_video_file(dir: Path | str) -> Path:
    """A text file (lecture notes) named like a video."""
    out = Path(dir) / "notes.mp4"
    out.write_text(
        "Lecture notes: colonic adenocarcinoma.\n"
        "- low power: architecture\n- high power: nuclei, mitotic figures\n",
        encoding="utf-8",
    )
    return out


def audio_only_file(dir: Path | str) -> Path:
    """An .m4a of English pathology narration: audio, but no video stream."""
    folder = Path(dir)
    folder.mkdir(parents=True, exist_ok=True)
    speech = folder / ".audio-only-speech.wav"
    speak(ENGLISH_NARRATION, speech)
    out = folder / "narration.m4a"
    ffmpeg("-i", str(speech), *AAC_MONO, str(out))
    speech.unlink()
    return out


def hostile_name_video(dir: Path | str) -> Path:
    """A valid short narrated video whose file name is :data:`HOSTILE_NAME`.

    The name has spaces, quotes, ``;``, ``$()``, backticks, ``&``, ``|``, ``<script>``,
    non-ASCII letters and an emoji, and starts with a dash, but holds no slash.
    """
    folder = Path(dir)
    made = narrated_video(folder, ENGLISH_NARRATION, name="hostile-source.mp4")
    return made.rename(folder / HOSTILE_NAME)


def lecture_feed(folder: Path, base: str, names: Sequence[str], title: str) -> str:
    """An RSS feed of lectures (copies of the demo lecture, ``NAME.mp4``) written into
    ``folder``, which is served at ``base``. Returns the feed's URL; its items are titled
    ``Lecture NAME``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(DEMO_VIDEO, folder / f"{name}.mp4")
    items = "".join(
        f"<item><title>Lecture {n}</title><link>{base}/{n}.mp4</link>"
        f'<enclosure url="{base}/{n}.mp4" type="video/mp4" length="1"/><guid>{n}</guid></item>'
        for n in names
    )
    (folder / "feed.xml").write_text(
        f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
        f"<link>{base}/</link><description>d</description>{items}</channel></rss>"
    )
    return f"{base}/feed.xml"
