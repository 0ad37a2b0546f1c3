"""Dictated orders in Spanish and Portuguese -> the order's fields.

"amoxicilina quinientos miligramos cada ocho horas durante siete días" ->
drug 'amoxicilina', dose 500, unit 'mg', 3 per day, 7 days. Numbers in words
go through text2num (``alpha2digit``), units through the unit table in
``medication.units``, frequencies and durations through the patterns below
(one table, both languages, plus the Latin abbreviations prescribers use).
The drug name is what precedes the dose; the resolver decides whether it is
a drug (fuzzy, refusing look-alikes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from text_to_num import alpha2digit

from medication.units import _fold, canonical_unit, dimension, parse_number

_NUM = r"(\d+(?:[.,]\d+)?)"
_HOURS = r"(?:horas?|hrs?|h)\b"

# (pattern on folded text, doses per day as a function of the match)
_FREQUENCIES: list[tuple[re.Pattern, object]] = [
    (re.compile(rf"\bde {_NUM} em {_NUM} ?{_HOURS}"), lambda m: 24 / parse_number(m.group(1))),
    (re.compile(rf"\b(?:cada|a cada|c/|q) ?{_NUM} ?{_HOURS}"), lambda m: 24 / parse_number(m.group(1))),
    (re.compile(rf"\bq{_NUM}h\b"), lambda m: 24 / parse_number(m.group(1))),
    (re.compile(rf"\b{_NUM}/{_NUM} ?{_HOURS}"), lambda m: 24 / parse_number(m.group(1))),
    (re.compile(rf"\b{_NUM} (?:veces|vez|vezes|times?|x) (?:al|a|por|ao|per|en el|no|na|a la) (?:dia|day)\b"),
     lambda m: parse_number(m.group(1))),
    (re.compile(rf"\b{_NUM} (?:veces|vez|vezes|times?|x) (?:a la|por|na|por la|per|a|em la|a cada) semana|week\b"),
     lambda m: parse_number(m.group(1)) / 7 if m.group(1) else None),
    (re.compile(r"\b(?:bid|b i d|bd|dos veces al dia|duas vezes ao dia|12/12)\b"), lambda m: 2.0),
    (re.compile(r"\b(?:tid|t i d|tds)\b"), lambda m: 3.0),
    (re.compile(r"\b(?:qid|q i d|qds)\b"), lambda m: 4.0),
    (re.compile(r"\b(?:semanal|semanalmente|weekly|cada semana|toda semana|1 vez por semana)\b"), lambda m: 1 / 7),
    (re.compile(r"\b(?:qd|od|q d|diario|diaria|diariamente|al dia|ao dia|por dia|cada dia|todos los dias|"
                r"todos os dias|daily|once a day|en la noche|por la noche|a noite|de noite|al acostarse|"
                r"ao deitar|cada manana|pela manha|en ayunas|em jejum|nocte|qhs|hs)\b"), lambda m: 1.0),
]
_DURATION = re.compile(
    rf"\b(?:durante|por|x|for|during|em|en|hasta completar|ate completar)? ?{_NUM} "
    r"(dias|dia|days|day|semanas|semana|weeks|week|meses|mes|months|month)\b")
_CONTINUOUS = re.compile(r"\b(?:uso continuo|uso continuo|permanente|cronico|cronica|indefinido|de por vida|"
                         r"uso permanente|continuous|long term)\b")
_ROUTES = {
    "oral": r"\b(?:via oral|por via oral|oral|vo|por boca|po)\b",
    "iv": r"\b(?:intravenosa|intravenoso|endovenosa|endovenoso|iv|ev)\b",
    "im": r"\b(?:intramuscular|im)\b",
    "sc": r"\b(?:subcutanea|subcutaneo|subcutaneous|sc|sq)\b",
    "inhaled": r"\b(?:inhalada|inhalado|inalatoria|inalatorio|inhaled|inhalacion)\b",
}
_HALF = re.compile(r"\b(?:medio|media|meio|meia|half)\b")
_LEAD = re.compile(r"^(?:(?:por favor|favor|receta|recetar|recete|prescribir|prescriba|prescrever|prescreva|"
                   r"indicar|indique|administrar|administre|tomar|tome|dar|de|iniciar|inicie|comenzar|comece|"
                   r"paciente|el paciente|o paciente|orden|ordem|medicamento|medicacion|medicacao)\b[ ,:]*)+")
_DOSE = re.compile(rf"(?<![\w/]){_NUM} ?([a-zµμ]+(?: internacionales| internacionais)?)")


@dataclass
class SpokenOrder:
    """What was understood, and what was not (``missing``)."""

    drug: str | None = None
    dose: float | None = None
    unit: str | None = None
    frequency_per_day: float | None = None
    duration_days: float | None = None
    route: str | None = None
    permanent: bool = False
    language: str = "es"
    normalised_text: str = ""
    missing: list[str] = field(default_factory=list)

    def fields(self) -> dict:
        return {k: getattr(self, k) for k in ("drug", "dose", "unit", "frequency_per_day", "duration_days",
                                               "route", "permanent")}


def detect_language(text: str) -> str:
    t = _fold(text)
    pt = len(re.findall(r"\b(?:vezes|ao dia|em \w+ horas|miligramas|microgramas|dias?\b.*\bpor|comprimidos? por|"
                        r"uma|duas|dois|tres vezes|semanas|durante \w+ dias|gotas? de|xarope|jatos?|a cada)\b", t))
    es = len(re.findall(r"\b(?:veces|al dia|cada \w+ horas|miligramos|microgramos|una|dos|tabletas?|jarabe|"
                        r"durante \w+ dias|por \w+ dias)\b", t))
    if re.search(r"\bde \w+ em \w+ horas\b|\bvezes\b|\bao dia\b", t):
        return "pt"
    return "pt" if pt > es else "es"


def parse_frequency(text: str) -> float | None:
    """'cada 8 horas' -> 3; 'de 12 em 12 horas' -> 2; 'tres veces al día' -> 3; 'BID' -> 2."""
    t = _fold(text)
    if re.search(r"[a-z]", t):
        lang = detect_language(text)
        t = _fold(alpha2digit(t, lang, threshold=0))
    for pat, fn in _FREQUENCIES:
        m = pat.search(t)
        if m:
            try:
                v = fn(m)
            except (ValueError, ZeroDivisionError):
                continue
            if v:
                return round(float(v), 6)
    return None


def parse_spoken(text: str, language: str | None = None) -> SpokenOrder:
    """Parse one dictated order (es or pt; detected when ``language`` is None)."""
    lang = language or detect_language(text)
    if lang not in ("es", "pt"):
        raise ValueError("spoken orders are parsed in Spanish (es) or Portuguese (pt)")
    raw = alpha2digit(text, lang, threshold=0)
    t = _fold(raw).replace(",", " , ")
    t = re.sub(r"(\d) , (\d)", r"\1,\2", t)  # keep decimal commas ("2,5 mg")
    t = re.sub(r"\s+", " ", t)
    out = SpokenOrder(language=lang, normalised_text=t)
    out.frequency_per_day = parse_frequency(t)
    m = _DURATION.search(t)
    if m:
        n = parse_number(m.group(1))
        unit = m.group(2)
        out.duration_days = n * (7 if unit.startswith(("seman", "week")) else 30 if unit.startswith(("mes", "month"))
                                 else 1)
    out.permanent = bool(_CONTINUOUS.search(t))
    for route, pat in _ROUTES.items():
        if re.search(pat, t):
            out.route = route
            break
    # doses: every "<number> <unit>"; a counted unit is the dose and a mass one its strength
    found: list[tuple[int, int, float, str]] = []
    for dm in _DOSE.finditer(t):
        unit = canonical_unit(dm.group(2)) or canonical_unit(dm.group(2).split()[0])
        if unit is None:
            continue
        found.append((dm.start(), dm.end(), parse_number(dm.group(1)), unit))
    for hm in re.finditer(r"\b(?:medio|media|meio|meia|half) ([a-z]+)", t):
        unit = canonical_unit(hm.group(1))
        if unit and dimension(unit) == "count":
            found.append((hm.start(), hm.end(), 0.5, unit))
    found.sort()
    strength_txt = ""
    if found:
        counts = [f for f in found if dimension(f[3]) == "count"]
        masses = [f for f in found if dimension(f[3]) != "count"]
        if counts and masses:
            dose = counts[0]
            s = masses[0]
            strength_txt = f" {s[2]:g} {s[3]}"
        else:
            dose = found[0]
        out.dose, out.unit = dose[2], dose[3]
        name_end = found[0][0]
    else:
        name_end = len(t)
        out.missing.append("dose")
    name = t[:name_end]
    name = re.split(r"\b(?:cada|de \d+ em|durante|por \d+|\d)", name)[0]
    name = _LEAD.sub("", name.strip(" ,.:;")).strip(" ,.:;")
    name = re.sub(r"\b(?:de|en|em|con|com)$", "", name).strip()
    if not name and found:
        # "medio comprimido de clonazepam de 2 mg": the name follows the dose
        after = t[found[0][1]:]
        after = re.split(r"\b(?:cada|de \d+ em|durante|por|\d)", after)[0]
        name = re.sub(r"^\s*(?:de|do|da|of)\b", "", after).strip(" ,.:;")
        name = re.sub(r"\b(?:de|en|em|con|com)$", "", name).strip()
    out.drug = (name + strength_txt).strip() or None
    if not out.drug:
        out.missing.append("drug")
    if out.frequency_per_day is None:
        out.missing.append("frequency")
    return out
