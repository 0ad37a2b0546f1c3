"""Whole-partner throughput: the ingest DAGs end to end beside ``sta deid`` alone and a plain copy.

Run: ``.venv/bin/python bench/bench_scale.py [--patients 120]`` (about 10-15 minutes on 2 cores).

Same generated files (``python -m synth``: two partners, CT/MR/US/MG/CR/DX and
reports; ``--patients 120`` gives about 2,100 files), same run, one after the
other:

1. a plain copy of the partners' export folders (the floor: reading and
   writing the bytes once);
2. ``sta deid`` alone on the same DICOM files (1 worker, then one per core);
3. each partner's ``ingest_<id>`` DAG through Airflow (``dag.test()``, the
   demo's and tests' executor: tasks run one after the other in one process),
   with the seconds of each stage read back from the metadata DB.

Then the extrapolation to an average partner of 325,000 files: the mapped
stages (de-identification, reports, verification) spread over the partner's
workers, the others (pull, classify, tables, gate, publish) do not; printed
for one and eight workers of one core each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTNER_FILES = 325_000
# Mapped per batch or per cluster: these spread over the partner's workers.
MAPPED = ("deidentify", "reports", "verify_batch", "label_cluster.")

CHILD = r"""
import json, os, sys
sys.path.insert(0, os.environ["STA_PROJECT"])
from synth.airflow_run import configure_env, ensure_db, run_dag
configure_env(os.environ["STA_PROJECT"])
ensure_db()
out = {}
for dag_id in sys.argv[1:]:
    r = run_dag(dag_id)
    out[dag_id] = {"state": r.state, "seconds": r.seconds, "stages": r.stage_seconds()}
print("RESULT " + json.dumps(out))
"""


def _count_files(folder: Path) -> tuple[int, int, int]:
    files = dicom = size = 0
    for p in folder.rglob("*"):
        if p.is_file():
            files += 1
            size += p.stat().st_size
            with open(p, "rb") as fh:
                head = fh.read(132)
            dicom += head[128:132] == b"DICM"
    return files, dicom, size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=120)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="sta-bench-scale-"))
    data = work / "data"
    env = {**os.environ, "STA_DATA_ROOT": str(data), "AIRFLOW_HOME": str(work / "airflow"),
           "STA_SECRET_KEY": "bench-scale-key-" + "0" * 40, "STA_PROJECT": str(ROOT), "OMP_THREAD_LIMIT": "1",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "STA_RETRY_DELAY_SECONDS": "2"}
    try:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "synth", str(data / "incoming"), "--patients", str(args.patients),
                        "--seed", str(args.seed)], env=env, check=True, cwd=ROOT, capture_output=True)
        incoming = data / "incoming"
        files, dicom, size = _count_files(incoming)
        print(f"generated {files} files ({dicom} DICOM, {size / 1e6:.0f} MB) in {time.perf_counter() - t0:.0f} s")

        t0 = time.perf_counter()
        shutil.copytree(incoming, work / "copy")
        copy_s = time.perf_counter() - t0

        dicom_in = work / "dicom_only"
        for p in incoming.rglob("*"):
            if p.is_file():
                with open(p, "rb") as fh:
                    if fh.read(132)[128:132] == b"DICM":
                        dest = dicom_in / p.relative_to(incoming)
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(p, dest)
        deid = {}
        for workers in (1, os.cpu_count() or 2):
            out = work / f"deid_{workers}"
            t0 = time.perf_counter()
            subprocess.run([str(Path(sys.executable).with_name("sta")), "deid", str(dicom_in), str(out),
                            "--quarantine", str(work / f"q_{workers}"), "--workers", str(workers)],
                           env=env, check=True, cwd=ROOT, capture_output=True)
            deid[workers] = time.perf_counter() - t0

        dag_ids = [f"ingest_{d.name}" for d in sorted(incoming.iterdir()) if d.is_dir()]
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", CHILD, *dag_ids], env=env, cwd=ROOT, capture_output=True,
                              text=True)
        dag_wall = time.perf_counter() - t0
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if proc.returncode or line is None:
            print(proc.stdout[-3000:], proc.stderr[-3000:])
            return 1
        runs = json.loads(line[len("RESULT "):])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    dag_s = sum(r["seconds"] for r in runs.values())
    stages: dict[str, float] = {}
    for r in runs.values():
        for k, v in r["stages"].items():
            stages[k] = stages.get(k, 0.0) + v
    print()
    print(f"{'':32} {'seconds':>9} {'files/s':>9} {'vs copy':>8}")
    print(f"{'plain copy':32} {copy_s:9.1f} {files / copy_s:9.1f} {1.0:8.2f}")
    for w, s in deid.items():
        print(f"{f'sta deid, {w} worker(s), DICOM only':32} {s:9.1f} {dicom / s:9.1f} {copy_s / s:8.3f}")
    states = ", ".join(f"{k}={v['state']}" for k, v in runs.items())
    print(f"{'ingest DAGs end to end':32} {dag_s:9.1f} {files / dag_s:9.2f} {copy_s / dag_s:8.4f}"
          f"   (states: {states}; wall incl. start-up {dag_wall:.0f} s)")
    print()
    print("per stage (all mapped instances summed):")
    for k, v in sorted(stages.items(), key=lambda kv: -kv[1]):
        print(f"  {k:24} {v:8.1f} s  {100 * v / max(sum(stages.values()), 1e-9):5.1f} %  {v / files * 1000:7.1f} ms/file")
    mapped = sum(v for k, v in stages.items() if k in MAPPED or k.startswith(MAPPED))
    serial = sum(stages.values()) - mapped
    scale = PARTNER_FILES / files
    print()
    print(f"extrapolated to a {PARTNER_FILES:,}-file partner (same mix):")
    for workers in (1, 8):
        hours = (serial + mapped / workers) * scale / 3600
        print(f"  {workers} worker(s): {hours:6.1f} h   ({PARTNER_FILES / (hours * 3600):6.1f} files/s)")
    return 0 if all(r["state"] == "success" for r in runs.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
