"""Search latency at scale: ``.venv/bin/python bench/bench_search.py``.

1. A consolidated store of 1,000,000 generated studies (metadata only,
   ``synth.store``), cached under ``build/bench/`` (~1 min the first time).
2. ``sta serve --store`` in a subprocess, as deployed (uvicorn, one process).
3. Sequential requests over HTTP with varied filters (seeded), p50/p95 for:
   a search page with facet counts; a keyword search; a patient timeline.
4. 16 concurrent clients for a fixed time on a mix of the three: requests/s,
   p99, errors.

Prints each figure beside its target. Options: ``--studies N``, ``--seconds S``
(load duration), ``--clients C``, ``--requests R`` (per sequential workload).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

import duckdb  # noqa: E402
import httpx  # noqa: E402

from synth.store import generate_store  # noqa: E402
from transforms.store_schema import LAYOUT_VERSION  # noqa: E402

BENCH_DIR = PROJECT / "build" / "bench"
MODALITIES = ["CR", "DX", "CT", "MR", "US", "MG", "PT"]
BODY = ["head_neck", "chest", "abdomen", "msk", "pelvis", "breast", "whole_body"]
LABELS = ["birads:2", "birads:4", "normal:yes", "finding:pneumonia", "finding:fracture", "finding"]
MAKERS = ["GE Healthcare", "Siemens Healthineers", "Philips", "Canon Medical"]
KEYWORDS = ["nodulo", "nódulo", "fractura", "neumonía", "calcificações", "derrame", "quiste", "cisto",
            "pneumonia", "fracture", "atelectasia", "lesión hipodensa", "masa irregular", "birads"]


def ensure_store(studies: int, seed: int = 0) -> Path:
    path = BENCH_DIR / f"store_{studies}_s{seed}.duckdb"
    if path.exists():
        con = duckdb.connect(str(path), read_only=True)
        try:
            meta = dict(con.execute("SELECT key, value FROM store_meta").fetchall())
        finally:
            con.close()
        if meta.get("layout_version") == LAYOUT_VERSION:
            print(f"store: {path} (cached; {meta.get('synthetic')})")
            return path
    t = time.monotonic()
    generate_store(path, studies, seed)
    print(f"store: generated {studies:,} studies in {time.monotonic() - t:.1f} s -> {path} "
          f"({path.stat().st_size / 1e6:.0f} MB)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(store: Path, db: Path, workers: int = 1) -> tuple[subprocess.Popen, str, str]:
    env = {**os.environ, "STA_SERVICE_DB": str(db), "PYTHONPATH": str(PROJECT)}
    key = subprocess.run(
        [sys.executable, "-m", "sta.cli", "apikey", "create", "--customer", "bench", "--plan", "pro",
         "--db", str(db)], check=True, capture_output=True, text=True, env=env, cwd=PROJECT,
    ).stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "sta.cli", "serve", "--port", str(port), "--store", str(store), "--db", str(db),
         "--workers", str(workers)],
        env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("service exited: " + (proc.stderr.read() if proc.stderr else ""))
        try:
            if httpx.get(url + "/healthz", timeout=30).status_code == 200:
                return proc, url, key
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError("service did not start in 60 s")


def filtered_params(rng: random.Random) -> dict:
    """A search page with 1-4 of the sidebar's filters set (never a keyword)."""
    p: dict = {"page": rng.choice([1, 1, 1, 2, 5]), "page_size": 10}
    choices = ["modality", "sex", "age", "body_region", "label", "manufacturer", "partner"]
    for f in rng.sample(choices, rng.randint(1, 4)):
        if f == "modality":
            p["modality"] = rng.sample(MODALITIES, rng.randint(1, 2))
        elif f == "sex":
            p["sex"] = rng.choice(["F", "M"])
        elif f == "age":
            lo = rng.randint(0, 70)
            p["age_min"], p["age_max"] = lo, lo + rng.randint(5, 30)
        elif f == "body_region":
            p["body_region"] = rng.choice(BODY)
        elif f == "label":
            p["label"] = rng.choice(LABELS)
        elif f == "manufacturer":
            p["manufacturer"] = rng.choice(MAKERS)
        elif f == "partner":
            p["partner"] = f"co_partner_{rng.randint(1, 12):02d}"
    if rng.random() < 0.2:
        p["sort"] = rng.choice(["date_asc", "age_desc"])
    return p


def keyword_params(rng: random.Random) -> dict:
    p = {"q": rng.choice(KEYWORDS), "page_size": 10}
    if rng.random() < 0.5:
        p["modality"] = rng.sample(MODALITIES, rng.randint(1, 2))
    if rng.random() < 0.3:
        p["sex"] = rng.choice(["F", "M"])
    return p


def timed(client: httpx.Client, path: str, params: dict | None = None) -> tuple[float, int, dict | None]:
    t = time.perf_counter()
    r = client.get(path, params=params)
    ms = (time.perf_counter() - t) * 1000
    return ms, r.status_code, (r.json() if r.status_code == 200 and path.startswith("/api/studies") else None)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = max(0, min(len(values) - 1, int(round(q / 100 * len(values) + 0.5)) - 1))
    return values[k]


def run_sequential(client: httpx.Client, make, n: int, rng: random.Random, path: str = "/api/studies"):
    lat, tokens, errors = [], [], 0
    for _ in range(n):
        ms, status, body = timed(client, path, make(rng))
        if status != 200:
            errors += 1
            continue
        lat.append(ms)
        if body and body["results"]:
            tokens.append(body["results"][0]["patient_token"])
    return lat, tokens, errors


def run_load(url: str, key: str, clients: int, seconds: float, tokens: list[str]) -> dict:
    stop = time.monotonic() + seconds
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(1000 + i)
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as c:
            while time.monotonic() < stop:
                kind = rng.random()
                try:
                    if kind < 0.6:
                        ms, status, _ = timed(c, "/api/studies", filtered_params(rng))
                    elif kind < 0.85:
                        ms, status, _ = timed(c, "/api/studies", keyword_params(rng))
                    else:
                        ms, status, _ = timed(c, f"/api/patients/{rng.choice(tokens)}")
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(type(exc).__name__)
                    continue
                with lock:
                    if status == 200:
                        lat.append(ms)
                    else:
                        errors.append(str(status))

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    return {"requests": len(lat) + len(errors), "rps": len(lat) / elapsed, "p50": pct(lat, 50),
            "p99": pct(lat, 99), "errors": len(errors), "error_kinds": sorted(set(errors))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=60, help="per sequential workload")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--workers", type=int, default=1, help="service worker processes")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    store = ensure_store(args.studies)
    db = BENCH_DIR / "service.sqlite"
    proc, url, key = start_service(store, db, args.workers)
    try:
        rng = random.Random(42)
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60) as c:
            for _ in range(5):  # warm the buffer pool, as a running service is
                timed(c, "/api/studies", filtered_params(rng))
                timed(c, "/api/studies", keyword_params(rng))
            page, tokens, e1 = run_sequential(c, filtered_params, args.requests, rng)
            kw, tokens2, e2 = run_sequential(c, keyword_params, args.requests, rng)
            tokens = (tokens + tokens2) or ["0" * 32]
            pat = []
            e3 = 0
            for i in range(args.requests):
                ms, status, _ = timed(c, f"/api/patients/{tokens[i % len(tokens)]}")
                if status == 200:
                    pat.append(ms)
                else:
                    e3 += 1
            total = c.get("/api/studies", params={"page_size": 1}).json()["total"]
        load = run_load(url, key, args.clients, args.seconds, tokens)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    rows = [
        ("studies in the store", f"{total:,}", f"{args.studies:,}", total == args.studies),
        ("search page + facets p50 (ms)", f"{pct(page, 50):.0f}", "", None),
        ("search page + facets p95 (ms)", f"{pct(page, 95):.0f}", "< 150", pct(page, 95) < 150),
        ("keyword search p50 (ms)", f"{pct(kw, 50):.0f}", "", None),
        ("keyword search p95 (ms)", f"{pct(kw, 95):.0f}", "< 300", pct(kw, 95) < 300),
        ("patient timeline p50 (ms)", f"{pct(pat, 50):.0f}", "", None),
        ("patient timeline p95 (ms)", f"{pct(pat, 95):.0f}", "", None),
        (f"load: {args.clients} clients x {args.seconds:.0f} s, requests/s", f"{load['rps']:.1f}", "", None),
        ("load: p50 (ms)", f"{load['p50']:.0f}", "", None),
        ("load: p99 (ms)", f"{load['p99']:.0f}", "", None),
        ("load: errors", f"{load['errors'] + e1 + e2 + e3} of {load['requests']}", "0",
         load["errors"] + e1 + e2 + e3 == 0),
    ]
    print()
    print(f"{'figure':<42} {'measured':>14}   {'target':>8}")
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("  ok" if ok else "  MISSED")
        print(f"{name:<42} {value:>14}   {target:>8}{mark}")
    print(f"(sequential: {args.requests} requests per workload, varied filters; {os.cpu_count()} CPUs; "
          f"{args.workers} service worker(s); load mix 60% filtered, 25% keyword, 15% timeline; "
          f"load average at the end {os.getloadavg()[0]:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "page_ms": page, "keyword_ms": kw, "patient_ms": pat, "load": load, "total": total}, indent=1))
    return 0 if all(ok is not False for *_x, ok in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
