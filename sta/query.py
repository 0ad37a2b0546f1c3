"""Search over the regions' consolidated stores: the one query module behind
the API (``sta.service``), the CLI (``sta search``) and the benchmark.

Federation across regions
    Each region has its own store (``<data>/<region>/store/consolidated.duckdb``)
    and a store never holds another region's rows. A patient seen by partners
    in two regions therefore has rows in two stores under the same token. The
    service opens one in-memory DuckDB, ATTACHes every store READ_ONLY under
    ``st_<region>`` and searches each region the customer is entitled to,
    merging the answers (totals and facet counts add up, pages merge on the
    sort key; a timeline is a ``UNION ALL``), so a timeline shows both
    regions' studies while rows are never copied between regions. A
    deployment with one service per region would replace the ATTACH by a
    fan-out over HTTP with the same merge.

How a search runs (1M studies: p95 ~100 ms for a page with facets, see
bench/bench_search.py)
    Filters, facet counts and the order of results are computed on a
    ``RegionIndex``: the searchable columns of ``search_studies`` as small
    integer numpy arrays, built when a store is attached. Keywords come from
    the store's inverted index (``search_terms``). Only the rows of the page
    are read from the DuckDB file, through its ART index on ``sid``.

Stores are replaced, never written in place
    ``transforms.consolidate`` writes a new file and renames it over the old
    one; ``StoreSet`` notices the new inode (checked at most once a second) and
    builds a new snapshot in the background, so searches never wait for a
    linking run and never see half of one.

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

import json
import logging
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

log = logging.getLogger(__name__)

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

# Facets, one per filter. "modality" is the study's primary modality
# (transforms.schema.STUDIES.modality); "age" counts by decade ("40-49").
FACETS = ["modality", "body_region", "sex", "age", "manufacturer", "country", "partner", "label"]



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
    return [w for w in re.split(r"[\W_]+", q) if w][:10]


MAX_WINDOW = 10_000  # deepest result reachable by paging (page * page_size)


class _Parsed:
    """The filters normalised once: what each region's index is asked."""

    def __init__(self, f: StudyFilters) -> None:
        def clean(values: list[str], case: str | None = None) -> list[str]:
            out = []
            for v in values:
                v = (v or "").strip()
                if v:
                    out.append(v.upper() if case == "upper" else v.lower() if case == "lower" else v)
            return sorted(set(out))

        self.categorical: dict[str, list[str]] = {}
        for facet, values, case in (
            ("modality", f.modality, "upper"), ("body_region", f.body_region, "lower"),
            ("sex", f.sex, "upper"), ("manufacturer", f.manufacturer, None),
            ("country", f.country, "lower"), ("partner", f.partner, None),
        ):
            vals = clean(values, case)
            if vals:
                self.categorical[facet] = vals
        self.age: tuple[int, int] | None = None
        if f.age_min is not None or f.age_max is not None:
            self.age = (f.age_min if f.age_min is not None else 0,
                        f.age_max if f.age_max is not None else 10_000)
        self.label_groups: dict[str, set[str]] = {}
        for raw in f.label:
            v = (raw or "").strip().lower()
            if v:
                name, _, value = v.partition(":")
                self.label_groups.setdefault(name, set()).add(v if value else "")
        self.words = keywords(f.q)


class RegionIndex:
    """One region's searchable columns, in memory, as numpy arrays.

    Why: at a million studies a page with facet counts is about ten
    group-bys over the filtered rows. Done as SQL on the store that was
    ~200-600 ms here (DuckDB's fixed cost per aggregate query, string
    columns, list columns for labels); done on small integer codes with
    ``np.bincount`` it is a few milliseconds per facet. The arrays cost about
    30 bytes per study (30 MB per million) and are built in seconds when a
    store is (re)attached. Report text, tags and the keyword index stay in the
    DuckDB file and are read only for the rows of the page.

    Row ``i`` is the study with ``sid = i + 1`` (``search_studies`` is
    numbered densely by ``rebuild_search``).
    """

    CATEGORICAL = {
        "modality": "modality",
        "body_region": "body_region",
        "sex": "sex",
        "manufacturer": "manufacturer",
        "country": "country",
        "partner": "partner_id",
    }

    def __init__(self, con: duckdb.DuckDBPyConnection, region: str) -> None:
        from transforms.store_schema import LAYOUT_VERSION

        self.region = region
        row = con.execute(f"SELECT value FROM st_{region}.store_meta WHERE key = 'layout_version'").fetchone()
        if not row or row[0] != LAYOUT_VERSION:
            raise ValueError(f"the {region} store has layout {row[0] if row else '?'}, this service "
                             f"reads layout {LAYOUT_VERSION}: re-run its linking (consolidate_region)")
        src = f"st_{region}.search_studies"
        self.n = int(con.execute(f"SELECT count(*) FROM {src}").fetchone()[0])
        self.values: dict[str, list[str]] = {}
        self.codes: dict[str, np.ndarray] = {}
        exprs = []
        for facet, col in {**self.CATEGORICAL, "_labels": "array_to_string(labels, '|')"}.items():
            vals = [r[0] for r in con.execute(
                f"SELECT DISTINCT {col} AS v FROM {src} WHERE {col} IS NOT NULL ORDER BY 1").fetchall()]
            self.values[facet] = vals
            if vals:
                tname = f"e_{region}_{facet.strip('_')}"
                con.execute(f"CREATE TYPE {tname} AS ENUM (SELECT DISTINCT {col} FROM {src} "
                            f"WHERE {col} IS NOT NULL ORDER BY 1)")
                exprs.append(f"coalesce(enum_code(({col})::{tname})::INTEGER + 1, 0) AS {facet.strip('_')}")
            else:
                exprs.append(f"0 AS {facet.strip('_')}")
        cols = con.execute(
            f"SELECT {', '.join(exprs)}, coalesce(age, -1)::SMALLINT AS age FROM {src} ORDER BY sid"
        ).fetchnumpy()
        for facet in self.CATEGORICAL:
            self.codes[facet] = np.asarray(cols[facet], dtype=np.uint16 if len(self.values[facet]) < 65000 else np.uint32)
        self.age = np.asarray(cols["age"], dtype=np.int16)
        decade = np.where(self.age >= 0, self.age // 10 + 1, 0).astype(np.uint16)
        self.codes["age"] = decade
        self.values["age"] = [str(d * 10) for d in range(int(decade.max(initial=0)))]
        # Label sets: each distinct set of labels is a "combo"; a study has one.
        self.combo = np.asarray(cols["labels"], dtype=np.intp)  # intp: gathers need no widening
        combos = [[]] + [v.split("|") if v else [] for v in self.values["_labels"]]
        self.labels = sorted({lab for c in combos for lab in c})
        pos = {lab: i for i, lab in enumerate(self.labels)}
        self.combo_labels = np.zeros((len(combos), max(1, len(self.labels))), dtype=np.int64)
        for ci, c in enumerate(combos):
            for lab in c:
                self.combo_labels[ci, pos[lab]] = 1
        # Row order of every sort (row indices), so a page is the first
        # matching rows of an order instead of a sort per request.
        self.orders = {}
        for name, order_sql in SORTS.items():
            self.orders[name] = (
                con.execute(f"SELECT sid - 1 FROM {src} ORDER BY {order_sql}").fetchnumpy()["(sid - 1)"]
            ).astype(np.int32)

    def code_mask(self, facet: str, wanted: list[str]) -> np.ndarray:
        """Rows whose ``facet`` is one of ``wanted``.

        OR of equalities for a few values (~0.4 ms per million rows); a
        lookup table for many (a gather with intp indices, ~2.5 ms; numpy
        widens uint16 indices itself at ~11 ms, so the cast is explicit).
        """
        index = {v: i + 1 for i, v in enumerate(self.values[facet])}
        codes = [index[w] for w in wanted if w in index]
        col = self.codes[facet]
        if len(codes) <= 8:
            mask = np.zeros(self.n, dtype=bool)
            for c in codes:
                mask |= col == c
            return mask
        lookup = np.zeros(len(self.values[facet]) + 1, dtype=bool)
        lookup[codes] = True
        return lookup[col.astype(np.intp)]

    def label_mask(self, groups: dict[str, set[str]]) -> np.ndarray:
        """Rows whose labels satisfy every group (OR within a label name)."""
        ok = np.ones(self.combo_labels.shape[0], dtype=bool)
        for name, wanted in groups.items():
            cols = [i for i, lab in enumerate(self.labels)
                    if lab in wanted or ("" in wanted and lab.startswith(name + ":"))]
            ok &= self.combo_labels[:, cols].any(axis=1) if cols else False
        ids = np.flatnonzero(ok)
        if ids.size <= 8:
            mask = np.zeros(self.n, dtype=bool)
            for c in ids:
                mask |= self.combo == c
            return mask
        return ok[self.combo]

    def facet_counts(self, facet: str, rows: np.ndarray | None) -> dict[str, int]:
        codes = self.codes[facet] if rows is None else self.codes[facet][rows]
        counts = np.bincount(codes, minlength=len(self.values[facet]) + 1)
        return {self.values[facet][i - 1]: int(c) for i, c in enumerate(counts) if i and c}

    def label_counts(self, rows: np.ndarray | None) -> dict[str, int]:
        combos = self.combo if rows is None else self.combo[rows]
        per_combo = np.bincount(combos, minlength=self.combo_labels.shape[0])
        per_label = per_combo @ self.combo_labels
        return {lab: int(c) for lab, c in zip(self.labels, per_label) if c}


class Snapshot:
    """An attached set of stores and their in-memory indexes, immutable."""

    def __init__(self, stores: dict[str, Path], threads: int | None) -> None:
        config: dict[str, Any] = {}
        if threads:
            config["threads"] = threads
        self.con = duckdb.connect(":memory:", config=config)
        self.con.execute("SET enable_progress_bar = false")
        self.indexes: dict[str, RegionIndex] = {}
        for region, p in stores.items():
            if p.exists():
                self.con.execute(f"ATTACH '{_sql_str(str(p))}' AS st_{region} (READ_ONLY)")
                self.indexes[region] = RegionIndex(self.con, region)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()


class StoreSet:
    """The regions' stores attached read-only to one in-memory DuckDB, with
    their in-memory search indexes.

    ``stores`` maps region -> store file. ``snapshot()`` returns the current
    ``Snapshot``; when a store file was replaced by a linking run (checked at
    most once a second), a new snapshot is built in a background thread and
    swapped in when ready, so requests never wait for it and never see a mix.
    """

    def __init__(self, stores: dict[str, Path], threads: int | None = None,
                 data_root: Path | None = None) -> None:
        for region in stores:
            if not _REGION_RE.match(region):
                raise ValueError(f"bad region name {region!r}")
        self.stores = {r: Path(p) for r, p in sorted(stores.items())}
        self.threads = threads
        self._data_root = data_root
        self._lock = threading.Lock()
        self._snap: Snapshot | None = None
        self._stamp: tuple | None = None
        self._checked = 0.0
        self._reloading = False

    @classmethod
    def discover(cls, data_root: Path) -> "StoreSet":
        """Every ``<data_root>/<region>/store/consolidated.duckdb``, also those
        that appear later (the first linking run of a new region)."""
        return cls(cls._glob(Path(data_root)), data_root=Path(data_root))

    @staticmethod
    def _glob(data_root: Path) -> dict[str, Path]:
        return {p.parent.parent.name: p for p in sorted(data_root.glob(f"*/store/{STORE_NAME}"))
                if _REGION_RE.match(p.parent.parent.name)}

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
        if self._data_root is not None:
            self.stores = self._glob(self._data_root)
        out = []
        for region, p in self.stores.items():
            try:
                st = p.stat()
                out.append((region, st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append((region, None))
        return tuple(out)

    def _reload(self, stamp: tuple) -> None:
        try:
            snap = Snapshot(dict(self.stores), self.threads)
            with self._lock:
                self._snap, self._stamp = snap, stamp
            log.info("re-attached stores: %s", ", ".join(snap.indexes))
        except Exception:  # noqa: BLE001 - keep serving the previous snapshot
            log.exception("could not re-attach the stores; still serving the previous ones")
        finally:
            self._reloading = False

    def snapshot(self) -> Snapshot:
        now = time.monotonic()
        with self._lock:
            snap = self._snap
            check = snap is None or now - self._checked > 1.0
            if check:
                self._checked = now
        if not check:
            return snap
        stamp = self._current_stamp()
        if snap is None:
            with self._lock:
                if self._snap is None:
                    self._snap, self._stamp = Snapshot(dict(self.stores), self.threads), stamp
                return self._snap
        with self._lock:
            start = stamp != self._stamp and not self._reloading
            if start:
                self._reloading = True
        if start:
            # The old snapshot keeps serving (and stays alive while in use).
            threading.Thread(target=self._reload, args=(stamp,), daemon=True).start()
        return snap

    def wait_reloaded(self, timeout: float = 30.0) -> None:
        """Block until a store change seen now is attached (tests, CLI)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._checked = 0.0
        self.snapshot()
        while time.monotonic() < deadline:
            if not self._reloading and self._stamp == self._current_stamp():
                return
            time.sleep(0.05)
        raise TimeoutError("stores were not re-attached in time")

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.snapshot().cursor()

    def available(self, regions: list[str] | None, snap: Snapshot | None = None) -> list[str]:
        """Regions both requested (None = all) and attached."""
        present = sorted((snap or self.snapshot()).indexes)
        if regions is None:
            return present
        return [r for r in present if r in set(regions)]

    def source(self, regions: list[str], table: str = "search_studies") -> str:
        """SQL of the union of ``table`` over ``regions`` (already validated)."""
        if not regions:
            return f"(SELECT * FROM st_{next(iter(self.stores))}.{table} WHERE false)"
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
        "StudyDate": row["study_date"].replace("-", "") if row["study_date"] else None,
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


# Where the findings start in a report (es, pt, en): the excerpt starts there
# rather than at the letterhead and the (scrubbed) patient block.
_FINDINGS_RE = re.compile(r"\b(hallazgos|achados|findings)\b", re.I)


def excerpt(text: str | None, limit: int = EXCERPT_CHARS) -> str | None:
    """A short excerpt of a report for a result card, from its findings."""
    if not text:
        return None
    m = _FINDINGS_RE.search(text)
    flat = " ".join((text[m.start():] if m else text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rsplit(" ", 1)[0] + "…"


def _card(card: str) -> dict[str, Any]:
    """A result from the store's ``card`` JSON (see transforms.store_schema)."""
    return _result(json.loads(card))


def _result(row: dict[str, Any]) -> dict[str, Any]:
    text = row["report_text"]
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
        "study_date": row["study_date"],
        "study_description": row["study_description"],
        "age": row["age"],
        "sex": row["sex"],
        "manufacturer": row["manufacturer"],
        "labels": list(row["labels"] or []),
        "report_language": row["report_language"],
        "report_text": text,
        "report_excerpt": excerpt(text),
        "tags": _tags(row),
        "thumbnail_url": thumb,
    }


def _rows(cur: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]


def _keyword_mask(cur: duckdb.DuckDBPyConnection, idx: RegionIndex, words: list[str]) -> np.ndarray:
    """Rows containing every keyword, from the region's inverted index.

    Each word is matched (substring, accent-free) against the small
    ``search_vocab`` first; the study ids of the matching terms are then read
    from ``search_terms``, sorted by term, so only the row groups holding those
    terms are read. Terms are the store's own vocabulary, quoted as literals.
    """
    mask = np.ones(idx.n, dtype=bool)
    for w in words:
        terms = [t for (t,) in cur.execute(
            f"SELECT term FROM st_{idx.region}.search_vocab WHERE contains(term, lower(strip_accents(?)))",
            [w]).fetchall()]
        if not terms:
            return np.zeros(idx.n, dtype=bool)
        lits = ", ".join("'" + _sql_str(t) + "'" for t in terms)
        sids = cur.execute(
            f"SELECT sid FROM st_{idx.region}.search_terms WHERE term IN ({lits})").fetchnumpy()["sid"]
        hit = np.zeros(idx.n, dtype=bool)
        hit[np.asarray(sids, dtype=np.int64) - 1] = True
        mask &= hit
    return mask


def _region_search(
    cur: duckdb.DuckDBPyConnection, idx: RegionIndex, pf: _Parsed, sort: str, need: int
) -> tuple[int, dict[str, dict[str, int]], np.ndarray]:
    """Total, facet counts and the first ``need`` matching rows (in ``sort``
    order) of one region."""
    preds: dict[str, np.ndarray] = {}
    for facet, vals in pf.categorical.items():
        preds[facet] = idx.code_mask(facet, vals)
    if pf.age:
        preds["age"] = (idx.age >= pf.age[0]) & (idx.age <= pf.age[1])
    if pf.label_groups:
        preds["label"] = idx.label_mask(pf.label_groups)
    base = _keyword_mask(cur, idx, pf.words) if pf.words else None

    # fails[i]: how many filters row i fails; a facet's rows are those failing
    # none, or only that facet's own filter.
    fails = None
    if preds:
        fails = np.zeros(idx.n, dtype=np.uint8)
        for p in preds.values():
            fails += ~p
    if fails is None and base is None:
        ok = None
        total = idx.n
        rows_all = None
    else:
        ok = (fails == 0) if fails is not None else np.ones(idx.n, dtype=bool)
        if base is not None:
            ok &= base
        rows_all = np.flatnonzero(ok)
        total = int(rows_all.size)

    facets: dict[str, dict[str, int]] = {}
    for facet in FACETS:
        if facet in preds:
            own = fails == (~preds[facet]).astype(np.uint8)
            if base is not None:
                own &= base
            rows = np.flatnonzero(own)
        else:
            rows = rows_all
        facets[facet] = idx.label_counts(rows) if facet == "label" else idx.facet_counts(facet, rows)
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
    return {r["sid"] - 1: r for r in _rows(cur)}


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
    pf = _Parsed(filters)
    need = offset + filters.page_size
    total = 0
    facets: dict[str, dict[str, int]] = {f: {} for f in FACETS}
    firsts: dict[str, np.ndarray] = {}
    cur = snap.cursor()
    try:
        for r in regs:
            n, fc, first = _region_search(cur, snap.indexes[r], pf, filters.sort, need)
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
        fetched: dict[str, dict[int, dict]] = {}
        for r in {r for r, _i in page_rows}:
            fetched[r] = _fetch(cur, r, np.array([i for rr, i in page_rows if rr == r]), "card")
        results = [_card(fetched[r][i]["card"]) for r, i in page_rows]
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
        studies = [_card(c) for (c,) in cur.fetchall()]
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
        return _rows(cur)
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
        rows = _rows(cur)
        if not rows:
            return None
        out = _card(rows[0]["card"])
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
    return path
