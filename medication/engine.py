"""One decision per order: validation, then every check, then a verdict.

``Checker`` holds the catalogue, the loaded history (indexed by patient token
and drug) and the latest population model; ``sta rx check``, the DAG's tasks
and the API all go through it, so an order gets the same verdict everywhere.

Verdict: ``rejected`` when validation fails; ``anomaly`` when any check finds
one; ``ok`` otherwise. A drug outside the catalogue but present in the loaded
history is checked against history and population; one that is in neither is
rejected as unknown (nothing to check it against).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from medication import checks as C
from medication.catalogue import Catalogue, default_catalogue
from medication.order import Order, OrderIn, keyring_for, tokenize
from medication.population import DOSE_GATE, PopulationModel, train
from medication.resolve import Resolver
from medication.store import OrderStore


@dataclass
class Decision:
    order_id: str
    verdict: str
    checks: list[C.Check]
    model_version: str | None
    normalised: C.Normalised | None = None
    stage: str = "check"
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The interface's output line: order_id, verdict, checks[name, result, score, reason] (+ model_version)."""
        return {"order_id": self.order_id, "verdict": self.verdict, "checks": [c.as_dict() for c in self.checks],
                "model_version": self.model_version}

    def anomalies(self) -> list[C.Check]:
        return [c for c in self.checks if c.result in ("anomaly", "fail")]

    def row(self) -> dict[str, Any]:
        n = self.normalised
        o = n.order if n else None
        return {"order_id": self.order_id, "stage": self.stage, "verdict": self.verdict,
                "checks": [c.as_dict() for c in self.checks], "model_version": self.model_version,
                "drug_key": n.drug_key if n else None, "dx_group": n.dx_group if n else None,
                "daily_dose": n.daily_dose if n else None, "dose_unit": n.dose_unit if n else None,
                "order_date": o.date if o else None, "prescriber_id": o.prescriber_id if o else None,
                "age": o.age if o else None, "sex": o.sex if o else None, "weight_kg": o.weight_kg if o else None}


def verdict_of(checks: list[C.Check]) -> str:
    if any(c.result == "fail" for c in checks):
        return "rejected"
    if any(c.result == "anomaly" for c in checks):
        return "anomaly"
    return "ok"


class Checker:
    def __init__(self, store: OrderStore, catalogue: Catalogue | None = None, model: PopulationModel | None = None,
                 load_model: bool = True, bulk: bool = True):
        """``bulk``: index the whole history in memory (the CLI checking thousands of orders); otherwise
        each order reads only its patient's history from the store (the API, the DAG's tasks)."""
        self.bulk = bulk
        self.store = store
        self.catalogue = catalogue or default_catalogue()
        self.resolver = Resolver(self.catalogue)
        self.keyring = keyring_for(store.dir)
        self.model = model
        if model is None and load_model:
            latest = store.latest_model()
            if latest and latest[1].exists():
                self.model = PopulationModel.load(latest[1])
        self._history: dict[tuple[str, str, str], list[tuple[date, float, bool, str]]] | None = None
        self._known: set[str] = set()

    # -- history -------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Forget what was read from the history (it grows as orders are recorded or loaded)."""
        self._history = None

    def _index(self) -> None:
        if self._history is not None:
            return
        if not self.bulk:
            self._history = {}
            self._known = self.store.drug_keys() | ({g.key for g in self.model.groups.values()} if self.model else set())
            return
        df = self.store.history_frame(valid_only=True)
        idx: dict[tuple[str, str, str], list] = defaultdict(list)
        for tok, key, unit, d, dd, perm, oid in zip(df["patient_token"], df["drug_key"], df["dose_unit"],
                                                    df["order_date"], df["daily_dose"], df["permanent"],
                                                    df["order_id"]):
            dt = d.date() if hasattr(d, "date") else d
            idx[(tok, key, unit)].append((dt, float(dd), bool(perm), oid))
        self._history = idx
        self._known = set(df["drug_key"].unique().tolist())
        if self.model:
            self._known |= {g.key for g in self.model.groups.values()}

    def normalise_line(self, raw: dict[str, Any] | OrderIn, origin: str = "load") -> dict[str, Any]:
        """A history line -> a store row (tokenized; invalid lines kept with their reason, excluded from use)."""
        order = tokenize(raw if isinstance(raw, OrderIn) else OrderIn.model_validate(raw), self.keyring)
        check, n = C.validate(order, self.catalogue, self.resolver, _AnyKey())
        row = {"order_id": order.order_id, "patient_token": order.patient_token, "age": order.age, "sex": order.sex,
               "weight_kg": order.weight_kg, "diagnosis": order.diagnosis, "drug_text": order.drug_text,
               "dose": order.dose, "unit": order.unit_text, "frequency_per_day": order.frequency_per_day,
               "duration_days": order.duration_days, "order_date": order.date, "prescriber_id": order.prescriber_id,
               "permanent": order.permanent, "valid": n is not None, "reason": None if n else check.reason,
               "origin": origin, "loaded_at": datetime.now(timezone.utc).replace(tzinfo=None)}
        if n is not None:
            row.update(dx_group=n.dx_group, drug_key=n.drug_key, atc=n.drug.atc if n.drug else None,
                       daily_dose=n.daily_dose, dose_unit=n.dose_unit, diagnosis=n.diagnosis)
        return row

    def load_history(self, lines: Iterable[dict[str, Any]], origin: str = "load") -> dict[str, int]:
        rows = [self.normalise_line(line, origin) for line in lines]
        self.store.add_history(rows)
        self.refresh()
        bad = sum(1 for r in rows if not r["valid"])
        return {"lines": len(rows), "valid": len(rows) - bad, "invalid": bad}

    def train(self) -> PopulationModel:
        df = self.store.history_frame(valid_only=True)
        if df.empty:
            raise ValueError("no valid history loaded: run `sta rx load-history FILE.jsonl` first")
        model = train(df)
        path = self.store.models_dir / f"{model.version}.json"
        model.save(path)
        self.store.register_model(model.version, len(df), len(model.groups), path)
        self.model = model
        self.refresh()
        return model

    # -- checking ------------------------------------------------------------------------------------
    def tokenize(self, raw: dict[str, Any] | OrderIn, source: str = "json") -> Order:
        return tokenize(raw if isinstance(raw, OrderIn) else OrderIn.model_validate(raw), self.keyring,
                        source=source)

    def validate(self, order: Order) -> tuple[C.Check, C.Normalised | None]:
        self._index()
        return C.validate(order, self.catalogue, self.resolver, self._known)

    def history_check(self, n: C.Normalised) -> C.Check:
        self._index()
        assert self._history is not None
        rows = (self._history.get((n.order.patient_token, n.drug_key, n.dose_unit), []) if self.bulk
                else self.store.prior_orders(n.order.patient_token or "", n.drug_key, n.dose_unit))
        prior = [(d, float(v), bool(p)) for d, v, p, oid in rows
                 if oid != n.order.order_id and (n.order.date is None or d <= n.order.date)]
        return C.history(n, prior, self.catalogue)

    def population_checks(self, n: C.Normalised) -> list[C.Check]:
        """The diagnosis-and-profile checks: catalogue range, frequency, look-alike, and the forest."""
        m = self.model
        shares = m.pair_share.get(n.drug_key) if m else None
        out = [C.dose_range(n, self.catalogue),
               C.frequency(n, m.freq_max.get(n.drug_key) if m else None),
               C.look_alike(n, self.catalogue, shares.get(n.dx_group, 0.0) if shares else None)]
        if m is None:
            out.append(C.Check("population", "skip", None, "no population model: run `sta rx train`"))
            return out
        g = m.group(n.drug_key, n.dose_unit)
        if g is None:
            out.append(C.Check("population", "skip", None,
                               f"too few orders of {n.drug_name} in {n.dose_unit} in the history for a model"))
            return out
        o = n.order
        lo, expected, hi = g.neighbours(o.age, o.weight_kg, n.dx_group)
        ratio = n.daily_dose / expected
        off = n.daily_dose > hi * DOSE_GATE * 1.001 or n.daily_dose < lo / DOSE_GATE / 1.001
        like = (f"{C.fmt(n.daily_dose, n.dose_unit)}/day is {ratio:.2g}x the median of comparable orders "
                f"({n.drug_name}, {n.dx_group or 'any diagnosis'}: {C.fmt(expected, n.dose_unit)}/day, "
                f"p3-p97 {C.fmt(lo, n.dose_unit)}-{C.fmt(hi, n.dose_unit)})")
        forest = g.forest()
        if forest is None:
            out.append(C.Check("population", "anomaly" if off else "pass", ratio,
                               f"{like}; {g.n} orders: too few for a forest, compared with the range "
                               f"(beyond {DOSE_GATE:g}x is an anomaly)"))
            return out
        score = g.score(n.daily_dose, o.age, o.sex, o.weight_kg, n.dx_group)
        flagged = score > g.threshold and off
        out.append(C.Check("population", "anomaly" if flagged else "pass", score,
                           f"RCF score {score:.2f} (threshold {g.threshold:.2f}, {g.n} orders); {like}"))
        return out

    def check(self, raw: dict[str, Any] | OrderIn | Order, source: str = "json") -> Decision:
        order = raw if isinstance(raw, Order) else self.tokenize(raw, source)
        v, n = self.validate(order)
        version = self.model.version if self.model else None
        if n is None:
            return Decision(order.order_id, "rejected", [v], version)
        checks = [v, self.history_check(n), *self.population_checks(n)]
        return Decision(order.order_id, verdict_of(checks), checks, version, n)


class _AnyKey(frozenset):
    """History lines: a drug outside the catalogue is accepted as given (that is what the history is)."""

    def __contains__(self, item: object) -> bool:  # noqa: D105
        return True


def read_jsonl(path: Path) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {i}: not JSON ({exc.msg})") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{path}: line {i}: not a JSON object")
            yield obj
