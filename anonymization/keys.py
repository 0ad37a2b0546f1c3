"""Keyed, irreversible derivations: patient tokens, UIDs and date offsets.

All three are HMAC-SHA256 under one deployment secret, each with its own
domain-separation label, so that a study stays a study across files, runs,
workers and partners, and nobody without the key can compute or reverse any
of them. The key is never in the repository: it comes from ``STA_SECRET_KEY``
(set by an Airflow Connection / secrets backend in a deployment).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import unicodedata
from dataclasses import dataclass
from datetime import timedelta

MIN_KEY_BYTES = 16


class MissingKeyError(RuntimeError):
    """Raised instead of de-identifying with a guessable or empty key."""


# Offsets are drawn from this range for every patient (1 to 10 years back): one range per deployment.
DATE_SHIFT_RANGE_DAYS = (-3650, -366)


def load_key(value: str | bytes | None = None) -> bytes:
    raw = value if value is not None else os.environ.get("STA_SECRET_KEY", "")
    key = raw.encode() if isinstance(raw, str) else raw
    if len(key) < MIN_KEY_BYTES:
        raise MissingKeyError(
            "STA_SECRET_KEY is not set (or shorter than 16 bytes): refusing to de-identify "
            "without the deployment's secret key"
        )
    return key


def _mac(key: bytes, label: str, message: str) -> bytes:
    return hmac.new(key, f"{label}\x00{message}".encode("utf-8"), hashlib.sha256).digest()


def normalise_text(value: str) -> str:
    """Upper-case, accents stripped, punctuation folded: 'José  Pérez' == 'JOSE PEREZ'."""
    decomposed = unicodedata.normalize("NFKD", value)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.sub(r"[^0-9A-Z]+", " ", stripped.upper()).strip()


def normalise_document(number: str) -> str:
    """National document numbers are compared on their alphanumerics: '123.456.789-09' == '12345678909'."""
    return re.sub(r"[^0-9A-Z]", "", number.upper())


@dataclass(frozen=True)
class Keyring:
    key: bytes

    @classmethod
    def from_env(cls) -> "Keyring":
        return cls(load_key())

    def patient_token(
        self,
        *,
        document: tuple[str, str, str] | None = None,
        name: str | None = None,
        birth_date: str | None = None,
        fallback_id: str | None = None,
    ) -> str:
        """32 hex chars identifying a person across partners, years and regions.

        ``document`` is (country, document type, number), e.g. ("CO", "CC",
        "1020304050"). Without one, name + birth date; without those, the
        partner's own patient id (which links only within that partner).
        """
        if document and document[2] and normalise_document(document[2]):
            country, doc_type, number = document
            msg = f"doc|{country.upper()}|{doc_type.upper()}|{normalise_document(number)}"
        elif name and birth_date:
            tokens = sorted(normalise_text(name.replace("^", " ")).split())
            msg = f"namedob|{' '.join(tokens)}|{re.sub(r'[^0-9]', '', birth_date)}"
        elif fallback_id:
            msg = f"local|{fallback_id}"
        else:
            raise ValueError("no identifier to build a patient token from")
        return _mac(self.key, "patient-token", msg)[:16].hex()

    def uid(self, original: str) -> str:
        """A keyed UID under the 2.25 root (PS3.5 B.2): same input, same output, everywhere."""
        n = int.from_bytes(_mac(self.key, "uid", original.strip().rstrip("\x00"))[:16], "big")
        return f"2.25.{n}"

    def time_offset(self, patient_token: str, range_days: tuple[int, int] = DATE_SHIFT_RANGE_DAYS) -> timedelta:
        """One shift per patient: ``days`` for every date, ``seconds`` for every time of day.

        Dates move by the whole days alone, whether or not their time is known
        (DICOM date-only elements, Date+Time pairs, dates written in reports:
        ``dicom_dates.shift_date``); times of day move by the seconds modulo
        24 h, never carrying into the date. One range for the deployment, so a
        patient seen by two partners gets one offset.
        """
        lo, hi = sorted(range_days)
        d = _mac(self.key, "date-offset", patient_token)
        days = lo + int.from_bytes(d[:4], "big") % (hi - lo + 1)
        seconds = int.from_bytes(d[4:8], "big") % 86400
        return timedelta(days=days, seconds=seconds)

    def content_id(self, data: bytes) -> str:
        """Keyed id of raw content (reports): stable, but not a hash anyone can look up."""
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()[:32]
