"""Burned-in text on one frame: find it, read it, black out what is not known to be safe.

PS3.15 E.3.1 (Clean Pixel Data Option, 113101). A :class:`FrameCleaner`
is built per file (it knows the file's identifying values) and cleans frames
one at a time, so a cine of any length costs one frame of memory:

1. :func:`anonymization.text_regions.find_text_regions` finds the lines of
   probable text (morphology, no OCR) and makes one small OCR image each;
2. each line is read by Tesseract (:mod:`anonymization.ocr_lines`, cached
   by image hash: a static overlay is read once per file);
3. a word is redacted when it is PHI (the file's own values in any
   spelling, or what the report scrubber's recognizers find), or when it is
   confident text that is not a known-safe annotation (L/R markers, units,
   scale numbers, views) -- an allow-list fails closed where OCR misreads;
4. the frame is checked again; only when no PHI or confident unsafe word
   is left is the frame clean. Identical frames (hash of their bytes) are
   decided once.

:func:`clean_burned_in` applies this to a whole pydicom dataset (small
files, tests); :mod:`anonymization.pixel_stream` streams large files frame
by frame through the same :class:`FrameCleaner`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from anonymization.ocr_lines import LineWord, reader
from anonymization.text_regions import Region, find_text_regions, normalise, to_frame

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
    r"|[+-]?\d{1,3}(?:[.,]\d{1,2})?(?:cm|mm|m|s|ms|hz|khz|mhz|db|%|°|x|cm/s|mm/s|fps|bpm|kv|ma|mas)?"  # 5, 12.5, 5cm
    r"|\d{1,3}[x×]\d{1,3})$",
    re.IGNORECASE,
)
#: Words below this OCR confidence are image texture unless they match PHI.
REDACT_CONF = 60.0
#: The re-check fails on PHI, or on a non-safe word this confident with 3+ letters/digits.
RESIDUAL_CONF = 80.0
#: Redaction rounds per frame before the file is given up.
MAX_PASSES = 3
#: Boxes lower than this (pixels) are not legible text unless they match PHI.
MIN_TEXT_HEIGHT = 6
#: Largest frame read for text (pixels): a 6000x6600 radiograph fits; a whole-slide image level
#: does not, and is refused as ``image_too_large`` rather than exhausting the worker's memory.
MAX_FRAME_PIXELS = 40_000_000

_PARTICLES = {"del", "las", "los", "das", "dos", "san", "sao", "the", "and", "von", "van", "der", "hospital", "clinica",
              "centro", "instituto"}


class PixelCleanError(Exception):
    """Pixels that could not be cleared; ``reason`` is the quarantine reason code (no PHI)."""

    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


@dataclass
class PixelCleanResult:
    frames: int
    boxes_redacted: int
    ocr_words: int
    passes: int
    redacted_frames: list[int] = field(default_factory=list)
    modified: bool = False
    distinct_frames: int = 0
    ocr_calls: int = 0


_OCR_LETTERS = str.maketrans("01258", "oizsb")  # digits OCR reads for letters


def is_safe_annotation(word: str) -> bool:
    w = re.sub(r"\s", "", word).upper()
    return not w or w in SAFE_WORDS or bool(_SAFE_RE.match(w)) or w.strip(".,:;") in SAFE_WORDS


_SAFE_LONG = sorted(w for w in SAFE_WORDS if len(w) >= 2 and w.isalnum())


def _near_safe(word: str) -> bool:
    w = re.sub(r"[^0-9A-Z]", "", word.upper())
    return len(w) >= 2 and any(edit1(w, s) for s in _SAFE_LONG)


def edit1(a: str, b: str) -> bool:
    """Levenshtein distance <= 1 (OCR misreads one character)."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        return sum(x != y for x, y in zip(a, b)) <= 1
    if len(a) > len(b):
        a, b = b, a
    return any(b[:i] + b[i + 1 :] == a for i in range(len(b)))


class PhiMatcher:
    """The file's identifying values (fuzzy, for OCR) + the report scrubber's recognizers, on OCR'd lines."""

    def __init__(self, known_phi: Sequence[str], languages: Sequence[str]) -> None:
        from anonymization.text_known import classify, fold

        self.known = classify(known_phi)
        self.fold = fold
        tokens: set[str] = set()
        for k in self.known:
            if k.kind in ("PERSON", "ID", "TEXT"):
                for t in re.split(r"[\s^,.\-/]+", fold(k.value)):
                    t = re.sub(r"[^0-9a-z]", "", t)
                    if len(t) >= 3 and t not in _PARTICLES:
                        tokens.add(t)
        self.tokens = tokens
        self.languages = list(languages) or ["es"]

    def word_is_phi(self, word: str) -> bool:
        w = re.sub(r"[^0-9a-z]", "", self.fold(word))
        if len(w) < 3:
            return False
        # OCR reads letters of a name as digits ("ZZZ" -> "22Z"): compared to names in letters too.
        wa = w.translate(_OCR_LETTERS)
        for t in self.tokens:
            if t in w or (len(w) >= 4 and w in t) or (len(t) >= 5 and edit1(w, t)):
                return True
            if t.isalpha() and wa != w and (t in wa or (len(t) >= 5 and edit1(wa, t))):
                return True
            # A name cut by the banner's width ("PATIENTFI..." read as "PATIENTFT_"): a long shared prefix.
            if t.isalpha() and len(t) >= 6 and len(wa) >= 6 and os.path.commonprefix([wa, t]).__len__() >= 6:
                return True
        return False

    def line_phi_spans(self, text: str) -> list[tuple[int, int]]:
        from anonymization.text_known import find_known

        spans = [(s, e) for _, s, e, _ in find_known(text, self.known)]
        scrubber = _scrubber_for(tuple(self.languages))
        spans += [(f.start, f.end) for f in scrubber.analyze(text, self.languages[0], self.known)]
        return spans


@functools.lru_cache(maxsize=8)
def _scrubber_for(languages: tuple[str, ...]):
    """One pattern-only report scrubber per language set, shared by all files of a worker."""
    from anonymization.text_phi import TextScrubber

    return TextScrubber(list(languages), use_ner=False)


def ocr_language(languages: Sequence[str]) -> str:
    """One Tesseract model: burned-in text is short upper-case Latin script, each extra model a full pass."""
    first = next((x for x in languages if x in ("es", "pt", "en")), "es")
    return {"es": "spa", "pt": "por", "en": "eng"}[first]


@dataclass
class _Read:
    region: Region
    angle: float
    words: list[LineWord]


def black_value(photometric: str, dtype: np.dtype, bits_stored: int | None = None) -> Any:
    """The displayed-darkest stored value (MONOCHROME1: the largest)."""
    if photometric == "MONOCHROME1":
        if np.issubdtype(dtype, np.integer):
            bits = bits_stored or np.dtype(dtype).itemsize * 8
            return (1 << bits) - 1 if np.issubdtype(dtype, np.unsignedinteger) else (1 << (bits - 1)) - 1
        return 1.0
    if photometric.startswith("YBR"):
        return (0, 128, 128)
    if np.issubdtype(dtype, np.signedinteger):
        bits = bits_stored or np.dtype(dtype).itemsize * 8
        return -(1 << (bits - 1))
    return 0


class FrameCleaner:
    """Cleans the frames of one file; remembers decisions by frame hash."""

    def __init__(
        self,
        known_phi: Sequence[str] = (),
        languages: Sequence[str] = ("es", "pt", "en"),
        *,
        margin: int = 3,
        black: Any = 0,
    ) -> None:
        self.matcher = PhiMatcher(known_phi, languages)
        self.reader = reader(ocr_language(languages))
        self.margin = margin
        self.black = black
        self._decided: dict[bytes, list[tuple[str, Any]]] = {}  # frame hash -> redaction ops
        self._verdicts: dict[tuple[str, float, bool], list[int]] = {}  # line image -> words to redact
        self.frames = self.distinct = self.boxes = self.words = 0
        self.passes = 1
        self.redacted: list[int] = []
        self._calls0 = self.reader.calls
        self.last_ops: list[tuple[str, Any]] = []

    # -- reading ----------------------------------------------------------------
    def _read(self, g: np.ndarray) -> list[_Read]:
        out = []
        for r in find_text_regions(g):
            best: tuple[float, float, list[LineWord]] | None = None
            for angle in r.angles:
                conf, words = self.reader.read(r.image, r.key, angle)  # type: ignore[arg-type]
                if best is None or conf > best[0]:
                    best = (conf, angle, words)
            assert best is not None
            self.words += len(best[2])
            out.append(_Read(r, best[1], best[2]))
        return out

    def _phi_words(self, rd: _Read) -> set[int]:
        phi: set[int] = set()
        text, starts = "", []
        for w in rd.words:
            starts.append(len(text))
            text += w.text + " "
        if text.strip():
            for s, e in self.matcher.line_phi_spans(text):
                for k, (w, st) in enumerate(zip(rd.words, starts)):
                    if st < e and st + len(w.text) > s:
                        phi.add(k)
        for k, w in enumerate(rd.words):
            if self.matcher.word_is_phi(w.text):
                phi.add(k)
        return phi

    def _word_height(self, rd: _Read, w: LineWord) -> float:
        return (w.box[3] - w.box[1]) / rd.region.scale

    def _to_redact(self, rd: _Read, strict: bool) -> list[int]:
        """Words that must go. ``strict`` (first pass): confident unsafe text too; re-check: stronger evidence.

        Decided once per line image per file (a static overlay on 1000 frames is judged once).
        """
        vk = (rd.region.key, rd.angle, strict)
        hit = self._verdicts.get(vk)
        if hit is None:
            hit = self._verdicts[vk] = self._judge(rd, strict)
        return hit

    def _judge(self, rd: _Read, strict: bool) -> list[int]:
        phi = self._phi_words(rd)
        out = []
        for k, w in enumerate(rd.words):
            alnum = sum(c.isalnum() for c in w.text)
            if k in phi:
                out.append(k)
            elif is_safe_annotation(w.text) or self._word_height(rd, w) < MIN_TEXT_HEIGHT:
                continue
            elif w.conf < 85 and alnum <= 4 and _near_safe(w.text):
                continue  # a short marker misread by one character ("Mil" for MI), and not PHI
            elif strict and (w.conf >= REDACT_CONF and alnum >= 2 or w.conf >= 85 and alnum >= 1):
                out.append(k)
            elif not strict and w.conf >= RESIDUAL_CONF and alnum >= 3:
                out.append(k)
        return out

    # -- redaction ------------------------------------------------------------------
    def _ops(self, reads: list[_Read], strict: bool, grow: int) -> list[tuple[str, Any]]:
        ops: list[tuple[str, Any]] = []
        m = self.margin + grow
        for rd in reads:
            bad = self._to_redact(rd, strict)
            if not bad:
                continue
            r = rd.region
            readable = [k for k, w in enumerate(rd.words) if sum(c.isalnum() for c in w.text)]
            if set(readable) <= set(bad):
                # the whole line goes: every glyph of it, with a margin
                gx0 = min(b[0] for b in r.glyphs)
                gy0 = min(b[1] for b in r.glyphs)
                gx1 = max(b[2] for b in r.glyphs)
                gy1 = max(b[3] for b in r.glyphs)
                ops.append(("rect", (gx0 - m, gy0 - m, gx1 + m, gy1 + m)))
                continue
            for k in bad:
                poly = to_frame(r, rd.words[k].box, rd.angle)
                xs, ys = [p[0] for p in poly], [p[1] for p in poly]
                ops.append(("poly", poly))
                # glyphs the word box cuts through go whole
                for b in r.glyphs:
                    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
                    if min(xs) <= cx <= max(xs) and min(ys) <= cy <= max(ys):
                        ops.append(("rect", (b[0] - m, b[1] - m, b[2] + m, b[3] + m)))
        return ops

    def _apply(self, frame: np.ndarray, ops: list[tuple[str, Any]]) -> None:
        self._apply_ops(frame, ops, self.margin, self.black)

    @staticmethod
    def _apply_ops(frame: np.ndarray, ops: list[tuple[str, Any]], margin: int, black: Any) -> None:
        """Black out the redaction operations (rectangles; polygons for words read tilted)."""
        h, w = frame.shape[:2]
        polys = [o[1] for o in ops if o[0] == "poly"]
        if polys:
            from PIL import Image, ImageDraw

            mask = Image.new("L", (w, h), 0)
            d = ImageDraw.Draw(mask)
            for p in polys:
                d.polygon(p, fill=255, outline=255, width=2 * margin + 1)
            frame[np.asarray(mask) > 0] = black
        for kind, box in ops:
            if kind == "rect":
                x0, y0, x1, y1 = (int(v) for v in box)
                x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
                if x1 > x0 and y1 > y0:
                    frame[y0:y1, x0:x1, ...] = black

    def clean(self, frame: np.ndarray, photometric: str, index: int | None = None, *, audit: bool = False) -> bool:
        """Clean ``frame`` in place (a writable array); True when it was changed.

        ``photometric`` says how to display it (MONOCHROME1/2, RGB; YBR and
        palette frames are passed as their RGB rendering by the caller with a
        matching ``black``). ``audit``: only look; raise
        ``burned_in_text_audit`` on PHI or confident unsafe text.
        Raises :class:`PixelCleanError` ``burned_in_text_residual`` when text
        stays readable after :data:`MAX_PASSES` rounds.
        """
        self.frames += 1
        if frame.shape[0] * frame.shape[1] > MAX_FRAME_PIXELS:
            raise PixelCleanError("image_too_large", f"frame of {frame.shape[0]}x{frame.shape[1]} pixels")
        digest = hashlib.blake2b(np.ascontiguousarray(frame).data, digest_size=16).digest()
        ops = self._decided.get(digest)
        if ops is None:
            self.distinct += 1
            ops = self._decide(frame, photometric, audit)
            self._decided[digest] = ops
        self.last_ops = ops
        if ops:
            self._apply(frame, ops)
            self.boxes += len(ops)
            if index is not None:
                self.redacted.append(index)
            return True
        return False

    def _decide(self, frame: np.ndarray, photometric: str, audit: bool) -> list[tuple[str, Any]]:
        reads = self._read(normalise(frame, photometric))
        ops = self._ops(reads, strict=True, grow=0)
        if audit:
            if ops:
                raise PixelCleanError("burned_in_text_audit", "the OCR audit found text on pixels the risk rule called safe")
            return []
        if not ops:
            return []
        work = frame.copy()
        all_ops = list(ops)
        self._apply(work, ops)
        for rnd in range(1, MAX_PASSES + 1):
            # Re-check: only PHI or confident real words fail it.
            again = self._ops(self._read(normalise(work, photometric)), strict=False, grow=2 * rnd)
            self.passes = max(self.passes, rnd + 1)
            if not again:
                return all_ops
            if rnd == MAX_PASSES:
                raise PixelCleanError(
                    "burned_in_text_residual", f"{len(again)} text box(es) still readable after {rnd} redaction round(s)"
                )
            self._apply(work, again)
            all_ops += again
        return all_ops

    def result(self) -> PixelCleanResult:
        return PixelCleanResult(
            frames=self.frames,
            boxes_redacted=self.boxes,
            ocr_words=self.words,
            passes=self.passes,
            redacted_frames=sorted(set(self.redacted)),
            modified=bool(self.redacted),
            distinct_frames=self.distinct,
            ocr_calls=self.reader.calls - self._calls0,
        )


# ------------------------------------------------------------------ whole dataset


def display_rgb(frame: np.ndarray, photometric: str) -> tuple[np.ndarray, str]:
    """What to read for text: YBR frames as RGB (a view for OCR only, never written)."""
    if photometric.startswith("YBR") and frame.ndim == 3:
        from pydicom.pixels import convert_color_space

        return convert_color_space(frame, photometric, "RGB"), "RGB"
    return frame, photometric


def _decode(ds) -> tuple[np.ndarray, str]:
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing handler, corrupt stream
        raise PixelCleanError("unreadable_pixel_data", f"cannot decode pixel data: {type(exc).__name__}") from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric.startswith("YBR") and int(ds.get("SamplesPerPixel", 1)) == 3:
        photometric = "RGB"  # pydicom converts YBR to RGB when decoding (as_rgb default)
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        photometric = "RGB"
        if arr.dtype != np.uint8:
            arr = (arr >> 8).astype(np.uint8)
    return np.array(arr, copy=True), photometric  # writable copy: decoded buffers may be read-only


def clean_burned_in(
    ds,
    known_phi: Sequence[str] = (),
    languages: Sequence[str] = ("es", "pt", "en"),
    rotations: Sequence[int] = (0,),
    margin: int = 3,
) -> PixelCleanResult:
    """OCR-check every frame of a dataset and redact burned-in text in place.

    BurnedInAnnotation becomes NO only after every frame was checked clean;
    changed pixels are written back uncompressed (Explicit VR Little Endian).
    Raises :class:`PixelCleanError` (``unreadable_pixel_data``,
    ``burned_in_text_residual``, ``unsupported_pixel_data``).
    ``rotations`` is accepted for callers of the former API: vertical text
    is now found by the region detector.
    """
    del rotations
    arr, photometric = _decode(ds)
    if arr.dtype.kind == "f":
        raise PixelCleanError("unsupported_pixel_data", "float pixel data")
    # A PALETTE COLOR image is read as RGB (3 samples) although its header says 1 sample:
    # counted from the decoded photometric, else its 480 rows were taken for 480 frames.
    samples = 3 if photometric == "RGB" else int(ds.get("SamplesPerPixel", 1))
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = arr[np.newaxis, ...] if n_frames == 1 and arr.ndim == (3 if samples > 1 else 2) else arr
    bits = int(ds.get("BitsStored", 0) or 0) or None
    cleaner = FrameCleaner(known_phi, languages, margin=margin, black=black_value(photometric, frames.dtype, bits))
    for i in range(frames.shape[0]):
        cleaner.clean(frames[i], photometric, i)
    res = cleaner.result()
    if res.modified:
        _store(ds, arr, photometric)
    ds.BurnedInAnnotation = "NO"
    return res


def _store(ds, arr: np.ndarray, photometric: str) -> None:
    """Write cleaned pixels back uncompressed, Explicit VR Little Endian (decoding undid JPEG/J2K/RLE)."""
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
               "RedPaletteColorLookupTableData", "GreenPaletteColorLookupTableData", "BluePaletteColorLookupTableData",
               "SegmentedRedPaletteColorLookupTableData", "SegmentedGreenPaletteColorLookupTableData",
               "SegmentedBluePaletteColorLookupTableData", "PaletteColorLookupTableUID"):
        if kw in ds and (photometric == "RGB" or kw.startswith("Extended")):
            del ds[kw]
