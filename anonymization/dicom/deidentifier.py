"""De-identify one DICOM file: read, decide, act, verify, write. Fail closed.

1. ``readers.read_header`` reads the header (``reader="fast"``: the
   hand-written reader, pydicom when it declines; ``"pydicom"``: pydicom
   always) into one :class:`Header` and refuses what is not a composite object.
2. The pixel-risk rule (``anonymization.pixels.pixels_at_risk``, the one rule,
   owned by the pixel module) decides whether the pixels must be cleaned; such
   files, and deflated or big endian ones, are decoded whole, cleaned,
   re-encoded little endian in memory and read again: one header path.
3. Identity (token, offset, age) and every identifying value are read from the
   header (``identity.read_identity``), then ``actions.Actions`` applies Annex E.
4. ``verify`` scans the output values and bytes with the cleaner's own rule.
5. ``writer.write_file`` writes header + the pixel element, copied verbatim.

Every failure raises :class:`Quarantine` with a machine-readable reason.
"""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom import config as pydicom_config

from anonymization.dicom import verify
from anonymization.dicom.actions import STA_VERSION_NAME, Actions
from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import Header, HeaderView
from anonymization.dicom.readers import ReaderName, read_header, read_pydicom
from anonymization.dicom.writer import PixelFilter, pixel_span, to_little_endian, write_file
from anonymization.dicom_elements import (
    BINARY_NUMBERS, BadElement, Node, encodings_of, file_meta, keyword, text_node, write_nodes,
)
from anonymization.identity import PatientIdentity, add_element_phi, read_identity, study_date
from anonymization.keys import Keyring
from anonymization.phi_scan import PhiSet
from anonymization.profiles import Profile, ProfileSet

STA_IMPLEMENTATION_UID = "2.25.160842107343296409787218540290722245437"

# pydicom's value validation warns with the value quoted ("Invalid value for VR DA: '1958...'"):
# such messages would carry PHI into logs. The readers validate what matters themselves (a VR that is
# not one, numbers that are not numbers, control characters, lengths) and refuse with a reason.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
# An element whose length does not fit its VR (a private US of 3 bytes, common in vendors' US
# files) is kept as UN when a decoded file is re-encoded, as the header reader keeps it, instead
# of failing the whole file with "re-encoding: BytesLengthException" (issue 10.4). The rules then
# remove it (private UN) or refuse the file (a public attribute that is not what its VR says).
pydicom_config.convert_wrong_length_to_UN = True

_INFO_KEYWORDS = ("Modality", "BodyPartExamined", "Manufacturer", "ManufacturerModelName", "NumberOfFrames", "SeriesNumber")
_NAME_VRS = frozenset({"PN", "LO", "SH", "UC"})


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
    # Rows are ``foundation.schema.dicom_row(result, path)``: DICOM_ROW names these same fields.
    profile: str = ""  # the de-identification profile chosen for this file (issue 16.3)


class Deidentifier:
    """A profile (or a per-file profile set), one key, one partner's identity conventions; reusable."""

    def __init__(
        self,
        profile: Profile | ProfileSet,
        keyring: Keyring,
        *,
        partner_id: str = "local",
        national_id_issuers: dict[str, str] | None = None,
        pixel_cleaner: Callable[..., Any] | None = None,
        pixel_filter: PixelFilter | None = None,
        checksum: bool = True,
        reader: ReaderName = "fast",
        languages: tuple[str, ...] = ("es", "pt", "en"),
    ) -> None:
        """``checksum=False`` leaves ``DeidResult.sha256`` empty: for callers that do not
        record it (``sta deid``), a large file then costs a kernel copy instead of a
        SHA-256 pass over its pixels. No safety check depends on it.

        ``reader``: "fast" (hand-written header reader, pydicom for what it declines)
        or "pydicom" (pydicom for every file); both give the same output bytes."""
        self.profiles = profile if isinstance(profile, ProfileSet) else ProfileSet.single(profile)
        self.profile = self.profiles.base
        self.checksum = checksum
        self.reader: ReaderName = reader
        self.keyring = keyring
        self.partner_id = partner_id
        self.issuers = national_id_issuers or {}
        self.pixel_cleaner = pixel_cleaner
        self.pixel_filter = pixel_filter
        self.languages = languages
        self.scan_pixel_bytes = _scan_pixels_fn()
        self.stream_pixels = _stream_pixels_available()  # frame-by-frame cleaning (pixel module)
        self._actions: dict[str, Actions] = {}

    @property
    def fast_reader(self) -> bool:  # kept for callers of the old flag
        return self.reader == "fast"

    @fast_reader.setter
    def fast_reader(self, value: bool) -> None:
        self.reader = "fast" if value else "pydicom"

    def actions_for(self, profile: Profile) -> Actions:
        act = self._actions.get(profile.name)
        if act is None:
            act = self._actions[profile.name] = Actions(profile, self.keyring, self.languages)
        return act

    # -- the file ---------------------------------------------------------------------------
    def deidentify_file(self, src: Path, dst_dir: Path, relpath: str | None = None) -> DeidResult:
        """De-identify ``src`` into ``dst_dir/<relpath>`` (default ``<study>/<series>/<sop>.dcm``).

        Raises :class:`Quarantine`; on success nothing else was written.
        """
        src = Path(src)
        size = src.stat().st_size
        with src.open("rb") as fp:
            header = read_header(fp, size, self.reader)
            view = header.view()
            profile = self.profiles.choose(view)
            act = self.actions_for(profile)
            risk = self._at_risk(header, view, profile)
            if risk and header.streamable and header.pixels and self.pixel_cleaner is not None and \
                    self.stream_pixels is not None:
                return self._stream_cleaned(header, fp, size, dst_dir, relpath, act)
            if risk or not header.streamable:
                return self._in_memory(src, header, dst_dir, relpath, act, clean_pixels=bool(risk))
            if getattr(risk, "audit", False) and header.pixels and self.stream_pixels is not None and \
                    self.pixel_cleaner is not None:
                self._audit(header, fp, size, act)
            return self._write(header, fp, size, dst_dir, relpath, act, pixels_modified=False)

    def _pixel_module(self) -> tuple[Any, Any]:
        from anonymization import pixel_stream

        settings = pixel_stream.PixelSettings(languages=self.languages)
        return pixel_stream, settings

    def _audit(self, header: Header, fp: BinaryIO, size: int, act: Actions) -> None:
        """The sampled OCR audit of pixels the rule called safe (pixel module; a hit quarantines)."""
        module, settings = self._pixel_module()
        span = pixel_span(fp, header.end, size, header.implicit)
        if span is None:
            return
        ident = self.identify(header.nodes, act.profile)
        try:
            module.audit_pixel_element(fp, span, header.view(), sorted(ident.phi.raw), settings, header.transfer_syntax)
        except Exception as exc:  # noqa: BLE001 - PixelCleanError carries the reason
            raise Quarantine(str(getattr(exc, "reason", "") or "burned_in_text_audit"),
                             f"pixel audit: {type(exc).__name__}") from exc

    def _stream_cleaned(self, header: Header, fp: BinaryIO, size: int, dst_dir: Path, relpath: str | None,
                        act: Actions) -> DeidResult:
        """At-risk pixels cleaned frame by frame from the file (memory ~ a few frames, issue 10.6)."""
        module, settings = self._pixel_module()
        span = pixel_span(fp, header.end, size, header.implicit)
        if span is None:
            raise Quarantine("unreadable_pixel_data", "no pixel data element where the header ends")
        ident = self.identify(header.nodes, act.profile)
        try:
            cleaned = module.clean_pixel_element(fp, span, header.view(), sorted(ident.phi.raw), settings,
                                                 header.transfer_syntax)
        except Exception as exc:  # noqa: BLE001 - PixelCleanError carries the reason
            raise Quarantine(str(getattr(exc, "reason", "") or "burned_in_text"),
                             f"pixels could not be cleared: {type(exc).__name__}") from exc
        try:
            nodes = _updated(header.nodes, cleaned.updates, cleaned.removals)
            header = Header(nodes, header.end, header.implicit, cleaned.transfer_syntax or header.transfer_syntax,
                            header.media_class, header.pixels, header.reader, header.streamable)
            return self._write(header, fp, size, dst_dir, relpath, act, pixels_modified=cleaned.modified,
                               pixel_source=cleaned.write, span=span)
        finally:
            cleaned.close()

    def _pixel_check(self, phi: PhiSet) -> Callable[[Path, Any], None] | None:
        """The final scan of the written pixel bytes for the input's strong values (issue 10.3)."""
        scan = self.scan_pixel_bytes
        if scan is None:
            return None
        # 6+ characters: shorter terms occur by chance in hundreds of MB of native pixels
        terms = [t for t in phi.searchable(include_weak=False, min_digits=8) if len(t.replace(" ", "")) >= 6]

        def check(path: Path, span: Any) -> None:
            # Encapsulated data is where text hides between the samples (JPEG COM/APPn segments,
            # junk after EOI): every byte of it is searched. Native samples are pixel values, checked
            # by the pixel-risk rule and OCR; bytes past their declared length are dropped by the filter.
            if span is not None and span.encapsulated and terms and scan(path, span, terms):
                raise Quarantine("residual_phi", f"{verify.tag_name(span.tag)} pixel_bytes")

        return check

    @staticmethod
    def _at_risk(header: Header, view: HeaderView, profile: Profile) -> Any:
        from anonymization.pixel_risk import pixels_at_risk  # the one rule (owned by the pixel module)

        has_pixels = header.pixels or view.node("Rows") is not None
        return pixels_at_risk(view, profile, has_pixels=has_pixels)  # a RiskDecision: truthy, .audit, .reason

    def identify(self, nodes: list[Node], profile: Profile) -> PatientIdentity:
        """Token, offset, age and every identifying value of the header, in one walk."""
        phi = PhiSet()
        act = self.actions_for(profile)
        _collect(nodes, phi, act.keeps_private)
        return read_identity(HeaderView(nodes), self.keyring, self.actions_for(profile).rules, self.issuers,
                             self.partner_id, phi=phi)

    def _in_memory(self, src: Path, header: Header, dst_dir: Path, relpath: str | None, act: Actions,
                   *, clean_pixels: bool) -> DeidResult:
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
            ident = self.identify(header.nodes, act.profile)
            try:
                self.pixel_cleaner(ds, sorted(ident.phi.raw))
            except Quarantine:
                raise
            except Exception as exc:  # noqa: BLE001
                reason = getattr(exc, "reason", None) or "burned_in_text"
                raise Quarantine(str(reason), f"pixels could not be cleared: {type(exc).__name__}") from exc
            modified = True
        buf = io.BytesIO()
        try:
            implicit, little = to_little_endian(ds)
            _fit_lengths(ds, implicit)
            pydicom.dcmwrite(buf, ds, enforce_file_format=True, implicit_vr=implicit, little_endian=little)
        except Quarantine:
            raise
        except Exception as exc:  # noqa: BLE001
            raise Quarantine("write_error", f"re-encoding: {type(exc).__name__}") from exc
        size = buf.tell()
        buf.seek(0)
        again = read_pydicom(buf, size)
        return self._write(again, buf, size, dst_dir, relpath, act, pixels_modified=modified)

    def _write(self, header: Header, fp: BinaryIO, size: int, dst_dir: Path, relpath: str | None, act: Actions,
               *, pixels_modified: bool, pixel_source: Callable[[BinaryIO], int] | None = None,
               span: Any = None) -> DeidResult:
        if span is None:
            span = pixel_span(fp, header.end, size, header.implicit)
        nodes = header.nodes
        ident = self.identify(nodes, act.profile)
        top = HeaderView(nodes)
        info = {kw: _s(top.text(kw)) for kw in _INFO_KEYWORDS}
        encodings = encodings_of(top.text("SpecificCharacterSet").split("\\") if top.text("SpecificCharacterSet") else None)
        try:
            cleaned = act.clean(nodes, ident, encodings)
        except BadElement as exc:
            raise Quarantine("unreadable_element", str(exc)) from exc
        out_nodes = act.finish(cleaned, ident)
        out_view = HeaderView(out_nodes)
        sop, sop_class = _s(out_view.text("SOPInstanceUID")), _s(out_view.text("SOPClassUID"))
        series, study = _s(out_view.text("SeriesInstanceUID")), _s(out_view.text("StudyInstanceUID"))
        if not sop or not sop_class:
            raise Quarantine("missing_uid", "SOP Class or Instance UID emptied")
        if not series or not study:
            raise Quarantine("missing_uid", "Study or Series Instance UID absent")
        verify.check_values(ident.phi, out_nodes)
        try:
            parts: list[bytes] = [file_meta(sop_class, sop, header.transfer_syntax, STA_IMPLEMENTATION_UID,
                                            STA_VERSION_NAME)]
            write_nodes(out_nodes, header.implicit, parts)
        except BadElement as exc:
            raise Quarantine("write_error", str(exc)) from exc
        except UnicodeError as exc:  # a UID that is not ASCII cannot be written (PS3.5 9.1)
            raise Quarantine("write_error", f"{type(exc).__name__} in a UID or code") from exc
        header_bytes = b"".join(parts)
        verify.check_bytes(ident.phi, out_nodes, header_bytes, encodings)

        out = Path(dst_dir) / (relpath or f"{study}/{series}/{sop}.dcm")
        pixel_filter = None
        if self.pixel_filter is not None and pixel_source is None:
            filt = self.pixel_filter
            pixel_filter = lambda src_fp, sp, dst_fp: filt(src_fp, sp, top, dst_fp)  # noqa: E731
        written, digest, rewritten = write_file(out, header_bytes, fp, span, checksum=self.checksum, pixel_filter=pixel_filter,
                                     check=self._pixel_check(ident.phi), pixel_source=pixel_source)
        rows, cols = _int(top.get("Rows")), _int(top.get("Columns"))
        frames = _i(info["NumberOfFrames"]) or (1 if rows else None)
        capped = act.profile.age_cap is not None and ident.age is not None and ident.age >= act.profile.age_cap
        return DeidResult(
            output=out,
            sop_uid=sop,
            series_uid=series,
            study_uid=study,
            sop_class_uid=sop_class,
            transfer_syntax=header.transfer_syntax,
            patient_token=ident.token,
            modality=info["Modality"],
            body_part=info["BodyPartExamined"],
            study_date_shifted=study_date(out_view.text("StudyDate")),
            study_description=_s(out_view.text("StudyDescription")),
            series_description=_s(out_view.text("SeriesDescription")),
            series_number=_i(info["SeriesNumber"]),
            age=min(ident.age, act.profile.age_cap) if capped else ident.age,  # type: ignore[type-var]
            sex=ident.sex,
            birth_year=None if capped else ident.birth_year,
            manufacturer=info["Manufacturer"],
            manufacturer_model=info["ManufacturerModelName"],
            rows=rows,
            cols=cols,
            frames=frames,
            size_bytes=written,
            sha256=digest,
            pixels_modified=pixels_modified or (rewritten and pixel_source is None),  # the filter rewrote it
            identity=ident,
            profile=act.profile.name,
        )


def _stream_pixels_available() -> bool | None:
    """Whether the pixel module's frame-by-frame cleaner is installed (imported on first use: it
    brings numpy and the OCR stack, which files without at-risk pixels never need)."""
    from importlib.util import find_spec

    return True if find_spec("anonymization.pixel_stream") is not None else None


def _updated(nodes: list[Node], updates: dict[str, str], removals: list[str]) -> list[Node]:
    """Header values the pixel module changed (BurnedInAnnotation, PhotometricInterpretation ...)."""
    from pydicom.datadict import dictionary_VR, tag_for_keyword

    by_tag = {n.tag: n for n in nodes}
    for kw in removals or []:
        tag = tag_for_keyword(kw)
        if tag is not None:
            by_tag.pop(int(tag), None)
    for kw, value in (updates or {}).items():
        tag = tag_for_keyword(kw)
        if tag is None or kw == "TransferSyntaxUID":
            continue
        vr = dictionary_VR(tag).split(" or ")[0]
        if vr in BINARY_NUMBERS:
            fmt = BINARY_NUMBERS[vr]
            by_tag[int(tag)] = Node(int(tag), vr, struct.pack("<" + fmt, int(value)))
        else:
            by_tag[int(tag)] = text_node(int(tag), vr, str(value).split("\\"))
    return sorted(by_tag.values(), key=lambda n: n.tag)


def _scan_pixels_fn() -> Callable[..., bool] | None:
    """The pixel module's byte scan (DEID_INTERFACES.md 4), imported on first use."""
    from importlib.util import find_spec

    if find_spec("anonymization.encapsulated") is None:
        return None

    def scan_pixel_bytes(path: Path, span: Any, terms: list[str]) -> bool:
        from anonymization.encapsulated import scan_pixel_bytes as real

        return bool(real(path, span, terms))

    return scan_pixel_bytes


def _fit_lengths(ds: Any, implicit: bool) -> None:
    """Values longer than their VR allows in Explicit VR (e.g. a >64 KB US/SS written as a short VR,
    or a text value too long for its 2-byte length): re-declared with the VR's long form (OW/UT)
    so the re-encoding does not fail on the file's own odd lengths (issue 10.4)."""
    if implicit:
        return  # 4-byte lengths for every VR
    for elem in ds.iterall():
        if elem.VR in ("US", "SS", "US or SS") and isinstance(elem.value, (bytes, bytearray)) and len(elem.value) > 0xFFFF:
            elem.VR = "OW"
        elif elem.VR in ("LO", "SH", "ST", "LT", "CS", "DS", "IS", "PN", "AE", "AS", "DA", "TM", "DT") and \
                isinstance(elem.value, str) and len(elem.value.encode("utf-8", "ignore")) > 0xFFFE:
            elem.VR = "UT"


def _collect(nodes: list[Node], phi: PhiSet, safe_private: Callable[[Node, list[Node]], bool]) -> None:
    """Every identifying value at any depth. A private element the profile lists as safe is not
    an identity by itself (its own value would otherwise forbid keeping it); a name in it still is."""
    for n in nodes:
        if n.items is not None:
            for item in n.items:
                _collect(item, phi, safe_private)
            continue
        values = n.values
        if not values or not any(values):
            continue
        private = n.private
        if private and "^" not in "".join(values) and safe_private(n, nodes):
            continue
        kw = "" if private else keyword(n.tag)
        creator = private and 0x10 <= (n.tag & 0xFFFF) <= 0xFF
        add_element_phi(phi, kw, n.vr, values, private=private, private_creator=creator)
        raw = n.raw
        if raw and not private and n.vr in _NAME_VRS and not raw.isascii():
            # A name in bytes the declared character set misreads (a missing, wrong or
            # damaged SpecificCharacterSet): its UTF-8 and Latin-1 readings are PHI too.
            for alt in _alternative_readings(raw, n.vr, values):
                # misreadings split words at odd bytes: their short pieces ("OZ", "PA") are noise
                add_element_phi(phi, kw, n.vr, [" ".join(w for w in re.split(r"[\s^=]+", v) if len(w) >= 4)
                                                 if n.vr == "PN" else v for v in alt],
                                private=private, private_creator=creator)


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


def _int(value: object) -> int | None:
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, int) else None
