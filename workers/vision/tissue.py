"""Where the tissue is in a frame, a crop of it clear of impurities, and frame quality.

Lecture frames show the slide letterboxed, inside a PowerPoint layout, inside a viewer
window, or next to a narrator. Quilt kept the whole frame; the audit of its images
(Aubreville et al., MIDL 2024) counted such surroundings as impurities. Here:

- ``tissue_mask``: pixels that are coloured like stained tissue (saturation > 0.06, value
  in (0.12, 0.97) as the detector's ``tissue_frac``, but saturation in (0.1, 0.8): dark
  UI themes are grey-blue at 0.06, and stains under bright field are never vivid
  *and* textured (local
  std of gray over 7x7 > 0.02), closed (3 x 5 px) then opened (11 px: no UI line or
  text stroke survives), at ``ANALYSIS_SIDE`` px. The texture
  term drops flat coloured areas: wallpapers, toolbars, title bars, slide backgrounds.
- ``tissue_box``: the bounding box of the connected tissue components that each hold at
  least 10% of the largest one (sections with holes and several fragments stay one box);
  components thinner than 8% of the frame's short side are chrome (toolbars, text lines),
  and so are those filling under 30% of their box (window outlines, grids).
- ``clean_crop``: the largest axis-aligned part of the tissue box that overlaps no impurity
  box (a narrator inset, a caption, chrome): the box cut left, right, above or below each
  impurity. A crop is kept when it holds at least ``min_keep`` (default 0.5) of the tissue
  box's area, else the frame is marked occluded and is not paired.
- ``quality``: Laplacian variance (blur) of the tissue crop at 512 px long side, so the
  value does not depend on the video's resolution; the crop's short side in source pixels;
  the tissue fraction of the crop. Thresholds live in settings (``frame_min_*``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h
# Long side, px, of the image the analyses run on (tissue mask, histology detector).
ANALYSIS_SIDE = 320


def downscale(image: np.ndarray, side: int = ANALYSIS_SIDE) -> np.ndarray:
    """Resize so the long side is ``side`` px (never upscale); INTER_AREA keeps texture."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale >= 1.0:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def tissue_mask(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Boolean tissue mask at analysis size, and the scale from source to mask pixels."""
    small = downscale(rgb, ANALYSIS_SIDE)
    scale = small.shape[1] / rgb.shape[1]
    hsv = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2HSV)
    sat = hsv[..., 1].astype(np.float32) / 255.0
    val = hsv[..., 2].astype(np.float32) / 255.0
    coloured = (sat > 0.1) & (sat < 0.8) & (val > 0.12) & (val < 0.97)
    gray = cv2.cvtColor(np.ascontiguousarray(small), cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    mean = cv2.blur(gray, (7, 7))
    std = np.sqrt(np.maximum(cv2.blur(gray * gray, (7, 7)) - mean * mean, 0.0))
    mask = (coloured & (std > 0.02)).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (5, 5))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kernel, iterations=3)
    # An opening wider than any UI line or text stroke leaves only blobs.
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((11, 11), np.uint8))
    return mask.astype(bool), scale


def tissue_region(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """``tissue_mask`` reduced to the section's blobs (see the module docstring), and the
    scale from source to mask pixels."""
    mask, scale = tissue_mask(rgb)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    if n <= 1:
        return np.zeros_like(mask), scale
    areas = stats[1:, cv2.CC_STAT_AREA].astype(float)
    # Thin strips (toolbars, icon rows, text lines) are chrome, not sections.
    min_side = 0.08 * min(mask.shape)
    bw, bh = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT]
    thin = (bw < min_side) | (bh < min_side)
    # A frame of lines (a window outline, a table grid) fills little of its box.
    sparse = areas < 0.3 * bw * bh
    areas[thin | sparse] = 0.0
    if areas.max() <= 0:
        return np.zeros_like(mask), scale
    keep = np.nonzero(areas >= 0.1 * areas.max())[0] + 1
    return np.isin(labels, keep), scale


def tissue_box(rgb: np.ndarray) -> tuple[Box | None, float]:
    """The tissue's bounding box in source pixels and the tissue fraction of the frame."""
    region, scale = tissue_region(rgb)
    if not region.any():
        return None, 0.0
    ys, xs = np.nonzero(region)
    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(xs.min() / scale)), max(0, int(ys.min() / scale))
    x1 = min(w, int(np.ceil((xs.max() + 1) / scale)))
    y1 = min(h, int(np.ceil((ys.max() + 1) / scale)))
    return (x0, y0, x1 - x0, y1 - y0), float(region.mean())


def _intersects(a: Box, b: Box) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def clean_crop(box: Box, impurities: list[Box], min_keep: float = 0.5) -> Box | None:
    """The largest part of ``box`` that overlaps none of ``impurities``; None when that part
    holds less than ``min_keep`` of the box's area (the impurity covers the tissue)."""
    candidates = [box]
    for imp in impurities:
        nxt: list[Box] = []
        for c in candidates:
            if not _intersects(c, imp):
                nxt.append(c)
                continue
            x, y, w, h = c
            ix0, iy0, ix1, iy1 = imp[0], imp[1], imp[0] + imp[2], imp[1] + imp[3]
            parts = [
                (x, y, ix0 - x, h),  # left of the impurity
                (ix1, y, x + w - ix1, h),  # right
                (x, y, w, iy0 - y),  # above
                (x, iy1, w, y + h - iy1),  # below
            ]
            nxt.extend(p for p in parts if p[2] > 0 and p[3] > 0)
        candidates = nxt
    if not candidates:
        return None
    best = max(candidates, key=lambda b: b[2] * b[3])
    if best[2] * best[3] < min_keep * box[2] * box[3]:
        return None
    return best


@dataclass(frozen=True)
class Quality:
    blur: float  # Laplacian variance of the crop at 512 px long side: low is blurred
    resolution: int  # the crop's short side, source pixels
    tissue_frac: float  # tissue share of the crop

    def reasons(self, min_blur: float, min_resolution: int, min_tissue: float) -> list[str]:
        out = []
        if self.blur < min_blur:
            out.append("blurred")
        if self.resolution < min_resolution:
            out.append("low_resolution")
        if self.tissue_frac < min_tissue:
            out.append("little_tissue")
        return out


def quality(rgb: np.ndarray) -> Quality:
    gray = cv2.cvtColor(downscale(rgb, 512), cv2.COLOR_RGB2GRAY)
    blur = float(cv2.Laplacian(gray, cv2.CV_64F).var())
    mask, _ = tissue_mask(rgb)
    return Quality(round(blur, 2), int(min(rgb.shape[:2])), round(float(mask.mean()), 4))
