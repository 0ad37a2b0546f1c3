"""Medication library: units, dictated orders (es/pt), drug names, catalogue validation,
the history rule, and the CLI interface end to end (load-history -> train -> check)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

from medication.catalogue import CatalogueError, default_catalogue, load_catalogue
from medication.resolve import Resolver
from medication.spoken import parse_frequency, parse_spoken
from medication.units import canonical_unit, normalise_dose, parse_number, parse_strength

CAT = default_catalogue()
PROJECT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------ units
@pytest.mark.parametrize("text,unit", [("mg", "mg"), ("Miligramos", "mg"), ("miligramas", "mg"), ("MG", "mg"),
                                       ("µg", "mcg"), ("μg", "mcg"), ("ug", "mcg"), ("mcg", "mcg"),
                                       ("microgramos", "mcg"), ("g", "g"), ("gramos", "g"), ("UI", "IU"),
                                       ("IU", "IU"), ("unidades", "IU"), ("mL", "mL"), ("cc", "mL"),
                                       ("comprimidos", "tablet"), ("tabletas", "tablet"), ("cápsulas", "capsule"),
                                       ("jatos", "puff"), ("inhalaciones", "puff"), ("gotas", "drop")])
def test_unit_spellings(text, unit):
    assert canonical_unit(text) == unit


@pytest.mark.parametrize("text,value", [("2,5", 2.5), ("0.5", 0.5), ("1.000,5", 1000.5), ("1,000.5", 1000.5),
                                        ("12,500,000", 12500000), ("½", 0.5), ("1/2", 0.5), (500, 500)])
def test_numbers_with_decimal_commas(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize("text,expected", [("mg/kg", ("mg", True, False)), ("mg/kg/día", ("mg", True, True)),
                                           ("mcg/kg/dia", ("mcg", True, True)), ("UI/kg", ("IU", True, False)),
                                           ("mg/día", ("mg", False, True)), ("mg al día", ("mg", False, True)),
                                           ("miligramos", ("mg", False, False))])
def test_per_kg_and_per_day_units(text, expected):
    from medication.units import split_unit

    assert split_unit(text) == expected


def test_per_kg_order_is_dosed_by_weight():
    from medication.checks import validate
    from medication.order import Order

    o = Order(order_id="k", patient_token="t", age=4, sex="F", weight_kg=16, diagnosis="J02", drug_text="amoxicilina",
              dose=50, unit_text="mg/kg/día", frequency_per_day=3)
    check, n = validate(o, CAT, Resolver(CAT))
    assert n is not None and n.daily_dose == pytest.approx(800), check.reason
    o2 = o.model_copy(update={"dose": 15, "unit_text": "mg/kg"})  # per dose
    assert validate(o2, CAT, Resolver(CAT))[1].daily_dose == pytest.approx(720)


def test_unknown_unit_and_bad_number():
    assert canonical_unit("furlongs") is None
    with pytest.raises(ValueError):
        parse_number("cinco")


def dose(drug_id: str, value: float, unit: str, hint: str | None = None):
    d = CAT.drugs[drug_id]
    return normalise_dose(value, canonical_unit(unit), base=d.base_unit, iu_per_mg=d.iu_per_mg, forms=d.forms,
                          strength_hint=parse_strength(hint) if hint else None)


def test_mass_units_normalise_to_mg():
    assert dose("levothyroxine", 100, "mcg").value == pytest.approx(0.1)
    assert dose("amoxicillin", 1, "g").value == 1000
    assert dose("amoxicillin", 500, "µg").value == pytest.approx(0.5)


def test_iu_and_mass_convert_when_the_catalogue_says_how():
    assert dose("cholecalciferol", 25, "mcg").value == pytest.approx(1000)  # 40 IU = 1 mcg
    assert dose("enoxaparin", 4000, "UI").value == pytest.approx(40)        # 100 IU = 1 mg


def test_volume_through_the_liquid_concentration():
    assert dose("ondansetron", 5, "mL").value == pytest.approx(4)            # 4 mg/5 mL, the only liquid
    assert dose("paracetamol", 5, "mL", "160 mg/5 mL").value == pytest.approx(160)
    many = dose("paracetamol", 5, "mL")                                       # three concentrations, none given
    assert not many.converted and many.unit == "mL"


def test_counted_units_times_strength():
    assert dose("azithromycin", 1, "tablet", "500 mg").value == 500
    assert dose("salbutamol", 2, "puff").value == pytest.approx(0.2)           # 2 x 100 mcg
    assert dose("cholecalciferol", 10, "gotas").value == pytest.approx(2000)   # 200 IU/drop
    assert not dose("amoxicillin", 2, "capsule").converted                    # 250 or 500 mg?


@pytest.mark.parametrize("drug_id,unit", [("amoxicillin", "UI"), ("metformin", "mL"), ("salbutamol", "tablet"),
                                          ("levothyroxine", "puff")])
def test_units_incompatible_with_the_drug_are_errors(drug_id, unit):
    with pytest.raises(ValueError, match="incompatible"):
        dose(drug_id, 1, unit)


# ------------------------------------------------------------------ dictated orders
SPOKEN = json.loads(json.dumps(__import__("synth.medication", fromlist=["SPOKEN"]).SPOKEN))


@pytest.mark.parametrize("case", SPOKEN, ids=[c["text"][:30] for c in SPOKEN])
def test_spoken_orders_parse_to_the_fields(case):
    p = parse_spoken(case["text"], case["lang"])
    exp = case["expect"]
    assert Resolver(CAT).resolve(p.drug).key == exp["drug"]
    for k in ("dose", "unit", "frequency_per_day", "duration_days"):
        if k in exp:
            assert getattr(p, k) == exp[k], (k, p)


@pytest.mark.parametrize("text,per_day", [("cada 8 horas", 3), ("c/12h", 2), ("de 6 em 6 horas", 4), ("q8h", 3),
                                          ("tres veces al día", 3), ("duas vezes ao dia", 2), ("BID", 2),
                                          ("TID", 3), ("QID", 4), ("una vez al día", 1), ("uma vez ao dia", 1),
                                          ("por la noche", 1), ("una vez por semana", pytest.approx(1 / 7))])
def test_frequencies(text, per_day):
    assert parse_frequency(text) == per_day


def test_language_is_detected_and_decimal_words_read():
    p = parse_spoken("warfarina dos coma cinco miligramos una vez al día")
    assert p.language == "es" and p.dose == 2.5 and p.unit == "mg"
    p = parse_spoken("varfarina cinco miligramas uma vez ao dia durante duas semanas")
    assert p.language == "pt" and p.duration_days == 14


def test_spoken_order_without_a_dose_says_so():
    p = parse_spoken("amoxicilina cada ocho horas")
    assert "dose" in p.missing and p.frequency_per_day == 3


# ------------------------------------------------------------------ drug names
@pytest.mark.parametrize("text,drug_id", [("amoxicilina", "amoxicillin"), ("Amoxil 500 mg cápsulas", "amoxicillin"),
                                          ("acetaminofén", "paracetamol"), ("Dolex", "paracetamol"),
                                          ("dipirona", "metamizole"), ("anlodipino", "amlodipine"),
                                          ("sinvastatina", "simvastatin"), ("varfarina", "warfarin"),
                                          ("losartán potásico", "losartan"), ("AAS", "acetylsalicylic_acid"),
                                          ("amoxicilna", "amoxicillin"), ("omeprasol", "omeprazole")])
def test_drug_names_in_any_language_brand_or_misspelt(text, drug_id):
    assert Resolver(CAT).resolve(text).key == drug_id


def test_look_alike_spelling_is_flagged_not_guessed():
    r = Resolver(CAT).resolve("hidrozalina")
    assert r.drug is None and r.how in ("ambiguous", "unknown")
    names = [c for c, _ in r.candidates[:2]]
    assert "hydralazine" in names


def test_unknown_drug_is_unknown():
    r = Resolver(CAT).resolve("ranolazina")
    assert r.drug is None and r.key == "x:ranolazina"


# ------------------------------------------------------------------ catalogue validation
def test_catalogue_loads_and_is_sourced():
    assert len(CAT.drugs) >= 40 and all(d.atc for d in CAT.drugs.values())
    text = (PROJECT / "include" / "medication" / "drugs.yaml").read_text()
    assert "WHO" in text and "FDA" in text


def _copy_catalogue(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    d = tmp_path / "cat"
    d.mkdir(parents=True)
    for f in ("drugs.yaml", "icd10.csv", "prescribers.csv"):
        (d / f).write_text((PROJECT / "include" / "medication" / f).read_text())
    (d / "drugs.yaml").write_text(edit((d / "drugs.yaml").read_text()))
    return d


def test_a_bad_catalogue_entry_names_file_entry_and_field(tmp_path):
    d = _copy_catalogue(tmp_path, lambda t: t.replace("usual: [750, 3000], max: 4000", "usual: [750, 3000], max: 40", 1))
    with pytest.raises(CatalogueError, match=r"drugs.yaml: drugs\[0\] \(amoxicillin\).*usual"):
        load_catalogue(d)
    d2 = _copy_catalogue(tmp_path / "b", lambda t: t.replace("capsule: [250 mg, 500 mg], tablet", "capsule: [250 zz], tablet", 1))
    with pytest.raises(CatalogueError, match="amoxicillin.*unknown unit"):
        load_catalogue(d2)


# ------------------------------------------------------------------ history rule
def _norm(daily: float, when: date, permanent: bool = False):
    from medication.checks import validate
    from medication.order import Order

    o = Order(order_id="o", patient_token="t", age=50, sex="F", weight_kg=70, diagnosis="E03", drug_text="levotiroxina",
              dose=daily * 1000, unit_text="mcg", frequency_per_day=1, date=when, permanent=permanent)
    return validate(o, CAT, Resolver(CAT))[1]


def test_history_rules():
    from medication.checks import history

    today = date(2025, 9, 1)
    flat = [(today - timedelta(days=30 * i), 0.1, False) for i in range(1, 5)]
    assert history(_norm(0.1, today), flat, CAT).result == "pass"
    assert history(_norm(0.25, today), flat, CAT).result == "anomaly"     # 2.5x, no spread: ratio rule
    assert history(_norm(0.15, today), flat, CAT).result == "pass"        # 1.5x is inside [0.5, 2]
    spread = [(today - timedelta(days=30 * i), v, False) for i, v in enumerate([0.1, 0.112, 0.1, 0.088, 0.1], 1)]
    assert history(_norm(0.01, today), spread, CAT).result == "anomaly"   # z far beyond, ratio 0.1
    old = [(today - timedelta(days=400 + i), 0.1, False) for i in range(5)]
    assert history(_norm(0.25, today), old, CAT).result == "skip"         # not recurrent within 12 months
    assert history(_norm(0.25, today, permanent=True), flat[:1], CAT).result == "anomaly"  # permanent: one is enough
    titrated = [(today - timedelta(days=30 * i), v, False) for i, v in enumerate([0.15, 0.1, 0.1, 0.1, 0.1], 1)]
    assert history(_norm(0.15, today), titrated, CAT).result == "pass"    # same as the latest order


# ------------------------------------------------------------------ the CLI interface
def test_cli_load_history_train_check(tmp_path):
    from synth.medication import generate, score

    data = tmp_path / "data"
    generate(data, patients=150, seed=21)
    env = {"STA_RX_STORE": str(tmp_path / "store"), "STA_SECRET_KEY": "k" * 32, "PATH": "/usr/bin:/bin",
           "OMP_THREAD_LIMIT": "1"}
    sta = [sys.executable, "-m", "sta.cli", "rx"]

    def run(*args: str) -> subprocess.CompletedProcess:
        cp = subprocess.run([*sta, *args], capture_output=True, text=True, env=env, cwd=PROJECT, timeout=300)
        assert cp.returncode == 0, cp.stderr
        return cp

    loaded = json.loads(run("load-history", str(data / "history.jsonl")).stdout)
    assert loaded["valid"] == loaded["lines"] > 1000
    trained = json.loads(run("train").stdout)
    assert trained["forests"] > 10 and trained["model_version"].startswith("rcf3-")
    lines = [json.loads(x) for x in run("check", str(data / "orders.jsonl"), "--json").stdout.splitlines()]
    truth = json.loads((data / "truth.json").read_text())
    assert len(lines) == len(truth)
    for line in lines:
        assert set(line) >= {"order_id", "verdict", "checks"} and line["verdict"] in ("ok", "anomaly", "rejected")
        assert all(set(c) == {"name", "result", "score", "reason"} for c in line["checks"])
    result = score(lines, truth)
    assert result["dose_errors_recall"] >= 0.95 and result["precision"] >= 0.95, result
    raw = (data / "history.jsonl").read_text()
    store_bytes = (tmp_path / "store" / "orders.duckdb").read_bytes()
    first_id = json.loads(raw.splitlines()[0])["patient_id"].encode()
    assert first_id not in store_bytes  # patient ids are tokenized before anything is stored


def test_cli_check_reports_a_broken_line_and_goes_on(tmp_path):
    f = tmp_path / "orders.jsonl"
    f.write_text('{"order_id": "a", "drug": "amoxicilina", "dose": 500, "unit": "mg", "frequency_per_day": 3, '
                 '"patient_id": "p", "diagnosis": "J02", "age": 30, "weight_kg": 70}\nnot json\n')
    env = {"STA_RX_STORE": str(tmp_path / "store"), "STA_SECRET_KEY": "k" * 32, "PATH": "/usr/bin:/bin"}
    cp = subprocess.run([sys.executable, "-m", "sta.cli", "rx", "check", str(f), "--json"], capture_output=True,
                        text=True, env=env, cwd=PROJECT, timeout=120)
    assert cp.returncode == 0, cp.stderr
    out = [json.loads(x) for x in cp.stdout.splitlines()]
    assert out[0]["order_id"] == "a" and out[0]["verdict"] == "ok"
    assert out[1]["verdict"] == "rejected" and "line 2" in out[1]["checks"][0]["reason"]
