"""A labelled set of lecture frames, built deterministically from real images.

Nothing here is committed as pixels: ``build()`` makes every frame from the real images the
tests already have (the stardist H&E sample in tests/data, scikit-image's IHC, astronaut,
retina, page, coffee, chelsea, rocket, camera, hubble, and matplotlib's sample portrait of
Grace Hopper) plus slides and desktop screenshots rendered with Pillow, so the set costs no
repository space and is identical on every run.

Labels per frame: ``histology`` (histological tissue is on screen), and the impurities the
Quilt audit counted (Aubreville et al., MIDL 2024): ``face`` (a narrator is visible),
``text`` (a text overlay or caption on the frame), ``desktop`` (desktop or slide-software
chrome: title bars, toolbars, file trees). ``clean`` is histology without any impurity:
what can be paired as is.

Positives come from the two histology images under crops, zooms, rotations, JPEG, stain
jitter in HED space (Tellez et al. 2018's augmentation) and letterboxing into 16:9 video
frames; impurity frames paste a narrator inset (two identities, taken in turn: the
astronaut and Grace Hopper), burn in a caption
or a title, or place the image inside a rendered slide-viewer window. Negatives are text
slides, photos, a face, a fundus photograph and desktop screenshots without tissue.

Run ``python -m tests.support.frameset OUT_DIR`` to write the set as PNGs with a labels.json.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image, ImageDraw, ImageFont
from skimage.color import hed2rgb, rgb2hed

HE_IMAGE = Path(__file__).resolve().parents[2] / "data" / "he_histo.jpg"
W, H = 1280, 720
FLAGS = ("histology", "face", "text", "desktop")


@dataclass
class LabelledFrame:
    name: str
    rgb: np.ndarray
    histology: bool
    face: bool = False
    text: bool = False
    desktop: bool = False
    tags: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return self.histology and not (self.face or self.text or self.desktop)


def _rgb(image: np.ndarray) -> np.ndarray:
    return (
        np.stack([image] * 3, axis=-1) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])
    )


def _grace_hopper() -> np.ndarray:
    """matplotlib's sample portrait (a dev dependency), read without importing matplotlib."""
    spec = importlib.util.find_spec("matplotlib")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the frame set needs matplotlib's sample data (pip install '.[dev]')")
    path = Path(spec.submodule_search_locations[0]) / "mpl-data/sample_data/grace_hopper.jpg"
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


# Head-and-shoulders crops of the two narrators (rows, columns).
NARRATORS = {
    "astronaut": (slice(20, 300), slice(100, 330)),
    "hopper": (slice(40, 560), slice(40, 470)),
}


@lru_cache(maxsize=1)
def sources() -> dict[str, np.ndarray]:
    he = cv2.cvtColor(cv2.imread(str(HE_IMAGE), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    names = ("coffee", "chelsea", "rocket", "camera", "hubble_deep_field")
    return {
        "he": he,
        "ihc": skimage.data.immunohistochemistry(),
        "astronaut": skimage.data.astronaut(),
        "hopper": _grace_hopper(),
        "retina": skimage.data.retina(),
        "page": _rgb(skimage.data.page()),
        **{n: _rgb(getattr(skimage.data, n)()) for n in names},
    }


def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


# --- transforms ---------------------------------------------------------------------------


def letterbox(rgb: np.ndarray, width: int = W, height: int = H, fill: int = 0) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = min(width / w, height / h)
    size = (round(w * scale), round(h * scale))
    resized = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    canvas = np.full((height, width, 3), fill, np.uint8)
    y, x = (height - size[1]) // 2, (width - size[0]) // 2
    canvas[y : y + size[1], x : x + size[0]] = resized
    return canvas


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1].copy()


def zoom(rgb: np.ndarray, factor: float, cx: float, cy: float) -> np.ndarray:
    """Crop 1/factor of the image around (cx, cy) (fractions) and upscale it back."""
    h, w = rgb.shape[:2]
    cw, ch = round(w / factor), round(h / factor)
    x = int(np.clip(cx * w - cw / 2, 0, w - cw))
    y = int(np.clip(cy * h - ch / 2, 0, h - ch))
    return cv2.resize(rgb[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_CUBIC)


def rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    return cv2.warpAffine(rgb, m, (w, h), borderMode=cv2.BORDER_REFLECT_101)


def stain_jitter(rgb: np.ndarray, rng: np.random.Generator, sigma: float = 0.05) -> np.ndarray:
    """HED colour augmentation: per-channel scale 1 +- sigma and shift +- sigma / 5."""
    hed = rgb2hed(rgb)
    alpha = rng.uniform(1 - sigma, 1 + sigma, 3)
    beta = rng.uniform(-sigma / 5, sigma / 5, 3) * hed.reshape(-1, 3).std(axis=0)
    out = hed2rgb(hed * alpha + beta)
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


# --- impurities -----------------------------------------------------------------------------


def narrator_inset(
    frame: np.ndarray, corner: str = "br", frac: float = 0.3, who: str = "astronaut"
) -> np.ndarray:
    """A narrator's head and shoulders (``NARRATORS``) pasted as a webcam inset in a corner."""
    rows, cols = NARRATORS[who]
    face = sources()[who][rows, cols]
    fh, fw = frame.shape[:2]
    ih = round(fh * frac)
    iw = round(ih * face.shape[1] / face.shape[0])
    inset = cv2.resize(face, (iw, ih), interpolation=cv2.INTER_AREA)
    out = frame.copy()
    y = fh - ih - 12 if corner[0] == "b" else 12
    x = fw - iw - 12 if corner[1] == "r" else 12
    out[y : y + ih, x : x + iw] = inset
    cv2.rectangle(out, (x - 2, y - 2), (x + iw + 1, y + ih + 1), (255, 255, 255), 2)
    return out


def text_overlay(frame: np.ndarray, where: str = "bottom", text: str | None = None) -> np.ndarray:
    """A burnt-in caption bar (bottom) or a title over the image (top)."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    fh, fw = frame.shape[:2]
    size = max(14, fh // 22)
    f = font(size)
    if where == "bottom":
        text = text or "Colonic adenocarcinoma: crowded glands with desmoplastic stroma"
        draw.rectangle((0, fh - 2.4 * size, fw, fh), fill=(20, 20, 20))
        draw.text((size, fh - 1.9 * size), text, fill=(255, 255, 255), font=f)
    else:
        text = text or "Figure 3. Liver, H&E, 20x"
        draw.text((size, size // 2), text, fill=(255, 255, 0), font=f, stroke_width=2,
                  stroke_fill=(0, 0, 0))  # fmt: skip
    return np.asarray(image)


# --- rendered slides and desktops -------------------------------------------------------------

_BULLETS = [
    "Learning objectives",
    "- Recognise the normal colonic mucosa",
    "- Describe adenoma and carcinoma",
    "- Grade and stage colorectal cancer",
    "- Know the key immunostains",
]


def text_slide(variant: int) -> np.ndarray:
    schemes = [((255, 255, 255), (0, 0, 0)), ((15, 40, 90), (255, 255, 255)),
               ((240, 235, 220), (60, 30, 20)), ((0, 0, 0), (230, 230, 230))]  # fmt: skip
    bg, fg = schemes[variant % len(schemes)]
    image = Image.new("RGB", (W, H), bg)
    draw = ImageDraw.Draw(image)
    draw.text(
        (80, 60), f"Lecture {variant + 1}: Gastrointestinal pathology", fill=fg, font=font(48)
    )
    for i, line in enumerate(_BULLETS):
        draw.text((100, 180 + 70 * i), line, fill=fg, font=font(36))
    return np.asarray(image)


def desktop(content: np.ndarray | None, variant: int) -> np.ndarray:
    """A desktop screenshot: title bar, menu bar, toolbar with icons, a file tree on the left,
    a status bar and a taskbar; ``content`` (or an editor's text) fills the main pane."""
    rng = np.random.default_rng(variant)
    light = variant % 2 == 0
    chrome = (236, 236, 236) if light else (45, 45, 48)
    ink = (30, 30, 30) if light else (220, 220, 220)
    image = Image.new("RGB", (W, H), (0, 90, 160))
    draw = ImageDraw.Draw(image)
    top, left, bottom = 40 + 10 * (variant % 3), 12, H - 44
    draw.rectangle((left, top, W - 12, bottom), fill=chrome, outline=(120, 120, 120))
    draw.rectangle((left, top, W - 12, top + 30), fill=(210, 210, 215) if light else (30, 30, 30))
    draw.text((left + 40, top + 6), "SlideViewer - case_0412.svs", fill=ink, font=font(16))
    for i, c in enumerate(((255, 95, 86), (255, 189, 46), (39, 201, 63))):
        draw.ellipse((W - 100 + 24 * i, top + 8, W - 86 + 24 * i, top + 22), fill=c)
    for i, word in enumerate(("File", "Edit", "View", "Annotations", "Tools", "Help")):
        draw.text((left + 10 + 90 * i, top + 38), word, fill=ink, font=font(15))
    bar_y = top + 62
    draw.line((left, bar_y, W - 12, bar_y), fill=(150, 150, 150))
    for i in range(14):
        x = left + 12 + 34 * i
        colour = tuple(int(v) for v in rng.integers(40, 220, 3))
        draw.rounded_rectangle((x, bar_y + 6, x + 24, bar_y + 30), 4, fill=colour)
    pane_top = bar_y + 38
    draw.line((left, pane_top, W - 12, pane_top), fill=(150, 150, 150))
    tree_w = 230
    draw.line((left + tree_w, pane_top, left + tree_w, bottom - 26), fill=(150, 150, 150))
    for i in range(16):
        indent = 14 + 16 * (i % 3)
        draw.text((left + indent, pane_top + 10 + 26 * i), f"slide_{variant}{i:02d}.svs",
                  fill=ink, font=font(14))  # fmt: skip
    draw.rectangle(
        (left, bottom - 26, W - 12, bottom), fill=(200, 200, 205) if light else (0, 122, 204)
    )
    draw.text((left + 10, bottom - 21), "Zoom 20x  |  x: 10234  y: 8812", fill=ink, font=font(14))
    draw.rectangle((0, H - 40, W, H), fill=(25, 25, 35))
    for i in range(8):
        draw.rounded_rectangle((16 + 44 * i, H - 34, 46 + 44 * i, H - 6), 5, fill=(90, 90, 110))
    pane = (left + tree_w + 8, pane_top + 8, W - 20, bottom - 34)
    pw, ph = pane[2] - pane[0], pane[3] - pane[1]
    frame = np.asarray(image).copy()
    if content is not None:
        frame[pane[1] : pane[3], pane[0] : pane[2]] = letterbox(content, pw, ph, fill=245)
    else:
        editor = Image.new("RGB", (pw, ph), (255, 255, 255) if light else (30, 30, 30))
        d = ImageDraw.Draw(editor)
        for i in range(22):
            d.text((12, 8 + 22 * i), f"{i + 1:>3}  report.diagnosis = grade[{i}]  # case",
                   fill=ink, font=font(15))  # fmt: skip
        frame[pane[1] : pane[3], pane[0] : pane[2]] = np.asarray(editor)
    return frame


# --- the set ------------------------------------------------------------------------------------


def _histology_views(rng: np.random.Generator) -> list[tuple[str, np.ndarray]]:
    views: list[tuple[str, np.ndarray]] = []
    for src in ("he", "ihc"):
        img = sources()[src]
        h, w = img.shape[:2]
        views.append((f"{src}", img))
        for i in range(3):
            ch, cw = int(h * rng.uniform(0.5, 0.7)), int(w * rng.uniform(0.5, 0.7))
            y, x = int(rng.integers(0, h - ch)), int(rng.integers(0, w - cw))
            views.append((f"{src}-crop{i}", img[y : y + ch, x : x + cw]))
        for factor in (1.5, 2.0):
            views.append((f"{src}-zoom{factor}", zoom(img, factor, rng.uniform(0.35, 0.65), 0.5)))
        for deg in (90, 180, 17):
            rotated = np.rot90(img, deg // 90).copy() if deg % 90 == 0 else rotate(img, deg)
            views.append((f"{src}-rot{deg}", rotated))
        for q in (30, 60):
            views.append((f"{src}-jpeg{q}", jpeg(img, q)))
        for i in range(3):
            views.append((f"{src}-stain{i}", stain_jitter(img, rng)))
    return views


def build(seed: int = 0) -> list[LabelledFrame]:
    """Every frame of the set, in a fixed order (same seed, same pixels)."""
    rng = np.random.default_rng(seed)
    src = sources()
    out: list[LabelledFrame] = []
    views = _histology_views(rng)
    for name, view in views:
        out.append(LabelledFrame(name, view, histology=True, tags=["raw"]))
        out.append(LabelledFrame(f"{name}@720p", letterbox(view), histology=True))
    # Impurities on histology: one of each per source image and a few views.
    for n, (name, view) in enumerate(views[::4]):
        frame = letterbox(view)
        corner = ("br", "tr", "bl")[len(out) % 3]
        who = ("astronaut", "hopper")[n % 2]
        out.append(
            LabelledFrame(
                f"{name}+narrator", narrator_inset(frame, corner, who=who), True, face=True
            )
        )
        out.append(LabelledFrame(f"{name}+caption", text_overlay(frame, "bottom"), True, text=True))
        out.append(LabelledFrame(f"{name}+title", text_overlay(frame, "top"), True, text=True))
        out.append(
            LabelledFrame(f"{name}+viewer", desktop(view, len(out)), True, text=True, desktop=True)
        )
    # Negatives.
    for i in range(4):
        out.append(LabelledFrame(f"slide{i}", text_slide(i), False, text=True))
    out.append(LabelledFrame("page", letterbox(src["page"], fill=255), False, text=True))
    for name in ("coffee", "chelsea", "rocket", "camera", "hubble_deep_field", "retina"):
        out.append(LabelledFrame(name, letterbox(src[name]), False))
        out.append(LabelledFrame(f"{name}-jpeg40", jpeg(letterbox(src[name]), 40), False))
    out.append(LabelledFrame("astronaut", letterbox(src["astronaut"]), False, face=True))
    face_crop = src["astronaut"][0:320, 60:380]
    out.append(LabelledFrame("narrator-closeup", letterbox(face_crop), False, face=True))
    out.append(LabelledFrame("hopper", letterbox(src["hopper"]), False, face=True))
    out.append(
        LabelledFrame(
            "slide+hopper",
            narrator_inset(text_slide(2), "tr", who="hopper"),
            False,
            face=True,
            text=True,
        )
    )
    out.append(
        LabelledFrame(
            "slide+narrator", narrator_inset(text_slide(1), "br"), False, face=True, text=True
        )
    )
    for i in range(3):
        out.append(LabelledFrame(f"desktop{i}", desktop(None, i), False, text=True, desktop=True))
    out.append(
        LabelledFrame("desktop-photo", desktop(src["chelsea"], 5), False, text=True, desktop=True)
    )
    return out


def main(argv: list[str] | None = None) -> int:
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    folder = Path(args[0] if args else "frameset")
    folder.mkdir(parents=True, exist_ok=True)
    labels = {}
    for f in build():
        cv2.imwrite(str(folder / f"{f.name}.png"), f.rgb[..., ::-1])
        labels[f.name] = {k: getattr(f, k) for k in (*FLAGS, "clean")}
    (folder / "labels.json").write_text(json.dumps(labels, indent=1))
    return 0
