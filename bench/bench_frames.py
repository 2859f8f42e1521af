"""The frames stage against a full ffmpeg decode of the same video, in the same run.

Builds a 10-minute 1280x720 25 fps H.264 lecture from the test images: scenes of 20-40 s
cycling through histology (H&E, IHC, zooms, a narrator inset, a slide viewer) and
non-histology (text slides, photos, a desktop), each with a moving pointer so consecutive
frames differ. x264 ``veryfast`` keeps the default GOP (250) and 3 B-frames, the structure
of real uploads, and builds in about a quarter of the default preset's time. The video is
cached under ``var/bench-cache/`` keyed by its parameters (``--rebuild`` to redo it).

Then, in the same run, times ``frames.extract`` in a child process (its peak RSS from
``getrusage``) and the baseline ``ffmpeg -nostdin -i VIDEO -f null -`` (also ``-an``,
the same here: the lecture has no audio), interleaved, best of ``--repeat``. Wall seconds
give the ratio (goal: <= 1.0, no slower than a bare ffmpeg decode); CPU seconds over all
threads are reported too, as the steadier figure on a shared machine. The stage's time is
``extract`` alone; ffmpeg's includes its process start (~0.1 s).

Usage: ``python bench/bench_frames.py [--minutes 10] [--repeat 1] [--rebuild] [--json PATH]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

CACHE_DIR = REPO_ROOT / "var" / "bench-cache"
_PRESET = "veryfast"  # default GOP, 3 B-frames; ultrafast would drop the B-frames
_LECTURE_VERSION = 2  # bump when make_lecture's content changes


def make_lecture(
    path: Path, minutes: float, fps: int = 25, preset: str = _PRESET
) -> list[tuple[str, float]]:
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from tests.support import frameset  # noqa: PLC0415

    frames = {f.name: f.rgb for f in frameset.build()}
    names = ["slide0", "he@720p", "ihc@720p", "chelsea", "he-zoom2.0@720p", "he+narrator",
             "desktop0", "ihc-zoom1.5@720p", "ihc-crop1+viewer", "retina", "slide2"]  # fmt: skip
    rng = np.random.default_rng(0)
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", "1280x720", "-r", str(fps), "-i", "-", "-c:v", "libx264",
           "-preset", preset, "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    t, i, layout = 0.0, 0, []
    while t < minutes * 60:
        seconds = float(min(rng.uniform(20, 40), minutes * 60 - t))
        name = names[i % len(names)]
        base = cv2.cvtColor(frames[name], cv2.COLOR_RGB2BGR)
        for k in range(round(seconds * fps)):
            frame = base.copy()
            x = 200 + int(400 * (1 + np.sin(k / 40)))
            cv2.circle(frame, (x, 360), 7, (0, 255, 0), -1)
            proc.stdin.write(frame.tobytes())
        layout.append((name, round(seconds, 2)))
        t += seconds
        i += 1
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError("ffmpeg failed")
    return layout


def cached_lecture(minutes: float, rebuild: bool = False) -> tuple[Path, dict]:
    """The lecture for these parameters from ``var/bench-cache``, built when missing."""
    params = {"minutes": minutes, "fps": 25, "size": "1280x720", "preset": _PRESET,
              "version": _LECTURE_VERSION}  # fmt: skip
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    video = CACHE_DIR / f"lecture-{key}.mp4"
    meta_path = video.with_suffix(".json")
    if not rebuild and video.is_file() and meta_path.is_file():
        return video, {**json.loads(meta_path.read_text()), "cached": True}
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = video.with_suffix(".partial.mp4")
    started = time.perf_counter()
    layout = make_lecture(partial, minutes, preset=_PRESET)
    partial.replace(video)
    meta = {**params, "scenes": len(layout), "layout": layout,
            "build_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    meta_path.write_text(json.dumps(meta))
    return video, {**meta, "cached": False}


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ffmpeg_null(video: Path, *extra: str) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of a full decode to the null muxer."""
    started, cpu = time.perf_counter(), _cpu_children()
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), *extra, "-f", "null", "-"]
    subprocess.run(cmd, check=True)
    return time.perf_counter() - started, _cpu_children() - cpu


def _cpu_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _child(video: str, out: str) -> None:
    from workers.stages.frames import extract  # noqa: PLC0415

    started, cpu = time.perf_counter(), _cpu_self()
    result = extract(video, out)
    seconds, cpu_s = time.perf_counter() - started, _cpu_self() - cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 3), "cpu_s": round(cpu_s, 3),
                      "peak_rss_mb": round(peak_mb, 1), "stats": result.stats}))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1, help="best of N for each side")
    parser.add_argument("--rebuild", action="store_true", help="ignore the cached video")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    video, meta = cached_lecture(args.minutes, args.rebuild)
    stages, null_s, null_an_s = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, args.repeat)):
            # Interleaved, so a load spike on the machine hits both sides alike.
            null_s.append(_ffmpeg_null(video))
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(video), str(Path(tmp) / "images")],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            stages.append(json.loads(child.stdout.strip().splitlines()[-1]))
            null_an_s.append(_ffmpeg_null(video, "-an"))
    stage = min(stages, key=lambda r: r["seconds"])
    decode_s, decode_an_s = min(w for w, _ in null_s), min(w for w, _ in null_an_s)
    stage_cpu, decode_cpu = min(r["cpu_s"] for r in stages), min(c for _, c in null_s)
    report = {
        "video": {k: meta[k] for k in ("minutes", "size", "fps", "preset", "scenes", "build_s")}
        | {"cached": meta["cached"], "path": str(video.relative_to(REPO_ROOT))},
        "frames_stage_s": stage["seconds"],
        "ffmpeg_decode_s": round(decode_s, 3),  # ffmpeg -i VIDEO -f null -
        "ffmpeg_decode_an_s": round(decode_an_s, 3),  # the same with -an
        "ratio": round(stage["seconds"] / decode_s, 3),
        "ratio_an": round(stage["seconds"] / decode_an_s, 3),
        # CPU seconds over all threads: steadier than wall time on a shared machine.
        "frames_stage_cpu_s": round(stage_cpu, 3),
        "ffmpeg_decode_cpu_s": round(decode_cpu, 3),
        "ratio_cpu": round(stage_cpu / decode_cpu, 3),
        "runs": {
            "stage_s": [r["seconds"] for r in stages],
            "ffmpeg_s": [round(w, 3) for w, _ in null_s],
            "ffmpeg_an_s": [round(w, 3) for w, _ in null_an_s],
        },
        "peak_rss_mb": max(r["peak_rss_mb"] for r in stages),
        "stats": stage["stats"],
    }
    from bench.report import emit  # noqa: PLC0415

    emit(report, args.json, text=json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
