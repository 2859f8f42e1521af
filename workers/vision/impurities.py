"""Impurities in a lecture frame: a narrator's face, a text overlay, desktop chrome.

The audit of a 1% sample of Quilt-1M (Aubreville et al., MIDL 2024) found 78% of the
images impure: the narrator visible, desktop or slide software around the slide, text
overlays. Quilt (Ikezogwo et al., NeurIPS 2023) never looked. Each detector here returns
boxes in source pixels so the frames stage can crop around them (``tissue.clean_crop``);
all run on the kept frames only (a few per chunk), not on every sample.

- ``faces``: OpenCV's bundled Haar cascade ``frontalface_alt2`` at 640 px long side,
  ``minNeighbors`` 6, faces over 5% of the short side (a webcam inset's face is 10-30%),
  pyramid step 1.2. On the frame set, ``frontalface_default`` fired on IHC and H&E texture
  (2-12 false faces) and the profile cascade found no inset; alt2 at 640 px found every
  narrator with no false face, at step 1.1 and at 1.2 alike (10/10, no false face); 1.2
  halves the pyramid and the time (~300 -> ~160 ms a frame on a loaded 2-core machine:
  the cascade was the largest cost of the stage after decoding). The set has two
  identities (the astronaut and Grace Hopper's portrait: 12/12, no false face); both face
  the camera, so expect lower recall on real narrators in profile.
- ``text_lines``: high-contrast edges (morphological gradient > ``_TEXT_EDGE`` gray levels
  at 640 px) that survive a 3x3 opening: a letter's strokes at that size are solid blobs
  of gradient, while tissue and photo edges are thin lines that vanish (measured on the
  frame set: text boxes 50-65% edges, tissue 5-35%). They are joined along the line by a
  15x3 closing; a box is a text line when its height is 1.2-9% of the frame, it is at
  least 3x as wide as high and 5% of the frame wide, at least ``_SOLID_MIN`` solid, with
  at least 4 separate blobs (letters).
  Text of slides, captions, titles, menus and file trees all count.
- ``desktop``: window chrome is built of long, straight, axis-aligned edges: title bar,
  menu bar, toolbar, panes, status bar, taskbar. Rows (columns) where an edge runs
  unbroken over 40% of the width (30% of the height) are found by eroding the edge map
  with a 1 x L line; rows within 1% of the height are one line. A frame is a desktop when
  it has at least 4 such horizontal lines, or 3 with 2 vertical ones. A letterboxed slide
  has 2 + 2 at most; a caption bar adds one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np

from workers.vision.tissue import Box, downscale

_TEXT_EDGE = 70
_SOLID_MIN = 0.3


@dataclass
class Impurities:
    faces: list[Box] = field(default_factory=list)
    text: list[Box] = field(default_factory=list)
    desktop: bool = False
    desktop_lines: tuple[int, int] = (0, 0)  # horizontal, vertical

    @property
    def boxes(self) -> list[Box]:
        return [*self.faces, *self.text]

    def flags(self) -> dict:
        return {
            "face": bool(self.faces),
            "faces": len(self.faces),
            "text_overlay": bool(self.text),
            "text_lines": len(self.text),
            "desktop": self.desktop,
        }


def _scale_box(box: tuple[int, int, int, int], scale: float, w: int, h: int) -> Box:
    x, y, bw, bh = (round(v / scale) for v in box)
    return (max(0, x), max(0, y), min(w - max(0, x), bw), min(h - max(0, y), bh))


@lru_cache(maxsize=2)
def _cascade(name: str) -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(cv2.data.haarcascades + name)


def faces(bgr: np.ndarray, gray640: tuple[np.ndarray, float] | None = None) -> list[Box]:
    gray, scale = gray640 or _gray640(bgr)
    min_side = max(16, round(0.05 * min(gray.shape)))
    cascade = _cascade("haarcascade_frontalface_alt2.xml")
    if cascade.empty():
        return []
    boxes = cascade.detectMultiScale(
        gray, scaleFactor=1.2, minNeighbors=6, minSize=(min_side, min_side)
    )
    return [
        _scale_box(tuple(int(v) for v in b), scale, bgr.shape[1], bgr.shape[0])
        for b in np.asarray(boxes, dtype=int).reshape(-1, 4)
    ]


def _overlap(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    return ix * iy / max(1, min(a[2] * a[3], b[2] * b[3]))


def _gray640(bgr: np.ndarray) -> tuple[np.ndarray, float]:
    small = downscale(bgr, 640)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), small.shape[1] / bgr.shape[1]


def text_lines(bgr: np.ndarray, gray640: tuple[np.ndarray, float] | None = None) -> list[Box]:
    gray, scale = gray640 or _gray640(bgr)
    h, w = gray.shape
    grad = cv2.morphologyEx(gray, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    edges = (grad > _TEXT_EDGE).astype(np.uint8)
    # Letters at 640 px are solid blobs of strong gradient; tissue and photo edges are
    # thin and vanish under the opening.
    solid = cv2.morphologyEx(edges, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    joined = cv2.morphologyEx(solid, cv2.MORPH_CLOSE, np.ones((3, 15), np.uint8))
    _n, _labels, stats, _ = cv2.connectedComponentsWithStats(joined, 8)
    out: list[Box] = []
    for x, y, bw, bh, _area in stats[1:]:
        if not (0.012 * h <= bh <= 0.09 * h and bw >= 3 * bh and bw >= 0.05 * w):
            continue
        roi = solid[y : y + bh, x : x + bw]
        if roi.mean() < _SOLID_MIN:
            continue
        # A word has letters: several separate blobs (stars and nuclei rows do not).
        if cv2.connectedComponents(roi, connectivity=8)[0] - 1 < 4:
            continue
        box = _scale_box((int(x), int(y), int(bw), int(bh)), scale, bgr.shape[1], bgr.shape[0])
        out.append(box)
    return out


def _long_lines(edges: np.ndarray, length: int, axis: int) -> int:
    kernel = np.ones((1, length) if axis == 0 else (length, 1), np.uint8)
    runs = cv2.erode(edges, kernel).any(axis=1 - axis)
    idx = np.nonzero(runs)[0]
    if not len(idx):
        return 0
    gap = max(2, round(0.01 * edges.shape[axis]))
    return int(1 + (np.diff(idx) > gap).sum())


def desktop_lines(
    bgr: np.ndarray, gray640: tuple[np.ndarray, float] | None = None
) -> tuple[int, int]:
    gray, _ = gray640 or _gray640(bgr)
    g = gray.astype(np.int16)
    h, w = g.shape
    dy = np.zeros_like(g)
    dy[1:] = np.abs(g[1:] - g[:-1])
    dx = np.zeros_like(g)
    dx[:, 1:] = np.abs(g[:, 1:] - g[:, :-1])
    # An edge row: a step of > 6 gray levels (UI separators are faint) in a calm neighbourhood.
    hor = ((dy > 6) & (dx < 30)).astype(np.uint8)
    ver = ((dx > 6) & (dy < 30)).astype(np.uint8)
    return _long_lines(hor, round(0.4 * w), 0), _long_lines(ver.T.copy(), round(0.3 * h), 0)


def detect(bgr: np.ndarray) -> Impurities:
    gray = _gray640(bgr)  # one downscale and conversion for the three detectors
    n_h, n_v = desktop_lines(bgr, gray)
    return Impurities(
        faces=faces(bgr, gray),
        text=text_lines(bgr, gray),
        desktop=n_h >= 4 or (n_h >= 3 and n_v >= 2),
        desktop_lines=(n_h, n_v),
    )
