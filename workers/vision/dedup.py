"""Near-duplicate frames by 64-bit perceptual hash, within a video and across the corpus.

Lecturers reuse slides: the same histology image comes back later in a video, in the next
lecture of a series and in other channels' re-uploads. Quilt-1M kept them all. Here:

- Within a video (``link_duplicates``): kept frames whose pHashes (DCT, 64 bits, as
  ``imagehash.phash``) are within ``hamming`` bits (default 4: JPEG q40 moves a hash by
  <= 4 bits, different views differ by > 16; tests/test_frames.py) form a group; the
  sharpest (Laplacian variance) stays pairable, the others get ``duplicate_of`` (the
  keeper's image name) and ``pairable = False``.
- Across the corpus (``bands`` + the ``frame_hash_bands`` table): multi-index hashing
  (Norouzi, Punjani and Fleet, CVPR 2012). The hash is cut into ``BANDS`` = 4 bands of
  16 bits; by pigeonhole, two hashes within 3 bits agree exactly on at least one band.
  Each frame stores its 4 (band, value) rows under a (band, value) index; a lookup is 4
  index probes, then an exact Hamming check on the few candidates. With 2^16 values a
  band, a million frames put ~15 rows in a bucket on average, so the lookup cost stays
  flat as the corpus grows (tests/test_dedup.py measures it at 200k frames).
  ``CORPUS_HAMMING`` = 3 is the largest distance the index finds without misses.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from workers.types import KeptFrame

BANDS = 4
BAND_BITS = 64 // BANDS
CORPUS_HAMMING = BANDS - 1


def phash(bgr: np.ndarray) -> str:
    """64-bit DCT perceptual hash (the imagehash.phash algorithm) as 16 hex digits."""
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY) if bgr.ndim == 3 else bgr
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32)
    low = cv2.dct(small)[:8, :8]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"


def distance(a: str, b: str) -> int:
    """Hamming distance of two hex hashes, in bits."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def bands(digest: str) -> list[int]:
    """The hash's ``BANDS`` values, most significant first (each < 2**16)."""
    value = int(digest, 16)
    mask = (1 << BAND_BITS) - 1
    return [(value >> (BAND_BITS * (BANDS - 1 - i))) & mask for i in range(BANDS)]


def link_duplicates(frames: list[KeptFrame], hamming: int) -> int:
    """Mark near-duplicate kept frames of one video; returns how many were marked."""
    marked = 0
    order = sorted((f for f in frames if f.phash), key=lambda f: (-(f.sharpness or 0.0), f.t_s))
    keepers: list[KeptFrame] = []
    for frame in order:
        keeper = next(
            (k for k in keepers if distance(k.phash or "0", frame.phash or "0") <= hamming), None
        )
        if keeper is None:
            keepers.append(frame)
            continue
        frame.flags["duplicate_of"] = Path(keeper.image_path).name
        if frame.pairable:
            marked += 1
        frame.pairable = False
        frame.flags["pairable"] = False
    return marked
