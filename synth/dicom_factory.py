"""DICOM files as hospital modalities and PACS write them, with PHI in every usual place.

Each instance is built as a full Part 10 file (128-byte preamble, ``DICM``,
file meta group) with the IOD attributes of its modality (PS3.3 A.3 CT,
A.4 MR, A.6/A.7 US, A.26 DX / A.27 MG, A.2 CR). Every attribute that carries
identifying information is recorded, with the exact string written, so the
ground truth can list it. Attributes of PS3.15 Annex E that the Retain
Patient Characteristics option keeps (age, sex, size, weight) are recorded
separately as quasi-identifiers.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr, write_data_element, write_file_meta_info
from pydicom.pixels.encoders import RLELosslessEncoder
from pydicom.sequence import Sequence
from pydicom.uid import (
    ComputedRadiographyImageStorage,
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    RLELossless,
    UltrasoundImageStorage,
    UltrasoundMultiFrameImageStorage,
)

from . import pixels
from .model import Study
from .people import strip_accents
from .protocols import SeriesSpec
from .rng import derive

# pylibjpeg-rle is a compiled encoder (the pure-Python one costs ~0.3 s per frame); both are
# deterministic, so a given environment always writes the same bytes.
RLE_PLUGIN = "pylibjpeg" if "pylibjpeg" in RLELosslessEncoder.available_plugins else "pydicom"

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.9.7433.1.1"
IMPLEMENTATION_VERSION = "STA_SYNTH_1"
DETACHED_STUDY_SOP = "1.2.840.10008.3.1.2.3.1"

SOP_CLASS = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "MG": DigitalMammographyXRayImageStorageForPresentation,
    "CR": ComputedRadiographyImageStorage,
    "DX": DigitalXRayImageStorageForPresentation,
}

# (private creator, group, element values) of harmless vendor private blocks
VENDOR_PRIVATE = {
    "GE": ("GEMS_ACQU_01", 0x0019, [("DS", "1.0"), ("SS", 3)]),
    "SIEMENS": ("SIEMENS MED", 0x0029, [("LO", "MED_LOC"), ("US", 1)]),
    "Philips": ("Philips Imaging DD 001", 0x2001, [("CS", "N"), ("IS", "1")]),
}


def _vendor_key(manufacturer: str) -> str | None:
    m = manufacturer.upper()
    if m.startswith("GE"):
        return "GE"
    if m.startswith("SIEMENS"):
        return "SIEMENS"
    if m.startswith("PHILIPS"):
        return "Philips"
    return None


def make_uid(root: str, seed: int, when: datetime, *parts: object) -> str:
    """A vendor-style UID: root, then the acquisition date-time, then seeded digits (<= 64 chars)."""
    stamp = when.strftime("%Y%m%d%H%M%S")
    digits = str(derive(seed, "uid", *parts))
    uid = f"{root}.{stamp}.{digits}"
    if len(uid) > 64:
        uid = uid[:64].rstrip(".")
    return uid


def tm(t: datetime, frac: bool = False) -> str:
    return t.strftime("%H%M%S") + (f".{t.microsecond // 1000:03d}" if frac else "")


@dataclass
class Written:
    """One written DICOM file and what the ground truth needs to know about it."""

    data: bytes
    phi: dict[str, str] = field(default_factory=dict)  # tag path -> exact value written
    burned_in_phi: list[str] = field(default_factory=list)
    burned_in_text: list[str] = field(default_factory=list)
    quasi: dict[str, str] = field(default_factory=dict)
    sop_uid: str = ""
    series_uid: str = ""
    sop_class: str = ""
    transfer_syntax: str = ""
    frames: int = 1
    pixel_data_offset: int = 0  # byte offset of the pixel data value, for truncation faults


@dataclass
class SeriesPlan:
    number: int
    spec: SeriesSpec
    description: str
    uid: str
    start: datetime
    count: int
    transfer_syntax: str
    frame_of_reference: str
    burned_in: bool = False
    multiframe: bool = False
    rgb: bool = False


class Recorder:
    """Sets attributes on a dataset and remembers the identifying ones."""

    def __init__(self) -> None:
        self.phi: dict[str, str] = {}
        self.quasi: dict[str, str] = {}

    def set(self, ds: Dataset, keyword: str, value: object, *, phi: bool = False,
            quasi: bool = False, path: str = "") -> None:
        setattr(ds, keyword, value)
        name = f"{path}{keyword}"
        if phi:
            self.phi[name] = str(value)
        if quasi:
            self.quasi[name] = str(value)


def at(d: date, hhmmss: str) -> datetime:
    return datetime(d.year, d.month, d.day, int(hhmmss[:2]), int(hhmmss[2:4]), int(hhmmss[4:6]))


def _datetimes(study: Study) -> datetime:
    return at(study.study_date, study.study_time)


def plan_series(study: Study, seed: int, r: random.Random, ts_pick) -> list[SeriesPlan]:
    """Series of the study: numbers, descriptions, UIDs, times, transfer syntax."""
    specs = list(study.protocol.series)
    if study.protocol.max_series:
        keep = r.randint(2, min(study.protocol.max_series, len(specs)))
        specs = specs[:keep]
    t0 = _datetimes(study)
    out = []
    t = t0 + timedelta(seconds=r.randint(20, 120))
    for i, spec in enumerate(specs, start=1):
        number = i if study.modality != "CT" else (1 if spec.kind == "scout" else 2 + i)
        when = t
        t += timedelta(seconds=r.randint(30, 400))
        dev = study.device
        uid = make_uid(dev.uid_root, seed, when, study.accession, "series", i)
        count = r.randint(*spec.count)
        plan = SeriesPlan(
            number=number, spec=spec, description=spec.desc, uid=uid, start=when, count=count,
            transfer_syntax=ts_pick(study.patient.partner.id),
            frame_of_reference=make_uid(dev.uid_root, seed, t0, study.accession, "for"),
        )
        if study.modality == "US":
            plan.burned_in = True
            plan.rgb = r.random() < 0.5
            plan.multiframe = r.random() < 0.35
            if plan.multiframe:
                plan.count = 1
        if study.modality == "CR" and r.random() < 0.5:
            plan.burned_in = True
        out.append(plan)
    return out


def _person_fields(ds: Dataset, rec: Recorder, study: Study, r: random.Random) -> None:
    pat = study.patient
    person = pat.person
    rec.set(ds, "PatientName", pat.pn, phi=True)
    rec.set(ds, "PatientID", pat.mrn, phi=True)
    rec.set(ds, "IssuerOfPatientID", pat.partner.code, phi=True)
    if pat.national_id_written:
        item = Dataset()
        rec.set(item, "PatientID", pat.national_id_written, phi=True, path="OtherPatientIDsSequence[0].")
        item.IssuerOfPatientID = pat.national_issuer
        item.TypeOfPatientID = "TEXT"
        ds.OtherPatientIDsSequence = Sequence([item])
    if pat.other_names:
        rec.set(ds, "OtherPatientNames", pat.other_names, phi=True)
    rec.set(ds, "PatientBirthDate", person.birth_date.strftime("%Y%m%d"), phi=True)
    rec.set(ds, "PatientSex", person.sex, quasi=True)
    age = study.study_date.year - person.birth_date.year - (
        (study.study_date.month, study.study_date.day) < (person.birth_date.month, person.birth_date.day))
    rec.set(ds, "PatientAge", f"{age:03d}Y", quasi=True)
    if study.modality in ("CT", "MR", "MG", "DX") or r.random() < 0.5:
        rec.set(ds, "PatientSize", f"{person.height_m:.2f}", quasi=True)
        rec.set(ds, "PatientWeight", f"{person.weight_kg:.1f}", quasi=True)
    rec.set(ds, "PatientAddress", person.address, phi=True)
    rec.set(ds, "PatientTelephoneNumbers", person.phone, phi=True)
    rec.set(ds, "PatientMotherBirthName", person.mother.pn(), phi=True)
    if r.random() < 0.4:
        comment = (f"Acompañante: {person.mother.display()}. Tel {person.phone}" if pat.partner.country == "co"
                   else f"Acompanhante: {person.mother.display()}. Tel {person.phone}")
        rec.set(ds, "PatientComments", comment, phi=True)
    hist = study.protocol.indication["pt" if pat.partner.country == "br" else "es"]
    if r.random() < 0.5:
        hist = f"{pat.name.surname()}: {hist}"
        rec.set(ds, "AdditionalPatientHistory", hist, phi=True)
    else:
        ds.AdditionalPatientHistory = hist


def _study_fields(ds: Dataset, rec: Recorder, study: Study, series: SeriesPlan, r: random.Random) -> None:
    p = study.patient.partner
    sd = study.study_date.strftime("%Y%m%d")
    rec.set(ds, "StudyDate", sd, phi=True)
    rec.set(ds, "StudyTime", study.study_time, phi=True)
    rec.set(ds, "AccessionNumber", study.accession, phi=True)
    rec.set(ds, "StudyID", study.study_id, phi=True)
    rec.set(ds, "StudyInstanceUID", study.study_uid, phi=True)
    rec.set(ds, "StudyDescription", study.study_description,
            phi=study.description_has_name)
    if study.description_has_name:
        rec.phi["StudyDescription:surname"] = study.patient.name.surname()
    rec.set(ds, "ReferringPhysicianName", study.staff.referring, phi=True)
    rec.set(ds, "RequestingPhysician", study.staff.requesting, phi=True)
    rec.set(ds, "NameOfPhysiciansReadingStudy", study.staff.reading, phi=True)
    rec.set(ds, "PerformingPhysicianName", study.staff.performing, phi=True)
    rec.set(ds, "OperatorsName", study.staff.operator, phi=True)
    rec.set(ds, "InstitutionName", p.institution_dicom, phi=True)
    rec.set(ds, "InstitutionAddress", p.institution_address, phi=True)
    rec.set(ds, "InstitutionalDepartmentName", study.department, phi=True)
    rec.set(ds, "StationName", study.device.station, phi=True)
    rec.set(ds, "DeviceSerialNumber", study.device.serial, phi=True)
    ds.Manufacturer = study.device.manufacturer
    ds.ManufacturerModelName = study.device.model
    ds.SoftwareVersions = study.device.software
    ds.TimezoneOffsetFromUTC = "-0500" if p.country == "co" else "-0300"

    code, meaning = study.protocol.procedure
    pc = Dataset()
    pc.CodeValue = code
    pc.CodingSchemeDesignator = "CUPS" if p.country == "co" else "TUSS"
    pc.CodeMeaning = meaning
    ds.ProcedureCodeSequence = Sequence([pc])

    ra = Dataset()
    rec.set(ra, "RequestedProcedureID", study.requested_procedure_id, phi=True,
            path="RequestAttributesSequence[0].")
    rec.set(ra, "ScheduledProcedureStepID", study.sps_id, phi=True, path="RequestAttributesSequence[0].")
    ra.RequestedProcedureDescription = study.protocol.study_desc[p.country]
    ref = Dataset()
    ref.ReferencedSOPClassUID = DETACHED_STUDY_SOP
    rec.set(ref, "ReferencedSOPInstanceUID", study.study_uid, phi=True,
            path="RequestAttributesSequence[0].ReferencedStudySequence[0].")
    ra.ReferencedStudySequence = Sequence([ref])
    ds.RequestAttributesSequence = Sequence([ra])

    # the hospital's RIS/PACS private block: patient name and MRN again
    blk = ds.private_block(p.private_group, p.private_creator, create=True)
    g = p.private_group
    plain = strip_accents(study.patient.name.display()).upper()
    blk.add_new(0x10, "LO", plain)
    rec.phi[f"({g:04X},1010)"] = plain
    blk.add_new(0x11, "LO", study.patient.mrn)
    rec.phi[f"({g:04X},1011)"] = study.patient.mrn
    blk.add_new(0x12, "DA", sd)
    rec.phi[f"({g:04X},1012)"] = sd
    note = f"Solicitado por {study.staff.referring_display}"  # same words in es and pt
    blk.add_new(0x13, "LT", note)
    rec.phi[f"({g:04X},1013)"] = note
    vk = _vendor_key(study.device.manufacturer)
    if vk:
        creator, group, values = VENDOR_PRIVATE[vk]
        vb = ds.private_block(group, creator, create=True)
        for k, (vr, v) in enumerate(values):
            vb.add_new(0x10 + k, vr, v)


def _series_fields(ds: Dataset, rec: Recorder, study: Study, series: SeriesPlan) -> None:
    rec.set(ds, "SeriesInstanceUID", series.uid, phi=True)
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.Modality = study.modality
    ds.BodyPartExamined = study.protocol.body_part
    rec.set(ds, "SeriesDate", series.start.strftime("%Y%m%d"), phi=True)
    rec.set(ds, "SeriesTime", tm(series.start), phi=True)


def _instance_fields(ds: Dataset, rec: Recorder, study: Study, series: SeriesPlan, inst_no: int,
                     when: datetime) -> None:
    ds.InstanceNumber = inst_no
    rec.set(ds, "AcquisitionDate", when.strftime("%Y%m%d"), phi=True)
    frac = study.device.manufacturer.upper().startswith(("SIEMENS", "GE"))
    rec.set(ds, "AcquisitionTime", tm(when, frac), phi=True)
    rec.set(ds, "ContentDate", when.strftime("%Y%m%d"), phi=True)
    rec.set(ds, "ContentTime", tm(when + timedelta(seconds=1), frac), phi=True)
    created = when + timedelta(seconds=2)
    rec.set(ds, "InstanceCreationDate", created.strftime("%Y%m%d"), phi=True)
    rec.set(ds, "InstanceCreationTime", tm(created), phi=True)
    if study.modality in ("MR", "DX"):
        rec.set(ds, "AcquisitionDateTime", when.strftime("%Y%m%d%H%M%S") + ".000000", phi=True)


def _image_pixel(ds: Dataset, arr: np.ndarray, *, photometric: str, bits_stored: int, signed: bool,
                 frames: int = 1) -> None:
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    ds.PhotometricInterpretation = photometric
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = arr.shape[-3:-1] if photometric == "RGB" else arr.shape[-2:]
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 1 if signed else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.ascontiguousarray(arr).tobytes()


def _burn_header(study: Study, series: SeriesPlan, when: datetime) -> tuple[list[str], list[str]]:
    """Lines a modality prints in the image corner: name, MRN, date (PHI) and institution."""
    pat = study.patient
    name = strip_accents(pat.pn).upper().replace("^", ", ").rstrip(", ")
    date_s = when.strftime("%d/%m/%Y")  # both countries print day first
    time_s = when.strftime("%H:%M:%S")
    phi = [name, pat.mrn, date_s, time_s, pat.partner.institution_dicom]
    return phi, [name, f"ID: {pat.mrn}", f"{date_s} {time_s}", pat.partner.institution_dicom]


class SeriesWriter:
    """Writes the instances of one series.

    The patient, study, series and equipment attributes (about 80 elements
    with their sequences and private blocks) are the same for every instance;
    they are built and encoded once per series, and each instance encodes
    only its own elements and pixel data, then the two sorted runs are
    merged by tag. The bytes equal what ``Dataset.save_as`` writes for the
    merged dataset (checked in tests/test_synth.py), several times faster.
    """

    def __init__(self, study: Study, series: SeriesPlan, seed: int) -> None:
        self.study, self.series, self.seed = study, series, seed
        rs = random.Random(derive(seed, "studyfields", study.accession))
        rec = Recorder()
        base = Dataset()
        base.SpecificCharacterSet = study.charset
        _person_fields(base, rec, study, rs)
        _study_fields(base, rec, study, series, rs)
        _series_fields(base, rec, study, series)
        if study.modality in ("CT", "MR"):
            base.PatientPosition = "HFS"
            rec.set(base, "FrameOfReferenceUID", series.frame_of_reference, phi=True)
        self.base = base
        self.rec = rec
        self.implicit = series.transfer_syntax == ImplicitVRLittleEndian
        self.encoded = _encode(base, self.implicit, study.charset)
        self.cache: dict[tuple[int, str, str], bytes] = {}

    def dataset(self, inst_no: int) -> tuple[Dataset, Written]:
        """The complete instance as a pydicom Dataset (slow path, used by tests)."""
        d, w = self._instance(inst_no)
        full = Dataset()
        full.update(self.base)
        full.update(d)
        full.file_meta = d.file_meta
        return full, w

    def instance(self, inst_no: int) -> Written:
        d, w = self._instance(inst_no)
        enc = dict(self.encoded)
        enc.update(_encode(d, self.implicit, self.study.charset, self.cache))
        meta = DicomBytesIO()
        meta.is_little_endian, meta.is_implicit_VR = True, False
        write_file_meta_info(meta, d.file_meta, enforce_standard=True)
        data = b"".join([b"\0" * 128, b"DICM", meta.getvalue()] + [enc[t] for t in sorted(enc)])
        w.data = data
        w.pixel_data_offset = _pixel_data_offset(data)
        return w

    def _instance(self, inst_no: int) -> tuple[Dataset, Written]:
        study, series, seed = self.study, self.series, self.seed
        r = random.Random(derive(seed, "inst", study.accession, series.number, inst_no))
        g = np.random.Generator(np.random.PCG64(derive(seed, "px", study.accession, series.number, inst_no)))
        rec = Recorder()
        ds = Dataset()
        ds.SpecificCharacterSet = study.charset
        when = series.start + timedelta(seconds=3 * (inst_no - 1) + r.randint(0, 2))
        sop_uid = make_uid(study.device.uid_root, seed, when, study.accession, series.number, inst_no)
        out = Written(data=b"")
        mod = study.modality
        spec = series.spec
        lesion = study.finding.code not in ("normal", "birads_1", "birads_2")

        if mod == "US":
            sop_class = UltrasoundMultiFrameImageStorage if series.multiframe else UltrasoundImageStorage
        else:
            sop_class = SOP_CLASS[mod]
        ds.SOPClassUID = sop_class
        rec.set(ds, "SOPInstanceUID", sop_uid, phi=True)
        _instance_fields(ds, rec, study, series, inst_no, when)

        comment = None
        if r.random() < 0.2:
            surname = study.patient.name.surname()
            comment = (f"Paciente {surname} poco colaborador" if study.patient.partner.country == "co"
                       else f"Paciente {surname} pouco colaborativo")
            rec.set(ds, "ImageComments", comment, phi=True)
        elif r.random() < 0.2:
            ds.ImageComments = "Repetida por movimiento" if study.patient.partner.country == "co" else "Repetida por movimento"

        frames = 1
        if mod in ("CT", "MR"):
            n = series.count
            z = (inst_no - 1 - (n - 1) / 2) / max(n / 2, 1)
            thick = 5.0 if mod == "CT" else 4.0
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [-125.0, -125.0, round(-50.0 + (inst_no - 1) * thick, 2)]
            ds.SliceLocation = round(-50.0 + (inst_no - 1) * thick, 2)
            ds.SliceThickness = f"{thick:.1f}"
            ds.PixelSpacing = ["0.9765625", "0.9765625"] if mod == "CT" else ["1.8", "1.8"]
        if mod == "CT":
            scout = spec.kind == "scout"
            kind = "head" if study.protocol.body_part == "HEAD" else "chest"
            arr = pixels.ct_scout(g, kind) if scout else pixels.ct_slice(g, kind, z, lesion)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER" if scout else "AXIAL"]
            ds.KVP = "120"
            ds.XRayTubeCurrent = r.randint(80, 300)
            ds.ConvolutionKernel = "B31f" if "SIEMENS" in study.device.manufacturer else "STANDARD"
            ds.RescaleIntercept = "-1024"
            ds.RescaleSlope = "1"
            ds.RescaleType = "HU"
            ds.WindowCenter, ds.WindowWidth = ("40", "400") if kind == "head" else ("-600", "1500")
            _image_pixel(ds, arr, photometric="MONOCHROME2", bits_stored=16, signed=True)
        elif mod == "MR":
            arr = pixels.mr_slice(g, study.protocol.body_part if study.protocol.body_part != "LSPINE" else "SPINE",
                                  spec.kind, z, lesion)
            ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "SK"
            ds.ScanOptions = "FS" if "FS" in spec.desc else ""
            ds.MRAcquisitionType = "2D"
            tr_te = {"t1": ("550", "12"), "t2": ("4000", "95"), "flair": ("9000", "120"), "pd": ("3000", "30")}
            ds.RepetitionTime, ds.EchoTime = tr_te[spec.kind]
            ds.MagneticFieldStrength = "3" if "Aera" not in study.device.model else "1.5"
            ds.EchoTrainLength = 1 if spec.kind == "t1" else 16
            ds.SequenceName = "*tse2d1_16" if spec.kind != "t1" else "*se2d1"
            ds.WindowCenter, ds.WindowWidth = "600", "1200"
            _image_pixel(ds, arr, photometric="MONOCHROME2", bits_stored=12, signed=False)
        elif mod == "US":
            rows, cols = 240, 320
            nf = r.randint(4, 6) if series.multiframe else 1
            target = study.protocol.body_part
            stack = [pixels.us_frame(g, rows, cols, target, study.finding.code, phase=k * 0.7) for k in range(nf)]
            phi_lines, lines = _burn_header(study, series, when)
            annotations = ["L" if r.random() < 0.5 else "R", f"{r.randint(3, 12)} cm", "C1-5 ABD" if target == "ABDOMEN" else "L12-5"]
            placed = [(6, 4 + 15 * k, t) for k, t in enumerate(lines)]
            placed += [(cols - 60, rows - 40, annotations[0]), (cols - 60, rows - 22, annotations[1]),
                       (6, rows - 20, annotations[2])]
            burned = []
            for fr in stack:
                if series.rgb:
                    fr = np.repeat(fr[:, :, None], 3, axis=2)
                    fr = pixels.burn(fr, placed, 12, (255, 255, 255))
                    fr = pixels.burn(fr, [(cols - 20, 20, "*")], 12, (255, 220, 0))
                else:
                    fr = pixels.burn(fr, placed, 12, 255)
                burned.append(fr)
            arr = np.stack(burned) if nf > 1 else burned[0]
            out.burned_in_phi = phi_lines
            out.burned_in_text = lines + annotations
            ds.ImageType = ["ORIGINAL", "PRIMARY", "ABDOMINAL" if target == "ABDOMEN" else "SMALL PARTS"]
            ds.BurnedInAnnotation = "YES"
            ds.TransducerData = annotations[2]
            region = Dataset()  # PS3.3 C.8.5.5: where the calibrated B-mode image is
            region.RegionSpatialFormat = 1
            region.RegionDataType = 1
            region.RegionFlags = 0
            region.RegionLocationMinX0, region.RegionLocationMinY0 = 20, 18
            region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 21, rows - 9
            region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
            region.PhysicalDeltaX = region.PhysicalDeltaY = 0.025
            region.ReferencePixelX0, region.ReferencePixelY0 = cols // 2, 18
            ds.SequenceOfUltrasoundRegions = Sequence([region])
            if nf > 1:
                ds.FrameTime = "33.3"
                ds.CineRate = 30
                ds.FrameIncrementPointer = 0x00181063
            _image_pixel(ds, arr, photometric="RGB" if series.rgb else "MONOCHROME2", bits_stored=8,
                         signed=False, frames=nf)
            frames = nf
        elif mod == "MG":
            arr = pixels.mg_view(g, spec.view, spec.laterality, lesion and study.finding.code != "birads_4")
            ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
            ds.PresentationIntentType = "FOR PRESENTATION"
            ds.ImageLaterality = spec.laterality
            ds.ViewPosition = spec.view
            vc = Dataset()
            vc.CodeValue = "R-10242" if spec.view == "CC" else "R-10226"
            vc.CodingSchemeDesignator = "SRT"
            vc.CodeMeaning = "cranio-caudal" if spec.view == "CC" else "medio-lateral oblique"
            ds.ViewCodeSequence = Sequence([vc])
            ds.BreastImplantPresent = "NO"
            ds.KVP = "29"
            ds.BodyPartThickness = str(r.randint(35, 70))
            ds.CompressionForce = str(r.randint(80, 160))
            ds.ImagerPixelSpacing = ["0.1", "0.1"]
            ds.PixelSpacing = ["0.1", "0.1"]
            _xray_presentation(ds)
            ds.WindowCenter, ds.WindowWidth = "8000", "9000"
            _image_pixel(ds, arr, photometric="MONOCHROME2", bits_stored=14, signed=False)
        else:  # CR / DX
            view = spec.view or ("PA" if inst_no == 1 else "LL")
            arr = pixels.xr(g, spec.kind, view, study.finding.code)
            mono1 = mod == "CR" and study.device.manufacturer.startswith("FUJI")
            if mono1:
                arr = (4095 - arr).astype(np.uint16)
            if series.burned_in:
                phi_lines, lines = _burn_header(study, series, when)
                placed = [(6, 4 + 15 * k, t) for k, t in enumerate(lines)]
                placed.append((arr.shape[1] - 24, 8, "R" if view == "PA" else "L"))
                arr = pixels.burn(arr, placed, 12, 0 if mono1 else 4095)
                out.burned_in_phi = phi_lines
                out.burned_in_text = lines + ["R" if view == "PA" else "L"]
                ds.BurnedInAnnotation = "YES"
            else:
                ds.BurnedInAnnotation = "NO"
            ds.ImageType = ["ORIGINAL", "PRIMARY", ""] if mod == "DX" else ["ORIGINAL", "PRIMARY"]
            ds.ViewPosition = view
            if spec.laterality:
                ds.ImageLaterality = spec.laterality
            ds.KVP = "110" if spec.kind == "xr_chest" else "55"
            ds.ImagerPixelSpacing = ["0.5", "0.5"]
            ds.PixelSpacing = ["0.5", "0.5"]
            ds.WindowCenter, ds.WindowWidth = "2048", "4096"
            if mod == "DX":
                ds.PresentationIntentType = "FOR PRESENTATION"
                _xray_presentation(ds)
            _image_pixel(ds, arr, photometric="MONOCHROME1" if mono1 else "MONOCHROME2", bits_stored=12,
                         signed=False)

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = meta
        ts = series.transfer_syntax
        if ts == RLELossless:
            ds.compress(RLELossless, encoding_plugin=RLE_PLUGIN, generate_instance_uid=False)
        else:
            meta.TransferSyntaxUID = ts
        phi = dict(self.rec.phi)
        phi.update(rec.phi)
        quasi = dict(self.rec.quasi)
        quasi.update(rec.quasi)
        out.phi = phi
        out.quasi = quasi
        out.sop_uid = sop_uid
        out.series_uid = series.uid
        out.sop_class = str(sop_class)
        out.transfer_syntax = str(ts)
        out.frames = frames
        return ds, out


def _encode(ds: Dataset, implicit: bool, charset: str,
            cache: dict[tuple[int, str, str], bytes] | None = None) -> dict[int, bytes]:
    """Each top-level element of ``ds`` encoded on its own, keyed by tag (PS3.5 7.1).

    With ``cache``, an element whose tag, VR and value were already encoded in
    this series is reused (most instance-level attributes repeat).
    """
    correct_ambiguous_vr(ds, True)
    out: dict[int, bytes] = {}
    for tag in ds.keys():
        elem = ds.get_item(tag)
        key = None
        if cache is not None and tag != 0x7FE00010:
            key = (int(tag), elem.VR, repr(elem.value))
            hit = cache.get(key)
            if hit is not None:
                out[int(tag)] = hit
                continue
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, implicit
        write_data_element(fp, elem, charset)
        out[int(tag)] = fp.getvalue()
        if key is not None:
            cache[key] = out[int(tag)]
    return out


def _xray_presentation(ds: Dataset) -> None:
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.PresentationLUTShape = "IDENTITY"
    ds.RescaleIntercept = "0"
    ds.RescaleSlope = "1"
    ds.RescaleType = "US"


def _pixel_data_offset(data: bytes) -> int:
    """Offset of the (7FE0,0010) element tag in the file (the last top-level element)."""
    return data.rfind(b"\xe0\x7f\x10\x00")
