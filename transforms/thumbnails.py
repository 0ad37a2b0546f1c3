"""Thumbnails: a small PNG/WebP of a representative frame of a de-identified
DICOM image, made in the pipeline and served by the query service.

Made from the de-identified file (never the raw one), so burned-in text that
the pixel cleaning removed is also absent from the thumbnail. Windowing:
the file's own VOI LUT / Window Center-Width when present (what a radiologist
would see), otherwise the 1st-99th percentile range, which keeps a CT or an
X-ray readable when a few extreme pixels (metal, air) would flatten it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger(__name__)


def _representative_frame(arr: np.ndarray, samples: int, frames: int) -> np.ndarray:
    """The middle frame of a multi-frame image (the middle slice shows most)."""
    if frames > 1:
        return arr[frames // 2]
    return arr


def _to_uint8(frame: np.ndarray, ds) -> np.ndarray:  # noqa: ANN001 - pydicom Dataset
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    data = frame
    try:
        data = apply_modality_lut(data, ds)
    except Exception:  # noqa: BLE001 - a broken LUT should not lose the thumbnail
        pass
    windowed = False
    if "WindowCenter" in ds or "VOILUTSequence" in ds:
        try:
            data = apply_voi_lut(data, ds, index=0)
            windowed = True
        except Exception:  # noqa: BLE001
            windowed = False
    data = data.astype(np.float64)
    if windowed:
        lo, hi = float(np.min(data)), float(np.max(data))
    else:
        lo, hi = (float(x) for x in np.percentile(data, [1, 99]))
    if hi <= lo:
        hi = lo + 1.0
    out = np.clip((data - lo) / (hi - lo), 0.0, 1.0) * 255.0
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        out = 255.0 - out
    return out.astype(np.uint8)


def make_thumbnail(dicom_path: Path, out_path: Path, size: int = 128) -> Path | None:
    """Write a thumbnail of ``dicom_path`` to ``out_path`` (``.png`` or ``.webp``).

    The longer side becomes ``size`` pixels, aspect kept. Returns the path, or
    None when the file has no pixel data (structured reports, presentation
    states, encapsulated PDFs) or its pixels cannot be decoded.
    """
    import pydicom

    ds = pydicom.dcmread(str(dicom_path), force=True)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        return None
    try:
        arr = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - missing codec etc.: no thumbnail, not a failure
        log.warning("no thumbnail for %s: %s", dicom_path, exc)
        return None
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    frame = _representative_frame(arr, samples, frames)
    if samples == 3:
        if str(ds.get("PhotometricInterpretation", "")).startswith("YBR"):
            from pydicom.pixels import convert_color_space

            frame = convert_color_space(frame, ds.PhotometricInterpretation, "RGB")
        f = frame.astype(np.float64)
        lo, hi = float(f.min()), float(f.max())
        img = Image.fromarray((np.clip((f - lo) / max(hi - lo, 1.0), 0, 1) * 255).astype(np.uint8), "RGB")
    else:
        img = Image.fromarray(_to_uint8(frame, ds), "L")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fmt = "WEBP" if out_path.suffix.lower() == ".webp" else "PNG"
    img.save(out_path, format=fmt, **({"quality": 80} if fmt == "WEBP" else {"optimize": True}))
    return out_path
