"""Encapsulated documents: scrubbed by the report scrubber and kept readable, or refused with a reason."""

from __future__ import annotations

import io

import pytest

from anonymization.documents import DocumentError, scrub_document

KNOWN = ["QUINTERO ALVAREZ^MARTINA", "52318907", "19580703"]
REPORT = ("Informe de ecografia abdominal\nPaciente: Martina Quintero Alvarez\nCC 52.318.907, nacida el 3 de julio de 1958\n"
          "Hallazgos: higado de tamano y ecogenicidad normales, sin lesiones focales.\nConclusion: estudio normal.")


def _pdf(text: str, pages: int = 1, password: str | None = None) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", size=11)
        pdf.multi_cell(0, 6, text)
    data = bytes(pdf.output())
    if password:
        from pypdf import PdfReader, PdfWriter

        w = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
        w.encrypt(password)
        buf = io.BytesIO()
        w.write(buf)
        data = buf.getvalue()
    return data


def test_pdf_keeps_its_pages_and_findings_and_loses_the_identity():
    from pypdf import PdfReader

    out, mime = scrub_document(_pdf(REPORT, pages=2), "application/pdf", KNOWN, ("es",), 400)
    assert mime == "application/pdf"
    reader = PdfReader(io.BytesIO(out))
    assert len(reader.pages) == 2
    text = "\n".join(p.extract_text() for p in reader.pages)
    assert text.count("ecogenicidad normales") == 2 and "[NOMBRE]" in text
    for value in ("Martina", "Quintero", "52.318.907", "1958"):
        assert value not in text, value


def test_cda_text_and_attributes_are_scrubbed_and_the_xml_stays_valid():
    import xml.etree.ElementTree as ET

    cda = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><recordTarget><patientRole>'
        '<id root="2.16.170.1" extension="52318907"/><patient><name><given>Martina</given>'
        "<family>Quintero Alvarez</family></name></patient></patientRole></recordTarget>"
        "<component><section><text>Paciente Martina Quintero. Higado normal, sin lesiones.</text></section></component>"
        "</ClinicalDocument>"
    ).encode()
    out, mime = scrub_document(cda, "text/xml", KNOWN, ("es",), 0)
    assert mime == "text/xml"
    ET.fromstring(out)  # still XML
    text = out.decode()
    assert "Higado normal" in text
    for value in ("Martina", "Quintero", "52318907"):
        assert value not in text, value


@pytest.mark.parametrize("data,mime,reason", [
    (b"", "application/pdf", "pdf_corrupt"),
    (b"%PDF-1.4 garbage", "application/pdf", "pdf_corrupt"),
    (b"\x00\x01binary", "application/octet-stream", "document_unsupported"),
])
def test_unreadable_documents_are_refused_with_their_reason(data, mime, reason):
    with pytest.raises(DocumentError) as err:
        scrub_document(data, mime, KNOWN)
    assert err.value.reason == reason


def test_encrypted_and_textless_pdfs_are_refused_never_published_empty():
    with pytest.raises(DocumentError) as err:
        scrub_document(_pdf(REPORT, password="x"), "application/pdf", KNOWN)
    assert err.value.reason == "pdf_encrypted"
    with pytest.raises(DocumentError) as err:
        scrub_document(_pdf(" "), "application/pdf", KNOWN)
    assert err.value.reason == "document_no_text"
