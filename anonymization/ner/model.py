"""Load the project's NER model from a path and run it as a Presidio recognizer.

The model is a spaCy pipeline written by ``anonymization/ner/train.py``.
``spacy.load`` is only ever given a directory, so nothing is downloaded; a
missing model simply means the scrubber runs on its pattern, header and
known-value recognizers.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

from presidio_analyzer import EntityRecognizer, RecognizerResult

# MEDDOCAN labels -> this project's entity types (others are not PHI here:
# SEXO, PROFESION, ...).
LABEL_MAP = {
    "NOMBRE_SUJETO_ASISTENCIA": "PERSON",
    "NOMBRE_PERSONAL_SANITARIO": "PERSON",
    # FAMILIARES_SUJETO_ASISTENCIA are relations ("su madre"), not names: kept.
    "ID_SUJETO_ASISTENCIA": "ID",
    "ID_TITULACION_PERSONAL_SANITARIO": "ID",
    "ID_ASEGURAMIENTO": "ID",
    "ID_CONTACTO_ASISTENCIAL": "ID",
    "ID_EMPLEO_PERSONAL_SANITARIO": "ID",
    "IDENTIF_VEHICULOS_NRSERIE_PLACAS": "ID",
    "IDENTIF_DISPOSITIVOS_NRSERIE": "ID",
    "OTRO_NUMERO_IDENTIF": "ID",
    "NUMERO_TELEFONO": "PHONE",
    "NUMERO_FAX": "PHONE",
    "CORREO_ELECTRONICO": "EMAIL",
    "URL_WEB": "URL",
    "DIRECCION_IP": "ID",
    "CALLE": "ADDRESS",
    "TERRITORIO": "LOCATION",
    # PAIS: a country is not PHI (labels need it): kept.
    "HOSPITAL": "ORGANIZATION",
    "INSTITUCION": "ORGANIZATION",
    "CENTRO_SALUD": "ORGANIZATION",
    "FECHAS": "DATE",
    # EDAD_SUJETO_ASISTENCIA: ages under 90 are kept (labels need them); 90+ is a pattern.
}


# Longest plausible entity, in words, per type.
MAX_WORDS = {"PERSON": 6, "ORGANIZATION": 10, "LOCATION": 5, "ADDRESS": 12, "DATE": 6}


def load_pipeline(path: str | Path):
    """spaCy pipeline from a directory (raises if it is not one)."""
    import spacy

    p = Path(path)
    if not (p / "meta.json").exists():
        raise FileNotFoundError(f"no spaCy model at {p} (train one with anonymization/ner/train.py)")
    return spacy.load(p)


class NerRecognizer(EntityRecognizer):
    """Presidio recognizer running the project's spaCy NER on raw text."""

    def __init__(self, path: str | Path, language: str = "es") -> None:
        self._path = Path(path)
        self._nlp = None
        super().__init__(supported_entities=sorted(set(LABEL_MAP.values())), name=f"sta_ner_{language}", supported_language=language)

    def load(self) -> None:
        self._nlp = load_pipeline(self._path)

    def analyze(self, text: str, entities: List[str], nlp_artifacts=None) -> Optional[List[RecognizerResult]]:
        from anonymization.text_phi import Finding, ner_finding_is_noise

        wanted = set(entities or self.supported_entities)
        out = []
        doc = self._nlp(text)
        for ent in doc.ents:
            typ = LABEL_MAP.get(ent.label_)
            if not typ or typ not in wanted:
                continue
            for start, end in _pieces(text, ent.start_char, ent.end_char, typ):
                if len(text[start:end].split()) > MAX_WORDS.get(typ, 6):
                    continue  # a run-on entity: names and places are short
                if ner_finding_is_noise(text, Finding(typ, start, end, 0.85, "ner")):
                    continue
                out.append(
                    RecognizerResult(
                        typ, start, end, 0.85,
                        recognition_metadata={"recognizer_name": self.name, "recognizer_identifier": self.id},
                    )
                )
        return out


def _pieces(text: str, start: int, end: int, typ: str = "") -> list[tuple[int, int]]:
    """An entity cut at line breaks and "Label:" boundaries, label words dropped.

    MEDDOCAN's layout differs from radiology reports, and a model trained on
    it sometimes runs an entity across a header line ("Hospital X\nNombre:");
    the label part is not PHI and is kept readable.
    """
    import re

    from anonymization.recognizers.names import STOP_WORDS_FOLDED, strip_accents

    out = []
    for m in re.finditer(r"[^\n:]+", text[start:end]):
        s, e = start + m.start(), start + m.end()
        while s < e and not text[s].isalnum():
            s += 1
        while e > s and not text[e - 1].isalnum() and text[e - 1] not in ".)":
            e -= 1
        s = _trim_leading_words(text, s, e)
        if typ != "ADDRESS":  # "bajo izquierda", "s/n": an address's tail is part of it
            e = _trim_trailing_words(text, s, e)
        piece = text[s:e]
        if len(piece) < 2:
            continue
        # A piece followed by ":" is a label.
        if text[e : e + 2].lstrip(" ").startswith(":"):
            continue
        words = [strip_accents(w.lower()) for w in re.findall(r"[^\W\d_]+", piece)]
        if words and all(w in STOP_WORDS_FOLDED for w in words):
            continue
        out.append((s, e))
    return out


_FUNCTION_WORDS = {
    "se", "el", "la", "los", "las", "lo", "en", "con", "por", "para", "que", "y", "e", "a", "al", "del", "de", "un", "una",
    "o", "os", "as", "no", "na", "com", "pelo", "pela", "um", "uma", "the", "with", "by", "and", "of", "in",
}


def _trim_leading_words(text: str, s: int, e: int) -> int:
    """Drop the prose a run-on entity swallowed before the name ("Se comenta el caso con Enrique Reyes").

    Leading words go while they are lower-case common words or function words;
    street words stay ("calle Mayor 5" is an address as written).
    """
    import re

    from anonymization.recognizers.contact import STREET_WORD_RE
    from anonymization.recognizers.lexicon import common_words, fold

    vocab = common_words()
    pos = s
    for m in re.finditer(r"\S+", text[s:e]):
        w = m.group()
        core = w.strip(".,;()")
        low = fold(core)
        if STREET_WORD_RE.fullmatch(core) or not core:
            break
        if low in _FUNCTION_WORDS or (core.islower() and low in vocab):
            pos = s + m.end()
            continue
        break
    while pos < e and text[pos].isspace():
        pos += 1
    return pos if pos < e else s


def _trim_trailing_words(text: str, s: int, e: int) -> int:
    """Drop the prose a run-on entity swallowed after the name ("... González refiere molestias desde hace una semana")."""
    import re

    from anonymization.recognizers.lexicon import common_words, fold

    vocab = common_words()
    words = list(re.finditer(r"\S+", text[s:e]))
    end = e
    for m in reversed(words[1:]):  # never the first word
        core = m.group().strip(".,;()")
        if core and (fold(core) in _FUNCTION_WORDS or (core.islower() and fold(core) in vocab)):
            end = s + m.start()
            continue
        break
    while end > s and (text[end - 1].isspace() or text[end - 1] in ",;"):
        end -= 1
    return end if end > s else e
