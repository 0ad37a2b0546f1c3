"""Former home of the burned-in text cleaner, split by concern (issue 9/10):

* :mod:`anonymization.pixel_risk` -- the one pixel-risk rule (profile data);
* :mod:`anonymization.text_regions` -- where text is (morphology, no OCR);
* :mod:`anonymization.ocr_lines` -- reading a line (tesserocr, cached);
* :mod:`anonymization.ocr_redact` -- judging and redacting frames;
* :mod:`anonymization.pixel_stream` -- large files frame by frame;
* :mod:`anonymization.encapsulated` -- bytes inside encapsulated frames;
* :mod:`anonymization.documents` -- encapsulated PDF/CDA documents.

Kept as a re-export for callers not yet moved.
"""

from anonymization.ocr_redact import PixelCleanError, PixelCleanResult, clean_burned_in, is_safe_annotation  # noqa: F401
