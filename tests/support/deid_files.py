"""Building DICOM files the way hospitals and vendors write them, and reading outputs as an attacker would.

Shared by the de-identifier's tests (tests/test_deid_*.py). The tests' own
normalisation (``fold``, ``squash``) is independent of the library's.
"""

from __future__ import annotations

import glob
import re
import struct
import unicodedata
import warnings
from pathlib import Path

import pydicom
from pydicom.charset import convert_encodings, encode_string
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

DEVICE_FIELDS = {"Manufacturer", "ManufacturerModelName", "SoftwareVersions"}

CHARSET_DIR = Path(pydicom.__file__).parent / "data" / "charset_files"


def fold(text: str) -> str:
    """The test's own normalisation (independent of the library's)."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", " ", text.casefold()).strip()


def identifying_values(ds: Dataset) -> set[str]:
    """Names, IDs, birth date, address, phone at any depth, as the test sees them."""
    out: set[str] = set()
    kws = {"PatientID", "OtherPatientIDs", "PatientBirthDate", "PatientAddress", "PatientTelephoneNumbers",
           "AccessionNumber", "InstitutionName", "InstitutionAddress", "MedicalRecordLocator"}

    def walk(d: Dataset) -> None:
        for e in d:
            if e.VR == "SQ":
                for item in e.value or []:
                    walk(item)
            elif e.VR == "PN" and e.value:
                for comp in re.split(r"[\^=\s]+", str(e.value)):
                    if len(fold(comp).replace(" ", "")) >= 4:
                        out.add(fold(comp))
            elif e.keyword in kws and e.value:
                v = fold(str(e.value))
                if len(v.replace(" ", "")) >= 5:
                    out.add(v)

    walk(ds)
    # placeholders that vendors put in sample files instead of a name
    return out - {"anonymous", "anonymized", "unknown", "none", "test", "patient", "name", "here"}


def output_text(ds: Dataset) -> str:
    """Every text value of the output except the vendor fields kept by Retain Device
    Identity (vendors' sample files name the vendor as the institution)."""
    parts: list[str] = []

    def walk(d: Dataset) -> None:
        for e in d:
            if e.keyword in DEVICE_FIELDS:
                continue
            if e.VR == "SQ":
                for item in e.value or []:
                    walk(item)
            elif e.VR not in ("OB", "OW", "OF", "OD", "OL", "UN", "UI", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "AT", "CS"):
                # CS: coded strings are DICOM's defined terms (ValueType TEXT, ImageType ORIGINAL), not names
                parts.append(str(e.value))

    walk(ds)
    return " | ".join(fold(p) for p in parts)


def leaks(values: set[str], text: str) -> list[str]:
    return [v for v in values if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", text)]


def real_world_files() -> list[Path]:
    from pydicom.data import get_testdata_files

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = [Path(f) for f in get_testdata_files("*")]
    try:
        import data_store  # pydicom-data

        files += sorted(Path(data_store.__file__).parent.joinpath("data").glob("*.dcm"))
    except ImportError:
        pass
    try:
        import deid_data  # deid-data: pydicom/deid's test images, PHI-laden "dicom-cookies" among them

        files += sorted(Path(deid_data.__file__).parent.rglob("*.dcm"))
    except ImportError:
        pass
    return sorted({f for f in files if f.is_file() and f.suffix.lower() in (".dcm", "") and f.stat().st_size < 40_000_000})


def _rich_dataset(**extra) -> Dataset:
    """A CT-like file with PHI in the places real files carry it, nested and private."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = extra.pop("sop", "1.2.3.4.5.6.1")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = extra.pop("study", "1.2.3.4.5")
    ds.SeriesInstanceUID = extra.pop("series", "1.2.3.4.5.6")
    ds.FrameOfReferenceUID = "1.2.3.4.9"
    ds.Modality = "CT"
    ds.PatientName = "GARCÍA MÁRQUEZ^GABRIEL JOSÉ"
    ds.PatientID = "HC-778899"
    ds.IssuerOfPatientID = "HOSPX"
    ds.PatientBirthDate = "19270306"
    ds.PatientSex = "M"
    ds.PatientAddress = "Calle 100 # 7-33, Aracataca"
    ds.PatientTelephoneNumbers = "+57 300 555 1234"
    ds.AccessionNumber = "ACC20240001"
    ds.InstitutionName = "Hospital Macondo"
    ds.ReferringPhysicianName = "BUENDÍA^AURELIANO"
    ds.StudyDate, ds.StudyTime = "20240115", "101530"
    ds.AcquisitionDate, ds.AcquisitionTime = "20240115", "103045.123"
    ds.ContentDate, ds.ContentTime = "20240116", "090000"
    ds.StudyDescription = "TAC TORAX GARCIA 1927"
    ds.ImageComments = "paciente Gabriel García, HC-778899"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "SIEMENS"
    other = Dataset()
    other.PatientID = "1020304050"
    other.IssuerOfPatientID = "RNEC"
    ds.OtherPatientIDsSequence = Sequence([other])
    req = Dataset()
    req.RequestedProcedureID = "RP-555"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5"
    ref.ReferringPhysicianName = "BUENDÍA^URSULA"
    req.ReferencedStudySequence = Sequence([ref])
    ds.RequestAttributesSequence = Sequence([req])
    img = Dataset()
    img.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    img.ReferencedSOPInstanceUID = "1.2.3.4.5.6.2"
    ds.ReferencedImageSequence = Sequence([img])
    ds.add_new(0x00090010, "LO", "MACONDO_PACS")
    ds.add_new(0x00091001, "LO", "GARCIA MARQUEZ GABRIEL")
    ds.add_new(0x00091002, "SH", "HC-778899")
    ds.Rows, ds.Columns = 4, 4
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(range(32))
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def _write(ds: Dataset, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=kw.pop("enforce", True), **kw)
    return path


def _rich_bytes() -> bytes:
    import io

    buf = io.BytesIO()
    _rich_dataset().save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _names(ds: Dataset) -> set[str]:
    """Every PN component of the input (any depth, every group: alphabetic, ideographic, phonetic)."""
    out: set[str] = set()
    for elem in ds.iterall():
        if elem.VR == "PN" and elem.value:
            for v in (elem.value if elem.VM > 1 else [elem.value]):
                for group in str(v).split("="):
                    out.update(c.strip() for c in group.split("^") if len(c.strip()) >= 2)
    return out


def _charset_files() -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(str(CHARSET_DIR / "chr*.dcm")))]


def _image(sop: str, **extra) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = extra.pop("sop_class", "1.2.840.10008.5.1.4.1.1.2")
    ds.SOPInstanceUID = sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = "1.2.3.100", extra.pop("series", "1.2.3.100.1")
    ds.FrameOfReferenceUID = "1.2.3.100.9"
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "QUINTERO^ROSALBA", "CC-5551234", "19700505"
    ds.StudyDate, ds.StudyTime, ds.ContentDate, ds.ContentTime = "20230701", "235930", "20230702", "000115"
    ds.Modality = extra.pop("Modality", "CT")
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def _graphics(ds: Dataset) -> Dataset:
    ds.add_new(0x60000010, "US", 4)  # Overlay Rows
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000022, "LO", "QUINTERO overlay")  # Overlay Description
    ds.add_new(0x60001500, "LO", "QUINTERO")  # Overlay Label
    ds.add_new(0x60003000, "OW", b"\xff" * 2)  # Overlay Data
    ds.add_new(0x60004000, "LT", "overlay comment QUINTERO")
    ds.add_new(0x50003000, "OW", b"\x01\x02")  # Curve Data (retired)
    ds.add_new(0x50000022, "LO", "curve of QUINTERO")
    icon = Dataset()
    icon.Rows = icon.Columns = 2
    icon.BitsAllocated, icon.BitsStored, icon.HighBit, icon.PixelRepresentation = 8, 8, 7, 0
    icon.SamplesPerPixel, icon.PhotometricInterpretation = 1, "MONOCHROME2"
    icon.add_new(0x7FE00010, "OB", b"\x00\x01\x02\x03")
    ds.IconImageSequence = Sequence([icon])
    text = Dataset()
    text.UnformattedTextValue = "QUINTERO ROSALBA CC-5551234"
    text.BoundingBoxAnnotationUnits = "PIXEL"
    annotation = Dataset()
    annotation.GraphicLayer = "LAYER1"
    annotation.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    return ds


def _raw_element(tag: int, vr: bytes, value: bytes) -> bytes:
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def squash(text: str) -> str:
    """The test's own folding: no accents, no case, no separators at all."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"[\W_]+", "", text.casefold())


def output_forms(path: Path) -> str:
    raw = path.read_bytes()
    return squash(raw.decode("latin-1")) + "|" + squash(raw.decode("utf-8", "ignore"))


def hospital_ct(**extra) -> Dataset:
    """A CT header as a hospital PACS exports it: UTF-8, request/SR-like sequences, comments."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = extra.pop("sop", "1.2.826.0.1.3680043.9.7.1.1")
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.9.7.1"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.9.7.1.2"
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.PatientName = "MUÑOZ PÉREZ^ANA LUCÍA"
    ds.PatientID = "52318907"
    ds.OtherPatientIDs = "41825739012"
    ds.PatientBirthDate = "19580703"
    ds.PatientSex = "F"
    ds.StudyDate, ds.StudyTime = "20240115", "101530"
    ds.AccessionNumber = "A7781234"
    ds.StudyDescription = "TAC TORAX"
    ds.SeriesDescription = "AXIAL 1.25"
    ds.Manufacturer = "GE MEDICAL SYSTEMS"
    ds.Rows, ds.Columns = 2, 2
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = bytes(8)
    for k, v in extra.items():
        setattr(ds, k, v)
    return ds


def save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


_save = save  # the name the merged test files used


def code_item(meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "T-D3000", "SRT", meaning
    return item
