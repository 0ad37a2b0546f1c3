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
    "PAIS": "LOCATION",
    "HOSPITAL": "ORGANIZATION",
    "INSTITUCION": "ORGANIZATION",
    "CENTRO_SALUD": "ORGANIZATION",
    "FECHAS": "DATE",
    "EDAD_SUJETO_ASISTENCIA": "AGE",
}


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
        wanted = set(entities or self.supported_entities)
        out = []
        doc = self._nlp(text)
        for ent in doc.ents:
            typ = LABEL_MAP.get(ent.label_)
            if typ and typ in wanted:
                out.append(
                    RecognizerResult(
                        typ, ent.start_char, ent.end_char, 0.85,
                        recognition_metadata={"recognizer_name": self.name, "recognizer_identifier": self.id},
                    )
                )
        return out
