"""Report text extraction: encodings, RTF, PDF text layers, OCR, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont

from transforms.text_extract import ExtractionError, decode_text, detect_language, extract_text

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
PROJECT = Path(__file__).resolve().parent.parent

REPORT_ES = (
    "Paciente: Gabriela Restrepo\n"
    "Estudio: Ecografía abdominal\n"
    "Hallazgos: hígado de tamaño normal, sin lesiones focales.\n"
    "Conclusión: estudio dentro de límites normales."
)


def page_image(lines: list[str], size=(1240, 700), font_size=30) -> Image.Image:
    """A scanned-looking report page (black text on white, 150 dpi-ish)."""
    img = Image.new("L", size, 255)
    draw = ImageDraw.Draw(img)
    font = ImageFont.truetype(FONT, font_size)
    y = 40
    for line in lines:
        draw.text((60, y), line, font=font, fill=0)
        y += int(font_size * 1.6)
    return img


# ----------------------------------------------------------------- plain text


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252", "latin-1", "utf-16", "utf-8-sig"])
def test_txt_is_decoded_in_any_expected_encoding(tmp_path: Path, encoding: str) -> None:
    p = tmp_path / "r.txt"
    p.write_bytes(REPORT_ES.encode(encoding))
    ex = extract_text(p)
    assert "Conclusión: estudio dentro de límites normales." in ex.text
    assert ex.source_format == "txt" and ex.pages == 1 and ex.ocr_pages == []
    assert ex.language == "es"


def test_cp1252_typographic_quotes_survive() -> None:
    assert decode_text("“nódulo” – 5 mm".encode("cp1252")) == "“nódulo” – 5 mm"


@pytest.mark.parametrize(
    "payload",
    [bytes(range(256)) * 8, "Informe del paciente".encode("cp500"), b"\x00\x01\x02binary\xff\xfe\x00" * 50],
)
def test_undecodable_text_gives_text_encoding_reason(tmp_path: Path, payload: bytes) -> None:
    p = tmp_path / "bad.txt"
    p.write_bytes(payload)
    with pytest.raises(ExtractionError) as err:
        extract_text(p)
    assert err.value.reason_code == "text_encoding"


def test_empty_file_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "e.txt"
    p.write_bytes(b"")
    with pytest.raises(ExtractionError) as err:
        extract_text(p)
    assert err.value.reason_code == "empty_file"


def test_rtf_text(tmp_path: Path) -> None:
    p = tmp_path / "r.rtf"
    p.write_text(
        r"{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Arial;}}\f0 Paciente: Jo\'e3o Silva\par Conclus\'e3o: exame normal.\par}",
        encoding="ascii",
    )
    ex = extract_text(p)
    assert "João Silva" in ex.text and "Conclusão: exame normal." in ex.text
    assert ex.source_format == "rtf" and ex.language == "pt"


@pytest.mark.parametrize(
    "text,lang",
    [
        ("The patient has no acute findings in the chest. Impression: normal study.", "en"),
        ("Paciente sem alterações. Conclusão: exame dentro da normalidade, não há lesões.", "pt"),
        ("Paciente sin alteraciones. Conclusión: estudio dentro de la normalidad, no hay lesiones.", "es"),
    ],
)
def test_language_detection(text: str, lang: str) -> None:
    assert detect_language(text) == lang


# ----------------------------------------------------------------------- PDF


def make_text_pdf(path: Path, pages: list[str]) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("dejavu", "", FONT)
    pdf.set_font("dejavu", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))


def test_pdf_text_layer_needs_no_ocr(tmp_path: Path) -> None:
    p = tmp_path / "r.pdf"
    make_text_pdf(p, [REPORT_ES, "Página dos: control en seis meses, sin cambios significativos."])
    ex = extract_text(p)
    assert ex.source_format == "pdf" and ex.pages == 2 and ex.ocr_pages == []
    assert "Gabriela Restrepo" in ex.text and "seis meses" in ex.page_texts[1]


def test_scanned_pdf_page_is_ocred_and_text_page_is_not(tmp_path: Path) -> None:
    """A mixed PDF: page 0 has a text layer, page 1 is a scan -> only page 1 is OCR'd."""
    import pypdf

    text_pdf = tmp_path / "text.pdf"
    make_text_pdf(text_pdf, [REPORT_ES])
    scan_pdf = tmp_path / "scan.pdf"
    page_image(["Nome: Marcelo Andrade Lima", "Laudo: exame sem alterações."]).save(scan_pdf, "PDF", resolution=150)
    writer = pypdf.PdfWriter()
    for src in (text_pdf, scan_pdf):
        writer.append(str(src))
    mixed = tmp_path / "mixed.pdf"
    with mixed.open("wb") as fh:
        writer.write(fh)
    ex = extract_text(mixed, lang_hint="pt")
    assert ex.pages == 2 and ex.ocr_pages == [1]
    assert "Marcelo Andrade Lima" in ex.page_texts[1]
    assert ex.words and all(w.page == 1 for w in ex.words)


def test_encrypted_pdf_is_refused(tmp_path: Path) -> None:
    import pypdf

    src = tmp_path / "r.pdf"
    make_text_pdf(src, [REPORT_ES])
    writer = pypdf.PdfWriter(clone_from=str(src))
    writer.encrypt(user_password="secret", owner_password="owner", algorithm="AES-128")
    enc = tmp_path / "enc.pdf"
    with enc.open("wb") as fh:
        writer.write(fh)
    with pytest.raises(ExtractionError) as err:
        extract_text(enc)
    assert err.value.reason_code == "pdf_encrypted"


def test_pdf_without_pages_is_refused(tmp_path: Path) -> None:
    import pypdf

    p = tmp_path / "empty.pdf"
    with p.open("wb") as fh:
        pypdf.PdfWriter().write(fh)
    with pytest.raises(ExtractionError) as err:
        extract_text(p)
    assert err.value.reason_code == "pdf_no_pages"


def test_500_page_pdf_is_refused_quickly(tmp_path: Path) -> None:
    import pypdf

    writer = pypdf.PdfWriter()
    for _ in range(500):
        writer.add_blank_page(width=595, height=842)
    p = tmp_path / "big.pdf"
    with p.open("wb") as fh:
        writer.write(fh)
    with pytest.raises(ExtractionError) as err:
        extract_text(p)
    assert err.value.reason_code == "pdf_too_many_pages"


def test_truncated_pdf_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "r.pdf"
    make_text_pdf(src, [REPORT_ES])
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.7\n" + b"garbage" * 100)
    with pytest.raises(ExtractionError) as err:
        extract_text(bad)
    assert err.value.reason_code in {"pdf_corrupt", "pdf_no_pages"}


# --------------------------------------------------------------------- images


def test_photo_of_paper_is_ocred_with_word_boxes(tmp_path: Path) -> None:
    p = tmp_path / "photo.jpg"
    page_image(["Patient: Jonathan Whitaker", "Impression: no acute findings."]).convert("RGB").save(p, quality=85)
    ex = extract_text(p, lang_hint="en")
    assert ex.source_format == "image" and ex.ocr_pages == [0] and ex.pages == 1
    assert "Jonathan Whitaker" in ex.text
    assert ex.language == "en"
    w = next(w for w in ex.words if w.text == "Whitaker")
    assert 60 < w.left < 1000 and w.width > 20 and w.height > 10


def test_multipage_tiff_pages_are_ocred_in_parallel(tmp_path: Path) -> None:
    p = tmp_path / "scan.tiff"
    a = page_image(["Paciente: Rodrigo Quintero"], size=(900, 200))
    b = page_image(["Conclusión: sin hallazgos."], size=(900, 200))
    a.save(p, save_all=True, append_images=[b])
    ex = extract_text(p, lang_hint="es")
    assert ex.pages == 2 and ex.ocr_pages == [0, 1]
    assert "Quintero" in ex.page_texts[0] and "hallazgos" in ex.page_texts[1]


def test_corrupt_image_is_refused(tmp_path: Path) -> None:
    good = tmp_path / "g.png"
    page_image(["x"], size=(200, 100)).save(good)
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:60])
    with pytest.raises(ExtractionError) as err:
        extract_text(bad)
    assert err.value.reason_code == "image_corrupt"


# ------------------------------------------------------------------------ CLI


def run_sta(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sta.cli", *args], cwd=PROJECT, capture_output=True, text=True, timeout=120)


def test_sta_report_prints_scrubbed_json(tmp_path: Path) -> None:
    p = tmp_path / "scan.png"
    page_image(["Paciente: Rodrigo Quintero", "C.C. 1.020.345.678", "Conclusión: sin hallazgos."], size=(1000, 300)).save(p)
    res = run_sta("report", str(p), "--lang", "es")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["language"] == "es" and out["pages"] == 1 and out["ocr_pages"] == [0]
    assert "Quintero" not in out["text"] and "1.020.345.678" not in out["text"]
    assert "[NOMBRE]" in out["text"] and "hallazgos" in out["text"]


def test_sta_report_bad_input_gives_reason(tmp_path: Path) -> None:
    p = tmp_path / "bad.jpg"
    p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    res = run_sta("report", str(p))
    assert res.returncode == 3
    assert json.loads(res.stdout)["error"] == "image_corrupt"


def test_sta_scrub_text_folder(tmp_path: Path) -> None:
    src, dst = tmp_path / "in", tmp_path / "out"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("Paciente: Juan Pérez\nDNI: 30.123.456\nSin hallazgos.", encoding="utf-8")
    (src / "sub" / "b.txt").write_bytes("Nome: Ana Souza\nCPF: 529.982.247-25\nSem alterações.".encode("cp1252"))
    (src / "c.txt").write_bytes(bytes(range(256)) * 4)
    res = run_sta("scrub-text", str(src), str(dst))
    summary = json.loads(res.stdout)
    assert summary["scrubbed"] == 2 and summary["failed"][0]["error"] == "text_encoding"
    a = (dst / "a.txt").read_text(encoding="utf-8")
    b = (dst / "sub" / "b.txt").read_text(encoding="utf-8")
    assert "Pérez" not in a and "30.123.456" not in a and "Sin hallazgos." in a
    assert "Souza" not in b and "529.982.247-25" not in b and "[NOME]" in b


def test_language_is_detected_from_the_first_ocr_page(tmp_path: Path) -> None:
    p = tmp_path / "laudo.png"
    page_image(["Nome: Marcelo Andrade Lima", "Conclusão: exame sem alterações, não há lesões."], size=(1100, 250)).save(p)
    ex = extract_text(p)  # no hint
    assert ex.language == "pt" and "alterações" in ex.text


@pytest.mark.parametrize("font,size,angle", [("DejaVuSerif.ttf", 28, 0), ("DejaVuSansMono.ttf", 24, 1.5), ("DejaVuSans-Bold.ttf", 32, -1)])
def test_scanned_report_pipeline_leaves_no_planted_phi(tmp_path: Path, font: str, size: int, angle: float) -> None:
    """Scanned PDF (several fonts, slight skew) -> OCR -> scrub: none of the planted PHI survives."""
    from anonymization.text_phi import TextScrubber

    img = Image.new("L", (1240, 820), 255)
    d = ImageDraw.Draw(img)
    f = ImageFont.truetype(f"/usr/share/fonts/truetype/dejavu/{font}", size)
    lines = [
        "CLÍNICA SANTA MARÍA",
        "Paciente: Rodrigo Quintero Salas",
        "C.C. 1.020.345.678   Fecha: 05/04/2022",
        "Médico: Dra. Valentina Ríos",
        "Tel: 310 555 1234",
        "Hallazgos: hígado de tamaño normal.",
        "Conclusión: sin hallazgos agudos.",
    ]
    for i, line in enumerate(lines):
        d.text((60, 40 + i * int(size * 1.9)), line, font=f, fill=0)
    if angle:
        img = img.rotate(angle, expand=True, fillcolor=255)
    pdf = tmp_path / "scan.pdf"
    img.save(pdf, "PDF", resolution=150)
    ex = extract_text(pdf, lang_hint="es")
    assert ex.ocr_pages == [0]
    out = TextScrubber(["es"], use_ner=False).scrub(ex.text, "es", known_phi=["QUINTERO SALAS^RODRIGO", "1020345678"], date_shift_days=-20)
    for secret in ["Quintero", "Salas", "Rodrigo", "1.020.345.678", "05/04/2022", "Valentina", "Ríos", "555 1234"]:
        assert secret not in out.text, (secret, out.text)
    assert out.residual == []
    assert "hígado" in out.text
