"""The ground floor: what every other package may import, importing nothing of the project.

- :mod:`foundation.paths`     data root, partner root (the enclave) and :class:`RunFolder`
                              (every path of ``work/<run>/`` named in one place)
- :mod:`foundation.partners`  partner YAML files -> validated :class:`PartnerConfig`
- :mod:`foundation.profiles`  de-identification profiles (YAML) -> :class:`Profile`
- :mod:`foundation.quarantine` quarantine reasons (stable codes) and ``quarantine_file``
- :mod:`foundation.schema`    Arrow schemas of the published tables and the per-file DICOM row
- :mod:`foundation.ocr`       Tesseract primitives (words with boxes) shared by reports and pixels
- :mod:`foundation.landing`   landing ids: how a raw file is named outside the partner's raw zone

Only third-party libraries (pydantic, PyYAML, pyarrow, pytesseract) are imported
here; ``tests/test_import_layers.py`` keeps it that way.
"""
