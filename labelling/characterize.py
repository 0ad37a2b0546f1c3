"""Characterization of a study: demographics, image attributes, clinical context.

Seed 000 ("Demografía", "Atributos de la imagen", "Metadatos"): age group,
sex, ethnicity; resolution, pixel spacing, slice thickness, 2D vs 3D,
contrast, scan phase; care setting, symptoms, patient history, procedural
context. Each value comes with where it was read (``dicom``,
``description``, ``report``, ``derived``, ``labeller``) and a confidence
(include/labelling/characterization.yaml). Text values are matched like
concepts and must be asserted positively ("no fumador" is not a smoker).

Input is plain data (a header dict per study, the report text), so the
pipeline, the CLI and tests call the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from labelling.assertion import assert_mention
from labelling.concepts import synonym_pattern
from labelling.config import LabellingConfigError, data_dir, load_yaml, require
from labelling.cues import cues
from labelling.language import detect
from labelling.sections import splitter
from labelling.text import Document, fold

VOLUME_MODALITIES = {"CT", "MR", "PT", "NM"}
MIN_SLICES_FOR_VOLUME = 20


@dataclass(frozen=True)
class Characteristic:
    field: str
    value: str
    source: str
    confidence: float
    value_num: float | None = None
    evidence: str | None = None  # "start-end" in the report, or the DICOM attribute / description it came from

    def as_row(self) -> dict[str, Any]:
        return {"field": self.field, "value": self.value, "value_num": self.value_num, "source": self.source,
                "confidence": self.confidence, "evidence": self.evidence}


@dataclass
class StudyFacts:
    """What the pipeline knows of a study, as plain values (None when unknown)."""

    modality: str | None = None
    age_years: int | None = None
    patient_age: str | None = None  # DICOM PatientAge, e.g. "003D", "04M", "055Y"
    sex: str | None = None  # DICOM PatientSex: M, F, O
    ethnic_group: str | None = None
    rows: int | None = None
    cols: int | None = None
    frames: int | None = None
    pixel_spacing: float | None = None  # mm (row spacing)
    slice_thickness: float | None = None  # mm
    n_slices: int | None = None  # instances in the representative series
    mr_acquisition_type: str | None = None  # "2D" / "3D"
    contrast_agent: str | None = None  # ContrastBolusAgent
    descriptions: list[str] = field(default_factory=list)  # study/series/protocol descriptions
    report_text: str | None = None
    report_language: str | None = None


@dataclass
class Rules:
    text_fields: dict[str, list[tuple[str, re.Pattern[str]]]]  # field -> [(value, pattern)]
    scopes: dict[str, tuple[str, ...]]
    sources: dict[str, float]
    ethnic_codes: dict[str, str]

    @classmethod
    def load(cls) -> "Rules":
        path = data_dir() / "characterization.yaml"
        data = load_yaml(path)
        where = str(path)
        fields: dict[str, list[tuple[str, re.Pattern[str]]]] = {}
        for fname, values in require(data, "text_fields", dict, where).items():
            for value, terms in values.items():
                for i, t in enumerate(terms):
                    pattern, _plain = synonym_pattern(str(t), f"{where}: text_fields.{fname}.{value}[{i}]")
                    fields.setdefault(fname, []).append((value, pattern))
        scopes = {k: tuple(v) for k, v in require(data, "scopes", dict, where).items()}
        missing = set(fields) - set(scopes)
        if missing:
            raise LabellingConfigError(f"{where}: scopes: missing {sorted(missing)}")
        codes = {}
        for value, words in (data.get("ethnic_group_codes") or {}).items():
            for w in words:
                codes[fold(str(w)).upper()] = value
        return cls(fields, scopes, {k: float(v) for k, v in require(data, "sources", dict, where).items()}, codes)


@lru_cache(maxsize=1)
def rules() -> Rules:
    return Rules.load()


def age_group(age_years: int | None, patient_age: str | None = None) -> tuple[str, str] | None:
    """(group, source): neonatal < 28 days, pediatric < 18, adult < 65, geriatric >= 65."""
    days = None
    m = re.fullmatch(r"\s*(\d{1,3})\s*([DWMY])\s*", (patient_age or "").upper())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        days = n * {"D": 1, "W": 7, "M": 30.44, "Y": 365.25}[unit]
    elif age_years is not None:
        days = age_years * 365.25 + (0 if age_years else 180)  # "0 years" is under one year, not a newborn
    if days is None:
        return None
    if days < 28:
        return "neonatal", "dicom"
    years = days / 365.25
    if years < 18:
        return "pediatric", "dicom"
    return ("adult" if years < 65 else "geriatric"), "dicom"


_REPORT_AGE = re.compile(
    r"\b(?:(?P<n>\d{1,3})\s*(?:-|\s)?\s*(?P<u>anos|años|años de edad|year|years|yo|y/o|meses|months|month|dias|días|days|semanas|weeks)"
    r"(?:\s*-?\s*old)?|(?P<neo>neonato|neonata|recien nacido|recien nacida|recem nascido|recem nascida|newborn|neonate))\b")


def _report_age_group(folded: str) -> tuple[str, int, int] | None:
    m = _REPORT_AGE.search(folded)
    if not m:
        return None
    if m.group("neo"):
        return "neonatal", m.start(), m.end()
    n, u = int(m.group("n")), fold(m.group("u"))
    if u.startswith(("dia", "day")):
        g = "neonatal" if n < 28 else "pediatric"
    elif u.startswith(("sem", "week")):
        g = "neonatal" if n < 4 else "pediatric"
    elif u.startswith(("mes", "month")):
        g = "pediatric"
    else:
        g = "pediatric" if n < 18 else "adult" if n < 65 else "geriatric"
    return g, m.start(), m.end()


def _sex(code: str | None) -> str | None:
    return {"M": "male", "F": "female", "O": "other"}.get((code or "").strip().upper()[:1] or "")


def characterize(facts: StudyFacts, labels: list[Any] = ()) -> list[Characteristic]:
    """Every characteristic of one study (``labels``: the study's report labels, for prior conditions)."""
    r = rules()
    src = r.sources
    out: list[Characteristic] = []

    # -- demographics -----------------------------------------------------
    ag = age_group(facts.age_years, facts.patient_age)
    if ag:
        out.append(Characteristic("age_group", ag[0], "dicom", src["dicom"],
                                  float(facts.age_years) if facts.age_years is not None else None, "PatientAge"))
    sex = _sex(facts.sex)
    if sex:
        out.append(Characteristic("sex", sex, "dicom", src["dicom"], None, "PatientSex"))
    if facts.ethnic_group:
        key = fold(facts.ethnic_group).upper().strip()
        value = next((v for k, v in r.ethnic_codes.items() if k in key), None)
        if value:
            out.append(Characteristic("ethnicity", value, "dicom", src["dicom"], None, "EthnicGroup"))

    # -- image attributes ---------------------------------------------------
    if facts.rows and facts.cols:
        out.append(Characteristic("resolution", f"{facts.cols}x{facts.rows}", "dicom", src["dicom"],
                                  float(facts.rows * facts.cols), "Rows/Columns"))
    if facts.pixel_spacing:
        out.append(Characteristic("pixel_spacing_mm", f"{facts.pixel_spacing:g}", "dicom", src["dicom"],
                                  float(facts.pixel_spacing), "PixelSpacing"))
    if facts.slice_thickness:
        out.append(Characteristic("slice_thickness_mm", f"{facts.slice_thickness:g}", "dicom", src["dicom"],
                                  float(facts.slice_thickness), "SliceThickness"))
    dim = _dimensionality(facts)
    if dim:
        out.append(Characteristic("dimensionality", dim[0], "dicom", dim[1], None, dim[2]))
    if facts.contrast_agent and facts.contrast_agent.strip():
        out.append(Characteristic("contrast", "with_contrast", "dicom", src["dicom"], None, "ContrastBolusAgent"))

    # -- text fields ----------------------------------------------------------
    seen = {(c.field, c.value) for c in out}
    for c in _text_characteristics(facts, r, labels):
        if c.field == "contrast" and any(x.field == "contrast" for x in out):
            continue  # the coded attribute wins over words
        if (c.field, c.value) not in seen:
            seen.add((c.field, c.value))
            out.append(c)
    if not ag and facts.report_text:
        g = _report_age_group(fold(facts.report_text))
        if g:
            out.append(Characteristic("age_group", g[0], "report", src["report"], None, f"{g[1]}-{g[2]}"))
    return out


def _dimensionality(f: StudyFacts) -> tuple[str, float, str] | None:
    if (f.mr_acquisition_type or "").upper() == "3D":
        return "3D", 0.95, "MRAcquisitionType"
    if f.frames and f.frames > 1 and (f.modality or "").upper() in VOLUME_MODALITIES:
        return "3D", 0.9, "NumberOfFrames"
    if f.n_slices and f.n_slices >= MIN_SLICES_FOR_VOLUME and (f.modality or "").upper() in VOLUME_MODALITIES:
        return "3D", 0.85, "slices in series"
    if f.modality:
        return "2D", 0.8 if (f.modality or "").upper() in VOLUME_MODALITIES else 0.9, "modality"
    return None


def _text_characteristics(f: StudyFacts, r: Rules, labels: list[Any]) -> list[Characteristic]:
    out: list[Characteristic] = []
    desc = " . ".join(d for d in f.descriptions if d)
    pieces: list[tuple[str, str, int]] = []  # (scope, text, offset in report or -1)
    if desc:
        pieces.append(("descriptions", desc, -1))
    text = f.report_text or ""
    doc = Document.of(text) if text else None
    lang = f.report_language or (detect(text) if text else "es")
    cue_set = cues().by_language.get(lang) or cues().by_language["es"]
    cue_list = cue_set.find(doc) if doc else []
    if doc:
        lines = text.strip().splitlines()
        title_end = text.find(lines[0]) + len(lines[0]) if lines else 0
        pieces.append(("title", text[:title_end], 0))
        for s in splitter().split(doc):
            pieces.append((s.kind, text[s.start:s.end], s.start))
    for fname, patterns in r.text_fields.items():
        scopes = r.scopes.get(fname, ())
        for scope, piece, offset in pieces:
            if scope not in scopes:
                continue
            folded = fold(piece)
            for value, pattern in patterns:
                for m in pattern.finditer(folded):
                    if offset >= 0 and doc is not None:
                        s, e = offset + m.start(), offset + m.end()
                        if assert_mention(doc, s, e, cue_list, cues()).certainty != "positive":
                            continue
                        out.append(Characteristic(fname, value, "report", r.sources["report"], None, f"{s}-{e}"))
                    else:
                        out.append(Characteristic(fname, value, "description", r.sources["description"], None,
                                                  "description"))
                    break
    # Prior conditions: historical labels of the report.
    for lab in labels:
        if getattr(lab, "certainty", None) == "historical":
            ev = lab.evidence[0] if getattr(lab, "evidence", None) else None
            out.append(Characteristic("history", f"prior_{lab.concept}", "labeller", round(float(lab.confidence), 3),
                                      None, f"{ev.start}-{ev.end}" if ev else None))
    return out
