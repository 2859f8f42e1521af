"""pHash dedup: within a video (keep the sharpest) and the corpus index (band lookups)."""

from __future__ import annotations

import random
import time

from sqlalchemy import insert, select

from app.models import Frame, FrameHashBand, Video
from workers import persist
from workers.types import FramesResult, KeptFrame
from workers.vision import dedup


def _frame(t: float, digest: str, sharp: float, root: str = "/m") -> KeptFrame:
    return KeptFrame(f"{root}/frame_{int(t * 1000):08d}.jpg", t, t, t + 1, 10, 10, 1.0, True,
                     sharpness=sharp, phash=digest)  # fmt: skip


def test_bands_cover_the_hash_and_find_close_hashes() -> None:
    digest = "0123456789abcdef"
    assert dedup.bands(digest) == [0x0123, 0x4567, 0x89AB, 0xCDEF]
    flipped = f"{int(digest, 16) ^ 0b111:016x}"  # 3 bits: same first three bands
    assert sum(a == b for a, b in zip(dedup.bands(digest), dedup.bands(flipped), strict=True)) >= 1


def test_link_duplicates_keeps_the_sharpest() -> None:
    a = _frame(1, "ffff0000ffff0000", 100.0)
    b = _frame(9, "ffff0000ffff0001", 300.0)  # 1 bit away and sharper
    c = _frame(20, "0000ffff0000ffff", 50.0)
    assert dedup.link_duplicates([a, b, c], hamming=4) == 1
    assert b.pairable and c.pairable and not a.pairable
    assert a.flags["duplicate_of"] == "frame_00009000.jpg"


def test_corpus_index_links_across_videos_and_stays_fast(settings, session) -> None:  # noqa: ANN001
    root = str(settings.media_root)
    videos = [Video(source_kind="file", source_url=f"file:///v{i}.mp4", status="done")
              for i in range(2)]  # fmt: skip
    session.add_all(videos)
    session.flush()
    # 50k unrelated frames in the index: the lookup must not scan them.
    rng = random.Random(0)
    rows = []
    for i in range(50_000):
        rows.append({"video_id": videos[0].id, "image_path": f"x/{i}.jpg", "t_s": i, "start_s": i,
                     "end_s": i + 1, "width": 10, "height": 10, "histology_score": 1.0,
                     "is_histology": True, "flags": {}, "pairable": True,
                     "phash": f"{rng.getrandbits(64):016x}", "sharpness": 1.0})  # fmt: skip
    session.execute(insert(Frame), rows)
    frames = session.execute(select(Frame.id, Frame.phash)).all()
    session.execute(
        insert(FrameHashBand),
        [
            {"frame_id": fid, "band": b, "value": v}
            for fid, digest in frames
            for b, v in enumerate(dedup.bands(digest))
        ],  # fmt: skip
    )
    first = FramesResult(frames=[_frame(1, "ffff0000ffff0000", 100.0, root)])
    persist.save_frames(session, videos[0], first)  # replaces video 0's frames
    session.flush()
    second = FramesResult(frames=[_frame(5, "ffff0000ffff0003", 50.0, root)])  # 2 bits, blurrier
    counts = persist.save_frames(session, videos[1], second)
    assert counts["corpus_duplicates"] == 1
    assert second.frames[0].pairable is False
    started = time.perf_counter()
    for _ in range(20):
        twins = persist.corpus_twins(session, "ffff0000ffff0003")
    per_lookup = (time.perf_counter() - started) / 20
    assert len(twins) == 2
    assert per_lookup < 0.05, per_lookup
    result, rows = persist.load_frames(session, videos[1])
    assert len(result.frames) == len(rows) == 1
    assert result.pairable()[0].frames == []  # a duplicate is not paired
