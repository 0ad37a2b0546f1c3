"""Labelling clusters: modality x body region, declared as data (include/labelling/clusters/*.yaml).

Seed 000, flujo 2-3: studies are grouped so that the pipelines and models
trained for one kind of exam (modality), body part and pathology run on
them. A cluster file says which studies it takes (modalities, regions,
optional keywords of the study/series descriptions or the report title) and
what applies to them (the concepts kept, whether "derrame" means a pleural
effusion, the models, the characterization). The highest ``priority`` among
matching clusters wins; ``general`` (priority 0, matches anything) takes the
rest. Adding a cluster is adding a file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from labelling.config import LabellingConfigError, data_dir, load_yaml, require
from labelling.regions import REGIONS
from labelling.text import fold

ALWAYS = ("normal", "abnormal", "benign", "malignant")  # kept in every cluster, with the BI-RADS/TI-RADS scores
MODELS = ("rules", "status_model")


@dataclass(frozen=True)
class Cluster:
    id: str
    name: dict[str, str]
    modalities: tuple[str, ...]  # empty: any
    regions: tuple[str, ...]  # empty: any (unknown included)
    keywords: tuple[str, ...]  # empty: no keyword needed
    priority: int
    chest: bool | None  # None: decided from the report's words
    concepts: frozenset[str] | None  # None: all
    models: tuple[str, ...]
    characterize: tuple[str, ...]
    path: Path

    def matches(self, modality: str | None, region: str, texts: str) -> bool:
        if self.modalities and (modality or "").upper() not in self.modalities:
            return False
        if self.regions and region not in self.regions:
            return False
        if self.keywords:
            words = set(re.findall(r"[A-Z0-9]+", fold(texts).upper()))
            return any(k in words for k in self.keywords)
        return True

    def keeps(self, concept: str) -> bool:
        if self.concepts is None or concept in ALWAYS:
            return True
        if re.fullmatch(r"(?:birads|tirads)_\d", concept):
            return True
        return concept in self.concepts


def _load(path: Path, known_concepts: set[str]) -> Cluster:
    data = load_yaml(path)
    where = str(path)
    cid = require(data, "id", str, where)
    if cid != path.stem:
        raise LabellingConfigError(f"{where}: id {cid!r} must be the file name ({path.stem!r})")
    match = require(data, "match", dict, where)
    regions = tuple(match.get("regions") or ())
    bad = [r for r in regions if r not in REGIONS]
    if bad:
        raise LabellingConfigError(f"{where}: match.regions: unknown {bad} (one of {', '.join(REGIONS)})")
    concepts = data.get("concepts", "all")
    if concepts != "all":
        if not isinstance(concepts, list):
            raise LabellingConfigError(f"{where}: concepts: 'all' or a list of concept ids")
        unknown = [c for c in concepts if c not in known_concepts]
        if unknown:
            raise LabellingConfigError(f"{where}: concepts: unknown concept ids {unknown} (include/labelling/concepts.yaml)")
    models = tuple(data.get("models") or ("rules",))
    if any(m not in MODELS for m in models):
        raise LabellingConfigError(f"{where}: models: each one of {', '.join(MODELS)}")
    name = require(data, "name", dict, where)
    return Cluster(
        id=cid, name={k: str(v) for k, v in name.items()},
        modalities=tuple(str(m).upper() for m in match.get("modalities") or ()),
        regions=regions, keywords=tuple(fold(str(k)).upper() for k in match.get("keywords") or ()),
        priority=int(data.get("priority", 10)), chest=data.get("chest"),
        concepts=None if concepts == "all" else frozenset(concepts), models=models,
        characterize=tuple(data.get("characterize") or ()), path=path,
    )


@dataclass
class Clusters:
    clusters: list[Cluster]  # by priority, highest first

    @classmethod
    def load(cls, directory: Path | None = None) -> "Clusters":
        from labelling.concepts import vocabulary

        directory = directory or data_dir() / "clusters"
        files = sorted(directory.glob("*.yaml"))
        if not files:
            raise LabellingConfigError(f"{directory}: no cluster files")
        known = set(vocabulary().concepts)
        clusters = sorted((_load(f, known) for f in files), key=lambda c: (-c.priority, c.id))
        if not any(not c.modalities and not c.regions and not c.keywords for c in clusters):
            raise LabellingConfigError(f"{directory}: no fallback cluster (one with empty modalities and regions)")
        return cls(clusters)

    def route(self, modality: str | None, region: str, *texts: str | None) -> Cluster:
        """The cluster a study belongs to (``texts``: descriptions, protocol, report title)."""
        joined = " ".join(t for t in texts if t)
        for c in self.clusters:
            if c.matches(modality, region, joined):
                return c
        raise AssertionError("unreachable: a fallback cluster matches everything")

    def get(self, cluster_id: str) -> Cluster:
        for c in self.clusters:
            if c.id == cluster_id:
                return c
        raise KeyError(f"unknown labelling cluster {cluster_id!r}")


@lru_cache(maxsize=1)
def clusters() -> Clusters:
    return Clusters.load()
