"""OCR and text-scrub throughput: ``.venv/bin/python bench/bench_ocr.py``.

Three workloads, each printed beside a baseline that does the naive thing:

1. **Scanned report pages** (A4 at 200 dpi, ~30 lines, es/pt/en), through
   ``extract_text``: pages OCR'd in parallel, one Tesseract thread each.
   Baseline: the same pages one after another with Tesseract's default
   threading (OMP_THREAD_LIMIT unset).
2. **DICOM files for burned-in text**: a mix of CT/MR slices (no risk),
   ultrasound and secondary captures with names burned in. Ours: the header
   decides (``pixels_at_risk``), only at-risk files are decoded and OCR'd,
   redacted and re-checked. Baseline: every file OCR'd.
3. **Report text scrubbing** (generated reports with planted PHI): one
   ``TextScrubber`` for all. Baseline: a scrubber built per report, as a
   per-file task without model caching would do.

Options: ``--pages N``, ``--dicom N``, ``--reports N``. Runs in ~2-4 minutes
on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import numpy as np  # noqa: E402
from PIL import Image, ImageDraw, ImageFont  # noqa: E402

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINES = {
    "es": "Hallazgos: hígado de tamaño y ecogenicidad normales, sin lesiones focales ni dilatación de la vía biliar.",
    "pt": "Achados: fígado de dimensões normais, sem lesões focais, vias biliares sem dilatação, baço homogêneo.",
    "en": "Findings: the liver is normal in size and echogenicity without focal lesion or biliary dilatation.",
}


def make_pages(folder: Path, n: int) -> list[Path]:
    """A4 pages at 200 dpi (1654 x 2339), one PNG each."""
    font = ImageFont.truetype(FONT, 30)
    paths = []
    langs = list(LINES)
    for i in range(n):
        lang = langs[i % 3]
        img = Image.new("L", (1654, 2339), 255)
        d = ImageDraw.Draw(img)
        d.text((120, 120), f"Paciente: Nombre Apellido{i}   Documento 10{i:08d}", font=font, fill=0)
        for k in range(30):
            d.text((120, 220 + k * 62), LINES[lang][: 60 + (k * 7) % 40], font=font, fill=0)
        p = folder / f"page_{i}_{lang}.png"
        img.save(p)
        paths.append(p)
    return paths


def make_dicoms(n: int) -> list:
    """CT/MR (no burned-in risk) and US/SC with text, as pydicom datasets."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    rng = np.random.default_rng(0)
    font = ImageFont.truetype(FONT, 18)
    out = []
    for i in range(n):
        kind = ["CT", "MR", "US", "US", "SC"][i % 5]
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPInstanceUID = generate_uid()
        ds.Modality = "OT" if kind == "SC" else kind
        ds.SOPClassUID = {"CT": "1.2.840.10008.5.1.4.1.1.2", "MR": "1.2.840.10008.5.1.4.1.1.4", "US": "1.2.840.10008.5.1.4.1.1.6.1", "SC": "1.2.840.10008.5.1.4.1.1.7"}[kind]
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.PixelRepresentation = 0
        if kind in ("CT", "MR"):
            yy, xx = np.mgrid[0:512, 0:512]
            arr = (((xx - 256) ** 2 + (yy - 256) ** 2 < 200**2) * 1000 + rng.integers(0, 60, (512, 512))).astype(np.uint16)
            ds.Rows = ds.Columns = 512
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        else:
            a = (rng.random((480, 640)) * 25).astype(np.uint8)
            yy, xx = np.mgrid[0:480, 0:640]
            sector = (np.abs(np.arctan2(xx - 320, yy + 40)) < 0.55) & (yy > 60) & (yy < 440)
            a[sector] = (rng.random(int(sector.sum())) * 140 + 40).astype(np.uint8)
            img = Image.fromarray(a)
            d = ImageDraw.Draw(img)
            d.text((10, 8), f"GARCIA LOPEZ, MARIA {i}", font=font, fill=255)
            d.text((10, 34), f"ID 52{i:06d}  05/04/2022", font=font, fill=230)
            d.text((600, 220), "L", font=font, fill=255)
            arr = np.array(img)
            ds.Rows, ds.Columns = 480, 640
            ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
            if kind == "US":
                ds.BurnedInAnnotation = "YES"
        ds.PixelData = arr.tobytes()
        out.append(ds)
    return out


def timed(fn, *a, **k) -> tuple[float, object]:
    t = time.perf_counter()
    r = fn(*a, **k)
    return time.perf_counter() - t, r


def bench_pages(n: int) -> tuple[float, float]:
    from transforms.text_extract import extract_text

    with tempfile.TemporaryDirectory() as tmp:
        pages = make_pages(Path(tmp), n)
        tiff = Path(tmp) / "all.tiff"
        imgs = [Image.open(p) for p in pages]
        imgs[0].save(tiff, save_all=True, append_images=imgs[1:])
        os.environ["OMP_THREAD_LIMIT"] = "1"
        ours, ex = timed(extract_text, tiff, "es")
        assert ex.pages == n and len(ex.ocr_pages) == n
        # Baseline: sequential, Tesseract's default threading.
        env = {k: v for k, v in os.environ.items() if k != "OMP_THREAD_LIMIT"}
        t = time.perf_counter()
        for p in pages:
            subprocess.run(["tesseract", str(p), "stdout", "-l", "spa", "tsv"], env=env, capture_output=True, check=True)
        base = time.perf_counter() - t
    return n / ours, n / base


def bench_dicom(n: int) -> tuple[float, float, float]:
    import copy

    from anonymization.pixels import clean_burned_in, pixels_at_risk

    datasets = make_dicoms(n)
    known = ["GARCIA LOPEZ^MARIA"]
    t = time.perf_counter()
    at_risk = 0
    for ds in copy.deepcopy(datasets):
        if pixels_at_risk(ds):
            at_risk += 1
            clean_burned_in(ds, known, languages=("es",))
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for ds in copy.deepcopy(datasets):
        clean_burned_in(ds, known, languages=("es",))
    base = time.perf_counter() - t
    return n / ours, n / base, at_risk / n


def bench_scrub(n: int, n_base: int) -> tuple[float, float]:
    from synth.text_reports import generate
    from anonymization.text_phi import TextScrubber

    samples = generate(n)
    t = time.perf_counter()
    scrubber = TextScrubber()
    for s in samples:
        scrubber.scrub(s.text, s.language, s.known, s.shift)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for s in samples[:n_base]:
        TextScrubber().scrub(s.text, s.language, s.known, s.shift)
    base = time.perf_counter() - t
    return n / ours, n_base / base


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="OCR / burned-in / scrub throughput")
    ap.add_argument("--pages", type=int, default=6)
    ap.add_argument("--dicom", type=int, default=20)
    ap.add_argument("--reports", type=int, default=300)
    args = ap.parse_args(argv)
    print(f"cores: {os.cpu_count()}  tesseract: {subprocess.run(['tesseract', '--version'], capture_output=True, text=True).stdout.split()[1]}")
    rows = []
    p_ours, p_base = bench_pages(args.pages)
    rows.append(("scanned pages/s (A4 200 dpi)", p_ours, p_base, "sequential, default OMP threads"))
    d_ours, d_base, share = bench_dicom(args.dicom)
    rows.append((f"DICOM files/s burned-in ({share:.0%} needed OCR)", d_ours, d_base, "OCR every file"))
    s_ours, s_base = bench_scrub(args.reports, max(5, args.reports // 20))
    rows.append(("reports/s scrubbed", s_ours, s_base, "scrubber built per report"))
    print(f"\n{'workload':48} {'ours':>9} {'baseline':>9} {'x':>6}  baseline is")
    for name, ours, base, what in rows:
        print(f"{name:48} {ours:9.2f} {base:9.2f} {ours / base:6.1f}  {what}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
