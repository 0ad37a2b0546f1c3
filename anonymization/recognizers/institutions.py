"""Institutions by context: acronyms of hospitals and manufacturers' names.

The institution patterns by kind (Hospital, Clínica, Centro de Salud,
Fundación, Santa Casa, Medical Center...) are in :mod:`contact`; the NER
finds most of the rest. This module adds what only context reveals:

* an acronym in parentheses right after an institution's name or a clinical
  service ("Complejo Hospitalario Universitario de Vigo (CHUVI)",
  "Servicio de Digestivo (CHUAC)"), and the same acronym elsewhere in the
  text (the scrubber propagates it);
* a company between a product and a place in parentheses, as clinical
  writing cites drugs and devices ("Vibracina 100, Pfizer, Madrid").
"""

from __future__ import annotations

import re

Span = tuple[str, int, int, float]

_KIND = (
    r"(?:Hospital|Hospitalario|Hospitalar|Cl[íi]nica|Cl[íi]nico|Complejo|Complexo|Fundaci[óo]n?|Funda[çc][ãa]o|Instituto|Institut|"
    r"Sanatorio|Universidad|Universidade|University|Universitario|Universitari|Hospitalet)"
)
# "... Universitario de Vigo (CHUVI)": an upper-case acronym in parentheses after a capitalised name.
ACRONYM_AFTER_NAME_RE = re.compile(
    rf"{_KIND}(?:[ \t]+(?:de|del|de\s+la|do|da|dos|das|y|e|[A-ZÁÉÍÓÚ][\w'’.-]*)){{0,8}}[ \t]*\((?P<v>[A-Z][A-Z0-9-]{{1,9}})\)"
)
_CAPW = r"[A-Z][\w&'’.®-]*"
# "(Vibracina 100, Pfizer, Madrid)" / "(Tobradex, Alcon Cusí)": the company part.
MAKER_RE = re.compile(
    rf"\((?:[^()\n,;]{{1,60}})[,;][ \t]*(?P<v>{_CAPW}(?:[ \t]+(?:y|&|and)?[ \t]*{_CAPW}){{0,3}})[ \t]*(?:,[ \t]*(?P<place>[A-Z][^()\n,]{{1,40}}))?\)"
)


# "McGhan Medical Corporation", "KCI Clinic Spain SL", "Laboratorios Cinfa S.A.": a company by its legal form.
COMPANY_RE = re.compile(
    rf"(?<![\w])(?:{_CAPW}[ \t]+){{1,4}}(?:S\.\s?A\.|S\.\s?L\.|SA|SL|SLU|S\.A\.U\.|Inc\.?|Ltd\.?|Ltda\.?|GmbH|AG|LLC|Corporation|Corp\.|Company|Pharma|Pharmaceuticals|Laboratories)(?![\w])"
)


def find_institutions(text: str, language: str = "es") -> list[Span]:
    from anonymization.recognizers.lexicon import common_words
    from anonymization.recognizers.places import _fold, gazetteer

    out: list[Span] = []
    for m in ACRONYM_AFTER_NAME_RE.finditer(text):
        out.append(("ORGANIZATION", m.start("v"), m.end("v"), 0.8))
    words = common_words()
    for m in MAKER_RE.finditer(text):
        v = m.group("v")
        toks = re.findall(r"[^\W\d_]+", v)
        if not toks or all(_fold(t) in words for t in toks) or any(c.isdigit() for c in v) or v in gazetteer():
            continue
        out.append(("ORGANIZATION", m.start("v"), m.end("v"), 0.7))
    for m in COMPANY_RE.finditer(text):
        out.append(("ORGANIZATION", m.start(), m.end(), 0.7))
    return out
