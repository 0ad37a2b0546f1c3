"""Every frame and every byte of pixel data (issue 10.2, 10.3, 10.6), on files built the way hospital files look.

Files are written with pydicom; burned-in text is drawn with PIL. Each test
reads the output the way an attacker would: decoded pixels (OCR), raw bytes.
"""

from __future__ import annotations

import io
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, generate_uid

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pixels import draw, leaked, ocr_all_text, ultrasound  # noqa: E402

from anonymization.encapsulated import filter_pixel_element, scan_pixel_bytes, strip_jpeg  # noqa: E402
from anonymization.ocr_redact import PixelCleanError  # noqa: E402
from anonymization.pixel_stream import PixelSettings, audit_pixel_element, clean_pixel_element  # noqa: E402

os.environ.setdefault("OMP_THREAD_LIMIT", "1")
NAME, PID = "QUINTERO ALVAREZ^MARTINA", "52318907"


@dataclass(frozen=True)
class Span:
    offset: int
    length: int
    header_len: int
    encapsulated: bool
    tag: int = 0x7FE00010


def us_dataset(frames: np.ndarray, *, photometric: str = "MONOCHROME2") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1"
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "US"
    ds.PatientName, ds.PatientID = NAME, PID
    ds.BurnedInAnnotation = "NO"  # what a modality says, not what is true
    n = frames.shape[0]
    ds.NumberOfFrames = n
    ds.Rows, ds.Columns = frames.shape[1:3]
    rgb = frames.ndim == 4
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = "RGB" if rgb else photometric
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = frames.tobytes()
    return ds


def save(ds: Dataset, path: Path, trailing: bytes = b"") -> tuple[Path, Span]:
    ds.save_as(path, enforce_file_format=True)
    if trailing:
        with path.open("ab") as f:
            f.write(trailing)
    raw = path.read_bytes()
    off = raw.rindex(b"\xe0\x7f\x10\x00")
    (length,) = struct.unpack("<I", raw[off + 8 : off + 12])
    if length == 0xFFFFFFFF:
        end = raw.index(b"\xfe\xff\xdd\xe0", off) + 8
        return path, Span(off, end - off, 12, True)
    return path, Span(off, 12 + length, 12, False)


def view_of(ds: Dataset) -> Dataset:
    return ds  # a pydicom Dataset answers get()/in like the de-identifier's header view


def cine(n: int = 40, name_frame: int = 33, size=(320, 240)) -> np.ndarray:
    """A cine with a static 'MI 0.8' overlay and a name burned into ONE late frame."""
    out = []
    for i in range(n):
        img = Image.fromarray(ultrasound(size=size, seed=i % 4))
        draw(img, (250, 8), "MI 0.8", 12, 255)
        if i == name_frame:
            draw(img, (8, 200), "QUINTERO MARTINA", 16, 255)
        out.append(np.array(img))
    return np.stack(out)


def test_name_on_one_late_frame_of_a_40_frame_cine_is_found_and_removed(tmp_path):
    frames = cine()
    ds = us_dataset(frames)
    src, span = save(ds, tmp_path / "cine.dcm")
    with src.open("rb") as fp:
        out = clean_pixel_element(fp, span, view_of(ds), [NAME, PID], PixelSettings(languages=("es",)), ExplicitVRLittleEndian)
    res = out.result
    assert res is not None and res.frames == 40
    assert res.distinct_frames == 5  # 4 repeating frames + the one with the name: the rest decided by hash
    assert res.redacted_frames == [33]
    assert out.updates["BurnedInAnnotation"] == "NO" and out.transfer_syntax == ExplicitVRLittleEndian
    buf = io.BytesIO()
    out.write(buf)
    out.close()
    data = buf.getvalue()
    assert struct.unpack("<I", data[8:12])[0] == frames.nbytes
    cleaned = np.frombuffer(data[12 : 12 + frames.nbytes], np.uint8).reshape(frames.shape)
    assert leaked(ocr_all_text(cleaned[33])) == []
    assert np.array_equal(cleaned[:33], frames[:33]) and np.array_equal(cleaned[34:], frames[34:])


def test_audit_of_a_file_called_safe_finds_text_and_raises_its_class(tmp_path):
    from anonymization.pixel_risk import pixels_at_risk, raised_classes

    frames = cine(6, name_frame=4)
    ds = us_dataset(frames)
    ds.Modality = "MR"  # a device whose images the rule trusts
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.4"
    ds.Manufacturer, ds.ManufacturerModelName = "ACME", "Audit-1"
    del ds.BurnedInAnnotation
    src, span = save(ds, tmp_path / "mr.dcm")
    assert not pixels_at_risk(ds)
    with src.open("rb") as fp, pytest.raises(PixelCleanError) as err:
        audit_pixel_element(fp, span, ds, [NAME, PID], PixelSettings(languages=("es",)), ExplicitVRLittleEndian)
    assert err.value.reason == "burned_in_text_audit"
    assert ("MR", "ACME", "AUDIT-1", "1.2.840.10008.5.1.4.1.1.4") in raised_classes()
    decision = pixels_at_risk(ds)
    assert decision and decision.reason == "audit_class"


def jpeg_with_comment(arr: np.ndarray, comment: bytes) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    j = buf.getvalue()
    com = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    app1 = b"\xff\xe1" + struct.pack(">H", len(comment) + 8) + b"Exif\x00\x00" + comment
    return j[:2] + com + app1 + j[2:] + b"TRAILING " + comment  # text after EOI as well


def test_jpeg_comment_and_app_segments_holding_name_and_id_are_dropped(tmp_path):
    arr = ultrasound(size=(160, 120), seed=1)
    secret = f"Paciente {NAME} ID {PID}".encode()
    frame = jpeg_with_comment(arr, secret)
    ds = us_dataset(arr[np.newaxis])
    del ds.NumberOfFrames
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds.LossyImageCompression = "01"
    src, span = save(ds, tmp_path / "jpeg.dcm")
    assert PID.encode() in src.read_bytes()[span.offset :]
    # the filter (pixels not at risk): text segments gone, the frame still decodes the same
    out = io.BytesIO()
    with src.open("rb") as fp:
        n = filter_pixel_element(fp, span, ds, out)
    data = out.getvalue()
    assert n == len(data) and PID.encode() not in data and b"QUINTERO" not in data and b"TRAILING" not in data
    assert b"JFIF" in data  # APP0, which decoders use, is kept
    rebuilt = tmp_path / "rebuilt.dcm"
    raw = src.read_bytes()
    rebuilt.write_bytes(raw[: span.offset] + data)
    back = pydicom.dcmread(rebuilt)
    assert np.array_equal(back.pixel_array, pydicom.dcmread(src).pixel_array)
    # the final verification reads raw frame bytes: the input is a hit, the output is not
    with src.open("rb"):
        assert scan_pixel_bytes(src, span, [PID, "QUINTERO"])
    out_span = Span(span.offset, len(data), 12, True)
    assert not scan_pixel_bytes(rebuilt, out_span, [PID, "QUINTERO"])


def test_strip_jpeg_keeps_what_the_codec_needs():
    arr = ultrasound(size=(64, 48), seed=2)
    buf = io.BytesIO()
    Image.fromarray(arr).convert("RGB").save(buf, format="JPEG", quality=80)
    plain = buf.getvalue()
    stripped = strip_jpeg(plain)
    assert stripped == plain  # nothing to remove: byte for byte
    with pytest.raises(PixelCleanError):
        strip_jpeg(b"\xff\xd8\xff\xe1\xff\xff")


def test_trailing_bytes_after_native_pixel_data_are_dropped(tmp_path):
    arr = ultrasound(size=(64, 48), seed=3)
    ds = us_dataset(arr[np.newaxis])
    ds.PixelData = arr.tobytes() + f"{NAME} {PID}".encode() + b"\x00"  # declared length covers hidden text
    src, span = save(ds, tmp_path / "long.dcm", trailing=f"AFTER {PID}".encode())
    out = io.BytesIO()
    with src.open("rb") as fp:
        n = filter_pixel_element(fp, span, ds, out)
    data = out.getvalue()
    assert n == 12 + arr.nbytes and PID.encode() not in data
    assert struct.unpack("<I", data[8:12])[0] == arr.nbytes


def test_jpeg_cine_redacted_frame_is_reencoded_and_others_keep_their_bytes(tmp_path):
    frames = cine(6, name_frame=3, size=(320, 240))
    encoded = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=92)
        encoded.append(buf.getvalue())
    ds = us_dataset(frames)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    src, span = save(ds, tmp_path / "jcine.dcm")
    with src.open("rb") as fp:
        out = clean_pixel_element(fp, span, ds, [NAME, PID], PixelSettings(languages=("es",)), JPEGBaseline8Bit)
    assert out.transfer_syntax == JPEGBaseline8Bit and out.result.redacted_frames == [3]
    buf = io.BytesIO()
    out.write(buf)
    out.close()
    path = tmp_path / "out.dcm"
    path.write_bytes(src.read_bytes()[: span.offset] + buf.getvalue())
    back = pydicom.dcmread(path)
    pixels = back.pixel_array
    assert pixels.shape == frames.shape
    assert leaked(ocr_all_text(pixels[3])) == []
    assert encoded[0].rstrip(b"\x00") in buf.getvalue()  # untouched frames: their own bytes


def test_unreadable_frame_quarantines_with_the_true_reason(tmp_path):
    arr = ultrasound(size=(64, 48), seed=4)
    ds = us_dataset(arr[np.newaxis])
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xdb\x00\x04\x00\x00\xff\xda\x00\x02broken\xff\xd9"])
    ds["PixelData"].VR = "OB"
    src, span = save(ds, tmp_path / "bad.dcm")
    with src.open("rb") as fp, pytest.raises(PixelCleanError) as err:
        clean_pixel_element(fp, span, ds, [NAME], PixelSettings(languages=("es",)), JPEGBaseline8Bit)
    assert err.value.reason == "unreadable_pixel_data"


def test_colour_jpeg_ultrasound_cine_streamed_keeps_its_encoding(tmp_path):
    """Colour ultrasound is usually JPEG Baseline YBR_FULL_422: a redacted frame is re-encoded in kind."""
    frames = np.stack([np.array(Image.fromarray(f).convert("RGB")) for f in cine(4, name_frame=2, size=(320, 240))])
    encoded = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f).save(buf, format="JPEG", quality=92, subsampling=1)
        encoded.append(buf.getvalue())
    ds = us_dataset(frames)
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"
    src, span = save(ds, tmp_path / "colour.dcm")
    with src.open("rb") as fp:
        out = clean_pixel_element(fp, span, ds, [NAME, PID], PixelSettings(languages=("es",)), JPEGBaseline8Bit)
    assert out.transfer_syntax == JPEGBaseline8Bit and out.result.redacted_frames == [2]
    assert "PhotometricInterpretation" not in out.updates  # still YBR_FULL_422 JPEG
    buf = io.BytesIO()
    out.write(buf)
    out.close()
    path = tmp_path / "out.dcm"
    path.write_bytes(src.read_bytes()[: span.offset] + buf.getvalue())
    back = pydicom.dcmread(path)
    assert back.pixel_array.shape == frames.shape
    assert leaked(ocr_all_text(back.pixel_array[2])) == []


def test_rgb_native_planar_frames_are_cleaned_in_their_layout(tmp_path):
    frames = np.stack([np.array(Image.fromarray(f).convert("RGB")) for f in cine(3, name_frame=1, size=(320, 240))])
    ds = us_dataset(frames)
    ds.PlanarConfiguration = 1
    ds.PixelData = frames.transpose(0, 3, 1, 2).tobytes()  # colour-by-plane, as some devices write
    src, span = save(ds, tmp_path / "planar.dcm")
    with src.open("rb") as fp:
        out = clean_pixel_element(fp, span, ds, [NAME, PID], PixelSettings(languages=("es",)), ExplicitVRLittleEndian)
    assert out.result.redacted_frames == [1] and out.updates == {"BurnedInAnnotation": "NO"}
    buf = io.BytesIO()
    out.write(buf)
    out.close()
    data = np.frombuffer(buf.getvalue()[12:], np.uint8).reshape(3, 3, 240, 320).transpose(0, 2, 3, 1)
    assert np.array_equal(data[0], frames[0]) and np.array_equal(data[2], frames[2])
    assert leaked(ocr_all_text(data[1])) == []


def test_without_tesserocr_the_tesseract_command_reads_the_lines(monkeypatch):
    """The C API is an accelerator: the same lines are read (slower) through the tesseract command."""
    from anonymization import ocr_lines
    from anonymization.ocr_redact import FrameCleaner

    monkeypatch.setattr(ocr_lines, "_READERS", {})
    monkeypatch.setattr(ocr_lines.LineReader, "__init__", _cli_only_init)
    img = Image.fromarray(ultrasound(seed=11))
    draw(img, (10, 8), "QUINTERO MARTINA", 18, 255)
    frame = np.array(img)
    cleaner = FrameCleaner([NAME, PID], ("es",))
    assert cleaner.reader.engine == "tesseract"
    assert cleaner.clean(frame, "MONOCHROME2", 0)
    assert leaked(ocr_all_text(frame)) == []


def _cli_only_init(self, lang: str = "spa") -> None:
    import threading
    from collections import OrderedDict

    self.lang, self._local, self._cache, self._lock = lang, threading.local(), OrderedDict(), threading.Lock()
    self.engine, self.calls = "tesseract", 0


def test_a_frame_too_large_to_read_is_refused_with_that_reason(tmp_path):
    ds = us_dataset(np.zeros((1, 8, 8), np.uint8))
    ds.Rows, ds.Columns = 8000, 8000  # a whole-slide level, say: refused before any frame is read
    src, span = save(ds, tmp_path / "huge.dcm")
    with src.open("rb") as fp, pytest.raises(PixelCleanError) as err:
        clean_pixel_element(fp, span, ds, [NAME], PixelSettings(languages=("es",)), ExplicitVRLittleEndian)
    assert err.value.reason == "image_too_large"


def test_native_ybr_full_422_is_read_in_pairs_and_written_back_unchanged(tmp_path):
    """pydicom's SC_ybr_full_422_uncompressed: 2 bytes a pixel; an image without text keeps its exact bytes."""
    from pydicom.data import get_testdata_file

    src = Path(get_testdata_file("SC_ybr_full_422_uncompressed.dcm"))
    ds = pydicom.dcmread(src)
    raw = src.read_bytes()
    off = raw.rindex(b"\xe0\x7f\x10\x00")
    span = Span(off, len(raw) - off, 12, False)
    with src.open("rb") as fp:
        out = clean_pixel_element(fp, span, ds, [NAME], PixelSettings(languages=("es",)), str(ds.file_meta.TransferSyntaxUID))
    buf = io.BytesIO()
    out.write(buf)
    out.close()
    assert not out.result.modified and buf.getvalue()[12:12 + len(ds.PixelData)] == bytes(ds.PixelData)
