"""Pixels and documents through the de-identifier, read back as an attacker would (every output byte).

Files built the way hospitals send them: a 40-frame ultrasound cine with the
name on one late frame only, a CT whose JPEG frame carries a comment segment
with the name and ID, native pixel data with text after its declared length
and after the dataset, an Encapsulated PDF report naming the patient.
"""

from __future__ import annotations

import io
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pixels import leaked, ocr_all_text, ultrasound  # noqa: E402
from test_pixels_stream import NAME, PID, cine, jpeg_with_comment, us_dataset  # noqa: E402

from anonymization.batch import DeidSettings, build_deidentifier  # noqa: E402
from anonymization.dicom import Quarantine  # noqa: E402

KEY = os.environ["STA_SECRET_KEY"].encode()
SECRETS = [PID.encode(), b"QUINTERO", b"Quintero", b"MARTINA"]


@pytest.fixture(scope="module")
def deid():
    return build_deidentifier(DeidSettings("latam", {"pixel_risk": {"audit_rate": 0.0}}, "test", {}, languages=("es",)), KEY)


def _bytes_leak(path: Path) -> list[bytes]:
    data = path.read_bytes()
    return [s for s in SECRETS if s in data or s.lower() in data.lower()]


def test_cine_name_on_one_late_frame_is_removed_and_marked_no_after_every_frame(deid, tmp_path):
    frames = cine()
    ds = us_dataset(frames)
    src = tmp_path / "cine.dcm"
    ds.save_as(src, enforce_file_format=True)
    res = deid.deidentify_file(src, tmp_path / "out")
    back = pydicom.dcmread(res.output)
    assert back.BurnedInAnnotation == "NO" and int(back.NumberOfFrames) == 40
    out = back.pixel_array
    assert leaked(ocr_all_text(out[33])) == []
    assert np.array_equal(out[:33], frames[:33]) and np.array_equal(out[34:], frames[34:])
    assert _bytes_leak(res.output) == []


def _ct_jpeg(comment: bytes) -> pydicom.Dataset:
    arr = ultrasound(size=(128, 96), seed=9)
    ds = us_dataset(arr[np.newaxis])
    del ds.NumberOfFrames
    ds.Modality = "CT"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([jpeg_with_comment(arr, comment)])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    return ds


def test_jpeg_comment_with_name_and_id_never_reaches_the_output(deid, tmp_path):
    ds = _ct_jpeg(f"{NAME} {PID}".encode())
    src = tmp_path / "ct.dcm"
    ds.save_as(src, enforce_file_format=True)
    assert PID.encode() in src.read_bytes()
    res = deid.deidentify_file(src, tmp_path / "out")
    assert _bytes_leak(res.output) == []
    back = pydicom.dcmread(res.output)
    assert np.array_equal(back.pixel_array, pydicom.dcmread(src).pixel_array)  # same image, fewer bytes


def test_bytes_after_the_declared_pixel_length_and_after_the_dataset_are_dropped(deid, tmp_path):
    arr = ultrasound(size=(64, 48), seed=3)
    ds = us_dataset(arr[np.newaxis])
    del ds.NumberOfFrames
    ds.Modality = "MR"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PixelData = arr.tobytes() + f"{NAME} {PID}".encode() + b"\x00"
    src = tmp_path / "mr.dcm"
    ds.save_as(src, enforce_file_format=True)
    with src.open("ab") as f:
        f.write(f"  trailing {NAME} {PID}".encode())
    res = deid.deidentify_file(src, tmp_path / "out")
    assert _bytes_leak(res.output) == []
    back = pydicom.dcmread(res.output)
    assert len(back.PixelData) == arr.nbytes and np.array_equal(back.pixel_array, arr)


def _encapsulated_pdf(text: str) -> pydicom.Dataset:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 6, text)
    data = bytes(pdf.output())
    ds = us_dataset(np.zeros((1, 2, 2), np.uint8))
    for kw in ("PixelData", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
               "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames", "BurnedInAnnotation"):
        if kw in ds:
            delattr(ds, kw)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.104.1"
    ds.Modality = "DOC"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.DocumentTitle = "Informe"
    ds.EncapsulatedDocument = data + (b"\x00" if len(data) & 1 else b"")
    return ds


def test_encapsulated_pdf_is_published_readable_with_the_name_gone(deid, tmp_path):
    from pypdf import PdfReader

    report = ("Informe de ecografia abdominal\nPaciente: Martina Quintero Alvarez\nDocumento: CC 52.318.907\n"
              "Hallazgos: higado de tamano y ecogenicidad normales, sin lesiones focales.\nConclusion: estudio normal.")
    src = tmp_path / "pdf.dcm"
    _encapsulated_pdf(report).save_as(src, enforce_file_format=True)
    res = deid.deidentify_file(src, tmp_path / "out")
    back = pydicom.dcmread(res.output)
    data = bytes(back.EncapsulatedDocument).rstrip(b"\x00")
    text = "\n".join(p.extract_text() for p in PdfReader(io.BytesIO(data)).pages)
    assert "higado de tamano y ecogenicidad normales" in text and "estudio normal" in text  # readable, not emptied
    for word in ("Martina", "Quintero", "Alvarez", "52.318.907", "52318907"):
        assert word not in text, word
    assert _bytes_leak(res.output) == []


def test_encapsulated_pdf_without_text_is_refused_not_published_empty(deid, tmp_path):
    src = tmp_path / "empty.dcm"
    _encapsulated_pdf(" ").save_as(src, enforce_file_format=True)
    with pytest.raises(Quarantine) as err:
        deid.deidentify_file(src, tmp_path / "out")
    assert err.value.reason == "document_no_text"
    assert not list((tmp_path / "out").rglob("*.dcm"))


def test_multi_gb_style_cine_is_processed_frame_by_frame(tmp_path):
    """Memory: a native cine is streamed; peak RSS grows by a few frames, not by the file (bench_ocr measures 1 GB)."""
    import subprocess

    frames = cine(8, name_frame=5, size=(320, 240))
    n = 600  # 46 MB of pixels, 8 distinct frames cycled
    ds = us_dataset(frames[:1])
    ds.NumberOfFrames = n
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    src = tmp_path / "long.dcm"
    with src.open("wb") as f:
        f.write(buf.getvalue())
        f.write(struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\x00\x00" + struct.pack("<I", n * frames[0].nbytes))
        for k in range(n):
            f.write(frames[k % 8].tobytes())
    code = (
        "import os, resource, sys; from pathlib import Path\n"
        "from anonymization.batch import DeidSettings, build_deidentifier\n"
        "d = build_deidentifier(DeidSettings('latam', {}, 't', {}, languages=('es',)), os.environ['STA_SECRET_KEY'].encode())\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "r = d.deidentify_file(Path(sys.argv[1]), Path(sys.argv[2]))\n"
        "print(r.output, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) // 1024)\n"
    )
    warm = "import anonymization.ocr_redact as o; o._scrubber_for(('es',)); import pydicom, scipy.ndimage, tesserocr\n"
    r = subprocess.run([sys.executable, "-c", warm + code, str(src), str(tmp_path / "out")], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    out, grown_mb = r.stdout.split()
    assert int(grown_mb) < 40, grown_mb  # the file is 46 MB of pixels
    back = pydicom.dcmread(out, stop_before_pixels=True)
    assert back.BurnedInAnnotation == "NO" and int(back.NumberOfFrames) == n


def test_sampled_audit_quarantines_text_the_rule_missed_and_publishes_clean_files(tmp_path):
    from anonymization.pixel_risk import raised_classes

    deid = build_deidentifier(DeidSettings("latam", {"pixel_risk": {"audit_rate": 1.0}}, "test", {}, languages=("es",)), KEY)

    def mr(frames: np.ndarray, model: str) -> Path:
        ds = us_dataset(frames)
        ds.Modality = "MR"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
        ds.ImageType = ["ORIGINAL", "PRIMARY"]
        ds.Manufacturer, ds.ManufacturerModelName = "ACME", model
        del ds.BurnedInAnnotation
        path = tmp_path / f"{model}.dcm"
        ds.save_as(path, enforce_file_format=True)
        return path

    with pytest.raises(Quarantine) as err:
        deid.deidentify_file(mr(cine(5, name_frame=3), "Audit-2"), tmp_path / "out")
    assert err.value.reason == "burned_in_text_audit"
    assert ("MR", "ACME", "AUDIT-2", "1.2.840.10008.5.1.4.1.1.4") in raised_classes()
    plain = np.stack([ultrasound(size=(160, 120), seed=s) for s in range(3)])
    res = deid.deidentify_file(mr(plain, "Audit-3"), tmp_path / "out")
    back = pydicom.dcmread(res.output)
    assert np.array_equal(back.pixel_array, plain) and not res.pixels_modified
