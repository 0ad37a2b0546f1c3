"""Export packages at size: ``.venv/bin/python bench/bench_export.py``.

1. JSON: 10,000 studies of a generated store (``synth.store``, 20,000
   studies) through the export builder (``sta export``, the code of the
   ``export`` DAG), beside a plain DuckDB ``COPY … TO`` JSON of the same
   studies' rows (no reports/labels/series nesting, no checksums).
2. DICOM: ~1 GB of published files (demo partners with a real file of random
   bytes behind every instance, SHA-256 recorded) through the builder into a
   ZIP, beside a plain copy of the same files (``shutil.copyfile``).

Each run is a fresh process; figures: seconds, MB/s of package written, peak
RSS (the builder streams, so its RSS should not grow with the package).
Options: ``--json-studies N``, ``--dicom-mb M``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

BENCH_DIR = PROJECT / "build" / "bench" / "export"

RUNNER = r"""
import json, resource, sys, time
sys.path.insert(0, {project!r})
started = time.perf_counter()
{body}
print(json.dumps({{"seconds": time.perf_counter() - started,
                   "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def run_child(body: str) -> dict:
    code = RUNNER.format(project=str(PROJECT), body=body)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(PROJECT)})
    return json.loads(out.stdout.strip().splitlines()[-1])


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def json_root(studies: int) -> tuple[Path, list[str]]:
    from synth.store import generate_store

    root = BENCH_DIR / f"json-{studies}"
    store = root / "co" / "store" / "consolidated.duckdb"
    if not store.exists():
        generate_store(store, studies * 2, seed=3)
    import duckdb

    con = duckdb.connect(str(store), read_only=True)
    try:
        uids = [u for (u,) in con.execute(
            f"SELECT study_uid FROM studies ORDER BY hash(study_uid) LIMIT {studies}").fetchall()]
    finally:
        con.close()
    return root, uids


def dicom_root(megabytes: int) -> tuple[Path, list[str], list[Path]]:
    from synth.store_demo import DEMO_PARTNERS, build_demo_rows, write_partner
    from transforms.consolidate import consolidate_region

    root = BENCH_DIR / f"dicom-{megabytes}"
    per_partner = 170
    rows = build_demo_rows(seed=5, studies_per_partner=per_partner)
    n_files = sum(len(t["instances"]) for t in rows.values())
    file_size = megabytes * 1_000_000 // n_files
    marker = root / "done.json"
    files: list[Path] = []
    uids: list[str] = []
    for region, _c, pid, _l in DEMO_PARTNERS:
        for i, inst in enumerate(rows[pid]["instances"]):
            path = root / region / "partners" / pid / inst["path"]
            files.append(path)
            if not marker.exists():
                data = b"DICM" + os.urandom(file_size - 4)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                inst["sha256"] = hashlib.sha256(data).hexdigest()
                inst["size_bytes"] = len(data)
        uids += [s["study_uid"] for s in rows[pid]["studies"]]
    if not marker.exists():
        for region, _c, pid, _l in DEMO_PARTNERS:
            write_partner(root, region, pid, rows[pid], thumbnails=False)
        consolidate_region("co", root)
        consolidate_region("br", root)
        marker.write_text("{}")
    return root, uids, files


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json-studies", type=int, default=10_000)
    ap.add_argument("--dicom-mb", type=int, default=1000)
    args = ap.parse_args(argv)
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=BENCH_DIR) as tmp:
        tmp = Path(tmp)
        # -------- JSON
        root, uids = json_root(args.json_studies)
        (tmp / "uids.json").write_text(json.dumps(uids))
        out = tmp / "json-pkg"
        r = run_child(f"""
from delivery.catalog import discover_stores
from delivery.exports import build_package
from pathlib import Path
res = build_package(discover_stores(Path({str(root)!r})), None, json.load(open({str(tmp / 'uids.json')!r})),
                    "json", Path({str(out)!r}), as_zip=True)
assert len(res.exported) == {len(uids)}
""")
        import zipfile

        with zipfile.ZipFile(out / "package.zip") as zf:
            raw = sum(i.file_size for i in zf.infolist())
        rows.append((f"JSON package, {len(uids):,} studies (uncompressed MB)", r, raw / 1e6))
        base = tmp / "plain.json"
        r = run_child(f"""
import duckdb
con = duckdb.connect()
con.execute("ATTACH '{root / 'co' / 'store' / 'consolidated.duckdb'}' AS st (READ_ONLY)")
con.execute("CREATE TEMP TABLE w AS SELECT unnest(?::VARCHAR[]) AS study_uid", [json.load(open({str(tmp / 'uids.json')!r}))])
con.execute("COPY (SELECT s.* FROM st.search_studies s JOIN w USING (study_uid)) TO '{base}' (FORMAT json)")
""")
        rows.append((f"plain DuckDB COPY to JSON, same {len(uids):,} studies", r, size_of(base) / 1e6))
        # -------- DICOM
        root, uids, files = dicom_root(args.dicom_mb)
        (tmp / "duids.json").write_text(json.dumps(uids))
        out = tmp / "dicom-pkg"
        r = run_child(f"""
from delivery.catalog import discover_stores
from delivery.exports import build_package
from pathlib import Path
res = build_package(discover_stores(Path({str(root)!r})), None, json.load(open({str(tmp / 'duids.json')!r})),
                    "dicom", Path({str(out)!r}), as_zip=True)
assert len(res.exported) == {len(uids)}, len(res.exported)
""")
        rows.append((f"DICOM package, {len(files):,} files (ZIP, SHA-256 checked)", r,
                     size_of(out / "package.zip") / 1e6))
        shutil.rmtree(out)
        (tmp / "files.json").write_text(json.dumps([str(f) for f in files]))
        r = run_child(f"""
import shutil
from pathlib import Path
dst = Path({str(tmp / 'copy')!r})
for i, f in enumerate(json.load(open({str(tmp / 'files.json')!r}))):
    d = dst / str(i % 64)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(f, d / f"{{i}}.dcm")
""")
        rows.append(("plain copy of the same files", r, size_of(tmp / "copy") / 1e6))
    print()
    print(f"{'run':<52} {'MB':>8} {'s':>7} {'MB/s':>7} {'peak RSS MB':>12}")
    for name, r, mb in rows:
        print(f"{name:<52} {mb:>8.1f} {r['seconds']:>7.2f} {mb / r['seconds']:>7.1f} {r['peak_rss_mb']:>12.0f}")
    print(f"({os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.1f}; each run a fresh process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
