"""OCR, burned-in text and text-scrub throughput: ``.venv/bin/python bench/bench_ocr.py``.

Every workload is printed beside a baseline measured in the same run:

1. **Scanned report pages** (A4 at 200 dpi) through ``extract_text`` (pages
   in parallel, one Tesseract thread each) vs sequential with Tesseract's
   default threading.
2. **At-risk DICOM files/s on 2 worker processes**: the generator's burned-in
   ultrasound and CR files plus 640x480 US/SC screens with names, through the
   region-first cleaner (``anonymization.ocr_redact``: text regions found by
   morphology, each line read once by tesserocr, cached by hash) vs the former
   whole-frame cleaner (``bench/wholeframe_ocr.py``: three views + two tilts
   of every frame, one tesseract process per view). Both outputs are then
   read by an independent OCR for the planted names (must be 0 left).
3. **Distinct at-risk frames/s on 2 workers**: 24-frame cines whose every
   frame differs (speckle), static overlay, a name on one late frame. Ours
   checks every frame; the baseline samples at most 16 frames per file (so
   it misses names on the others), reported as frames it checked per second.
4. **Peak RSS on a 1 GB cine**: ``clean_pixel_element`` streaming a 1 GB
   native ultrasound cine frame by frame (8 distinct frames cycled: the
   memory figure, not a speed one) vs decoding it whole as the former
   in-memory path did (``dcmread`` + ``pixel_array``), each in its own process.
5. **Report text scrubbing**: one ``TextScrubber`` vs one built per report.

Options: ``--only pages,files,sta,cines,bigcine,scrub``, ``--pages N``, ``--dicom N``, ``--cines N``, ``--cine-mb MB``,
``--reports N``, ``--skip-baseline-cine``. About 10 minutes on 2 free cores, most of it the
baseline's whole-frame OCR.
"""

from __future__ import annotations

import argparse
import json
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


def _us_frame(rng, h: int = 480, w: int = 640) -> np.ndarray:
    a = (rng.random((h, w)) * 25).astype(np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    sector = (np.abs(np.arctan2(xx - w // 2, yy + 40)) < 0.55) & (yy > 60) & (yy < h - 40)
    a[sector] = (rng.random(int(sector.sum())) * 140 + 40).astype(np.uint8)
    return a


def _dataset(arr: np.ndarray, modality: str, sop_class: str, frames: int = 1):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = modality
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelRepresentation = 0
    ds.Rows, ds.Columns = arr.shape[-2:]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = np.ascontiguousarray(arr).tobytes()
    return ds


def make_screens(folder: Path, n: int) -> list[tuple[Path, list[str], list[str]]]:
    """640x480 US frames and OT screens with a name, an ID and a date burned in: (path, known, planted)."""
    rng = np.random.default_rng(0)
    font = ImageFont.truetype(FONT, 18)
    out = []
    for i in range(n):
        kind = ["US", "US", "OT"][i % 3]
        img = Image.fromarray(_us_frame(rng))
        d = ImageDraw.Draw(img)
        name = f"GARCIA LOPEZ, MARIA{'' if i % 2 else 'NA'}"
        d.text((10, 8), name, font=font, fill=255)
        d.text((10, 34), f"ID 52{i:06d}  05/04/2022", font=font, fill=230)
        d.text((600, 220), "L", font=font, fill=255)
        sop = "1.2.840.10008.5.1.4.1.1.6.1" if kind == "US" else "1.2.840.10008.5.1.4.1.1.7"
        ds = _dataset(np.array(img), kind, sop)
        p = folder / f"screen_{i:03d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        out.append((p, [name.replace(", ", "^"), f"52{i:06d}"], ["GARCIA", f"52{i:06d}"]))
    return out


def make_generated(folder: Path, patients: int) -> list[tuple[Path, list[str], list[str]]]:
    """The generator's at-risk files with burned-in PHI (US and CR, names/MRNs/dates in the corner)."""
    import json

    gen = folder / "gen"
    subprocess.run([sys.executable, "-m", "synth", str(gen), "--patients", str(patients), "--seed", "5", "--quiet",
                    "--no-faults"], check=True, cwd=PROJECT, capture_output=True)
    truth = json.loads((gen / "truth.json").read_text())
    out = []
    for rel, info in sorted(truth["files"].items()):
        if info.get("burned_in_phi"):
            known = [v for v in info.get("phi", []) if isinstance(v, str)]
            planted = [w for line in info["burned_in_phi"][:2] for w in line.replace(",", " ").split() if len(w) >= 4]
            out.append((gen / rel, known, planted))
    return out


def make_cines(folder: Path, n: int, frames: int = 24) -> list[tuple[Path, list[str], list[str]]]:
    """Cines whose every frame differs, a static overlay, and a name on ONE late frame."""
    rng = np.random.default_rng(1)
    font = ImageFont.truetype(FONT, 16)
    out = []
    for i in range(n):
        stack = []
        for k in range(frames):
            img = Image.fromarray(_us_frame(rng, 240, 320))
            d = ImageDraw.Draw(img)
            d.text((176, 8), "MI 0.8  TIS 0.4", font=font, fill=255)
            if k == frames - 4:
                d.text((8, 200), "QUINTERO ALVAREZ MARTINA", font=font, fill=255)
            stack.append(np.array(img))
        ds = _dataset(np.stack(stack), "US", "1.2.840.10008.5.1.4.1.1.3.1", frames)
        p = folder / f"cine_{i:03d}.dcm"
        ds.save_as(p, enforce_file_format=True)
        out.append((p, ["QUINTERO ALVAREZ^MARTINA"], ["QUINTERO", "ALVAREZ", "MARTINA"]))
    return out


def _clean_one(args: tuple[str, str, list[str], str]) -> tuple[int, int, float]:
    """Worker: clean one file with one engine, save it; (frames in file, frames OCR-checked, CPU seconds).

    CPU seconds include the tesseract processes the baseline starts (children's time).
    """
    engine, src, known, dst = args
    import pydicom

    c0 = time.process_time() + _children_cpu()

    ds = pydicom.dcmread(src)
    n = int(ds.get("NumberOfFrames", 1) or 1)
    if engine == "ours":
        from anonymization.ocr_redact import clean_burned_in

        res = clean_burned_in(ds, known, languages=("es",))
        checked = res.frames
    else:
        sys.path.insert(0, str(PROJECT / "bench"))
        import wholeframe_ocr

        wholeframe_ocr.clean_burned_in(ds, known, languages=("es",))
        checked = min(n, wholeframe_ocr.MAX_OCR_FRAMES + 1)
    cpu = time.process_time() + _children_cpu() - c0
    ds.save_as(dst, enforce_file_format=True)
    return n, checked, cpu


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _warm(engine: str) -> None:
    """Pay each worker's one-time costs (report scrubber, Tesseract model) before the clock starts."""
    import pydicom  # noqa: F401

    from anonymization.ocr_redact import _scrubber_for

    _scrubber_for(("es",))


def _leaks(args: tuple[str, list[str]]) -> list[str]:
    """An independent reading of every frame of an output (3 preprocessings), for the planted words."""
    import pydicom
    import pytesseract

    path, planted = args
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    frames = arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[np.newaxis]
    found: set[str] = set()
    for f in frames:
        f = f if f.ndim == 2 else f.mean(axis=-1)
        g = (f.astype(np.float32) / max(1.0, float(f.max())) * 255).astype(np.uint8)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            g = 255 - g
        views = [Image.fromarray(np.where(g >= 180, 0, 255).astype(np.uint8)), Image.fromarray(255 - g)]
        text = " ".join(pytesseract.image_to_string(v, lang="eng", config="--psm 11") for v in views).upper()
        found |= {w for w in planted if w.upper() in text}
    return sorted(found)


def bench_burned_in(files: list[tuple[Path, list[str], list[str]]], out: Path, workers: int) -> dict[str, dict[str, float]]:
    """Both engines over the same files, 2 worker processes each, then the leak check of both outputs."""
    from concurrent.futures import ProcessPoolExecutor

    res: dict[str, dict[str, float]] = {}
    for engine in ("ours", "baseline"):
        dst = out / engine
        dst.mkdir(parents=True, exist_ok=True)
        jobs = [(engine, str(p), known, str(dst / p.name.replace(".dcm", "") ) + f"_{k}.dcm") for k, (p, known, _) in enumerate(files)]
        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_warm, [engine] * workers))
            t = time.perf_counter()
            counts = list(pool.map(_clean_one, jobs, chunksize=1))
            wall = time.perf_counter() - t
        with ProcessPoolExecutor(workers) as pool:
            leaks = list(pool.map(_leaks, [(j[3], planted) for j, (_, _, planted) in zip(jobs, files)]))
        cpu = sum(c[2] for c in counts) / workers  # seconds if the workers had the cores to themselves
        res[engine] = {
            "files_per_s": len(files) / wall,
            "frames_per_s": sum(c[1] for c in counts) / wall,
            "files_per_cpu_s": len(files) / cpu,
            "frames_per_cpu_s": sum(c[1] for c in counts) / cpu,
            "frames": float(sum(c[0] for c in counts)),
            "frames_checked": float(sum(c[1] for c in counts)),
            "files_leaking": float(sum(1 for x in leaks if x)),
        }
    return res


def bench_sta_deid(files: list[tuple[Path, list[str], list[str]]], out: Path, workers: int) -> dict[str, dict[str, float]]:
    """`sta deid` (deidentify_tree, ``workers`` processes) over the at-risk files: the whole de-identifier.

    Ours: the product as shipped (pixels streamed frame by frame, region-first
    cleaner). Baseline: the same de-identifier with the former whole-frame
    cleaner on its in-memory path (how at-risk files were processed before).
    """
    import shutil

    import anonymization.batch as batch

    src = out / "in"
    src.mkdir(parents=True, exist_ok=True)
    for k, (p, _, _) in enumerate(files):
        shutil.copyfile(p, src / f"{k:04d}.dcm")
    os.environ.setdefault("STA_SECRET_KEY", "bench-key-not-a-secret-0123456789abcdef")
    res: dict[str, dict[str, float]] = {}
    saved = batch.pixel_cleaner, batch.build_deidentifier
    for engine in ("ours", "baseline"):
        if engine == "baseline":
            sys.path.insert(0, str(PROJECT / "bench"))
            import wholeframe_ocr

            def whole(languages=("es", "pt", "en")):
                return lambda ds, known: wholeframe_ocr.clean_burned_in(ds, known, languages=languages)

            def build_in_memory(settings, key=None, _build=saved[1]):
                deid = _build(settings, key)
                deid.stream_pixels = None  # the former path: decoded whole, cleaned in memory
                return deid

            batch.pixel_cleaner = whole  # type: ignore[assignment]
            batch.build_deidentifier = build_in_memory  # type: ignore[assignment]
        try:
            settings = batch.DeidSettings("latam", {}, "bench", {}, checksum=False, languages=("es",))
            t = time.perf_counter()
            summary = batch.deidentify_tree(src, out / f"{engine}-out", out / f"{engine}-q", settings, workers=workers)
            wall = time.perf_counter() - t
        finally:
            batch.pixel_cleaner, batch.build_deidentifier = saved
        res[engine] = {"files_per_s": len(files) / wall, "published": float(summary["published"]),
                       "quarantined": float(summary["quarantined"])}
    return res


CINE_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[3])
import pydicom
mode, path = sys.argv[1], sys.argv[2]
t = time.perf_counter()
if mode == "ours":
    from anonymization.pixel_stream import PixelSettings, clean_pixel_element
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    class Span: pass
    span = Span(); span.offset = int(sys.argv[4]); span.header_len = 12; span.encapsulated = False; span.tag = 0x7FE00010
    import os
    span.length = os.path.getsize(path) - span.offset
    with open(path, "rb") as fp, open(os.devnull, "wb") as sink:
        out = clean_pixel_element(fp, span, ds, ["QUINTERO ALVAREZ^MARTINA"], PixelSettings(languages=("es",)),
                                  str(ds.file_meta.TransferSyntaxUID))
        out.write(sink)
        out.close()
    frames = out.result.frames
else:
    ds = pydicom.dcmread(path)
    frames = ds.pixel_array.shape[0]
print(json.dumps({"seconds": time.perf_counter() - t, "frames": frames,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_big_cine(path: Path, mb: int) -> tuple[int, int]:
    """A native 8-bit 640x480 US cine of about ``mb`` MB, written frame by frame; (frames, pixel element offset)."""
    import io
    import struct

    rng = np.random.default_rng(2)
    font = ImageFont.truetype(FONT, 18)
    distinct = []
    for k in range(8):
        img = Image.fromarray(_us_frame(rng))
        ImageDraw.Draw(img).text((10, 8), "MI 0.9  TIS 0.3", font=font, fill=255)
        if k == 5:
            ImageDraw.Draw(img).text((10, 440), "QUINTERO ALVAREZ MARTINA", font=font, fill=255)
        distinct.append(np.array(img).tobytes())
    frame_len = len(distinct[0])
    n = max(1, mb * (1 << 20) // frame_len)
    ds = _dataset(np.zeros((480, 640), np.uint8), "US", "1.2.840.10008.5.1.4.1.1.3.1", n)
    del ds.PixelData
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    head = buf.getvalue()
    with path.open("wb") as f:
        f.write(head)
        f.write(struct.pack("<HH", 0x7FE0, 0x0010) + b"OB\x00\x00" + struct.pack("<I", n * frame_len))
        for k in range(n):
            f.write(distinct[k % 8])
    return n, len(head)


def bench_big_cine(folder: Path, mb: int, baseline: bool) -> dict[str, dict[str, float]]:
    path = folder / "big_cine.dcm"
    _, offset = make_big_cine(path, mb)
    out = {}
    for mode in ("ours", "baseline") if baseline else ("ours",):
        r = subprocess.run([sys.executable, "-c", CINE_CHILD, mode, str(path), str(PROJECT), str(offset)],
                           capture_output=True, text=True, env={**os.environ, "OMP_THREAD_LIMIT": "1"})
        if r.returncode != 0:
            raise SystemExit(f"cine child {mode} failed: {r.stderr[-2000:]}")
        out[mode] = json.loads(r.stdout.strip().splitlines()[-1])
    path.unlink()
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
    ap.add_argument("--dicom", type=int, default=12, help="640x480 screens with burned-in names (plus the generator's)")
    ap.add_argument("--patients", type=int, default=40, help="generator patients (its burned-in US/CR files)")
    ap.add_argument("--cines", type=int, default=4)
    ap.add_argument("--cine-mb", type=int, default=1024)
    ap.add_argument("--skip-baseline-cine", action="store_true", help="do not decode the big cine whole")
    ap.add_argument("--reports", type=int, default=300)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", default="pages,files,sta,cines,bigcine,scrub",
                    help="comma-separated workloads to run (default: all)")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    os.environ["OMP_THREAD_LIMIT"] = "1"
    print(f"cores: {os.cpu_count()}  workers: {args.workers}  "
          f"tesseract: {subprocess.run(['tesseract', '--version'], capture_output=True, text=True).stdout.split()[1]}")
    rows = []
    if "pages" in only:
        p_ours, p_base = bench_pages(args.pages)
        rows.append(("scanned pages/s (A4 200 dpi)", p_ours, p_base, "sequential, default OMP threads"))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_generated(folder, args.patients) + make_screens(folder, args.dicom) if only & {"files", "sta"} else []
        if "files" in only:
            r = bench_burned_in(files, folder / "out", args.workers)
            o, b = r["ours"], r["baseline"]
            rows.append((f"at-risk files/s ({len(files)} files, target >= 5)", o["files_per_s"], b["files_per_s"], "whole-frame OCR"))
            rows.append(("  same, CPU-time based (machine shared)", o["files_per_cpu_s"], b["files_per_cpu_s"], "whole-frame OCR"))
            rows.append(("  files with a planted name left (must be 0)", o["files_leaking"], b["files_leaking"], "same check"))
        if "sta" in only:
            r = bench_sta_deid(files, folder / "sta", args.workers)
            o, b = r["ours"], r["baseline"]
            rows.append((f"sta deid at-risk files/s (published {o['published']:.0f}/{len(files)})", o["files_per_s"],
                         b["files_per_s"], f"whole-frame cleaner, published {b['published']:.0f}"))
        if "cines" in only:
            _cines(folder, args, rows)
        if "bigcine" in only:
            _big(folder, args, rows)
    if "scrub" in only:
        s_ours, s_base = bench_scrub(args.reports, max(5, args.reports // 20))
        rows.append(("reports/s scrubbed", s_ours, s_base, "scrubber built per report"))
    print(f"\n{'workload':52} {'ours':>9} {'baseline':>9} {'x':>6}  baseline is")
    for name, ours, base, what in rows:
        ratio = ours / base if base and base == base and "left" not in name and "seconds" not in name else float("nan")
        print(f"{name:52} {ours:9.2f} {base:9.2f} {ratio:6.1f}  {what}")
    return 0


def _cines(folder: Path, args: argparse.Namespace, rows: list) -> None:
    """Distinct frames/s on cines whose every frame differs."""
    cines = make_cines(folder, args.cines)
    r = bench_burned_in(cines, folder / "cine_out", args.workers)
    o, b = r["ours"], r["baseline"]
    rows.append(("distinct frames/s checked (target >= 10)", o["frames_per_s"], b["frames_per_s"],
                 f"whole-frame, checks {b['frames_checked']:.0f}/{b['frames']:.0f} frames"))
    rows.append(("  same, CPU-time based (machine shared)", o["frames_per_cpu_s"], b["frames_per_cpu_s"], "whole-frame OCR"))
    rows.append(("  cines with the late-frame name left", o["files_leaking"], b["files_leaking"], "sampled frames"))


def _big(folder: Path, args: argparse.Namespace, rows: list) -> None:
    """Peak RSS streaming the big cine vs decoding it whole."""
    c = bench_big_cine(folder, args.cine_mb, not args.skip_baseline_cine)
    base_rss = c.get("baseline", {}).get("rss_mb", float("nan"))
    rows.append((f"peak RSS MB, {args.cine_mb} MB cine (target < 300)", c["ours"]["rss_mb"], base_rss, "decoded whole"))
    rows.append(("  seconds for it (incl. start-up)", c["ours"]["seconds"], c.get("baseline", {}).get("seconds", float("nan")),
                 f"{c['ours']['frames']} frames, 8 distinct"))


if __name__ == "__main__":
    sys.exit(main())
