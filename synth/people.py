"""Synthetic people: names, national documents, addresses, phones, physicians.

Everything here is invented from the seed. Names are drawn from common
Colombian and Brazilian given names and surnames so that accents, particles
("da", "dos") and two-surname conventions exercise the de-identification
and the patient-linking code the way real exports do.

A person's *identity* (national document, birth date, sex) is fixed; how a
hospital *writes* the name is not: :class:`NameForm` renders one person as a
given hospital spells it (case, accents, order, second surname dropped), which
is what makes linking across partners need the national ID rather than the
name. The name and place lists are data in ``synth/data/people.yaml``.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, replace
from datetime import date, timedelta

from .rng import permute, rng
from .tables import table

_CO, _BR = table("people")["co"], table("people")["br"]
CO_GIVEN_M: list[str] = _CO["given_m"]
CO_GIVEN_F: list[str] = _CO["given_f"]
CO_SURNAMES: list[str] = _CO["surnames"]
BR_GIVEN_M: list[str] = _BR["given_m"]
BR_GIVEN_F: list[str] = _BR["given_f"]
BR_SURNAMES: list[str] = _BR["surnames"]
BR_PARTICLES: list[str] = _BR["particles"]
CO_CITIES: list[tuple[str, str, str]] = [tuple(c) for c in _CO["cities"]]  # (city, department, phone area)
CO_STREETS: list[str] = _CO["streets"]
BR_STREETS: list[str] = _BR["streets"]
BR_DISTRICTS: list[str] = _BR["districts"]
BR_CITIES: list[tuple[str, str, str]] = [tuple(c) for c in _BR["cities"]]  # (city, state, DDD)


def strip_accents(s: str) -> str:
    """'Núñez' -> 'Nunez': what many PACS and every burned-in overlay do to names."""
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


def cpf_check_digits(base9: str) -> str:
    """The two CPF verification digits (Receita Federal modulo-11 rule)."""
    digits = [int(c) for c in base9]
    d1 = (sum(d * (10 - i) for i, d in enumerate(digits)) * 10 % 11) % 10
    digits.append(d1)
    d2 = (sum(d * (11 - i) for i, d in enumerate(digits)) * 10 % 11) % 10
    return f"{d1}{d2}"


def format_cpf(number: str) -> str:
    return f"{number[:3]}.{number[3:6]}.{number[6:9]}-{number[9:]}"


def format_cc(number: str) -> str:
    """'1020304050' -> '1.020.304.050' (how cédulas are printed)."""
    return f"{int(number):,}".replace(",", ".")


@dataclass(frozen=True)
class NameForm:
    """One spelling of a person's name: the words, and how a hospital writes them."""

    given: tuple[str, ...]
    middle: tuple[str, ...]  # Brazilian particle + non-final surnames; empty for Colombians
    family: tuple[str, ...]  # Colombian: paternal, maternal; Brazilian: final surname
    upper: bool = True
    accents: bool = True
    caret: bool = True  # DICOM PN with '^' between family and given names
    given_first: bool = False  # order of the two groups

    def _w(self, words: tuple[str, ...]) -> str:
        s = " ".join(words)
        if not self.accents:
            s = strip_accents(s)
        if self.upper:
            return s.upper()
        # title case that keeps particles lower case
        return " ".join(w if w.lower() in BR_PARTICLES else w[:1].upper() + w[1:].lower() for w in s.split())

    def pn(self) -> str:
        """The DICOM PersonName value as this hospital writes it."""
        fam = self._w(self.family)
        giv = self._w(self.given + self.middle)
        if self.caret:
            return f"{giv}^{fam}" if self.given_first else f"{fam}^{giv}"
        if self.given_first:
            return f"{giv} {fam}"
        return f"{fam} {giv}"

    def display(self) -> str:
        """Natural reading order, for report headers ('Juan Carlos Pérez Gómez')."""
        return self._w(self.given + self.middle + self.family)

    def surname(self) -> str:
        return self._w(self.family[:1])


@dataclass(frozen=True)
class Person:
    """A synthetic patient; ``key`` is stable for the run and never written into a file."""

    key: str
    index: int
    country: str  # "co" or "br": where the person lives and which document they hold
    sex: str  # "F" or "M"
    name: NameForm
    birth_date: date
    id_type: str | None  # "CC", "CPF" or None
    id_number: str | None  # digits only
    address: str
    city: str
    phone: str
    mother: NameForm
    height_m: float
    weight_kg: float


def _national_id(index: int, seed: int, country: str, birth: date) -> tuple[str, str]:
    if country == "co":
        # Old cédulas are shorter: 6-8 digits before ~1960, 8-10 after, 10 for the young.
        length = 7 if birth.year < 1955 else 8 if birth.year < 1975 else 10
        lo = 10 ** (length - 1)
        span = 2 * lo // 10 if length == 10 else 9 * lo  # 10-digit cédulas are 1.0xx-1.1xx million
        return "CC", str(lo + permute(index, span, seed, f"cc{length}"))
    base = f"{permute(index, 10**9, seed, 'cpf'):09d}"
    if len(set(base)) == 1:  # 111.111.111-xx style numbers are invalid CPFs
        base = base[:-1] + str((int(base[-1]) + 1) % 10)
    return "CPF", base + cpf_check_digits(base)


def _address(r: random.Random, country: str) -> tuple[str, str]:
    """A street address that fits DICOM PatientAddress (LO, at most 64 characters)."""
    if country == "co":
        city, dept, _ = r.choice(CO_CITIES)
        street = r.choice(CO_STREETS)
        n1 = r.randint(1, 120)
        letter = r.choice(["", "", "", "A", "B", "C"])
        extra = r.choice(["", "", f" Apto {r.randint(1, 20)}{r.randint(1, 4):02d}", f" Int {r.randint(1, 9)}"])
        place = f"{city}, {dept}" if dept and r.random() < 0.5 else city
        parts = [f"{street} {n1}{letter} # {r.randint(1, 99)}-{r.randint(1, 99)}", extra, f", {place}"]
    else:
        city, uf, _ = r.choice(BR_CITIES)
        extra = r.choice(["", "", f", ap {r.randint(1, 25)}{r.randint(1, 4)}", f", casa {r.randint(1, 3)}"])
        district = r.choice(BR_DISTRICTS)
        parts = [f"{r.choice(BR_STREETS)}, {r.randint(10, 3999)}", extra, f" - {district}, {city}-{uf}"]
    address = "".join(parts)
    if len(address) > 64:
        address = parts[0] + parts[2]
    if len(address) > 64:
        address = parts[0] + f", {city}"
    return address, city


def _phone(r: random.Random, country: str) -> str:
    if country == "co":
        if r.random() < 0.7:
            n = f"3{r.randint(0, 2)}{r.randint(0, 9)}{r.randint(0, 9999999):07d}"
            return r.choice([n, f"{n[:3]} {n[3:6]} {n[6:]}", f"+57 {n[:3]} {n[3:6]} {n[6:]}"])
        _, _, area = r.choice(CO_CITIES)
        return f"({area}) {r.randint(200, 599)} {r.randint(0, 9999):04d}"
    _, _, ddd = r.choice(BR_CITIES)
    if r.random() < 0.7:
        return r.choice([f"({ddd}) 9{r.randint(6000, 9999)}-{r.randint(0, 9999):04d}",
                         f"+55 {ddd} 9{r.randint(6000, 9999)}{r.randint(0, 9999):04d}"])
    return f"({ddd}) {r.randint(2000, 5999)}-{r.randint(0, 9999):04d}"


def _name(r: random.Random, country: str, sex: str) -> NameForm:
    if country == "co":
        pool = CO_GIVEN_F if sex == "F" else CO_GIVEN_M
        given = tuple(r.sample(pool, 2 if r.random() < 0.55 else 1))
        family = tuple(r.sample(CO_SURNAMES, 2))
        return NameForm(given=given, middle=(), family=family)
    pool = BR_GIVEN_F if sex == "F" else BR_GIVEN_M
    given = tuple(r.sample(pool, 2 if r.random() < 0.4 else 1))
    surnames = r.sample(BR_SURNAMES, 2)
    middle: tuple[str, ...] = ()
    if r.random() < 0.75:
        middle = ((r.choice(BR_PARTICLES),) if r.random() < 0.6 else ()) + (surnames[0],)
    return NameForm(given=given, middle=middle, family=(surnames[1],))


def make_person(index: int, seed: int, country: str, *, has_id: bool = True,
                sex: str | None = None, age_range: tuple[int, int] | None = None) -> Person:
    """Patient number ``index`` of the run; the same index and seed give the same person."""
    r = rng(seed, "person", index)
    sex = sex or r.choice("FM")
    lo, hi = age_range or (18, 94)
    age = r.randint(lo, hi) if r.random() < 0.9 else r.randint(lo, min(hi, 40))
    birth = date(2025 - age, 1, 1) + timedelta(days=r.randint(0, 364))
    name = _name(r, country, sex)
    mother_given = r.choice(CO_GIVEN_F if country == "co" else BR_GIVEN_F)
    if country == "co":
        mother = NameForm(given=(mother_given,), middle=(),
                          family=(name.family[-1], r.choice(CO_SURNAMES)))
    else:
        mother = NameForm(given=(mother_given,), middle=name.middle[-1:], family=(r.choice(BR_SURNAMES),))
    id_type, id_number = _national_id(index, seed, country, birth) if has_id else (None, None)
    address, city = _address(r, country)
    height = round(r.gauss(1.62 if sex == "F" else 1.73, 0.07), 2)
    weight = round(max(42.0, r.gauss(66 if sex == "F" else 78, 12)), 1)
    return Person(
        key=f"P{index:06d}", index=index, country=country, sex=sex, name=name, birth_date=birth,
        id_type=id_type, id_number=id_number, address=address, city=city, phone=_phone(r, country),
        mother=mother, height_m=height, weight_kg=weight,
    )


def hospital_style(r: random.Random, partner_country: str, name: NameForm) -> NameForm:
    """How a hospital of ``partner_country`` habitually writes names."""
    if partner_country == "co":
        return replace(name, upper=True, accents=r.random() < 0.6, caret=True, given_first=False)
    caret = r.random() < 0.4
    return replace(name, upper=True, accents=r.random() < 0.4, caret=caret, given_first=not caret)


def spelling_variant(r: random.Random, name: NameForm) -> tuple[NameForm, list[str]]:
    """A different spelling of the same name, as a second hospital would register it.

    Applies one to three of: accents dropped, second surname missing, order
    changed, different case; the result always differs from ``name`` as PN.
    """
    ops = ["accents", "second_surname", "order", "case"]
    r.shuffle(ops)
    applied: list[str] = []
    out = name
    for op in ops:
        if op == "accents" and out.accents and strip_accents(out.pn()) != out.pn():
            out = replace(out, accents=False)
        elif op == "second_surname" and len(out.family) > 1:
            out = replace(out, family=out.family[:1])
        elif op == "second_surname" and len(out.middle) > 0:
            out = replace(out, middle=())
        elif op == "order":
            out = replace(out, given_first=not out.given_first, caret=r.random() < 0.5)
        elif op == "case":
            out = replace(out, upper=not out.upper)
        else:
            continue
        applied.append(op)
        if out.pn() != name.pn() and (len(applied) >= 2 or r.random() < 0.5):
            break
    if out.pn() == name.pn():  # cannot happen with 'case', kept as a guard
        out = replace(out, upper=not out.upper)
        applied.append("case")
    return out, applied


# Physicians and staff: small fixed pools per partner, like a real department.

def physician_pool(seed: int, partner_id: str, country: str, role: str, n: int) -> list[NameForm]:
    r = rng(seed, "staff", partner_id, role)
    out = []
    for _ in range(n):
        sex = r.choice("FM")
        out.append(_name(r, country, sex))
    return out


def is_female(name: NameForm) -> bool:
    """Whether the first given name is in the female lists (for 'Dr.' / 'Dra.')."""
    return name.given[0] in CO_GIVEN_F or name.given[0] in BR_GIVEN_F


def physician_pn(name: NameForm, prefix: str) -> str:
    """DICOM PN with a name prefix component: 'MEJIA GIRALDO^ANDRES^^Dr.'."""
    fam = name._w(name.family)
    giv = name._w(name.given + name.middle)
    return f"{fam}^{giv}^^{prefix}"


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))
