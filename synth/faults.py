"""Broken and unexpected files that real partner exports contain.

Each fault comes with the outcome the pipeline must reach (``expected``: the
acceptable outcomes), because "every input is accounted for" includes the
files that cannot be processed: a fault must be quarantined or skipped with
a reason, never crash a run and never be published with PHI in it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage

from .dicom_factory import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION, Written, make_uid, _datetimes
from .model import Study
from .reports import Report, pdf_bytes
from .rng import derive


@dataclass
class Fault:
    relpath: str
    data: bytes
    fault: str
    expected: list[str]
    reason: str
    phi: list[str] = field(default_factory=list)
    study: Study | None = None


@dataclass
class FaultMaterial:
    """A real file of the partner to break: one DICOM instance and one report."""

    dicom_relpath: str | None = None
    dicom: Written | None = None
    dicom_study: Study | None = None
    report_relpath: str | None = None
    report: Report | None = None
    report_study: Study | None = None


def _sibling(relpath: str, stem: str) -> str:
    head, _, tail = relpath.rpartition("/")
    ext = tail[tail.rfind("."):] if "." in tail else ""
    return f"{head}/{stem}{ext}"


def _dicomdir(study: Study, seed: int) -> bytes:
    """A DICOMDIR as CD exports write it: PATIENT and STUDY records (PS3.3 F.5)."""
    pat = study.patient
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MediaStorageDirectoryStorage
    meta.MediaStorageSOPInstanceUID = make_uid(pat.partner.study_uid_root, seed, _datetimes(study),
                                               "dicomdir", pat.partner.id)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "EXPORT"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.SpecificCharacterSet = study.charset
    prec = Dataset()
    prec.OffsetOfTheNextDirectoryRecord = 0
    prec.RecordInUseFlag = 0xFFFF
    prec.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    prec.DirectoryRecordType = "PATIENT"
    prec.SpecificCharacterSet = study.charset
    prec.PatientName = pat.pn
    prec.PatientID = pat.mrn
    prec.PatientBirthDate = pat.person.birth_date.strftime("%Y%m%d")
    srec = Dataset()
    srec.OffsetOfTheNextDirectoryRecord = 0
    srec.RecordInUseFlag = 0xFFFF
    srec.OffsetOfReferencedLowerLevelDirectoryEntity = 0
    srec.DirectoryRecordType = "STUDY"
    srec.StudyDate = study.study_date.strftime("%Y%m%d")
    srec.StudyTime = study.study_time
    srec.StudyDescription = study.study_description
    srec.StudyInstanceUID = study.study_uid
    srec.StudyID = study.study_id
    srec.AccessionNumber = study.accession
    ds.DirectoryRecordSequence = Sequence([prec, srec])
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def make_faults(partner_id: str, partner_country: str, reports_dir: str, m: FaultMaterial,
                seed: int) -> list[Fault]:
    """The faults of one partner, built from its own first files (so they carry its PHI)."""
    out: list[Fault] = []
    g = np.random.Generator(np.random.PCG64(derive(seed, "faults", partner_id)))
    if m.dicom is not None and m.dicom_relpath and m.dicom_study is not None:
        w, rel, st = m.dicom, m.dicom_relpath, m.dicom_study
        pat = st.patient
        out.append(Fault(_sibling(rel, "IM0000" if partner_country == "co" else "IMG00000"), b"",
                         "zero_byte", ["quarantine", "rejected"], "empty file (0 bytes)", study=st))
        cut = w.pixel_data_offset + 12 + (len(w.data) - w.pixel_data_offset) // 3
        out.append(Fault(_sibling(rel, "IM9001" if partner_country == "co" else "IMG90001"), w.data[:cut],
                         "truncated_dicom", ["quarantine"],
                         "DICOM file cut inside the pixel data (interrupted transfer)",
                         phi=sorted(set(v for v in w.phi.values() if v)), study=st))
        log = (f"PACS export log\nPaciente: {pat.pn}\nID: {pat.mrn}\nEstado: ERROR 500 - exportación incompleta\n"
               if partner_country == "co" else
               f"PACS export log\nPaciente: {pat.pn}\nProntuario: {pat.mrn}\nStatus: ERRO 500 - exportacao incompleta\n")
        out.append(Fault(_sibling(rel, "IM9002.dcm" if partner_country == "co" else "IMG90002.dcm")
                         .replace(".dcm.dcm", ".dcm"),
                         log.encode("utf-8"), "not_dicom", ["quarantine", "rejected"],
                         "text file with a DICOM file name", phi=[pat.pn, pat.mrn], study=st))
        out.append(Fault(f"{partner_id}/DICOMDIR", _dicomdir(st, seed), "dicomdir", ["skip", "quarantine"],
                         "DICOMDIR media index, no image (PS3.10 media storage directory)",
                         phi=[pat.pn, pat.mrn, pat.person.birth_date.strftime("%Y%m%d"), st.accession,
                              st.study_uid, st.study_date.strftime("%Y%m%d"), st.study_time, st.study_id],
                         study=st))
    size = int(g.integers(4096, 32768))
    out.append(Fault(f"{partner_id}/tmp/~export_{derive(seed, 'tmpname', partner_id) % 16**6:06x}.tmp",
                     g.integers(0, 256, size, dtype=np.uint8).tobytes(), "random_binary",
                     ["quarantine", "rejected"], "random bytes, no recognisable format"))
    if m.report is not None and m.report_study is not None and m.report_relpath:
        rep, st = m.report, m.report_study
        base = m.report_relpath.rsplit(".", 1)[0]
        out.append(Fault(f"{base}_protegido.pdf", pdf_bytes(rep, st, password="laudo" + st.accession[-4:]),
                         "encrypted_pdf", ["quarantine"], "PDF encrypted with a user password: text not readable",
                         phi=list(rep.phi), study=st))
        out.append(Fault(f"{base}_export.txt", rep.text.encode("utf-16-le"), "utf16_no_bom",
                         ["quarantine", "published_scrubbed"],
                         "report text in UTF-16LE without byte-order mark", phi=list(rep.phi), study=st))
    return out
