"""The rule-based checks: validation (the seed's Fail State), catalogue dose
range, frequency, look-alike drug for the diagnosis, and the patient's history.

Each check returns a ``Check`` (name, result, score, reason). ``result`` is
``pass``, ``anomaly``, ``fail`` (validation only: the order is rejected) or
``skip`` (the check does not apply, with why). Reasons carry drug, dose and
diagnosis, never the patient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from medication.catalogue import Catalogue, Drug, icd_category, normalise_icd
from medication.order import Order
from medication.resolve import Resolution, Resolver
from medication.units import NormalDose, normalise_dose, split_unit

REQUIRED = ("patient", "drug", "dose", "unit", "frequency_per_day", "diagnosis")


@dataclass
class Check:
    name: str
    result: str  # pass | anomaly | fail | skip
    score: float | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "result": self.result,
                "score": None if self.score is None else round(float(self.score), 4), "reason": self.reason}


@dataclass
class Normalised:
    """An order after validation: the resolved drug and the daily dose in one unit."""

    order: Order
    drug: Drug | None
    drug_key: str
    resolution: Resolution
    dose: NormalDose
    daily_dose: float
    dose_unit: str
    diagnosis: str
    dx_group: str
    notes: list[str] = field(default_factory=list)

    @property
    def drug_name(self) -> str:
        return self.drug.display if self.drug else self.drug_key.removeprefix("x:")


def fmt(value: float, unit: str) -> str:
    if unit == "mg" and value >= 1000:
        return f"{value / 1000:.3g} g"
    if unit == "mg" and value < 1:
        return f"{value * 1000:.3g} mcg"
    return f"{value:.3g} {unit}"


def validate(order: Order, catalogue: Catalogue, resolver: Resolver,
             known_keys: set[str] | frozenset[str] = frozenset()) -> tuple[Check, Normalised | None]:
    """Missing/contradictory fields, unknown drug, unit vs form, absolute limits -> fail with reasons.

    A drug outside the catalogue is accepted when the loaded history has it
    (``known_keys``): it is then checked against history and population only.
    """
    reasons: list[str] = list(order.problems)
    present = {"patient": order.patient_token, "drug": order.drug_text, "dose": order.dose,
               "unit": order.unit_text, "frequency_per_day": order.frequency_per_day, "diagnosis": order.diagnosis}
    missing = [k for k in REQUIRED if present[k] in (None, "")]
    if missing:
        reasons.append("missing " + ", ".join(missing))
    if order.dose is not None and order.dose <= 0:
        reasons.append("dose must be positive")
    if order.frequency_per_day is not None and not (0 < order.frequency_per_day <= 24):
        reasons.append(f"frequency_per_day {order.frequency_per_day:g} is not in (0, 24]")
    if order.duration_days is not None and not (0 < order.duration_days <= 3650):
        reasons.append(f"duration_days {order.duration_days:g} is not in (0, 3650]")
    if order.age is not None and not (0 <= order.age <= 125):
        reasons.append(f"age {order.age:g} is not plausible")
    if order.weight_kg is not None and not (0.3 <= order.weight_kg <= 350):
        reasons.append(f"weight {order.weight_kg:g} kg is not plausible")
    if order.age is not None and order.weight_kg is not None and (
        (order.age >= 16 and order.weight_kg < 20) or (order.age < 1 and order.weight_kg > 20)
    ):
        reasons.append(f"weight {order.weight_kg:g} kg contradicts age {order.age:g}")
    dx = normalise_icd(order.diagnosis) if order.diagnosis else None
    if order.diagnosis and dx is None:
        reasons.append(f"diagnosis '{order.diagnosis[:12]}' is not an ICD-10 code")
    unit, per_kg, per_day = split_unit(order.unit_text) if order.unit_text else (None, False, False)
    if order.unit_text and unit is None:
        reasons.append(f"unknown unit '{order.unit_text[:16]}'")
    if per_kg and not order.weight_kg:
        reasons.append(f"dose in {order.unit_text[:16]} needs the patient's weight")
    res = resolver.resolve(order.drug_text) if order.drug_text else None
    drug = res.drug if res else None
    key = res.key if res else ""
    if res is not None and drug is None:
        if key in known_keys:
            pass  # outside the catalogue, but the history knows it: checked against history/population
        elif res.how == "ambiguous":
            names = " / ".join(c for c, _ in res.candidates[:2])
            reasons.append(f"drug '{order.drug_text[:40]}' is a look-alike of several drugs ({names}): "
                           "not guessing, name it exactly")
        else:
            hint = f" (closest: {res.candidates[0][0]})" if res.candidates else ""
            reasons.append(f"unknown drug '{order.drug_text[:40]}': not in the catalogue nor in the history{hint}")
    if reasons:
        return Check("validation", "fail", None, "; ".join(reasons)), None
    assert res is not None and unit is not None and order.dose is not None and order.frequency_per_day is not None
    amount = order.dose * (order.weight_kg if per_kg and order.weight_kg else 1.0)
    try:
        if drug is not None:
            dose = normalise_dose(amount, unit, base=drug.base_unit, iu_per_mg=drug.iu_per_mg, forms=drug.forms,
                                  strength_hint=res.strength)
        else:
            dose = normalise_dose(amount, unit, strength_hint=res.strength)
    except ValueError as exc:
        return Check("validation", "fail", None, f"{res.key}: {exc}"), None
    if per_day:  # the order gives the daily total: one "dose" is the total split over the day's doses
        dose = NormalDose(dose.value / order.frequency_per_day, dose.unit, dose.converted, dose.note)
    daily = dose.value * order.frequency_per_day
    norm = Normalised(order, drug, key, res, dose, daily, dose.unit, dx or "", icd_category(dx) or "")
    if res.how == "fuzzy":
        norm.notes.append(f"drug name '{order.drug_text[:40]}' read as {drug.display if drug else key}")
    if drug is not None and dose.converted:
        band = drug.band_for(order.age, order.weight_kg)
        if band is not None:
            _, lo, _hi, mx = band
            s = catalogue.settings
            if daily > mx * s.reject_above_max:
                return Check("validation", "fail", daily / mx,
                             f"{drug.display} {fmt(daily, dose.unit)}/day is over the absolute limit "
                             f"({s.reject_above_max:g} x maximum {fmt(mx, dose.unit)}/day)"), None
            if daily < lo * s.reject_below_usual:
                return Check("validation", "fail", daily / lo,
                             f"{drug.display} {fmt(daily, dose.unit)}/day is under the absolute limit "
                             f"({s.reject_below_usual:g} x usual minimum {fmt(lo, dose.unit)}/day): unit or decimal "
                             "error?"), None
    how = "" if not norm.notes else " (" + "; ".join(norm.notes) + ")"
    return Check("validation", "pass", None, f"complete; {norm.drug_name} {fmt(daily, dose.unit)}/day{how}"), norm


def dose_range(n: Normalised, catalogue: Catalogue) -> Check:
    """The catalogue's usual range for the patient's age band (per kg where the label doses by weight)."""
    if n.drug is None:
        return Check("dose_range", "skip", None, f"{n.drug_name} is not in the catalogue")
    if not n.dose.converted:
        return Check("dose_range", "skip", None, f"dose in {n.dose_unit} without a strength ({n.dose.note})")
    band = n.drug.band_for(n.order.age, n.order.weight_kg)
    if band is None:
        return Check("dose_range", "skip", None, "no catalogue band for this age/weight")
    b, lo, hi, mx = band
    s = catalogue.settings
    where = f"{'per-kg ' if b.per_kg else ''}band {b.ages[0]:g}-{b.ages[1]:g} y"
    if n.daily_dose > mx * s.anomaly_above_max:
        return Check("dose_range", "anomaly", n.daily_dose / mx,
                     f"{fmt(n.daily_dose, n.dose_unit)}/day is above the maximum {fmt(mx, n.dose_unit)}/day ({where})")
    if n.daily_dose < lo * s.anomaly_below_usual:
        return Check("dose_range", "anomaly", n.daily_dose / lo,
                     f"{fmt(n.daily_dose, n.dose_unit)}/day is far below the usual {fmt(lo, n.dose_unit)}-"
                     f"{fmt(hi, n.dose_unit)}/day ({where})")
    return Check("dose_range", "pass", n.daily_dose / mx,
                 f"within limits (usual {fmt(lo, n.dose_unit)}-{fmt(hi, n.dose_unit)}/day, max {fmt(mx, n.dose_unit)})")


def frequency(n: Normalised, population_max: float | None = None) -> Check:
    """Doses per day against the catalogue (or, for other drugs, the most the population was given).

    Only too-frequent dosing is an anomaly: 'every 8 hours' heard as 8 a day.
    Less frequent than usual is a legitimate regimen (weekly vitamin D)."""
    f = n.order.frequency_per_day or 0
    if n.drug is not None:
        hi = n.drug.frequency[1]
        if f > max(hi * 1.5, hi + 1):
            return Check("frequency", "anomaly", f / hi, f"{f:g} doses/day; {n.drug.display} is given at most {hi:g}/day")
        return Check("frequency", "pass", f / hi, f"{f:g}/day (usual up to {hi:g})")
    if population_max:
        if f > max(population_max * 1.5, population_max + 1):
            return Check("frequency", "anomaly", f / population_max,
                         f"{f:g} doses/day; the population was given at most {population_max:g}/day")
        return Check("frequency", "pass", f / population_max, f"{f:g}/day (population up to {population_max:g})")
    return Check("frequency", "skip", None, "no reference frequency")


def look_alike(n: Normalised, catalogue: Catalogue, pair_share: float | None) -> Check:
    """A drug that is not used for the diagnosis while its look-alike is: probably the wrong drug.

    ``pair_share`` is the fraction of the population's orders of this drug
    that carried the same diagnosis group (None when unknown).
    """
    if n.drug is None or not n.drug.look_alike:
        return Check("look_alike", "skip", None, "no look-alike names listed")
    if n.drug.indicated_for(n.diagnosis) or (pair_share is not None and pair_share >= 0.02):
        return Check("look_alike", "pass", pair_share, f"{n.drug.display} is used for {n.dx_group}")
    fits = [catalogue.drugs[x] for x in n.drug.look_alike if catalogue.drugs[x].indicated_for(n.diagnosis)]
    if not fits:
        return Check("look_alike", "pass", pair_share, f"no look-alike of {n.drug.display} is used for {n.dx_group}")
    return Check("look_alike", "anomaly", 1.0 - (pair_share or 0.0),
                 f"{n.drug.display} is not used for {n.dx_group}, but its look-alike {fits[0].display} is: "
                 "wrong drug?")


def history(n: Normalised, prior: list[tuple[date, float, bool]], catalogue: Catalogue) -> Check:
    """The patient's own history of this drug (same unit), within the recurrence window.

    Recurrent = at least ``recurrent_min_orders`` prior orders in the window,
    or marked permanent. Anomaly when |z| exceeds the ATC group's threshold
    AND the dose moved more than ``history_min_ratio`` (a titration step is
    not an error); with no spread, when the ratio to the mean leaves
    ``history_flat_ratio``.
    """
    s = catalogue.settings
    when = n.order.date or date.today()
    window = [(d, v, p) for d, v, p in prior if when - timedelta(days=s.recurrent_window_days) <= d <= when]
    permanent = n.order.permanent or any(p for _, _, p in window)
    if len(window) < s.recurrent_min_orders and not (permanent and window):
        why = f"not recurrent ({len(window)} prior orders in {s.recurrent_window_days} days)"
        if window:
            few = sum(v for _, v, _ in window) / len(window)
            r = n.daily_dose / few if few > 0 else float("inf")
            lo, hi = s.history_few_ratio
            if not (lo <= r <= hi):
                return Check("history", "anomaly", r,
                             f"{why}, but {fmt(n.daily_dose, n.dose_unit)}/day is {r:.2g}x the recent "
                             f"{fmt(few, n.dose_unit)}/day (outside [{lo:g}, {hi:g}])")
        return Check("history", "skip", None, why)
    doses = [v for _, v, _ in window]
    latest = max(window, key=lambda x: x[0])[1]
    mean = sum(doses) / len(doses)
    sd = math.sqrt(sum((v - mean) ** 2 for v in doses) / (len(doses) - 1)) if len(doses) > 1 else 0.0
    ratio = n.daily_dose / mean if mean > 0 else float("inf")
    base = f"{fmt(n.daily_dose, n.dose_unit)}/day vs the patient's mean {fmt(mean, n.dose_unit)}/day over {len(doses)} orders"
    if sd <= 1e-9 * max(mean, 1e-12):
        lo, hi = s.history_flat_ratio
        if not (lo <= ratio <= hi):
            return Check("history", "anomaly", ratio, f"{base} (ratio {ratio:.2g}, no spread; outside [{lo:g}, {hi:g}])")
        return Check("history", "pass", ratio, f"{base} (ratio {ratio:.2g})")
    z = (n.daily_dose - mean) / sd
    if abs(n.daily_dose / latest - 1) <= 0.1:
        # the dose of the latest order: the patient's current dose after a titration is not an error
        return Check("history", "pass", z, f"{base}: z = {z:.1f}, same as the latest order")
    k = catalogue.settings.z_threshold(n.drug.atc if n.drug else None)
    moved = ratio > s.history_min_ratio or ratio < 1 / s.history_min_ratio
    if abs(z) > k and moved:
        return Check("history", "anomaly", z, f"{base}: z = {z:.1f} (threshold {k:g}), ratio {ratio:.2g}")
    return Check("history", "pass", z, f"{base}: z = {z:.1f}")
