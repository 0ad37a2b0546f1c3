"""National identifiers, record and accession numbers.

Where a document number has a check digit (Brazil's CPF, Chile's RUT,
Ecuador's cédula, Argentina's CUIT/CUIL, Spain's NIF) an unlabelled number
is accepted as an ID only when the check digit is right, which keeps lab
values and measurements out. Numbers without a checksum (Colombian cédula,
Argentine DNI, MRNs, accession numbers) are recognised by their label
("C.C.", "DNI", "HC", "Accesión:") or by a shape no clinical value has (6+
digits, or digit groups with thousands dots). Over-scrubbing a number costs
little; a missed identifier is a breach.
"""

from __future__ import annotations

import re

Span = tuple[str, int, int, float]  # (entity, start, end, score)

# ---------------------------------------------------------------- checksums


def cnpj_valid(s: str) -> bool:
    """Brazil CNPJ (companies, clinics): 14 digits, two mod-11 check digits (weights 5..2,9..2 and 6..2,9..2)."""
    d = [int(c) for c in re.sub(r"\D", "", s)]
    if len(d) != 14 or len(set(d)) == 1:
        return False
    for n, weights in ((12, [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]), (13, [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2])):
        r = sum(a * b for a, b in zip(d[:n], weights)) % 11
        if d[n] != (0 if r < 2 else 11 - r):
            return False
    return True


def cpf_valid(s: str) -> bool:
    """Brazil CPF: 11 digits, two mod-11 check digits (Receita Federal)."""
    d = [int(c) for c in re.sub(r"\D", "", s)]
    if len(d) != 11 or len(set(d)) == 1:
        return False
    for n in (9, 10):
        total = sum(d[i] * (n + 1 - i) for i in range(n))
        check = (total * 10) % 11 % 10
        if check != d[n]:
            return False
    return True


def rut_valid(s: str) -> bool:
    """Chile RUT/RUN: body + mod-11 check digit (0-9 or K)."""
    s = re.sub(r"[^0-9kK]", "", s).upper()
    if len(s) < 7:
        return False
    body, dv = s[:-1], s[-1]
    if not body.isdigit():
        return False
    total, factor = 0, 2
    for c in reversed(body):
        total += int(c) * factor
        factor = 2 if factor == 7 else factor + 1
    r = 11 - total % 11
    expected = "0" if r == 11 else "K" if r == 10 else str(r)
    return dv == expected


def ec_cedula_valid(s: str) -> bool:
    """Ecuador cédula: 10 digits, province 01-24 or 30, mod-10 (Registro Civil)."""
    d = re.sub(r"\D", "", s)
    if len(d) != 10:
        return False
    prov = int(d[:2])
    if not (1 <= prov <= 24 or prov == 30) or int(d[2]) >= 6:
        return False
    total = 0
    for i, c in enumerate(d[:9]):
        v = int(c) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return (10 - total % 10) % 10 == int(d[9])


def cuit_valid(s: str) -> bool:
    """Argentina CUIT/CUIL: 11 digits, mod-11 with weights 5432765432 (AFIP)."""
    d = [int(c) for c in re.sub(r"\D", "", s)]
    if len(d) != 11:
        return False
    weights = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    r = 11 - sum(a * b for a, b in zip(d[:10], weights)) % 11
    check = 0 if r == 11 else 9 if r == 10 else r
    return check == d[10]


def nif_valid(s: str) -> bool:
    """Spain NIF/NIE (MEDDOCAN's IDs): 8 digits + control letter."""
    s = re.sub(r"[\s.-]", "", s).upper()
    if len(s) == 9 and s[0] in "XYZ":
        s = str("XYZ".index(s[0])) + s[1:]
    if len(s) != 9 or not s[:8].isdigit():
        return False
    return "TRWAGMYFPDXBNJZSQVHLCKE"[int(s[:8]) % 23] == s[8]


def ssn_plausible(s: str) -> bool:
    """US SSN: no 000/666/9xx area, no 00 group, no 0000 serial (SSA rules)."""
    d = re.sub(r"\D", "", s)
    if len(d) != 9:
        return False
    area, group, serial = d[:3], d[3:5], d[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


# ----------------------------------------------------------------- patterns

_NB = r"(?<![\w.\-/])"  # not glued to a preceding word/number
_NA = r"(?![\w\-/]|\.\d)"  # not glued to a following one

CNPJ_RE = re.compile(_NB + r"\d{2}\.?\d{3}\.?\d{3}/?\d{4}-?\d{2}" + _NA)
# Mexico's CURP: 4 letters, birth date, sex, state, 3 consonants, a check pair.
CURP_RE = re.compile(r"(?<![\w])[A-Z]{4}\d{6}[HM][A-Z]{5}[A-Z0-9]\d(?![\w])")
CPF_RE = re.compile(_NB + r"\d{3}\.?\d{3}\.?\d{3}[-.\s]?\d{2}" + _NA)
RUT_RE = re.compile(_NB + r"\d{1,2}\.?\d{3}\.?\d{3}-?[\dkK]" + r"(?![\w\-/])")
CUIT_RE = re.compile(_NB + r"(?:20|23|24|27|30|33|34)-?\d{8}-?\d" + _NA)
EC_RE = re.compile(_NB + r"\d{9}-?\d" + _NA)
NIF_RE = re.compile(_NB + r"(?:\d{8}|[XYZ]\d{7})-?[A-Za-z]" + r"(?![\w])")
SSN_RE = re.compile(_NB + r"\d{3}-\d{2}-\d{4}" + _NA)
# 1.020.345.678 / 12.345.678 (CC, DNI): thousands dots, no decimals.
DOTTED_RE = re.compile(_NB + r"\d{1,3}(?:\.\d{3}){2,3}(?:-[\dkK])?" + _NA)
# Long digit runs: no clinical value has 6+ digits without separators.
LONG_DIGITS_RE = re.compile(_NB + r"\d{6,}" + _NA)
# Codes mixing letters and digits with at least 5 digits: MRN12345, ACC-2022-00123.
ALNUM_CODE_RE = re.compile(r"(?<![\w\-/])(?=[A-Za-z0-9\-/]*\d(?:[^\d\s]*\d){4})[A-Za-z][A-Za-z0-9]*[-/]?[A-Za-z0-9\-/]*\d(?![\w\-/])")

# Labels after which the value is an identifier, whatever its shape.
ID_LABELS = [
    # es
    r"c[ée]dula(?:\s+de\s+(?:ciudadan[ií]a|identidad|extranjer[ií]a))?", r"c\.\s?c\.?", r"cc", r"c\.\s?i\.?", r"ci",
    r"d\.?n\.?i\.?", r"cuit", r"cuil", r"r\.?u\.?t\.?", r"r\.?u\.?n\.?", r"nif", r"nie", r"nuip", r"t\.\s?i\.?",
    r"tarjeta\s+de\s+identidad", r"pasaporte", r"documento(?:\s+de\s+identidad)?", r"doc\.?", r"tipo\s+y\s+n[úu]mero\s+de\s+documento",
    r"identificaci[óo]n(?:\s+del\s+paciente)?", r"id(?:\s+del)?\s+paciente", r"historia\s+cl[íi]nica", r"n[úu]mero\s+de\s+historia(?:\s+cl[íi]nica)?",
    r"n\.?\s?h\.?\s?c\.?", r"h\.\s?c\.?", r"hc", r"n[º°o]\.?\s+(?:de\s+)?historia(?:\s+cl[íi]nica)?", r"registro(?:\s+m[ée]dico)?",
    r"acces(?:i[óo]n|o)", r"n[úu]mero\s+de\s+acces(?:i[óo]n|o)", r"n[º°o]\.?\s+(?:de\s+)?acces(?:i[óo]n|o)", r"accesi[óo]n\s+n[º°o]\.?",
    r"orden(?:\s+de\s+servicio)?", r"n[º°o]\.?\s+(?:de\s+)?orden", r"solicitud", r"n[º°o]\.?\s+(?:de\s+)?solicitud", r"episodio", r"ingreso",
    r"afiliado", r"n[º°o]\.?\s+(?:de\s+)?afiliado", r"carn[ée]t", r"p[óo]liza", r"n\.?\s?a\.?\s?s\.?\s?s\.?", r"c[óo]digo\s+(?:de\s+)?paciente",
    r"tarjeta\s+sanitaria", r"cip", r"n[º°o]\.?\s*col(?:egiado)?", r"colegiado", r"n[º°o]\.?\s*de\s+colegiado", r"matr[íi]cula\s+profesional",
    r"tarjeta\s+profesional", r"t\.\s?p\.?", r"registro\s+m[ée]dico", r"r\.?m\.?", r"c\.?m\.?p\.?", r"crm(?:-[a-z]{2})?", r"npi", r"license(?:\s+(?:number|no\.?))?", r"n[úu]mero\s+de\s+(?:identificaci[óo]n|documento|paciente|estudio)", r"id\s+(?:de\s+)?estudio",
    # pt
    r"cpf", r"cnpj", r"curp", r"rg", r"cns", r"cart[ãa]o\s+(?:sus|nacional\s+de\s+sa[úu]de)", r"prontu[áa]rio", r"n[úu]mero\s+do\s+prontu[áa]rio",
    r"n[úu]mero\s+de\s+acesso", r"acesso", r"n[º°o]\.?\s+(?:de\s+)?acesso", r"matr[íi]cula", r"registro\s+do\s+paciente",
    r"c[óo]digo\s+do\s+paciente", r"pedido", r"n[úu]mero\s+do\s+pedido", r"atendimento", r"n[º°o]\.?\s+(?:do\s+)?atendimento",
    r"passaporte", r"carteirinha", r"identidade", r"id\s+do\s+paciente", r"guia",
    # en
    r"ssn", r"social\s+security(?:\s+(?:number|no\.?))?", r"mrn", r"medical\s+record(?:\s+(?:number|no\.?|#))?", r"record\s+(?:number|no\.?|#)",
    r"patient\s+id", r"patient\s+number", r"id", r"accession(?:\s+(?:number|no\.?|#))?", r"acc\.?(?:\s+(?:no\.?|#))?", r"order\s+(?:number|no\.?|#)",
    r"encounter(?:\s+(?:number|no\.?|#))?", r"visit\s+(?:number|no\.?|#)", r"account(?:\s+(?:number|no\.?|#))?", r"member\s+id",
    r"insurance\s+id", r"policy(?:\s+(?:number|no\.?|#))?", r"passport", r"driver'?s\s+license", r"study\s+id", r"fin", r"csn",
]
_ID_LABEL_RE = re.compile(
    r"(?<![\w])(?:" + "|".join(ID_LABELS) + r")(?![^\W\d_])\s*(?:n[º°o]\.?|#|nr\.?|num\.?|number)?\s*[:=#.]?\s*"
    r"(?:[A-Z]{1,4}\s?[-:]?\s?)?"  # a type prefix: "CC 1020...", "V-1234..."
    r"(?P<v>[A-Za-z]{0,4}[-]?\d[\dA-Za-z.\-/]*(?:\s\d[\dA-Za-z.\-/]*){0,3})",
    re.IGNORECASE,
)


def _strip_tail(text: str, s: int, e: int) -> tuple[int, int]:
    while e > s and text[e - 1] in ".-/,":
        e -= 1
    return s, e


def find_ids(text: str, language: str = "es") -> list[Span]:
    """Identifier spans: checksummed national IDs, labelled values, ID-shaped codes."""
    out: list[Span] = []
    for m in CNPJ_RE.finditer(text):
        if cnpj_valid(m.group()):
            out.append(("ID", m.start(), m.end(), 1.0))
    for m in CURP_RE.finditer(text):
        out.append(("ID", m.start(), m.end(), 0.95))
    for m in CPF_RE.finditer(text):
        if cpf_valid(m.group()):
            out.append(("ID", m.start(), m.end(), 1.0))
    for m in RUT_RE.finditer(text):
        if rut_valid(m.group()) and ("-" in m.group() or "." in m.group()):
            out.append(("ID", m.start(), m.end(), 1.0))
    for m in CUIT_RE.finditer(text):
        if cuit_valid(m.group()):
            out.append(("ID", m.start(), m.end(), 1.0))
    for m in EC_RE.finditer(text):
        if ec_cedula_valid(m.group()):
            out.append(("ID", m.start(), m.end(), 1.0))
    for m in NIF_RE.finditer(text):
        if nif_valid(m.group()):
            out.append(("ID", m.start(), m.end(), 1.0))
    for m in SSN_RE.finditer(text):
        if ssn_plausible(m.group()):
            out.append(("ID", m.start(), m.end(), 0.95))
    for m in DOTTED_RE.finditer(text):
        out.append(("ID", m.start(), m.end(), 0.8))
    for m in LONG_DIGITS_RE.finditer(text):
        out.append(("ID", m.start(), m.end(), 0.7))
    for m in ALNUM_CODE_RE.finditer(text):
        out.append(("ID", m.start(), m.end(), 0.7))
    for m in _ID_LABEL_RE.finditer(text):
        s, e = _strip_tail(text, m.start("v"), m.end("v"))
        if sum(c.isdigit() for c in text[s:e]) >= 3:
            out.append(("ID", s, e, 0.9))
    return out


# Labels that name the accession number and the patient's identifiers,
# used to link a report to its study before anything is scrubbed.
ACCESSION_LABEL_RE = re.compile(
    r"(?<![\w])(?:n[úu]mero\s+de\s+ac+es+(?:i[óo]n|o)|n[º°o]\.?\s*(?:de\s+)?ac+es+(?:i[óo]n|o)|ac+es+(?:i[óo]n|o)(?:\s+n[º°o]\.?)?"
    r"|accession(?:\s+(?:number|no\.?|#))?|acc\.?\s*(?:no\.?|#))"
    # the value holds a digit: "Accession number: CA15..." must not yield "number"
    r"\s*(?:n[º°o]\.?|#)?\s*[:=#]?\s*(?P<v>(?=[A-Za-z0-9\-/.]*\d)[A-Za-z0-9][A-Za-z0-9\-/.]*[A-Za-z0-9])",
    re.IGNORECASE,
)
PATIENT_ID_LABEL_RE = re.compile(
    r"(?<![\w])(?P<label>c[ée]dula(?:\s+de\s+(?:ciudadan[ií]a|identidad))?|c\.\s?c\.?|cc|c\.\s?i\.?|d\.?n\.?i\.?|cuit|cuil|r\.?u\.?t\.?|run|cpf|rg|cns|ssn"
    r"|n\.?h\.?c\.?|h\.\s?c\.?|hc|historia\s+cl[íi]nica|mrn|medical\s+record(?:\s+(?:number|no\.?))?|prontu[áa]rio|patient\s+id|id\s+(?:del\s+|do\s+)?paciente"
    r"|identificaci[óo]n|documento(?:\s+de\s+identidad)?|pasaporte|passaporte|passport)(?![^\W\d_])"
    r"\s*(?:n[º°o]\.?|#|number|no\.?)?\s*[:=#.]?\s*(?:(?P<type>[A-Z]{1,4})\s?[-:]?\s?)?(?P<v>[A-Za-z]?\d[\dA-Za-z.\-/]*[\dA-Za-z])",
    re.IGNORECASE,
)
