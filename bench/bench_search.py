"""Search latency at scale: ``.venv/bin/python bench/bench_search.py``.

1. A consolidated store of 1,000,000 generated studies (metadata only,
   ``synth.store``), cached under ``build/bench/`` (~1-3 min the first time).
2. ``sta serve --store --workers N`` in a subprocess, as deployed (uvicorn,
   N worker processes, each with the read-only store attached and its own
   in-memory index; default N = CPUs).
3. Two workloads over HTTP, each with 1 and 16 closed-loop clients: a search
   page with facet counts (1-4 sidebar filters), and a keyword search.
4. Baseline beside it, same machine, same run: the same page and facets as
   plain DuckDB SQL on the store (a count, one GROUP BY per facet, the page),
   with 1 and 16 threads.

Prints p50/p95/requests per second per cell, and the targets (p95 < 150 ms
filters+facets, < 300 ms keyword at 16 clients). Options: ``--studies N``,
``--clients 1,16``, ``--seconds S`` per cell, ``--workers N``, ``--no-baseline``.
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
LABELS = ["birads_2", "birads_4", "birads", "normal", "pneumonia", "fracture", "nodule"]
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


def run_clients(clients: int, seconds: float, call) -> dict:  # noqa: ANN001
    """``clients`` threads, each calling ``call(rng, state)`` in a closed loop
    for ``seconds``; latencies of successful calls."""
    stop = time.monotonic() + seconds
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        rng = random.Random(1000 + i)
        state: dict = {}
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                ok = call(rng, state)
            except Exception as exc:  # noqa: BLE001 - counted, reported
                with lock:
                    errors.append(type(exc).__name__)
                continue
            ms = (time.perf_counter() - t) * 1000
            with lock:
                (lat.append(ms) if ok else errors.append("status"))
        if "close" in state:
            state["close"]()

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    return {"n": len(lat), "rps": len(lat) / elapsed, "p50": pct(lat, 50), "p95": pct(lat, 95),
            "errors": len(errors), "error_kinds": sorted(set(errors))}


def http_call(url: str, key: str, make):  # noqa: ANN001, ANN201
    def call(rng: random.Random, state: dict) -> bool:
        if "client" not in state:
            state["client"] = httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=60)
            state["close"] = state["client"].close
        return state["client"].get("/api/studies", params=make(rng)).status_code == 200
    return call


# ----------------------------------------------------------------- baseline
FACET_SQL = {"modality": "modality", "body_region": "body_region", "sex": "sex",
             "age": "(age // 10) * 10", "manufacturer": "manufacturer", "country": "country",
             "partner": "partner_id"}


def _where(p: dict, skip: str | None = None) -> tuple[list[str], list]:
    conds, args = [], []

    def many(name: str, col: str) -> None:
        vals = p.get(name)
        if vals is None or name == skip:
            return
        vals = vals if isinstance(vals, list) else [vals]
        conds.append(f"{col} IN ({', '.join('?' for _ in vals)})")
        args.extend(vals)

    many("modality", "modality")
    many("sex", "sex")
    many("body_region", "body_region")
    many("manufacturer", "manufacturer")
    many("partner", "partner_id")
    if skip != "age" and "age_min" in p:
        conds.append("age BETWEEN ? AND ?")
        args.extend([p["age_min"], p["age_max"]])
    if skip != "label" and "label" in p:
        lab = p["label"]
        if lab == "birads":
            conds.append("len(list_filter(labels, x -> x LIKE 'birads_%')) > 0")
        else:
            conds.append("list_contains(labels, ?)")
            args.append(lab)
    if "q" in p:
        for w in p["q"].split():
            conds.append("sid IN (SELECT sid FROM search_terms WHERE term IN "
                         "(SELECT term FROM search_vocab WHERE contains(term, lower(strip_accents(?)))))")
            args.append(w)
    return conds, args


def duckdb_call(con: duckdb.DuckDBPyConnection, make):  # noqa: ANN001, ANN201
    """The same page and facets as plain DuckDB SQL on the store: a count, one
    GROUP BY per facet (each with every other filter), the page's cards."""
    def call(rng: random.Random, state: dict) -> bool:
        cur = state.get("cur")
        if cur is None:
            cur = state["cur"] = con.cursor()
            state["close"] = cur.close
        p = make(rng)
        conds, args = _where(p)
        where = " AND ".join(conds) or "true"
        cur.execute(f"SELECT count(*) FROM search_studies WHERE {where}", args).fetchall()
        for facet, col in FACET_SQL.items():
            c2, a2 = _where(p, skip=facet)
            cur.execute(f"SELECT {col}, count(*) FROM search_studies WHERE {' AND '.join(c2) or 'true'} "
                        "GROUP BY 1", a2).fetchall()
        c2, a2 = _where(p, skip="label")
        cur.execute(f"SELECT l, count(*) FROM (SELECT unnest(labels) AS l FROM search_studies WHERE "
                    f"{' AND '.join(c2) or 'true'}) GROUP BY 1", a2).fetchall()
        cur.execute(f"SELECT card FROM search_studies WHERE {where} ORDER BY study_date DESC NULLS LAST, study_uid "
                    f"LIMIT 10 OFFSET {(p.get('page', 1) - 1) * 10}", args).fetchall()
        return True
    return call


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=1_000_000)
    ap.add_argument("--clients", default="1,16", help="comma-separated client counts")
    ap.add_argument("--seconds", type=float, default=15, help="per workload and client count")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="service worker processes")
    ap.add_argument("--no-baseline", action="store_true", help="skip the direct DuckDB baseline")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args(argv)
    counts = [int(c) for c in args.clients.split(",")]

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    store = ensure_store(args.studies)
    db = BENCH_DIR / "service.sqlite"
    db.unlink(missing_ok=True)
    workloads = {"filters+facets": filtered_params, "keyword": keyword_params}
    results: dict = {}
    proc, url, key = start_service(store, db, args.workers)
    try:
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=120) as c:
            total = c.get("/api/studies", params={"page_size": 1}).json()["total"]
            for _ in range(4 * args.workers):  # every worker has built its indexes
                c.get("/api/studies", params={"page_size": 1})
        import psutil

        procs = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]

        def cpu() -> float:
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)

        for name, make in workloads.items():
            for n in counts:
                before = cpu()
                r = run_clients(n, args.seconds, http_call(url, key, make))
                # Service CPU per request: what the machine's cores must supply, whatever else runs.
                r["cpu_ms"] = (cpu() - before) * 1000 / max(1, r["n"])
                results[("service", name, n)] = r
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if not args.no_baseline:
        con = duckdb.connect(str(store), read_only=True)
        try:
            for name, make in workloads.items():
                for n in counts:
                    results[("duckdb", name, n)] = run_clients(n, args.seconds, duckdb_call(con, make))
        finally:
            con.close()

    targets = {"filters+facets": 150, "keyword": 300}
    print()
    print(f"{total:,} studies; service: {args.workers} worker process(es) sharing the read-only store; "
          f"{os.cpu_count()} CPUs; {args.seconds:.0f} s per cell; closed-loop clients, no think time")
    print(f"{'workload':<16} {'clients':>7} | {'service p50':>11} {'p95':>6} {'req/s':>6} {'CPU ms/req':>10} "
          f"{'err':>4} | {'duckdb p50':>10} {'p95':>6} {'req/s':>6} | target p95")
    ok_all = True
    for name in workloads:
        for n in counts:
            s_ = results[("service", name, n)]
            d = results.get(("duckdb", name, n))
            ok = s_["p95"] < targets[name] and s_["errors"] == 0
            ok_all &= ok
            dtext = f"{d['p50']:>10.0f} {d['p95']:>6.0f} {d['rps']:>6.1f}" if d else f"{'-':>10} {'-':>6} {'-':>6}"
            print(f"{name:<16} {n:>7} | {s_['p50']:>11.0f} {s_['p95']:>6.0f} {s_['rps']:>6.1f} {s_['cpu_ms']:>10.1f} "
                  f"{s_['errors']:>4} | "
                  f"{dtext} | < {targets[name]} {'ok' if ok else 'MISSED'}")
    print(f"(load average at the end {os.getloadavg()[0]:.1f}; filters: 1-4 sidebar filters, varied pages; "
          "keyword: es/pt/en words, half with a modality)")
    if args.json:
        Path(args.json).write_text(json.dumps({"total": total, "workers": args.workers, "results": [
            {"engine": k[0], "workload": k[1], "clients": k[2], **v} for k, v in results.items()]}, indent=1))
    return 0 if ok_all else 1


if __name__ == "__main__":
    raise SystemExit(main())
