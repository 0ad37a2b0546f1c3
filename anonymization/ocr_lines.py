"""Read one detected text line: Tesseract through its C API, results cached by image hash.

The burned-in cleaner reads many small line images (see
:mod:`anonymization.text_regions`). Starting a ``tesseract`` process per
image costs ~0.1-0.2 s of start-up and model loading, more than reading a
line; ``tesserocr`` keeps one loaded engine per thread and reads a line in
~5-30 ms. Where tesserocr is missing, the ``tesseract`` command is used
(:func:`foundation.ocr.ocr_image`, same words, slower).

Lines are cached by the hash of their OCR image (an LRU per process): a
static cine overlay is read once per file, a device's fixed captions once
per worker. Only OCR words are cached, never decisions: each file still
judges them against its own identifying values.
"""

from __future__ import annotations

import glob
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("OMP_THREAD_LIMIT", "1")  # one OpenMP thread: ~3x faster on 2 cores (TOOL_NOTES)

CACHE_SIZE = 4096


@dataclass(frozen=True)
class LineWord:
    text: str
    conf: float
    box: tuple[int, int, int, int]  # in the OCR image (x0, y0, x1, y1)


def tessdata_dir() -> str | None:
    """Where the distribution's traineddata files are (Debian: /usr/share/tesseract-ocr/5/tessdata)."""
    env = os.environ.get("TESSDATA_PREFIX")
    if env and os.path.isdir(env):
        return env
    for pattern in ("/usr/share/tesseract-ocr/*/tessdata", "/usr/share/tessdata", "/usr/local/share/tessdata"):
        for d in sorted(glob.glob(pattern), reverse=True):
            if os.path.exists(os.path.join(d, "eng.traineddata")):
                return d
    return None


class LineReader:
    """Reads line images in one Tesseract language; one engine per thread."""

    def __init__(self, lang: str = "spa") -> None:
        self.lang = lang
        self._local = threading.local()
        self._cache: OrderedDict[tuple[str, str, float], tuple[float, list[LineWord]]] = OrderedDict()
        self._lock = threading.Lock()
        try:
            import tesserocr  # noqa: F401

            self._path = tessdata_dir()
            self.engine = "tesserocr" if self._path else "tesseract"
        except ImportError:
            self.engine = "tesseract"
        self.calls = 0

    def _api(self):
        api = getattr(self._local, "api", None)
        if api is None:
            import tesserocr

            api = tesserocr.PyTessBaseAPI(path=self._path, lang=self.lang, psm=tesserocr.PSM.SINGLE_LINE)
            self._local.api = api
        return api

    def read(self, image: np.ndarray, key: str = "", angle: float = 0.0) -> tuple[float, list[LineWord]]:
        """(mean confidence, words) of a line image (uint8, ink dark), rotated by ``angle`` first."""
        ck = (key, self.lang, angle)
        if key:
            with self._lock:
                hit = self._cache.get(ck)
                if hit is not None:
                    self._cache.move_to_end(ck)
                    return hit
        from PIL import Image

        im = Image.fromarray(image, "L")
        if angle:
            im = im.rotate(angle, expand=True, fillcolor=255, resample=Image.BILINEAR)
        self.calls += 1
        result = self._read_tesserocr(im) if self.engine == "tesserocr" else self._read_cli(im)
        if key:
            with self._lock:
                self._cache[ck] = result
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return result

    def _read_tesserocr(self, im) -> tuple[float, list[LineWord]]:
        import tesserocr

        api = self._api()
        api.SetImage(im)
        api.Recognize()
        words: list[LineWord] = []
        it = api.GetIterator()
        level = tesserocr.RIL.WORD
        if it is not None:
            while True:
                try:
                    text = it.GetUTF8Text(level)
                except RuntimeError:  # "No text returned": an empty element
                    text = ""
                if text and text.strip():
                    box = it.BoundingBox(level)
                    if box:
                        words.append(LineWord(text.strip(), float(it.Confidence(level)), tuple(int(v) for v in box)))
                if not it.Next(level):
                    break
        mean = float(np.mean([w.conf for w in words])) if words else 0.0
        return mean, words

    def _read_cli(self, im) -> tuple[float, list[LineWord]]:
        from foundation.ocr import ExtractionError, ocr_image

        from anonymization.ocr_redact import PixelCleanError

        try:
            found = ocr_image(im, lang=self.lang, psm=7)
        except ExtractionError as exc:  # tesseract missing, timed out, failed: the true reason
            raise PixelCleanError(exc.reason_code if exc.reason_code.startswith("ocr_") else "ocr_failed",
                                  "burned-in text could not be read") from exc
        words = [LineWord(w.text, float(w.conf), w.box) for w in found]
        mean = float(np.mean([w.conf for w in words])) if words else 0.0
        return mean, words


_READERS: dict[str, LineReader] = {}


def reader(lang: str) -> LineReader:
    """The process's reader for a Tesseract language (``spa``, ``por``, ``eng``)."""
    r = _READERS.get(lang)
    if r is None:
        r = _READERS[lang] = LineReader(lang)
    return r
