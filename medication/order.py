"""The order as it arrives and as it is kept.

``OrderIn`` is what a prescriber's system sends (the CLI/JSONL interface and
``POST /api/rx/orders``): every field optional at parse time, so a missing or
malformed field becomes a validation reason instead of an exception. On
arrival the patient identifier is replaced by the platform's keyed token
(``anonymization.keys.Keyring.patient_token``); ``Order`` and everything
stored or logged after it carry the token only.
"""

from __future__ import annotations

import os
import secrets
import datetime as dt
from datetime import date, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from anonymization.keys import Keyring, MissingKeyError, load_key


class OrderIn(BaseModel):
    """One order line, as in the interface: {"order_id", "patient_id", "age", "sex", "weight_kg",
    "diagnosis", "drug", "dose", "unit", "frequency_per_day", "duration_days", "date", "prescriber_id"}."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)
    order_id: str | None = None
    patient_id: str | None = Field(None, description="the hospital's patient id; tokenized on arrival, never stored")
    patient_document: list[str] | None = Field(
        None, description="optional [country, document type, number]: links with the imaging platform's tokens")
    age: Any = None
    sex: str | None = None
    weight_kg: Any = None
    diagnosis: str | None = Field(None, description="ICD-10 code, e.g. J02.9")
    drug: str | None = Field(None, description="generic or brand name, any of es/pt/en")
    dose: Any = None
    unit: str | None = None
    route: str | None = None
    frequency_per_day: Any = None
    duration_days: Any = None
    date: Any = None
    prescriber_id: str | None = None
    permanent: bool | None = Field(None, description="a permanent (chronic) treatment: the history check applies")
    patient_email: str | None = Field(None, description="where the patient is notified; kept apart from history")

    @field_validator("patient_id", "order_id", "prescriber_id", mode="before")
    @classmethod
    def _str(cls, v: Any) -> Any:
        return None if v is None else str(v).strip() or None


class Order(BaseModel):
    """A tokenized order: no identifier of the patient, only the keyed token."""

    order_id: str
    patient_token: str | None
    age: float | None = None
    sex: str | None = None
    weight_kg: float | None = None
    diagnosis: str | None = None
    drug_text: str | None = None
    dose: float | None = None
    unit_text: str | None = None
    route: str | None = None
    frequency_per_day: float | None = None
    duration_days: float | None = None
    date: dt.date | None = None
    prescriber_id: str | None = None
    permanent: bool = False
    problems: list[str] = []   # fields that could not be read, with why
    source: str = "json"       # json | spoken


def _num(v: Any, name: str, problems: list[str]) -> float | None:
    from medication.units import parse_number

    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return parse_number(v)
    except ValueError as exc:
        problems.append(f"{name}: {exc}")
        return None


def _date(v: Any, problems: list[str]) -> date | None:
    if v is None or v == "":
        return None
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    s = str(v).strip()
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%d/%m/%Y", "%Y%m%d"):
        try:
            return datetime.strptime(s[: len(datetime.now().strftime(fmt))], fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).date()
    except ValueError:
        problems.append("date: not a date (use YYYY-MM-DD)")
        return None


def _sex(v: str | None) -> str | None:
    if not v:
        return None
    s = v.strip().upper()[:1]
    return {"M": "M", "H": "M", "F": "F", "W": "F"}.get(s, "O")


def tokenize(order: OrderIn, keyring: Keyring, *, source: str = "json") -> Order:
    """The arrival step: identity out, token in; numbers and dates read leniently."""
    from medication.spoken import parse_frequency

    problems: list[str] = []
    token = None
    if order.patient_document and len(order.patient_document) == 3 and order.patient_document[2]:
        c, t, n = order.patient_document
        token = keyring.patient_token(document=(c, t, n))
    elif order.patient_id:
        token = keyring.patient_token(fallback_id=order.patient_id)
    freq = order.frequency_per_day
    if isinstance(freq, str) and not _looks_numeric(freq):
        parsed = parse_frequency(freq)
        if parsed is None:
            problems.append(f"frequency_per_day: cannot read '{freq[:40]}'")
            freq = None
        else:
            freq = parsed
    return Order(
        order_id=order.order_id or f"rx-{secrets.token_hex(6)}",
        patient_token=token,
        age=_num(order.age, "age", problems),
        sex=_sex(order.sex),
        weight_kg=_num(order.weight_kg, "weight_kg", problems),
        diagnosis=(order.diagnosis or "").strip() or None,
        drug_text=(order.drug or "").strip() or None,
        dose=_num(order.dose, "dose", problems),
        unit_text=(str(order.unit).strip() if order.unit is not None else None) or None,
        route=order.route,
        frequency_per_day=_num(freq, "frequency_per_day", problems),
        duration_days=_num(order.duration_days, "duration_days", problems),
        date=_date(order.date, problems),
        prescriber_id=order.prescriber_id,
        permanent=bool(order.permanent),
        problems=problems,
        source=source,
    )


def _looks_numeric(s: str) -> bool:
    import re

    return bool(re.fullmatch(r"\s*[0-9]+([.,][0-9]+)?\s*", s))


def keyring_for(store_dir: Path | None = None) -> Keyring:
    """The deployment key (``STA_SECRET_KEY``); outside a deployment, a per-store key file.

    Tokens must be stable across ``load-history`` and ``check`` runs. With
    ``STA_SECRET_KEY`` set (every deployment, ``make demo``), that key is used
    and tokens match the imaging platform's. Without it, a random key is
    created once beside the order store (mode 0600) so the store is still
    consistent, and a notice says tokens will not link with other stores.
    """
    try:
        return Keyring(load_key())
    except MissingKeyError:
        pass
    home = os.environ.get("AIRFLOW_HOME")
    if home and (Path(home) / "sta_secret_key").exists():
        return Keyring(load_key((Path(home) / "sta_secret_key").read_text().strip()))
    if store_dir is None:
        raise MissingKeyError("STA_SECRET_KEY is not set: cannot tokenize patient ids")
    path = Path(store_dir) / ".rx_token_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        import sys

        print(f"sta rx: STA_SECRET_KEY is not set; patient tokens use a key kept beside the store ({path}); "
              "they will not link with other stores", file=sys.stderr)
    return Keyring(load_key(path.read_text().strip()))
