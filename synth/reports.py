"""Radiology reports in Spanish, Portuguese and English, as .txt or PDF with a text layer.

The header names the patient the way the hospital registered them, with the
national document, MRN, birth date, accession number (equal to the DICOM
AccessionNumber, which is how the pipeline links a report to its study),
study date in long and numeric form, referring physician, institution,
phone and address. Every identifying string is returned exactly as written.

PDFs use fpdf2 core fonts (Latin-1) with a fixed creation date, so the bytes
are reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone

from fpdf import FPDF

from .model import Study
from .people import format_cc, format_cpf
from .tables import table

MONTHS: dict[str, list[str]] = table("reports")["months"]
LABELS: dict[str, dict[str, str]] = table("reports")["labels"]  # header labels per language
TECHNIQUE: dict[str, dict[str, str]] = table("reports")["technique"]  # modality -> language -> sentence


def long_date(d: date, lang: str) -> str:
    """'5 de abril de 2022' (es, pt) or 'April 5, 2022' (en)."""
    m = MONTHS[lang][d.month - 1]
    if lang == "en":
        return f"{m} {d.day}, {d.year}"
    return f"{d.day} de {m} de {d.year}"


def numeric_date(d: date, lang: str) -> str:
    return d.strftime("%m/%d/%Y") if lang == "en" else d.strftime("%d/%m/%Y")


@dataclass
class Report:
    text: str
    phi: list[str]
    language: str
    report_date: date


def render(study: Study, seed_rng: random.Random) -> Report:
    """The report text of ``study`` and every identifying string in it, as written."""
    r = seed_rng
    lang = study.language
    L = LABELS[lang]
    pat = study.patient
    partner = pat.partner
    person = pat.person
    phi: list[str] = []

    def note(v: str) -> str:
        phi.append(v)
        return v

    name = pat.name if r.random() < 0.5 else replace(pat.name, upper=False)
    name_s = note(name.display())
    if person.id_type == "CC":
        doc = note(format_cc(person.id_number) if r.random() < 0.5 else person.id_number)
        doc_line = f"{'C.C.' if lang != 'en' else 'CC'} {doc}"
        doc_label = L["doc"] if lang != "pt" else "Documento"
    elif person.id_type == "CPF":
        doc = note(format_cpf(person.id_number) if r.random() < 0.7 else person.id_number)
        doc_line = doc
        doc_label = "CPF" if lang != "en" else "CPF (national ID)"
    else:
        doc_line = None
        doc_label = L["doc"]
    mrn = note(pat.mrn)
    dob = note(numeric_date(person.birth_date, lang))
    age = study.study_date.year - person.birth_date.year - (
        (study.study_date.month, study.study_date.day) < (person.birth_date.month, person.birth_date.day))
    sex = {"es": {"F": "Femenino", "M": "Masculino"}, "pt": {"F": "Feminino", "M": "Masculino"},
           "en": {"F": "Female", "M": "Male"}}[lang][person.sex]
    acc = note(study.accession)
    sd_long = note(long_date(study.study_date, lang))
    sd_num = note(numeric_date(study.study_date, lang))
    st = note(f"{study.study_time[:2]}:{study.study_time[2:4]}")
    ref = note(study.staff.referring_display)
    inst = note(partner.institution)
    phone = note(person.phone)
    addr = note(person.address)
    hosp_addr = note(partner.institution_address)
    hosp_phone = note(partner.phone)

    title = study.protocol.title[lang]
    lines = [
        f"{partner.institution.upper()} - {L['service']}",
        f"{hosp_addr} - Tel. {hosp_phone}",
        "",
        f"{L['report']} {title}",
        "",
        f"{L['patient']}: {name_s}",
    ]
    if doc_line:
        lines.append(f"{doc_label}: {doc_line}")
    lines += [
        f"{L['mrn']}: {mrn}",
        f"{L['dob']}: {dob}    {L['age']}: {age} {L['years']}    {L['sex']}: {sex}",
        f"{L['address']}: {addr}",
        f"{L['phone']}: {phone}",
        f"{L['accession']}: {acc}",
        f"{L['date']}: {sd_long} ({sd_num}) {st}",
        f"{L['referring']}: {ref}",
        f"{L['institution']}: {inst}",
        "",
        f"{L['indication']}: {study.protocol.indication[lang]}",
        f"{L['technique']}: {TECHNIQUE[study.modality][lang]}",
        "",
        f"{L['findings']}:",
    ]
    body, conclusion = study.finding.text[lang]
    if study.prior_date is not None:
        body = f"{L['prior']} {note(numeric_date(study.prior_date, lang))}. {body}"
    if r.random() < 0.3:
        opener = {"es": f"Paciente {name.surname()} de {age} años.",
                  "pt": f"Paciente {name.surname()}, {age} anos.",
                  "en": f"{age}-year-old patient {name.surname()}."}[lang]
        note(name.surname())
        body = f"{opener} {body}"
    lines += [body, "", f"{L['conclusion']}:", conclusion, ""]
    report_day = study.study_date + timedelta(days=r.choice([0, 0, 1, 2]))
    place = note(f"{partner.city}, {long_date(report_day, lang)}")
    lines += [
        note(study.staff.reading_display),
        f"{L['signed']} - {note(f'{partner.license_label} {study.staff.reading_license}')}",
        place,
    ]
    text = "\n".join(lines) + "\n"
    seen: set[str] = set()
    uniq = [v for v in phi if not (v in seen or seen.add(v))]
    return Report(text=text, phi=uniq, language=lang, report_date=report_day)


def encode_txt(text: str, encoding: str) -> bytes:
    """UTF-8 (Unix newlines) or a Windows/Latin-1 export (CRLF)."""
    if encoding == "utf-8":
        return text.encode("utf-8")
    return text.replace("\n", "\r\n").encode(encoding)


def pdf_bytes(report: Report, study: Study, *, password: str | None = None) -> bytes:
    """A one-page PDF with a text layer (core Helvetica, Latin-1), reproducible byte for byte."""
    tz = timezone(timedelta(hours=-5 if study.patient.partner.country == "co" else -3))
    created = datetime(report.report_date.year, report.report_date.month, report.report_date.day,
                       int(study.study_time[:2]), int(study.study_time[2:4]), 0, tzinfo=tz) + timedelta(hours=2)
    pdf = FPDF(format="A4")
    pdf.set_creation_date(created)
    pdf.set_creator("RIS " + study.patient.partner.code)
    pdf.set_author(study.staff.reading_display)
    pdf.set_title(f"{study.protocol.title[report.language]} - {study.accession}")
    if password:
        pdf.set_encryption(owner_password=password + "-owner", user_password=password)
    pdf.set_margins(18, 16, 18)
    pdf.add_page()
    first = True
    for line in report.text.split("\n"):
        if first:
            pdf.set_font("Helvetica", "B", 11)
        elif line.isupper() and line.endswith(":"):
            pdf.set_font("Helvetica", "B", 10)
        else:
            pdf.set_font("Helvetica", "", 10)
        first = False
        if pdf.get_string_width(line) < pdf.epw:  # one line: cell() skips the line breaker
            pdf.cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.multi_cell(0, 5, line, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
