"""Tesseract primitives: one image in, words with their boxes out.

Shared by report text extraction (:mod:`transforms.text_extract`) and the
burned-in pixel cleaner (:mod:`anonymization.pixels`), which is why they live
on the ground floor. One OpenMP thread per tesseract process: on 2 cores the
default threading is ~3x slower (TOOL_NOTES).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

# Tesseract language packs installed by packages.txt.
TESSERACT_LANGS = {"es": "spa", "pt": "por", "en": "eng"}
#: Largest side (pixels) fed to Tesseract; phone photos are downscaled to this.
MAX_OCR_SIDE = 3500
#: Seconds one tesseract call may take before the page is given up.
OCR_TIMEOUT = float(os.environ.get("STA_OCR_TIMEOUT", "180"))


class ExtractionError(Exception):
    """A report file that cannot be turned into text.

    ``reason_code`` is stable and machine-readable (it lands in the
    quarantine ``.reason.json``); ``message`` is for people.
    """

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class Word:
    """One OCR'd word with its box in the pixel space of its page image."""

    text: str
    left: int
    top: int
    width: int
    height: int
    conf: float
    page: int = 0
    line: tuple[int, int, int] = (0, 0, 0)  # (block, paragraph, line) inside the page

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.left, self.top, self.left + self.width, self.top + self.height)


def tesseract_lang(language: str | None) -> str | None:
    """Tesseract ``-l`` value for a known language; None: detect from the first page."""
    if language in TESSERACT_LANGS:
        return TESSERACT_LANGS[language]  # type: ignore[index]
    return None


def prepare_for_ocr(img):  # PIL.Image -> PIL.Image
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    if img.mode != "L":
        img = img.convert("L")
    side = max(img.size)
    if side > MAX_OCR_SIDE:
        scale = MAX_OCR_SIDE / side
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))), Image.LANCZOS)
    return img


def ocr_image(img, lang: str = "spa+por+eng", psm: int = 3, page: int = 0, min_conf: float = -1) -> list[Word]:
    """OCR one image with Tesseract (one thread) and return its words with boxes.

    ``psm`` 3 (automatic layout) suits report pages; 11 (sparse text) suits
    annotations burned into medical images.
    """
    import pytesseract

    # Tesseract inherits our environment: one OpenMP thread per process.
    os.environ["OMP_THREAD_LIMIT"] = os.environ.get("OMP_THREAD_LIMIT") or "1"
    try:
        data = pytesseract.image_to_data(
            img, lang=lang, config=f"--psm {psm}", output_type=pytesseract.Output.DICT, timeout=OCR_TIMEOUT
        )
    except RuntimeError as exc:  # pytesseract raises RuntimeError on timeout
        raise ExtractionError("ocr_timeout", f"tesseract took more than {OCR_TIMEOUT:.0f}s on page {page}") from exc
    except pytesseract.TesseractNotFoundError as exc:
        raise ExtractionError("ocr_unavailable", "tesseract is not installed (see packages.txt)") from exc
    except pytesseract.TesseractError as exc:
        raise ExtractionError("ocr_failed", f"tesseract failed on page {page}: {exc}") from exc
    words: list[Word] = []
    for i, text in enumerate(data["text"]):
        text = (text or "").strip()
        if not text:
            continue
        conf = float(data["conf"][i])
        if conf < min_conf:
            continue
        words.append(
            Word(
                text=text,
                left=int(data["left"][i]),
                top=int(data["top"][i]),
                width=int(data["width"][i]),
                height=int(data["height"][i]),
                conf=conf,
                page=page,
                line=(int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i])),
            )
        )
    return words


def words_to_text(words: Iterable[Word]) -> str:
    """Rebuild reading-order text from Tesseract words (one line per OCR line)."""
    lines: list[str] = []
    current: tuple[int, int, int] | None = None
    block_par: tuple[int, int] | None = None
    buf: list[str] = []
    for w in words:
        if w.line != current:
            if buf:
                lines.append(" ".join(buf))
                buf = []
            if block_par is not None and w.line[:2] != block_par:
                lines.append("")
            current, block_par = w.line, w.line[:2]
        buf.append(w.text)
    if buf:
        lines.append(" ".join(buf))
    return "\n".join(lines)
