"""Working the quarantine: list, show, seal, reprocess, release and purge refused files.

The pipeline puts a refused raw file in ``quarantine/<run>/<landing id>`` with
a PHI-free ``<landing id>.reason.json`` beside it (:mod:`foundation.quarantine`).
This module is what people do with it afterwards; ``sta quarantine`` and the
Airflow plugin view (``plugins/sta_quarantine.py``) are thin fronts on it.

* **Names**: an item is named by its landing id (``L`` + 20 hex digits, see
  :mod:`foundation.landing`), never by the partner's path. A folder written
  by an older layout (``quarantine/<run>/<partner path>``) is listed under the
  landing id of that path, so every screen shows the same kind of name.
* **At rest**: once a run ends, :func:`seal` encrypts every original
  (AES-256-GCM, streamed in 1 MiB records, the last one marked so a
  truncated file is detected) with the partner's own key, or deletes it when
  the partner's YAML says ``quarantine_originals: delete``. The reason file
  stays: the record outlives the bytes.
* **Keys**: ``STA_QUARANTINE_KEY_<PARTNER_ID>`` (32 bytes, url-safe base64,
  from the secrets backend; in Airflow an operator may resolve the Connection
  ``sta_quarantine_<partner_id>`` and pass it), else derived from the
  deployment key ``STA_SECRET_KEY`` with HKDF under the partner's id, so each
  partner's quarantine has its own key either way.
* **Previews** never show raw values: DICOM shows a whitelist of
  non-identifying attributes; a report shows its format and size and, unless
  it was quarantined for residual PHI, its text through the project's scrubber
  with every digit masked; anything else shows only its size and type.
* **Actions** (reprocess, release, purge) append a line to
  ``quarantine/_actions.jsonl`` (landing id, action, who, when; no path).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from foundation.landing import is_landing_id, landing_id
from foundation.partners import PartnerConfig
from foundation.paths import PartnerRoot
from foundation.quarantine import REASON_SUFFIX, describe

SEALED_SUFFIX = ".sealed"
ACTIONS_FILE = "_actions.jsonl"
_MAGIC = b"STAQ1\n"
_CHUNK = 1024 * 1024
_SAFE_DICOM_ATTRS = (  # nothing here identifies a patient, an institution or a date
    "Modality", "SOPClassUID", "BodyPartExamined", "Manufacturer", "ManufacturerModelName", "Rows", "Columns",
    "NumberOfFrames", "BitsAllocated", "PhotometricInterpretation", "BurnedInAnnotation", "ImageType",
)

KeyResolver = Callable[[str], bytes]


class QuarantineError(ValueError):
    """An item or an action that cannot be done (unknown id, wrong key, nothing to restore)."""


# -- keys and the sealed format ----------------------------------------------------------------
def partner_key(partner_id: str) -> bytes:
    """The partner's 32-byte quarantine key: its own secret if configured, else derived from the deployment key.

    Its own secret: ``STA_QUARANTINE_KEY_<ID>``, or the password of the Connection
    ``sta_quarantine_<id>`` given as ``AIRFLOW_CONN_STA_QUARANTINE_<ID>`` (what the
    Airflow tasks resolve through the secrets backend; the CLI reads the same variable).
    """
    own = os.environ.get(f"STA_QUARANTINE_KEY_{partner_id.upper()}")
    if not own and os.environ.get(f"AIRFLOW_CONN_STA_QUARANTINE_{partner_id.upper()}"):
        from transforms.sources.base import env_connection_resolver

        own = env_connection_resolver(f"sta_quarantine_{partner_id}").password
    if own:
        key = base64.urlsafe_b64decode(own.strip() + "=" * (-len(own.strip()) % 4))
        if len(key) != 32:
            raise QuarantineError(f"STA_QUARANTINE_KEY_{partner_id.upper()} must be 32 bytes (url-safe base64)")
        return key
    master = os.environ.get("STA_SECRET_KEY", "")
    if len(master) < 16:
        raise QuarantineError("no quarantine key: set STA_QUARANTINE_KEY_<PARTNER> or STA_SECRET_KEY")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), 32, salt=b"sta-quarantine", info=partner_id.encode()).derive(master.encode())


def _aad(index: int, last: bool) -> bytes:
    return _MAGIC + struct.pack(">I?", index, last)


def encrypt_file(src: Path, dst: Path, key: bytes, meta: dict[str, Any]) -> None:
    """``src`` -> ``dst`` as AES-256-GCM records: [len][ciphertext], record 0 = ``meta`` JSON, last one flagged."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes, prefix = AESGCM(key), os.urandom(8)
    tmp = dst.with_name(dst.name + ".tmp")
    with src.open("rb") as fin, tmp.open("wb") as fout:
        os.chmod(tmp, 0o600)
        fout.write(_MAGIC + prefix)
        index, pending = 0, json.dumps(meta).encode()
        while True:
            nxt = fin.read(_CHUNK)
            last = not nxt
            ct = aes.encrypt(prefix + struct.pack(">I", index), pending, _aad(index, last))
            fout.write(struct.pack(">I", len(ct)) + ct)
            if last:
                break
            index, pending = index + 1, nxt
        fout.flush()
        os.fsync(fout.fileno())
    os.replace(tmp, dst)


def decrypt_records(path: Path, key: bytes) -> Iterator[bytes]:
    """Record 0 (metadata JSON), then the file's bytes in chunks; raises if tampered with or truncated."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    aes = AESGCM(key)
    with path.open("rb") as fh:
        if fh.read(len(_MAGIC)) != _MAGIC:
            raise QuarantineError("not a sealed quarantine file")
        prefix, index = fh.read(8), 0
        while True:
            head = fh.read(4)
            if len(head) < 4:
                raise QuarantineError("sealed file is truncated")
            ct = fh.read(struct.unpack(">I", head)[0])
            nonce = prefix + struct.pack(">I", index)
            try:
                try:
                    yield aes.decrypt(nonce, ct, _aad(index, False))
                except InvalidTag:
                    yield aes.decrypt(nonce, ct, _aad(index, True))
                    return
            except InvalidTag:
                raise QuarantineError("cannot decrypt: wrong partner key or damaged file") from None
            index += 1


def open_original(path: Path, key: bytes) -> tuple[dict[str, Any], bytes]:
    """Metadata and bytes of an item's original (sealed or not yet sealed)."""
    if path.name.endswith(SEALED_SUFFIX):
        records = decrypt_records(path, key)
        meta = json.loads(next(records))
        return meta, b"".join(records)
    return {}, path.read_bytes()


# -- items ---------------------------------------------------------------------------------------
@dataclass
class Item:
    """One quarantined file as people see it: no path, no identifying value."""

    partner_id: str
    run: str
    landing_id: str
    stage: str
    reason: str
    description: str
    detail: str
    at: str
    original: str  # "sealed" | "plain" (not sealed yet) | "deleted"
    size: int | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Entry:
    item: Item
    reason_file: Path
    original: Path | None  # the plain or sealed original, when it still exists


def _entries(partner: PartnerConfig, root: PartnerRoot) -> Iterator[_Entry]:
    qroot = root.quarantine
    if not qroot.is_dir():
        return
    for run_dir in sorted(p for p in qroot.iterdir() if p.is_dir()):
        for rf in sorted(run_dir.rglob(f"*{REASON_SUFFIX}")):
            try:
                reason = json.loads(rf.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                reason = {"code": "unreadable_reason", "stage": "?"}
            plain = rf.with_name(rf.name[: -len(REASON_SUFFIX)])
            rel = plain.relative_to(run_dir).as_posix()
            lid = plain.name if is_landing_id(plain.name) else landing_id(rel)
            sealed = plain.with_name(plain.name + SEALED_SUFFIX)
            original = sealed if sealed.exists() else (plain if plain.exists() else None)
            state = "deleted" if original is None else ("sealed" if original is sealed else "plain")
            size = original.stat().st_size if original is not None else None
            yield _Entry(
                Item(partner.id, run_dir.name, lid, str(reason.get("stage", "")), str(reason.get("code", "")),
                     describe(str(reason.get("code", ""))), str(reason.get("detail", ""))[:200],
                     str(reason.get("at", "")), state, size),
                rf, original,
            )


def list_items(partners: list[PartnerConfig], *, run: str | None = None, stage: str | None = None,
               reason: str | None = None) -> list[Item]:
    """Every quarantined item of these partners, filtered by run, stage and reason code."""
    out = []
    for p in partners:
        for e in _entries(p, p.root()):
            it = e.item
            if (run and run not in (it.run,)) or (stage and it.stage != stage) or (reason and it.reason != reason):
                continue
            out.append(it)
    return out


def summary(items: list[Item]) -> dict[str, Any]:
    """Counts by partner, run, stage and reason (what a dashboard or a run's task log shows)."""
    return {
        "items": len(items),
        "by_partner": dict(Counter(i.partner_id for i in items)),
        "by_run": dict(Counter(f"{i.partner_id}/{i.run}" for i in items)),
        "by_stage": dict(Counter(i.stage for i in items)),
        "by_reason": dict(Counter(i.reason for i in items)),
    }


def _find(partner: PartnerConfig, item_id: str) -> _Entry:
    matches = [e for e in _entries(partner, partner.root()) if e.item.landing_id == item_id]
    if not matches:
        raise QuarantineError(f"partner {partner.id}: no quarantined item {item_id}")
    return matches[-1]  # the newest run's, when a file was quarantined twice


# -- show ------------------------------------------------------------------------------------------
def show(partner: PartnerConfig, item_id: str, key: bytes | None = None) -> dict[str, Any]:
    """An item's reason and a de-identified preview (never a raw value)."""
    entry = _find(partner, item_id)
    out: dict[str, Any] = {**entry.item.to_dict(), "preview": {"kind": "none", "note": "original deleted"}}
    if entry.original is not None:
        try:
            _meta, data = open_original(entry.original, key or partner_key(partner.id))
        except QuarantineError as exc:
            out["preview"] = {"kind": "unavailable", "note": str(exc)}
        else:
            out["preview"] = preview(data, entry.item.reason, tuple(partner.report_languages))
    return out


def _file_type(data: bytes) -> str:
    if not data:
        return "empty"
    if len(data) > 132 and data[128:132] == b"DICM":
        return "dicom"
    for magic, kind in ((b"%PDF", "pdf"), (b"PK\x03\x04", "zip"), (b"\x89PNG", "png"), (b"\xff\xd8\xff", "jpeg"),
                        (b"II*\x00", "tiff"), (b"MM\x00*", "tiff"), (b"{\\rtf", "rtf")):
        if data.startswith(magic):
            return kind
    try:
        data[:4096].decode("utf-8")
        return "text"
    except UnicodeDecodeError:
        return "binary"


def preview(data: bytes, reason: str, languages: tuple[str, ...] = ("es",)) -> dict[str, Any]:
    """What a reviewer may see of a refused file: its type, size and non-identifying content only."""
    kind = _file_type(data)
    out: dict[str, Any] = {"kind": kind, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()[:16]}
    if kind == "dicom":
        out["attributes"] = _dicom_attributes(data)
    elif kind in ("pdf", "text", "rtf"):
        out.update(_report_preview(data, kind, reason, languages))
    return out


def _dicom_attributes(data: bytes) -> dict[str, str]:
    try:
        import pydicom

        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True,
                             specific_tags=list(_SAFE_DICOM_ATTRS))
    except Exception as exc:  # noqa: BLE001 - a damaged file is why it is here
        return {"error": f"header unreadable ({type(exc).__name__})"}
    out = {}
    for name in _SAFE_DICOM_ATTRS:
        try:
            value = ds.get(name)
        except Exception:  # noqa: BLE001
            continue
        if value is not None and str(value).strip():
            out[name] = str(value)[:64]
    return out


def _report_preview(data: bytes, kind: str, reason: str, languages: tuple[str, ...]) -> dict[str, Any]:
    if reason == "residual_phi":
        return {"text": None, "note": "text withheld: an identifying value survived scrubbing in this report"}
    tmp_suffix = {"pdf": ".pdf", "rtf": ".rtf"}.get(kind, ".txt")
    import tempfile

    try:
        from anonymization.text_phi import TextScrubber
        from transforms.text_extract import extract_text

        with tempfile.NamedTemporaryFile(suffix=tmp_suffix) as tmp:
            tmp.write(data)
            tmp.flush()
            extracted = extract_text(Path(tmp.name), languages[0] if len(languages) == 1 else None)
        scrubbed = TextScrubber(list(languages)).scrub(extracted.text, extracted.language).text
    except Exception as exc:  # noqa: BLE001 - no preview rather than a raw one
        return {"text": None, "note": f"no text preview ({type(exc).__name__})"}
    masked = re.sub(r"\d", "#", scrubbed)[:1200]
    return {"text": masked, "note": "automatically scrubbed, digits masked; not verified by a person"}


# -- seal -------------------------------------------------------------------------------------------
def seal(partner: PartnerConfig, key: bytes | None = None) -> dict[str, int]:
    """Encrypt every plain original with the partner's key (or delete it, if the partner says so)."""
    counts = {"sealed": 0, "deleted": 0}
    delete = partner.quarantine_originals == "delete"
    for e in _entries(partner, partner.root()):
        if e.item.original != "plain" or e.original is None:
            continue
        if delete:
            e.original.unlink()
            counts["deleted"] += 1
            continue
        key = key or partner_key(partner.id)
        data_hash = hashlib.sha256(e.original.read_bytes()).hexdigest()
        encrypt_file(e.original, e.original.with_name(e.original.name + SEALED_SUFFIX), key,
                     {"landing_id": e.item.landing_id, "sha256": data_hash})
        e.original.unlink()
        counts["sealed"] += 1
    return counts


# -- reprocess / release ---------------------------------------------------------------------------------
def _record(root: PartnerRoot, action: str, item: Item, **extra: Any) -> None:
    line = {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "action": action,
            "partner_id": item.partner_id, "run": item.run, "landing_id": item.landing_id, "reason": item.reason,
            "by": extra.pop("by", None) or getpass.getuser(), **extra}
    path = root.quarantine / ACTIONS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(line) + "\n")


def _landing_path_of(root: PartnerRoot, item_id: str) -> tuple[str | None, list[Path]]:
    """The landing relpath whose landing id is ``item_id``, from the partner's sync state (raw zone)."""
    dbs = sorted(root.state.glob("sync-*.sqlite")) if root.state.is_dir() else []
    for db in dbs:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
            for (rel,) in con.execute("SELECT DISTINCT landing_relpath FROM files WHERE landing_relpath IS NOT NULL"):
                if landing_id(rel) == item_id:
                    return rel, dbs
    return None, dbs


def _back_to_landing(partner: PartnerConfig, entry: _Entry, key: bytes | None) -> str:
    """Restore the original into landing and mark it unprocessed, so the next run takes it (carried over)."""
    root = partner.root()
    if entry.original is None:
        raise QuarantineError(f"{entry.item.landing_id}: the original was deleted; ask the partner to send it again")
    rel, dbs = _landing_path_of(root, entry.item.landing_id)
    if rel is None:
        raise QuarantineError(f"{entry.item.landing_id}: not in the partner's sync state; cannot tell the pull")
    dst = root.ensure_inside(root.landing / rel)
    _meta, data = open_original(entry.original, key or partner_key(partner.id))
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".sta-restore-{os.getpid()}")
    tmp.write_bytes(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)
    for db in dbs:
        with sqlite3.connect(db) as con:
            con.execute("UPDATE files SET status = 'landed' WHERE landing_relpath = ? AND status != 'deleted'", (rel,))
    entry.original.unlink()
    # the reason file moves to the run's 'resolved' record: the item leaves the list
    resolved = entry.reason_file.with_name(entry.reason_file.name + ".resolved")
    os.replace(entry.reason_file, resolved)
    return rel


def reprocess(partner: PartnerConfig, *, ids: list[str] | None = None, reason: str | None = None,
              run: str | None = None, key: bytes | None = None, by: str | None = None) -> dict[str, Any]:
    """Put originals back in landing for the next run (after a profile or code fix)."""
    if not (ids or reason or run):
        raise QuarantineError("reprocess what? give landing ids, --reason or --run")
    done, failed = [], {}
    for e in list(_entries(partner, partner.root())):
        it = e.item
        if (ids and it.landing_id not in ids) or (reason and it.reason != reason) or (run and it.run != run):
            continue
        try:
            _back_to_landing(partner, e, key)
        except QuarantineError as exc:
            failed[it.landing_id] = str(exc)
            continue
        _record(partner.root(), "reprocess", it, by=by)
        done.append(it.landing_id)
    missing = sorted(set(ids or ()) - set(done) - set(failed))
    for m in missing:
        failed[m] = "no such quarantined item"
    return {"partner_id": partner.id, "reprocess": done, "failed": failed,
            "next": f"the next run of ingest_{partner.id} processes them (trigger it, or wait for its schedule)"}


def release(partner: PartnerConfig, item_id: str, *, reviewer: str, decision: str, note: str = "",
            key: bytes | None = None) -> dict[str, Any]:
    """A reviewer's decision on one item: ``process`` (back to landing: a false alarm) or ``discard`` (destroyed)."""
    if not reviewer.strip():
        raise QuarantineError("a release needs the reviewer's name")
    if decision not in ("process", "discard"):
        raise QuarantineError("decision must be 'process' or 'discard'")
    entry = _find(partner, item_id)
    if decision == "process":
        _back_to_landing(partner, entry, key)
    else:
        if entry.original is not None:
            entry.original.unlink()
        os.replace(entry.reason_file, entry.reason_file.with_name(entry.reason_file.name + ".resolved"))
    _record(partner.root(), "release", entry.item, by=reviewer.strip(), decision=decision, note=note[:500])
    return {"partner_id": partner.id, "landing_id": item_id, "decision": decision, "reviewer": reviewer.strip()}


# -- purge -------------------------------------------------------------------------------------------
def _age_days(item: Item, reason_file: Path, now: datetime) -> float:
    try:
        at = datetime.fromisoformat(item.at)
        at = at if at.tzinfo else at.replace(tzinfo=timezone.utc)
    except ValueError:
        at = datetime.fromtimestamp(reason_file.stat().st_mtime, tz=timezone.utc)
    return (now - at) / timedelta(days=1)


def purge(partner: PartnerConfig, *, older_than_days: float | None = None, dry_run: bool = False,
          now: datetime | None = None, by: str | None = None) -> dict[str, Any]:
    """Delete items older than the retention (``quarantine_retention_days``, default 30); return a report.

    Also seals whatever is still plain and sweeps identity maps of runs that
    died (work folders other runs left behind), since both are PHI at rest.
    """
    now = now or datetime.now(timezone.utc)
    days = partner.quarantine_retention_days if older_than_days is None else older_than_days
    root = partner.root()
    purged: list[Item] = []
    freed = 0
    for e in list(_entries(partner, root)):
        if _age_days(e.item, e.reason_file, now) < days:
            continue
        purged.append(e.item)
        freed += e.item.size or 0
        if dry_run:
            continue
        if e.original is not None:
            e.original.unlink()
        e.reason_file.unlink()
        _record(root, "purge", e.item, by=by, retention_days=days)
    removed_dirs = 0
    if not dry_run and root.quarantine.is_dir():
        for d in sorted((p for p in root.quarantine.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(d.iterdir()):
                d.rmdir()
                removed_dirs += 1
    sealed = {"sealed": 0, "deleted": 0} if dry_run else seal(partner)
    report = {
        "partner_id": partner.id, "retention_days": days, "dry_run": dry_run,
        "at": now.isoformat(timespec="seconds"), "purged": len(purged), "bytes_freed": freed,
        "by_reason": dict(Counter(i.reason for i in purged)), "landing_ids": [i.landing_id for i in purged],
        "kept": sum(1 for _ in _entries(partner, root)) if not dry_run else None,
        "empty_dirs_removed": removed_dirs, "sealed_now": sealed,
        "identity_maps_removed": 0 if dry_run else _sweep_dead_identity(root, now),
    }
    if not dry_run:
        out = root.quarantine / f"_purge-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
        report["report"] = out.name
    return report


def _sweep_dead_identity(root: PartnerRoot, now: datetime, min_age_hours: float = 24) -> int:
    """Identity maps of work folders untouched for a day (a live run rewrites its folder far more often)."""
    removed = 0
    if not root.work_root.is_dir():
        return 0
    for run_dir in root.work_root.iterdir():
        ident = run_dir / "identity"
        if not ident.is_dir():
            continue
        newest = max((p.stat().st_mtime for p in run_dir.rglob("*")), default=run_dir.stat().st_mtime)
        if (now.timestamp() - newest) / 3600 >= min_age_hours:
            removed += sum(1 for _ in ident.glob("*"))
            shutil.rmtree(ident, ignore_errors=True)
    return removed
