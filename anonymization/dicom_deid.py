"""De-identify one DICOM file: PS3.15 Annex E, keyed UIDs, shifted dates, fail closed.

Fast path (no pixel change due): pydicom parses only the header
(``stop_before_pixels``) into raw elements; ``dicom_elements`` turns them into
a light tree, decoding text once (in the file's character sets) and
validating everything else. The Annex E rules then build the output tree:
untouched elements keep their original bytes, changed ones are encoded anew.
The header is serialised by hand, scanned for the file's own PHI (decoded
values and written bytes), and the pixel data element is copied verbatim from
the input (kernel copy for large files), so a 1 GB multi-frame costs a few MB
of memory and its pixels are provably unchanged.

Files that must be decoded whole (pixels to clean for burned-in text,
deflated or big endian encodings) are re-encoded little endian in memory and
then take the same header path: one set of rules for every file.

Every failure raises :class:`Quarantine` with a machine-readable reason; the
caller moves the input to quarantine. Nothing half-written reaches the output:
files are written to a temporary name and renamed after the residual-PHI scan.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import struct
import threading
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom.charset import encode_string
from pydicom.dataset import Dataset, FileDataset
from pydicom.datadict import tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID, UID_dictionary

from anonymization.dicom_dates import shift_da, shift_da_tm, shift_dt, shift_tm
from anonymization.dicom_elements import (
    BadElement, Header, Node, Unsupported, read_header, creator_map, encodings_of, file_meta, keyword, number_text, path_name, read_nodes,
    text_node, walk, write_nodes,
)
from anonymization.dicom_rules import CLEAN, DATE_VRS, DUMMY, EMPTY, KEEP, REMOVE, UID as REMAP, RuleBook
from anonymization.identity import PatientIdentity, add_element_phi, age_string, read_identity, study_date
from anonymization.keys import Keyring
from anonymization.phi_scan import PhiSet, scan_bytes, scan_texts
from anonymization.profiles import Profile

STA_IMPLEMENTATION_UID = "2.25.160842107343296409787218540290722245437"
STA_VERSION_NAME = "STA_DEID_1"
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
CHUNK = 1 << 20
# Transfer syntaxes whose pixel bytes we can copy verbatim after a re-written header.
_STREAMABLE_TS_EXCLUDED = {"1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.2"}  # deflate, big endian

_DUMMY_BY_VR = {
    "AE": "STA", "AS": "000Y", "CS": "ANON", "DA": "19000101", "DS": "0", "DT": "19000101000000",
    "IS": "0", "LO": "ANONYMIZED", "LT": "ANONYMIZED", "PN": "ANONYMIZED", "SH": "ANON",
    "ST": "ANONYMIZED", "TM": "000000", "UC": "ANONYMIZED", "UR": "", "UT": "ANONYMIZED",
}

pydicom_config.settings.reading_validation_mode = pydicom_config.WARN
pydicom_config.settings.writing_validation_mode = pydicom_config.WARN


class Quarantine(Exception):
    """A file that must not be published; ``reason`` is a stable code, ``detail`` names no PHI."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass
class DeidResult:
    """What the pipeline needs about a published file (no identifying values)."""

    output: Path
    sop_uid: str
    series_uid: str
    study_uid: str
    sop_class_uid: str
    transfer_syntax: str
    patient_token: str
    modality: str | None
    body_part: str | None
    study_date_shifted: date | None
    study_description: str | None
    series_description: str | None
    series_number: int | None
    age: int | None
    sex: str | None
    birth_year: int | None
    manufacturer: str | None
    manufacturer_model: str | None
    rows: int | None
    cols: int | None
    frames: int | None
    size_bytes: int
    sha256: str
    pixels_modified: bool
    identity: PatientIdentity  # PHI: stays in the partner enclave, never published


@dataclass
class _PixelSpan:
    offset: int
    length: int  # bytes of the whole element (header + value [+ items])


class _View:
    """``get(keyword, default)`` over one dataset's nodes, for :func:`read_identity`."""

    def __init__(self, nodes: list[Node]) -> None:
        self._by_tag = {n.tag: n for n in nodes}

    def get(self, kw: str, default: object = None) -> object:
        tag = tag_for_keyword(kw)
        n = self._by_tag.get(tag) if tag is not None else None
        if n is None:
            return default
        if n.items is not None:
            return [_View(item) for item in n.items]
        if n.values is not None:
            return n.text()
        return default

    def __contains__(self, kw: str) -> bool:
        return tag_for_keyword(kw) in self._by_tag


class Deidentifier:
    """One profile, one key, one partner's identity conventions; reusable across files."""

    def __init__(
        self,
        profile: Profile,
        keyring: Keyring,
        *,
        partner_id: str = "local",
        national_id_issuers: dict[str, str] | None = None,
        pixel_cleaner: object | None = None,
        checksum: bool = True,
    ) -> None:
        """``checksum=False`` leaves ``DeidResult.sha256`` empty: for callers that do not
        record it (``sta deid``), a large file then costs a kernel copy instead of a
        SHA-256 pass over its pixels. No safety check depends on it."""
        self.checksum = checksum
        self.fast_reader = True  # False: every file through pydicom's reader (the differential test)
        self.profile = profile
        self.keyring = keyring
        self.rules = RuleBook(profile)
        self.partner_id = partner_id
        self.issuers = national_id_issuers or {}
        self.pixel_cleaner = pixel_cleaner
        self._uids: dict[str, str] = {}
        self._modified_dates = profile.options.retain_longitudinal_modified_dates
        self._method_nodes = self._method()

    # -- reading ------------------------------------------------------------
    def _open_header(self, fp: BinaryIO, path: Path) -> FileDataset:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
            except InvalidDicomError:
                # A dataset without preamble/meta (PS3.10 7.1 is often ignored by old
                # modalities): accepted only if it parses into a composite object below.
                fp.seek(0)
                try:
                    ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                except Exception as exc:  # noqa: BLE001
                    raise Quarantine("not_dicom", f"no DICM prefix and unparseable: {type(exc).__name__}") from exc
            except (EOFError, struct.error) as exc:
                raise Quarantine("truncated", f"header ends early: {type(exc).__name__}") from exc
            except Exception as exc:  # noqa: BLE001
                raise Quarantine("unreadable_header", type(exc).__name__) from exc
        for w in caught:
            msg = str(w.message).lower()
            if "end of file" in msg or "eof" in msg or "truncat" in msg:
                raise Quarantine("truncated", "header ends before its declared length")
        if len(ds._dict) == 0:
            raise Quarantine("not_dicom", "no data elements")
        media_class = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
        if media_class == DICOMDIR_SOP_CLASS or 0x00041220 in ds._dict:
            raise Quarantine("dicomdir", "a DICOMDIR (media directory) holds paths and names, not images")
        if 0x00080018 not in ds._dict or 0x00080016 not in ds._dict:
            raise Quarantine("not_dicom", "no SOP Class/Instance UID: not a composite object")
        return ds

    def _read(self, ds: Dataset) -> tuple[list[Node], PatientIdentity]:
        """Every element decoded once; the identity and its PHI collected in the same walk."""
        try:
            nodes = read_nodes(ds)
        except BadElement as exc:
            raise Quarantine("unreadable_element", str(exc)) from exc
        except Quarantine:
            raise
        except Exception as exc:  # noqa: BLE001 - a sequence or value pydicom cannot parse
            raise Quarantine("unreadable_element", type(exc).__name__) from exc
        return self._identify(nodes)

    def _identify(self, nodes: list[Node]) -> tuple[list[Node], PatientIdentity]:
        phi = PhiSet()
        self._collect(nodes, phi)
        ident = read_identity(_View(nodes), self.keyring, self.rules, self.issuers, self.partner_id, phi=phi)
        return nodes, ident

    def _collect(self, nodes: list[Node], phi: PhiSet) -> None:
        for n in nodes:
            if n.items is not None:
                for item in n.items:
                    self._collect(item, phi)
                continue
            values = n.values
            if not values or not any(values):
                continue
            private = n.private
            kw = "" if private else keyword(n.tag)
            creator = private and 0x10 <= (n.tag & 0xFFFF) <= 0xFF
            add_element_phi(phi, kw, n.vr, values, private=private, private_creator=creator)
            raw = n.raw
            if raw and not private and n.vr in _NAME_VRS and not raw.isascii():
                # A name in bytes the declared character set misreads (a missing, wrong or
                # damaged SpecificCharacterSet): its UTF-8 and Latin-1 readings are PHI too.
                for alt in _alternative_readings(raw, n.vr, values):
                    add_element_phi(phi, kw, n.vr, alt, private=private, private_creator=creator)

    @staticmethod
    def _pixel_span(fp: BinaryIO, offset: int, size: int, implicit: bool) -> _PixelSpan | None:
        if offset >= size:
            return None
        fp.seek(offset)
        head = fp.read(12)
        if len(head) < 8:
            raise Quarantine("truncated", "pixel data element header cut")
        group, elem = struct.unpack("<HH", head[:4])
        tag = group << 16 | elem
        if tag not in PIXEL_TAGS:
            return None
        if implicit:
            (length,) = struct.unpack("<I", head[4:8])
            header = 8
        else:
            if len(head) < 12:
                raise Quarantine("truncated", "pixel data element header cut")
            (length,) = struct.unpack("<I", head[8:12])
            header = 12
        if length != 0xFFFFFFFF:
            if offset + header + length > size:
                raise Quarantine("truncated", "pixel data shorter than its declared length")
            return _PixelSpan(offset, header + length)
        # Encapsulated (PS3.5 A.4): items until the sequence delimiter.
        pos = offset + header
        while True:
            fp.seek(pos)
            item = fp.read(8)
            if len(item) < 8:
                raise Quarantine("truncated", "encapsulated pixel data without sequence delimiter")
            g, e, ln = struct.unpack("<HHI", item)
            if (g, e) == (0xFFFE, 0xE0DD):
                return _PixelSpan(offset, pos + 8 - offset)
            if (g, e) != (0xFFFE, 0xE000) or ln == 0xFFFFFFFF:
                raise Quarantine("unreadable_pixel_data", "malformed encapsulated item")
            pos += 8 + ln
            if pos > size:
                raise Quarantine("truncated", "encapsulated fragment runs past end of file")

    # -- the rules ----------------------------------------------------------
    def _uid(self, value: str, listed: bool) -> str:
        v = value.strip().rstrip("\x00")
        if not v or (not listed and v in UID_dictionary):  # SOP classes, transfer syntaxes, coding schemes
            return v
        out = self._uids.get(v)
        if out is None:
            if len(self._uids) > 100_000:
                self._uids.clear()
            out = self._uids[v] = self.keyring.uid(v)
        return out

    def _shift_values(self, n: Node, ident: PatientIdentity) -> list[str] | None:
        out: list[str] = []
        for v in n.values or []:
            v = v.strip()
            if not v:
                out.append(v)
                continue
            if n.vr == "DA":
                shifted = shift_da(v, ident.offset)
            elif n.vr == "DT":
                shifted = shift_dt(v, ident.offset)
            else:
                shifted = shift_tm(v, ident.offset)
            if shifted is None:
                return None  # a date we cannot shift is a date we cannot publish
            out.append(shifted)
        return out

    def _pairs(self, nodes: list[Node], ident: PatientIdentity) -> dict[int, str]:
        """Date+Time attribute pairs shifted together as one datetime (intervals survive to the second)."""
        by_kw = {keyword(n.tag): n for n in nodes if not n.private and n.values is not None}
        shifted: dict[int, str] = {}
        for kw, da in by_kw.items():
            if da.vr != "DA" or not kw.endswith("Date") or len(da.values or ()) != 1 or not da.values[0]:
                continue
            tm = by_kw.get(kw[:-4] + "Time")
            if tm is None or tm.vr != "TM" or len(tm.values or ()) != 1 or not tm.values[0]:
                continue
            if self.rules.rule(da.tag, "DA").action not in (CLEAN, DUMMY):
                continue
            pair = shift_da_tm(da.values[0], tm.values[0], ident.offset)
            if pair is not None:
                shifted[da.tag], shifted[tm.tag] = pair
        return shifted

    def _clean(self, nodes: list[Node], ident: PatientIdentity, encodings: tuple[str, ...],
               pairs: dict[int, str]) -> list[Node]:
        """PS3.15 Table E.1-1 actions, as narrowed by the profile, applied at any depth."""
        out: list[Node] = []
        rule_of = self.rules.rule
        creators: dict[int, str] | None = None
        for n in nodes:
            tag, vr = n.tag, n.vr
            if n.private:
                if creators is None:
                    creators = creator_map(nodes)
                if self._keep_private(n, creators):
                    out.append(n)
                continue
            if tag & 0xFFFF == 0:
                continue  # group lengths: stale after editing (retired, PS3.5 7.2)
            if tag in PIXEL_TAGS:
                out.append(n)
                continue
            if tag == 0x00080005 and n.values is not None:
                encodings = encodings_of(n.values if len(n.values) > 1 else n.values[0])
            rule = rule_of(tag, vr)
            action = rule.action
            if n.items is not None:
                if action == REMOVE:
                    continue
                if action == EMPTY:
                    out.append(Node(tag, "SQ", None, None, []))
                    continue
                # K, C, D, U on a sequence: kept, its items follow the same rules
                out.append(Node(tag, "SQ", None, None, [self._clean(item, ident, encodings, {}) for item in n.items]))
                continue
            if action == KEEP:
                out.append(n)
            elif action == REMOVE:
                continue
            elif action == EMPTY:
                out.append(Node(tag, vr, b"", [""] if n.values is not None else None))
            elif action == REMAP or (action == DUMMY and vr == "UI"):
                out.append(self._remap(n, listed=rule.listed or action == DUMMY))
            elif action == DUMMY:
                if vr in DATE_VRS and self._modified_dates:
                    shifted = self._shifted(n, ident, pairs)
                    if shifted is not None:
                        out.append(shifted)
                else:
                    out.append(_dummy(n))
            elif action == CLEAN:
                if vr in DATE_VRS:
                    shifted = self._shifted(n, ident, pairs)
                    if shifted is not None:
                        out.append(shifted)
                elif vr in ("LO", "SH", "UC", "CS") and n.values is not None:
                    # Free text (LT/ST/UT) can name anyone (a relative, another patient):
                    # known values can be removed, unknown names cannot, so it goes.
                    cleaned = [self._clean_text(v, ident.phi) for v in n.values]
                    if all(c is not None for c in cleaned):
                        out.append(text_node(tag, vr, cleaned, encodings))  # type: ignore[arg-type]
            # any other action is one we do not know, and so do not trust: removed
        return out

    def _shifted(self, n: Node, ident: PatientIdentity, pairs: dict[int, str]) -> Node | None:
        if n.tag in pairs:
            return text_node(n.tag, n.vr, [pairs[n.tag]])
        values = self._shift_values(n, ident)
        return None if values is None else text_node(n.tag, n.vr, values)

    def _remap(self, n: Node, *, listed: bool) -> Node:
        if n.vr != "UI" or n.values is None:
            return Node(n.tag, n.vr, b"", [""] if n.values is not None else None)
        return text_node(n.tag, "UI", [self._uid(v, listed) for v in n.values])

    def _keep_private(self, n: Node, creators: dict[int, str]) -> bool:
        if not (self.profile.options.retain_safe_private and self.profile.safe_private):
            return False
        el = n.tag & 0xFFFF
        if 0x10 <= el <= 0xFF:  # a private creator: kept while one of its elements may be
            creator = (n.values or [""])[0].strip()
            return any(sp.creator == creator for sp in self.profile.safe_private)
        creator = creators.get((n.tag & 0xFFFF0000) | (el >> 8), "")
        return any(
            sp.creator == creator and (el & 0xFF) in sp.elements and n.vr not in ("PN", "SQ", "UN")
            for sp in self.profile.safe_private
        )

    @staticmethod
    def _clean_text(text: str, phi: PhiSet) -> str | None:
        """Clean Descriptors (PS3.15 E.3.5): drop known identities, long numbers and dates."""
        matcher = phi.matcher()
        kept: list[str] = []
        for w in _SPACES.split(text):
            if matcher is not None and w.strip() and matcher.search(w):
                continue
            if _NUMBERISH.search(w):
                continue
            kept.append(w)
        result = "".join(kept).strip()
        if matcher is not None and matcher.search(result):
            return None  # multi-word names survive word-by-word removal: drop the value
        return result

    def _method(self) -> list[Node]:
        """Attributes every de-identified file carries (PS3.15 E.1.1 items 5-7), built once."""
        items = [
            [text_node(0x00080100, "SH", [value]), text_node(0x00080102, "SH", ["DCM"]),
             text_node(0x00080104, "LO", [meaning])]
            for value, meaning in self.profile.method_codes()
        ]
        nodes = [
            text_node(0x00120062, "CS", ["YES"]),
            text_node(0x00120063, "LO", [f"STA {STA_VERSION_NAME}; PS3.15 Annex E; profile {self.profile.name}"[:64]]),
            Node(0x00120064, "SQ", None, None, items),
        ]
        if self._modified_dates:
            nodes.append(text_node(0x00280303, "CS", ["MODIFIED"]))
        return nodes

    def _finish(self, nodes: list[Node], ident: PatientIdentity) -> list[Node]:
        by_tag = {n.tag: n for n in nodes}
        by_tag[0x00100010] = text_node(0x00100010, "PN", [ident.token])
        by_tag[0x00100020] = text_node(0x00100020, "LO", [ident.token])
        age = age_string(ident.age, self.profile.age_cap)
        if age and self.profile.options.retain_patient_characteristics:
            by_tag[0x00101010] = text_node(0x00101010, "AS", [age])
        else:
            by_tag.pop(0x00101010, None)
        if 0x00100040 in by_tag and not self.profile.options.retain_patient_characteristics:
            by_tag[0x00100040] = text_node(0x00100040, "CS", [""])
        for n in self._method_nodes:
            by_tag[n.tag] = n
        return sorted(by_tag.values(), key=lambda n: n.tag)

    # -- the file -----------------------------------------------------------
    def deidentify_file(self, src: Path, dst_dir: Path, relpath: str | None = None) -> DeidResult:
        """De-identify ``src`` into ``dst_dir/<relpath>`` (default ``<study>/<series>/<sop>.dcm``).

        Raises :class:`Quarantine`; on success nothing else was written.
        """
        src = Path(src)
        size = src.stat().st_size
        if size == 0:
            raise Quarantine("empty_file", "zero bytes")
        with src.open("rb") as fp:
            if self.fast_reader:
                try:
                    head = read_header(fp, size)
                except Unsupported:
                    head = None  # unusual file: pydicom reads it below
                except BadElement as exc:
                    raise Quarantine("unreadable_element", str(exc)) from exc
                if head is not None:
                    return self._deidentify_fast(head, src, fp, size, dst_dir, relpath)
            ds = self._open_header(fp, src)
            header_end = fp.tell()
            ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
            if ts in _STREAMABLE_TS_EXCLUDED or not getattr(ds, "original_encoding", (True, True))[1]:
                return self._deidentify_in_memory(src, dst_dir, self._pixels_at_risk(ds), relpath)
            if self._pixels_at_risk(ds):
                return self._deidentify_in_memory(src, dst_dir, True, relpath)
            return self._deidentify_header(ds, fp, header_end, size, dst_dir, relpath, pixels_modified=False)

    def _deidentify_fast(
        self, head: Header, src: Path, fp: BinaryIO, size: int, dst_dir: Path, relpath: str | None
    ) -> DeidResult:
        """The common case, read by :func:`read_header`: same checks as ``_open_header``, same rules."""
        if not head.nodes:
            raise Quarantine("not_dicom", "no data elements")
        tags = {n.tag for n in head.nodes}
        if head.media_class == DICOMDIR_SOP_CLASS or 0x00041220 in tags:
            raise Quarantine("dicomdir", "a DICOMDIR (media directory) holds paths and names, not images")
        if 0x00080018 not in tags or 0x00080016 not in tags:
            raise Quarantine("not_dicom", "no SOP Class/Instance UID: not a composite object")
        view = _View(head.nodes)
        if self._at_risk(view, head.pixels or 0x00280010 in tags):
            return self._deidentify_in_memory(src, dst_dir, True, relpath)
        ts = head.transfer_syntax
        nodes, ident = self._identify(head.nodes)
        return self._deidentify_nodes(nodes, ident, ts, head.implicit, fp, head.end, size, dst_dir, relpath,
                                      pixels_modified=False)

    def _at_risk(self, view: "_View", has_pixels: bool) -> bool:
        if not self.profile.options.clean_pixel_data or not has_pixels:
            return False
        mode = self.profile.pixel_policy.mode(str(view.get("Modality", "") or ""))
        if mode == "never":
            return False
        burned = str(view.get("BurnedInAnnotation", "") or "").upper() == "YES"
        # Secondary Capture IODs (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.7.x) are screenshots and scans.
        secondary = str(view.get("SOPClassUID", "") or "").startswith("1.2.840.10008.5.1.4.1.1.7")
        return mode == "always" or burned or secondary

    def _pixels_at_risk(self, ds: Dataset) -> bool:
        if not self.profile.options.clean_pixel_data:
            return False
        if not any(t in ds._dict for t in PIXEL_TAGS) and 0x00280010 not in ds._dict:
            return False
        mode = self.profile.pixel_policy.mode(str(ds.get("Modality", "") or ""))
        if mode == "never":
            return False
        burned = str(ds.get("BurnedInAnnotation", "") or "").upper() == "YES"
        # Secondary Capture IODs (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.7.x) are screenshots and scans.
        secondary = str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.7")
        return mode == "always" or burned or secondary

    def _deidentify_in_memory(self, src: Path, dst_dir: Path, clean_pixels: bool, relpath: str | None) -> DeidResult:
        """Decoded whole: pixels to clean, or an encoding that cannot be streamed (deflate, big endian).

        The (cleaned) dataset is re-encoded as Little Endian in memory and then
        goes through the same header path as every other file: one set of rules.
        """
        try:
            ds = pydicom.dcmread(src, force=True)
        except Exception as exc:  # noqa: BLE001
            raise Quarantine("unreadable_pixel_data", type(exc).__name__) from exc
        modified = False
        if clean_pixels:
            if self.pixel_cleaner is None:
                raise Quarantine("burned_in_text", "pixels at risk of burned-in text and no pixel cleaner is configured")
            _, ident = self._read(ds)  # the same reading as every other file (no pydicom conversion)
            try:
                self.pixel_cleaner(ds, sorted(ident.phi.raw))  # type: ignore[operator]
            except Quarantine:
                raise
            except Exception as exc:  # noqa: BLE001
                reason = getattr(exc, "reason", None) or "burned_in_text"
                raise Quarantine(str(reason), f"pixels could not be cleared: {exc}") from exc
            modified = True
        buf = io.BytesIO()
        try:
            implicit, little = _to_little_endian(ds)
            pydicom.dcmwrite(buf, ds, enforce_file_format=True, implicit_vr=implicit, little_endian=little)
        except Quarantine:
            raise
        except Exception as exc:  # noqa: BLE001
            raise Quarantine("write_error", f"re-encoding: {type(exc).__name__}") from exc
        size = buf.tell()
        buf.seek(0)
        header = self._open_header(buf, src)
        return self._deidentify_header(header, buf, buf.tell(), size, dst_dir, relpath, pixels_modified=modified)

    def _deidentify_header(
        self, ds: FileDataset, fp: BinaryIO, header_end: int, size: int, dst_dir: Path, relpath: str | None,
        *, pixels_modified: bool,
    ) -> DeidResult:
        implicit, little = getattr(ds, "original_encoding", (True, True))
        implicit = implicit in (True, None)
        ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
        if not ts or ts in ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1") or ts == "1.2.840.10008.1.2.2":
            ts = "1.2.840.10008.1.2" if implicit else "1.2.840.10008.1.2.1"  # as encoded, whatever the meta said
        elif implicit:
            raise Quarantine("unreadable_header", "Implicit VR dataset under a compressed transfer syntax")
        nodes, ident = self._read(ds)
        return self._deidentify_nodes(nodes, ident, ts, implicit, fp, header_end, size, dst_dir, relpath,
                                      pixels_modified=pixels_modified)

    def _deidentify_nodes(
        self, nodes: list[Node], ident: PatientIdentity, ts: str, implicit: bool, fp: BinaryIO, header_end: int,
        size: int, dst_dir: Path, relpath: str | None, *, pixels_modified: bool,
    ) -> DeidResult:
        span = self._pixel_span(fp, header_end, size, implicit)
        top = _View(nodes)
        info = {kw: _s(top.get(kw)) for kw in _INFO_KEYWORDS}
        rows_cols = {n.tag: n for n in nodes if n.tag in (0x00280010, 0x00280011)}

        encodings = encodings_of(top.get("SpecificCharacterSet") and top.get("SpecificCharacterSet").split("\\"))
        try:
            cleaned = self._clean(nodes, ident, encodings, self._pairs(nodes, ident))
        except BadElement as exc:
            raise Quarantine("unreadable_element", str(exc)) from exc
        out_nodes = self._finish(cleaned, ident)
        out_view = _View(out_nodes)
        sop = _s(out_view.get("SOPInstanceUID")) or ""
        series, study = _s(out_view.get("SeriesInstanceUID")), _s(out_view.get("StudyInstanceUID"))
        sop_class = _s(out_view.get("SOPClassUID")) or ""
        if not sop or not sop_class:
            raise Quarantine("missing_uid", "SOP Class or Instance UID emptied")
        if not series or not study:
            raise Quarantine("missing_uid", "Study or Series Instance UID absent")

        # Residual scan 1: every decoded value at any depth (names, IDs, dates in their forms).
        hits = _residual_texts(ident.phi, out_nodes)
        if hits:
            raise Quarantine("residual_phi", "original identifying value found after de-identification in "
                             + ", ".join(sorted(set(hits))[:5]))
        try:
            parts: list[bytes] = [file_meta(sop_class, sop, ts, STA_IMPLEMENTATION_UID, STA_VERSION_NAME)]
            write_nodes(out_nodes, implicit, parts)
        except BadElement as exc:
            raise Quarantine("write_error", str(exc)) from exc
        except UnicodeError as exc:  # a UID that is not ASCII cannot be written (PS3.5 9.1)
            raise Quarantine("write_error", f"{type(exc).__name__} in a UID or code") from exc
        header_bytes = b"".join(parts)
        # Residual scan 2: the written bytes, in every encoding the file may use.
        if scan_bytes(ident.phi, header_bytes, _python_encodings(encodings)) or _raw_hit(ident.phi, header_bytes, encodings):
            raise Quarantine("residual_phi", "original identifying value found in the written header bytes")

        out = Path(dst_dir) / (relpath or f"{study}/{series}/{sop}.dcm")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256(header_bytes) if self.checksum else None
        written = len(header_bytes)
        try:
            with tmp.open("wb") as out_fp:
                out_fp.write(header_bytes)
                if span is not None:
                    out_fp.flush()
                    written += _copy_span(fp, out_fp, span, digest)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
        rows, cols = (_us(rows_cols.get(t)) for t in (0x00280010, 0x00280011))
        frames = _i(info["NumberOfFrames"]) or (1 if rows else None)
        return DeidResult(
            output=out,
            sop_uid=sop,
            series_uid=series,
            study_uid=study,
            sop_class_uid=sop_class,
            transfer_syntax=ts,
            patient_token=ident.token,
            modality=info["Modality"],
            body_part=info["BodyPartExamined"],
            study_date_shifted=study_date(_s(out_view.get("StudyDate")) or ""),
            study_description=_s(out_view.get("StudyDescription")),
            series_description=_s(out_view.get("SeriesDescription")),
            series_number=_i(info["SeriesNumber"]),
            age=ident.age,
            sex=ident.sex,
            birth_year=ident.birth_year,
            manufacturer=info["Manufacturer"],
            manufacturer_model=info["ManufacturerModelName"],
            rows=rows,
            cols=cols,
            frames=frames,
            size_bytes=written,
            sha256=digest.hexdigest() if digest is not None else "",
            pixels_modified=pixels_modified,
            identity=ident,
        )


_INFO_KEYWORDS = ("Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName", "NumberOfFrames", "SeriesNumber")
_SPACES = re.compile(r"(\s+)")
_NUMBERISH = re.compile(r"\d{5,}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}")
_DUMMY_NUMBERS = {"US": b"\x00\x00", "SS": b"\x00\x00", "UL": b"\x00" * 4, "SL": b"\x00" * 4, "FL": b"\x00" * 4,
                  "FD": b"\x00" * 8, "SV": b"\x00" * 8, "UV": b"\x00" * 8}


_NAME_VRS = frozenset({"PN", "LO", "SH", "UC"})


def _alternative_readings(raw: bytes, vr: str, values: list[str]) -> list[list[str]]:
    out = []
    for codec in ("utf-8", "latin-1"):
        try:
            text = raw.decode(codec)
        except UnicodeDecodeError:
            continue
        alt = [text.rstrip(" \x00")] if vr in ("LT", "ST", "UT") else [v.strip(" \x00") for v in text.split("\\")]
        if alt != values:
            out.append(alt)
    return out


_KERNEL_COPY_MIN = 4 << 20  # below this a thread costs more than it saves: a plain loop


def _copy_span(src: BinaryIO, dst: BinaryIO, span: _PixelSpan, digest: "hashlib._Hash | None") -> int:
    """Copy the pixel element verbatim, hashing it on the way; memory stays at a few chunks.

    On real files the kernel copies (``copy_file_range``, no bytes through
    Python) in one thread while this thread reads the same range from the page
    cache and hashes it: both release the GIL, so the copy costs about what the
    SHA-256 costs. Elsewhere (in-memory buffers) a plain chunked loop.
    """
    try:
        in_fd, out_fd = src.fileno(), dst.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        in_fd = out_fd = -1
    if in_fd >= 0 and hasattr(os, "copy_file_range") and span.length >= _KERNEL_COPY_MIN:
        error: list[BaseException] = []

        def kernel_copy() -> None:
            try:
                pos, end, out_pos = span.offset, span.offset + span.length, os.lseek(out_fd, 0, os.SEEK_CUR)
                while pos < end:
                    n = os.copy_file_range(in_fd, out_fd, min(end - pos, 1 << 30), pos, out_pos)
                    if n == 0:
                        raise Quarantine("truncated", "pixel data ended while copying")
                    pos += n
                    out_pos += n
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                error.append(exc)

        if digest is None:  # nothing to hash: the kernel copies, this thread waits for it
            kernel_copy()
            if error:
                if isinstance(error[0], OSError):
                    dst.seek(0, os.SEEK_END)
                    return _copy_loop(src, dst, span, None)
                raise error[0]
            os.lseek(out_fd, 0, os.SEEK_END)
            return span.length
        worker = threading.Thread(target=kernel_copy, name="pixel-copy")
        worker.start()
        pos, end = span.offset, span.offset + span.length
        try:
            while digest is not None and pos < end:
                chunk = os.pread(in_fd, min(CHUNK * 4, end - pos), pos)
                if not chunk:
                    raise Quarantine("truncated", "pixel data ended while hashing")
                digest.update(chunk)
                pos += len(chunk)
        finally:
            worker.join()
        if error:
            if isinstance(error[0], OSError):  # e.g. a file system without copy_file_range: copy by hand
                dst.seek(0, os.SEEK_END)
                return _copy_loop(src, dst, span, None)
            raise error[0]
        os.lseek(out_fd, 0, os.SEEK_END)
        return span.length
    return _copy_loop(src, dst, span, digest)


def _copy_loop(src: BinaryIO, dst: BinaryIO, span: _PixelSpan, digest: "hashlib._Hash | None") -> int:
    src.seek(span.offset)
    remaining = span.length
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise Quarantine("truncated", "pixel data ended while copying")
        dst.write(chunk)
        if digest is not None:
            digest.update(chunk)
        remaining -= len(chunk)
    return span.length


def _dummy(n: Node) -> Node:
    """PS3.15 E.1.1 D: a value of the same VR that identifies nobody."""
    if n.vr in _DUMMY_BY_VR:
        return text_node(n.tag, n.vr, [_DUMMY_BY_VR[n.vr]])
    if n.vr in _DUMMY_NUMBERS:
        return Node(n.tag, n.vr, _DUMMY_NUMBERS[n.vr])
    return Node(n.tag, n.vr, b"", None, None, n.wvr if n.vr == "UN" else None)  # binary (O*, UN): empty


def _to_little_endian(ds: Dataset) -> tuple[bool, bool]:
    """Deflated and Big Endian datasets become Explicit VR Little Endian before the header path.

    Returns the (implicit, little endian) encoding to write the dataset with.
    """
    ts = str(ds.file_meta.get("TransferSyntaxUID", "") or "")
    implicit, little = getattr(ds, "original_encoding", (None, None))
    big = little is False or ts == "1.2.840.10008.1.2.2"
    if big and "PixelData" in ds:
        # Native pixels swapped word by word (PS3.5 7.3: OW is 16-bit words, larger samples by their size).
        import numpy as np

        bits = int(ds.get("BitsAllocated", 16) or 16)
        width = bits // 8 if bits in (16, 32, 64) else (2 if ds["PixelData"].VR == "OW" else 1)
        if width > 1:
            ds.PixelData = np.frombuffer(ds.PixelData, dtype=f">u{width}").astype(f"<u{width}").tobytes()
    if big or ts == "1.2.840.10008.1.2.1.99":
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1")
        implicit = False
    elif "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2" if implicit in (True, None) else "1.2.840.10008.1.2.1")
    if "MediaStorageSOPClassUID" not in ds.file_meta and "SOPClassUID" in ds:
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in ds.file_meta and "SOPInstanceUID" in ds:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ts = str(ds.file_meta.TransferSyntaxUID)
    return (ts == "1.2.840.10008.1.2"), True


_NOT_TEXT = frozenset({"UI", "OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_DEVICE_TAGS = frozenset({0x00080070, 0x00081090, 0x00181020})  # Manufacturer, model, software versions


def _texts(nodes: list[Node]) -> list[tuple[tuple[int, ...], str]]:
    """Every value written, as text: decoded strings, number strings and binary numbers."""
    out: list[tuple[tuple[int, ...], str]] = []
    for path, n in walk(nodes):
        if n.items is not None or n.vr in _NOT_TEXT or n.tag in PIXEL_TAGS:
            continue  # UIDs are remapped or registered class UIDs; binary is scanned as bytes
        text = n.text() if n.values is not None else number_text(n)
        if text:
            out.append((path, text))
    return out


def _residual_texts(phi: PhiSet, nodes: list[Node]) -> list[str]:
    """Locations of output values holding an original identifying value (none: publishable).

    All values are first searched in one pass (device fields, which Retain
    Device Identity keeps, only for strong values); only when that finds
    something is each value searched alone, to name the locations and to
    discard a name that two neighbouring values happen to spell together.
    """
    texts = _texts(nodes)
    device = [t for p, t in texts if p[-1] in _DEVICE_TAGS]
    other = [t for p, t in texts if p[-1] not in _DEVICE_TAGS]
    strong, full = phi.matcher(include_weak=False), phi.matcher()
    suspect = (full is not None and full.search("\n".join(other))) or (
        strong is not None and strong.search("\n".join(device))
    )
    if not suspect:
        return []
    return scan_texts(phi, [(path_name(p), t) for p, t in texts])


def _s(value: object) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _i(value: object) -> int | None:
    try:
        return int(float(str(value))) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _us(n: Node | None) -> int | None:
    if n is None or not n.raw or len(n.raw) < 2:
        return None
    return struct.unpack("<H", n.raw[:2])[0]


def _python_encodings(encodings: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(["latin-1", "utf-8", *encodings]))


def _raw_hit(phi: PhiSet, data: bytes, encodings: tuple[str, ...]) -> bool:
    """Original values encoded in the file's own character set (e.g. ISO 2022 names)."""
    for value in phi.raw:
        if len(value) < 4 and not any(ord(c) > 127 for c in value):
            continue
        for part in {value, *value.replace("=", "^").split("^")}:
            part = part.strip()
            if len(part) < 2 or (part.isascii() and len(part) < 4):
                continue
            try:
                encoded = encode_string(part, list(encodings))
            except Exception:  # noqa: BLE001
                continue
            if encoded and not encoded.isascii() and encoded in data:
                return True
    return False
