"""Find text before reading it: where on a frame Tesseract should look.

OCR is the slow part of cleaning burned-in text (a whole 640x480 frame read
in several views costs ~0.4-2 s). Text has a shape that is cheap to find
with morphology and connected components (scipy.ndimage on numpy arrays):

* **ink**: pixels much brighter than their neighbourhood (white top-hat) or
  much darker (black top-hat), on a flat background; on image content
  (ultrasound speckle, tissue: a texture mask by 8x8 blocks) only saturated
  overlay ink counts, so speckle grains are not glyphs;
* **glyphs**: connected components of ink of glyph size and fill;
* **lines**: glyphs of similar height side by side (or stacked, for
  vertical text), chained while the gap is under about one glyph height.

Each line becomes a :class:`Region` with its own OCR image: ink dark on
white, everything that is not near a glyph blanked, deskewed by the slope
of its glyphs and scaled so glyphs are ~32 px high (what Tesseract reads
best), whatever the font size on the frame. The OCR image's bytes are
hashed (:attr:`Region.key`): the same overlay on every frame of a cine, or
the same marker on every file of a device, is read once.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

#: Top-hat contrast (grey levels of 255) that makes a pixel ink.
INK_CONTRAST = 45
#: On image content (texture), only overlay ink this bright (or dark) counts.
OVERLAY_LIGHT, OVERLAY_DARK = 200, 40
#: Glyph height Tesseract reads best; OCR images are scaled to it.
TARGET_GLYPH = 28
#: Widest OCR image made by enlarging (pixels); a white border of BORDER around it.
MAX_OCR_WIDTH, BORDER = 1800, 8
#: Background spread (MAD, grey levels) above which an 8x8 block is image content.
TEXTURE_MAD = 12.0


@dataclass
class Region:
    """One line of probable text on a frame (frame coordinates, exclusive ends)."""

    x0: int
    y0: int
    x1: int
    y1: int
    polarity: str  # "light" (bright ink) | "dark"
    glyphs: list[tuple[int, int, int, int]]  # component boxes (x0, y0, x1, y1)
    angles: list[float] = field(default_factory=lambda: [0.0])  # rotations to read the OCR image at
    scale: float = 1.0
    vertical: bool = False
    image: np.ndarray | None = field(default=None, repr=False)  # OCR image (uint8, ink dark)
    key: str = ""  # hash of the OCR image

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def box(self, margin: int = 0) -> tuple[int, int, int, int]:
        return (self.x0 - margin, self.y0 - margin, self.x1 + margin, self.y1 + margin)


def normalise(frame: np.ndarray, photometric: str) -> np.ndarray:
    """8-bit grey, 0 = darkest displayed value, 255 = brightest.

    8-bit frames keep their absolute scale (overlays are drawn at 255, so
    the brightest speckle must not be stretched to white); deeper ones are
    stretched to their own range. Colour: luminance, but a saturated colour
    (yellow caption, blue bar text) stays bright.
    """
    a = frame
    if a.ndim == 3:
        a = np.maximum(a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114, a.max(axis=-1) * 0.8)
    eight_bit = frame.dtype == np.uint8
    a = a.astype(np.float32)
    lo, hi = (0.0, 255.0) if eight_bit else (float(np.min(a)), float(np.max(a)))
    a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    if photometric == "MONOCHROME1":
        a = 255 - a
    return a.clip(0, 255).astype(np.uint8)


def texture_mask(g: np.ndarray, block: int = 8) -> np.ndarray:
    """True where the frame shows image content (speckle, tissue, bone), by blocks.

    A block is content when its pixels vary a lot (median absolute
    deviation, robust to the glyph minority of a text block) and it lies in
    a large region of such blocks (a line of glyphs is one block high).
    """
    h, w = g.shape
    H, W = -(-h // block) * block, -(-w // block) * block
    pad = np.zeros((H, W), np.uint8)
    pad[:h, :w] = g
    blocks = pad.reshape(H // block, block, W // block, block).transpose(0, 2, 1, 3).reshape(-1, block * block)
    srt = np.sort(blocks, axis=1)
    med = srt[:, block * block // 2].astype(np.int16)
    mad = np.median(np.abs(blocks.astype(np.int16) - med[:, None]), axis=1)
    mid = ((blocks > 50) & (blocks < 190)).mean(axis=1)
    # Text on a flat field is bimodal: many pixels sit at the field's level (within 25 of the
    # block's darkest, or of its brightest for dark text); speckle and tissue are not.
    flat = np.maximum((blocks <= srt[:, :1] + 25).mean(axis=1), (blocks >= srt[:, -1:] - 25).mean(axis=1))
    content = ((mad > 8) & (mid > 0.5) & (flat < 0.35)).reshape(H // block, W // block)
    neighbours = ndimage.convolve(content.astype(np.int8), np.ones((3, 3), np.int8), mode="constant") - content
    core = content & (neighbours >= 4)
    # The rim of an image area (half speckle, half background) is content too.
    grown = ndimage.binary_dilation(core, structure=np.ones((3, 3), bool))
    content = core | grown
    return np.repeat(np.repeat(content, block, 0), block, 1)[:h, :w]


def ink_masks(g: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(light ink, dark ink, white top-hat, black top-hat) of an 8-bit grey frame."""
    size = 15 if max(g.shape) <= 1600 else 31
    gi = g.astype(np.int16)
    white_top = gi - ndimage.grey_opening(g, size=(size, size))
    closed = ndimage.grey_closing(g, size=(size, size))
    black_top = closed.astype(np.int16) - gi
    content = texture_mask(g)
    # The field a glyph sits on, by a wide mean (text is the minority of it): light
    # ink is brighter than its field, dark ink darker, so the gaps between bright
    # glyphs and the holes of dark ones are never ink of the other polarity.
    field = ndimage.uniform_filter(g.astype(np.float32), size=31)
    light = (white_top >= INK_CONTRAST) & (gi >= field + 30) & (~content | (g >= OVERLAY_LIGHT))
    # Dark ink only on a light field (gaps between speckle grains are not text); over image
    # content only near-black overlay ink.
    dark = (black_top >= INK_CONTRAST) & (gi <= field - 30) & (closed >= 128) & (field >= 120) & (~content | (g <= OVERLAY_DARK))
    return light, dark, white_top, black_top


def _components(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels and boxes (x0, y0, x1, y1, area) of glyph-like components."""
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return lab, np.zeros((0, 5), np.int64)
    objs = ndimage.find_objects(lab)
    area = np.bincount(lab.ravel(), minlength=n + 1)[1:]
    boxes = np.array([(s[1].start, s[0].start, s[1].stop, s[0].stop) for s in objs], np.int64)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    fill = area / np.maximum(1, w * h)
    keep = (
        (area >= 6)
        & (np.maximum(w, h) >= 4)
        & (np.minimum(w, h) <= 120)
        & (np.maximum(w, h) <= 400)
        & (fill >= 0.08)
        & (w <= 8 * h + 4)  # a glyph or a few touching ones, not an edge or a rule
        & (h <= 8 * w + 4)
        & ~((fill > 0.92) & (np.minimum(w, h) > 6))  # solid bars and blocks are not glyphs
    )
    return lab, np.column_stack([boxes, area])[keep]


def _chain(boxes: np.ndarray, vertical: bool) -> list[list[int]]:
    """Group boxes into lines: similar size, overlapping rows, gap under ~1.2 glyph heights."""
    n = len(boxes)
    if n == 0:
        return []
    if vertical:
        boxes = boxes[:, [1, 0, 3, 2, 4]]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    h = np.maximum(2, y1 - y0)
    order = np.argsort(x0)
    for k, i in enumerate(order):
        j = order[k + 1 :]
        if j.size == 0:
            break
        hi = h[i]
        near = x0[j] <= x1[i] + 1.2 * np.maximum(hi, h[j])
        if not near.any():
            continue
        j = j[near]
        overlap = np.minimum(y1[i], y1[j]) - np.maximum(y0[i], y0[j])
        ok = (overlap >= 0.4 * np.minimum(hi, h[j])) & (np.maximum(hi, h[j]) <= 2.5 * np.minimum(hi, h[j]))
        for jj in j[ok]:
            a, b = find(i), find(int(jj))
            if a != b:
                parent[b] = a
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())


def _ocr_image(ink: np.ndarray, strength: np.ndarray, region: Region, shape: tuple[int, int]) -> None:
    """The region's OCR image: ink dark on white, deskewed, scaled to TARGET_GLYPH."""
    from PIL import Image

    hs = sorted(b[3] - b[1] if not region.vertical else b[2] - b[0] for b in region.glyphs)
    glyph = max(4, hs[len(hs) // 2])
    pad = max(4, glyph // 2)
    H, W = shape
    x0, y0 = max(0, region.x0 - pad), max(0, region.y0 - pad)
    x1, y1 = min(W, region.x1 + pad), min(H, region.y1 + pad)
    # Binary (ink black on white): the same overlay over different speckle or noise gives
    # the same image, so its hash -- and its reading -- is shared across frames and files.
    img = np.where(ink[y0:y1, x0:x1], 0, 255).astype(np.uint8)
    im = Image.fromarray(img, "L")
    angles = [0.0]
    if region.vertical:
        angles = [90.0, -90.0]  # read both ways up, keep the more confident
    elif len(region.glyphs) >= 3:
        cx = np.array([(b[0] + b[2]) / 2 for b in region.glyphs])
        by = np.array([b[3] for b in region.glyphs], np.float64)
        if np.ptp(cx) > 0:
            a = math.degrees(math.atan(np.polyfit(cx, by, 1)[0]))
            if 2.0 <= abs(a) <= 45.0:
                angles = [a]
    scale = min(4.0, max(0.25, TARGET_GLYPH / glyph))
    # Long lines of small glyphs: cap the image width (Tesseract time grows with it).
    scale = min(scale, max(1.0, MAX_OCR_WIDTH / max(1, im.width)))
    if scale != 1.0:
        im = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.BICUBIC)
    # A white border: Tesseract misses glyphs that touch the edge.
    framed = Image.new("L", (im.width + 2 * BORDER, im.height + 2 * BORDER), 255)
    framed.paste(im, (BORDER, BORDER))
    region.image = np.asarray(framed)
    region.scale, region.angles = scale, angles
    region.key = hashlib.blake2b(region.image.tobytes() + repr(region.image.shape).encode(), digest_size=16).hexdigest()
    region.x0, region.y0, region.x1, region.y1 = x0, y0, x1, y1


def to_frame(region: Region, box: tuple[int, int, int, int], angle: float) -> list[tuple[float, float]]:
    """Corners, in frame coordinates, of a word box found in the region's OCR image rotated by ``angle``."""
    assert region.image is not None
    H, W = region.image.shape
    corners = [(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])]
    if angle:
        t = math.radians(angle)
        cos, sin = abs(math.cos(t)), abs(math.sin(t))
        Wr, Hr = W * cos + H * sin, W * sin + H * cos  # PIL's expand=True size
        c, s_ = math.cos(t), math.sin(t)
        out = []
        for x, y in corners:
            dx, dy = x - Wr / 2, y - Hr / 2
            out.append((c * dx - s_ * dy + W / 2, s_ * dx + c * dy + H / 2))
        corners = out
    return [((x - BORDER) / region.scale + region.x0, (y - BORDER) / region.scale + region.y0) for x, y in corners]


def _wordlike(b: np.ndarray) -> bool:
    """One component wide enough to be several touching letters (a word), not a lone marker."""
    w, h = int(b[2] - b[0]), int(b[3] - b[1])
    return w >= 2 * h and h >= 6


def _integral(mask: np.ndarray) -> np.ndarray:
    ii = np.zeros((mask.shape[0] + 1, mask.shape[1] + 1), np.int64)
    ii[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    return ii


def _box_sum(ii: np.ndarray, boxes: np.ndarray, grow: int) -> np.ndarray:
    H, W = ii.shape[0] - 1, ii.shape[1] - 1
    x0 = np.clip(boxes[:, 0] - grow, 0, W)
    y0 = np.clip(boxes[:, 1] - grow, 0, H)
    x1 = np.clip(boxes[:, 2] + grow, 0, W)
    y1 = np.clip(boxes[:, 3] + grow, 0, H)
    return ii[y1, x1] - ii[y0, x1] - ii[y1, x0] + ii[y0, x0]


def find_text_regions(g: np.ndarray, *, vertical: bool = True) -> list[Region]:
    """Lines of probable text on an 8-bit grey frame, each with its OCR image and hash."""
    light, dark, white_top, black_top = ink_masks(g)
    out: list[Region] = []
    for polarity, mask, strength in (("light", light, white_top), ("dark", dark, black_top)):
        if not mask.any():
            continue
        lab, comps = _components(mask)
        if len(comps) == 0:
            continue
        # kept components back to their labels (find_objects order is label order)
        objs = ndimage.find_objects(lab)
        label_of = {(s[1].start, s[0].start, s[1].stop, s[0].stop): i + 1 for i, s in enumerate(objs) if s is not None}
        keep_ids = np.zeros(len(objs) + 1, bool)
        for b in comps:
            keep_ids[label_of[(int(b[0]), int(b[1]), int(b[2]), int(b[3]))]] = True
        used = np.zeros(len(comps), bool)
        lines = [grp for grp in _chain(comps, False) if len(grp) >= 2 or _wordlike(comps[grp[0]])]
        for grp in lines:
            used[grp] = True
        # Punctuation and accents (dots, dashes, commas) are too small to chain: they join
        # the line they sit in.
        for grp in lines:
            bx = comps[grp]
            lx0, ly0, lx1, ly1 = bx[:, 0].min(), bx[:, 1].min(), bx[:, 2].max(), bx[:, 3].max()
            lh = int(np.median(bx[:, 3] - bx[:, 1]))
            cand = np.nonzero(~used)[0]
            if cand.size:
                c = comps[cand]
                cx, cy = (c[:, 0] + c[:, 2]) / 2, (c[:, 1] + c[:, 3]) / 2
                small = np.maximum(c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]) <= 1.2 * lh
                inside = (cy >= ly0 - 0.4 * lh) & (cy <= ly1 + 0.2 * lh) & (cx >= lx0 - 1.5 * lh) & (cx <= lx1 + 1.5 * lh)
                add = cand[small & inside]
                if add.size:
                    used[add] = True
                    grp.extend(int(a) for a in add)
        for grp in lines:
            bx = comps[grp]
            out.append(
                Region(int(bx[:, 0].min()), int(bx[:, 1].min()), int(bx[:, 2].max()), int(bx[:, 3].max()), polarity,
                       [tuple(int(v) for v in b[:4]) for b in bx])
            )
        if vertical:
            rest = np.nonzero(~used)[0]
            for grp in _chain(comps[rest], True):
                if len(grp) < 3:
                    continue
                bx = comps[rest[grp]]
                out.append(
                    Region(int(bx[:, 0].min()), int(bx[:, 1].min()), int(bx[:, 2].max()), int(bx[:, 3].max()), polarity,
                           [tuple(int(v) for v in b[:4]) for b in bx], vertical=True)
                )
        for r in out:
            if r.polarity == polarity and r.image is None:
                _ocr_image(mask, strength, r, g.shape)  # all ink near the line: dots and accents too
    return out
