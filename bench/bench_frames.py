"""The frames stage against a full ffmpeg decode of the same video, in the same run.

Builds a 10-minute 1280x720 25 fps H.264 lecture (x264 default preset, so it has B-frames
like real uploads) in a temp dir from the test images: scenes of 20-40 s cycling through
histology (H&E, IHC, zooms, a narrator inset, a slide viewer) and non-histology (text
slides, photos, a desktop), each with a moving pointer so consecutive frames differ. Then
times ``frames.extract`` in a child process (its peak RSS from ``getrusage``) and
``ffmpeg -nostdin -i VIDEO -an -f null -``. Goal (issue 3): ratio <= 1.0.

Usage: ``python bench/bench_frames.py [--minutes 10] [--json PATH]``
"""

from __future__ import annotations

import argparse
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


def make_lecture(path: Path, minutes: float, fps: int = 25) -> list[tuple[str, float]]:
    import cv2  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from tests import frameset  # noqa: PLC0415

    frames = {f.name: f.rgb for f in frameset.build()}
    names = ["slide0", "he@720p", "ihc@720p", "chelsea", "he-zoom2.0@720p", "he+narrator",
             "desktop0", "ihc-zoom1.5@720p", "ihc-crop1+viewer", "retina", "slide2"]  # fmt: skip
    rng = np.random.default_rng(0)
    cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
           "-s", "1280x720", "-r", str(fps), "-i", "-", "-c:v", "libx264",
           "-pix_fmt", "yuv420p", str(path)]  # fmt: skip
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


def _child(video: str, out: str) -> None:
    from workers.stages.frames import extract  # noqa: PLC0415

    started = time.perf_counter()
    result = extract(video, out)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": round(seconds, 3), "peak_rss_mb": round(peak_mb, 1),
                      "stats": result.stats}))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "lecture.mp4"
        made = time.perf_counter()
        layout = make_lecture(video, args.minutes)
        build_s = time.perf_counter() - made
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(video), str(Path(tmp) / "images")],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        stage = json.loads(child.stdout.strip().splitlines()[-1])
        started = time.perf_counter()
        subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(video), "-an", "-f",
                        "null", "-"], check=True)  # fmt: skip
        decode_s = time.perf_counter() - started
    report = {
        "video": {
            "minutes": args.minutes,
            "size": "1280x720",
            "fps": 25,
            "scenes": len(layout),
            "build_s": round(build_s, 1),
        },  # fmt: skip
        "frames_stage_s": stage["seconds"],
        "ffmpeg_decode_s": round(decode_s, 3),
        "ratio": round(stage["seconds"] / decode_s, 3),
        "peak_rss_mb": stage["peak_rss_mb"],
        "stats": stage["stats"],
    }
    print(json.dumps(report, indent=2))  # noqa: T201 - a bench prints its report
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
