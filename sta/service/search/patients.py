"""Patient search by patient-level filters (the "Buscar pacientes" tab):
age group, sex, number of studies, modalities seen, and span of the history
in years ("modalities over time": e.g. MG and US over at least 2 years).

A patient is a token; its studies may lie in several regions and partners,
so the aggregation runs over the union of the entitled regions'
``search_studies`` (a ``GROUP BY`` of one small row per study; ~100-300 ms
at a million studies, fine for this page, which has no facets).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sta.service.search import shaping
from sta.service.search.stores import StoreSet

MAX_PATIENTS_PAGE = 50


@dataclass
class PatientFilters:
    sex: list[str] = field(default_factory=list)
    age_min: int | None = None  # age at the latest study
    age_max: int | None = None
    min_studies: int = 1
    modality: list[str] = field(default_factory=list)  # every one of them seen
    min_years: float | None = None  # first to last study
    page: int = 1
    page_size: int = 20

    def validate(self) -> "PatientFilters":
        if not 1 <= self.page_size <= MAX_PATIENTS_PAGE:
            raise ValueError(f"page_size must be between 1 and {MAX_PATIENTS_PAGE}")
        if self.page < 1 or self.page * self.page_size > 10_000:
            raise ValueError("page out of range (at most the first 10,000 patients)")
        if self.min_studies < 1:
            raise ValueError("min_studies must be >= 1")
        return self

    def applied(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [], "")}


def search_patients(stores: StoreSet, f: PatientFilters, regions: list[str] | None) -> dict[str, Any]:
    """``{"total", "page", "page_size", "patients": [{"patient_token", "sex", "age", "n_studies",
    "modalities", "first_study_date", "last_study_date", "partners", "regions"}]}``."""
    f.validate()
    snap = stores.snapshot()
    regs = stores.available(regions, snap)
    if not regs:
        return {"total": 0, "page": f.page, "page_size": f.page_size, "patients": []}
    params: list[Any] = []
    having = ["count(*) >= ?"]
    params_having: list[Any] = [f.min_studies]
    where = "true"
    sexes = sorted({s.strip().upper() for s in f.sex if s and s.strip()})
    if sexes:
        where = "sex IN (" + ", ".join("?" for _ in sexes) + ")"
        params.extend(sexes)
    mods = sorted({m.strip().upper() for m in f.modality if m and m.strip()})
    if mods:
        having.append("list_has_all(list(DISTINCT modality), ?::VARCHAR[])")
        params_having.append(mods)
    if f.age_min is not None:
        having.append("arg_max(age, study_date) >= ?")
        params_having.append(f.age_min)
    if f.age_max is not None:
        having.append("arg_max(age, study_date) <= ?")
        params_having.append(f.age_max)
    if f.min_years is not None:
        having.append("date_diff('day', min(study_date), max(study_date)) >= ?")
        params_having.append(int(f.min_years * 365.25))
    src = stores.source(regs)
    sql = (
        "SELECT patient_token, min(sex) AS sex, arg_max(age, study_date) AS age, count(*) AS n_studies, "
        "list_sort(list(DISTINCT modality)) AS modalities, min(study_date)::VARCHAR AS first_study_date, "
        "max(study_date)::VARCHAR AS last_study_date, list_sort(list(DISTINCT partner_id)) AS partners, "
        "list_sort(list(DISTINCT region)) AS regions, count(*) OVER () AS total "
        f"FROM {src} WHERE {where} GROUP BY patient_token HAVING {' AND '.join(having)} "
        "ORDER BY n_studies DESC, patient_token LIMIT ? OFFSET ?"
    )
    cur = snap.cursor()
    try:
        cur.execute(sql, params + params_having + [f.page_size, (f.page - 1) * f.page_size])
        rows = shaping.rows(cur)
    finally:
        cur.close()
    total = int(rows[0]["total"]) if rows else 0
    for r in rows:
        r.pop("total")
    return {"total": total, "page": f.page, "page_size": f.page_size, "patients": rows}
