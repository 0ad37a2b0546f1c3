"""Population check: a Random Cut Forest per drug, trained on the loaded history.

Implementation: ``rcf3`` (Rust bindings, maintained in 2026; the AWS RCF
algorithm of the seed's SageMaker model, with deterministic seeds and JSON
serialisation of whole forests) rather than ``rrcf`` (pure Python, last
release 2023, ~100x slower to score). The forest's API fits: ``update`` to
train, ``score`` to read a point without changing the model, ``to_json`` to
version it.

Features per order (one forest per drug and dose unit):
  log10 daily dose, log10 daily dose per kg, age, sex, and the diagnosis group
  encoded as the drug's typical log10 dose for that ICD-10 category (shrunk to
  the drug's median when the category is rare). Encoding the diagnosis by the
  dose it usually gets keeps one dimension per categorical and lets a cut
  separate "100 mg aspirin for I25" from "3 g aspirin for M79".
Each feature is centred and scaled by its robust spread in the drug's
history; the dose dimensions carry extra weight because the errors this
model exists for (10x, 0.1x, unit slips) live there.

Calibration: a forest trained on 80% of the drug's orders scores the
held-back 20%; the threshold is a high quantile of those out-of-sample
scores times a margin; the model's forest holds every order. The model
version (a hash of training data and parameters) is reported with every
decision.

A forest score alone flags unusual profiles as well as unusual doses, so the
check also asks the dose to lie outside the range that the most similar
orders (same diagnosis group and age class; children per kg) received, by ``DOSE_GATE``: an
anomaly is an unusual order whose dose is what makes it unusual. Drugs with
fewer than ``MIN_GROUP`` orders get the neighbours' range alone.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

MIN_GROUP = 20          # orders a drug needs before it gets its own forest
MIN_REFERENCE = 5       # below a forest, the neighbours' median alone (needs this many orders)
DOSE_GATE = 2.0         # the dose must also lie this factor outside the 3rd-97th percentile of comparable orders
CHILD_AGE = 12.0        # children are compared per kg
NUM_TREES = 60
CAPACITY = 256
QUANTILE = 0.995
MARGIN = 1.15
DOSE_WEIGHT = 3.0
SEED = 17
PARAMS = {"min_group": MIN_GROUP, "min_reference": MIN_REFERENCE, "dose_gate": DOSE_GATE, "trees": NUM_TREES, "capacity": CAPACITY, "quantile": QUANTILE,
          "margin": MARGIN, "dose_weight": DOSE_WEIGHT, "features": "ld,ldkg,age,sex,dx"}


def _robust_scale(x: np.ndarray, floor: float) -> tuple[float, float]:
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med))) * 1.4826
    if mad < floor:
        q = np.quantile(x, [0.1, 0.9])
        mad = max(float(q[1] - q[0]) / 2.563, float(np.std(x)), floor)
    return med, mad


@dataclass
class GroupModel:
    key: str
    unit: str
    n: int
    centre: list[float]
    scale: list[float]
    weights: list[float]
    dx_enc: dict[str, float]
    dx_share: dict[str, float]
    dose_median: float
    weight_median: float
    freq_max: float
    threshold: float | None
    points: list[list[float]] | None   # the scaled training points, in insertion order
    seed: int
    ref_ld: list[float]
    ref_lw: list[float]
    ref_age: list[float]
    ref_dx: list[str]
    _forest: Any = None
    _ref: Any = None

    def neighbours(self, age: float | None, weight: float | None, dx_group: str | None) -> tuple[float, float, float]:
        """The daily doses comparable orders received: (p3, median, p97), in the order's terms.

        Comparable: same drug and unit, same diagnosis group when it has at
        least ``MIN_REFERENCE`` orders (aspirin for I25 is not aspirin for
        M79), same age class (children under 12 vs the rest). Children are
        compared per kg of body weight (paediatric doses are), the rest in
        absolute dose (adult doses mostly are not). A drug given at several
        usual strengths (carvedilol 12.5/25/50 mg a day) spans them all.
        """
        if self._ref is None:
            self._ref = (np.array(self.ref_ld), np.array(self.ref_lw), np.array(self.ref_age),
                         np.array(self.ref_dx, dtype=object))
        ld, lw, ag, dx = self._ref
        child = age is not None and age < CHILD_AGE
        same_age = (ag < CHILD_AGE) == child
        same_dx = dx == (dx_group or "")
        mask = same_age & same_dx
        if mask.sum() < MIN_REFERENCE:
            mask = same_age if same_age.sum() >= MIN_REFERENCE else np.ones(len(ld), dtype=bool)
        if child:
            w = math.log10(weight or 10 ** float(np.median(lw[mask])))
            values = ld[mask] - lw[mask] + w
        else:
            values = ld[mask]
        q = np.quantile(values, [0.03, 0.5, 0.97])
        return float(10 ** q[0]), float(10 ** q[1]), float(10 ** q[2])

    def forest(self):  # noqa: ANN201
        """The forest, rebuilt from its training points on first use.

        rcf3 forests are deterministic for a seed and an insertion order, so
        the model file keeps the points (kilobytes) rather than the forest
        state (a megabyte per drug); rebuilding one takes ~0.1 s.
        """
        if self.points is None:
            return None
        if self._forest is None:
            forest = _new_forest(len(self.points[0]), self.seed)
            for x in self.points:
                forest.update(x)
            self._forest = forest
        return self._forest

    def features(self, daily: float, age: float | None, sex: str | None, weight: float | None,
                 dx_group: str | None) -> list[float]:
        ld = math.log10(daily)
        w = weight or self.weight_median
        raw = [ld, ld - math.log10(w), age if age is not None else 45.0, 1.0 if sex == "F" else 0.0,
               self.dx_enc.get(dx_group or "", self.dx_enc.get("", ld))]
        return [(v - c) / s * wt for v, c, s, wt in zip(raw, self.centre, self.scale, self.weights)]

    def score(self, daily: float, age: float | None, sex: str | None, weight: float | None,
              dx_group: str | None) -> float:
        return float(self.forest().score(self.features(daily, age, sex, weight, dx_group)))


def _raw_matrix(df, dx_enc: dict[str, float], weight_median: float) -> np.ndarray:  # noqa: ANN001
    ld = np.log10(df["daily_dose"].to_numpy(float))
    w = df["weight_kg"].fillna(weight_median).to_numpy(float)
    age = df["age"].fillna(45.0).to_numpy(float)
    sex = (df["sex"] == "F").to_numpy(float)
    dx = np.array([dx_enc.get(g or "", dx_enc.get("", 0.0)) for g in df["dx_group"].fillna("")])
    return np.column_stack([ld, ld - np.log10(w), age, sex, dx])


def _new_forest(dim: int, seed: int):  # noqa: ANN202
    import rcf3

    return rcf3.Forest(dim, num_trees=NUM_TREES, capacity=CAPACITY, time_decay=1e-9, output_after=1,
                       initial_accept_fraction=1.0, seed=seed)


def fit_group(key: str, unit: str, df, seed: int = SEED) -> GroupModel:  # noqa: ANN001
    """The neighbours' reference always; the forest and its threshold from MIN_GROUP orders up."""
    ld = np.log10(df["daily_dose"].to_numpy(float))
    med_ld = float(np.median(ld))
    # diagnosis encoding: the drug's median log dose per ICD-10 category, shrunk towards the drug median
    dx_enc: dict[str, float] = {"": med_ld}
    dx_share: dict[str, float] = {}
    for g, sub in df.groupby(df["dx_group"].fillna("")):
        v = np.log10(sub["daily_dose"].to_numpy(float))
        k = len(v)
        dx_enc[g] = float((np.median(v) * k + med_ld * 5) / (k + 5))
        dx_share[g] = k / len(df)
    weight_median = float(df["weight_kg"].median()) if df["weight_kg"].notna().any() else 70.0
    raw = _raw_matrix(df, dx_enc, weight_median)
    floors = [0.05, 0.05, 5.0, 0.5, 0.05]
    centre, scale = zip(*(_robust_scale(raw[:, j], floors[j]) for j in range(raw.shape[1])))
    weights = [DOSE_WEIGHT, DOSE_WEIGHT, 1.0, 0.5, 1.0]
    X = (raw - np.array(centre)) / np.array(scale) * np.array(weights)
    ref = dict(ref_ld=ld.round(5).tolist(), ref_lw=np.log10(df["weight_kg"].fillna(weight_median).to_numpy(float))
               .round(4).tolist(), ref_age=df["age"].fillna(45.0).to_numpy(float).round(1).tolist(),
               ref_dx=df["dx_group"].fillna("").astype(str).tolist())
    common = dict(key=key, unit=unit, n=len(df), centre=list(centre), scale=list(scale), weights=weights,
                  dx_enc=dx_enc, dx_share=dx_share, dose_median=float(10 ** med_ld), weight_median=weight_median,
                  freq_max=float(df["frequency_per_day"].max()), **ref)
    if len(df) < MIN_GROUP:
        return GroupModel(threshold=None, points=None, seed=seed, **common)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    cut = int(len(X) * 0.8)
    calib = _new_forest(X.shape[1], seed)
    for i in order[:cut]:
        calib.update(X[i].tolist())
    held = np.array([calib.score(X[i].tolist()) for i in order[cut:]]) if cut < len(X) else np.array([1.0])
    threshold = float(np.quantile(held, QUANTILE)) * MARGIN if len(held) else 1.0
    points = [np.round(X[i], 5).tolist() for i in order]
    return GroupModel(threshold=threshold, points=points, seed=seed, **common)


@dataclass
class PopulationModel:
    version: str
    trained_at: str
    groups: dict[str, GroupModel]
    pair_share: dict[str, dict[str, float]]
    freq_max: dict[str, float]

    @staticmethod
    def group_key(drug_key: str, unit: str) -> str:
        return f"{drug_key}|{unit}"

    def group(self, drug_key: str, unit: str) -> GroupModel | None:
        return self.groups.get(self.group_key(drug_key, unit))

    def save(self, path: Path) -> None:
        data = {"version": self.version, "trained_at": self.trained_at, "params": PARAMS,
                "pair_share": self.pair_share, "freq_max": self.freq_max,
                "groups": {k: {f: getattr(g, f) for f in GroupModel.__dataclass_fields__ if not f.startswith("_")}
                           for k, g in self.groups.items()}}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> "PopulationModel":
        data = json.loads(Path(path).read_text())
        groups = {k: GroupModel(**g) for k, g in data["groups"].items()}
        return cls(data["version"], data["trained_at"], groups, data.get("pair_share", {}), data.get("freq_max", {}))


def train(history, seed: int = SEED) -> PopulationModel:  # noqa: ANN001 - pandas DataFrame of valid history
    """One forest per (drug, dose unit) with at least MIN_GROUP orders."""
    df = history[(history["daily_dose"] > 0)].copy()
    digest = hashlib.sha256(json.dumps(PARAMS, sort_keys=True).encode())
    for col in ("order_id", "drug_key", "daily_dose"):
        digest.update("|".join(map(str, df.sort_values("order_id")[col].tolist())).encode())
    version = "rcf3-" + datetime.now(timezone.utc).strftime("%Y%m%d") + "-" + digest.hexdigest()[:10]
    groups: dict[str, GroupModel] = {}
    pair_share: dict[str, dict[str, float]] = {}
    freq_max: dict[str, float] = {}
    for (key, unit), sub in df.groupby(["drug_key", "dose_unit"]):
        freq_max[key] = max(freq_max.get(key, 0.0), float(sub["frequency_per_day"].max()))
        shares = sub["dx_group"].fillna("").value_counts(normalize=True)
        pair_share.setdefault(key, {}).update({str(k): float(v) for k, v in shares.items()})
        if len(sub) >= MIN_REFERENCE:
            gm = fit_group(str(key), str(unit), sub, seed)
            groups[PopulationModel.group_key(str(key), str(unit))] = gm
    return PopulationModel(version, datetime.now(timezone.utc).isoformat(timespec="seconds"), groups, pair_share,
                           freq_max)
