"""Presidio recognizers for Latin American and US report text (the Presidio wrappers).

Each recognizer family is a plain function ``find_*(text, language)`` that
returns ``(entity, start, end, score)`` spans -- easy to test and to reuse
(link keys, residual checks) -- and is wrapped here as a Presidio
``EntityRecognizer`` so the analyzer runs them all, one instance per
language, with no NLP model needed (Presidio's NoOp engine).
"""

from __future__ import annotations

from typing import Callable, List, Optional

from presidio_analyzer import EntityRecognizer, RecognizerResult

from anonymization.recognizers.contact import find_contacts
from anonymization.recognizers.dates import find_dates, find_times
from anonymization.recognizers.ids import find_ids
from anonymization.recognizers.institutions import find_institutions
from anonymization.recognizers.names import find_names
from anonymization.recognizers.places import find_places

Finder = Callable[[str, str], list]

from anonymization.recognizers import ENTITIES  # noqa: E402,F401 - one list of entity types


def find_date_spans(text: str, language: str = "es") -> list[tuple[str, int, int, float]]:
    spans = [("DATE", d.start, d.end, 0.95) for d in find_dates(text, language)]
    return spans + [("TIME", s, e, 0.7) for s, e in find_times(text)]


class FunctionRecognizer(EntityRecognizer):
    """A Presidio recognizer around a ``find_*(text, language)`` function."""

    def __init__(self, name: str, finder: Finder, entities: list[str], language: str) -> None:
        self._finder = finder
        super().__init__(supported_entities=entities, name=f"{name}_{language}", supported_language=language)

    def load(self) -> None:  # nothing to load: regexes compile at import
        pass

    def analyze(self, text: str, entities: List[str], nlp_artifacts=None) -> Optional[List[RecognizerResult]]:
        wanted = set(entities or self.supported_entities)
        return [
            RecognizerResult(entity_type=e, start=s, end=t, score=sc)
            for e, s, t, sc in self._finder(text, self.supported_language)
            if e in wanted and t > s
        ]


FINDERS: dict[str, tuple[Finder, list[str]]] = {
    "sta_names": (find_names, ["PERSON"]),
    "sta_ids": (find_ids, ["ID"]),
    "sta_dates": (find_date_spans, ["DATE", "TIME"]),
    "sta_contacts": (find_contacts, ["PHONE", "EMAIL", "URL", "ADDRESS", "LOCATION", "ORGANIZATION", "ID", "AGE"]),
    "sta_places": (find_places, ["LOCATION", "ADDRESS"]),
    "sta_institutions": (find_institutions, ["ORGANIZATION"]),
}


def build_recognizers(languages: list[str]) -> list[EntityRecognizer]:
    return [
        FunctionRecognizer(name, finder, entities, lang)
        for lang in languages
        for name, (finder, entities) in FINDERS.items()
    ]
