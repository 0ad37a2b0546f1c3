"""Small synthetic images that look like their modality, and burned-in text.

The phantoms are crude (ellipses, noise, a fan for ultrasound) but have the
value ranges, bit depths and photometric interpretations of real images, so
windowing, thumbnails and OCR behave as on real data. Findings leave a mark
where it is cheap (a nodule in a CT lung, a mass in a mammogram).

Text is rendered with DejaVu fonts (Debian ``fonts-dejavu-core``); without
them Pillow's built-in font is used, which is just as deterministic.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
)


@lru_cache(maxsize=16)
def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    for p in FONT_CANDIDATES:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default(size=size)


def _grid(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    return (y - rows / 2) / (rows / 2), (x - cols / 2) / (cols / 2)


def _ellipse(y: np.ndarray, x: np.ndarray, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def ct_slice(g: np.random.Generator, kind: str, z: float, lesion: bool, size: int = 128) -> np.ndarray:
    """One axial CT slice as stored values (HU + 1024), int16, for RescaleIntercept -1024."""
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    if kind == "head":
        skull = _ellipse(y, x, 0, 0, 0.82, 0.68)
        brain = _ellipse(y, x, 0, 0, 0.74, 0.60)
        hu[skull] = 1100
        hu[brain] = 35
        hu[_ellipse(y, x, -0.05, -0.12, 0.18, 0.05) | _ellipse(y, x, -0.05, 0.12, 0.18, 0.05)] = 8  # ventricles
        if lesion:
            hu[_ellipse(y, x, 0.15, 0.25, 0.1, 0.1)] = 70  # acute blood
    else:
        body = _ellipse(y, x, 0, 0, 0.62, 0.9)
        hu[body] = -90
        hu[_ellipse(y, x, 0, 0, 0.56, 0.84)] = 40
        lungs = _ellipse(y, x, -0.05, -0.42, 0.42, 0.3) | _ellipse(y, x, -0.05, 0.42, 0.42, 0.3)
        hu[lungs] = -860
        hu[_ellipse(y, x, 0.05, 0.08, 0.25, 0.2)] = 45  # heart
        hu[_ellipse(y, x, 0.45, 0, 0.1, 0.1)] = 700  # vertebra
        if lesion and abs(z) < 0.5:
            hu[_ellipse(y, x, -0.2, -0.45, 0.06, 0.06)] = 30  # the nodule
    hu += g.normal(0, 12, hu.shape).astype(np.float32)
    return np.clip(hu + 1024, -1024, 3071).astype(np.int16)


def ct_scout(g: np.random.Generator, kind: str, size: int = 128) -> np.ndarray:
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0, dtype=np.float32)
    if kind == "head":
        hu[_ellipse(y, x, -0.1, 0, 0.7, 0.55)] = 400
        hu[_ellipse(y, x, -0.1, 0, 0.62, 0.48)] = 60
    else:
        hu[np.abs(x) < 0.75] = 50
        hu[_ellipse(y, x, -0.2, -0.35, 0.45, 0.25) | _ellipse(y, x, -0.2, 0.35, 0.45, 0.25)] = -600
        hu[np.abs(x) < 0.06] = 600
    hu += g.normal(0, 15, hu.shape).astype(np.float32)
    return np.clip(hu + 1024, -1024, 3071).astype(np.int16)


def mr_slice(g: np.random.Generator, body: str, weighting: str, z: float, lesion: bool,
             size: int = 128) -> np.ndarray:
    """An MR magnitude image, uint16, contrast by weighting (t1, t2, flair, pd)."""
    y, x = _grid(size, size)
    img = np.zeros((size, size), dtype=np.float32)
    fluid = {"t1": 150, "t2": 1400, "flair": 120, "pd": 900}[weighting]
    tissue = {"t1": 700, "t2": 500, "flair": 600, "pd": 650}[weighting]
    fat = {"t1": 1100, "t2": 800, "flair": 700, "pd": 300}[weighting]
    if body == "BRAIN":
        img[_ellipse(y, x, 0, 0, 0.84, 0.70)] = fat
        img[_ellipse(y, x, 0, 0, 0.76, 0.62)] = tissue
        img[_ellipse(y, x, 0, -0.12, 0.2, 0.05) | _ellipse(y, x, 0, 0.12, 0.2, 0.05)] = fluid
        if lesion and abs(z) < 0.6:
            img[_ellipse(y, x, -0.45, 0.35, 0.14, 0.14)] = tissue * 1.3
    elif body == "KNEE":
        img[_ellipse(y, x, 0, 0, 0.9, 0.55)] = fat
        img[_ellipse(y, x, -0.45, 0, 0.45, 0.4)] = tissue  # femur
        img[_ellipse(y, x, 0.5, 0, 0.4, 0.35)] = tissue  # tibia
        img[(np.abs(y - 0.02) < 0.04) & (np.abs(x) < 0.4)] = fluid if lesion else 80
    else:  # spine
        img[_ellipse(y, x, 0, 0, 0.95, 0.8)] = fat * 0.6
        for k in range(-3, 4):
            img[_ellipse(y, x, k * 0.26, 0.0, 0.1, 0.22)] = tissue
        img[np.abs(x - 0.35) < 0.07] = fluid  # spinal canal
        if lesion:
            img[_ellipse(y, x, 0.13, 0.25, 0.05, 0.08)] = tissue * 0.8
    img *= 1.0 - 0.25 * (y**2 + x**2)  # coil shading
    img += np.abs(g.normal(0, 25, img.shape)).astype(np.float32)
    return np.clip(img, 0, 4095).astype(np.uint16)


def us_frame(g: np.random.Generator, rows: int, cols: int, target: str, finding: str,
             phase: float = 0.0) -> np.ndarray:
    """A B-mode sector with speckle, uint8 (rows, cols)."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    apex_x, apex_y = cols / 2, 18.0
    r = np.hypot(xx - apex_x, yy - apex_y)
    ang = np.arctan2(xx - apex_x, yy - apex_y)
    sector = (np.abs(ang) < 0.62) & (r > 12) & (r < rows - 8)
    speckle = g.rayleigh(45, (rows, cols)).astype(np.float32)
    img = np.where(sector, speckle * (1.0 - r / (rows * 1.6)), 0.0)
    cy, cx = rows * 0.55 + 4 * np.sin(phase), cols * 0.5
    if target == "ABDOMEN":
        dark = ((yy - cy) / (rows * 0.12)) ** 2 + ((xx - cx) / (cols * 0.16)) ** 2 <= 1  # gallbladder
        img = np.where(dark & sector, img * 0.12, img)
        if finding == "cholelithiasis":
            stone = ((yy - cy - rows * 0.06) ** 2 + (xx - cx) ** 2) <= 16
            img = np.where(stone, 240.0, img)
        if finding == "hepatic_steatosis":
            img = img * 1.35
    else:
        lobe = ((yy - cy) / (rows * 0.18)) ** 2 + ((xx - cx) / (cols * 0.3)) ** 2 <= 1
        img = np.where(lobe & sector, img * 1.2, img)
        if finding == "thyroid_nodule":
            nod = ((yy - cy) ** 2 + (xx - cx - 15) ** 2) <= 64
            img = np.where(nod, img * 0.6 + 40, img)
    return np.clip(img, 0, 255).astype(np.uint8)


def mg_view(g: np.random.Generator, view: str, laterality: str, lesion: bool,
            rows: int = 256, cols: int = 192) -> np.ndarray:
    """A mammogram (MONOCHROME2, 14 bits stored), chest wall on the image edge of its side."""
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    wall_x = 0.0 if laterality == "R" else cols - 1.0
    d = np.abs(xx - wall_x)
    breast = ((yy - rows / 2) / (rows * 0.45)) ** 2 + (d / (cols * 0.85)) ** 2 <= 1
    img = np.full((rows, cols), 300.0, dtype=np.float32)
    tissue = 6000 + 3500 * np.exp(-(d / (cols * 0.5)) ** 2)
    img = np.where(breast, tissue, img)
    if view == "MLO":
        pect = (d < cols * 0.35 * (1 - yy / (rows * 0.5))) & breast
        img = np.where(pect, 12000.0, img)
    img += g.normal(0, 250, img.shape).astype(np.float32)
    if lesion:
        m = ((yy - rows * 0.4) ** 2 + (d - cols * 0.45) ** 2) <= 36
        img = np.where(m, 13500.0, img)
    return np.clip(img, 0, 16383).astype(np.uint16)


def xr(g: np.random.Generator, kind: str, view: str, finding: str, rows: int = 320,
       cols: int = 256) -> np.ndarray:
    """A radiograph, MONOCHROME2, 12 bits stored (bone bright, lung dark)."""
    y, x = _grid(rows, cols)
    img = np.full((rows, cols), 200.0, dtype=np.float32)
    if kind == "xr_chest":
        img[np.abs(x) < 0.85] = 2200
        if view == "PA":
            lungs = _ellipse(y, x, -0.05, -0.4, 0.6, 0.3) | _ellipse(y, x, -0.05, 0.4, 0.6, 0.3)
        else:
            lungs = _ellipse(y, x, -0.05, 0.0, 0.6, 0.55)
        img[lungs] = 900
        for k in range(-5, 6):  # ribs
            img[(np.abs(y - k * 0.11 - 0.02 * x**2) < 0.018) & lungs] = 1700
        heart_rx = 0.42 if finding == "cardiomegaly" else 0.3
        img[_ellipse(y, x, 0.25, 0.08, 0.28, heart_rx)] = 2000
        if finding == "pneumonia":
            img[_ellipse(y, x, 0.35, -0.45, 0.15, 0.2) & lungs] = 1600
        img[np.abs(x) < 0.05] = 2800  # spine
        img[y < -0.6] = 200  # air above the shoulders, where modalities print their labels
    else:
        img[_ellipse(y, x, 0.25, 0, 0.72, 0.45)] = 1400  # soft tissue of forearm/hand
        img[_ellipse(y, x, 0.35, -0.12, 0.6, 0.1)] = 2900  # radius
        img[_ellipse(y, x, 0.35, 0.15, 0.6, 0.07)] = 2800  # ulna
        if finding == "fracture":
            img[(np.abs(y + 0.05 - 0.1 * x) < 0.012) & (np.abs(x) < 0.25)] = 1400
    img += g.normal(0, 30, img.shape).astype(np.float32)
    return np.clip(img, 0, 4095).astype(np.uint16)


def text_mask(shape: tuple[int, int], lines: list[tuple[int, int, str]], size: int) -> np.ndarray:
    """A boolean mask of rendered text lines (x, y, text), for burning into any bit depth."""
    im = Image.new("L", (shape[1], shape[0]), 0)
    draw = ImageDraw.Draw(im)
    f = font(size)
    for x, y, t in lines:
        draw.text((x, y), t, fill=255, font=f)
    return np.asarray(im) > 127


def burn(arr: np.ndarray, lines: list[tuple[int, int, str]], size: int, value: int | tuple[int, ...]) -> np.ndarray:
    """Write text into the pixels (what the modality did): returns a new array."""
    mask = text_mask(arr.shape[:2], lines, size)
    out = arr.copy()
    out[mask] = value
    return out
