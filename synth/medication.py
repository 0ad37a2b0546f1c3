"""Sample medication orders for issue 17: patients, diagnoses, prescribers,
order histories, and new orders with planted errors of each kind, plus a truth file.

``generate(out, patients=..., seed=...)`` writes
  history.jsonl  past orders (clean: what ``sta rx load-history`` loads)
  orders.jsonl   new orders to check; about ``error_rate`` of them carry one planted error
  truth.json     order_id -> "clean" or the error kind
  spoken.json    a few dictated orders (es/pt) with the fields they must parse to
Error kinds: ``x10`` and ``x0.1`` (dose), ``mg_mcg`` (mg written mcg or the other
way), ``decimal_slip`` (a decimal comma moved or lost: "2,5" -> "25"),
``look_alike`` (the drug swapped for its look-alike name, same dose),
``wrong_frequency`` ("every 8 hours" taken as 8 a day).

Also here, for tests and the demo: ``PlanServer``, a local health-plan API
speaking the JSON format of ``medication.healthplan``; and ``demo_summary()``
for ``make demo``.

Same seed, same files: every patient draws from its own seeded generator.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from synth.rng import rng

ERROR_KINDS = ("x10", "x0.1", "mg_mcg", "decimal_slip", "look_alike", "wrong_frequency")
DOSE_KINDS = ("x10", "x0.1", "mg_mcg", "decimal_slip")  # the held-out target kinds


@dataclass(frozen=True)
class Regimen:
    drug: str                    # catalogue id, or a name outside the catalogue
    doses: tuple[float, ...]     # adult single doses
    unit: str
    freqs: tuple[float, ...]
    chronic: bool
    per_kg: tuple[float, float] | None = None   # children: mg/kg/day
    names: tuple[str, ...] = ()  # spellings for drugs outside the catalogue


# diagnosis -> regimens (WHO Model Formulary usual doses; see include/medication/drugs.yaml)
REGIMENS: dict[str, list[Regimen]] = {
    "I10": [Regimen("enalapril", (5, 10, 20), "mg", (1, 2), True), Regimen("losartan", (50, 100), "mg", (1,), True),
            Regimen("amlodipine", (5, 10), "mg", (1,), True), Regimen("hydrochlorothiazide", (12.5, 25), "mg", (1,), True),
            Regimen("hydralazine", (25, 50), "mg", (2, 3), True)],
    "E11": [Regimen("metformin", (500, 850, 1000), "mg", (2, 3), True), Regimen("glibenclamide", (2.5, 5), "mg", (1, 2), True),
            Regimen("sitagliptin", (50, 100), "mg", (1,), True, names=("sitagliptina", "Januvia"))],
    "E03": [Regimen("levothyroxine", (50, 75, 88, 100, 125), "mcg", (1,), True)],
    "E10": [Regimen("insulin_glargine", (14, 18, 22, 26, 30), "IU", (1,), True)],
    "I48": [Regimen("warfarin", (2.5, 5), "mg", (1,), True), Regimen("digoxin", (0.125, 0.25), "mg", (1,), True)],
    "I25": [Regimen("acetylsalicylic_acid", (100,), "mg", (1,), True), Regimen("atorvastatin", (20, 40, 80), "mg", (1,), True),
            Regimen("clopidogrel", (75,), "mg", (1,), True),
            Regimen("ranolazine", (500, 1000), "mg", (2,), True, names=("ranolazina", "Ranexa"))],
    "E78": [Regimen("simvastatin", (20, 40), "mg", (1,), True), Regimen("atorvastatin", (10, 20, 40), "mg", (1,), True)],
    "F32": [Regimen("sertraline", (50, 100), "mg", (1,), True), Regimen("fluoxetine", (20, 40), "mg", (1,), True)],
    "F41": [Regimen("clonazepam", (0.5, 1), "mg", (1, 2), True), Regimen("alprazolam", (0.25, 0.5), "mg", (2, 3), True),
            Regimen("hydroxyzine", (25,), "mg", (2, 3), False)],
    "G40": [Regimen("carbamazepine", (200, 400), "mg", (2, 3), True, per_kg=(10, 20)),
            Regimen("valproic_acid", (250, 500), "mg", (2, 3), True, per_kg=(15, 30)),
            Regimen("levetiracetam", (500, 1000), "mg", (2,), True, per_kg=(20, 40))],
    "G62": [Regimen("pregabalin", (75, 150), "mg", (2,), True, names=("pregabalina", "Lyrica")),
            Regimen("gabapentin", (300, 600), "mg", (3,), True)],
    "J45": [Regimen("salbutamol", (2,), "puff", (3, 4), True), Regimen("montelukast", (10,), "mg", (1,), True)],
    "K21": [Regimen("omeprazole", (20, 40), "mg", (1,), True, per_kg=(0.8, 1.2)), Regimen("pantoprazole", (40,), "mg", (1,), True)],
    "E55": [Regimen("cholecalciferol", (1000, 2000), "IU", (1,), True, per_kg=None)],
    "J02": [Regimen("amoxicillin", (500,), "mg", (3,), False, per_kg=(40, 60)),
            Regimen("azithromycin", (500,), "mg", (1,), False, per_kg=(10, 10))],
    "J18": [Regimen("amoxicillin", (1000,), "mg", (3,), False, per_kg=(80, 90)),
            Regimen("clarithromycin", (500,), "mg", (2,), False, per_kg=(15, 15))],
    "H66": [Regimen("amoxicillin", (500,), "mg", (3,), False, per_kg=(80, 90))],
    "N30": [Regimen("nitrofurantoin", (100,), "mg", (2,), False), Regimen("ciprofloxacin", (250, 500), "mg", (2,), False)],
    "R50": [Regimen("paracetamol", (500, 1000), "mg", (3, 4), False, per_kg=(45, 60)),
            Regimen("ibuprofen", (400, 600), "mg", (3,), False, per_kg=(20, 30)),
            Regimen("metamizole", (500, 1000), "mg", (3, 4), False, per_kg=(30, 50))],
    "M54": [Regimen("diclofenac", (50,), "mg", (2, 3), False), Regimen("tramadol", (50,), "mg", (3, 4), False),
            Regimen("naproxen", (250, 500), "mg", (2,), False)],
    "R11": [Regimen("ondansetron", (4, 8), "mg", (2, 3), False, per_kg=(0.3, 0.45)),
            Regimen("metoclopramide", (10,), "mg", (3,), False)],
    "L50": [Regimen("loratadine", (10,), "mg", (1,), False), Regimen("cetirizine", (10,), "mg", (1,), False)],
    "I50": [Regimen("furosemide", (20, 40, 80), "mg", (1, 2), True), Regimen("carvedilol", (6.25, 12.5, 25), "mg", (2,), True),
            Regimen("spironolactone", (25, 50), "mg", (1,), True)],
    "M10": [Regimen("allopurinol", (100, 300), "mg", (1,), True)],
    "D52": [Regimen("folic_acid", (1, 5), "mg", (1,), True)],
    "B82": [Regimen("albendazole", (400,), "mg", (1,), False)],
}
CHILD_DX = ("J02", "J18", "H66", "R50", "R11", "G40", "K21", "L50", "B82")
ADULT_DX = tuple(REGIMENS)
UNIT_SPELLINGS = {"mg": ("mg", "mg", "mg", "miligramos", "MG", "mgs"), "mcg": ("mcg", "µg", "ug", "mcg", "microgramos"),
                  "IU": ("UI", "IU", "UI", "unidades"), "puff": ("puffs", "inhalaciones", "jatos")}
PRESCRIBERS = [f"DR-{i:03d}" for i in range(1, 9)]


def _names(drug_id: str, regimen: Regimen) -> list[str]:
    if regimen.names:
        return list(regimen.names)
    from medication.catalogue import default_catalogue

    d = default_catalogue().drugs[drug_id]
    return [*d.names, *d.brands[:2]]


def _weight(r, age: float) -> float:  # noqa: ANN001
    if age < 1:
        w = 3.5 + 6.0 * age
    elif age < 13:
        w = 8.0 + 2.6 * age
    else:
        w = r.gauss(72, 13)
    return round(max(2.5, w * r.uniform(0.85, 1.15)), 1)


def _round_dose(x: float) -> float:
    if x >= 100:
        return round(x / 25) * 25
    if x >= 10:
        return round(x / 5) * 5
    if x >= 1:
        return round(x * 2) / 2
    return round(x, 3)


def _patient(seed: int, i: int) -> dict[str, Any]:
    r = rng(seed, "rx-patient", i)
    child = r.random() < 0.22
    age = round(r.uniform(1, 12), 1) if child else round(min(95, max(16, r.gauss(52, 18))), 0)
    sex = r.choice("MF")
    dxs = [r.choice(CHILD_DX)] if child else r.sample(ADULT_DX, k=r.choice((1, 1, 2, 2, 3)))
    return {"patient_id": f"HC-{seed % 1000:03d}-{i:05d}", "age": age, "sex": sex, "weight_kg": _weight(r, age),
            "diagnoses": dxs, "email": f"patient{i}@example.org"}


def _pick(r, p: dict, dx: str) -> Regimen:  # noqa: ANN001
    """Children get only regimens with a paediatric dose (per kg, or the antihistamines' fixed 5 mg)."""
    regs = REGIMENS[dx]
    if p["age"] < 12:
        regs = [g for g in regs if g.per_kg or g.drug in ("loratadine", "cetirizine")] or regs
    return r.choice(regs)


def _regimen_order(r, p: dict, dx: str, reg: Regimen) -> dict[str, Any]:  # noqa: ANN001
    freq = r.choice(reg.freqs)
    if p["age"] < 12 and reg.per_kg:
        daily = p["weight_kg"] * r.uniform(*reg.per_kg)
        dose = _round_dose(daily / freq)
    elif p["age"] < 12 and reg.drug in ("loratadine", "cetirizine"):
        dose = 5.0
    else:
        dose = r.choice(reg.doses)
    return {"drug_id": reg.drug, "dose": dose, "unit": reg.unit, "freq": freq, "dx": dx, "reg": reg}


def _line(r, oid: str, p: dict, o: dict, when: date, prescriber: str) -> dict[str, Any]:  # noqa: ANN001
    unit = r.choice(UNIT_SPELLINGS.get(o["unit"], (o["unit"],)))
    dose: Any = o["dose"]
    if isinstance(dose, float) and not dose.is_integer() and r.random() < 0.4:
        dose = f"{dose:g}".replace(".", ",")  # decimal comma as written in es/pt
    elif isinstance(dose, float) and dose.is_integer():
        dose = int(dose)
    dx = o["dx"] + (r.choice(("", ".0", ".9")) if len(o["dx"]) == 3 else "")
    return {"order_id": oid, "patient_id": p["patient_id"], "age": p["age"], "sex": p["sex"],
            "weight_kg": p["weight_kg"], "diagnosis": dx, "drug": r.choice(_names(o["drug_id"], o["reg"])),
            "dose": dose, "unit": unit, "frequency_per_day": o["freq"],
            "duration_days": 30 if o["reg"].chronic else r.choice((5, 7, 10)), "date": when.isoformat(),
            "prescriber_id": prescriber}


def _plant(r, line: dict, o: dict, kind: str) -> dict | None:  # noqa: ANN001
    from medication.catalogue import default_catalogue

    cat = default_catalogue()
    d = float(o["dose"])
    out = dict(line)
    if kind == "x10":
        out["dose"] = _num(d * 10)
    elif kind == "x0.1":
        out["dose"] = _num(d / 10)
    elif kind == "mg_mcg":
        if o["unit"] == "mg":
            out["unit"] = r.choice(("mcg", "µg", "ug"))
        elif o["unit"] == "mcg":
            out["unit"] = r.choice(("mg", "miligramos"))
        else:
            return None
    elif kind == "decimal_slip":
        s = f"{d:g}"
        if "." in s:            # "2.5" -> "25", "0.125" -> "0125" (read 125)
            out["dose"] = s.replace(".", "")
        elif d >= 10:           # "500" -> "50,0" (a comma where a zero was)
            out["dose"] = s[:-1] + "," + s[-1]
        else:
            return None
        if float(str(out["dose"]).replace(",", ".")) in (d,):
            return None
    elif kind == "look_alike":
        drug = cat.drugs.get(o["drug_id"])
        if drug is None or not drug.look_alike:
            return None
        other = cat.drugs[drug.look_alike[0]]
        if other.indicated_for(o["dx"]):
            return None
        out["drug"] = r.choice(other.names[:2])
    elif kind == "wrong_frequency":
        f = o["freq"]
        hours = 24 / f
        if hours >= 24 or hours < 6:
            return None
        out["frequency_per_day"] = hours
    return out


def _num(x: float) -> float | int:
    x = round(x, 6)
    return int(x) if float(x).is_integer() else x


def generate(out: Path | str, patients: int = 400, seed: int = 7, error_rate: float = 0.12,
             start: date = date(2024, 1, 1), check_from: date = date(2025, 7, 1)) -> dict[str, Any]:
    """Write history.jsonl, orders.jsonl, truth.json and spoken.json into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict] = []
    orders: list[dict] = []
    truth: dict[str, str] = {}
    contacts: dict[str, str] = {}
    n_hist = n_new = 0
    for i in range(patients):
        p = _patient(seed, i)
        r = rng(seed, "rx-orders", i)
        contacts[p["patient_id"]] = p["email"]
        prescriber = r.choice(PRESCRIBERS)
        for dx in p["diagnoses"]:
            reg = _pick(r, p, dx)
            o = _regimen_order(r, p, dx, reg)
            if reg.chronic:
                when = start + timedelta(days=r.randint(0, 60))
                while when < check_from:
                    if r.random() < 0.05 and len(reg.doses) > 1 and p["age"] >= 12:
                        # a legitimate titration to another usual dose: the new dose persists
                        o = dict(o, dose=r.choice([x for x in reg.doses if x != o["dose"]] or [o["dose"]]))
                    n_hist += 1
                    history.append(_line(r, f"H{seed}-{n_hist:06d}", p, o, when, prescriber))
                    when += timedelta(days=r.randint(25, 40))
                new_dates = [check_from + timedelta(days=r.randint(0, 150))]
            else:
                for _ in range(r.randint(1, 3)):
                    o2 = _regimen_order(r, p, dx, _pick(r, p, dx))
                    n_hist += 1
                    when = start + timedelta(days=r.randint(0, (check_from - start).days - 1))
                    history.append(_line(r, f"H{seed}-{n_hist:06d}", p, o2, when, r.choice(PRESCRIBERS)))
                new_dates = [check_from + timedelta(days=r.randint(0, 150)) for _ in range(r.randint(0, 2))]
                o = _regimen_order(r, p, dx, _pick(r, p, dx))
            for when in new_dates:
                n_new += 1
                oid = f"O{seed}-{n_new:06d}"
                line = _line(r, oid, p, o, when, prescriber)
                kind = "clean"
                if r.random() < error_rate:
                    for k in r.sample(ERROR_KINDS, len(ERROR_KINDS)):
                        planted = _plant(r, line, o, k)
                        if planted is not None:
                            line, kind = planted, k
                            break
                orders.append(line)
                truth[oid] = kind
    # a few more acute orders from new patients (no history at all)
    for j in range(max(5, patients // 10)):
        p = _patient(seed, 100000 + j)
        r = rng(seed, "rx-new", j)
        dx = p["diagnoses"][0]
        o = _regimen_order(r, p, dx, _pick(r, p, dx))
        n_new += 1
        oid = f"O{seed}-{n_new:06d}"
        line = _line(r, oid, p, o, check_from + timedelta(days=r.randint(0, 150)), r.choice(PRESCRIBERS))
        kind = "clean"
        if r.random() < error_rate:
            k = r.choice(DOSE_KINDS)
            planted = _plant(r, line, o, k)
            if planted is not None:
                line, kind = planted, k
        orders.append(line)
        truth[oid] = kind
    _write_jsonl(out / "history.jsonl", history)
    _write_jsonl(out / "orders.jsonl", orders)
    (out / "truth.json").write_text(json.dumps(truth, indent=1))
    (out / "contacts.json").write_text(json.dumps(contacts, indent=1))
    (out / "spoken.json").write_text(json.dumps(SPOKEN, indent=1, ensure_ascii=False))
    kinds: dict[str, int] = {}
    for k in truth.values():
        kinds[k] = kinds.get(k, 0) + 1
    return {"history": len(history), "orders": len(orders), "planted": {k: v for k, v in kinds.items() if k != "clean"},
            "clean": kinds.get("clean", 0), "dir": str(out)}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


SPOKEN = [
    {"lang": "es", "text": "amoxicilina quinientos miligramos cada ocho horas durante siete días",
     "expect": {"drug": "amoxicillin", "dose": 500, "unit": "mg", "frequency_per_day": 3, "duration_days": 7}},
    {"lang": "pt", "text": "dipirona quinhentos miligramas de seis em seis horas por cinco dias",
     "expect": {"drug": "metamizole", "dose": 500, "unit": "mg", "frequency_per_day": 4, "duration_days": 5}},
    {"lang": "es", "text": "levotiroxina setenta y cinco microgramos una vez al día, uso continuo",
     "expect": {"drug": "levothyroxine", "dose": 75, "unit": "mcg", "frequency_per_day": 1}},
    {"lang": "pt", "text": "losartana cinquenta miligramas uma vez ao dia durante trinta dias",
     "expect": {"drug": "losartan", "dose": 50, "unit": "mg", "frequency_per_day": 1, "duration_days": 30}},
    {"lang": "es", "text": "ibuprofeno cuatrocientos mg tres veces al día por una semana",
     "expect": {"drug": "ibuprofen", "dose": 400, "unit": "mg", "frequency_per_day": 3, "duration_days": 7}},
    {"lang": "pt", "text": "metformina oitocentos e cinquenta miligramas duas vezes ao dia, uso contínuo",
     "expect": {"drug": "metformin", "dose": 850, "unit": "mg", "frequency_per_day": 2}},
    {"lang": "es", "text": "enalapril diez mg BID", "expect": {"drug": "enalapril", "dose": 10, "unit": "mg",
                                                              "frequency_per_day": 2}},
    {"lang": "es", "text": "medio comprimido de clonazepam de dos miligramos por la noche",
     "expect": {"drug": "clonazepam", "dose": 0.5, "unit": "tablet", "frequency_per_day": 1}},
]


# -- the health-plan API for tests and the demo ------------------------------------------------------------
class PlanServer:
    """A health-plan formulary API on loopback, speaking ``medication.healthplan``'s JSON format.

    ``covered`` maps ATC prefixes to plan codes; anything else is not covered.
    Requests are kept in ``requests`` so tests can see what was asked.
    """

    def __init__(self, covered: dict[str, str] | None = None, require_token: str | None = None):
        self.covered = covered or {"J01": "POS-ANTIBIO", "C": "POS-CARDIO", "N02": "POS-ANALG", "A10": "POS-DIAB",
                                   "H03": "POS-TIRO", "B01": "POS-ANTICOAG"}
        self.require_token = require_token
        self.requests: list[dict] = []
        self._server: ThreadingHTTPServer | None = None
        self.url = ""

    def __enter__(self) -> "PlanServer":
        plan = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:  # noqa: D102 - quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                from medication.healthplan import CoverageRequest, coverage_for

                if plan.require_token and self.headers.get("Authorization") != f"Bearer {plan.require_token}":
                    return self._send(401, {"error": "unauthorized"})
                if self.path != "/v1/coverage":
                    return self._send(404, {"error": "not found"})
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                try:
                    req = CoverageRequest.model_validate(body)
                except Exception as exc:  # noqa: BLE001 - a 422 with the reason, like a real API
                    return self._send(422, {"error": str(exc)[:200]})
                plan.requests.append(body)
                return self._send(200, coverage_for(req, plan.covered).model_dump())

            def _send(self, status: int, obj: dict) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()


def score(decisions: list[dict], truth: dict[str, str]) -> dict[str, Any]:
    """Recall per planted kind and precision over all flags (verdict != ok)."""
    flagged = {d["order_id"] for d in decisions if d["verdict"] != "ok"}
    per_kind: dict[str, dict[str, float]] = {}
    for kind in ERROR_KINDS:
        ids = [o for o, k in truth.items() if k == kind]
        if ids:
            hit = sum(1 for o in ids if o in flagged)
            per_kind[kind] = {"n": len(ids), "caught": hit, "recall": round(hit / len(ids), 4)}
    dose_ids = [o for o, k in truth.items() if k in DOSE_KINDS]
    dose_hit = sum(1 for o in dose_ids if o in flagged)
    tp = sum(1 for o in flagged if truth.get(o, "clean") != "clean")
    fp = len(flagged) - tp
    fp_ids = sorted(o for o in flagged if truth.get(o, "clean") == "clean")
    return {"per_kind": per_kind, "dose_errors_recall": round(dose_hit / len(dose_ids), 4) if dose_ids else None,
            "precision": round(tp / len(flagged), 4) if flagged else None, "flagged": len(flagged),
            "false_positives": fp, "false_positive_ids": fp_ids[:20], "orders": len(decisions)}


def demo_summary(workdir: Path | str, patients: int = 300, seed: int = 7, say=print) -> dict[str, Any]:  # noqa: ANN001
    """For ``make demo``: generate, load history, train, check the new orders and print what was caught and why."""
    from medication.engine import Checker, read_jsonl
    from medication.store import OrderStore

    workdir = Path(workdir)
    summary = generate(workdir / "input", patients=patients, seed=seed)
    say(f"  generated {summary['history']} past orders and {summary['orders']} new ones "
        f"({sum(summary['planted'].values())} with planted errors: {summary['planted']})")
    store = OrderStore(workdir / "store")
    checker = Checker(store, load_model=False)
    loaded = checker.load_history(read_jsonl(workdir / "input" / "history.jsonl"))
    model = checker.train()
    say(f"  history loaded: {loaded['valid']} valid orders; population model {model.version} "
        f"({len(model.groups)} drug forests)")
    truth = json.loads((workdir / "input" / "truth.json").read_text())
    decisions = [checker.check(line) for line in read_jsonl(workdir / "input" / "orders.jsonl")]
    store.add_decisions([d.row() for d in decisions])
    shown = 0
    for d in decisions:
        kind = truth.get(d.order_id, "clean")
        if d.verdict != "ok" and shown < 12:
            why = "; ".join(f"{c.name}: {c.reason}" for c in d.anomalies())
            say(f"  {d.order_id} [{kind}] -> {d.verdict}: {why[:220]}")
            shown += 1
    result = score([d.as_dict() for d in decisions], truth)
    say(f"  caught per planted kind: " + ", ".join(f"{k} {v['caught']}/{v['n']}" for k, v in result["per_kind"].items()))
    say(f"  precision {result['precision']}, false positives {result['false_positives']} of {result['orders']} orders")
    result["store"] = str(store.dir)
    return result


def demo_workflow(store_dir: Path | str, say=print, answer: str = "Confirm") -> dict[str, str]:  # noqa: ANN001
    """Three orders through the ``medication_order`` DAG (``dag.test()``): one clean, one rejected, one
    anomalous that the prescriber answers (``answer``) through Airflow's REST API, as a person would in
    Required Actions. E-mail goes to an aiosmtpd server on loopback, the plan check to ``PlanServer``.

    Needs the Airflow metadata DB migrated (``make demo`` does it before the partner DAGs) and a store
    with a history and a model (``demo_summary`` makes one).
    """
    import email
    import email.policy
    import socket

    from aiosmtpd.controller import Controller

    class Box:
        def __init__(self) -> None:
            self.messages: list = []

        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001, ANN201, N802
            self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
            return "250 OK"

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    box = Box()
    smtp = Controller(box, hostname="127.0.0.1", port=port)
    smtp.start()
    saved = {k: os.environ.get(k) for k in ("STA_RX_STORE", "AIRFLOW_CONN_SMTP_DEFAULT", "AIRFLOW_CONN_HEALTH_PLAN_API")}
    results: dict[str, str] = {}
    try:
        with PlanServer() as plan:
            os.environ["STA_RX_STORE"] = str(Path(store_dir).resolve())
            os.environ["AIRFLOW_CONN_SMTP_DEFAULT"] = json.dumps(
                {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
                 "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "STA Rx <rx@sta.demo>"}})
            os.environ["AIRFLOW_CONN_HEALTH_PLAN_API"] = json.dumps(
                {"conn_type": "http", "host": "127.0.0.1", "port": int(plan.url.rsplit(":", 1)[1]), "schema": "http"})
            base = {"patient_id": "DEMO-P1", "age": 41, "sex": "F", "weight_kg": 66, "diagnosis": "J02.9",
                    "drug": "amoxicilina", "unit": "mg", "frequency_per_day": 3, "duration_days": 7,
                    "date": "2025-09-01", "prescriber_id": "DR-001", "patient_email": "demo.patient@example.org"}
            cases = [("DEMO-OK", {**base, "dose": 500}, None),
                     ("DEMO-REJECT", {**base, "dose": 500, "unit": "mcg"}, None),
                     ("DEMO-ANOMALY", {**base, "dose": 2000}, answer)]
            for oid, order, reply in cases:
                state, tasks = _demo_run({"order": {**order, "order_id": oid}}, reply)
                results[oid] = state
                say(f"  medication_order {oid}: run {state}; " + ", ".join(f"{t}={st}" for t, st in tasks))
            say(f"  e-mails sent: {len(box.messages)} (" + "; ".join(m["Subject"] for m in box.messages) + ")")
            say(f"  health-plan API asked {len(plan.requests)} time(s)")
    finally:
        smtp.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return results


def _demo_run(conf: dict, reply: str | None) -> tuple[str, list[tuple[str, str]]]:
    import time as _time

    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(Path(__file__).resolve().parent.parent / "dags" / "medication_order.py"))
    dag = bag.dags["medication_order"]
    stop = threading.Event()

    def answer() -> None:
        from fastapi.testclient import TestClient

        from airflow.api_fastapi.app import create_app

        client = TestClient(create_app(apps="core"))
        deadline = _time.monotonic() + 120
        while not stop.is_set() and _time.monotonic() < deadline:
            r = client.get("/api/v2/dags/~/dagRuns/~/hitlDetails", params={"response_received": False})
            pending = [h for h in r.json().get("hitl_details", []) if h["task_instance"]["dag_id"] == dag.dag_id]
            if pending:
                ti = pending[0]["task_instance"]
                _time.sleep(1.0)
                client.patch(f"/api/v2/dags/{dag.dag_id}/dagRuns/{ti['dag_run_id']}/taskInstances/{ti['task_id']}/"
                             f"{ti['map_index']}/hitlDetails", json={"chosen_options": [reply], "params_input": {}})
                return
            _time.sleep(0.5)

    thread = threading.Thread(target=answer, daemon=True) if reply else None
    if thread:
        os.environ.setdefault("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
        thread.start()
    try:
        dr = dag.test(run_conf=conf)
    finally:
        stop.set()
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag.dag_id,
                                                 TaskInstance.run_id == dr.run_id).all()
        ran = [(t.task_id, str(t.state)) for t in tis if str(t.state) == "success" and t.task_id != "end"]
    return str(dr.state), ran


def main(argv: list[str] | None = None) -> int:
    """``python -m synth.medication OUT [--patients N] [--seed S]``."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m synth.medication", description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--patients", type=int, default=400)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--error-rate", type=float, default=0.12)
    args = ap.parse_args(argv)
    print(json.dumps(generate(args.out, patients=args.patients, seed=args.seed, error_rate=args.error_rate)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
