"""Decode a video once and yield the frames worth analysing: scene cuts and a regular sample.

Quilt-1M (Ikezogwo et al., NeurIPS 2023) ran its histology classifiers on scene keyframes
(PySceneDetect) and then searched the stable intervals between them. Here one PyAV decode
does both, without a second pass and without converting every frame:

- Decode: PyAV (FFmpeg's libavcodec) with slice threads and ``skip_frame = "NONREF"``:
  frames that no other frame references (x264's disposable B-frames) are not decoded at
  all. Measured on 720p x264 (25 fps, default preset): about half of the frames, 0.35x the
  time of ``ffmpeg -i VIDEO -f null -``; OpenCV's ``grab()`` of every frame costs 1.5x.
  Streams without B-frames decode every frame, at about 0.7x.
- Scene cuts: for every decoded frame, a 64 px wide luma thumbnail is read straight from
  the Y plane (a strided view, ~15 us, no colour conversion); a mean absolute difference
  over ``cut_threshold`` gray levels (default 12, about PySceneDetect's ContentDetector
  at 27 on HSV) against the previous thumbnail marks a cut, and that frame is yielded
  at once. A pointer, a cursor or encoder noise moves the mean by < 2 levels; a slide
  change by 20-80.
- Regular sample: the first decoded frame at or after each multiple of ``sample_s`` (by
  presentation time, so variable frame rate videos are sampled by time, not by index).
  Only yielded frames are converted to BGR arrays.

- Overlap: ``prefetched`` runs the decode in a thread of its own, a few samples ahead of
  the analysis. PyAV releases the GIL while libavcodec decodes and OpenCV while it
  filters, so on two cores decoding and analysis run side by side: the stage takes about
  the longer of the two instead of their sum (bench/bench_frames.py).

Memory: one decoded frame and one thumbnail at a time, plus the prefetch queue's few
samples, whatever the video's length.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np


@dataclass
class Sample:
    t: float
    bgr: np.ndarray
    cut: bool  # a scene cut was detected at this frame
    regular: bool  # this frame is the regular sample of its sample_s slot


@dataclass
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int


def _thumb(frame: av.VideoFrame) -> np.ndarray:
    if frame.format.name.startswith(("yuv", "yuvj", "nv12")):
        plane = frame.planes[0]
        y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
        step = max(1, frame.width // 64)
        return y[::step, : frame.width : step].astype(np.float32)
    return frame.reformat(width=64, height=36, format="gray").to_ndarray().astype(np.float32)


def open_video(
    path: Path,
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream, VideoInfo]:
    container = av.open(str(path))
    if not container.streams.video:
        container.close()
        raise ValueError("no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "SLICE"
    stream.codec_context.skip_frame = "NONREF"
    fps = float(stream.average_rate or stream.guessed_rate or 0.0)
    if stream.duration and stream.time_base:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    else:
        duration = 0.0
    info = VideoInfo(duration, fps, stream.codec_context.width, stream.codec_context.height)
    return container, stream, info


def samples(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    sample_s: float,
    cut_threshold: float = 12.0,
) -> Iterator[Sample]:
    next_t = 0.0
    prev: np.ndarray | None = None
    fps = float(stream.average_rate or 25)
    for index, frame in enumerate(container.decode(stream)):
        t = float(frame.time) if frame.time is not None else index / fps
        thumb = _thumb(frame)
        cut = (
            prev is not None
            and prev.shape == thumb.shape
            and float(np.abs(thumb - prev).mean()) > cut_threshold
        )
        prev = thumb
        # Half a frame of slack: 1.0 s at 25 fps may be stamped 0.99999.
        regular = t + 0.5 / fps >= next_t
        if regular:
            next_t = (math.floor(t / sample_s + 1e-6) + 1) * sample_s
        if regular or cut:
            yield Sample(t, frame.to_ndarray(format="bgr24"), cut, regular)


_DONE = object()


def prefetched(items: Iterator[Sample], depth: int = 4) -> Iterator[Sample]:
    """Yield ``items`` as they are, produced by a thread of their own up to ``depth`` ahead.

    An exception raised while producing (a decode error half-way) comes out here after the
    items produced before it, as it would without the thread. When the consumer stops
    early (an exception of its own, or ``close()``), the producer is told to stop and is
    joined before this generator returns, so the caller may close the container safely.
    """
    box: queue.Queue[object] = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            put(exc)
            return
        put(_DONE)

    worker = threading.Thread(target=produce, name="frames-decode", daemon=True)
    worker.start()
    try:
        while True:
            item = box.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        worker.join()
