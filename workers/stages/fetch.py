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

Where a URL may lead is app.netguard's policy (its docstring says why and where). Here it
is applied twice: ``check_url`` before yt-dlp starts, then at connect time for every
connection yt-dlp opens. yt-dlp gets a ``YoutubeDL`` subclass whose request director holds
one handler, urllib's, with an HTTP(S) handler whose connections are made by
``netguard.Guard.connect`` (http.client's ``_create_connection`` hook): the first request,
each redirect urllib follows, the pages and media URLs an extractor asks for. Checking the
address actually connected to, not the URL, covers redirects and defeats DNS rebinding;
hooking the handler, not ``socket`` for the whole process, leaves the database and broker
connections of the worker alone. What would connect past that handler is switched off:
proxies (the check would see the proxy), FTP and file URLs (not in the opener), the
requests and websockets handlers, and every downloader but yt-dlp's own HTTP, HLS and DASH
ones (ffmpeg, rtmpdump, aria2c open their own sockets; ``ffmpeg_location`` points nowhere so
that the HLS downloader cannot hand over to ffmpeg either). A refusal anywhere becomes the
one message ``netguard.REFUSED``.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from app import netguard
from workers.types import (
    FetchedMedia,
    MediaSource,
    ProbeResult,
    SourceEntry,
    StageError,
    StageJob,
    StageOutput,
    TransientError,
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
    # settings.fetch_allow_networks: internal destinations that may be fetched all the same.
    allow_networks: tuple[str, ...] = ()
    # Probe limits (QUILT_MAX_VIDEO_*, app/settings.py): a video over one is skipped
    # before anything decodes it in full.
    max_duration_s: float = 4 * 3600.0
    max_frames: int = 4 * 3600 * 60
    max_pixels: int = 4096 * 2160

    @classmethod
    def from_settings(cls, settings: Settings) -> FetchOptions:
        return cls(
            timeout_s=settings.fetch_timeout_s,
            max_bytes=settings.max_video_mb * 1024 * 1024,
            allow_networks=tuple(settings.fetch_allow_networks),
            max_duration_s=settings.max_video_duration_s,
            max_frames=settings.max_video_frames,
            max_pixels=settings.max_video_pixels,
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
        # Direct connections only, each checked by the guard (see the module docstring).
        "proxy": "",
        "hls_prefer_native": True,
        "ffmpeg_location": os.devnull + "/no-ffmpeg",
    }


@functools.cache
def _guarded_ytdlp() -> type:
    """yt-dlp's ``YoutubeDL`` whose every connection goes through a ``netguard.Guard``:
    ``_guarded_ytdlp()(params, guard)``."""
    import http.client  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    import yt_dlp  # noqa: PLC0415
    from yt_dlp.downloader import get_suitable_downloader  # noqa: PLC0415
    from yt_dlp.downloader.dash import DashSegmentsFD  # noqa: PLC0415
    from yt_dlp.downloader.hls import HlsFD  # noqa: PLC0415
    from yt_dlp.downloader.http import HttpFD  # noqa: PLC0415
    from yt_dlp.networking import _urllib  # noqa: PLC0415

    class GuardedHTTPHandler(_urllib.HTTPHandler):
        """yt-dlp's HTTP(S) handler (decompression and all); connections by the guard."""

        def __init__(self, guard: netguard.Guard, **kwargs) -> None:
            super().__init__(**kwargs)
            self._guard = guard

        def _connection(self, conn_class: type, *args, **kwargs) -> http.client.HTTPConnection:
            conn = conn_class(*args, **kwargs)
            conn._create_connection = self._guard.connect
            return conn

        def http_open(self, req):
            return self.do_open(
                functools.partial(self._connection, http.client.HTTPConnection), req
            )

        def https_open(self, req):
            return self.do_open(
                functools.partial(self._connection, http.client.HTTPSConnection),
                req,
                context=self._context,
            )

    class GuardedUrllibRH(_urllib.UrllibRH):
        RH_NAME = "urllib (address-checked)"
        _SUPPORTED_URL_SCHEMES = ("http", "https", "data")  # data: opens no connection

        def __init__(self, *, guard: netguard.Guard, **kwargs) -> None:
            super().__init__(**kwargs)
            self._guard = guard

        def _create_instance(self, proxies, cookiejar, legacy_ssl_support=None):
            # UrllibRH's opener less the proxy, FTP and file handlers: those would connect
            # (or read) past the guard. A redirect to ftp:// or file:// fails as unknown.
            opener = urllib.request.OpenerDirector()
            for handler in (
                GuardedHTTPHandler(
                    self._guard,
                    debuglevel=int(bool(self.verbose)),
                    context=self._make_sslcontext(legacy_ssl_support=legacy_ssl_support),
                ),
                urllib.request.HTTPCookieProcessor(cookiejar),
                urllib.request.DataHandler(),
                urllib.request.UnknownHandler(),
                urllib.request.HTTPDefaultErrorHandler(),
                urllib.request.HTTPErrorProcessor(),
                _urllib.RedirectHandler(),
            ):
                opener.add_handler(handler)
            opener.addheaders = []
            return opener

    class GuardedYoutubeDL(yt_dlp.YoutubeDL):
        def __init__(self, params: dict, guard: netguard.Guard) -> None:
            self.guard = guard
            super().__init__(params)

        def build_request_director(self, handlers, preferences=None):
            guarded = functools.partial(GuardedUrllibRH, guard=self.guard)
            return super().build_request_director([guarded], preferences)

        def dl(self, name, info, subtitle=False, test=False):
            downloader = get_suitable_downloader(info, self.params, to_stdout=name == "-")
            if downloader not in (HttpFD, HlsFD, DashSegmentsFD):
                raise yt_dlp.utils.DownloadError(
                    f"{info.get('protocol')} downloads are not supported"
                )
            return super().dl(name, info, subtitle=subtitle, test=test)

    return GuardedYoutubeDL


def _checked_start(url: str, options: FetchOptions, failure: str) -> netguard.Guard:
    """A guard for this fetch, after the URL itself passed it (no request made yet)."""
    guard = netguard.Guard(netguard.allow_list(options.allow_networks))
    try:
        guard.check_url(url)
    except netguard.DestinationRefused as exc:
        raise StageError(netguard.REFUSED) from exc
    except netguard.HostUnresolved as exc:
        raise StageError(f"{failure}: {exc}") from exc
    return guard


def _fetch_error(exc: BaseException, guard: netguard.Guard, failure: str) -> StageError:
    # A refused connection reads the same wherever yt-dlp met it and however it wrapped it.
    if guard.refused:
        return StageError(netguard.REFUSED)
    if _is_transient(exc):
        return TransientError(f"{failure}: {_one_line(exc)}")
    return StageError(f"{failure}: {_one_line(exc)}")


# What yt-dlp says when the network, not the URL, is at fault: worth another try later.
_TRANSIENT_TEXT = re.compile(
    r"timed out|timeout|connection (?:reset|aborted|refused)|temporary failure|"
    r"remote end closed|HTTP Error (?:5\d\d|429)|Service Unavailable|Bad Gateway|"
    r"Too Many Requests|IncompleteRead",
    re.IGNORECASE,
)


def _is_transient(exc: BaseException) -> bool:
    """A timeout, a dropped or refused connection, or a server's 5xx / 429, anywhere in
    the chain of causes yt-dlp wraps its errors in."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, TimeoutError | ConnectionError):
            return True
        status = getattr(current, "status", None) or getattr(current, "code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        info = getattr(current, "exc_info", None)  # yt-dlp's DownloadError keeps its cause here
        nested = info[1] if isinstance(info, tuple) and len(info) > 1 else None
        current = current.__cause__ or current.__context__ or nested
    return bool(_TRANSIENT_TEXT.search(str(exc)))


def expand(url: str, options: FetchOptions | None = None) -> tuple[str | None, list[SourceEntry]]:
    """(title, entries) of a channel / playlist / feed URL, without downloading videos.
    Each entry keeps what the flat listing said of the video (``SourceEntry`` lists which
    fields a YouTube listing and a feed give)."""
    import yt_dlp  # noqa: PLC0415 - worker-only dependency

    options = options or FetchOptions()
    failure = f"could not list {url}"
    guard = _checked_start(url, options, failure)
    params = _ytdlp_params(options)
    params.update(
        {
            "extract_flat": "in_playlist",
            "noplaylist": False,
            "skip_download": True,
            # YouTube's listing says "3 weeks ago", not a date; yt-dlp turns that into an
            # approximate upload date only when asked. No extra request is made.
            "extractor_args": {"youtubetab": {"approximate_date": [""]}},
        }
    )
    try:
        with _guarded_ytdlp()(params, guard) as ydl:
            info = ydl.extract_info(url, download=False)
    except Exception as exc:  # yt-dlp raises many types; the reason is what matters
        raise _fetch_error(exc, guard, failure) from exc
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
        entry_url, hints = yt_dlp.utils.unsmuggle_url(entry_url)
        entries.append(_source_entry(entry_url, entry, hints or {}))
    return info.get("title"), entries


def _source_entry(url: str, entry: dict, hints: dict) -> SourceEntry:
    """One listed video: what yt-dlp's flat entry says of it, typed and bounded. A flat
    entry is the extractor's raw dict: yt-dlp's own derived fields (``upload_date`` from
    ``timestamp``) are not filled in, so that is done here. A feed's item id (its guid)
    comes smuggled in the URL (``force_videoid``)."""

    def text(key: str, limit: int = 512) -> str | None:
        value = entry.get(key)
        return str(value)[:limit] if value not in (None, "") else None

    def number(key: str) -> float | None:
        value = entry.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            return None
        return value

    views = number("view_count")
    return SourceEntry(
        url=url,
        title=text("title"),
        external_id=text("id", 256) or _text_or_none(hints.get("force_videoid")),
        duration_s=number("duration"),
        uploader=text("uploader"),
        channel=text("channel"),
        channel_id=text("channel_id", 256),
        upload_date=_iso_date(entry.get("upload_date"), entry.get("timestamp")),
        view_count=int(views) if views is not None else None,
        availability=text("availability", 64),
        live_status=text("live_status", 64),
        license=text("license"),
        has_captions=_has_captions(entry),
    )


def _text_or_none(value: object, limit: int = 256) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


def _iso_date(upload_date: object, timestamp: object) -> str | None:
    """YYYY-MM-DD from yt-dlp's ``upload_date`` (YYYYMMDD) or else its ``timestamp``
    (seconds since the epoch, UTC); None when neither is usable."""
    if isinstance(upload_date, str) and len(upload_date) == 8 and upload_date.isdigit():
        return f"{upload_date[:4]}-{upload_date[4:6]}-{upload_date[6:]}"
    if isinstance(timestamp, (int, float)) and not isinstance(timestamp, bool):
        import datetime as dt  # noqa: PLC0415 - kept local to the listing's helpers

        try:
            return dt.datetime.fromtimestamp(timestamp, dt.UTC).date().isoformat()
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _has_captions(entry: dict) -> bool | None:
    """Whether the entry lists subtitles or automatic captions; None when it says nothing
    of either (a flat listing never does)."""
    found = [entry[key] for key in ("subtitles", "automatic_captions") if key in entry]
    if not found:
        return None
    return any(bool(tracks) for tracks in found)


def download(
    url: str,
    dest_dir: Path,
    options: FetchOptions | None = None,
    progress: Callable[[float], None] | None = None,
) -> tuple[Path, str | None]:
    """Download one video into ``dest_dir`` as ``source.<ext>``. Returns (path, title)."""
    options = options or FetchOptions()
    guard = _checked_start(url, options, "download failed")
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
        with _guarded_ytdlp()(params, guard) as ydl:
            info = ydl.extract_info(url, download=True)
    except Exception as exc:
        raise _fetch_error(exc, guard, "download failed") from exc
    files = [p for p in dest_dir.glob("source.*") if not p.name.endswith((".part", ".ytdl"))]
    if not files:
        raise StageError("download failed: no file was written")
    return files[0], (info or {}).get("title")


def probe(path: Path, options: FetchOptions | None = None) -> ProbeResult:
    """Read the container and decode two frames; refuse what is not a usable video, and
    (``skipped``) a video over the limits of ``options``, by its header, before decoding."""
    import av  # noqa: PLC0415

    options = options or FetchOptions()
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
        fps = float(vstream.average_rate) if vstream.average_rate else None
        _check_limits(vstream, duration, fps, options)
        _decode_at(container, vstream, 0.0, what="first frame")
        _decode_at(container, vstream, duration / 2, what="middle of the video")
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


def hms(seconds: float) -> str:
    """4:00:00, 10:00:00, 0:01:34."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _check_limits(stream, duration: float, fps: float | None, options: FetchOptions) -> None:
    """Refuse (skipped: readable, out of scope) a video whose header declares more than
    the limits: the ASR and frame stages would decode all of it."""
    if duration > options.max_duration_s:
        raise StageError(
            f"too long: {hms(duration)}, the limit is {hms(options.max_duration_s)} "
            "(QUILT_MAX_VIDEO_DURATION_S)",
            status="skipped",
        )
    # The declared frame count, or duration x frame rate where that is more: either way
    # the decoder would be asked for that many frames.
    frames = max(stream.frames or 0, round(duration * fps) if fps else 0)
    if frames > options.max_frames:
        raise StageError(
            f"too many frames: {frames:,}, the limit is {options.max_frames:,} "
            "(QUILT_MAX_VIDEO_FRAMES)",
            status="skipped",
        )
    width, height = stream.codec_context.width or 0, stream.codec_context.height or 0
    if width * height > options.max_pixels:
        raise StageError(
            f"resolution too high: {width}x{height} = {width * height:,} pixels, the limit "
            f"is {options.max_pixels:,} (QUILT_MAX_VIDEO_PIXELS)",
            status="skipped",
        )


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
    info = probe(path, FetchOptions.from_settings(job.settings))
    stats = {
        "bytes": info.size_bytes,
        "duration_s": info.duration_s,
        "video_codec": info.video_codec,
        "audio_codec": info.audio_codec,
    }
    return StageOutput(
        artifacts={"media": FetchedMedia(path=path, probe=info, title=title)}, stats=stats
    )
