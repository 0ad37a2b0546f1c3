"""PHI removal from report text (Spanish, Portuguese, English).

:class:`TextScrubber` is built once per process (recognizers compiled, an
optional NER model loaded from a path) and scrubs any number of texts. For
each text it combines, in this order of strength:

1. the values the pipeline knows from the linked study's DICOM headers
   (``known_phi``: patient name, IDs, birth date, address, phone,
   physicians, institution), matched in every spelling (:mod:`text_known`);
2. Presidio running this project's recognizers (:mod:`recognizers`): header
   fields, titles, checksummed national IDs, record/accession numbers,
   dates in es/pt/en forms, phones, addresses, e-mails, institutions;
3. an optional spaCy NER model trained by ``anonymization/ner/train.py``,
   used when present (never downloaded);
4. propagation: every name part and identifier found anywhere is removed
   everywhere else in the same document ("Paciente: Juan Pérez ... el Sr.
   Pérez refiere").

PHI becomes a typed surrogate in the report's language ([NOMBRE]/[NOME]/
[NAME], [ID], [TELEFONO]...). Dates are parsed in the report's locale
(day-first es/pt, month-first en), moved by the patient token's offset with
the function the DICOM dates use (:func:`anonymization.dicom_dates.shift_da`)
and written back in their own format and language; years alone stay. A date
offset of 0/None means "no offset known": dates are then masked ([FECHA]).
What each profile removes is data: ``include/text_policy.yaml``.

Findings made only of clinical or common words ("Mamografía", "Diagnóstico
por Imagem", "Data de Nascimento") are dropped unless they stand in a name
context (:mod:`anonymization.recognizers.lexicon`).

The result lists what was found (type and position only, never the value)
and ``residual``: known values still present after scrubbing, which makes
the caller quarantine the report (fail closed).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from anonymization.recognizers import ENTITIES
from anonymization.recognizers.presidio import build_recognizers
from anonymization.recognizers.dates import find_dates, parse_date, shift_render
from anonymization.recognizers.ids import ACCESSION_LABEL_RE, PATIENT_ID_LABEL_RE
from anonymization.recognizers.lexicon import common_words
from anonymization.recognizers.lexicon import fold as fold_word
from anonymization.recognizers.names import STOP_WORDS
from anonymization.text_known import KnownValue, classify, find_known, fold, residual

log = logging.getLogger(__name__)

LANGUAGES = ("es", "pt", "en")

SURROGATES: dict[str, dict[str, str]] = {
    "es": {"PERSON": "NOMBRE", "ID": "ID", "DATE": "FECHA", "PHONE": "TELEFONO", "EMAIL": "EMAIL", "URL": "URL",
           "ADDRESS": "DIRECCION", "LOCATION": "LUGAR", "ORGANIZATION": "INSTITUCION", "KNOWN": "DATO", "AGE": "90+", "TIME": "HORA"},
    "pt": {"PERSON": "NOME", "ID": "ID", "DATE": "DATA", "PHONE": "TELEFONE", "EMAIL": "EMAIL", "URL": "URL",
           "ADDRESS": "ENDERECO", "LOCATION": "LOCAL", "ORGANIZATION": "INSTITUICAO", "KNOWN": "DADO", "AGE": "90+", "TIME": "HORA"},
    "en": {"PERSON": "NAME", "ID": "ID", "DATE": "DATE", "PHONE": "PHONE", "EMAIL": "EMAIL", "URL": "URL",
           "ADDRESS": "ADDRESS", "LOCATION": "LOCATION", "ORGANIZATION": "INSTITUTION", "KNOWN": "PHI", "AGE": "90+", "TIME": "TIME"},
}
# When spans of different types overlap, the merged span takes the type
# with the highest rank (the one a reader would most want hidden).
_RANK = {"PERSON": 9, "ID": 8, "KNOWN": 7, "PHONE": 6, "EMAIL": 6, "ADDRESS": 5, "DATE": 4, "ORGANIZATION": 3,
         "LOCATION": 3, "URL": 2, "AGE": 1, "TIME": 1}
#: Presidio results below this score are ignored.
MIN_SCORE = 0.45

#: The NER model shipped in the repository (trained by ``make ner`` from MEDDOCAN).
DEFAULT_NER_MODEL = Path(__file__).resolve().parent / "ner" / "model"
#: Languages the shipped NER runs on (it is trained on Spanish clinical text).
NER_LANGUAGES = ("es",)
TEXT_POLICY = Path(__file__).resolve().parent.parent / "include" / "text_policy.yaml"
_TYPES = {"PERSON", "ID", "PHONE", "EMAIL", "URL", "ADDRESS", "LOCATION", "ORGANIZATION", "DATE", "TIME", "AGE", "KNOWN"}


class TextPolicyError(ValueError):
    """include/text_policy.yaml is malformed (the message names the file and field)."""


@dataclass(frozen=True)
class TextPolicy:
    """What a profile removes from report text (see include/text_policy.yaml)."""

    remove: frozenset[str]
    dates: str = "shift"  # shift | year | mask
    age_cap: int = 90


@lru_cache(maxsize=None)
def text_policy(profile: str | None = None, path: Path = TEXT_POLICY) -> TextPolicy:
    """The text policy of ``profile`` (its own entry, else its ``extends`` chain, else ``default``)."""
    import yaml

    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    entries = data.get("profiles") or {}
    merged = dict(data.get("default") or {})
    chain: list[str] = []
    name = profile
    while name and name not in chain:
        chain.append(name)
        pfile = path.parent / "profiles" / f"{name}.yaml"
        name = (yaml.safe_load(pfile.read_text(encoding="utf-8")) or {}).get("extends") if pfile.exists() else None
    for name in reversed(chain):
        merged.update(entries.get(name) or {})
    remove = merged.get("remove") or []
    unknown = set(remove) - _TYPES
    if unknown:
        raise TextPolicyError(f"{path}: remove: unknown type(s) {sorted(unknown)}")
    dates = merged.get("dates", "shift")
    if dates not in ("shift", "year", "mask"):
        raise TextPolicyError(f"{path}: dates: {dates!r} is not shift, year or mask")
    try:
        age_cap = int(merged.get("age_cap", 90))
    except (TypeError, ValueError):
        raise TextPolicyError(f"{path}: age_cap: not a number") from None
    return TextPolicy(frozenset(remove) | {"KNOWN"}, dates, age_cap)


@dataclass(frozen=True)
class Finding:
    """One piece of PHI found: its type and where (never its value)."""

    type: str
    start: int
    end: int
    score: float = 1.0
    source: str = "pattern"  # pattern | known | ner | propagated


@dataclass
class ScrubResult:
    text: str
    findings: list[Finding] = field(default_factory=list)
    residual: list[str] = field(default_factory=list)
    language: str = "es"

    @property
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.type] = out.get(f.type, 0) + 1
        return out


def _ner_model_path(explicit: str | Path | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("STA_NER_MODEL")
    if env:
        # "none" (or a missing path) turns the model off: patterns only.
        if (Path(env) / "meta.json").exists():
            return Path(env)
        if env.lower() != "none":
            log.warning("STA_NER_MODEL=%s has no meta.json; scrubbing with patterns only", env)
        return None
    for cand in (DEFAULT_NER_MODEL / "model-best", DEFAULT_NER_MODEL):
        if (cand / "meta.json").exists():
            return cand
    return None


class TextScrubber:
    """Finds and replaces PHI in report text; build once, call :meth:`scrub` many times."""

    def __init__(self, languages: list[str] | None = None, ner_model: str | Path | None = None, use_ner: bool = True) -> None:
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine

        self.languages = [lang for lang in (languages or list(LANGUAGES)) if lang in LANGUAGES] or list(LANGUAGES)
        # NoOp engine: Presidio never loads (or downloads) a spaCy model.
        nlp_engine = NoOpNlpEngine(models=[{"lang_code": lang, "model_name": "none"} for lang in self.languages])
        registry = RecognizerRegistry(recognizers=build_recognizers(self.languages), supported_languages=self.languages)
        self.ner_model_path: Path | None = None
        if use_ner:
            path = _ner_model_path(ner_model)
            if path is not None:
                from anonymization.ner.model import NerRecognizer

                for lang in self.languages:
                    if lang in NER_LANGUAGES:
                        registry.add_recognizer(NerRecognizer(path, language=lang))
                        self.ner_model_path = path
        self.analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=self.languages)
        self._entities = {
            lang: [e for e in ENTITIES if e in self.analyzer.get_supported_entities(lang)] for lang in self.languages
        }

    # ------------------------------------------------------------------
    def analyze(self, text: str, language: str, known: Sequence[KnownValue] = ()) -> list[Finding]:
        """All PHI spans of ``text`` (before merging)."""
        lang = language if language in self.languages else self.languages[0]
        findings: list[Finding] = []
        for r in self.analyzer.analyze(text=text, language=lang, entities=self._entities[lang]):
            if r.score >= MIN_SCORE and r.end > r.start:
                source = "ner" if (r.recognition_metadata or {}).get("recognizer_name", "").startswith("sta_ner") else "pattern"
                findings.append(Finding(r.entity_type, r.start, r.end, float(r.score), source))
        findings = [f for f in findings if not _is_word_not_name(text, f) and not _is_year_alone(text, f) and not _is_country(text, f)]
        for e, s, t, sc in find_known(text, known, lang):
            findings.append(Finding(e, s, t, sc, "known"))
        findings.extend(f for f in _propagate(text, findings) if not _is_word_not_name(text, f))
        return findings

    def scrub(
        self,
        text: str,
        language: str = "es",
        known_phi: Sequence[str] = (),
        date_shift_days: int = 0,
        *,
        date_offset: dt.timedelta | None = None,
        profile: str | None = None,
    ) -> ScrubResult:
        """Scrubbed text, what was found, and known values still left (``residual``).

        ``date_offset`` is the patient token's offset (``Keyring.time_offset``);
        ``date_shift_days`` is the older whole-days form of it. ``profile``
        names the de-identification profile whose text policy applies.
        """
        lang = language if language in LANGUAGES else "es"
        policy = text_policy(profile)
        offset = date_offset if date_offset is not None else (dt.timedelta(days=date_shift_days) if date_shift_days else None)
        known = classify(known_phi)
        findings = [f for f in self.analyze(text, lang, known) if f.type in policy.remove]
        merged = _merge(findings)
        dates = find_dates(text, lang)
        labels = SURROGATES[lang]
        out: list[str] = []
        pos = 0
        for f in merged:
            out.append(text[pos : f.start])
            replacement = None
            if f.type == "DATE":
                replacement = _date_replacement(text, f, dates, offset, policy.dates)
            if replacement is None and f.type == "AGE":
                replacement = f"{policy.age_cap}+"  # HIPAA Safe Harbor: ages over 89 aggregated
            out.append(replacement if replacement is not None else f"[{labels.get(f.type, 'PHI')}]")
            pos = f.end
        out.append(text[pos:])
        scrubbed = "".join(out)
        left = residual(scrubbed, known, lang)
        return ScrubResult(text=scrubbed, findings=merged, residual=left, language=lang)


def _date_replacement(text: str, f: "Finding", dates, offset: dt.timedelta | None, mode: str) -> str | None:
    """A DATE span rewritten: shifted in its own style, reduced to its year, or None (masked).

    The span may be wider than the date itself ("el 5 de abril de 2022" from
    the NER): the words around the date stay as written when they hold no digit.
    """
    inside = [d for d in dates if f.start <= d.start and d.end <= f.end and d.date is not None]
    if len(inside) != 1:
        return None
    d = inside[0]
    before, after = text[f.start : d.start], text[d.end : f.end]
    if any(c.isdigit() for c in before + after):
        return None
    if mode == "year":
        return before + str(d.date.year) + after if not d.partial or re.search(r"\d{4}", text[d.start : d.end]) else None
    if mode != "shift" or offset is None:
        return None
    shifted = shift_render(d, offset)
    return None if shifted is None else before + shifted + after


_NAME_CONTEXT = re.compile(
    r"(?:\b(?:dr|dra|dres|sr|sra|srta|don|doña|dona|mr|mrs|ms|prof|profa|lic|enf)\.?|"
    r"\b(?:paciente|nombre|nome|name|patient|m[ée]dic[oa]|physician|firmado\s+por|laudado\s+por|signed\s+by|madre|padre|m[ãa]e|pai)\s*:?)\s*$",
    re.IGNORECASE,
)


def _is_word_not_name(text: str, f: "Finding") -> bool:
    """A name/place/institution finding made only of common or clinical words, outside a name context."""
    if f.type not in ("PERSON", "LOCATION", "ORGANIZATION", "ADDRESS") or f.source == "known" or f.score >= 0.9:
        return False
    if f.type == "LOCATION" and f.source == "pattern":
        return False  # places.py weighs its own context (gazetteer words, postal codes, state codes)
    span = text[f.start : f.end]
    if f.type == "ADDRESS" and (f.source != "ner" or any(c.isdigit() for c in span)):
        return False
    words = re.findall(r"[^\W\d_]+", span)
    if f.source == "ner" and words and not any(len(w) > 2 for w in words) and not any(c.isdigit() for c in span):
        return not _NAME_CONTEXT.search(text[max(0, f.start - 25) : f.start])  # "C.I.": initials, not a place
    if not words or f.type in ("LOCATION", "ORGANIZATION") and len(words) > 1:
        return False  # "Ciudad Real", "Hospital General": a multi-word place/institution is a name
    vocab = common_words()
    if not all(fold_word(w) in vocab or len(w) <= 2 for w in words):
        return False
    return not _NAME_CONTEXT.search(text[max(0, f.start - 25) : f.start])


def ner_finding_is_noise(text: str, f: "Finding") -> bool:
    """A NER span that is a word, a year alone, a non-date or a country: dropped inside the NER recognizer,
    before Presidio's de-duplication, so a pattern finding of the same span survives."""
    return _is_word_not_name(text, f) or _is_year_alone(text, f) or _is_country(text, f)


def _is_country(text: str, f: "Finding") -> bool:
    """A country is not PHI (labels need it): a NER place/street that is only a country's name stays."""
    from anonymization.recognizers.places import is_country

    return f.type in ("LOCATION", "ADDRESS", "ORGANIZATION") and f.source == "ner" and is_country(text[f.start : f.end])


_YEAR_ALONE = re.compile(r"(?:(?:el\s+|en\s+el\s+|del\s+)?(?:años?|ano|year)\s+|en\s+|em\s+|in\s+|de\s+)?(?:1[89]|20)\d\d", re.IGNORECASE)


_MONTH_WORD = re.compile(
    r"(?i)(?<![^\W\d_])(?:ene|feb|mar|abr|may|jun|jul|ago|sep|set|oct|nov|dic|jan|fev|mai|out|dez|apr|aug|dec)[^\W\d_]*"
)


def _is_year_alone(text: str, f: "Finding") -> bool:
    """Not a date finer than a year: a NER "date" that is only a year (kept, HIPAA Safe Harbor), a bare
    small number, or words with neither a digit nor a month ("médico de familia")."""
    if f.type != "DATE" or f.source != "ner":
        return False
    v = text[f.start : f.end].strip()
    if _YEAR_ALONE.fullmatch(v) or re.fullmatch(r"\d{1,3}", v):
        return True
    return not any(c.isdigit() for c in v) and not _MONTH_WORD.search(v)


def _propagate(text: str, findings: list[Finding]) -> list[Finding]:
    """Find again, everywhere in the document, the names and IDs found once."""
    folded = fold(text)
    tokens: set[str] = set()
    ids: set[str] = set()
    stop = {fold(w) for w in STOP_WORDS} | {"de", "del", "la", "las", "los", "da", "das", "do", "dos", "san", "santa"}
    for f in findings:
        if f.type == "PERSON" and f.score >= 0.75:
            for tok in re.findall(r"[^\W\d_]{3,}", folded[f.start : f.end]):
                if tok not in stop:
                    tokens.add(tok)
        elif f.type == "ID" and f.score >= 0.9:
            v = re.sub(r"[^0-9a-z]", "", folded[f.start : f.end])
            if len(v) >= 5:
                ids.add(v)
    extra: list[Finding] = []
    # Places and institutions found once (by the NER, a gazetteer, an
    # acronym in context) are removed wherever the same name recurs.
    phrases: dict[str, str] = {}
    vocab = common_words()
    for f in findings:
        if f.type in ("LOCATION", "ORGANIZATION") and f.score >= 0.7:
            v = text[f.start : f.end].strip(" .,;:()")
            words = re.findall(r"[^\W\d_]+", v)
            if len(v) >= 3 and v[0].isupper() and "\n" not in v and not all(fold_word(w) in vocab for w in words):
                phrases.setdefault(v, f.type)
    for v, typ in phrases.items():
        for m in re.finditer(rf"(?<![\w]){re.escape(v)}(?![\w])", text):
            extra.append(Finding(typ, m.start(), m.end(), 0.75, "propagated"))
    for tok in tokens:
        for m in re.finditer(rf"(?<![^\W_]){re.escape(tok)}(?![^\W_])", folded):
            # Names are written capitalised; "nascimento" in "Data de
            # nascimento" is not the surname Nascimento.
            if text[m.start()].isupper():
                extra.append(Finding("PERSON", m.start(), m.end(), 0.8, "propagated"))
    for v in ids:
        pat = r"[\s.\-/]?".join(re.escape(c) for c in v)
        for m in re.finditer(rf"(?<![0-9a-z]){pat}(?![0-9a-z])", folded):
            extra.append(Finding("ID", m.start(), m.end(), 0.9, "propagated"))
    return extra


def _merge(findings: list[Finding]) -> list[Finding]:
    """Non-overlapping spans: overlapping findings become one span (union).

    The union is deliberate (recall first): when a name overlaps an address,
    both are hidden. The merged type is the highest-ranked one, except that a
    date keeps its type when it alone covers the whole span (so it is shifted).
    """
    if not findings:
        return []
    items = sorted(findings, key=lambda f: (f.start, -f.end))
    merged: list[Finding] = []
    group = [items[0]]
    end = items[0].end

    def close(group: list[Finding]) -> Finding:
        s = min(f.start for f in group)
        e = max(f.end for f in group)
        full_dates = [f for f in group if f.type == "DATE" and f.start == s and f.end == e]
        whole = [f for f in group if f.start == s and f.end == e and f.score >= 0.9 and f.source != "known"]
        if full_dates and all(f.type in ("DATE", "PHONE", "ID") and f.score < 0.9 or f.type == "DATE" for f in group):
            typ = "DATE"
        elif whole:
            # A labelled field that spans everything ("Endereço: Rua Oscar
            # Freire, 3475") names the type better than a name inside it.
            typ = max(whole, key=lambda f: (f.score, _RANK.get(f.type, 0))).type
        else:
            typ = max(group, key=lambda f: (_RANK.get(f.type, 0), f.score)).type
        best = max(group, key=lambda f: f.score)
        sources = {f.source for f in group}
        source = "known" if "known" in sources else best.source
        return Finding(typ, s, e, best.score, source)

    for f in items[1:]:
        if f.start < end:
            group.append(f)
            end = max(end, f.end)
        else:
            merged.append(close(group))
            group, end = [f], f.end
    merged.append(close(group))
    return merged


# ----------------------------------------------------------------------
# Linking a report to its study (before anything is scrubbed)
# ----------------------------------------------------------------------

_NATIONAL_LABELS = re.compile(r"c[ée]dula|c\.?\s?c|c\.?\s?i|d\.?n\.?i|cuit|cuil|r\.?u\.?t|run|cpf|rg|cns|ssn|documento|pasaporte|passaporte|passport|identificaci", re.I)
_STUDY_DATE_LABEL = re.compile(
    r"(?<![\w])(?:fecha\s+(?:del?\s+)?(?:estudio|examen|exploraci[óo]n|realizaci[óo]n|procedimiento|informe|atenci[óo]n)|fecha"
    r"|data\s+(?:do|de)\s+(?:exame|estudo|realiza[çc][ãa]o|procedimento|laudo|atendimento)|data"
    r"|(?:study|exam|examination|procedure|service|report)\s+date|date\s+of\s+(?:study|exam|service|examination|procedure)|date)"
    r"(?![^\W\d_])\s*[:=]\s*(?P<v>[^\n]{4,40})",
    re.IGNORECASE,
)


def _clean_value(v: str) -> str:
    return v.strip().rstrip(".,;:-/")


def link_keys(text: str, language: str | None = None) -> dict:
    """Keys that link a raw report to its DICOM study, read before scrubbing.

    Returns ``accession_number``, ``patient_id`` (first labelled patient
    identifier), ``national_id`` (first one whose label is a national
    document: C.C., DNI, CPF, RUT...), ``patient_ids`` (all of them, as
    written and as bare alphanumerics) and ``study_date`` (YYYYMMDD, the
    DICOM StudyDate form); missing keys are None.
    """
    lang = language or "es"
    keys: dict = {"accession_number": None, "patient_id": None, "national_id": None, "patient_ids": [], "study_date": None}
    m = ACCESSION_LABEL_RE.search(text)
    if m:
        keys["accession_number"] = _clean_value(m.group("v"))
    for m in PATIENT_ID_LABEL_RE.finditer(text):
        v = _clean_value(m.group("v"))
        if not v or v == keys["accession_number"]:
            continue
        if v not in keys["patient_ids"]:
            keys["patient_ids"].append(v)
        bare = re.sub(r"[^0-9A-Za-z]", "", v)
        if bare not in keys["patient_ids"]:
            keys["patient_ids"].append(bare)
        if keys["patient_id"] is None:
            keys["patient_id"] = v
        if keys["national_id"] is None and _NATIONAL_LABELS.match(m.group("label")):
            keys["national_id"] = v
    for m in _STUDY_DATE_LABEL.finditer(text):
        label = m.group(0).lower()
        if "nacimiento" in label or "nascimento" in label or "birth" in label:
            continue
        d = parse_date(m.group("v"), lang)
        if d is not None:
            keys["study_date"] = d.strftime("%Y%m%d")
            break
    return keys
