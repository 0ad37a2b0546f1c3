"""Dose units: spellings, decimal commas, strengths and normalisation.

Every dose is brought to one base unit per drug before it is compared with
anything: milligrams for drugs dosed by mass, IU for drugs dosed in
international units (with ``iu_per_mg`` when both are in use, e.g.
cholecalciferol 40 IU = 1 mcg). Volumes (mL, drops) become mass/IU through
the liquid form's concentration; counted units (tablets, capsules, puffs)
through the form's strength. A unit that cannot reach the drug's base unit is
an error with a reason, never a guess.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MASS = {"mg": 1.0, "mcg": 1e-3, "g": 1e3, "ng": 1e-6, "kg": 1e6}
IU = {"IU": 1.0, "kIU": 1e3, "MIU": 1e6}
VOLUME = {"mL": 1.0, "L": 1e3}
DROPS_PER_ML = 20.0  # the pharmacopoeial dropper (Ph. Eur. 2.1.1): 20 drops = 1 mL of water

# Counted dose units and the forms they are taken from.
COUNT_FORMS = {
    "tablet": ("tablet", "capsule"),
    "capsule": ("capsule", "tablet"),
    "puff": ("inhaler",),
    "drop": ("drops",),
    "ampoule": ("injection",),
    "sachet": ("sachet", "suspension"),
}
LIQUID_FORMS = ("suspension", "solution", "drops", "injection", "syrup")
FORMS = {"tablet", "capsule", "suspension", "solution", "drops", "injection", "inhaler", "syrup", "sachet"}

_ALIASES: dict[str, str] = {}


def _add(canonical: str, *spellings: str) -> None:
    for s in (canonical, *spellings):
        _ALIASES[_fold(s)] = canonical


def _fold(text: str) -> str:
    t = unicodedata.normalize("NFKD", text.replace("µ", "u").replace("μ", "u"))
    t = "".join(c for c in t if not unicodedata.combining(c)).lower().strip()
    return re.sub(r"[\s.]+", " ", t).strip()


_add("mg", "mgs", "mg.", "miligramo", "miligramos", "miligrama", "miligramas", "milligram", "milligrams",
     "milligramme", "milligrammes", "mgr")
_add("mcg", "µg", "μg", "ug", "mcgs", "microgramo", "microgramos", "micrograma", "microgramas", "microgram",
     "micrograms", "microgramme", "gamma", "gammas", "mcgr")
_add("g", "gr", "grs", "gramo", "gramos", "grama", "gramas", "gram", "grams", "gm", "gms")
_add("ng", "nanogramo", "nanogramos", "nanograma", "nanogramas", "nanogram", "nanograms")
_add("IU", "UI", "U", "iu", "ui", "unidades", "unidad", "unidade", "unit", "units", "international units",
     "unidades internacionales", "unidades internacionais", "unidad internacional", "unidade internacional", "ie")
_add("kIU", "kui", "kiu", "mil ui", "mil unidades", "thousand units", "ku")
_add("MIU", "mui", "miu", "millones de unidades", "milhoes de unidades", "million units")
_add("mL", "ml", "cc", "cm3", "mililitro", "mililitros", "milliliter", "milliliters", "millilitre", "millilitres")
_add("L", "l", "litro", "litros", "liter", "liters", "litre", "litres")
_add("tablet", "tab", "tabs", "tablets", "tableta", "tabletas", "comprimido", "comprimidos", "comp", "comps",
     "cp", "cps", "cpr", "cprs", "pastilla", "pastillas", "gragea", "grageas", "pildora", "pildoras", "pill", "pills")
_add("capsule", "cap", "caps", "capsules", "capsula", "capsulas", "capsulas", "capsule(s)")
_add("puff", "puffs", "inhalacion", "inhalaciones", "inhalacao", "inhalacoes", "inalacao", "inalacoes", "jato",
     "jatos", "disparo", "disparos", "aplicacion", "aplicaciones", "inhalation", "inhalations", "actuation",
     "actuations")
_add("drop", "drops", "gota", "gotas", "gtt", "gtts")
_add("ampoule", "ampolla", "ampollas", "ampola", "ampolas", "vial", "viales", "frasco ampola", "ampoules", "amp")
_add("sachet", "sachets", "sobre", "sobres", "sache", "saches", "envelope", "envelopes")


def canonical_unit(text: str | None) -> str | None:
    """'Miligramos' -> 'mg', 'µg' -> 'mcg', 'UI' -> 'IU', 'comprimidos' -> 'tablet'; None if unknown."""
    if text is None:
        return None
    return _ALIASES.get(_fold(str(text)))


_PER_KG = re.compile(r"\s*/\s*(?:kg|kilo|kilogramo|kilograma|kilogram)s?\b", re.IGNORECASE)
_PER_DAY = re.compile(r"(?:\s*/\s*|\s+(?:por|per|al|ao|a)\s+)(?:d|dia|día|day|24\s*h|24\s*horas?)s?\s*$",
                      re.IGNORECASE)


def split_unit(text: str) -> tuple[str | None, bool, bool]:
    """'mg/kg/día' -> ('mg', per_kg=True, per_day=True); 'mcg/kg' -> ('mcg', True, False); 'UI' -> ('IU', False, False).

    Paediatric orders are often written per kg of body weight and sometimes as
    a daily total; the dose is then multiplied by the weight and/or not by the
    frequency.
    """
    t = str(text).strip()
    per_day = bool(_PER_DAY.search(t))
    t = _PER_DAY.sub("", t)
    per_kg = bool(_PER_KG.search(t))
    t = _PER_KG.sub("", t)
    return canonical_unit(t), per_kg, per_day


def dimension(unit: str) -> str:
    if unit in MASS:
        return "mass"
    if unit in IU:
        return "iu"
    if unit in VOLUME:
        return "volume"
    return "count"


def parse_number(value: object) -> float:
    """A dose number as people write it: 500, '500', '2,5', '0.5', '1.000,5', '1,000.5', '½', '1/2'.

    A lone comma is a decimal comma (Spanish/Portuguese usage), unless it
    groups thousands unambiguously ('12,500,000'); with both separators the
    last one is the decimal point.
    """
    if isinstance(value, bool):
        raise ValueError("a dose must be a number")
    if isinstance(value, (int, float)):
        f = float(value)
    else:
        s = str(value).strip().replace("\u00a0", "").replace(" ", "")
        s = s.replace("½", ".5" if s[:-1] else "0.5").replace("¼", ".25" if s[:-1] else "0.25")
        if re.fullmatch(r"\d+/\d+", s):
            a, b = s.split("/")
            f = float(a) / float(b)
        else:
            if "," in s and "." in s:
                if s.rfind(",") > s.rfind("."):
                    s = s.replace(".", "").replace(",", ".")
                else:
                    s = s.replace(",", "")
            elif s.count(",") > 1 and re.fullmatch(r"\d{1,3}(,\d{3})+", s):
                s = s.replace(",", "")
            elif "," in s:
                s = s.replace(",", ".")
            elif s.count(".") > 1 and re.fullmatch(r"\d{1,3}(\.\d{3})+", s):
                s = s.replace(".", "")
            try:
                f = float(s)
            except ValueError:
                raise ValueError(f"'{value}' is not a number") from None
    if f != f or f in (float("inf"), float("-inf")):
        raise ValueError("a dose must be a finite number")
    return f


_AMOUNT_RE = re.compile(r"^\s*([0-9][0-9.,]*|[0-9]*[.,][0-9]+)\s*([^\s/0-9][^/]*?)\s*$")


def parse_amount_unit(text: str) -> tuple[float, str]:
    """'1.5 g' -> (1.5, 'g'); '40 IU' -> (40, 'IU')."""
    m = _AMOUNT_RE.match(text)
    if not m:
        raise ValueError(f"'{text}' is not an amount with a unit")
    unit = canonical_unit(m.group(2))
    if unit is None:
        raise ValueError(f"'{text}': unknown unit '{m.group(2)}'")
    return parse_number(m.group(1)), unit


@dataclass(frozen=True)
class Strength:
    """A form's strength: amount of drug per dose unit or per volume.

    '500 mg' -> (500, mg, per None); '250 mg/5 mL' -> (250, mg, 5, mL);
    '100 mcg/puff' -> (100, mcg, 1, puff); '200 IU/drop' -> (200, IU, 1, drop).
    """

    amount: float
    unit: str
    per_amount: float | None = None
    per_unit: str | None = None
    text: str = ""


def parse_strength(text: str) -> Strength:
    parts = str(text).split("/")
    if len(parts) > 2:
        raise ValueError(f"strength '{text}' has more than one '/'")
    amount, unit = parse_amount_unit(parts[0])
    if len(parts) == 1:
        return Strength(amount, unit, text=text)
    per = parts[1].strip()
    m = re.match(r"^([0-9][0-9.,]*)?\s*(.+)$", per)
    if not m:
        raise ValueError(f"strength '{text}': cannot read '{per}'")
    per_unit = canonical_unit(m.group(2))
    if per_unit is None:
        raise ValueError(f"strength '{text}': unknown unit '{m.group(2)}'")
    return Strength(amount, unit, parse_number(m.group(1)) if m.group(1) else 1.0, per_unit, text=text)


def to_base(value: float, unit: str, base: str, iu_per_mg: float | None = None) -> float:
    """Convert ``value unit`` to the base unit (mg or IU); ValueError when no conversion exists."""
    if unit in MASS and base == "mg":
        return value * MASS[unit]
    if unit in IU and base == "IU":
        return value * IU[unit]
    if unit in MASS and base == "IU" and iu_per_mg:
        return value * MASS[unit] * iu_per_mg
    if unit in IU and base == "mg" and iu_per_mg:
        return value * IU[unit] / iu_per_mg
    raise ValueError(f"{unit} cannot be converted to {base}")


@dataclass(frozen=True)
class NormalDose:
    """A single dose in a comparable unit.

    ``unit`` is the drug's base unit (mg/IU) when it could be reached, else the
    dimension's own unit ('mL', 'tablet', ...) and ``converted`` is False: such
    doses are still compared with history/population in the same unit.
    """

    value: float
    unit: str
    converted: bool
    note: str = ""


def normalise_dose(
    value: float,
    unit: str,
    *,
    base: str | None = None,
    iu_per_mg: float | None = None,
    forms: dict[str, tuple[Strength, ...]] | None = None,
    strength_hint: Strength | None = None,
) -> NormalDose:
    """One dose -> base unit. ``base``/``forms`` are None for drugs outside the catalogue.

    Raises ValueError with the reason when the unit cannot apply to the drug
    (IU for a mass-dosed drug, mL for a drug with no liquid form, tablets for
    an inhaler...). Counted/volume units with several possible strengths and
    no strength given stay in their own unit (converted=False).
    """
    if unit in MASS or unit in IU:
        if base is None:
            b = "mg" if unit in MASS else "IU"
            return NormalDose(to_base(value, unit, b), b, True)
        try:
            return NormalDose(to_base(value, unit, base, iu_per_mg), base, True)
        except ValueError:
            raise ValueError(f"unit {unit} is incompatible with this drug (dosed in {base})") from None
    if base is None or forms is None:
        if unit in VOLUME:
            return NormalDose(value * VOLUME[unit], "mL", False)
        return NormalDose(value, unit, False)
    if unit in VOLUME or unit == "drop":
        liquids = {f: s for f, s in forms.items() if f in LIQUID_FORMS}
        if not liquids:
            raise ValueError(f"unit {unit} is incompatible with this drug's forms ({', '.join(sorted(forms))})")
        ml = value * VOLUME[unit] if unit in VOLUME else None
        cands: list[Strength] = []
        if strength_hint and strength_hint.per_unit:
            cands = [strength_hint]
        else:
            cands = [s for ss in liquids.values() for s in ss]
        if unit == "drop":
            per_drop = [s for s in cands if s.per_unit == "drop"]
            if per_drop:
                vals = {to_base(value * s.amount / (s.per_amount or 1), s.unit, base, iu_per_mg) for s in per_drop}
                if len(vals) == 1:
                    return NormalDose(vals.pop(), base, True, f"drops x {per_drop[0].text}")
            ml = value / DROPS_PER_ML
        per_ml = [s for s in cands if s.per_unit == "mL"]
        vals = {round(to_base(ml * s.amount / (s.per_amount or 1), s.unit, base, iu_per_mg), 9) for s in per_ml}
        if len(vals) == 1:
            s = per_ml[0]
            return NormalDose(vals.pop(), base, True, f"{ml:g} mL x {s.text}")
        return NormalDose(ml, "mL", False, "several concentrations and none given")
    if unit in COUNT_FORMS:
        allowed = [f for f in COUNT_FORMS[unit] if f in forms]
        if not allowed:
            raise ValueError(f"unit {unit} is incompatible with this drug's forms ({', '.join(sorted(forms))})")
        if strength_hint and strength_hint.per_unit in (None, unit):
            s = strength_hint
            return NormalDose(to_base(value * s.amount, s.unit, base, iu_per_mg), base, True, f"x {s.text}")
        strengths = {s for f in allowed for s in forms[f] if s.per_unit in (None, unit, "puff" if unit == "puff" else None)}
        amounts = {to_base(s.amount, s.unit, base, iu_per_mg) for s in strengths}
        if len(amounts) == 1:
            return NormalDose(value * amounts.pop(), base, True, f"x {next(iter(strengths)).text}")
        return NormalDose(value, "tablet" if unit == "capsule" else unit, False, "several strengths and none given")
    raise ValueError(f"unit {unit} is not a dose unit")


STRENGTH_IN_TEXT = re.compile(
    r"(?P<amount>\d+(?:[.,]\d+)?)\s*(?P<unit>mg|mcg|µg|μg|ug|g|ui|iu|u)\b(?:\s*/\s*(?P<per>\d+(?:[.,]\d+)?)?\s*(?P<perunit>ml|puff|gota|drop))?",
    re.IGNORECASE,
)


def strength_in_name(text: str) -> tuple[Strength | None, str]:
    """'Amoxil 500 mg cápsulas' -> (Strength 500 mg, 'Amoxil cápsulas')."""
    m = STRENGTH_IN_TEXT.search(text or "")
    if not m:
        return None, text
    s = f"{m.group('amount')} {m.group('unit')}"
    if m.group("perunit"):
        s += f"/{m.group('per') or 1} {m.group('perunit')}"
    try:
        strength = parse_strength(s)
    except ValueError:
        return None, text
    rest = (text[: m.start()] + " " + text[m.end():]).strip()
    return strength, re.sub(r"\s+", " ", rest)
