"""Medication-order checks: ``.venv/bin/python bench/bench_rx.py``.

Two generated sets, each loaded and checked through the CLI exactly as the
held-out check does (``sta rx load-history`` -> ``sta rx train`` ->
``sta rx check --json``), in subprocesses:
  synth     ``synth.medication`` (es/pt names, brands, salts, decimal commas,
            children dosed per kg, titrations, drugs outside the catalogue)
  other     an independently written generator in this file (English/US names
            and brands, weight-based adult dosing, other drugs outside the
            catalogue, other error mix) - a stand-in for a held-out set
For each: recall per planted error kind, recall on the target kinds (10x, 0.1x,
mg<->mcg, decimal slip) and precision, beside the target (>= 0.95 / >= 0.95),
and beside baselines computed from the same output lines: the catalogue's
rules alone (validation, dose range, frequency, look-alike), all checks but the
forest, all checks but the patient's history. Then throughput: orders checked per second by the CLI on N copies
of the orders (process start-up and model load included, and without them).

Options: ``--patients N``, ``--seed S``, ``--repeat R`` (copies for throughput).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from synth.medication import DOSE_KINDS, generate, score  # noqa: E402

TARGET = 0.95


CPU: dict[str, float] = {}


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def sta(store: Path, *args: str) -> tuple[str, float]:
    """Run ``sta rx ...``; wall seconds returned, CPU seconds of the child kept in ``CPU['last']``."""
    env = {**os.environ, "STA_RX_STORE": str(store), "OMP_THREAD_LIMIT": "1"}
    env.setdefault("STA_SECRET_KEY", "bench-key-" + "0" * 32)
    c0 = _children_cpu()
    t0 = time.perf_counter()
    cp = subprocess.run([sys.executable, "-m", "sta.cli", "rx", *args], capture_output=True, text=True, env=env,
                        cwd=PROJECT, timeout=1800)
    if cp.returncode != 0:
        raise SystemExit(f"sta rx {args[0]} failed: {cp.stderr[-2000:]}")
    CPU["last"] = _children_cpu() - c0
    return cp.stdout, time.perf_counter() - t0


def only(lines: list[dict], names: set[str]) -> list[dict]:
    """The verdict the same orders would get from a subset of the checks."""
    out = []
    for line in lines:
        cs = [c for c in line["checks"] if c["name"] in names]
        v = "rejected" if any(c["result"] == "fail" for c in cs) else \
            "anomaly" if any(c["result"] == "anomaly" for c in cs) else "ok"
        out.append({"order_id": line["order_id"], "verdict": v})
    return out


ALL = {"validation", "dose_range", "frequency", "look_alike", "history", "population"}
BASELINES = {"catalogue only": {"validation", "dose_range", "frequency", "look_alike"},
             "no forest": ALL - {"population"}, "no history": ALL - {"history"}}


def evaluate(name: str, data: Path, work: Path) -> dict:
    store = work / f"store-{name}"
    out, t_load = sta(store, "load-history", str(data / "history.jsonl"))
    loaded = json.loads(out)
    out, t_train = sta(store, "train")
    trained = json.loads(out)
    out, t_check = sta(store, "check", str(data / "orders.jsonl"), "--json", "--no-record")
    lines = [json.loads(x) for x in out.splitlines()]
    truth = json.loads((data / "truth.json").read_text())
    full = score(lines, truth)
    base = {k: score(only(lines, names), truth) for k, names in BASELINES.items()}
    print(f"\n--- {name}: {loaded['valid']} history orders, {len(lines)} orders to check "
          f"({sum(1 for v in truth.values() if v != 'clean')} planted); load {t_load:.1f}s, train {t_train:.1f}s "
          f"({trained['forests']} forests, {trained['model_version']}), check {t_check:.1f}s")
    print(f"{'planted kind':<18}{'n':>5}{'all checks':>12}" + "".join(f"{k:>16}" for k in BASELINES))
    for kind, v in full["per_kind"].items():
        print(f"{kind:<18}{v['n']:>5}{v['recall']:>12.3f}"
              + "".join(f"{b['per_kind'][kind]['recall']:>16.3f}" for b in base.values()))
    print(f"{'target kinds recall':<23}{full['dose_errors_recall']:>12.3f}"
          + "".join(f"{b['dose_errors_recall']:>16.3f}" for b in base.values()) + f"   target >= {TARGET}")
    print(f"{'precision':<23}{full['precision']:>12.3f}"
          + "".join(f"{b['precision'] or 0:>16.3f}" for b in base.values()) + f"   target >= {TARGET}")
    print(f"false positives (all checks): {full['false_positives']} of {len(lines)} "
          f"{full['false_positive_ids'][:5]}")
    ok = full["dose_errors_recall"] >= TARGET and full["precision"] >= TARGET
    return {"name": name, "recall": full["dose_errors_recall"], "precision": full["precision"], "ok": ok,
            "store": store, "orders": data / "orders.jsonl", "n": len(lines), "check_s": t_check}


def throughput(store: Path, orders: Path, repeat: int, work: Path) -> None:
    lines = orders.read_text().splitlines()
    big = work / "orders_x.jsonl"
    with open(big, "w") as fh:
        for r in range(repeat):
            for line in lines:
                o = json.loads(line)
                o["order_id"] = f"{o['order_id']}-{r}"
                fh.write(json.dumps(o) + "\n")
    n = len(lines) * repeat
    _, t_small = sta(store, "check", str(orders), "--json", "--no-record")
    c_small = CPU["last"]
    _, t_big = sta(store, "check", str(big), "--json", "--no-record")
    c_big = CPU["last"]
    per = (t_big - t_small) / (n - len(lines))
    print(f"\n--- throughput (sta rx check --json, one process, {os.cpu_count()} cores shared)")
    print(f"{len(lines)} orders: {t_small:.2f}s = {len(lines) / t_small:.0f} orders/s including start-up and model load")
    print(f"{n} orders: {t_big:.2f}s = {n / t_big:.0f} orders/s including start-up; "
          f"marginal {1 / per:.0f} orders/s ({per * 1000:.2f} ms/order) once loaded")
    cper = (c_big - c_small) / (n - len(lines))
    print(f"CPU time (steadier on a shared machine): {c_small:.2f} s for {len(lines)}, {c_big:.2f} s for {n}; "
          f"marginal {1 / cper:.0f} orders per CPU-second ({cper * 1000:.2f} ms)")


# ---------------------------------------------------------------- an independently styled generator
OTHER = [
    (["Metformin", "Glucophage", "Metformin HCl"], "E11.9", [500, 850, 1000], [1, 2, 3], None, "mg"),
    (["Lisinopril", "Zestril", "Prinivil"], "I10", [5, 10, 20, 40], [1], None, "mg"),
    (["Atorvastatin", "Lipitor"], "E78.5", [10, 20, 40, 80], [1], None, "mg"),
    (["Levothyroxine", "Synthroid", "Levoxyl"], "E03.9", [25, 50, 75, 88, 100, 125, 150], [1], None, "mcg"),
    (["Amoxicillin", "Amoxil"], "J01.90", [250, 500, 875], [2, 3], (25, 45), "mg"),
    (["Ibuprofen", "Advil", "Motrin"], "M25.50", [200, 400, 600, 800], [3, 4], (20, 40), "mg"),
    (["Acetaminophen", "Tylenol"], "R50.9", [325, 500, 650, 1000], [3, 4], (40, 60), "mg"),
    (["Omeprazole", "Prilosec"], "K21.9", [20, 40], [1, 2], None, "mg"),
    (["Sertraline", "Zoloft"], "F32.9", [25, 50, 100, 150], [1], None, "mg"),
    (["Gabapentin", "Neurontin"], "G62.9", [100, 300, 600], [3], None, "mg"),
    (["Prednisone", "Deltasone"], "J45.909", [5, 10, 20, 40], [1], (1, 2), "mg"),
    (["Warfarin", "Coumadin", "Jantoven"], "I48.91", [1, 2, 2.5, 5, 7.5], [1], None, "mg"),
    (["Enoxaparin", "Lovenox"], "I82.409", None, [2], (1.6, 2.0), "mg"),
    (["Insulin glargine", "Lantus", "Basaglar"], "E10.9", None, [1], (0.3, 0.6), "units"),
    (["Losartan", "Cozaar"], "I10", [25, 50, 100], [1], None, "mg"),
    (["Tamsulosin", "Flomax"], "N40.0", [0.4, 0.8], [1], None, "mg"),
    (["Apixaban", "Eliquis"], "I48.91", [2.5, 5], [2], None, "mg"),
    (["Furosemide", "Lasix"], "I50.9", [20, 40, 80], [1, 2], (1, 2), "mg"),
    (["Hydrochlorothiazide", "HCTZ", "Microzide"], "I10", [12.5, 25], [1], None, "mg"),
    (["Vitamin D3", "Cholecalciferol"], "E55.9", [1000, 2000, 5000], [1], None, "IU"),
]


def generate_other(out: Path, patients: int, seed: int) -> None:
    rnd = random.Random(seed)
    hist, orders, truth, n = [], [], {}, 0
    for i in range(patients):
        child = rnd.random() < 0.15
        age = rnd.randint(2, 11) if child else rnd.randint(18, 90)
        w = round((8 + 3 * age) * rnd.uniform(0.8, 1.2), 1) if child else round(max(40, rnd.gauss(78, 15)), 1)
        p = {"patient_id": f"MRN{seed}{i:06d}", "age": age, "sex": rnd.choice("MF"), "weight_kg": w}
        for _ in range(rnd.choice([1, 1, 2])):
            names, dx, levels, freqs, per_kg, unit = rnd.choice(OTHER)
            if child and per_kg is None:
                continue
            f = rnd.choice(freqs)
            if levels is None or child:
                d = round(w * rnd.uniform(*per_kg) / f, 1)
            else:
                d = rnd.choice(levels)
            start = date(2023, 1, 1) + timedelta(days=rnd.randint(0, 300))
            k = rnd.randint(1, 10)
            for j in range(k):
                n += 1
                hist.append({"order_id": f"H{n}", **p, "diagnosis": dx, "drug": rnd.choice(names), "dose": d,
                             "unit": unit, "frequency_per_day": f, "duration_days": 30,
                             "date": str(start + timedelta(days=30 * j)), "prescriber_id": f"NPI{rnd.randint(1, 40)}"})
            n += 1
            o = {"order_id": f"C{n}", **p, "diagnosis": dx, "drug": rnd.choice(names), "dose": d, "unit": unit,
                 "frequency_per_day": f, "duration_days": 30, "date": str(start + timedelta(days=30 * k + 5)),
                 "prescriber_id": f"NPI{rnd.randint(1, 40)}"}
            kind = "clean"
            if rnd.random() < 0.15:
                kind = rnd.choice(DOSE_KINDS)
                if kind in ("x10", "decimal_slip") and rnd.random() < (1.0 if kind == "x10" else 0.5):
                    o["dose"] = round(d * 10, 4)
                elif kind in ("x0.1", "decimal_slip"):
                    o["dose"] = round(d / 10, 4)
                elif unit in ("mg", "mcg"):
                    o["unit"] = {"mg": "mcg", "mcg": "mg"}[unit]
                else:
                    kind = "clean"
            orders.append(o)
            truth[o["order_id"]] = kind
    out.mkdir(parents=True, exist_ok=True)
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in hist))
    (out / "orders.jsonl").write_text("".join(json.dumps(o) + "\n" for o in orders))
    (out / "truth.json").write_text(json.dumps(truth))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--patients", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--repeat", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-rx-") as tmp:
        work = Path(tmp)
        generate(work / "synth", patients=args.patients, seed=args.seed)
        generate_other(work / "other", patients=args.patients, seed=args.seed + 1)
        results = [evaluate("synth", work / "synth", work), evaluate("other", work / "other", work)]
        throughput(results[0]["store"], results[0]["orders"], args.repeat, work)
    print("\nsummary: " + "; ".join(f"{r['name']} recall {r['recall']:.3f} precision {r['precision']:.3f} "
                                    f"({'meets' if r['ok'] else 'MISSES'} the 0.95/0.95 target)" for r in results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
