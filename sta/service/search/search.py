"""Search, patient timelines and study details over the attached stores.

How a search runs (1M studies: see bench/bench_search.py)
    Filters, facet counts and the order of results are computed on each
    region's ``RegionIndex`` (numpy); keywords come from the store's inverted
    index (``search_terms``). Only the rows of the page are read from the
    DuckDB file, through its ART index on ``sid``. Regions are searched one
    by one and merged: totals and facet counts add up, pages merge on the
    sort key; a timeline is a ``UNION ALL``.

Facet semantics
    The counts of a facet are computed with every filter applied except that
    facet's own (the usual multi-select sidebar): with ``modality=MR`` the
    modality facet still says how many CT studies the other filters match.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from sta.service.search import shaping
from sta.service.search.filters import FACETS, MAX_WINDOW, ParsedFilters, StudyFilters
from sta.service.search.index import RegionIndex, concept_keyword_mask
from sta.service.search.stores import StoreSet


def _region_search(
    cur: duckdb.DuckDBPyConnection, idx: RegionIndex, pf: ParsedFilters, sort: str, need: int
) -> tuple[int, dict[str, dict[str, int]], np.ndarray]:
    """Total, facet counts and the first ``need`` matching rows (in ``sort``
    order) of one region."""
    preds: dict[str, np.ndarray] = {}
    for facet, vals in pf.categorical.items():
        preds[facet] = idx.code_mask(facet, vals)
    if pf.age:
        preds["age"] = (idx.age >= pf.age[0]) & (idx.age <= pf.age[1])
    if pf.dates:
        preds["date"] = idx.date_mask(*pf.dates)
    if pf.label_groups:
        preds["label"] = idx.list_mask("label", pf.label_groups)
    if pf.certainty_groups:
        preds["label_certainty"] = idx.list_mask("label_certainty", pf.certainty_groups)
    if pf.characteristic_groups:
        preds["characteristic"] = idx.list_mask("characteristic", pf.characteristic_groups)
    if pf.thickness:
        preds["slice_thickness"] = idx.thickness_mask(*pf.thickness)
    base = concept_keyword_mask(cur, idx, pf.keyword_plan) if pf.words else None

    # fails[i]: how many filters row i fails. A facet's rows are those failing
    # none, or only that facet's own filter, so every facet's rows lie among
    # the candidates failing at most one: found in one pass over the index,
    # then each facet works on the candidates only (a small set when the
    # filters are selective).
    fails = None
    if preds:
        fails = np.zeros(idx.n, dtype=np.uint8)
        for p in preds.values():
            fails += ~p
    own_rows: dict[str, np.ndarray] = {}
    if fails is None and base is None:
        ok = None
        total = idx.n
        rows_all = None
    elif fails is None:
        ok = base
        rows_all = np.flatnonzero(ok)
        total = int(rows_all.size)
    elif len(preds) == 1 and base is None:
        # One filter: its own facet counts every row, the others count the matches.
        (facet, p), = preds.items()
        ok = p
        rows_all = np.flatnonzero(ok)
        total = int(rows_all.size)
        own_rows[facet] = None
    else:
        cand = np.flatnonzero(fails <= 1) if len(preds) > 1 else np.flatnonzero(base)
        if base is not None and len(preds) > 1:
            cand = cand[base[cand]]
        ok_c = fails[cand] == 0
        rows_all = cand[ok_c]
        total = int(rows_all.size)
        for facet, p in preds.items():
            own_rows[facet] = cand[ok_c | ~p[cand]]
        ok = np.zeros(idx.n, dtype=bool)
        ok[rows_all] = True

    facets: dict[str, dict[str, int]] = {}
    for facet in FACETS:
        if not idx.has_values(facet):
            facets[facet] = {}
            continue
        rows = own_rows[facet] if facet in own_rows else rows_all
        facets[facet] = idx.list_counts(facet, rows) if facet in idx.lists else idx.facet_counts(facet, rows)
    if "age" in facets:
        facets["age"] = {f"{int(k)}-{int(k) + 9}": v for k, v in facets["age"].items()}

    order = idx.orders[sort]
    if ok is None:
        first = order[:need]
    elif total == 0 or need == 0:
        first = order[:0]
    else:
        # Walk the sort order in chunks sized by the filter's selectivity.
        chunk = int(min(idx.n, max(4096, need * idx.n / total * 1.5)))
        got, count = [], 0
        for start in range(0, idx.n, chunk):
            part = order[start:start + chunk]
            hit = part[ok[part]]
            got.append(hit)
            count += hit.size
            if count >= need:
                break
        first = np.concatenate(got)[:need]
    return total, facets, first


def _fetch(cur: duckdb.DuckDBPyConnection, region: str, rows: np.ndarray, columns: str) -> dict[int, dict]:
    """Rows of ``search_studies`` by row index (sid - 1), keyed by row index."""
    if rows.size == 0:
        return {}
    sids = ", ".join(str(int(r) + 1) for r in rows)
    cur.execute(f"SELECT sid, {columns} FROM st_{region}.search_studies WHERE sid IN ({sids})")
    return {r["sid"] - 1: r for r in shaping.rows(cur)}


_SORT_KEYS = {
    "date_desc": lambda r: (r["study_date"] is None, -(r["study_date"].toordinal() if r["study_date"] else 0), r["study_uid"]),
    "date_asc": lambda r: (r["study_date"] is None, r["study_date"].toordinal() if r["study_date"] else 0, r["study_uid"]),
    "age_desc": lambda r: (r["age"] is None, -(r["age"] or 0), r["study_uid"]),
    "age_asc": lambda r: (r["age"] is None, r["age"] or 0, r["study_uid"]),
}


def search_studies(
    stores: StoreSet, filters: StudyFilters, regions: list[str] | None = None
) -> dict[str, Any]:
    """Search studies: ``{"total", "page", "page_size", "regions", "results", "facets"}``.

    ``regions``: the regions the caller is entitled to (None = every store).
    Each region is searched on its own index and the results merged: totals
    and facet counts add up, pages merge on the sort key.
    """
    filters.validate()
    offset = (filters.page - 1) * filters.page_size
    if offset + filters.page_size > MAX_WINDOW:
        raise ValueError(f"paging is limited to the first {MAX_WINDOW:,} results; refine the filters")
    snap = stores.snapshot()
    regs = stores.available(regions, snap)
    pf = ParsedFilters(filters)
    need = offset + filters.page_size
    total = 0
    facets: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    firsts: dict[str, np.ndarray] = {}
    cur = snap.cursor()
    try:
        for r in regs:
            key = (r, pf.key(), filters.sort)
            hit = snap.cache.get(key)
            if hit is not None and (len(hit[2]) >= need or len(hit[2]) >= hit[0]):
                n, fc, first = hit
            else:
                # Ask for a little more than this page, so the next pages come from the cache too.
                n, fc, first = _region_search(cur, snap.indexes[r], pf, filters.sort, max(need, 100))
                snap.cache.put(key, (n, fc, first))
            total += n
            firsts[r] = first
            for f, counts in fc.items():
                for k, v in counts.items():
                    facets[f][k] = facets[f].get(k, 0) + v
        if len(regs) == 1:
            r = regs[0]
            page_rows = [(r, int(i)) for i in firsts[r][offset:need]]
        else:
            # Merge the regions' candidates on the sort key.
            cands = []
            for r, first in firsts.items():
                for i, row in _fetch(cur, r, first, "study_date, age, study_uid").items():
                    cands.append((_SORT_KEYS[filters.sort](row), r, i))
            cands.sort()
            page_rows = [(r, i) for _k, r, i in cands[offset:need]]
        # Cards: the most recent studies top many different searches' first
        # pages, so recently shown cards are kept (per snapshot) and only the
        # others are read from the store.
        cards: dict[tuple[str, int], str] = {}
        for r, i in page_rows:
            hit = snap.cards.get((r, i))
            if hit is not None:
                cards[(r, i)] = hit
        for r in {r for r, i in page_rows if (r, i) not in cards}:
            missing = np.array([i for rr, i in page_rows if rr == r and (rr, i) not in cards])
            for i, row in _fetch(cur, r, missing, "card").items():
                cards[(r, int(i))] = row["card"]
                snap.cards.put((r, int(i)), row["card"])
        results = [shaping.card(cards[(r, i)]) for r, i in page_rows]
    finally:
        cur.close()
    for f in facets:
        facets[f] = dict(sorted(facets[f].items(), key=lambda kv: (-kv[1], kv[0])))
    return {
        "total": total,
        "page": filters.page,
        "page_size": filters.page_size,
        "regions": regs,
        "results": results,
        "facets": facets,
    }


def patient_timeline(
    stores: StoreSet, token: str, regions: list[str] | None = None
) -> dict[str, Any] | None:
    """Every study of one patient token across the entitled regions, oldest
    first; None when the token has no study there."""
    if not re.fullmatch(r"[0-9a-f]{32}", token or ""):
        raise ValueError("a patient token is 32 lower-case hex characters")
    snap = stores.snapshot()
    regs = stores.available(regions, snap)
    if not regs:
        return None
    src = stores.source(regs)
    cur = snap.cursor()
    try:
        cur.execute(
            f"SELECT card FROM {src} WHERE patient_token = ? "
            "ORDER BY study_date NULLS LAST, study_uid",
            [token],
        )
        studies = [shaping.card(c) for (c,) in cur.fetchall()]
        if not studies:
            return None
        cur.execute(
            f"SELECT region, partner_id, sex, birth_decade FROM {stores.source(regs, 'patients')} "
            "WHERE patient_token = ? ORDER BY region, partner_id",
            [token],
        )
        seen = shaping.rows(cur)
    finally:
        cur.close()
    sexes = sorted({s["sex"] for s in seen if s["sex"]})
    decades = sorted({s["birth_decade"] for s in seen if s["birth_decade"] is not None})
    return {
        "patient_token": token,
        "sex": sexes[0] if len(sexes) == 1 else (None if not sexes else "/".join(sexes)),
        "birth_decade": decades[0] if len(decades) == 1 else None,
        "regions": sorted({s["region"] for s in studies}),
        "partners": sorted({s["partner_id"] for s in studies}),
        "first_study_date": studies[0]["study_date"],
        "last_study_date": studies[-1]["study_date"],
        "n_studies": len(studies),
        "studies": studies,
    }


def linked_patients(
    stores: StoreSet, regions: list[str] | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    """Patients seen at more than one partner (linking at work), most partners
    first: ``[{"patient_token", "partners", "regions", "n_studies"}]``."""
    snap = stores.snapshot()
    regs = stores.available(regions, snap)
    if not regs:
        return []
    cur = snap.cursor()
    try:
        cur.execute(
            "SELECT patient_token, list_sort(list(DISTINCT partner_id)) AS partners, "
            "list_sort(list(DISTINCT region)) AS regions, count(*) AS n_studies "
            f"FROM {stores.source(regs)} GROUP BY patient_token "
            "HAVING count(DISTINCT partner_id) > 1 "
            "ORDER BY count(DISTINCT region) DESC, count(DISTINCT partner_id) DESC, n_studies DESC, "
            f"patient_token LIMIT {int(limit)}"
        )
        return shaping.rows(cur)
    finally:
        cur.close()


def study_detail(stores: StoreSet, study_uid: str, regions: list[str] | None = None) -> dict | None:
    """One study with its series (for the card's "Expandir")."""
    snap = stores.snapshot()
    regs = stores.available(regions, snap)
    if not regs:
        return None
    cur = snap.cursor()
    try:
        cur.execute(
            f"SELECT card, region, partner_id FROM {stores.source(regs)} WHERE study_uid = ? LIMIT 1",
            [study_uid],
        )
        rows = shaping.rows(cur)
        if not rows:
            return None
        out = shaping.card(rows[0]["card"])
        region = rows[0]["region"]
        cur.execute(
            f"SELECT series_uid, modality, body_part, series_number, series_description, "
            f"n_instances, thumbnail IS NOT NULL AS has_thumbnail FROM st_{region}.series "
            "WHERE study_uid = ? AND partner_id = ? ORDER BY series_number, series_uid",
            [study_uid, rows[0]["partner_id"]],
        )
        out["series"] = [
            {**{k: v for k, v in s.items() if k != "has_thumbnail"},
             "thumbnail_url": shaping.thumbnail_url(region, s['series_uid']) if s["has_thumbnail"] else None}
            for s in shaping.rows(cur)
        ]
    finally:
        cur.close()
    return out


def thumbnail_path(stores: StoreSet, region: str, series_uid: str) -> tuple[Path, str] | None:
    """The thumbnail file of a series and its partner, the file checked to
    lie inside that partner's root."""
    snap = stores.snapshot()
    if region not in snap.indexes:
        return None
    cur = snap.cursor()
    try:
        row = cur.execute(
            f"SELECT partner_id, thumbnail FROM st_{region}.series WHERE series_uid = ? "
            "AND thumbnail IS NOT NULL LIMIT 1",
            [series_uid],
        ).fetchone()
    finally:
        cur.close()
    if not row:
        return None
    root = stores.partner_root(region, row[0]).resolve()
    path = (root / row[1]).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path, row[0]
