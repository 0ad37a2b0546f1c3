"""The ground-truth file, written as a stream so memory stays flat at any N.

``truth.json`` is one JSON object. ``files`` is written entry by entry while
the tree is generated; the other sections (findings, shared patients, faults,
patients) go to temporary JSON-lines files and are spliced in at the end; the
deduplicated ``phi_values`` list comes out of a temporary SQLite table (an
on-disk set), sorted, so no set of millions of strings is held in memory.
Every entry is serialised with sorted keys: same run, same bytes.

Schema (``schema_version`` 1), top-level keys in file order::

    conventions, faults_enabled, generator, n_patients, partners, schema_version, seed
    files            {relpath: entry}   relpath relative to OUT, '/'-separated
    findings         [ {partner, accession, study_uid, patient_key, modality, body_region,
                        body_part, protocol, finding, finding_text, labels, language,
                        report (relpath|null), study_date, n_instances} ]
    shared_patients  {national_id: {patient_key, national_id_type, names{partner: PN},
                        mrns{partner: MRN}, spelling_changes[], files{partner: [relpath]}}}
    faults           [ {path, partner, fault, expected[], reason} ]
    patients         {patient_key: {home_country, national_id, national_id_type, sex,
                        birth_date, partners{partner: {mrn, patient_name, spelling_changes,
                        studies}}}}
    summary          {patients, studies{}, files{}, dicom_files, reports, faults,
                        shared_patients, bytes}
    phi_values       sorted (UTF-8 byte order), deduplicated union of every '*phi*' list

A ``files`` entry has: partner, kind (dicom|report|fault), patient_key,
national_id (digits or null), national_id_type (CC|CPF|null), mrn, accession,
study_uid, modality, body_region, study_date (YYYYMMDD), protocol, phi (exact
strings as written), path_phi (those of them in the path), bytes, sha256.
DICOM adds series_uid, sop_uid, sop_class, transfer_syntax, series_number,
instance_number, frames, charset, body_part, burned_in_annotation,
burned_in_phi, burned_in_text (harmless overlay text), tags ({keyword or
sequence path or '(gggg,eeee)': value} for every PHI element) and
quasi_identifiers (PatientAge/Sex/Size/Weight: kept by Retain Patient
Characteristics, so not listed as PHI). Reports add language, format,
encoding, finding, labels. Faults add fault, expected, reason.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

TRUTH_NAME = "truth.json"
SCHEMA_VERSION = 1


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


def phi_strings(entry: dict[str, Any]) -> Iterator[str]:
    """Every string under a key whose name contains 'phi' (lists, dicts, strings)."""
    for k, v in entry.items():
        if "phi" in k:
            yield from _strings(v)


def _strings(v: Any) -> Iterator[str]:
    if isinstance(v, str):
        yield v
    elif isinstance(v, dict):
        for x in v.values():
            yield from _strings(x)
    elif isinstance(v, (list, tuple)):
        for x in v:
            yield from _strings(x)


class TruthWriter:
    """Streams ``OUT/truth.json``; call :meth:`close` once at the end."""

    SECTIONS = ("findings", "shared_patients", "faults", "patients")

    def __init__(self, out: Path, header: dict[str, Any]) -> None:
        self.path = out / TRUTH_NAME
        self.partial = out / (TRUTH_NAME + ".partial")
        self.tmp = out / ".truth-tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.f = open(self.partial, "w", encoding="utf-8", newline="\n")
        self.f.write("{\n")
        for k in sorted(header):
            self.f.write(f"{_dump(k)}: {_dump(header[k])},\n")
        self.f.write('"files": {')
        self.n_files = 0
        self.sections = {s: open(self.tmp / f"{s}.jsonl", "w", encoding="utf-8", newline="\n")
                         for s in self.SECTIONS}
        self.db = sqlite3.connect(str(self.tmp / "phi.sqlite"))
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE v (s TEXT PRIMARY KEY) WITHOUT ROWID")
        self._pending: list[tuple[str]] = []

    def _phi(self, values: Iterable[str]) -> None:
        self._pending.extend((v,) for v in values if v)
        if len(self._pending) > 50_000:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self.db.executemany("INSERT OR IGNORE INTO v VALUES (?)", self._pending)
            self.db.commit()
            self._pending = []

    def add_file(self, relpath: str, entry: dict[str, Any]) -> None:
        sep = "\n" if self.n_files == 0 else ",\n"
        self.f.write(f"{sep}{_dump(relpath)}: {_dump(entry)}")
        self.n_files += 1
        self._phi(phi_strings(entry))

    def add(self, section: str, key: str | None, entry: dict[str, Any]) -> None:
        """A finding / fault (``key`` None, list sections) or a keyed shared patient / patient."""
        self.sections[section].write(_dump([key, entry]) + "\n")
        self._phi(phi_strings(entry))

    def close(self, summary: dict[str, Any]) -> Path:
        self.f.write("\n},\n")
        for s in self.SECTIONS:
            self.sections[s].close()
        for s in self.SECTIONS:
            keyed = s in ("shared_patients", "patients")
            self.f.write(f"{_dump(s)}: " + ("{" if keyed else "["))
            first = True
            with open(self.tmp / f"{s}.jsonl", encoding="utf-8") as src:
                for line in src:
                    key, entry = json.loads(line)
                    item = f"{_dump(key)}: {_dump(entry)}" if keyed else _dump(entry)
                    self.f.write(("\n" if first else ",\n") + item)
                    first = False
            self.f.write("\n" + ("}" if keyed else "]") + ",\n")
        self.f.write(f'"summary": {_dump(summary)},\n')
        self._flush()
        self.f.write('"phi_values": [')
        first = True
        for (v,) in self.db.execute("SELECT s FROM v ORDER BY s"):
            self.f.write(("\n" if first else ",\n") + _dump(v))
            first = False
        self.f.write("\n]\n}\n")
        self.f.close()
        self.db.close()
        shutil.rmtree(self.tmp)
        self.partial.replace(self.path)
        return self.path

    def abort(self) -> None:
        """Drop the partial output after an error (the tree stays for inspection)."""
        for s in self.sections.values():
            s.close()
        self.f.close()
        self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.partial.unlink(missing_ok=True)
