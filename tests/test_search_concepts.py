"""Search speaks concepts: a keyword naming a concept in es/pt/en finds its positive labels, never
the reports that rule it out (issue 13 §5)."""

from __future__ import annotations

import duckdb
import pytest

from sta.service.search import StoreSet, StudyFilters, search_studies
from synth.store_demo import write_demo_partners
from transforms.consolidate import consolidate_region, store_path


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    root = tmp_path_factory.mktemp("concepts")
    write_demo_partners(root, seed=4, studies_per_partner=40)
    for region in ("co", "br"):
        consolidate_region(region, root)
    return root, StoreSet.discover(root)


def _uids(stores, q: str) -> set[str]:
    _root, ss = stores
    out, page = set(), 1
    while True:
        res = search_studies(ss, StudyFilters(q=q, page_size=100, page=page), ["co", "br"])
        out |= {r["study_uid"] for r in res["results"]}
        if len(out) >= res["total"] or not res["results"]:
            return out
        page += 1


def _with_label(root, concept: str, certainty: str = "positive") -> set[str]:
    out = set()
    for region in ("co", "br"):
        with duckdb.connect(str(store_path(region, root)), read_only=True) as con:
            out |= {u for (u,) in con.execute(
                "SELECT DISTINCT study_uid FROM labels WHERE concept = ? AND certainty = ?",
                [concept, certainty]).fetchall()}
    return out


@pytest.mark.parametrize("concept, spellings", [
    ("nodule", ["nodulo", "Nódulo", "nodule", "NODULES"]),
    ("fracture", ["fractura", "fratura", "fracture"]),
    ("pneumonia", ["neumonía", "pneumonia"]),
])
def test_a_concept_in_any_language_finds_its_positive_labels(stores, concept, spellings):
    root, _ss = stores
    expected = _with_label(root, concept)
    assert expected, f"the demo store should hold positive {concept} labels"
    for q in spellings:
        assert _uids(stores, q) == expected, q


def test_a_report_that_rules_the_concept_out_is_not_a_hit(stores):
    root, _ss = stores
    ruled_out = _with_label(root, "nodule", "negative")
    hits = _uids(stores, "nodulo")
    assert not (ruled_out & hits)


def test_plain_keywords_still_match_words(stores):
    hits = _uids(stores, "calcificaciones")
    assert hits and not (hits & _uids(stores, "fracture"))
