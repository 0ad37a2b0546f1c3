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

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, BinaryIO

from pydicom import config as pydicom_config

from anonymization.dicom import pixel_path, verify
from anonymization.dicom.actions import STA_VERSION_NAME, Actions
from anonymization.dicom.errors import Quarantine
from anonymization.dicom.header import Header, HeaderView
from anonymization.dicom.readers import ReaderName, read_header
from anonymization.dicom.writer import PixelFilter, pixel_span, write_file
from anonymization.dicom_elements import BadElement, Node, encodings_of, file_meta, keyword, write_nodes
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
        self.scan_pixel_bytes = pixel_path.scan_fn()
        self.stream_pixels = pixel_path.stream_available()  # frame-by-frame cleaning (pixel module)
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
                    self.stream_pixels is not None and not _decoded_whole(view):
                return pixel_path.stream_cleaned(self, header, fp, size, dst_dir, relpath, act)
            if risk or not header.streamable:
                return pixel_path.in_memory(self, src, header, dst_dir, relpath, act, clean_pixels=bool(risk))
            if getattr(risk, "audit", False) and header.pixels and self.stream_pixels is not None and \
                    self.pixel_cleaner is not None:
                pixel_path.audit(self, header, fp, size, act)
            return self._write(header, fp, size, dst_dir, relpath, act, pixels_modified=False)

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
        written, digest, rewritten, out = write_file(out, header_bytes, fp, span, checksum=self.checksum, pixel_filter=pixel_filter,
                                     check=pixel_path.pixel_check(self.scan_pixel_bytes, ident.phi), pixel_source=pixel_source)
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


def _decoded_whole(view: HeaderView) -> bool:
    """A layout the frame streamer refuses but the in-memory path reads (PALETTE COLOR: the palette
    is applied, cleaned as RGB): cleaned there rather than quarantined as unsupported."""
    return view.text("PhotometricInterpretation").strip().upper() == "PALETTE COLOR"


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
