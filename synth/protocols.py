"""Imaging protocols (what a study contains) and the findings a report can state.

A protocol fixes the modality, body part, series layout and the possible
findings; each finding has report text in Spanish, Portuguese and English
plus the labels a labeller should recover from it (``{"finding": ...}``,
``{"birads": "2"}``). ``body_region`` uses the vocabulary of
``foundation.schema.STUDIES``. The protocols are data in ``synth/data/protocols.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .tables import table


@dataclass(frozen=True)
class SeriesSpec:
    kind: str  # pixel phantom and image-type family (scout, axial, t1, t2, flair, pd, us, mg, xr)
    desc: str  # SeriesDescription
    count: tuple[int, int]  # images per series (inclusive range)
    view: str = ""  # PA, LAT, CC, MLO ... ('' when not a projection)
    laterality: str = ""  # R or L for paired organs


@dataclass(frozen=True)
class Finding:
    code: str
    labels: dict[str, str]
    text: dict[str, tuple[str, str]]  # language -> (findings paragraph, conclusion)
    weight: float = 1.0


@dataclass(frozen=True)
class Protocol:
    code: str
    modalities: tuple[str, ...]  # one is chosen per study (CR or DX for radiographs)
    body_part: str  # BodyPartExamined
    body_region: str
    title: dict[str, str]  # report title per language
    study_desc: dict[str, str]  # StudyDescription per partner country
    procedure: tuple[str, str]  # (code value, meaning) for ProcedureCodeSequence
    series: tuple[SeriesSpec, ...]
    findings: tuple[Finding, ...]
    indication: dict[str, str]
    sex: str | None = None
    min_age: int = 0
    max_series: int = 0  # 0: all series; else a random subset of at least 2
    weight: float = 1.0
    extra: dict[str, str] = field(default_factory=dict)


def _finding(d: dict) -> Finding:
    text = {lang: (t["findings"], t["conclusion"]) for lang, t in d["text"].items()}
    return Finding(d["code"], d["labels"], text, d.get("weight", 1.0))


def _protocol(d: dict) -> Protocol:
    series = tuple(SeriesSpec(s["kind"], s["desc"], tuple(s["count"]), s.get("view", ""), s.get("laterality", ""))
                   for s in d["series"])
    return Protocol(
        code=d["code"], modalities=tuple(d["modalities"]), body_part=d["body_part"], body_region=d["body_region"],
        title=d["title"], study_desc=d["study_desc"], procedure=tuple(d["procedure"]), series=series,
        findings=tuple(_finding(f) for f in d["findings"]), indication=d["indication"], sex=d.get("sex"),
        min_age=d.get("min_age", 0), max_series=d.get("max_series", 0), weight=d.get("weight", 1.0),
        extra=d.get("extra", {}),
    )


PROTOCOLS: tuple[Protocol, ...] = tuple(_protocol(d) for d in table("protocols")["protocols"])
MODALITIES: tuple[str, ...] = tuple(table("protocols")["modalities"])
