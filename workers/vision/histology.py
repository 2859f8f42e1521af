"""Is this video frame a histology image? A first detector that needs no weights.

Quilt-1M classified frames with an ensemble of learned models. None ship offline here, so
this module scores a frame with a documented colour-and-texture rule over what stained
tissue looks like through a microscope, and exposes it behind the small ``HistologyDetector``
protocol so a learned ensemble can replace or join it without touching ``frames.py``.

Features, computed on the frame downscaled to ``tissue.ANALYSIS_SIDE`` px (long side):

- ``tissue_frac``: share of the frame that is coloured "tissue": neither slide-white
  (value >= 0.97), nor letterbox-black (value <= 0.12), nor grey (saturation <= 0.06).
  Text slides, desktops in grey and black-and-white photos stop here.
- ``hema_frac``: share of coloured pixels that are hematoxylin-dominant by colour
  deconvolution (``skimage.color.rgb2hed``: H > E, H > DAB, H > 0.01), with a nuclear hue
  (blue to purple, 180-345 deg), not dark (value > 0.3) and saturation > 0.03 (nuclei at
  high power are pale grey-blue). Every routine stain (H&E, and IHC's hematoxylin
  counterstain) colours nuclei this way; skin, fur, coffee and fundus never do (measured
  <= 0.001 on skimage's chelsea, coffee and retina, 0.027 on a DAB-heavy 2x IHC crop).
- ``counter_frac``: share of tissue pixels with a counterstain hue: eosin pink-purple
  (250-345 deg) or DAB brown (345-50 deg). Blue-only scenes (sky, rocket) lack it.
- ``texture_frac``: share of 16 px tissue tiles whose high-pass (gray minus a sigma-2 blur)
  std exceeds 0.02, the larger of the values at 320 and at 160 px (an upscaled high-power
  view is soft at 320 px): tissue has cellular detail nearly everywhere, while photographs
  have smooth regions (skin, fur, sky, fundus background).
- ``vivid_frac``: share of tissue pixels with saturation > 0.75. Stains under a bright
  field are pastel; skin under studio light, flags, logos and coffee are not.
- ``h_od``, ``e_od``, ``dab_od``: mean rgb2hed optical densities over tissue, recorded for
  review and for a later learned model (not in the rule).

Rule (``score_features``), each term a smoothstep in [0, 1]:

    score = tissue(0.10 -> 0.35) * hema(0.003 -> 0.03) * counter(0.20 -> 0.50)
            * texture(0.50 -> 0.90) * (1 - vivid(0.05 -> 0.20))

``StainRuleDetector`` then scales a passing score by ``1 - face(0.01 -> 0.05)``, the share
of the frame covered by frontal faces (OpenCV's bundled Haar cascade): a narrator close-up
is never the histology image, while a small webcam inset (under 1%) costs nothing.

A frame that fails the rule as a whole gets a second look at its tissue blobs only
(``vision.tissue.tissue_region``): a slide viewer's tissue pane inside a desktop with a
vivid wallpaper and coloured icons fails on vividness as a whole frame (0.0-0.34 on the
frame set) and passes on its pane (0.92-1.0). Such frames are then flagged as desktop by
``vision.impurities`` and cropped to the pane. On the labelled frame set
(tests/support/frameset, 108 frames) the detector scores precision 1.0 and recall 1.0
(tests/test_vision.py).

Measured on real images (tests/test_frames.py keeps these honest): H&E (stardist's
histo.jpg) and IHC (skimage ``immunohistochemistry``) 1.0, also cropped, letterboxed into
a 16:9 frame, darkened and after JPEG q40; IHC quarters upscaled 2x 0.98-1.0, and 3-4x
1.0 where nuclei show but 0.01-0.23 inside DAB-saturated glands with few nuclei (a known
miss: hema_frac < 0.01 there); skimage page, astronaut, retina, coffee, chelsea, rocket, hubble and colorwheel all
<= 0.002 (the astronaut fails on vividness and on its face, independently). The default
threshold (settings ``histology_threshold`` 0.5) sits between.

Known weaknesses: DAB brown and skin share a colour (rgb2hed cannot tell them apart), so
skin is held off only by vividness and the frontal-face term; a pale, side-lit face in
profile next to something blue could pass (the frames stage flags kept frames with faces:
workers/vision/impurities.py). Gross pathology photographs (pink, textured) will often
score as histology, as they did for Quilt's classifiers; magnification estimation will
separate them later.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Protocol

import cv2
import numpy as np
from skimage.color import rgb2hed

from workers.vision.tissue import downscale, tissue_region

_TILE = 16


class HistologyDetector(Protocol):
    """Scores an RGB uint8 image (H, W, 3) in [0, 1]; >= threshold means histology."""

    name: str

    def score(self, rgb: np.ndarray) -> float: ...


@dataclass(frozen=True)
class HistologyFeatures:
    tissue_frac: float
    hema_frac: float
    counter_frac: float
    texture_frac: float
    vivid_frac: float
    h_od: float
    e_od: float
    dab_od: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}


def _smoothstep(x: float, lo: float, hi: float) -> float:
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


def _texture_frac(gray: np.ndarray, tissue: np.ndarray) -> float:
    """Share of mostly-tissue tiles whose high-pass std exceeds 0.02."""
    highpass = gray - cv2.GaussianBlur(gray, (0, 0), 2.0)
    th, tw = gray.shape[0] // _TILE, gray.shape[1] // _TILE
    if not th or not tw:
        return 0.0
    crop = (slice(0, th * _TILE), slice(0, tw * _TILE))
    tile_std = highpass[crop].reshape(th, _TILE, tw, _TILE).std(axis=(1, 3))
    tissue_tiles = tissue[crop].reshape(th, _TILE, tw, _TILE).mean(axis=(1, 3)) > 0.5
    if not tissue_tiles.any():
        return 0.0
    return float((tile_std[tissue_tiles] > 0.02).mean())


def features(rgb: np.ndarray, region: np.ndarray | None = None) -> HistologyFeatures:
    """The rule's features for an RGB uint8 image of any size.

    ``region``: an optional boolean mask at analysis size (``tissue.tissue_mask``); pixels
    outside it count as background (UI chrome around a slide viewer's tissue pane)."""
    if rgb.ndim == 2:
        rgb = np.stack([rgb] * 3, axis=-1)
    rgb = np.ascontiguousarray(downscale(rgb[..., :3]))
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hue = hsv[..., 0] * 2.0  # OpenCV stores hue / 2
    sat = hsv[..., 1] / 255.0
    val = hsv[..., 2] / 255.0

    # Inside a region, vivid pixels are chrome that the region's closing took in.
    inside = np.ones(sat.shape, bool) if region is None else region & (sat < 0.8)
    tissue = (val > 0.12) & (val < 0.97) & (sat > 0.06) & inside
    n_tissue = int(tissue.sum())
    if n_tissue == 0:
        return HistologyFeatures(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)

    hed = rgb2hed(rgb)
    h_od, e_od, d_od = hed[..., 0], hed[..., 1], hed[..., 2]
    nuclear_hue = (hue >= 180.0) & (hue < 345.0)
    # Nuclei at high power are pale grey-blue: admit saturation down to 0.03 for them.
    hema = (
        (val > 0.3)
        & (val < 0.97)
        & (sat > 0.03)
        & nuclear_hue
        & (h_od > e_od)
        & (h_od > d_od)
        & (h_od > 0.01)
        & inside
    )
    counter = tissue & ((hue >= 250.0) | (hue < 50.0))
    vivid = tissue & (sat > 0.75)

    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    # At full analysis size and at half: an upscaled high-power view (soft at 320 px)
    # shows its cellular detail again at 160 px.
    texture_frac = _texture_frac(gray, tissue)
    half = (max(1, gray.shape[1] // 2), max(1, gray.shape[0] // 2))
    gray_half = cv2.resize(gray, half, interpolation=cv2.INTER_AREA)
    tissue_half = cv2.resize(tissue.astype(np.float32), half, interpolation=cv2.INTER_AREA) > 0.5
    texture_frac = max(texture_frac, _texture_frac(gray_half, tissue_half))

    return HistologyFeatures(
        tissue_frac=n_tissue / tissue.size,
        hema_frac=float(hema.sum()) / int((tissue | hema).sum()),
        counter_frac=float(counter.sum()) / n_tissue,
        texture_frac=texture_frac,
        vivid_frac=float(vivid.sum()) / n_tissue,
        h_od=float(h_od[tissue].mean()),
        e_od=float(e_od[tissue].mean()),
        dab_od=float(d_od[tissue].mean()),
    )


def score_features(f: HistologyFeatures) -> float:
    """The documented rule (module docstring): a product of smoothsteps, in [0, 1]."""
    score = (
        _smoothstep(f.tissue_frac, 0.10, 0.35)
        * _smoothstep(f.hema_frac, 0.003, 0.03)
        * _smoothstep(f.counter_frac, 0.20, 0.50)
        * _smoothstep(f.texture_frac, 0.50, 0.90)
        * (1.0 - _smoothstep(f.vivid_frac, 0.05, 0.20))
    )
    return round(float(score), 4)


class StainRuleDetector:
    """The weight-free rule; ``HistologyDetector``.

    A frame that passes the colour rule but shows a large frontal face (over 1-5% of the
    frame: a narrator close-up, not a webcam inset) is scaled down: skin and DAB share a
    colour, and a face is never the histology image itself.
    """

    name = "stain-rule-v1"

    def score(self, rgb: np.ndarray) -> float:
        score = score_features(features(rgb))
        if score < 0.5:
            score = max(score, self._region_score(rgb))
        if score > 0.0:
            small = downscale(rgb)
            area = face_area_frac(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
            score *= 1.0 - _smoothstep(area, 0.01, 0.05)
        return round(score, 4)

    @staticmethod
    def _region_score(rgb: np.ndarray) -> float:
        """The rule on the tissue blobs only: a slide viewer's or a slide's tissue pane fails
        the whole-frame rule on the chrome around it (vivid wallpaper, icons), and passes
        here. The blobs must fill half of their box (a viewer pane or a slide image fills
        65-85% of it; scattered blobs of a photo, such as skimage's rocket, 36%), and no
        face may show (skin passes the stain colours)."""
        mask, _ = tissue_region(rgb)
        if mask.mean() < 0.05:
            return 0.0
        ys, xs = np.nonzero(mask)
        box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        if mask[box].mean() < 0.5:  # a pane or slide fills its box; scattered blobs do not
            return 0.0
        small = downscale(rgb)
        score = score_features(features(small[box], mask[box]))
        if score > 0.0:
            # Skin passes the stain colours (DAB brown); a region score is void where a face
            # shows (finer cascade than face_area_frac: the face may be small in the frame).
            faces, _ = _faces(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), 480, 1.1, 0.05)
            if len(faces):
                return 0.0
        return score


def histology_score(rgb: np.ndarray) -> float:
    return StainRuleDetector().score(rgb)


@lru_cache(maxsize=1)
def _face_cascade() -> cv2.CascadeClassifier:
    path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    return cv2.CascadeClassifier(path)


def _faces(
    bgr: np.ndarray, side: int, scale_factor: float, min_frac: float
) -> tuple[np.ndarray, int]:
    gray = cv2.cvtColor(downscale(bgr, side), cv2.COLOR_BGR2GRAY)
    cascade = _face_cascade()
    if cascade.empty():
        return np.zeros((0, 4), dtype=int), gray.size
    min_side = max(20, round(min(gray.shape[:2]) * min_frac))
    faces = cascade.detectMultiScale(
        gray, scaleFactor=scale_factor, minNeighbors=8, minSize=(min_side, min_side)
    )
    return np.asarray(faces, dtype=int).reshape(-1, 4), gray.size


def face_area_frac(bgr: np.ndarray) -> float:
    """Share of the image covered by detected frontal faces (boxes may overlap: capped at 1).

    Coarse and fast (240 px, scale step 1.2, faces over 1/8 of the short side: about 10 ms)
    because it runs on every candidate sample; it only has to see large faces."""
    faces, size = _faces(bgr, 240, 1.2, 0.125)
    return min(1.0, float((faces[:, 2] * faces[:, 3]).sum()) / size) if len(faces) else 0.0
