"""Fetch and probe: bring a video onto local disk and find out what it is.

- ``expand`` lists the videos of a channel, playlist or feed with yt-dlp's flat
  extraction (one cheap request; no video is downloaded), so that each becomes its own
  video row and its own pipeline run.
- ``download`` fetches one video with yt-dlp, for YouTube and for plain http(s) media URLs
  alike (yt-dlp's generic extractor handles direct files). We ask for a single progressive
  file of at most 720p: frames are analysed at reduced resolution anyway, and a
  progressive file needs no ffmpeg merge step.
- ``place_local`` puts a local file or an upload into the video's media folder: a hard
  link where the file system allows (free, and the original stays where it was, so a
  re-run after a failure finds its source again), else a copy.
- ``probe`` opens the file with PyAV and decodes a frame at the start and one in the
  middle: a container header can look fine on a truncated upload, the decode cannot.

Bad input raises ``StageError`` with a one-line reason that goes on the video row.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workers.types import (
    FetchedMedia,
    MediaSource,
    ProbeResult,
    SourceEntry,
    StageError,
    StageJob,
    StageOutput,
)

if TYPE_CHECKING:
    from app.settings import Settings


# 720p is plenty for the frame stage (it analyses frames downscaled) and keeps storage
# linear in hours at a modest constant.
YTDLP_FORMAT = "best[height<=720][vcodec!=none][acodec!=none]/best[vcodec!=none]/best"


@dataclass
class FetchOptions:
    timeout_s: int = 600
    max_bytes: int = 4 * 1024**3

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchOptions:
        return cls(
            timeout_s=settings.fetch_timeout_s, max_bytes=settings.max_video_mb * 1024 * 1024
        )


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _ytdlp_params(options: FetchOptions) -> dict:
    return {
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "socket_timeout": min(options.timeout_s, 60),
        "retries": 3,
        "max_filesize": options.max_bytes,
        # Never run external programs or write side files next to the video.
        "noplaylist": True,
        "writesubtitles": False,
        "writethumbnail": False,
        "color": "no_color",
    }


def expand(url: str, options: FetchOptions | None = None) -> tuple[str | None, list[SourceEntry]]:
    """(title, entries) of a channel / playlist / feed URL, without downloading videos."""
    import yt_dlp  # noqa: PLC0415 - worker-only dependency

    params = _ytdlp_params(options or FetchOptions())
    params.update({"extract_flat": "in_playlist", "noplaylist": False, "skip_download": True})
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.extract_info(url, download=False)
    except Exception as exc:  # yt-dlp raises many types; the reason is what matters
        raise StageError(f"could not list {url}: {_one_line(exc)}") from exc
    if info is None:
        raise StageError(f"could not list {url}: nothing found")
    entries_info = info.get("entries")
    if entries_info is None:  # a single video, not a list
        entries_info = [info]
    entries = []
    for entry in entries_info:
        if not entry:
            continue
        entry_url = entry.get("webpage_url") or entry.get("url")
        if not entry_url:
            continue
        # yt-dlp may "smuggle" extractor hints into a URL fragment; store the plain URL.
        entry_url, _hints = yt_dlp.utils.unsmuggle_url(entry_url)
        entries.append(
            SourceEntry(
                url=entry_url,
                title=entry.get("title"),
                external_id=entry.get("id"),
                duration_s=entry.get("duration"),
            )
        )
    return info.get("title"), entries


def download(
    url: str,
    dest_dir: Path,
    options: FetchOptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[Path, str | None]:
    """Download one video into ``dest_dir`` as ``source.<ext>``. Returns (path, title)."""
    import yt_dlp  # noqa: PLC0415

    options = options or FetchOptions()
    dest_dir.mkdir(parents=True, exist_ok=True)
    for stale in dest_dir.glob("source.*"):
        stale.unlink()

    def _hook(status: dict) -> None:
        if progress and status.get("status") == "downloading":
            total = status.get("total_bytes") or status.get("total_bytes_estimate")
            if total:
                progress(min(1.0, status.get("downloaded_bytes", 0) / total))

    params = _ytdlp_params(options)
    params.update(
        {
            "format": YTDLP_FORMAT,
            # The name is ours, never the uploader's title: no path comes from remote data.
            "outtmpl": {"default": str(dest_dir / "source.%(ext)s")},
            "restrictfilenames": True,
            "progress_hooks": [_hook],
        }
    )
    try:
        with yt_dlp.YoutubeDL(params) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as exc:
        raise StageError(f"download failed: {_one_line(exc)}") from exc
    files = [p for p in dest_dir.glob("source.*") if not p.name.endswith((".part", ".ytdl"))]
    if not files:
        raise StageError("download failed: no file was written")
    return files[0], (info or {}).get("title")


def probe(path: Path) -> ProbeResult:
    """Read the container and decode two frames; refuse what is not a usable video."""
    import av  # noqa: PLC0415

    path = Path(path)
    if not path.is_file():
        raise StageError("file not found")
    size = path.stat().st_size
    if size == 0:
        raise StageError("empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as exc:
        raise StageError(f"not a readable video file ({_one_line(exc)})") from exc
    with container:
        video_streams = list(container.streams.video)
        audio_streams = list(container.streams.audio)
        if not video_streams:
            if audio_streams:
                raise StageError("audio-only file: no video stream")
            raise StageError("not a video file: no video stream")
        vstream = video_streams[0]
        duration = _duration_s(container, vstream)
        if not duration or duration <= 0:
            raise StageError("video has no duration (truncated or corrupt)")
        _decode_at(container, vstream, 0.0, what="first frame")
        _decode_at(container, vstream, duration / 2, what="middle of the video")
        fps = float(vstream.average_rate) if vstream.average_rate else None
        result = ProbeResult(
            path=str(path),
            sha256=sha256_file(path),
            size_bytes=size,
            duration_s=round(duration, 3),
            has_video=True,
            has_audio=bool(audio_streams),
            fps=fps,
            width=vstream.codec_context.width or None,
            height=vstream.codec_context.height or None,
            video_codec=vstream.codec_context.name,
            audio_codec=audio_streams[0].codec_context.name if audio_streams else None,
        )
    return result


def _duration_s(container, stream) -> float | None:  # noqa: ANN001
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000
    return None


def _decode_at(container, stream, t_s: float, *, what: str) -> None:  # noqa: ANN001
    try:
        if t_s > 0:
            container.seek(int(t_s / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame is not None:
                return
    except Exception as exc:
        raise StageError(f"cannot decode the {what}: truncated or corrupt video") from exc
    raise StageError(f"cannot decode the {what}: truncated or corrupt video")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    # yt-dlp prefixes errors with ANSI-free "ERROR: "; keep the message itself.
    return line.removeprefix("ERROR: ")[:300]


def place_local(source: Path, folder: Path | None) -> Path:
    """The local file as the pipeline will read it: ``folder/source<ext>``, or the file
    itself when there is no folder (``quilt pipeline run`` reads it in place)."""
    if not source.is_file():
        raise StageError("source file is missing")
    if folder is None:
        return source
    folder.mkdir(parents=True, exist_ok=True)
    # The extension is kept for the tools that look at it, the name never (it is the
    # uploader's); an odd extension becomes .bin.
    suffix = source.suffix.lower() if source.suffix.isascii() and len(source.suffix) <= 8 else ""
    dest = folder / f"source{suffix or '.bin'}"
    if source.resolve() == dest.resolve():
        return dest
    dest.unlink(missing_ok=True)
    try:
        os.link(source, dest)
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(source, dest)
    return dest


def run(job: StageJob) -> StageOutput:
    """The stage as the pipeline table runs it: a source in, a probed local video out."""
    source: MediaSource = job.inputs["source"]
    title = None
    if source.kind in ("http", "youtube"):
        if job.files is None:
            raise StageError("a URL needs a folder to download into")
        path, title = download(
            source.location, job.files, FetchOptions.from_settings(job.settings), job.progress
        )
    else:
        path = place_local(Path(source.location), job.files)
    info = probe(path)
    stats = {
        "bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
    }
    return StageOutput(
        artifacts={"media": FetchedMedia(path=path, probe=info, title=title)}, stats=stats
    )
