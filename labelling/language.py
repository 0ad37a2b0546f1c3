"""Report language (es/pt/en) from the labeller's own word lists.

The labeller must not depend on the pipeline's text-extraction layer, and
it already holds per-language vocabularies (cue lists and `markers` in
include/labelling/cues.yaml): a vote over those, plus the orthography only
one language has (ã/õ/ç: Portuguese; ñ, -ción: Spanish), is enough for a
report of more than a line.
"""

from __future__ import annotations

import re
from functools import lru_cache

from labelling.config import LANGUAGES, data_dir, load_yaml
from labelling.cues import cues
from labelling.text import fold, fold_phrase

_WORD = re.compile(r"[^\W\d_]+")


@lru_cache(maxsize=1)
def _vocabulary_words() -> dict[str, str]:
    """Single-word synonyms of concepts.yaml that belong to one language only."""
    data = load_yaml(data_dir() / "concepts.yaml")
    langs: dict[str, set[str]] = {}
    for spec in (data.get("concepts") or {}).values():
        for lang, terms in ((spec or {}).get("synonyms") or {}).items():
            if lang not in LANGUAGES:
                continue
            for t in terms or []:
                t = t.get("term") if isinstance(t, dict) else t
                if isinstance(t, str) and not t.startswith("re:") and "*" not in t and " " not in t.strip():
                    langs.setdefault(fold_phrase(t), set()).add(lang)
    return {w: next(iter(ls)) for w, ls in langs.items() if len(ls) == 1}


def detect(text: str, default: str = "es") -> str:
    """"es", "pt" or "en"; ``default`` when the text gives no signal."""
    markers = cues().markers
    own = _vocabulary_words()
    scores = dict.fromkeys(LANGUAGES, 0.0)
    raw = text[:20000].lower()
    for w in _WORD.findall(raw):
        if any(c in w for c in "ãõç") or w.endswith(("ção", "ções")):
            scores["pt"] += 2
        if "ñ" in w or w.endswith(("ción", "ciones")):
            scores["es"] += 2
        f = fold(w)
        if f in own:
            scores[own[f]] += 1
        for lang in LANGUAGES:
            if f in markers[lang]:
                scores[lang] += 1
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] >= 2 else default
