"""One region's searchable columns in memory (``RegionIndex``) and the
keyword lookup in the store's inverted index.

Why numpy: at a million studies a page with facet counts is about ten
group-bys over the filtered rows. Done as SQL on the store that was ~200-600
ms here (DuckDB's fixed cost per aggregate query, string columns, list columns
for labels); done on small integer codes with ``np.bincount`` it is a few
milliseconds per facet. The arrays cost about 30 bytes per study (30 MB per
million) and are built in seconds when a store is (re)attached. Report text,
tags and the keyword index stay in the DuckDB file and are read only for the
rows of the page.

Row ``i`` is the study with ``sid = i + 1`` (``search_studies`` is numbered
densely by ``transforms.store_schema.rebuild_search``).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np

from sta.service.search.filters import SORTS, label_family

NO_DATE = np.iinfo(np.int32).min
_EPOCH = dt.date(1970, 1, 1)


def day_number(iso: str) -> int:
    """Days since 1970-01-01 of an ISO date (the index's date unit)."""
    return (dt.date.fromisoformat(iso) - _EPOCH).days


def sql_str(s: str) -> str:
    """A string as the inside of a SQL literal."""
    return s.replace("'", "''")


class ListColumn:
    """A list column (labels, ``concept:certainty``, ``field:value``) as
    "combos": each distinct list is a combo, a study has one combo code; a
    0/1 matrix says which values each combo holds. A filter is a mask over
    the (few) combos gathered to the rows; counts are a bincount of combos
    times the matrix."""

    def __init__(self, codes: np.ndarray, combo_strings: list[str]) -> None:
        self.combo = np.asarray(codes, dtype=np.intp)  # intp: gathers need no widening
        combos = [[]] + [v.split("|") if v else [] for v in combo_strings]
        self.values = sorted({x for c in combos for x in c})
        pos = {x: i for i, x in enumerate(self.values)}
        self.matrix = np.zeros((len(combos), max(1, len(self.values))), dtype=np.int64)
        for ci, c in enumerate(combos):
            for x in c:
                self.matrix[ci, pos[x]] = 1

    def mask(self, groups: dict[str, set[str]], match) -> np.ndarray:  # noqa: ANN001
        """Rows whose list satisfies every group: some value of the list
        ``match(value, wanted)`` for each group."""
        n = self.combo.size
        ok = np.ones(self.matrix.shape[0], dtype=bool)
        for wanted in groups.values():
            cols = [i for i, x in enumerate(self.values) if match(x, wanted)]
            ok &= self.matrix[:, cols].any(axis=1) if cols else False
        ids = np.flatnonzero(ok)
        if ids.size <= 8:
            mask = np.zeros(n, dtype=bool)
            for c in ids:
                mask |= self.combo == c
            return mask
        return ok[self.combo]

    def counts(self, rows: np.ndarray | None) -> dict[str, int]:
        combos = self.combo if rows is None else self.combo[rows]
        per_combo = np.bincount(combos, minlength=self.matrix.shape[0])
        per_value = per_combo @ self.matrix
        return {x: int(c) for x, c in zip(self.values, per_value) if c}


def label_matches(concept: str, wanted: set[str]) -> bool:
    """A concept matches a wanted value equal to it or to its family."""
    return concept in wanted or label_family(concept) in wanted


def exact_matches(value: str, wanted: set[str]) -> bool:
    return value in wanted


class RegionIndex:
    """One region's filter columns as small integer numpy arrays."""

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
        lists = {"_labels": "labels", "_certainties": "label_certainties", "_characteristics": "characteristics"}
        for facet, col in {**self.CATEGORICAL, **{k: f"array_to_string({c}, '|')" for k, c in lists.items()}}.items():
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
            f"SELECT {', '.join(exprs)}, coalesce(age, -1)::SMALLINT AS age, "
            f"coalesce(date_diff('day', DATE '1970-01-01', study_date), {NO_DATE})::INTEGER AS day, "
            "slice_thickness::FLOAT AS thickness "
            f"FROM {src} ORDER BY sid"
        ).fetchnumpy()
        for facet in self.CATEGORICAL:
            self.codes[facet] = np.asarray(cols[facet], dtype=np.uint16 if len(self.values[facet]) < 65000 else np.uint32)
        self.age = np.asarray(cols["age"], dtype=np.int16)
        self.day = np.asarray(cols["day"], dtype=np.int32)
        thick = cols["thickness"]
        self.thickness = np.asarray(thick.filled(np.nan) if hasattr(thick, "filled") else thick, dtype=np.float32)
        # Thickness facet: per 0.5 mm (the slider's step); code 0 = unknown.
        half = np.where(np.isnan(self.thickness), 0, np.round(np.nan_to_num(self.thickness) * 2) + 1)
        self.codes["slice_thickness"] = np.minimum(half, 201).astype(np.uint16)
        self._has_thickness = bool(np.any(~np.isnan(self.thickness)))
        self.values["slice_thickness"] = [f"{i / 2:g}" for i in range(201)]
        decade = np.where(self.age >= 0, self.age // 10 + 1, 0).astype(np.uint16)
        self.codes["age"] = decade
        self.values["age"] = [str(d * 10) for d in range(int(decade.max(initial=0)))]
        self.lists = {
            "label": ListColumn(cols["labels"], self.values["_labels"]),
            "label_certainty": ListColumn(cols["certainties"], self.values["_certainties"]),
            "characteristic": ListColumn(cols["characteristics"], self.values["_characteristics"]),
        }
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

    def date_mask(self, date_from: str | None, date_to: str | None) -> np.ndarray:
        """Rows whose study date lies in [date_from, date_to] (either open)."""
        mask = self.day != NO_DATE
        if date_from:
            mask &= self.day >= day_number(date_from)
        if date_to:
            mask &= self.day <= day_number(date_to)
        return mask

    def thickness_mask(self, lo: float, hi: float) -> np.ndarray:
        return (self.thickness >= lo) & (self.thickness <= hi)  # NaN (unknown) is never inside

    def list_mask(self, facet: str, groups: dict[str, set[str]]) -> np.ndarray:
        return self.lists[facet].mask(groups, label_matches if facet == "label" else exact_matches)

    def facet_counts(self, facet: str, rows: np.ndarray | None) -> dict[str, int]:
        codes = self.codes[facet] if rows is None else self.codes[facet][rows]
        counts = np.bincount(codes, minlength=len(self.values[facet]) + 1)
        return {self.values[facet][i - 1]: int(c) for i, c in enumerate(counts) if i and c}

    def has_values(self, facet: str) -> bool:
        """False for a facet this store has nothing for (no characterization,
        no slice thickness): its counts are skipped."""
        if facet in self.lists:
            return bool(self.lists[facet].values)
        if facet == "slice_thickness":
            return self._has_thickness
        return True

    def list_counts(self, facet: str, rows: np.ndarray | None) -> dict[str, int]:
        return self.lists[facet].counts(rows)


def keyword_mask(cur: duckdb.DuckDBPyConnection, idx: RegionIndex, words: list[str]) -> np.ndarray:
    """Rows containing every keyword, from the region's inverted index.

    Each keyword is lower-cased and stripped of accents by DuckDB's own
    ``strip_accents`` (the same function that built ``search_text``) and must
    be part of a word of the study's text; all keywords must occur (AND).
    Substring matching makes 'nodul' find 'nódulo', 'nódulos' and 'nodule'.
    Each word is matched against the small ``search_vocab`` first; the study
    ids of the matching terms are then read from ``search_terms``, sorted by
    term, so only the row groups holding those terms are read. Terms are the
    store's own vocabulary, quoted as literals.
    """
    mask = np.ones(idx.n, dtype=bool)
    for w in words:
        terms = [t for (t,) in cur.execute(
            f"SELECT term FROM st_{idx.region}.search_vocab WHERE contains(term, lower(strip_accents(?)))",
            [w]).fetchall()]
        if not terms:
            return np.zeros(idx.n, dtype=bool)
        lits = ", ".join("'" + sql_str(t) + "'" for t in terms)
        sids = cur.execute(
            f"SELECT sid FROM st_{idx.region}.search_terms WHERE term IN ({lits})").fetchnumpy()["sid"]
        hit = np.zeros(idx.n, dtype=bool)
        hit[np.asarray(sids, dtype=np.int64) - 1] = True
        mask &= hit
    return mask



def concept_keyword_mask(cur: duckdb.DuckDBPyConnection, idx: RegionIndex,
                         plan: list[tuple[tuple[str, ...], tuple[str, ...]]]) -> np.ndarray:
    """Rows matching every term of a keyword plan (``filters.keyword_plan``).

    A concept term matches the concept's positive labels, so ``nodule``,
    ``nódulo`` and ``nodulo`` give the same studies and a report that rules
    the finding out is never a hit; a store without labels falls back to the
    words. A plain term matches its words.
    """
    mask = np.ones(idx.n, dtype=bool)
    for concepts, words in plan:
        if concepts and "label" in idx.lists and idx.lists["label"].values:
            mask &= idx.list_mask("label", {"concept": set(concepts)})
        else:
            mask &= keyword_mask(cur, idx, list(words))
    return mask
