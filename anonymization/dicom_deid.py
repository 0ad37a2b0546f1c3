"""De-identify one DICOM file: PS3.15 Annex E, keyed UIDs, shifted dates, fail closed.

Fast path (no pixel change due): only the header is parsed
(``stop_before_pixels``); the pixel data element is then copied byte for byte
from the input, streamed in chunks, so a 1 GB multi-frame file costs a few MB
of memory and its pixels are provably unchanged. When the pixels must be
cleaned (burned-in text), the whole file is decoded and handed to
``anonymization.pixels``.

Every failure raises :class:`Quarantine` with a machine-readable reason; the
caller moves the input to quarantine. Nothing half-written reaches the output:
files are written to a temporary name and renamed after the residual-PHI scan.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom import config as pydicom_config
from pydicom.charset import encode_string
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import UID, UID_dictionary

from anonymization.dicom_dates import shift_da, shift_da_tm, shift_dt, shift_tm
from anonymization.dicom_rules import CLEAN, DUMMY, EMPTY, KEEP, REMOVE, UID as REMAP, RuleBook
from anonymization.identity import PatientIdentity, age_string, read_identity, study_date
from anonymization.keys import Keyring
from anonymization.phi_scan import PhiSet, normalise, scan_bytes, scan_texts
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
    ) -> None:
        self.profile = profile
        self.keyring = keyring
        self.rules = RuleBook(profile)
        self.partner_id = partner_id
        self.issuers = national_id_issuers or {}
        self.pixel_cleaner = pixel_cleaner

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
        if len(ds) == 0:
            raise Quarantine("not_dicom", "no data elements")
        media_class = str(getattr(ds.file_meta, "MediaStorageSOPClassUID", "") or "")
        if media_class == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
            raise Quarantine("dicomdir", "a DICOMDIR (media directory) holds paths and names, not images")
        if "SOPInstanceUID" not in ds or "SOPClassUID" not in ds:
            raise Quarantine("not_dicom", "no SOP Class/Instance UID: not a composite object")
        return ds

    @staticmethod
    def _force_values(ds: Dataset) -> None:
        """Convert every raw element now, so a malformed one quarantines the file."""
        for tag in list(ds.keys()):
            try:
                elem = ds[tag]
                value = elem.value
            except Exception as exc:  # noqa: BLE001
                if tag.is_private:
                    # A private element whose dictionary VR does not fit its bytes (common in
                    # implicit VR files): it would be removed anyway, so remove it now.
                    del ds[tag]
                    continue
                raise Quarantine("unreadable_element", f"{tag} {type(exc).__name__}") from exc
            if elem.VR == "SQ":
                for item in value or []:
                    Deidentifier._force_values(item)

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
    def _clean(self, ds: Dataset, ident: PatientIdentity, top: bool) -> None:
        for elem in list(ds):
            tag = int(elem.tag)
            if elem.tag.is_private:
                self._private(ds, elem)
                continue
            if elem.tag.element == 0:
                del ds[tag]  # group lengths: stale after editing (retired, PS3.5 7.2)
                continue
            if tag in PIXEL_TAGS:
                continue
            rule = self.rules.rule(tag, elem.VR)
            action = rule.action
            if elem.VR == "SQ" and action not in (REMOVE, EMPTY):
                # K, C, D, U on a sequence: keep it, its items follow the same rules
                for item in elem.value or []:
                    self._clean(item, ident, False)
                continue
            if action == KEEP:
                continue
            if action == REMOVE:
                del ds[tag]
            elif action == EMPTY:
                elem.value = Sequence() if elem.VR == "SQ" else ""
            elif action == REMAP:
                self._remap_uid(ds, elem, listed=rule.listed)
            elif action == DUMMY:
                if elem.VR == "SQ":
                    for item in elem.value or []:
                        self._clean(item, ident, False)
                elif elem.VR == "UI":
                    self._remap_uid(ds, elem, listed=True)
                elif elem.VR in ("DA", "DT", "TM") and self.profile.options.retain_longitudinal_modified_dates:
                    self._shift(ds, elem, ident)
                else:
                    elem.value = _DUMMY_BY_VR.get(elem.VR, b"" if elem.VR.startswith("O") else 0)
            elif action == CLEAN:
                if elem.VR == "SQ":
                    for item in elem.value or []:
                        self._clean(item, ident, False)
                elif elem.VR in ("DA", "DT", "TM"):
                    self._shift(ds, elem, ident)
                elif elem.VR in ("LT", "ST", "UT"):
                    # Free-text comments and histories can name anyone (a relative, another
                    # patient): known values can be removed, unknown names cannot, so they go.
                    del ds[tag]
                elif elem.VR in ("LO", "SH", "UC", "CS"):
                    cleaned = self._clean_text(str(elem.value or ""), ident.phi)
                    if cleaned is None:
                        del ds[tag]
                    else:
                        elem.value = cleaned
                else:
                    del ds[tag]
            else:  # an action we do not know is an action we do not trust
                del ds[tag]

    def _private(self, ds: Dataset, elem: pydicom.DataElement) -> None:
        if self.profile.options.retain_safe_private and self.profile.safe_private:
            group, el = elem.tag.group, elem.tag.element
            if 0x10 <= el <= 0xFF:  # a private creator: keep while one of its elements is kept
                creator = str(elem.value).strip()
                if any(sp.creator == creator for sp in self.profile.safe_private):
                    return
            else:
                block = el >> 8
                creator_tag = (group << 16) | block
                creator = str(ds[creator_tag].value).strip() if creator_tag in ds else ""
                for sp in self.profile.safe_private:
                    if sp.creator == creator and (el & 0xFF) in sp.elements and elem.VR not in ("PN", "SQ", "UN"):
                        return
        del ds[elem.tag]

    def _remap_uid(self, ds: Dataset, elem: pydicom.DataElement, *, listed: bool) -> None:
        def one(v: str) -> str:
            v = str(v).strip()
            if not v:
                return v
            if not listed and v in UID_dictionary:  # SOP classes, transfer syntaxes, coding schemes
                return v
            return self.keyring.uid(v)

        if elem.VM > 1:
            elem.value = [one(v) for v in elem.value]
        elif elem.value:
            elem.value = one(elem.value)

    def _shift(self, ds: Dataset, elem: pydicom.DataElement, ident: PatientIdentity) -> None:
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        out: list[str] = []
        for v in values:
            v = str(v or "").strip()
            if not v:
                out.append(v)
                continue
            if elem.VR == "DA":
                shifted = shift_da(v, ident.offset)
            elif elem.VR == "DT":
                shifted = shift_dt(v, ident.offset)
            else:
                shifted = shift_tm(v, ident.offset)
            if shifted is None:
                del ds[elem.tag]
                return
            out.append(shifted)
        elem.value = out if elem.VM > 1 else out[0]

    def _shift_pairs(self, ds: Dataset, ident: PatientIdentity) -> set[int]:
        """Date+Time attribute pairs shifted together (before the generic walk)."""
        done: set[int] = set()
        for elem in list(ds):
            kw = elem.keyword
            if elem.VR != "DA" or not kw.endswith("Date") or elem.VM != 1:
                continue
            tm_kw = kw[:-4] + "Time"
            if tm_kw not in ds or ds[tm_kw].VM != 1 or not elem.value or not ds[tm_kw].value:
                continue
            if self.rules.rule(int(elem.tag), "DA").action not in (CLEAN, DUMMY):
                continue
            pair = shift_da_tm(str(elem.value), str(ds[tm_kw].value), ident.offset)
            if pair is None:
                continue
            elem.value, ds[tm_kw].value = pair
            done.update({int(elem.tag), int(ds[tm_kw].tag)})
        return done

    @staticmethod
    def _clean_text(text: str, phi: PhiSet) -> str | None:
        """Clean Descriptors (PS3.15 E.3.5): drop known identities, long numbers and dates."""
        import re

        pattern = phi.pattern()
        words = re.split(r"(\s+)", text)
        kept: list[str] = []
        for w in words:
            n = normalise(w)
            if n and pattern is not None and pattern.search(n):
                continue
            if re.search(r"\d{5,}|\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}", w):
                continue
            kept.append(w)
        result = "".join(kept).strip()
        if pattern is not None and pattern.search(normalise(result)):
            return None  # multi-word names survive word-by-word removal: drop the value
        return result

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
            ds = self._open_header(fp, src)
            header_end = fp.tell()
            ts = str(ds.file_meta.get("TransferSyntaxUID", "1.2.840.10008.1.2") or "1.2.840.10008.1.2")
            self._force_values(ds)
            implicit = ts == "1.2.840.10008.1.2"
            needs_pixels = self._pixels_at_risk(ds)
            if ts in _STREAMABLE_TS_EXCLUDED or needs_pixels:
                return self._deidentify_in_memory(src, dst_dir, needs_pixels, relpath)
            span = self._pixel_span(fp, header_end, size, implicit)
            return self._write(ds, fp, span, dst_dir, relpath, pixels_modified=False)

    def _pixels_at_risk(self, ds: Dataset) -> bool:
        if not self.profile.options.clean_pixel_data:
            return False
        if not any(t in ds for t in PIXEL_TAGS) and "Rows" not in ds:
            return False
        mode = self.profile.pixel_policy.mode(str(ds.get("Modality", "") or ""))
        if mode == "never":
            return False
        burned = str(ds.get("BurnedInAnnotation", "") or "").upper() == "YES"
        # Secondary Capture IODs (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.7.x) are screenshots and scans.
        secondary = str(ds.get("SOPClassUID", "")).startswith("1.2.840.10008.5.1.4.1.1.7")
        return mode == "always" or burned or secondary

    def _deidentify_in_memory(self, src: Path, dst_dir: Path, clean_pixels: bool, relpath: str | None) -> DeidResult:
        try:
            ds = pydicom.dcmread(src, force=True)
        except Exception as exc:  # noqa: BLE001
            raise Quarantine("unreadable_pixel_data", type(exc).__name__) from exc
        self._force_values(ds)
        ident_for_pixels = read_identity(ds, self.keyring, self.rules, self.issuers, self.partner_id)
        modified = False
        if clean_pixels:
            if self.pixel_cleaner is None:
                raise Quarantine("burned_in_text", "pixels at risk of burned-in text and no pixel cleaner is configured")
            try:
                self.pixel_cleaner(ds, sorted(ident_for_pixels.phi.raw))  # type: ignore[operator]
            except Quarantine:
                raise
            except Exception as exc:  # noqa: BLE001
                reason = getattr(exc, "reason", None) or "burned_in_text"
                raise Quarantine(str(reason), f"pixels could not be cleared: {exc}") from exc
            modified = True
        return self._write(ds, None, None, dst_dir, relpath, pixels_modified=modified, ident=ident_for_pixels)

    def _write(
        self,
        ds: FileDataset,
        fp: BinaryIO | None,
        span: _PixelSpan | None,
        dst_dir: Path,
        relpath: str | None,
        *,
        pixels_modified: bool,
        ident: PatientIdentity | None = None,
    ) -> DeidResult:
        ident = ident or read_identity(ds, self.keyring, self.rules, self.issuers, self.partner_id)
        # Values needed later but not identifying.
        modality = _s(ds.get("Modality"))
        body_part = _s(ds.get("BodyPartExamined"))
        manufacturer = _s(ds.get("Manufacturer"))
        model = _s(ds.get("ManufacturerModelName"))
        rows, cols = _i(ds.get("Rows")), _i(ds.get("Columns"))
        frames = _i(ds.get("NumberOfFrames")) or (1 if rows else None)
        series_number = _i(ds.get("SeriesNumber"))

        pixel_elems = {t: ds[t] for t in PIXEL_TAGS if t in ds}
        for t in pixel_elems:
            del ds[t]
        self._shift_pairs(ds, ident)
        self._clean(ds, ident, True)
        self._finish(ds, ident)

        # Residual scan over every decoded string at any depth.
        hits = scan_texts(ident.phi, _strings(ds))
        if hits:
            raise Quarantine("residual_phi", "original identifying value found after de-identification in " + ", ".join(sorted(set(hits))[:5]))

        sop, series, study = str(ds.SOPInstanceUID), str(ds.get("SeriesInstanceUID", "")), str(ds.get("StudyInstanceUID", ""))
        if not series or not study:
            raise Quarantine("missing_uid", "Study or Series Instance UID absent")
        out = Path(dst_dir) / (relpath or f"{study}/{series}/{sop}.dcm")
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        digest = hashlib.sha256()
        header = io.BytesIO()
        try:
            ds.save_as(header, enforce_file_format=True)
        except Exception as exc:  # noqa: BLE001
            raise Quarantine("write_error", f"{type(exc).__name__}: {exc}") from exc
        header_bytes = header.getvalue()
        if scan_bytes(ident.phi, header_bytes, _python_encodings(ds)) or _raw_hit(ident.phi, header_bytes, ds):
            raise Quarantine("residual_phi", "original identifying value found in the written header bytes")
        if pixel_elems and fp is None:  # in-memory path: pixels were decoded (and cleaned)
            for el in pixel_elems.values():
                ds.add(el)
            full = io.BytesIO()
            try:
                ds.save_as(full, enforce_file_format=True)
            except Exception as exc:  # noqa: BLE001
                raise Quarantine("write_error", f"{type(exc).__name__}: {exc}") from exc
            header_bytes = full.getvalue()
        try:
            with tmp.open("wb") as out_fp:
                out_fp.write(header_bytes)
                digest.update(header_bytes)
                if fp is not None and span is not None:
                    fp.seek(span.offset)
                    remaining = span.length
                    while remaining:
                        chunk = fp.read(min(CHUNK, remaining))
                        if not chunk:
                            raise Quarantine("truncated", "pixel data ended while copying")
                        out_fp.write(chunk)
                        digest.update(chunk)
                        remaining -= len(chunk)
            os.replace(tmp, out)
        finally:
            if tmp.exists():
                tmp.unlink()
        return DeidResult(
            output=out,
            sop_uid=sop,
            series_uid=series,
            study_uid=study,
            sop_class_uid=str(ds.SOPClassUID),
            transfer_syntax=str(ds.file_meta.TransferSyntaxUID),
            patient_token=ident.token,
            modality=modality,
            body_part=body_part,
            study_date_shifted=study_date(_s(ds.get("StudyDate")) or ""),
            study_description=_s(ds.get("StudyDescription")),
            series_description=_s(ds.get("SeriesDescription")),
            series_number=series_number,
            age=ident.age,
            sex=ident.sex,
            birth_year=ident.birth_year,
            manufacturer=manufacturer,
            manufacturer_model=model,
            rows=rows,
            cols=cols,
            frames=frames,
            size_bytes=out.stat().st_size,
            sha256=digest.hexdigest(),
            pixels_modified=pixels_modified,
            identity=ident,
        )

    def _finish(self, ds: FileDataset, ident: PatientIdentity) -> None:
        """Attributes every de-identified file carries (PS3.15 E.1.1 items 5-7)."""
        ds.PatientName = ident.token
        ds.PatientID = ident.token
        age = age_string(ident.age, self.profile.age_cap)
        if age and self.profile.options.retain_patient_characteristics:
            ds.PatientAge = age
        elif "PatientAge" in ds:
            del ds.PatientAge
        if "PatientSex" in ds and not self.profile.options.retain_patient_characteristics:
            ds.PatientSex = ""
        ds.PatientIdentityRemoved = "YES"
        codes = self.profile.method_codes()
        ds.DeidentificationMethod = f"STA {STA_VERSION_NAME}; PS3.15 Annex E; profile {self.profile.name}"[:64]
        seq = Sequence()
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            seq.append(item)
        ds.DeidentificationMethodCodeSequence = seq
        if self.profile.options.retain_longitudinal_modified_dates:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        meta = ds.file_meta if isinstance(ds.file_meta, FileMetaDataset) else FileMetaDataset(ds.file_meta)
        if "TransferSyntaxUID" not in meta:  # a file without meta: keep the encoding it was read in
            implicit, little = getattr(ds, "original_encoding", (True, True))
            meta.TransferSyntaxUID = UID(
                "1.2.840.10008.1.2" if implicit in (True, None)
                else ("1.2.840.10008.1.2.1" if little in (True, None) else "1.2.840.10008.1.2.2")
            )
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.ImplementationClassUID = UID(STA_IMPLEMENTATION_UID)
        meta.ImplementationVersionName = STA_VERSION_NAME
        for kw in ("SourceApplicationEntityTitle", "SendingApplicationEntityTitle", "ReceivingApplicationEntityTitle",
                   "PrivateInformationCreatorUID", "PrivateInformation", "SourcePresentationAddress"):
            if kw in meta:
                delattr(meta, kw)
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128


def _s(elem: object) -> str | None:
    if elem is None:
        return None
    value = getattr(elem, "value", elem)
    text = str(value).strip() if value is not None else ""
    return text or None


def _i(elem: object) -> int | None:
    value = getattr(elem, "value", elem)
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _strings(ds: Dataset, path: str = "") -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for elem in ds:
        where = f"{path}{elem.keyword or elem.tag}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                out.extend(_strings(item, f"{where}[{i}]."))
        elif elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN", "UI") or int(elem.tag) in PIXEL_TAGS:
            continue  # UIDs are all remapped or registered class UIDs; binary is scanned as bytes
        else:
            out.append((where, str(elem.value)))
    # the file meta group is written too
    if not path and getattr(ds, "file_meta", None) is not None:
        for elem in ds.file_meta:
            if elem.VR not in ("OB", "UI"):
                out.append((f"meta.{elem.keyword}", str(elem.value)))
    return out


def _python_encodings(ds: Dataset) -> tuple[str, ...]:
    from pydicom.charset import convert_encodings

    charset = ds.get("SpecificCharacterSet", "ISO_IR 6")
    try:
        encs = convert_encodings(charset)
    except Exception:  # noqa: BLE001
        encs = []
    return tuple(dict.fromkeys(["latin-1", "utf-8", *encs]))


def _raw_hit(phi: PhiSet, data: bytes, ds: Dataset) -> bool:
    """Original values encoded in the file's own character set (e.g. ISO 2022 names)."""
    from pydicom.charset import convert_encodings

    try:
        encodings = convert_encodings(ds.get("SpecificCharacterSet", "ISO_IR 6"))
    except Exception:  # noqa: BLE001
        return False
    for value in phi.raw:
        if len(value) < 4 and not any(ord(c) > 127 for c in value):
            continue
        for part in {value, *value.replace("=", "^").split("^")}:
            part = part.strip()
            if len(part) < 2 or (part.isascii() and len(part) < 4):
                continue
            try:
                encoded = encode_string(part, encodings)
            except Exception:  # noqa: BLE001
                continue
            if encoded and not encoded.isascii() and encoded in data:
                return True
    return False
