"""BASELINE for bench_ocr only: the former whole-frame burned-in cleaner (anonymization/pixels.py at 4383d68).

It OCRs every frame as a whole (three views, two tilts, sampled cine
frames), one ``tesseract`` process per view. bench_ocr runs it side by side
with the region-first cleaner (anonymization/ocr_redact.py) to show the
speed-up and that no planted text is lost. Not used by the product.
"""

from __future__ import annotations

import functools
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"

#: Words burned into images that identify nobody (markers, units, scales,
#: ultrasound settings, views). Compared upper-case without punctuation.
SAFE_WORDS = {
    "L", "R", "LT", "RT", "LEFT", "RIGHT", "IZQ", "DER", "IZQUIERDO", "IZQUIERDA", "DERECHO", "DERECHA", "ESQ", "DIR",
    "ESQUERDO", "ESQUERDA", "DIREITO", "DIREITA", "CM", "MM", "M", "S", "MS", "HZ", "KHZ", "MHZ", "DB", "FPS", "GN", "GAIN",
    "DEPTH", "PROF", "FR", "PW", "CW", "CFM", "PRF", "MI", "TIS", "TIB", "TIC", "TI", "AP", "PA", "LAT", "OBL", "SUP", "INF",
    "MED", "TRANS", "TRV", "SAG", "LONG", "CC", "MLO", "ML", "LM", "XCCL", "B", "C", "D", "PD", "THI", "HR", "BPM", "CM/S",
    "2D", "3D", "4D", "SUPINE", "ERECT", "UPRIGHT", "PORTABLE", "PORTATIL", "DECUBITO", "AXIAL", "CORONAL", "STANDING",
    "WL", "WW", "W", "KV", "KVP", "MA", "MAS", "SID", "CM2", "MM2", "%", "+", "X", "DIST", "AREA", "VOL", "ML/S",
}
_SAFE_RE = re.compile(
    r"^(?:[+\-x×*~=<>/|.,:;()\[\]#%°'\"_]+"  # marks, cursors, scale ticks
    r"|[+-]?\d{1,3}(?:[.,]\d{1,2})?(?:cm|mm|m|s|ms|hz|khz|mhz|db|%|°|x|cm/s|mm/s|fps|bpm|kv|ma|mas)?"  # 5, 12.5, 5cm, 3.5MHz
    r"|\d{1,3}[x×]\d{1,3})$",
    re.IGNORECASE,
)
#: Words below this OCR confidence are treated as image texture unless they
#: match PHI; above it, anything not known-safe is redacted.
REDACT_CONF = 60.0
#: The re-check fails on PHI, or on a non-safe word this confident with 3+
#: letters/digits (image texture never reads that well).
RESIDUAL_CONF = 80.0
#: Frames OCR'd per file at most; longer cines are sampled and the union of
#: boxes is redacted in every frame (burned-in overlays are static).
MAX_OCR_FRAMES = int(os.environ.get("STA_MAX_OCR_FRAMES", "16"))
#: OCR passes per file: find + redact, re-check (+ redact), final re-check.
MAX_PASSES = 3
#: Extra angles (degrees) at which the thresholded views are read.
TILTS = (12, -12)
#: Background spread (median absolute deviation, grey levels of 255) above
#: which a box lies on image texture.
TEXTURE_MAD = 12.0
#: Boxes lower than this (pixels) are not legible text unless they match PHI.
MIN_TEXT_HEIGHT = 6


# The error and result types are the product's, so both cleaners report alike.
from anonymization.ocr_redact import PixelCleanError, PixelCleanResult  # noqa: E402



@dataclass(frozen=True)
class _Box:
    text: str
    conf: float
    x0: int
    y0: int
    x1: int
    y1: int
    line: tuple[int, int, int]
    poly: tuple[tuple[float, float], ...] | None = None  # exact outline of a word read tilted


def _normalise(frame: np.ndarray, photometric: str) -> np.ndarray:
    """8-bit grey, 0 = darkest displayed value, 255 = brightest."""
    a = frame
    if a.ndim == 3:  # RGB -> luminance; coloured overlays stay bright
        a = np.maximum(a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114, a.max(axis=-1) * 0.8)
    eight_bit = frame.dtype == np.uint8
    a = a.astype(np.float32)
    # 8-bit frames keep their absolute scale (overlays are drawn at 255, so
    # the brightest speckle must not be stretched to white); deeper ones are
    # stretched to their own range.
    lo, hi = (0.0, 255.0) if eight_bit else (float(np.min(a)), float(np.max(a)))
    a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
    if photometric == "MONOCHROME1":
        a = 255 - a
    return a.clip(0, 255).astype(np.uint8)


def _texture_mask(g: np.ndarray, block: int = 8) -> np.ndarray:
    """True where the frame shows image content (texture), by 8x8 blocks.

    A block is content when most of its pixels are mid-grey and they vary
    a lot (median absolute deviation): speckle, parenchyma, bone. Flat
    backgrounds with text on them are not, even where glyphs are dense,
    because the deviation is robust to the glyph minority.
    """
    h, w = g.shape
    H, W = -(-h // block) * block, -(-w // block) * block
    pad = np.zeros((H, W), np.uint8)
    pad[:h, :w] = g
    blocks = pad.reshape(H // block, block, W // block, block).transpose(0, 2, 1, 3).reshape(-1, block * block).astype(np.float32)
    med = np.median(blocks, axis=1, keepdims=True)
    mad = np.median(np.abs(blocks - med), axis=1)
    mid = ((blocks > 50) & (blocks < 190)).mean(axis=1)
    # Text on a flat field is bimodal: many pixels sit at the field's level.
    flat = (blocks <= blocks.min(axis=1, keepdims=True) + 25).mean(axis=1)
    # Text on a flat field keeps a small deviation (the field is the median
    # unless glyphs cover half the block); speckle and tissue do not.
    content = ((mad > 8) & ((mid > 0.15) | (mad > TEXTURE_MAD))).reshape(H // block, W // block)
    # Image content comes in large regions; a glyph-dense block inside a
    # line of text is isolated. Keep blocks with 5+ content neighbours.
    c = np.pad(content, 1).astype(np.int8)
    neighbours = sum(
        c[1 + dy : c.shape[0] - 1 + dy, 1 + dx : c.shape[1] - 1 + dx]
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    )
    content &= neighbours >= 6
    return np.repeat(np.repeat(content, block, 0), block, 1)[:h, :w]


def _ink_masks(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixels of light text and of dark text, whatever the background.

    Light ink: near-white (>= 200) *and* much brighter than its surroundings
    (white top-hat >= 90) -- so a white caption on a blue title bar is ink
    but the white page around the bar is not, and neither is speckle, which
    stays below 200. Dark ink is the mirror image (<= 55, black top-hat).
    """
    from scipy import ndimage

    size = 15 if max(g.shape) <= 1600 else 31
    gi = g.astype(np.int16)
    white_top = gi - ndimage.grey_opening(gi, size=(size, size))
    black_top = ndimage.grey_closing(gi, size=(size, size)) - gi
    light = _drop_specks((g >= 200) & (white_top >= 90))
    dark = _drop_specks((g <= 55) & (black_top >= 90))
    return light, dark


def _drop_specks(mask: np.ndarray, min_area: int = 6) -> np.ndarray:
    """Remove isolated specks (bright speckle grains) smaller than a glyph stroke piece."""
    from scipy import ndimage

    if not mask.any():
        return mask
    lab, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    area = np.bincount(lab.ravel())
    keep = area >= min_area
    keep[0] = False
    return keep[lab]


def _views(frame: np.ndarray, photometric: str, rotations: Sequence[int]):
    """The images OCR'd for one frame: (PIL image, scale, rotation, unrotated size).

    * the whole frame, dark text on light (inverted when the image is dark),
      enlarged 1.5x, image texture blanked: text on plain backgrounds, any
      contrast;
    * bright pixels only (>= 78% of the range) as black on white: white or
      coloured overlays drawn over image content, where texture (ultrasound
      speckle) would otherwise drown the text;
    * dark pixels only, for dark text on a bright image.
    Each view costs one Tesseract run (~0.2-0.5 s at 640x480).
    """
    from PIL import Image

    g = _normalise(frame, photometric)
    bright_image = float(np.mean(g)) >= 128
    views = []
    # Image content is blanked in the grey view: Tesseract reads speckle as
    # hundreds of junk words and slows down 10x; drawn text over content is
    # saturated and is read from the thresholded views below.
    # Background noise is flattened too (Tesseract's own threshold would
    # otherwise land inside it on a near-empty page).
    mask = _texture_mask(g)
    ink = g if not bright_image else 255 - g  # text is the high side here
    rest = ink[~mask]
    floor = float(np.median(rest)) + 25 if rest.size else 0.0
    ink = np.where(ink <= floor, 0, ink)
    shown = np.where(mask, 255, 255 - ink).astype(np.uint8)
    # Small frames (ultrasound, screenshots) are enlarged for small fonts;
    # large radiographs are read as they are, or reduced to 3000 px.
    side = max(g.shape)
    up = 1.5 if side <= 1200 else 1.0 if side <= 3000 else 3000 / side
    down = 1.0 if side <= 3000 else 3000 / side

    def sized(im, f: float):
        return im if f == 1.0 else im.resize((max(1, int(im.width * f)), max(1, int(im.height * f))), Image.BICUBIC)

    views.append((sized(Image.fromarray(shown, "L"), up), up))
    bright_ink, dark_ink = _ink_masks(g)
    views.append((sized(Image.fromarray(np.where(bright_ink, 0, 255).astype(np.uint8), "L"), down), down))
    if bright_image:  # dark text exists only on light fields (speckle would read as dark "ink")
        views.append((sized(Image.fromarray(np.where(dark_ink, 0, 255).astype(np.uint8), "L"), down), down))
    out = []
    for k, (im, scale) in enumerate(views):
        # Thresholded views are also read tilted: names stamped at an angle
        # over the image are only legible to Tesseract once straightened.
        # (Only on ultrasound/screenshot-sized frames: on radiographs text is
        # straight and each extra read of 7 megapixels costs seconds.)
        tilts = [a for a in TILTS if a not in rotations] if k > 0 and side <= 1600 else []
        angles = list(rotations) + tilts
        for rot in angles:
            out.append((im if rot == 0 else im.rotate(rot, expand=True, fillcolor=255, resample=Image.BILINEAR), scale, rot, im.size))
    return out


def _ocr_frame(frame: np.ndarray, photometric: str, lang: str, rotations: Sequence[int]) -> list[_Box]:
    from foundation.ocr import ocr_image

    boxes: list[_Box] = []
    for v, (im, scale, rot, size) in enumerate(_views(frame, photometric, rotations)):
        for w in ocr_image(im, lang=lang, psm=11):
            x0, y0, x1, y1 = w.box
            poly = None
            if rot:
                corners = _unrotate_corners((x0, y0, x1, y1), rot, size, im.size)
                poly = tuple((cx / scale, cy / scale) for cx, cy in corners)
                xs, ys = [c[0] for c in corners], [c[1] for c in corners]
                x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
                x1, y1 = min(size[0], int(max(xs)) + 1), min(size[1], int(max(ys)) + 1)
            boxes.append(
                _Box(w.text, w.conf, int(x0 / scale), int(y0 / scale), int(-(-x1 // scale)), int(-(-y1 // scale)), (v, rot, 0), poly)
            )
    return boxes


def _unrotate_corners(box, rot: int, orig_size, rot_size) -> list[tuple[float, float]]:
    """Corners, in the unrotated image, of a box found in an image rotated by ``rot`` degrees (CCW)."""
    import math

    W, H = orig_size
    Wr, Hr = rot_size
    t = math.radians(rot)
    cos, sin = math.cos(t), math.sin(t)
    out = []
    for x, y in ((box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])):
        # PIL rotates CCW about the centre; invert that mapping.
        dx, dy = x - Wr / 2, y - Hr / 2
        out.append((cos * dx - sin * dy + W / 2, sin * dx + cos * dy + H / 2))
    return out


def _norm(word: str) -> str:
    return re.sub(r"[\s]", "", word).upper()


def is_safe_annotation(word: str) -> bool:
    w = _norm(word)
    return not w or w in SAFE_WORDS or bool(_SAFE_RE.match(w)) or w.strip(".,:;") in SAFE_WORDS


_PARTICLES = {"del", "las", "los", "das", "dos", "san", "sao", "the", "and", "von", "van", "der", "hospital", "clinica", "centro", "instituto"}


class _PhiMatcher:
    """Known values + the text scrubber, applied to OCR'd lines."""

    def __init__(self, known_phi: Sequence[str], languages: Sequence[str]) -> None:
        from anonymization.text_known import classify, fold

        self.known = classify(known_phi)
        self.fold = fold
        tokens: set[str] = set()
        for k in self.known:
            if k.kind in ("PERSON", "ID", "TEXT"):
                for t in re.split(r"[\s^,.\-/]+", fold(k.value)):
                    if len(t) >= 3 and t not in _PARTICLES:
                        tokens.add(t)
        self.tokens = tokens
        self.languages = list(languages)
        self._scrubber = None

    def word_is_phi(self, word: str) -> bool:
        w = re.sub(r"[^0-9a-z]", "", self.fold(word))
        if len(w) < 3:
            return False
        for t in self.tokens:
            t2 = re.sub(r"[^0-9a-z]", "", t)
            if len(t2) < 3:
                continue
            if t2 in w or (len(w) >= 4 and w in t2) or (len(t2) >= 5 and _edit1(w, t2)):
                return True
        return False

    def line_phi_spans(self, text: str) -> list[tuple[int, int]]:
        from anonymization.text_known import find_known
        from anonymization.text_phi import TextScrubber

        if self._scrubber is None:
            self._scrubber = _scrubber_for(tuple(self.languages))
        spans = [(s, e) for _, s, e, _ in find_known(text, self.known)]
        lang = self.languages[0] if self.languages else "es"
        spans += [(f.start, f.end) for f in self._scrubber.analyze(text, lang, self.known)]
        return spans


@functools.lru_cache(maxsize=8)
def _scrubber_for(languages: tuple[str, ...]):
    """One pattern-only scrubber per language set, shared by all files of a worker."""
    from anonymization.text_phi import TextScrubber

    return TextScrubber(list(languages), use_ner=False)


def _edit1(a: str, b: str) -> bool:
    """Levenshtein distance <= 1 (OCR misreads one character)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    if len(a) > len(b):
        a, b = b, a
    for i in range(len(b)):
        if b[:i] + b[i + 1 :] == a:
            return True
    return False


def _lines(boxes: list[_Box]) -> list[list[_Box]]:
    """Group words of one OCR view into text lines (sparse mode has no lines)."""
    lines: list[list[_Box]] = []
    # Left to right, so a tilted line (each word a little higher or lower)
    # is followed word by word.
    for b in sorted(boxes, key=lambda b: (b.line, b.x0, b.y0)):
        h = max(1, b.y1 - b.y0)
        for line in lines:
            last = line[-1]
            lh = max(1, last.y1 - last.y0)
            same_row = abs((b.y0 + b.y1) - (last.y0 + last.y1)) / 2 < 0.6 * max(h, lh)
            if last.line == b.line and same_row and 0 <= b.x0 - last.x1 < 3 * max(h, lh):
                line.append(b)
                break
        else:
            lines.append([b])
    return lines


def _phi_boxes(boxes: list[_Box], matcher: _PhiMatcher) -> set[int]:
    """ids of boxes holding PHI: known values (fuzzy) or what the text scrubber finds."""
    out: set[int] = set()
    for group in _lines(boxes):
        text, starts = "", []
        for b in group:
            starts.append(len(text))
            text += b.text + " "
        for s, e in matcher.line_phi_spans(text):
            for b, st in zip(group, starts):
                if st < e and st + len(b.text) > s:
                    out.add(id(b))
    for b in boxes:
        if matcher.word_is_phi(b.text):
            out.add(id(b))
    return out


def _overlap(a: _Box, b: _Box) -> float:
    """Intersection over the smaller box's area."""
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    if w <= 0 or h <= 0:
        return 0.0
    small = min((a.x1 - a.x0) * (a.y1 - a.y0), (b.x1 - b.x0) * (b.y1 - b.y0)) or 1
    return w * h / small


def _safe_boxes(boxes: list[_Box], phi: set[int]) -> set[int]:
    """Boxes read as a safe annotation, or lying on one read so by another view.

    The views disagree on small marks ("5 cm" may come out as "son" from the
    binarised view); a box that another view reads as safe, and that no view
    reads as PHI, is the same mark.
    """
    safe = {id(b) for b in boxes if id(b) not in phi and is_safe_annotation(b.text)}
    anchors = [b for b in boxes if id(b) in safe and sum(c.isalnum() for c in b.text) >= 1]
    phi_boxes = [b for b in boxes if id(b) in phi]
    for b in boxes:
        if id(b) in safe or id(b) in phi:
            continue
        if any(a.line[0] != b.line[0] and _overlap(a, b) > 0.6 for a in anchors) and not any(
            _overlap(p, b) > 0.3 for p in phi_boxes
        ):
            safe.add(id(b))
    return safe


def _second_opinion(gray: np.ndarray | None, b: _Box, lang: str) -> str | None:
    """Re-read one short box alone, enlarged (single-line mode): small marks
    such as "5 cm" are often misread in the full-frame pass."""
    if gray is None:
        return None
    from PIL import Image

    from foundation.ocr import ocr_image

    h, w = gray.shape
    pad = 4
    crop = gray[max(0, b.y0 - pad) : min(h, b.y1 + pad), max(0, b.x0 - pad) : min(w, b.x1 + pad)]
    if crop.size == 0:
        return None
    if float(np.mean(crop)) < 128:
        crop = 255 - crop
    im = Image.fromarray(crop, "L")
    im = im.resize((im.width * 3, im.height * 3), Image.BICUBIC)
    words = ocr_image(im, lang=lang, psm=7)
    return " ".join(x.text for x in words)


def _textured(gray: np.ndarray | None, b: _Box) -> bool:
    """Whether a box lies on image texture rather than on a flat background.

    Burned-in text sits on a flat field; OCR "words" found in ultrasound
    speckle or bone trabeculae sit on texture. The test looks at thin bands
    just above and below the box (no glyphs of the word there) and measures
    their spread robustly (median absolute deviation).
    """
    if gray is None:
        return False
    h, w = gray.shape
    x0, x1 = max(0, b.x0), min(w, b.x1)
    bands = [gray[max(0, b.y0 - 6) : max(0, b.y0 - 2), x0:x1], gray[min(h, b.y1 + 2) : min(h, b.y1 + 6), x0:x1]]
    px_ = np.concatenate([band.ravel() for band in bands]).astype(np.float32) if bands else np.zeros(0)
    if px_.size < 12:
        return False
    mad = float(np.median(np.abs(px_ - np.median(px_))))
    return mad > TEXTURE_MAD


def _boxes_to_redact(boxes: list[_Box], matcher: _PhiMatcher, gray: np.ndarray | None = None, lang: str = "eng") -> list[_Box]:
    """Boxes that must go: PHI (any confidence) or confident text that is not a safe annotation."""
    phi = _phi_boxes(boxes, matcher)
    safe = _safe_boxes(boxes, phi)
    out: list[_Box] = []
    for b in boxes:
        alnum = sum(c.isalnum() for c in b.text)
        if id(b) in phi:
            out.append(b)
        elif id(b) in safe:
            continue
        elif b.conf >= REDACT_CONF and alnum >= 2 or b.conf >= 85 and alnum >= 1:
            if b.y1 - b.y0 < MIN_TEXT_HEIGHT:
                continue  # too small to be legible text
            if b.conf < 90 and _textured(gray, b) and (b.conf < 65 or alnum < 4):
                continue  # a "word" read in image texture, not drawn text
            if alnum <= 4 and b.conf < 90:
                again = _second_opinion(gray, b, lang)
                if again is not None and again.strip() and all(is_safe_annotation(t) for t in again.split()):
                    if not any(matcher.word_is_phi(t) for t in again.split()):
                        continue
            out.append(b)
    return out


def _intersection(a: _Box, b: _Box) -> int:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0


def _still_readable(boxes: list[_Box], matcher: _PhiMatcher, gray: np.ndarray | None = None, lang: str = "eng") -> list[_Box]:
    """What makes the re-check fail: PHI, or confident real words that are not safe."""
    phi = _phi_boxes(boxes, matcher)
    safe = _safe_boxes(boxes, phi)
    suspects = [
        b
        for b in boxes
        if id(b) in phi or id(b) not in safe and b.conf >= RESIDUAL_CONF and sum(c.isalnum() for c in b.text) >= 3
    ]
    keep = {id(b) for b in _boxes_to_redact(suspects, matcher, gray, lang)} if suspects else set()
    return [b for b in suspects if id(b) in keep]


# --------------------------------------------------------------- pixels


def _frames_view(arr: np.ndarray, n_frames: int, samples: int) -> np.ndarray:
    """Always (frames, rows, cols[, samples])."""
    if n_frames == 1 and arr.ndim == (3 if samples > 1 else 2):
        return arr[np.newaxis, ...]
    return arr


def _black_value(arr: np.ndarray, photometric: str) -> Any:
    if photometric == "MONOCHROME1":
        return arr.max() if arr.size else 0
    return arr.min() if arr.size and arr.ndim and photometric.startswith("MONOCHROME") else 0


def _grow(gray: np.ndarray, boxes: list[_Box]) -> list[_Box]:
    """Extend redaction to glyphs chained to a redacted box.

    OCR boxes can miss the end of a tilted or partly read word ("QUINTERO
    ALVAREZ" read as "QUINTERO"); the glyphs left over are ink blobs next
    to the box. Connected components of ink (saturated, or dark on a bright
    image) of glyph size that chain to a redacted box, within a few line
    heights of it, are redacted too.
    """
    if not boxes:
        return []
    from scipy import ndimage

    bright_ink, dark_ink = _ink_masks(gray)
    ink = bright_ink | dark_ink if float(np.mean(gray)) >= 128 else bright_ink
    lab, n = ndimage.label(ink, structure=np.ones((3, 3), bool))
    if n == 0:
        return []
    objs = ndimage.find_objects(lab)
    comps = np.array([(sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in objs if sl is not None], dtype=np.int64)
    extra: list[_Box] = []
    used = np.zeros(len(comps), bool)
    for b in boxes:
        h = max(4, b.y1 - b.y0)
        lim = (b.x0 - 8 * h, b.y0 - 3 * h, b.x1 + 8 * h, b.y1 + 3 * h)
        cw, ch = comps[:, 2] - comps[:, 0], comps[:, 3] - comps[:, 1]
        cand = (
            ~used
            & (ch <= 2.5 * h)
            & (cw <= 4 * h)
            & (comps[:, 0] >= lim[0])
            & (comps[:, 1] >= lim[1])
            & (comps[:, 2] <= lim[2])
            & (comps[:, 3] <= lim[3])
        )
        region = [(b.x0, b.y0, b.x1, b.y1)]
        gap = 0.6 * h
        while True:
            idx = np.nonzero(cand)[0]
            if idx.size == 0:
                break
            c = comps[idx]
            near = np.zeros(idx.size, bool)
            for x0, y0, x1, y1 in region:
                dx = np.maximum(0, np.maximum(x0 - c[:, 2], c[:, 0] - x1))
                dy = np.maximum(0, np.maximum(y0 - c[:, 3], c[:, 1] - y1))
                near |= (dx <= gap) & (dy <= gap)
            if not near.any():
                break
            for i in idx[near]:
                x0, y0, x1, y1 = (int(v) for v in comps[i])
                region.append((x0, y0, x1, y1))
                extra.append(_Box("", 100.0, x0, y0, x1, y1, (-1, 0, 0)))
            used[idx[near]] = True
            cand[idx[near]] = False
    return extra


def _redact(frame: np.ndarray, boxes: list[_Box], value: Any, margin: int) -> int:
    """Black out boxes (rectangles; the exact quadrilateral for tilted words)."""
    h, w = frame.shape[:2]
    n = 0
    tilted = [b for b in boxes if b.poly]
    if tilted:
        from PIL import Image, ImageDraw

        mask = Image.new("L", (w, h), 0)
        d = ImageDraw.Draw(mask)
        for b in tilted:
            d.polygon(list(b.poly), fill=255, outline=255, width=2 * margin + 1)
        frame[np.asarray(mask) > 0] = value
        n += len(tilted)
    for b in boxes:
        if b.poly:
            continue
        x0, y0 = max(0, b.x0 - margin), max(0, b.y0 - margin)
        x1, y1 = min(w, b.x1 + margin), min(h, b.y1 + margin)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1, ...] = value
            n += 1
    return n


def _decode(ds) -> tuple[np.ndarray, str]:
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing handler, corrupt stream
        raise PixelCleanError("unreadable_pixel_data", f"cannot decode pixel data: {type(exc).__name__}: {exc}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("YBR") and int(ds.get("SamplesPerPixel", 1)) == 3:
        # pydicom converts YBR to RGB when decoding (as_rgb default).
        photometric = "RGB"
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        photometric = "RGB"
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
    return np.array(arr, copy=True), photometric  # writable copy: decoded buffers may be read-only


def _static_overlay(frames: np.ndarray, photometric: str) -> bool:
    """Whether every frame carries the same light/dark ink (text overlay) as the first."""
    ref = _ink_masks(_normalise(frames[0], photometric))
    ref_ink = ref[0] | ref[1]
    if not ref_ink.any():
        return all(not (m[0] | m[1]).any() for m in (_ink_masks(_normalise(f, photometric)) for f in frames[1:]))
    for f in frames[1:]:
        m = _ink_masks(_normalise(f, photometric))
        ink = m[0] | m[1]
        union = np.count_nonzero(ink | ref_ink)
        if union and np.count_nonzero(ink & ref_ink) / union < 0.97:
            return False
    return True


def clean_burned_in(
    ds,
    known_phi: Sequence[str] = (),
    languages: Sequence[str] = ("es", "pt", "en"),
    rotations: Sequence[int] = (0,),
    margin: int = 3,
) -> PixelCleanResult:
    """OCR and redact burned-in text in place; BurnedInAnnotation NO only after a clean re-check.

    Raises :class:`PixelCleanError` (reason codes ``unreadable_pixel_data``,
    ``ocr_failed``, ``burned_in_text_residual``) when the pixels can't be
    cleared; the caller quarantines the file.
    """
    from foundation.ocr import ExtractionError

    arr, photometric = _decode(ds)
    samples = int(ds.get("SamplesPerPixel", 1))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = _frames_view(arr, n_frames, samples)
    n_frames = frames.shape[0]
    # One Tesseract model: burned-in text is short upper-case Latin script,
    # and each extra model costs a full recognition pass (3 packs = ~3x).
    # The first language of the partner decides; fuzzy matching covers accents.
    first = next((x for x in languages if x in ("es", "pt", "en")), "es")
    lang = {"es": "spa", "pt": "por", "en": "eng"}[first]
    matcher = _PhiMatcher(known_phi, languages)
    if n_frames > 1 and _static_overlay(frames, photometric):
        # The same text on every frame (the usual cine loop): read the first
        # and last frames, redact the union everywhere.
        ocr_idx = sorted({0, n_frames - 1})
        static = True
    elif n_frames <= MAX_OCR_FRAMES:
        ocr_idx = list(range(n_frames))
        static = False
    else:
        step = n_frames / MAX_OCR_FRAMES
        ocr_idx = sorted({int(i * step) for i in range(MAX_OCR_FRAMES)} | {n_frames - 1})
        static = True

    def ocr_all(idx: list[int]) -> dict[int, list[_Box]]:
        workers = max(1, min(len(idx), os.cpu_count() or 1))
        try:
            if workers == 1:
                return {i: _ocr_frame(frames[i], photometric, lang, rotations) for i in idx}
            with ThreadPoolExecutor(max_workers=workers) as pool:
                futs = {i: pool.submit(_ocr_frame, frames[i], photometric, lang, rotations) for i in idx}
                return {i: f.result() for i, f in futs.items()}
        except ExtractionError as exc:
            raise PixelCleanError("ocr_failed", exc.message) from exc

    black = _black_value(frames, photometric)
    total_boxes, total_words, passes = 0, 0, 0
    redacted_frames: set[int] = set()
    found = ocr_all(ocr_idx)
    total_words += sum(len(v) for v in found.values())
    passes = 1
    while True:
        if passes == 1:
            todo = {i: _boxes_to_redact(bs, matcher, _normalise(frames[i], photometric), lang) for i, bs in found.items()}
        else:
            # Re-check: only PHI or confident real words fail it.
            readable = {i: _still_readable(bs, matcher, _normalise(frames[i], photometric), lang) for i, bs in found.items()}
            if not any(readable.values()):
                break
            if passes >= MAX_PASSES:
                left = sum(len(v) for v in readable.values())
                raise PixelCleanError(
                    "burned_in_text_residual",
                    f"{left} text box(es) still readable after {passes - 1} redaction round(s)",
                )
            todo = {i: _boxes_to_redact(bs, matcher, _normalise(frames[i], photometric), lang) for i, bs in found.items()}
        dirty = [i for i, bs in todo.items() if bs]
        if not dirty:
            break
        if static:  # sampled cine: overlays are static, redact the union everywhere
            union = [b for i in dirty for b in todo[i] + _grow(_normalise(frames[i], photometric), todo[i])]
            for f in range(n_frames):
                _redact(frames[f], union, black, margin + 2 * (passes - 1))
            redacted_frames.update(range(n_frames))
            total_boxes += len(union)
            check = ocr_idx
        else:
            for i in dirty:
                grown = _grow(_normalise(frames[i], photometric), todo[i])
                total_boxes += _redact(frames[i], todo[i] + grown, black, margin + 2 * (passes - 1))
                redacted_frames.add(i)
            check = dirty
        found = ocr_all(check)
        total_words += sum(len(v) for v in found.values())
        passes += 1
    _store(ds, arr, photometric)
    ds.BurnedInAnnotation = "NO"
    return PixelCleanResult(
        frames=n_frames,
        boxes_redacted=total_boxes,
        ocr_words=total_words,
        passes=passes,
        redacted_frames=sorted(redacted_frames),
        modified=True,
    )


def _store(ds, arr: np.ndarray, photometric: str) -> None:
    """Write the (cleaned) pixels back uncompressed, Explicit VR Little Endian.

    Decoding already undid JPEG/J2K/RLE, and YBR colour came out as RGB, so
    the attributes that describe the encoding are brought in line.
    """
    if arr.dtype.kind == "f":
        raise PixelCleanError("unsupported_pixel_data", "float pixel data")
    bits_alloc = arr.dtype.itemsize * 8
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    ds["PixelData"].VR = "OB" if bits_alloc == 8 else "OW"
    ds.file_meta.TransferSyntaxUID = EXPLICIT_VR_LE
    if photometric == "RGB":
        ds.SamplesPerPixel = 3
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_alloc
    if int(ds.get("BitsStored", 0) or 0) > bits_alloc or "BitsStored" not in ds:
        ds.BitsStored = bits_alloc
    ds.HighBit = int(ds.BitsStored) - 1
    for kw in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths", "RedPaletteColorLookupTableDescriptor",
               "GreenPaletteColorLookupTableDescriptor", "BluePaletteColorLookupTableDescriptor",
               "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData"):
        if kw in ds and (photometric == "RGB" or kw.startswith("Extended")):
            del ds[kw]
