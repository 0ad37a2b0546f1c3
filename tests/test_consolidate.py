"""Patient-token linking into the per-region consolidated stores, and the
pipeline's thumbnails."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pytest

from sta.service.search import StoreSet, patient_timeline
from transforms.consolidate import ConsolidationError, consolidate_region, store_path
from foundation.schema import TABLES
from synth.store_demo import DEMO_PARTNERS, build_demo_rows, demo_token, write_demo_partners, write_partner
from transforms.thumbnails import make_thumbnail


def _table_rows(store: Path, table: str) -> list[tuple]:
    con = duckdb.connect(str(store), read_only=True)
    try:
        cols = ", ".join(TABLES[table].names)
        return con.execute(f"SELECT {cols} FROM {table} ORDER BY ALL").fetchall()
    finally:
        con.close()


@pytest.fixture()
def published(tmp_path: Path) -> tuple[Path, dict]:
    rows = write_demo_partners(tmp_path)
    return tmp_path, rows


def test_patient_seen_at_both_partners_keeps_one_token_and_full_timeline(published):
    root, rows = published
    summary = consolidate_region("co", root)
    consolidate_region("br", root)
    token = demo_token(0)
    # Independently: every study of person 0 at every partner.
    expected = sorted(
        s["study_uid"] for pid in rows for s in rows[pid]["studies"] if s["patient_token"] == token
    )
    partners = {s["partner_id"] for pid in rows for s in rows[pid]["studies"] if s["patient_token"] == token}
    assert partners == {"co_hospital_norte", "co_clinica_sur", "br_hospital_sp"}
    assert summary["patients_multi_partner"] >= 1

    # The co store links the two co partners under the one token ...
    con = duckdb.connect(str(store_path("co", root)), read_only=True)
    co_partners = {r[0] for r in con.execute(
        "SELECT DISTINCT partner_id FROM search_studies WHERE patient_token = ?", [token]).fetchall()}
    con.close()
    assert co_partners == {"co_hospital_norte", "co_clinica_sur"}

    # ... and the federated timeline shows both regions, oldest first.
    timeline = patient_timeline(StoreSet.discover(root), token)
    assert sorted(s["study_uid"] for s in timeline["studies"]) == expected
    assert timeline["regions"] == ["br", "co"]
    dates = [s["study_date"] for s in timeline["studies"]]
    assert dates == sorted(dates)


def test_linking_twice_gives_the_same_rows(published):
    root, _ = published
    first = consolidate_region("co", root)
    before = {t: _table_rows(store_path("co", root), t) for t in TABLES}
    second = consolidate_region("co", root)
    assert first["changed"] and not second["changed"]
    assert all(p["status"] == "unchanged" for p in second["partners"].values())
    # Re-publishing identical Parquet (new files, same rows) reloads and changes nothing.
    write_demo_partners(root)
    third = consolidate_region("co", root)
    assert third["changed"]
    after = {t: _table_rows(store_path("co", root), t) for t in TABLES}
    assert after == before
    assert third["totals"] == first["totals"]


def test_republishing_partner_replaces_only_its_own_rows(published):
    root, rows = published
    consolidate_region("co", root)
    store = store_path("co", root)
    norte_before = [r for r in _table_rows(store, "studies") if r[2] == "co_hospital_norte"]

    smaller = {t: v[:5] if t == "studies" else v for t, v in rows["co_clinica_sur"].items()}
    write_partner(root, "co", "co_clinica_sur", smaller)
    out = consolidate_region("co", root)
    assert out["partners"]["co_clinica_sur"]["status"] == "loaded"
    assert out["partners"]["co_hospital_norte"]["status"] == "unchanged"

    studies = _table_rows(store, "studies")
    assert [r for r in studies if r[2] == "co_hospital_norte"] == norte_before
    assert sorted(r[0] for r in studies if r[2] == "co_clinica_sur") == sorted(
        s["study_uid"] for s in smaller["studies"])
    con = duckdb.connect(str(store), read_only=True)
    n_search = con.execute("SELECT count(*) FROM search_studies").fetchone()[0]
    con.close()
    assert n_search == len(norte_before) + 5


def test_store_never_holds_rows_of_another_region(published):
    root, rows = published
    consolidate_region("co", root)
    consolidate_region("br", root)
    for region in ("co", "br"):
        con = duckdb.connect(str(store_path(region, root)), read_only=True)
        for table in ("patients", "studies", "search_studies"):
            regions = {r[0] for r in con.execute(f"SELECT DISTINCT region FROM {table}").fetchall()}
            assert regions == {region}, (region, table, regions)
        partners = {r[0] for r in con.execute("SELECT DISTINCT partner_id FROM studies").fetchall()}
        assert partners == {pid for r, _c, pid, _l in DEMO_PARTNERS if r == region}
        con.close()


def test_partner_folder_with_rows_of_another_region_is_refused(published):
    root, rows = published
    consolidate_region("co", root)
    # A 'br' partner's rows dropped into the co tree must not enter the co store.
    write_partner(root, "co", "br_hospital_sp", rows["br_hospital_sp"], thumbnails=False)
    with pytest.raises(ConsolidationError, match="region"):
        consolidate_region("co", root)
    con = duckdb.connect(str(store_path("co", root)), read_only=True)
    assert con.execute("SELECT count(*) FROM studies WHERE region <> 'co' OR partner_id = 'br_hospital_sp'"
                       ).fetchone()[0] == 0
    con.close()


def test_partner_publishing_another_partners_rows_is_refused_and_others_still_load(tmp_path):
    rows = build_demo_rows()
    write_partner(tmp_path, "co", "co_hospital_norte", rows["co_hospital_norte"])
    write_partner(tmp_path, "co", "co_intruso", rows["co_clinica_sur"])  # rows say co_clinica_sur
    with pytest.raises(ConsolidationError, match="co_intruso"):
        consolidate_region("co", tmp_path)
    con = duckdb.connect(str(store_path("co", tmp_path)), read_only=True)
    assert {r[0] for r in con.execute("SELECT DISTINCT partner_id FROM studies").fetchall()} == {
        "co_hospital_norte"}
    con.close()


def test_store_replaced_atomically_and_readers_keep_working(published):
    root, _ = published
    consolidate_region("co", root)
    store = store_path("co", root)
    reader = duckdb.connect(str(store), read_only=True)  # e.g. the running service
    ino = store.stat().st_ino
    write_demo_partners(root, seed=1)  # different rows
    consolidate_region("co", root)  # must not be blocked by the open reader
    assert store.stat().st_ino != ino
    assert reader.execute("SELECT count(*) FROM studies").fetchone()[0] == 48  # old snapshot
    reader.close()
    assert not list(store.parent.glob("*.tmp"))


def test_empty_region_gives_an_empty_store(tmp_path):
    out = consolidate_region("ar", tmp_path)
    assert out["totals"]["studies"] == 0
    assert store_path("ar", tmp_path).exists()


def _dicom(path: Path, pixels: np.ndarray | None, photometric: str = "MONOCHROME2") -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MG"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = photometric
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        ds.PixelRepresentation = 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def test_thumbnail_is_small_png_or_webp_of_the_pixels(tmp_path):
    from PIL import Image

    ramp = np.tile(np.linspace(0, 4000, 300), (200, 1))  # dark left, bright right
    src = _dicom(tmp_path / "img.dcm", ramp)
    png = make_thumbnail(src, tmp_path / "t" / "img.png")
    webp = make_thumbnail(src, tmp_path / "t" / "img.webp", size=64)
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (128, 85)
        a = np.asarray(im)
        assert a[:, :10].mean() < 40 and a[:, -10:].mean() > 215
    with Image.open(webp) as im:
        assert im.format == "WEBP" and max(im.size) == 64
    inv = make_thumbnail(_dicom(tmp_path / "inv.dcm", ramp, "MONOCHROME1"), tmp_path / "inv.png")
    with Image.open(inv) as im:
        a = np.asarray(im)
        assert a[:, :10].mean() > 215  # MONOCHROME1: low values are white


def test_thumbnail_is_none_without_pixel_data(tmp_path):
    src = _dicom(tmp_path / "sr.dcm", None)
    assert make_thumbnail(src, tmp_path / "sr.png") is None
    assert not (tmp_path / "sr.png").exists()


@pytest.mark.dag
def test_link_dag_per_region_runs_on_its_partners_assets(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    pdir = tmp_path / "partners"
    pdir.mkdir()
    for region, _c, pid, _l in DEMO_PARTNERS:
        (pdir / f"{pid}.yaml").write_text(
            f"id: {pid}\nname: {pid}\ncountry: {region}\nregion: {region}\n"
            f"source: {{type: folder, path: landing/{pid}}}\n"
        )
    monkeypatch.setenv("STA_PARTNERS_DIR", str(pdir))
    monkeypatch.setenv("STA_DATA_ROOT", str(tmp_path / "data"))
    write_demo_partners(tmp_path / "data")
    dag_file = Path(__file__).resolve().parent.parent / "dags" / "link_regions.py"
    bag = DagBag(dag_folder=str(dag_file))
    assert not bag.import_errors, bag.import_errors
    assert set(bag.dag_ids) == {"link_co", "link_br"}
    co = bag.dags["link_co"]
    condition = co.timetable.asset_condition
    assert type(condition).__name__ == "AssetAny"
    assert {(a.name, a.uri) for a in condition.objects} == {
        ("published_co_hospital_norte", "sta://co/co_hospital_norte/parquet"),
        ("published_co_clinica_sur", "sta://co/co_clinica_sur/parquet"),
    }
    assert [t.task_id for t in co.tasks] == ["consolidate"]
    # The task is a thin call of consolidate_region for its region.
    out = co.get_task("consolidate").python_callable()
    assert out["region"] == "co" and out["totals"]["studies"] == 48


def test_linking_reads_only_the_tables_a_publication_changed(tmp_path):
    """A partner publishing in the partitioned layout: a run that adds only
    labels makes linking reload only the labels table of that partner."""
    import pyarrow as pa

    from foundation.schema import PRIMARY_KEYS
    from transforms.parquet_store import PartnerTables

    rows = build_demo_rows(0, 6)
    pid = "co_hospital_norte"
    region = next(r for r, _c, p, _l in DEMO_PARTNERS if p == pid)
    published = PartnerTables(tmp_path / region / "partners" / pid / "parquet")
    published.upsert({t: (pa.Table.from_pylist(rows[pid].get(t, []), schema=s), PRIMARY_KEYS[t])
                      for t, s in TABLES.items()})
    first = consolidate_region(region, tmp_path)
    assert first["partners"][pid]["tables"] == sorted(TABLES)
    study = rows[pid]["studies"][0]["study_uid"]
    extra = pa.Table.from_pylist([{"study_uid": study, "partner_id": pid, "concept": "extra", "certainty": "positive",
                                   "confidence": 0.5, "model": "t", "model_version": "1"}], schema=TABLES["labels"])
    published.upsert({"labels": (extra, PRIMARY_KEYS["labels"])})
    second = consolidate_region(region, tmp_path)
    assert second["partners"][pid]["tables"] == ["labels"]
    labels = [r for r in _table_rows(store_path(region, tmp_path), "labels") if r[2] == "extra"]
    assert len(labels) == 1
    assert consolidate_region(region, tmp_path)["partners"][pid]["status"] == "unchanged"
