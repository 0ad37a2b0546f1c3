"""Search over the regions' consolidated stores: the one query module behind
the API (``sta.service``), the CLI (``sta search``) and the benchmark.

Federation across regions
    Each region has its own store (``<data>/<region>/store/consolidated.duckdb``)
    and a store never holds another region's rows. A patient seen by partners
    in two regions therefore has rows in two stores under the same token. The
    service opens one in-memory DuckDB, ATTACHes every store READ_ONLY under
    ``st_<region>`` and queries ``UNION ALL`` of the regions a customer is
    entitled to, so a timeline shows both regions' studies while rows are
    never copied between regions. A deployment with one service per region
    would replace the ATTACH by a fan-out over HTTP with the same merge.

Stores are replaced, never written in place
    ``transforms.consolidate`` writes a new file and renames it over the old
    one; ``StoreSet`` notices the new inode (checked at most once a second) and
    re-attaches, so searches never wait for a linking run and never see half of
    one.

Facet semantics
    The counts of a facet are computed with every filter applied except that
    facet's own (the usual multi-select sidebar): with ``modality=MR`` the
    modality facet still says how many CT studies the other filters match.

Keywords
    Each keyword is lower-cased and stripped of accents by DuckDB's own
    ``strip_accents`` (the same function that built ``search_text``) and must
    be part of a word of the study's text (description, report, series
    descriptions); all keywords must occur (AND). Substring matching makes
    'nodul' find 'nódulo', 'nódulos' and 'nodule'. The words are looked up in
    the store's inverted index (``search_terms``), not by scanning the text.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

STORE_NAME = "consolidated.duckdb"
_REGION_RE = re.compile(r"^[a-z]{2,8}$")

SORTS = {
    "date_desc": "study_date DESC NULLS LAST, study_uid",
    "date_asc": "study_date ASC NULLS LAST, study_uid",
    "age_desc": "age DESC NULLS LAST, study_uid",
    "age_asc": "age ASC NULLS LAST, study_uid",
}
MAX_PAGE_SIZE = 100
EXCERPT_CHARS = 280

# Scalar facets: name -> SQL expression of the value. "modality" is the
# study's primary modality (transforms.schema.STUDIES.modality).
SCALAR_FACETS: dict[str, str] = {
    "modality": "modality",
    "body_region": "body_region",
    "sex": "sex",
    "age": "age // 10 * 10",  # decade; shown as "40-49"
    "manufacturer": "manufacturer",
    "country": "country",
    "partner": "partner_id",
}
FACETS = [*SCALAR_FACETS, "label"]

RESULT_COLUMNS = (
    "study_uid, patient_token, partner_id, region, country, modality, modalities, body_region, "
    "study_date, study_description, age, sex, manufacturer, manufacturer_model, n_series, "
    "n_instances, labels, report_text, report_language, thumb_series_uid, thumbnail, body_part, "
    "series_description, rows, cols"
)


@dataclass
class StudyFilters:
    """The search filters of the API, the CLI and the page (all optional).

    List filters match any of their values (OR); different filters combine
    with AND. Labels: ``birads:2`` matches that value, ``birads`` any value of
    the label; several values of one label are OR-ed, different labels AND-ed.
    Ages are inclusive.
    """

    q: str | None = None
    modality: list[str] = field(default_factory=list)
    body_region: list[str] = field(default_factory=list)
    label: list[str] = field(default_factory=list)
    sex: list[str] = field(default_factory=list)
    age_min: int | None = None
    age_max: int | None = None
    manufacturer: list[str] = field(default_factory=list)
    country: list[str] = field(default_factory=list)
    partner: list[str] = field(default_factory=list)
    sort: str = "date_desc"
    page: int = 1
    page_size: int = 10

    def validate(self) -> "StudyFilters":
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {sorted(SORTS)}")
        if self.page < 1:
            raise ValueError("page must be >= 1")
        if not 1 <= self.page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        for name in ("age_min", "age_max"):
            v = getattr(self, name)
            if v is not None and not 0 <= v <= 150:
                raise ValueError(f"{name} must be between 0 and 150")
        return self

    def applied(self) -> dict[str, Any]:
        """The filters that are set, for the audit log and the response."""
        return {k: v for k, v in asdict(self).items() if v not in (None, [], "")}


def keywords(q: str | None) -> list[str]:
    """Split a keyword string into words (letters and digits, any script)."""
    if not q:
        return []
    return [w for w in re.split(r"[^\w]+", q) if w][:10]


class _Where:
    """Predicates per filter, each with its own parameters, so a facet can be
    computed with all predicates but its own."""

    def __init__(self, f: StudyFilters) -> None:
        self.preds: dict[str, tuple[str, list[Any]]] = {}

        def any_of(name: str, column: str, values: list[str], upper: bool = False) -> None:
            vals = sorted({(v.upper() if upper else v).strip() for v in values if v and v.strip()})
            if vals:
                self.preds[name] = (f"{column} IN ({', '.join('?' * len(vals))})", vals)

        any_of("modality", "modality", f.modality, upper=True)
        any_of("body_region", "body_region", [v.lower() for v in f.body_region])
        any_of("sex", "sex", f.sex, upper=True)
        any_of("manufacturer", "manufacturer", f.manufacturer)
        any_of("country", "country", [v.lower() for v in f.country])
        any_of("partner", "partner_id", f.partner)
        if f.age_min is not None or f.age_max is not None:
            lo = f.age_min if f.age_min is not None else 0
            hi = f.age_max if f.age_max is not None else 1000
            self.preds["age"] = ("age BETWEEN ? AND ?", [lo, hi])
        if f.label:
            groups: dict[str, set[str]] = {}
            for raw in f.label:
                v = raw.strip().lower()
                if not v:
                    continue
                name, _, value = v.partition(":")
                groups.setdefault(name, set()).add(v if value else "")
            parts, params = [], []
            for name in sorted(groups):
                exact = sorted(x for x in groups[name] if x)
                alts = []
                if "" in groups[name]:
                    alts.append("len(list_filter(labels, lambda x: starts_with(x, ?))) > 0")
                    params.append(name + ":")
                for x in exact:
                    # list_contains: ~8x faster than list_has_any here (measured)
                    alts.append("list_contains(labels, ?)")
                    params.append(x)
                parts.append("(" + " OR ".join(alts) + ")")
            if parts:
                self.preds["label"] = (" AND ".join(parts), params)
        self.words = keywords(f.q)

    def clause(self, exclude: str | None = None) -> tuple[str, list[Any]]:
        parts, params = [], []
        for name, (sql, p) in self.preds.items():
            if name != exclude:
                parts.append(f"({sql})")
                params.extend(p)
        return ("WHERE " + " AND ".join(parts)) if parts else "", params


class StoreSet:
    """The regions' stores attached read-only to one in-memory DuckDB.

    ``stores`` maps region -> store file. ``cursor()`` hands out a cursor
    (its own connection to the shared database, safe to use from one thread)
    and re-attaches when a store file was replaced by a linking run.
    """

    def __init__(self, stores: dict[str, Path], threads: int | None = None) -> None:
        for region in stores:
            if not _REGION_RE.match(region):
                raise ValueError(f"bad region name {region!r}")
        self.stores = {r: Path(p) for r, p in sorted(stores.items())}
        self.threads = threads
        self._lock = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0

    @classmethod
    def discover(cls, data_root: Path) -> "StoreSet":
        """Every ``<data_root>/<region>/store/consolidated.duckdb`` that exists."""
        stores = {}
        for p in sorted(Path(data_root).glob(f"*/store/{STORE_NAME}")):
            stores[p.parent.parent.name] = p
        return cls(stores)

    @classmethod
    def from_paths(cls, paths: list[Path]) -> "StoreSet":
        """Stores given by path; each store's region is read from its ``store_meta``."""
        stores: dict[str, Path] = {}
        for p in paths:
            p = Path(p)
            if not p.exists():
                raise FileNotFoundError(f"no store at {p}")
            con = duckdb.connect(str(p), read_only=True)
            try:
                row = con.execute("SELECT value FROM store_meta WHERE key = 'region'").fetchone()
            finally:
                con.close()
            if not row:
                raise ValueError(f"{p} has no region in store_meta: not a consolidated store")
            if row[0] in stores:
                raise ValueError(f"two stores for region {row[0]!r}: {stores[row[0]]} and {p}")
            stores[row[0]] = p
        return cls(stores)

    @property
    def regions(self) -> list[str]:
        return list(self.stores)

    def partner_root(self, region: str, partner_id: str) -> Path:
        """``<data>/<region>/partners/<id>``: thumbnails are relative to it."""
        return self.stores[region].parent.parent / "partners" / partner_id

    def _current_stamp(self) -> tuple:
        out = []
        for region, p in self.stores.items():
            try:
                st = p.stat()
                out.append((region, st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append((region, None))
        return tuple(out)

    def _open(self) -> duckdb.DuckDBPyConnection:
        config: dict[str, Any] = {}
        if self.threads:
            config["threads"] = self.threads
        con = duckdb.connect(":memory:", config=config)
        con.execute("SET enable_progress_bar = false")
        for region, p in self.stores.items():
            if p.exists():
                con.execute(f"ATTACH '{_sql_str(str(p))}' AS st_{region} (READ_ONLY)")
        return con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        now = time.monotonic()
        with self._lock:
            if self._con is None or now - self._checked > 1.0:
                self._checked = now
                stamp = self._current_stamp()
                if self._con is None or stamp != self._stamp:
                    # The old connection is not closed: cursors still reading
                    # it keep it alive, and it goes when they are done.
                    self._con = self._open()
                    self._stamp = stamp
            return self._con.cursor()

    def available(self, regions: list[str] | None) -> list[str]:
        """Regions both requested (None = all) and present on disk."""
        present = [r for r, p in self.stores.items() if p.exists()]
        if regions is None:
            return present
        return [r for r in present if r in set(regions)]

    def source(self, regions: list[str], table: str = "search_studies") -> str:
        """SQL of the union of ``table`` over ``regions`` (already validated)."""
        if not regions:
            # Same columns, no rows: a customer entitled to no present region.
            first = next(iter(self.stores), None)
            if first is None:
                raise LookupError("no consolidated store is available")
            return f"(SELECT * FROM st_{first}.{table} WHERE false)"
        parts = [f"SELECT * FROM st_{r}.{table}" for r in regions]
        return parts[0].replace("SELECT * FROM ", "") if len(parts) == 1 else "(" + " UNION ALL ".join(parts) + ")"


def _sql_str(s: str) -> str:
    return s.replace("'", "''")


def _tags(row: dict[str, Any]) -> dict[str, Any]:
    """The DICOM attributes a result card shows, under their DICOM keywords."""
    tags = {
        "Modality": row["modality"],
        "ModalitiesInStudy": "\\".join(row["modalities"] or []),
        "BodyPartExamined": row["body_part"],
        "StudyDescription": row["study_description"],
        "SeriesDescription": row["series_description"],
        "StudyDate": row["study_date"].strftime("%Y%m%d") if row["study_date"] else None,
        "PatientSex": row["sex"],
        "PatientAge": f"{row['age']:03d}Y" if row["age"] is not None else None,
        "Manufacturer": row["manufacturer"],
        "ManufacturerModelName": row["manufacturer_model"],
        "Rows": row["rows"],
        "Columns": row["cols"],
        "NumberOfStudyRelatedSeries": row["n_series"],
        "NumberOfStudyRelatedInstances": row["n_instances"],
    }
    return {k: v for k, v in tags.items() if v not in (None, "")}


def _result(row: dict[str, Any]) -> dict[str, Any]:
    text = row["report_text"]
    excerpt = None
    if text:
        flat = " ".join(text.split())
        excerpt = flat if len(flat) <= EXCERPT_CHARS else flat[: EXCERPT_CHARS - 1].rsplit(" ", 1)[0] + "…"
    thumb = None
    if row["thumbnail"] and row["thumb_series_uid"]:
        thumb = f"/api/thumbnails/{row['region']}/{row['thumb_series_uid']}"
    return {
        "study_uid": row["study_uid"],
        "patient_token": row["patient_token"],
        "region": row["region"],
        "partner_id": row["partner_id"],
        "country": row["country"],
        "modality": row["modality"],
        "modalities": list(row["modalities"] or []),
        "body_region": row["body_region"],
        "study_date": row["study_date"].isoformat() if row["study_date"] else None,
        "study_description": row["study_description"],
        "age": row["age"],
        "sex": row["sex"],
        "manufacturer": row["manufacturer"],
        "labels": list(row["labels"] or []),
        "report_language": row["report_language"],
        "report_text": text,
        "report_excerpt": excerpt,
        "tags": _tags(row),
        "thumbnail_url": thumb,
    }


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _keyword_source(
    cur: duckdb.DuckDBPyConnection, regions: list[str], words: list[str]
) -> str | None:
    """The union of the regions' studies that contain every keyword, or None
    when no region has a match.

    Each word is matched (substring, accent-free) against the region's small
    ``search_vocab`` first; the study ids of the matching terms are then read
    from ``search_terms``, sorted by term, so only the row groups holding those
    terms are read. Terms are our own vocabulary, quoted as SQL literals.
    """
    branches = []
    for r in regions:
        conds = []
        for w in words:
            terms = [
                t for (t,) in cur.execute(
                    f"SELECT term FROM st_{r}.search_vocab "
                    "WHERE contains(term, lower(strip_accents(?)))",
                    [w],
                ).fetchall()
            ]
            if not terms:
                conds = None
                break
            lits = ", ".join("'" + _sql_str(t) + "'" for t in terms)
            conds.append(f"sid IN (SELECT sid FROM st_{r}.search_terms WHERE term IN ({lits}))")
        if conds:
            branches.append(f"SELECT * FROM st_{r}.search_studies WHERE " + " AND ".join(conds))
    if not branches:
        return None
    return "(" + " UNION ALL ".join(branches) + ")"


def search_studies(
    stores: StoreSet, filters: StudyFilters, regions: list[str] | None = None
) -> dict[str, Any]:
    """Search studies: ``{"total", "page", "page_size", "results", "facets"}``.

    ``regions``: the regions the caller is entitled to (None = every store).
    """
    filters.validate()
    regs = stores.available(regions)
    where = _Where(filters)
    cur = stores.cursor()
    try:
        src: str | None = stores.source(regs)
        if where.words:
            src = _keyword_source(cur, regs, where.words)
        if src is None:
            facets: dict[str, dict[str, int]] = {f: {} for f in FACETS}
            total, results = 0, []
        else:
            facets, total = _facets(cur, src, where, materialize=bool(where.words))
            clause, params = where.clause()
            offset = (filters.page - 1) * filters.page_size
            results = []
            if offset < total:
                cur.execute(
                    f"SELECT {RESULT_COLUMNS} FROM {src} {clause} ORDER BY {SORTS[filters.sort]} "
                    f"LIMIT {int(filters.page_size)} OFFSET {int(offset)}",
                    params,
                )
                results = [_result(r) for r in _rows(cur)]
    finally:
        cur.close()
    return {
        "total": total,
        "page": filters.page,
        "page_size": filters.page_size,
        "regions": regs,
        "results": results,
        "facets": facets,
    }


def _facets(
    cur: duckdb.DuckDBPyConnection, src: str, where: _Where, materialize: bool
) -> tuple[dict[str, dict[str, int]], int]:
    """Total and facet counts in one statement.

    With keywords the matching rows are materialised once (a CTE) and every
    facet reads that smaller set instead of repeating the index join.
    """
    head, base = "", src
    if materialize:
        cols = "modality, body_region, sex, age, manufacturer, country, partner_id, labels"
        head = f"WITH base AS MATERIALIZED (SELECT {cols} FROM {src}) "
        base = "base"
    parts: list[str] = []
    params: list[Any] = []
    clause, p = where.clause()
    parts.append(f"SELECT '_total' AS facet, NULL::VARCHAR AS value, count(*) AS n FROM {base} {clause}")
    params.extend(p)
    for f, expr in SCALAR_FACETS.items():
        c, p = where.clause(exclude=f)
        parts.append(f"SELECT '{f}', ({expr})::VARCHAR, count(*) FROM {base} {c} GROUP BY 2")
        params.extend(p)
    c, p = where.clause(exclude="label")
    parts.append(
        f"SELECT 'label', l, count(*) FROM (SELECT unnest(labels) AS l FROM {base} {c}) GROUP BY 2"
    )
    params.extend(p)
    cur.execute(head + " UNION ALL ".join(parts), params)
    facets: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    total = 0
    for facet, value, n in cur.fetchall():
        if facet == "_total":
            total = int(n)
        elif value is not None:
            if facet == "age":
                value = f"{int(value)}-{int(value) + 9}"
            facets[facet][value] = int(n)
    for f in facets:
        facets[f] = dict(sorted(facets[f].items(), key=lambda kv: (-kv[1], kv[0])))
    return facets, total


def patient_timeline(
    stores: StoreSet, token: str, regions: list[str] | None = None
) -> dict[str, Any] | None:
    """Every study of one patient token across the entitled regions, oldest
    first; None when the token has no study there."""
    if not re.fullmatch(r"[0-9a-f]{32}", token or ""):
        raise ValueError("a patient token is 32 lower-case hex characters")
    regs = stores.available(regions)
    if not regs:
        return None
    src = stores.source(regs)
    cur = stores.cursor()
    try:
        cur.execute(
            f"SELECT {RESULT_COLUMNS} FROM {src} WHERE patient_token = ? "
            "ORDER BY study_date NULLS LAST, study_uid",
            [token],
        )
        studies = [_result(r) for r in _rows(cur)]
        if not studies:
            return None
        cur.execute(
            f"SELECT region, partner_id, sex, birth_decade FROM {stores.source(regs, 'patients')} "
            "WHERE patient_token = ? ORDER BY region, partner_id",
            [token],
        )
        seen = _rows(cur)
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


def study_detail(stores: StoreSet, study_uid: str, regions: list[str] | None = None) -> dict | None:
    """One study with its series (for the card's "Expandir")."""
    regs = stores.available(regions)
    if not regs:
        return None
    cur = stores.cursor()
    try:
        cur.execute(
            f"SELECT {RESULT_COLUMNS} FROM {stores.source(regs)} WHERE study_uid = ? LIMIT 1",
            [study_uid],
        )
        rows = _rows(cur)
        if not rows:
            return None
        out = _result(rows[0])
        region = rows[0]["region"]
        cur.execute(
            f"SELECT series_uid, modality, body_part, series_number, series_description, "
            f"n_instances, thumbnail IS NOT NULL AS has_thumbnail FROM st_{region}.series "
            "WHERE study_uid = ? AND partner_id = ? ORDER BY series_number, series_uid",
            [study_uid, rows[0]["partner_id"]],
        )
        out["series"] = [
            {**{k: v for k, v in s.items() if k != "has_thumbnail"},
             "thumbnail_url": f"/api/thumbnails/{region}/{s['series_uid']}" if s["has_thumbnail"] else None}
            for s in _rows(cur)
        ]
    finally:
        cur.close()
    return out


def thumbnail_path(stores: StoreSet, region: str, series_uid: str) -> Path | None:
    """The thumbnail file of a series, checked to lie inside its partner's root."""
    if region not in stores.stores:
        return None
    cur = stores.cursor()
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
    return path
