"""Reference data: the drug catalogue, ICD-10 subset and prescriber directory.

All of it is data in ``include/medication`` (adding a drug is adding a YAML
entry), validated on load: a bad entry fails with the file, the entry and the
field named, never with a half-loaded catalogue.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from medication.units import Strength, parse_amount_unit, parse_strength, to_base

INCLUDE = Path(__file__).resolve().parent.parent / "include" / "medication"
ICD10_RE = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$")


class CatalogueError(ValueError):
    """A reference file that cannot be used; the message names file, entry and field."""


class DoseBand(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ages: tuple[float, float]
    per_kg: bool = False
    usual: tuple[float, float]
    max: float

    @model_validator(mode="after")
    def _ordered(self) -> "DoseBand":
        if not (0 <= self.ages[0] < self.ages[1]):
            raise ValueError(f"ages {list(self.ages)} must be [from, to) with from < to")
        if not (0 < self.usual[0] <= self.usual[1] <= self.max):
            raise ValueError(f"need 0 < usual lo <= usual hi <= max, got usual {list(self.usual)} max {self.max}")
        return self


class DrugEntry(BaseModel):
    """One catalogue entry as written in drugs.yaml."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    atc: str = Field(pattern=r"^[A-Z][0-9]{2}[A-Z]{2}[0-9]{2}$")
    ddd: str
    names: dict[Literal["en", "es", "pt"], list[str]]
    brands: list[str] = []
    unit: Literal["mg", "mcg", "g", "IU"]
    iu_per_mg: float | None = None
    forms: dict[str, list[str]]
    frequency: tuple[float, float]
    daily: list[DoseBand]
    indications: list[str] = []
    look_alike: list[str] = []
    sources: list[str]

    @field_validator("forms")
    @classmethod
    def _strengths(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        from medication.units import FORMS

        for form, strengths in v.items():
            if form not in FORMS:
                raise ValueError(f"unknown form {form!r} (known: {sorted(FORMS)})")
            for s in strengths:
                parse_strength(s)  # raises with the text named
        return v

    @field_validator("indications")
    @classmethod
    def _icd(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if not re.fullmatch(r"[A-Z][0-9]{0,2}", c)]
        if bad:
            raise ValueError(f"indications must be ICD-10 prefixes like 'J02' or 'I', got {bad}")
        return v

    @model_validator(mode="after")
    def _names(self) -> "DrugEntry":
        if not any(self.names.values()):
            raise ValueError("at least one generic name is needed")
        if not (0 < self.frequency[0] <= self.frequency[1]):
            raise ValueError(f"frequency {list(self.frequency)} must be [min, max] doses per day")
        return self


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reject_above_max: float
    reject_below_usual: float
    anomaly_above_max: float
    anomaly_below_usual: float
    history_z: dict[str, float]
    history_min_ratio: float
    history_flat_ratio: tuple[float, float]
    recurrent_min_orders: int
    recurrent_window_days: int
    history_few_ratio: tuple[float, float] = (0.14, 7.0)

    def z_threshold(self, atc: str | None) -> float:
        """Longest ATC prefix wins ('N03' before 'N'), else the default."""
        for n in (5, 4, 3, 1):
            if atc and atc[:n] in self.history_z:
                return self.history_z[atc[:n]]
        return self.history_z["default"]


@dataclass(frozen=True)
class Drug:
    """A resolved catalogue drug with doses in its base unit (mg or IU)."""

    id: str
    atc: str
    ddd: str
    base_unit: str  # "mg" or "IU"
    iu_per_mg: float | None
    names: tuple[str, ...]
    brands: tuple[str, ...]
    forms: dict[str, tuple[Strength, ...]]
    frequency: tuple[float, float]
    bands: tuple[DoseBand, ...]
    indications: tuple[str, ...]
    look_alike: tuple[str, ...]

    @property
    def display(self) -> str:
        return self.names[0]

    def band_for(self, age: float | None, weight_kg: float | None) -> tuple[DoseBand, float, float, float] | None:
        """The band for a patient, as (band, usual_lo, usual_hi, max) in base units per day.

        Per-kg bands need the weight; their figures are capped at the adult
        maximum (the highest band's max) as the labels say ("not to exceed").
        """
        if age is None:
            return None
        adult_max = max(b.max for b in self.bands if not b.per_kg) if any(not b.per_kg for b in self.bands) else None
        for b in self.bands:
            if b.ages[0] <= age < b.ages[1]:
                if b.per_kg:
                    if not weight_kg:
                        return None
                    lo, hi, mx = (b.usual[0] * weight_kg, b.usual[1] * weight_kg, b.max * weight_kg)
                    if adult_max is not None:
                        mx = min(mx, adult_max)
                        hi = min(hi, mx)
                        lo = min(lo, hi)
                    return b, lo, hi, mx
                return b, b.usual[0], b.usual[1], b.max
        return None

    def indicated_for(self, icd: str | None) -> bool:
        return bool(icd) and any(icd.startswith(p) for p in self.indications)


@dataclass
class Catalogue:
    drugs: dict[str, Drug]
    settings: Settings
    icd10: dict[str, dict[str, str]]
    prescribers: dict[str, dict[str, str]] = field(default_factory=dict)

    def drug(self, drug_id: str) -> Drug | None:
        return self.drugs.get(drug_id)


def _err(path: Path, where: str, exc: ValidationError) -> CatalogueError:
    parts = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        parts.append(f"{loc}: {e['msg']}")
    return CatalogueError(f"{path}: {where}: " + "; ".join(parts))


def _to_drug(e: DrugEntry) -> Drug:
    base = "IU" if e.unit == "IU" else "mg"
    factor = to_base(1.0, e.unit, base, e.iu_per_mg)
    bands = tuple(
        DoseBand(ages=b.ages, per_kg=b.per_kg, usual=(b.usual[0] * factor, b.usual[1] * factor), max=b.max * factor)
        for b in e.daily
    )
    names = tuple(dict.fromkeys(n for lang in ("es", "pt", "en") for n in e.names.get(lang, [])))
    return Drug(
        id=e.id, atc=e.atc, ddd=e.ddd, base_unit=base, iu_per_mg=e.iu_per_mg, names=names,
        brands=tuple(e.brands), forms={f: tuple(parse_strength(s) for s in ss) for f, ss in e.forms.items()},
        frequency=e.frequency, bands=bands, indications=tuple(e.indications), look_alike=tuple(e.look_alike),
    )


def _csv_rows(path: Path) -> list[dict[str, str]]:
    text = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#"))
    return list(csv.DictReader(io.StringIO(text)))


def load_catalogue(directory: Path | str | None = None) -> Catalogue:
    """Load and validate drugs.yaml, icd10.csv and prescribers.csv."""
    d = Path(directory) if directory else INCLUDE
    path = d / "drugs.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CatalogueError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict) or "drugs" not in raw or "settings" not in raw:
        raise CatalogueError(f"{path}: needs top-level 'settings' and 'drugs'")
    try:
        settings = Settings.model_validate(raw["settings"])
    except ValidationError as exc:
        raise _err(path, "settings", exc) from exc
    if "default" not in settings.history_z:
        raise CatalogueError(f"{path}: settings.history_z needs a 'default'")
    drugs: dict[str, Drug] = {}
    for i, item in enumerate(raw["drugs"] or []):
        where = f"drugs[{i}] ({item.get('id', '?') if isinstance(item, dict) else '?'})"
        try:
            entry = DrugEntry.model_validate(item)
            drug = _to_drug(entry)
        except ValidationError as exc:
            raise _err(path, where, exc) from exc
        except ValueError as exc:
            raise CatalogueError(f"{path}: {where}: {exc}") from exc
        if drug.id in drugs:
            raise CatalogueError(f"{path}: {where}: duplicate id {drug.id!r}")
        drugs[drug.id] = drug
    for drug in drugs.values():
        missing = [x for x in drug.look_alike if x not in drugs]
        if missing:
            raise CatalogueError(f"{path}: drugs ({drug.id}): look_alike names unknown ids {missing}")
    icd_path = d / "icd10.csv"
    icd: dict[str, dict[str, str]] = {}
    for n, row in enumerate(_csv_rows(icd_path), start=1):
        code = (row.get("code") or "").strip()
        if not ICD10_RE.match(code):
            raise CatalogueError(f"{icd_path}: row {n}: code {code!r} is not an ICD-10 code")
        icd[code] = row
    prescribers: dict[str, dict[str, str]] = {}
    pres_path = d / "prescribers.csv"
    if pres_path.exists():
        for n, row in enumerate(_csv_rows(pres_path), start=1):
            pid = (row.get("prescriber_id") or "").strip()
            if not pid or "@" not in (row.get("email") or ""):
                raise CatalogueError(f"{pres_path}: row {n}: needs prescriber_id and an e-mail")
            prescribers[pid] = row
    return Catalogue(drugs=drugs, settings=settings, icd10=icd, prescribers=prescribers)


@lru_cache(maxsize=4)
def default_catalogue() -> Catalogue:
    return load_catalogue(None)


def icd_category(code: str | None) -> str | None:
    """'J02.9' -> 'J02' (the group the population model conditions on)."""
    if not code:
        return None
    c = code.strip().upper()
    return c[:3] if ICD10_RE.match(c) else None


def normalise_icd(code: str | None) -> str | None:
    """'j029' / 'J02.9' / 'J02' -> canonical 'J02.9' / 'J02'; None when not ICD-10 shaped."""
    if not code:
        return None
    c = re.sub(r"[\s.]", "", code.strip().upper())
    if not re.fullmatch(r"[A-Z][0-9]{2}[0-9A-Z]{0,4}", c):
        return None
    return c[:3] + ("." + c[3:] if len(c) > 3 else "")


def parse_ddd(text: str) -> tuple[float, str] | None:
    try:
        return parse_amount_unit(text)
    except ValueError:
        return None
