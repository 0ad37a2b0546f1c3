"""Landing ids: how a raw partner file is named everywhere outside the raw zone.

A partner's own paths carry identity (``PACIENTES/<MRN>_<SURNAME>/...``), so
logs, ledgers, reason files, XComs and the quarantine tools name a file by a
keyed hash of its landing path instead: stable (the same file gets the same
id in the pull's log, the ledger and ``sta quarantine``), irreversible
without the deployment key, and short enough to read aloud.

The key is the deployment secret (``STA_SECRET_KEY``, from the secrets
backend) under its own domain label, so a landing id can't be confused with a
patient token or a UID made from the same key.
"""

from __future__ import annotations

import hashlib
import hmac
import os

PREFIX = "L"
_LABEL = b"sta-landing-id\x00"


def landing_id(relpath: str, key: bytes | str | None = None) -> str:
    """``L`` + 20 hex digits of HMAC-SHA256(key, label + relpath); the extension is kept (it says the kind)."""
    raw = key if key is not None else os.environ.get("STA_SECRET_KEY", "")
    k = raw.encode() if isinstance(raw, str) else raw
    if len(k) < 16:
        raise RuntimeError("STA_SECRET_KEY is not set: a landing id needs the deployment key")
    digest = hmac.new(k, _LABEL + relpath.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:20]
    name = relpath.rsplit("/", 1)[-1]
    ext = name.rsplit(".", 1)[-1].lower() if "." in name[1:] else ""
    return f"{PREFIX}{digest}" + (f".{ext}" if ext.isalnum() and len(ext) <= 5 else "")


def is_landing_id(value: str) -> bool:
    head = value.split(".", 1)[0]
    return len(head) == 21 and head.startswith(PREFIX) and all(c in "0123456789abcdef" for c in head[1:])
