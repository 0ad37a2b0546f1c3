"""Labels of one report: concepts with certainty, confidence, source and evidence.

Steps (each a module of its own): fold the text (labelling.text), split
sections, find concept mentions and BI-RADS/TI-RADS scores, find assertion
cues, give each mention a certainty (labelling.assertion), then one label
per concept:

- a concept named in findings/impression is decided there; mentions in the
  request (indication) only count when nothing else names the concept, and
  then as uncertain (a question, not an answer);
- several mentions: positive > uncertain > historical > negative > family;
- ``abnormal`` is positive (uncertain) when a finding is, or positive when
  an abnormality word outside the finding list is ("secuelas", "gliose");
  ``normal`` is positive when none of that holds and the report says so (a
  normal statement, BI-RADS 1, or findings it rules out). Where no finding
  is known, the learned status model (labelling.model) may decide normal vs
  abnormal, if its card says it beat the rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from labelling.assertion import assert_mention
from labelling.concepts import FINDING_GROUPS, Vocabulary, vocabulary
from labelling.config import data_dir, load_yaml
from labelling.cues import Cues, cues
from labelling.language import detect
from labelling.scores import find_scores
from labelling.sections import section_at, splitter
from labelling.text import Document, fold_phrase

MODEL_NAME = "sta-report-rules"
RANK = {"positive": 0, "uncertain": 1, "historical": 2, "negative": 3, "family": 4}
SKIP_SECTIONS = ("technique", "comparison")


@dataclass
class Evidence:
    start: int
    end: int
    text: str
    section: str
    certainty: str
    cue: str | None = None


@dataclass
class Label:
    concept: str
    certainty: str
    confidence: float
    source: str  # rule | model
    model: str
    model_version: str
    label: dict[str, str]
    evidence: list[Evidence] = field(default_factory=list)

    def as_json(self, evidence: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "concept": self.concept, "certainty": self.certainty, "confidence": round(self.confidence, 3),
            "source": self.source, "model": self.model, "model_version": self.model_version,
        }
        if evidence:
            out["evidence"] = [{"start": e.start, "end": e.end, "text": e.text, "section": e.section}
                               for e in self.evidence]
        return out


@dataclass
class ReportLabels:
    language: str
    labels: list[Label]
    mentions: list[Evidence]  # every mention with its own certainty (for review and training)

    def by_concept(self) -> dict[str, Label]:
        return {lab.concept: lab for lab in self.labels}


@lru_cache(maxsize=1)
def _chest_words() -> frozenset[str]:
    data = load_yaml(data_dir() / "concepts.yaml")
    return frozenset(fold_phrase(w) for w in data.get("chest_context") or [])


def is_chest_text(doc: Document) -> bool:
    words = _chest_words()
    return any(w in words for w in re.findall(r"\w+", doc.folded[:4000]))


class Labeller:
    """Rules (and, where it measured better, the learned assertion model)."""

    def __init__(self, vocab: Vocabulary | None = None, cue_sets: Cues | None = None,
                 status_model: Any = None, use_model: bool | None = None) -> None:
        """``use_model``: None = the trained status model if its card says it beat the rules;
        True = the given (or trained) model regardless; False = rules only."""
        self.vocab = vocab or vocabulary()
        self.cues = cue_sets or cues()
        if status_model is None and use_model is not False:
            from labelling.model import load_status_model

            status_model = load_status_model()
        if use_model is False or status_model is None or (use_model is None and not status_model.enabled):
            status_model = None
        self.status_model = status_model
        self.version = f"{self.vocab.version}.{self.cues.version}"

    def label(self, text: str, language: str | None = None, chest: bool | None = None,
              cluster: Any = None) -> ReportLabels:
        """Labels of one report. ``cluster`` (labelling.clusters.Cluster): its chest flag, concept
        list and models apply; without one, every concept and the default models."""
        doc = Document.of(text)
        lang = language or detect(text)
        sections = splitter().split(doc)
        if cluster is not None and chest is None:
            chest = cluster.chest
        mentions = self.mentions(doc, lang, sections, chest)
        labels = self._aggregate(mentions)
        use_model = cluster is None or "status_model" in cluster.models
        labels = self._derive_status(labels, mentions, doc, sections, use_model)
        kept = [lab for lab in labels.values() if cluster is None or cluster.keeps(lab.concept)]
        return ReportLabels(lang, sorted(kept, key=lambda lab: lab.concept), [e for _c, e, _s in mentions])

    def mentions(self, doc: Document, lang: str, sections: list, chest: bool | None = None
                 ) -> list[tuple[str, Evidence, str]]:
        """Every mention (concept, evidence with its certainty, source), implied ones included."""
        text = doc.text
        chest = is_chest_text(doc) if chest is None else chest
        cue_list = self.cues.by_language[lang].find(doc)
        mentions: list[tuple[str, Evidence, str]] = []
        for m in self.vocab.mentions(doc, chest=chest):
            sec = section_at(sections, m.start)
            if sec in SKIP_SECTIONS:
                continue
            a = assert_mention(doc, m.start, m.end, cue_list, self.cues)
            certainty = _section_certainty(sec, a.certainty)
            if certainty == "hypothetical":
                continue
            ev = Evidence(m.start, m.end, text[m.start:m.end], sec, certainty, a.cue.phrase if a.cue else None)
            mentions.append((m.concept, ev, "rule"))
            for implied in m.implies:
                mentions.append((implied, ev, "rule"))
        for s in find_scores(doc, self.vocab):
            sec = section_at(sections, s.start)
            ev = Evidence(s.start, s.end, text[s.start:s.end], sec, "positive")
            mentions.append((s.concept, ev, "rule"))
            for cid, cert in s.implies:
                mentions.append((cid, Evidence(s.start, s.end, ev.text, sec, cert), "rule"))
        return mentions

    # -- aggregation ------------------------------------------------------
    def _aggregate(self, mentions: list[tuple[str, Evidence, str]]) -> dict[str, Label]:
        per: dict[str, list[tuple[Evidence, str]]] = {}
        for cid, ev, source in mentions:
            per.setdefault(cid, []).append((ev, source))
        out: dict[str, Label] = {}
        for cid, evs in per.items():
            if cid in ("normal", "abnormal"):
                continue  # decided by _derive_status
            decisive = [(e, s) for e, s in evs if e.section != "indication"] or evs
            best = min(RANK[e.certainty] for e, _s in decisive)
            chosen = [(e, s) for e, s in decisive if RANK[e.certainty] == best]
            certainty = chosen[0][0].certainty
            source = "model" if any(s == "model" for _e, s in chosen) else "rule"
            out[cid] = Label(cid, certainty, confidence(certainty, source, chosen[0][0].section), source,
                             MODEL_NAME, self.version, self.vocab.label_text(cid), [e for e, _s in chosen])
        return out

    def status_tokens(self, doc: Document, mentions: list[tuple[str, Evidence, str]], sections: list) -> list[str]:
        """The status model's input: the report's words, mentions as <group:certainty> tokens."""
        from labelling.model import features

        tags = [(e.start, e.end, f"<{'normal' if c == 'normal' else self.vocab.group(c)}:{e.certainty}>")
                for c, e, _s in mentions]
        skip = [(sec.start, sec.end) for sec in sections if sec.kind in ("indication", *SKIP_SECTIONS)]
        return features(doc.folded, tags, skip)

    def _derive_status(self, labels: dict[str, Label], mentions: list[tuple[str, Evidence, str]],
                       doc: Document, sections: list, use_model: bool = True) -> dict[str, Label]:
        findings = [lab for lab in labels.values()
                    if self.vocab.group(lab.concept) in FINDING_GROUPS or lab.concept == "malignant"]
        positive = [lab for lab in findings if lab.certainty == "positive"]
        # A finding only asked about in the request ("descartar colecistitis") says nothing of the study.
        uncertain = [lab for lab in findings if lab.certainty == "uncertain"
                     and any(e.section != "indication" for e in lab.evidence)]
        explicit_abnormal = [e for c, e, _s in mentions if c == "abnormal" and e.certainty == "positive"
                             and e.section != "indication"]
        if positive:
            labels["abnormal"] = self._status("abnormal", "positive", [e for lab in positive for e in lab.evidence])
            return labels
        if uncertain:
            labels["abnormal"] = self._status("abnormal", "uncertain", [e for lab in uncertain for e in lab.evidence])
            return labels
        if explicit_abnormal:
            # An abnormality outside the finding list ("secuelas", "gliose", "hyperinflation").
            labels["abnormal"] = self._status("abnormal", "positive", explicit_abnormal)
            return labels
        normal_ev = [e for c, e, _s in mentions if c == "normal" and e.certainty == "positive"
                     and e.section != "indication"]
        ruled_out = [e for c, e, _s in mentions if e.certainty == "negative" and e.section != "indication"
                     and (self.vocab.group(c) in FINDING_GROUPS or c == "malignant")]
        if self.status_model is not None and use_model:
            # No finding the rules know is present: the model reads the rest.
            p = self.status_model.p_abnormal(self.status_tokens(doc, mentions, sections))
            t = self.status_model.threshold
            conclusion = [s for s in sections if s.kind == "impression"]
            ev = [Evidence(s.start, s.end, doc.text[s.start:s.end].strip()[:200], s.kind, "positive")
                  for s in conclusion]
            if p >= t:
                labels["abnormal"] = self._status("abnormal", "positive", ev, p)
                return labels
            if not (normal_ev or ruled_out) and p <= 1 - t:
                labels["normal"] = self._status("normal", "positive", ev, 1 - p)
                return labels
        if normal_ev or ruled_out:
            labels["normal"] = self._status("normal", "positive", normal_ev or ruled_out,
                                            section="derived" if normal_ev else "ruled_out")
        return labels

    def _status(self, concept: str, certainty: str, evidence: list[Evidence], p: float | None = None,
                section: str = "derived") -> Label:
        """A normal/abnormal label: from the rules, or from the status model when ``p`` is given."""
        if p is None:
            return Label(concept, certainty, confidence(certainty, "rule", section), "rule", MODEL_NAME,
                         self.version, self.vocab.label_text(concept), evidence)
        m = self.status_model
        return Label(concept, certainty, round(p, 3), "model", m.name, m.version, self.vocab.label_text(concept),
                     evidence)


def _section_certainty(section: str, certainty: str) -> str:
    if section == "indication" and certainty in ("positive", "negative"):
        return "uncertain"
    if section == "history" and certainty == "positive":
        return "historical"
    if section == "recommendation" and certainty == "positive":
        return "uncertain"
    return certainty


# Confidence of a rule label by certainty: precision on the dev split, Laplace-smoothed
# ((correct+1)/(n+2)) and capped at 0.95 (`sta eval-labels --json`: precision_by_certainty).
RULE_CONFIDENCE = {"positive": 0.95, "negative": 0.95, "uncertain": 0.9, "historical": 0.89, "family": 0.8}


def confidence(certainty: str, source: str, section: str) -> float:
    base = RULE_CONFIDENCE.get(certainty, 0.8)
    if section == "indication":
        base -= 0.2
    elif section == "ruled_out":
        base -= 0.1
    return round(max(0.05, min(0.99, base)), 3)


@lru_cache(maxsize=1)
def default_labeller() -> Labeller:
    return Labeller()


def label_report(text: str, language: str | None = None, chest: bool | None = None,
                 cluster: Any = None) -> ReportLabels:
    """Labels of one report with the default labeller (vocabulary, cues and model of include/)."""
    return default_labeller().label(text, language, chest, cluster)


def table_row(lab: Label, study_uid: str, partner_id: str, cluster: str | None = None,
              report_id: str | None = None) -> dict[str, Any]:
    """A label as a row of the published ``labels`` table (foundation.schema.LABELS)."""
    ev = lab.evidence[0] if lab.evidence else None
    return {
        "study_uid": study_uid, "partner_id": partner_id, "concept": lab.concept, "certainty": lab.certainty,
        "label_es": lab.label.get("es"), "label_pt": lab.label.get("pt"), "label_en": lab.label.get("en"),
        "confidence": lab.confidence, "source": lab.source, "model": lab.model, "model_version": lab.model_version,
        "cluster": cluster, "report_id": report_id,
        "evidence_start": ev.start if ev else None, "evidence_end": ev.end if ev else None,
        "evidence_section": ev.section if ev else None, "evidence_text": ev.text[:200] if ev else None,
    }
