"""Magnification bin of a histology image from the characteristic size of its nuclei.

Quilt-1M (Ikezogwo et al., NeurIPS 2023) labelled images with a magnification bin, 0
(<= 10x), 1 (20x), 2 (>= 40x), from a classifier trained on labelled frames. Without such
weights, the nuclei do the job: a lymphocyte nucleus is about 7 um across, so its size on
screen grows with the objective. Here:

- size: the characteristic scale of the hematoxylin channel (``skimage.color.rgb2hed``)
  in scale space (Lindeberg 1998): the scale-normalised Laplacian of Gaussian
  ``-sigma^2 * LoG`` peaks at ``sigma = r / sqrt(2)`` on a disc of radius r. Its positive
  part is averaged over the nuclear pixels (H > E, H > DAB, darker than the tissue's
  median) for 31 sigmas spaced geometrically over 0.25-8% of the analysed image's short
  side; the peak, refined by a parabola in log sigma, gives the diameter ``2 sqrt(2)
  sigma`` as a fraction of that short side. The median area of thresholded blobs does
  not work: touching nuclei merge at low power and the soft nuclei of an upscaled zoom
  split, so a 2x zoom of the H&E read smaller than the original. A scale-space peak is
  covariant with zoom by construction.
- resolution: the image is analysed at 512 px long side (never upscaled) and the diameter
  is measured relative to the analysed short side, so downscaling cancels out, while a
  zoom (a smaller field of view at the same pixel size, as the frames stage's tissue crop
  of a zoomed lecture view) scales it. The same field of view at twice the pixels reads
  the same: magnification is field of view, not resolution.
- bins: diameter < 3.1% of the short side -> 0 (low power), < 6.2% -> 1, else 2 (cuts a
  factor 2 apart, as 10x, 20x, 40x). Measured (tests/test_vision.py): the IHC colon
  image (a low-power view) 2.4% -> 0, zoomed 2x 4.3% and 3x 6.0% -> 1, 4x 8.8% -> 2; the
  stardist H&E sample 4.4% -> 1, 2x 8.8% and 3x 13.5% -> 2. A coarse heuristic until a
  learned magnification head is trained on reviewed frames.
- confidence: the distance of log(diameter) to the nearest cut, relative to the half
  width of a bin in log space (log 2 / 2), clipped to [0, 1], times min(1, blobs / 30)
  (a few nuclei decide nothing), halved when the peak sits at the end of the sigma range
  (the true scale may lie beyond it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from skimage.color import rgb2hed

from workers.vision.tissue import downscale

_CUTS = (0.031, 0.062)
_ANALYSIS_SIDE = 512
_SIGMAS = np.geomspace(0.0025, 0.08, 31)  # fractions of the analysed short side


@dataclass(frozen=True)
class Magnification:
    bin: int | None  # Quilt's 0 (<=10x), 1 (20x), 2 (>=40x); None when no nuclei
    confidence: float
    nuclear_diameter: float  # fraction of the analysed image's short side
    nuclei: int


def _characteristic_sigma(
    h: np.ndarray, nuclei: np.ndarray, background: np.ndarray, short: int
) -> tuple[float, bool]:
    """The sigma (px) at which the mean positive scale-normalised -LoG over the nuclear
    pixels peaks, and whether the peak is inside the range (not at its ends). Background
    (glass, letterbox bars) is set to the tissue's median H first: its edge is no blob."""
    x = h.astype(np.float32)
    if background.any() and not background.all():
        x[background] = np.median(x[~background])
    mask = nuclei.astype(np.float32)
    levels: dict[int, tuple[np.ndarray, np.ndarray]] = {0: (x, nuclei)}
    sigmas = _SIGMAS * short
    response = np.empty(len(sigmas))
    for i, s in enumerate(sigmas):
        # An octave pyramid: sigma is 3-6 px at its level, so a large sigma blurs a small
        # image (the normalised response is scale invariant): ~8x less time than at 512 px.
        k = max(0, int(math.log2(s / 3)))
        if k not in levels:
            size = (max(1, round(x.shape[1] / 2**k)), max(1, round(x.shape[0] / 2**k)))
            small_x = cv2.resize(x, size, interpolation=cv2.INTER_AREA)
            small_mask = cv2.resize(mask, size, interpolation=cv2.INTER_AREA) >= 0.5
            levels[k] = (small_x, small_mask)
        img, where = levels[k]
        if not where.any():
            response[i] = 0.0
            continue
        sk = float(s) / 2**k
        lap = cv2.Laplacian(cv2.GaussianBlur(img, (0, 0), sk), cv2.CV_32F)
        response[i] = float(np.maximum(-lap[where], 0).mean()) * sk * sk
    i = int(response.argmax())
    if not 0 < i < len(sigmas) - 1:
        return float(sigmas[i]), False
    # Parabola through the peak and its neighbours, in log sigma (the grid is geometric).
    a, b, c = response[i - 1 : i + 2]
    denom = a - 2 * b + c
    offset = 0.5 * (a - c) / denom if denom < 0 else 0.0
    step = math.log(sigmas[1] / sigmas[0])
    return float(sigmas[i] * math.exp(np.clip(offset, -0.5, 0.5) * step)), True


def estimate(rgb: np.ndarray) -> Magnification:
    small = np.ascontiguousarray(downscale(rgb, _ANALYSIS_SIDE))
    hed = rgb2hed(small)
    h, e, d = hed[..., 0], hed[..., 1], hed[..., 2]
    gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    tissue = (gray < 235) & (gray > 25)  # not glass, not a black letterbox bar
    if tissue.sum() < 100:
        return Magnification(None, 0.0, 0.0, 0)
    dark = (gray < np.median(gray[tissue])) & tissue
    nuclei = ((h > e) & (h > d) & (h > 0.02) & dark).astype(np.uint8)
    nuclei = cv2.morphologyEx(nuclei, cv2.MORPH_OPEN, np.ones((2, 2), np.uint8))
    _n, _labels, stats, _ = cv2.connectedComponentsWithStats(nuclei, 8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    blobs = int(((areas >= 4) & (areas <= 0.02 * nuclei.size)).sum())
    if blobs < 3:
        return Magnification(None, 0.0, 0.0, blobs)
    short = min(small.shape[:2])
    background = ~tissue
    sigma, inside = _characteristic_sigma(h, nuclei.astype(bool), background, short)
    diameter = 2 * math.sqrt(2) * sigma / short
    bin_ = 0 if diameter < _CUTS[0] else 1 if diameter < _CUTS[1] else 2
    margin = min(abs(math.log(diameter / c)) for c in _CUTS) / (math.log(2) / 2)
    confidence = min(1.0, margin) * min(1.0, blobs / 30) * (1.0 if inside else 0.5)
    return Magnification(bin_, round(confidence, 3), round(diameter, 4), blobs)
