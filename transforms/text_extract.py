"""Text of diagnosis reports: plain text, RTF, PDF text layers and OCR.

Reports reach STA as ``.txt`` in whatever encoding the hospital's system
writes (UTF-8, Latin-1, Windows-1252), RTF exported from word processors,
PDFs with a text layer, scanned PDFs and photos of paper. Everything a later
stage needs -- the text, its language, which pages were OCR'd and the word
boxes -- comes out of one call, :func:`extract_text`, so the PHI scrubber and
the pipeline never touch file formats.

Design choices, and why:

* **OCR per page, only where needed.** A PDF page whose text layer carries
  real text is read from the layer (exact, ~1000x faster than OCR); a page
  with (almost) no text layer is rendered and OCR'd. A scanned PDF and a
  born-digital one therefore cost what they must and no more.
* **One OCR thread per process, pages in parallel.** Tesseract's OpenMP
  threads make it ~3x slower on 2 cores (TOOL_NOTES); each page is one
  ``tesseract`` process with ``OMP_THREAD_LIMIT=1`` and pages run side by
  side from a thread pool (threads only wait on the child processes).
* **Fail with a reason code.** Bad input raises :class:`ExtractionError` with
  a stable ``reason_code`` ("pdf_encrypted", "image_corrupt", ...); the
  pipeline quarantines the file with that reason and carries on.
"""

from __future__ import annotations

import io
import os
import re
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from foundation.ocr import (  # noqa: F401 - re-exported: callers read them from here
    MAX_OCR_SIDE,
    OCR_TIMEOUT,
    TESSERACT_LANGS,
    ExtractionError,
    Word,
    ocr_image,
    prepare_for_ocr,
    tesseract_lang,
    words_to_text,
)

LANGUAGES = ("es", "pt", "en")

TEXT_SUFFIXES = {".txt", ".text"}
RTF_SUFFIXES = {".rtf"}
PDF_SUFFIXES = {".pdf"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}

#: A page whose text layer has fewer letters/digits than this is OCR'd.
MIN_LAYER_CHARS = 20
#: Default page limit: a 500-page "report" is a misfiled document, not a report.
DEFAULT_MAX_PAGES = int(os.environ.get("STA_MAX_REPORT_PAGES", "100"))
#: Render resolution for PDF pages that need OCR.
RENDER_DPI = 300


@dataclass
class ExtractedText:
    text: str
    language: str
    source_format: str  # txt | rtf | pdf | image
    pages: int
    ocr_pages: list[int] = field(default_factory=list)  # 0-based page numbers
    page_texts: list[str] = field(default_factory=list)
    words: list[Word] = field(default_factory=list)


# --------------------------------------------------------------------------
# Language detection
# --------------------------------------------------------------------------

# Function words and report vocabulary that separate the three languages.
# A stop-word vote is enough here: reports are long enough, the three
# languages are few, and it needs no model download.
_STOPWORDS: dict[str, frozenset[str]] = {
    "es": frozenset(
        "el la los las del de y que en con por para se una un es son sin no hay "
        "paciente hallazgos estudio derecho izquierdo derecha izquierda también "
        "pero como este esta sus tiene presenta informe fecha médico nombre "
        "lesión imágenes tamaño signos conclusión impresión diagnóstica".split()
    ),
    "pt": frozenset(
        "o a os as do da dos das e que em no na nos nas com por para se uma um é "
        "são sem não há paciente achados estudo direito esquerdo direita esquerda "
        "também mas como este esta seus tem apresenta laudo data médico nome "
        "lesão imagens tamanho sinais conclusão impressão diagnóstica ao pelo pela".split()
    ),
    "en": frozenset(
        "the of and to in with by for is are no not there patient findings study "
        "right left also but as this these has have shows report date physician "
        "name lesion images size signs conclusion impression was were at on an a".split()
    ),
}
_WORD_RE = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str, default: str = "es", candidates: Sequence[str] = LANGUAGES) -> str:
    """Return "es", "pt" or "en" by a stop-word vote; ``default`` when no signal."""
    scores = {lang: 0.0 for lang in candidates}
    for w in _WORD_RE.findall(text[:20000].lower()):
        for lang in candidates:
            if w in _STOPWORDS[lang]:
                scores[lang] += 1
        # Orthography that belongs to one language only.
        if "ção" in w or "ções" in w or "ã" in w or "õ" in w or w.endswith("lh"):
            if "pt" in scores:
                scores["pt"] += 2
        if "ñ" in w or w.endswith("ción") or w.endswith("ciones"):
            if "es" in scores:
                scores["es"] += 2
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= 2 else default


# --------------------------------------------------------------------------
# Plain text and RTF
# --------------------------------------------------------------------------

# Characters expected in es/pt/en report text once decoded. Anything else in a
# large share means the bytes were decoded with the wrong table.
_EXPECTED_EXTRA = set("áéíóúàèìòùâêîôûãõäëïöüçñÁÉÍÓÚÀÈÌÒÙÂÊÎÔÛÃÕÄËÏÖÜÇÑºª°¿¡«»“”‘’–—…•·€±×µ²³½¼¾§")


def _plausible(text: str) -> float:
    """Share of characters that are ordinary in es/pt/en text (1.0 = all)."""
    if not text:
        return 1.0
    good = 0
    for ch in text:
        if ch.isascii():
            good += ch.isprintable() or ch in "\t\n\r\f"
        else:
            good += ch in _EXPECTED_EXTRA
    return good / len(text)


def decode_text(data: bytes) -> str:
    """Decode report bytes: BOMs, then UTF-8, then Windows-1252, then Latin-1.

    Windows-1252 is tried before Latin-1 because Windows systems write it and
    its 0x80-0x9F range holds typographic quotes and dashes, which Latin-1
    would turn into control characters. A decode whose result is mostly
    unexpected characters (UTF-16 without BOM, EBCDIC, binary) is refused
    with ``text_encoding`` rather than published as mojibake.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ["utf-8-sig"]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ["utf-16"]
    else:
        candidates = ["utf-8", "cp1252", "latin-1"]
        # UTF-16 without a BOM: every other byte NUL in ASCII-heavy text.
        sample = data[:4000]
        if sample and sample.count(b"\x00") > len(sample) // 4:
            even_nuls = sample[0::2].count(0)
            odd_nuls = sample[1::2].count(0)
            candidates = ["utf-16-le"] if odd_nuls > even_nuls else ["utf-16-be"]
    last_err: Exception | None = None
    for enc in candidates:
        try:
            text = data.decode(enc)
        except UnicodeDecodeError as exc:
            last_err = exc
            continue
        if "\x00" in text or _plausible(text) < 0.97:
            last_err = ValueError(f"decoded as {enc} but {1 - _plausible(text):.0%} unexpected characters")
            continue
        return unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    raise ExtractionError("text_encoding", f"not UTF-8, Windows-1252 or Latin-1 text ({last_err})")


def rtf_to_text(raw: str) -> str:
    """Plain text of an RTF document (striprtf, with a code page from \\ansicpg)."""
    from striprtf.striprtf import rtf_to_text as _strip

    m = re.search(r"\\ansicpg(\d+)", raw[:2000])
    encoding = f"cp{m.group(1)}" if m else "cp1252"
    try:
        "".encode(encoding)
    except LookupError:
        encoding = "cp1252"
    return _strip(raw, encoding=encoding, errors="replace")


# --------------------------------------------------------------------------
# OCR
# --------------------------------------------------------------------------


def _ocr_pages(images: Sequence, lang: str | None, page_numbers: Sequence[int]) -> list[list[Word]]:
    """OCR several page images side by side, one tesseract process each.

    ``lang`` None (language unknown): the first page is read with the Spanish
    model (most partners), its language detected, and -- only if it is
    Portuguese or English -- read again with that model; the other pages use
    the detected one. That costs one extra page for pt/en instead of running
    three models on every page (~3x).
    """
    if lang is None:
        if not images:
            return []
        first_img = prepare_for_ocr(images[0])
        first = ocr_image(first_img, lang="spa", page=page_numbers[0])
        detected = detect_language(words_to_text(first), default="es")
        lang = TESSERACT_LANGS[detected]
        if detected != "es":
            first = ocr_image(first_img, lang=lang, page=page_numbers[0])
        return [first] + (_ocr_pages(images[1:], lang, page_numbers[1:]) if len(images) > 1 else [])
    workers = max(1, min(len(images), os.cpu_count() or 1))
    prepared = [prepare_for_ocr(im) for im in images]
    if workers == 1:
        return [ocr_image(im, lang=lang, page=p) for im, p in zip(prepared, page_numbers)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(ocr_image, im, lang, 3, p) for im, p in zip(prepared, page_numbers)]
        return [f.result() for f in futures]


# --------------------------------------------------------------------------
# Formats
# --------------------------------------------------------------------------


def _count_alnum(s: str) -> int:
    return sum(ch.isalnum() for ch in s)


def _extract_pdf(path: Path, lang_hint: str | None, max_pages: int) -> ExtractedText:
    import pypdf
    from pypdf.errors import FileNotDecryptedError, PdfReadError

    try:
        reader = pypdf.PdfReader(str(path))
        if reader.is_encrypted:
            # PDFs "encrypted" with an empty user password (print/copy
            # restrictions only) open without a password; others can't.
            try:
                ok = reader.decrypt("")
            except Exception as exc:  # noqa: BLE001 - unsupported algorithm etc.
                raise ExtractionError("pdf_encrypted", f"cannot decrypt: {exc}") from exc
            if not ok:
                raise ExtractionError("pdf_encrypted", "the PDF needs a password")
        n = len(reader.pages)
    except ExtractionError:
        raise
    except FileNotDecryptedError as exc:
        raise ExtractionError("pdf_encrypted", str(exc)) from exc
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ExtractionError("pdf_corrupt", f"unreadable PDF: {exc}") from exc
    if n == 0:
        raise ExtractionError("pdf_no_pages", "the PDF has no pages")
    if n > max_pages:
        raise ExtractionError("pdf_too_many_pages", f"{n} pages (limit {max_pages})")

    page_texts: list[str] = []
    need_ocr: list[int] = []
    for i, page in enumerate(reader.pages):
        try:
            t = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - a broken content stream: OCR the page instead
            t = ""
        page_texts.append(t)
        if _count_alnum(t) < MIN_LAYER_CHARS:
            need_ocr.append(i)

    words: list[Word] = []
    if need_ocr:
        images = [_render_pdf_page(path, reader, i) for i in need_ocr]
        lang = tesseract_lang(lang_hint)
        for i, page_words in zip(need_ocr, _ocr_pages(images, lang, need_ocr)):
            page_texts[i] = words_to_text(page_words)
            words.extend(page_words)
    text = "\n\f\n".join(t.strip("\n") for t in page_texts)
    return ExtractedText(
        text=text,
        language=_language(text, lang_hint),
        source_format="pdf",
        pages=n,
        ocr_pages=need_ocr,
        page_texts=page_texts,
        words=words,
    )


def _render_pdf_page(path: Path, reader, index: int):
    """Render one PDF page to a PIL image (pdfium), or take its largest image."""
    try:
        import pypdfium2 as pdfium
    except ImportError:  # pragma: no cover - pypdfium2 is in requirements
        pdfium = None
    if pdfium is not None:
        try:
            doc = pdfium.PdfDocument(str(path))
            try:
                page = doc[index]
                w_pt, h_pt = page.get_size()
                # 300 dpi, but never a bitmap larger than Tesseract needs
                # (a poster-sized page would otherwise take gigabytes).
                scale = min(RENDER_DPI / 72, MAX_OCR_SIDE / max(w_pt, h_pt, 1.0))
                bitmap = page.render(scale=scale, grayscale=True)
                return bitmap.to_pil()
            finally:
                doc.close()
        except Exception as exc:  # noqa: BLE001 - fall back to embedded images
            last = exc
    else:
        last = None
    try:
        imgs = list(reader.pages[index].images)
    except Exception as exc:  # noqa: BLE001
        raise ExtractionError("pdf_corrupt", f"page {index}: cannot render or read images: {exc}") from exc
    if not imgs:
        from PIL import Image

        if last is not None:
            raise ExtractionError("pdf_corrupt", f"page {index}: cannot render: {last}")
        return Image.new("L", (10, 10), 255)
    return max((im.image for im in imgs), key=lambda im: im.width * im.height)


def _open_image_pages(path: Path, max_pages: int) -> list:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = 120_000_000  # ~ an A4 page at 1200 dpi; larger is a bomb
    try:
        with Image.open(path) as probe:
            probe.verify()
        img = Image.open(path)
        pages = []
        for i, frame in enumerate(ImageSequence.Iterator(img)):
            if i >= max_pages:
                raise ExtractionError("image_too_many_pages", f"more than {max_pages} frames")
            frame.load()
            pages.append(frame.copy())
        if not pages or pages[0].width < 2 or pages[0].height < 2:
            raise ExtractionError("image_corrupt", "no usable frame")
        return pages
    except ExtractionError:
        raise
    except Image.DecompressionBombError as exc:
        raise ExtractionError("image_too_large", str(exc)) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ExtractionError("image_corrupt", f"cannot decode image: {exc}") from exc


def _extract_image(path: Path, lang_hint: str | None, max_pages: int) -> ExtractedText:
    pages = _open_image_pages(path, max_pages)
    numbers = list(range(len(pages)))
    results = _ocr_pages(pages, tesseract_lang(lang_hint), numbers)
    page_texts = [words_to_text(ws) for ws in results]
    text = "\n\f\n".join(page_texts)
    return ExtractedText(
        text=text,
        language=_language(text, lang_hint),
        source_format="image",
        pages=len(pages),
        ocr_pages=numbers,
        page_texts=page_texts,
        words=[w for ws in results for w in ws],
    )


def _language(text: str, lang_hint: str | None) -> str:
    """The detected language when the text says so clearly, else the hint."""
    default = lang_hint if lang_hint in LANGUAGES else "es"
    return detect_language(text, default=default)  # type: ignore[arg-type]


def sniff_format(path: Path, head: bytes) -> str:
    """Format from magic bytes first (partners misname files), then suffix."""
    if head.startswith(b"%PDF"):
        return "pdf"
    if head.startswith(b"{\\rtf"):
        return "rtf"
    if head[:8] == b"\x89PNG\r\n\x1a\n" or head[:3] == b"\xff\xd8\xff" or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:6] in (b"GIF87a", b"GIF89a") or head[:2] == b"BM" and path.suffix.lower() == ".bmp":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    suffix = path.suffix.lower()
    if suffix in PDF_SUFFIXES:
        return "pdf"
    if suffix in RTF_SUFFIXES:
        return "rtf"
    if suffix in IMAGE_SUFFIXES:
        return "image"
    return "txt"


def extract_text(path: Path, lang_hint: str | None = None, max_pages: int = DEFAULT_MAX_PAGES) -> ExtractedText:
    """Text, language, page count, OCR'd pages and word boxes of one report file.

    ``lang_hint`` ("es"|"pt"|"en", usually the partner's report language)
    picks the Tesseract pack; the returned ``language`` is detected from the
    text and falls back to the hint. Raises :class:`ExtractionError`.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
        size = path.stat().st_size
    except OSError as exc:
        raise ExtractionError("unreadable", f"{path.name}: {exc}") from exc
    if size == 0:
        raise ExtractionError("empty_file", f"{path.name} is empty")
    fmt = sniff_format(path, head)
    if fmt == "pdf":
        return _extract_pdf(path, lang_hint, max_pages)
    if fmt == "image":
        return _extract_image(path, lang_hint, max_pages)
    if size > 20_000_000:
        raise ExtractionError("text_too_large", f"{size} bytes is not a report")
    data = path.read_bytes()
    text = decode_text(data)
    if fmt == "rtf":
        try:
            text = rtf_to_text(text)
        except Exception as exc:  # noqa: BLE001 - malformed RTF
            raise ExtractionError("rtf_corrupt", f"cannot parse RTF: {exc}") from exc
    pages = text.split("\f") if "\f" in text else [text]
    return ExtractedText(
        text=text,
        language=_language(text, lang_hint),
        source_format=fmt,
        pages=len(pages),
        ocr_pages=[],
        page_texts=pages,
        words=[],
    )


def image_bytes_to_pil(data: bytes):
    """Small helper for callers holding image bytes (e.g. DICOM-embedded JPEG)."""
    from PIL import Image

    return Image.open(io.BytesIO(data))
