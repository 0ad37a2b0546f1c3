"""Burned-in text in DICOM pixels: risk decision, OCR redaction, re-check, valid output."""

from __future__ import annotations

import io
import os

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless, generate_uid

import anonymization.ocr_redact as px
from anonymization.ocr_redact import PixelCleanError, clean_burned_in
from anonymization.pixel_risk import pixels_at_risk

os.environ.setdefault("OMP_THREAD_LIMIT", "1")

FONTS = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
]
KNOWN = ["PEREZ GOMEZ^JOSE LUIS", "1020345678", "19800512", "HOSPITAL SAN RAFAEL"]


# ----------------------------------------------------------------- builders


def ultrasound(size=(640, 480), seed=0) -> np.ndarray:
    """Dark frame with a speckled sector, like a B-mode ultrasound."""
    rng = np.random.default_rng(seed)
    w, h = size
    a = (rng.random((h, w)) * 25).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    sector = (np.abs(np.arctan2(xx - w // 2, yy + 40)) < 0.55) & (yy > 60) & (yy < h - 40)
    a[sector] = (rng.random(int(sector.sum())) * 140 + 40).astype(np.uint8)
    return a


def draw(img: Image.Image, xy, text: str, size: int, fill, font: int = 0, angle: float = 0) -> tuple[int, int, int, int]:
    """Render ``text``; returns its box. Rotated text is drawn through a mask."""
    f = ImageFont.truetype(FONTS[font % len(FONTS)], size)
    if not angle:
        d = ImageDraw.Draw(img)
        d.text(xy, text, font=f, fill=fill)
        return d.textbbox(xy, text, font=f)
    mask = Image.new("L", (int(f.getlength(text)) + 12, size + 12), 0)
    ImageDraw.Draw(mask).text((6, 3), text, font=f, fill=255)
    mask = mask.rotate(angle, expand=True, resample=Image.BICUBIC)
    img.paste(Image.new(img.mode, mask.size, fill), xy, mask)
    return (xy[0], xy[1], xy[0] + mask.width, xy[1] + mask.height)


def make_ds(arr: np.ndarray, modality: str = "US", frames: int = 1, photometric: str | None = None) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sop_class = "1.2.840.10008.5.1.4.1.1.6.1" if modality == "US" else "1.2.840.10008.5.1.4.1.1.7"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.PatientName = "PEREZ GOMEZ^JOSE LUIS"
    ds.PatientID = "1020345678"
    ds.BurnedInAnnotation = "YES"
    rgb = arr.shape[-1] == 3 and arr.ndim == (4 if frames > 1 else 3)
    ds.Rows, ds.Columns = arr.shape[-3:-1] if rgb else arr.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if rgb else "MONOCHROME2")
    if rgb:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = arr.tobytes()
    return ds


def roundtrip(ds: Dataset) -> Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return pydicom.dcmread(buf)


def ocr_all_text(arr: np.ndarray, angles: tuple[float, ...] = (0,)) -> str:
    """An independent OCR of the output (several preprocessings, optionally straightened), upper-cased."""
    import pytesseract

    a = arr if arr.ndim == 2 else arr.mean(axis=-1).astype(np.uint8)
    texts = []
    binary = Image.fromarray(np.where(a >= 180, 0, 255).astype(np.uint8))
    for angle in angles:
        views = [binary.rotate(-angle, expand=True, fillcolor=255)]
        if angle == 0:
            views += [Image.fromarray(255 - a), binary.resize((binary.width * 2, binary.height * 2))]
        for im in views:
            texts.append(pytesseract.image_to_string(im, lang="eng", config="--psm 11"))
    return " ".join(texts).upper()


PLANTED = ["PEREZ", "GOMEZ", "1020345678", "12/05/1980", "RAFAEL", "ALVAREZ", "QUINTERO", "MARTINA", "SOLEDAD"]


def leaked(text: str) -> list[str]:
    from anonymization.ocr_redact import edit1 as _edit1

    words = [w.strip(".,:;") for w in text.split()]
    out = []
    for p in PLANTED:
        if p in text or any(len(w) >= 5 and _edit1(w, p) for w in words):
            out.append(p)
    return out


# ------------------------------------------------------------------ decision


def test_pixels_at_risk_by_modality_sop_class_and_flags() -> None:
    arr = np.zeros((16, 16), np.uint8)
    us = make_ds(arr, "US")
    assert pixels_at_risk(us)
    ct = make_ds(arr, "CT")
    ct.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    del ct.BurnedInAnnotation
    assert not pixels_at_risk(ct)
    ct.BurnedInAnnotation = "YES"
    assert pixels_at_risk(ct)
    ct.BurnedInAnnotation = "NO"
    assert not pixels_at_risk(ct)
    sc = make_ds(arr, "OT")
    sc.Modality = "CT"
    sc.BurnedInAnnotation = "NO"
    assert pixels_at_risk(sc)  # secondary capture SOP class
    dx = make_ds(arr, "DX")
    dx.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    del dx.BurnedInAnnotation
    assert not pixels_at_risk(dx)
    dx.ImageType = ["DERIVED", "SECONDARY"]
    assert pixels_at_risk(dx)
    # Profile rule overrides: "never" trusts the modality but not the hard flags
    # (BurnedInAnnotation YES, capture SOP classes); "always" OCRs every file.
    assert pixels_at_risk(us, {"modalities": {"US": "never"}}).reason == "burned_in_annotation"
    assert not pixels_at_risk(us, {"modalities": {"US": "never"}, "sop_classes": [], "burned_in_annotation": []})
    del ct.BurnedInAnnotation
    assert pixels_at_risk(ct, {"default": "flagged", "modalities": {"CT": "always"}})
    no_pixels = Dataset()
    no_pixels.Modality = "US"
    assert not pixels_at_risk(no_pixels)


# ---------------------------------------------------------------- redaction


def phi_elements(variant: int) -> list[tuple]:
    """(xy, text, size, fill, font, angle) of the PHI drawn in ``burned_frame``."""
    font = variant
    return [
        ((10, 8), "PEREZ GOMEZ, JOSE LUIS", 18 + variant % 3 * 4, 255, font, 0),
        ((10, 36), "ID 1020345678   DOB 12/05/1980", 14 + variant % 2 * 2, 210 if variant % 2 else 255, font + 1, 0),
        ((420, 10), "HOSPITAL SAN RAFAEL", 14, 180 + variant * 15, font + 2, 0),
        # a name over the speckled image content, slightly rotated
        ((230, 200), "Dr. Alvarez Quintero", 16 + variant * 2, 255, font + 3, [0, 3, -4][variant % 3]),
        # dim grey text on the dark border
        ((12, 452), "Martina Soledad", 15, 150, font + 4, 0),
    ]


def burned_frame(variant: int) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """An ultrasound frame with PHI in varied fonts/sizes/contrasts/angles, and safe marks."""
    img = Image.fromarray(ultrasound(seed=variant))
    for xy, text, size, fill, font, angle in phi_elements(variant):
        draw(img, xy, text, size, fill, font, angle=angle)
    safe = [draw(img, (600, 230), "R", 22, 255), draw(img, (560, 446), "5 cm", 14, 255)]
    return np.array(img), safe


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_burned_in_phi_is_removed_and_safe_marks_survive(variant: int) -> None:
    arr, safe = burned_frame(variant)
    before = arr.copy()
    ds = make_ds(arr)
    res = clean_burned_in(ds, KNOWN, languages=("es",))
    out = roundtrip(ds).pixel_array
    assert out.shape == before.shape
    assert leaked(ocr_all_text(out)) == []
    # OCR-independent: the ink of each planted element is (almost all) gone.
    for xy, text, size, _fill, font, angle in phi_elements(variant):
        canvas = Image.new("L", (640, 480), 0)
        draw(canvas, xy, text, size, 255, font, angle=angle)
        mask = np.array(canvas) > 100
        assert (out[mask] != before[mask]).mean() > 0.9, text
    assert ds.BurnedInAnnotation == "NO" and res.boxes_redacted >= 5
    for x0, y0, x1, y1 in safe:
        assert np.array_equal(out[y0:y1, x0:x1], before[y0:y1, x0:x1]), "a safe annotation was redacted"
    # Most of the image content is untouched.
    assert (out != before).mean() < 0.08


@pytest.mark.parametrize("angle,rotations", [(10, (0,)), (-15, (0,)), (90, (0, 90, 270))])
def test_tilted_and_vertical_names_are_removed(angle: float, rotations: tuple[int, ...]) -> None:
    img = Image.fromarray(ultrasound(seed=5))
    draw(img, (40, 120), "QUINTERO ALVAREZ", 20, 255, 0, angle=angle)
    arr = np.array(img)
    assert "QUINTERO" in ocr_all_text(arr, (0, angle)) or "ALVAREZ" in ocr_all_text(arr, (0, angle))
    ds = make_ds(arr)
    clean_burned_in(ds, ["QUINTERO^ALVAREZ"], languages=("es",), rotations=rotations)
    assert leaked(ocr_all_text(roundtrip(ds).pixel_array, (0, angle))) == []


def ink(size, xy, text: str, font_size: int) -> np.ndarray:
    """Where ``text`` puts ink: rendered alone on a blank canvas."""
    canvas = Image.new("L", size, 0)
    draw(canvas, xy, text, font_size, 255)
    return np.array(canvas) > 100


def test_screenshot_with_white_caption_on_colour_bar_and_dark_text() -> None:
    """Secondary capture: white text on a blue title bar, dark text on a light page, an image inset."""
    size = (800, 500)
    img = Image.new("RGB", size, (245, 245, 245))
    ImageDraw.Draw(img).rectangle((0, 0, 800, 40), fill=(30, 60, 120))
    caption = ((10, 10), "Paciente: Soledad Alvarez Quintero  DNI 30.123.456", 16)
    footer = ((20, 420), "Informe: Martina Perez - 12/05/2022", 18)
    draw(img, caption[0], caption[1], caption[2], (255, 255, 255))
    img.paste(Image.fromarray(ultrasound(size=(400, 300), seed=3)).convert("RGB"), (200, 80))
    draw(img, footer[0], footer[1], footer[2], (20, 20, 20))
    draw(img, (620, 420), "5 cm", 14, (20, 20, 20))
    arr = np.array(img)
    before = arr.copy()
    ds = make_ds(arr, "OT")
    assert pixels_at_risk(ds)
    clean_burned_in(ds, ["ALVAREZ QUINTERO^SOLEDAD", "30123456"], languages=("es",))
    out = roundtrip(ds).pixel_array
    # OCR-independent check: the ink of every planted word is gone.
    for xy, text, fs in (caption, footer):
        for word_xy, word in _words_at(xy, text, fs):
            mask = ink(size, word_xy, word, fs)
            changed = (out[mask] != before[mask]).any(axis=-1).mean()
            assert changed > 0.9, (word, changed)
    assert np.array_equal(out[415:440, 615:660], before[415:440, 615:660])  # "5 cm" kept
    assert (out[80:380, 200:600] == before[80:380, 200:600]).all()  # the image inset untouched


def _words_at(xy, text: str, fs: int):
    """Each word of a line with its drawing position (same font as draw())."""
    f = ImageFont.truetype(FONTS[0], fs)
    x, y = xy
    pos = 0
    for word in text.split(" "):
        if word:
            start = text.index(word, pos)
            yield (x + int(f.getlength(text[:start])), y), word
            pos = start + len(word)


def test_image_without_text_is_left_unchanged_and_marked_no() -> None:
    arr = ultrasound(seed=7)
    ds = make_ds(arr.copy())
    res = clean_burned_in(ds, KNOWN)
    assert res.boxes_redacted == 0 and ds.BurnedInAnnotation == "NO"
    assert np.array_equal(roundtrip(ds).pixel_array, arr)


def test_multiframe_rgb_rle_stays_valid() -> None:
    frames = []
    for i in range(3):
        img = Image.fromarray(ultrasound(size=(360, 240), seed=i)).convert("RGB")
        draw(img, (6, 4), "PEREZ GOMEZ, JOSE", 18, (255, 255, 0))
        draw(img, (330, 110), "L", 22, (255, 255, 255))
        frames.append(np.array(img))
    arr = np.stack(frames)
    ds = make_ds(arr, frames=3)
    ds.compress(RLELossless, encoding_plugin="pydicom")
    assert ds.file_meta.TransferSyntaxUID == RLELossless
    res = clean_burned_in(ds, KNOWN, languages=("es",))
    back = roundtrip(ds)
    assert back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    out = back.pixel_array
    assert out.shape == (3, 240, 360, 3) and back.PhotometricInterpretation == "RGB"
    assert res.redacted_frames == [0, 1, 2]
    for f in range(3):
        assert leaked(ocr_all_text(out[f])) == []
    assert np.array_equal(out[:, 105:140, 325:358], arr[:, 105:140, 325:358])  # "L" kept


def test_jpeg_baseline_colour_ultrasound_is_decoded_cleaned_and_rewritten() -> None:
    from pydicom.encaps import encapsulate

    img = Image.fromarray(ultrasound(seed=3)).convert("RGB")
    draw(img, (10, 8), "QUINTERO MARTINA", 22, (255, 255, 255))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=92)
    ds = make_ds(np.array(img), photometric="YBR_FULL_422")
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    clean_burned_in(ds, ["QUINTERO^MARTINA"], languages=("es",))
    back = roundtrip(ds)
    assert back.PhotometricInterpretation == "RGB" and back.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert leaked(ocr_all_text(back.pixel_array)) == []


def test_monochrome1_16bit_secondary_capture() -> None:
    img = Image.new("L", (512, 400), 40)
    draw(img, (30, 30), "Paciente: Soledad Alvarez", 20, 230)
    draw(img, (30, 340), "L", 22, 230)
    a8 = np.array(img).astype(np.uint16)
    arr = (4095 - a8 * 16).astype(np.uint16)  # MONOCHROME1: high values are dark
    ds = make_ds(np.zeros((400, 512), np.uint8), "OT")
    ds.PhotometricInterpretation = "MONOCHROME1"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelData = arr.tobytes()
    clean_burned_in(ds, [], languages=("es",))
    out = roundtrip(ds).pixel_array
    assert out.dtype == np.uint16 and out.shape == (400, 512)
    shown = (255 - (out >> 4)).astype(np.uint8)  # what a viewer displays
    assert leaked(ocr_all_text(shown)) == []


# --------------------------------------------------------------- fail closed


def test_text_that_cannot_be_cleared_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """If redaction does not take (here: disabled), the re-check catches it and nothing is marked NO."""
    monkeypatch.setattr(px.FrameCleaner, "_apply", lambda self, frame, ops: None)
    img = Image.new("L", (320, 60), 0)
    draw(img, (6, 10), "PEREZ GOMEZ, JOSE LUIS", 20, 255)
    ds = make_ds(np.array(img))
    with pytest.raises(PixelCleanError) as err:
        clean_burned_in(ds, KNOWN, languages=("es",))
    assert err.value.reason == "burned_in_text_residual"
    assert ds.BurnedInAnnotation == "YES"


def test_undecodable_pixels_raise() -> None:
    from pydicom.encaps import encapsulate

    ds = make_ds(np.zeros((64, 64), np.uint8))
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0 broken jpeg"])
    ds["PixelData"].is_undefined_length = True
    with pytest.raises(PixelCleanError) as err:
        clean_burned_in(ds, KNOWN)
    assert err.value.reason == "unreadable_pixel_data"
