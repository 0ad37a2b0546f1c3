"""Encapsulated documents (PS3.3 A.45 Encapsulated PDF, A.85 Encapsulated CDA): scrubbed, kept readable.

A report stored as a DICOM Encapsulated PDF carries the patient's name,
ID and dates in its text like any report. Emptying the document publishes
a file with nothing in it (a loss that looks like a success); copying it
leaks. So the document is read, scrubbed with the same report scrubber as
every other report (:class:`anonymization.text_phi.TextScrubber`:
surrogates, dates shifted by the patient's offset) and written back:

* **PDF**: the text of each page (text layer via pypdf; a page without one
  is rendered with pypdfium2 and OCR'd) is scrubbed and typeset into a new
  PDF with fpdf2, one page per page. Layout, images and fonts of the
  original are not kept -- they are where PHI hides (letterheads, scanned
  signatures, metadata, form fields, attachments, incremental updates).
* **CDA** (HL7 CDA R2, ``text/xml``): every text node and attribute value
  is scrubbed in place; the XML stays a valid CDA document.

Anything that cannot be done raises :class:`DocumentError` with a stable
reason (the caller quarantines): ``pdf_encrypted``, ``pdf_corrupt``,
``document_no_text`` (nothing readable: publishing it empty is refused),
``document_residual`` (a known value survived scrubbing),
``document_unsupported`` (another MIME type).
"""

from __future__ import annotations

import datetime as dt
import io
from typing import Sequence

PDF, CDA = "application/pdf", "text/xml"
MAX_PAGES = 100


class DocumentError(Exception):
    def __init__(self, reason: str, message: str = "") -> None:
        super().__init__(f"{reason}: {message}" if message else reason)
        self.reason = reason
        self.message = message


def _scrubber(languages: tuple[str, ...]):
    from anonymization.ocr_redact import _scrubber_for

    return _scrubber_for(languages)


def _language(text: str, languages: Sequence[str]) -> str:
    """The document's language among the partner's, by a stop-word vote (cheap, no model)."""
    votes = {"es": (" el ", " los ", " del ", " con ", " sin "), "pt": (" não ", " sem ", " dos ", " com ", " ção"),
             "en": (" the ", " with ", " and ", " of ", " no ")}
    low = f" {text.lower()} "
    cands = [lang for lang in languages if lang in votes] or ["es"]
    return max(cands, key=lambda lang: sum(low.count(w) for w in votes[lang]))


def _scrub(text: str, known_phi: Sequence[str], languages: Sequence[str], offset: dt.timedelta | None) -> str:
    langs = tuple(languages) or ("es",)
    result = _scrubber(langs).scrub(text, _language(text, langs), list(known_phi), date_offset=offset)
    if result.residual:
        raise DocumentError("document_residual", f"{len(result.residual)} known value(s) left after scrubbing")
    return result.text


def pdf_pages(data: bytes) -> list[str]:
    """Text of each page: the text layer, or OCR of the rendered page when it has none."""
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise DocumentError("pdf_encrypted", "encrypted PDF")
        pages = list(reader.pages)
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError("pdf_corrupt", type(exc).__name__) from exc
    if len(pages) > MAX_PAGES:
        raise DocumentError("pdf_too_many_pages", f"{len(pages)} pages")
    texts = []
    for i, page in enumerate(pages):
        try:
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - a damaged content stream: OCR the rendering instead
            text = ""
        if sum(c.isalnum() for c in text) < 20:
            text = _ocr_page(data, i) or text
        texts.append(text)
    return texts


def _ocr_page(data: bytes, index: int) -> str:
    import pypdfium2 as pdfium

    from foundation.ocr import ocr_image, words_to_text

    try:
        pdf = pdfium.PdfDocument(data)
        image = pdf[index].render(scale=200 / 72).to_pil().convert("L")
    except Exception:  # noqa: BLE001
        return ""
    return words_to_text(ocr_image(image, lang="spa+por+eng"))


def write_pdf(pages: Sequence[str], title: str = "Report") -> bytes:
    """A plain, valid PDF with one page of text per input page (DejaVu: any Latin script)."""
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_title(title)
    pdf.set_creator("STA de-identification")
    font = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    try:
        pdf.add_font("DejaVu", "", font)
        family = "DejaVu"
    except Exception:  # noqa: BLE001 - no font file: core font, Latin-1 only
        family = "Helvetica"
    pdf.set_auto_page_break(True, margin=15)
    for text in pages:
        pdf.add_page()
        pdf.set_font(family, size=10)
        if family == "Helvetica":
            text = text.encode("latin-1", "replace").decode("latin-1")
        pdf.multi_cell(0, 5, text or " ")
    return bytes(pdf.output())


def scrub_pdf(data: bytes, known_phi: Sequence[str], languages: Sequence[str], offset: dt.timedelta | None) -> bytes:
    pages = pdf_pages(data)
    if not any(sum(c.isalnum() for c in t) >= 3 for t in pages):
        raise DocumentError("document_no_text", "no readable text on any page")
    return write_pdf([_scrub(t, known_phi, languages, offset) if t.strip() else "" for t in pages])


def scrub_cda(data: bytes, known_phi: Sequence[str], languages: Sequence[str], offset: dt.timedelta | None) -> bytes:
    import xml.etree.ElementTree as ET

    if b"<!ENTITY" in data[:4096]:
        raise DocumentError("document_unsupported", "XML with entity declarations")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise DocumentError("document_unsupported", "malformed XML") from exc
    # Scrub the whole text once (names recognised in context), then each value with the known values.
    found = False
    for el in root.iter():
        for attr, value in list(el.attrib.items()):
            if value and any(ch.isalnum() for ch in value) and attr not in ("codeSystem", "root", "classCode", "moodCode",
                                                                             "typeCode", "code", "xmlns", "templateId"):
                el.attrib[attr] = _scrub(value, known_phi, languages, offset)
        for part in ("text", "tail"):
            value = getattr(el, part)
            if value and value.strip():
                found = True
                setattr(el, part, _scrub(value, known_phi, languages, offset))
    if not found:
        raise DocumentError("document_no_text", "CDA without text")
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def scrub_document(
    data: bytes,
    mime: str,
    known_phi: Sequence[str],
    languages: Sequence[str] = ("es", "pt", "en"),
    date_offset: dt.timedelta | int | None = None,
) -> tuple[bytes, str]:
    """The scrubbed document and its MIME type; raises :class:`DocumentError` (stable ``reason``).

    ``date_offset``: the patient token's date offset (a timedelta, or whole days).
    """
    offset = dt.timedelta(days=date_offset) if isinstance(date_offset, int) else date_offset
    kind = (mime or "").strip().lower()
    data = bytes(data).rstrip(b"\x00")  # the value's even-length pad
    if kind == PDF or data[:5] == b"%PDF-":
        return scrub_pdf(data, known_phi, languages, offset), PDF
    if kind in (CDA, "application/xml", "application/hl7-cda+xml") or data.lstrip()[:5] == b"<?xml":
        return scrub_cda(data, known_phi, languages, offset), CDA
    raise DocumentError("document_unsupported", f"MIME type {kind or 'missing'}")
