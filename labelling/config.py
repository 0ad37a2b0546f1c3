"""Where the labeller's data lives and how a bad file is reported.

Everything the labeller knows (concepts and synonyms, assertion cues,
section headers, clusters, body regions, characterization cues) is YAML in
``include/labelling/``; a mistake in one of those files is reported with the
file and the field, never as a traceback from deep inside a matcher.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent


class LabellingConfigError(ValueError):
    """A labelling data file is missing or malformed (message names file and field)."""


def data_dir() -> Path:
    """``include/labelling`` (``STA_LABELLING_DIR`` overrides it, for tests)."""
    return Path(os.environ.get("STA_LABELLING_DIR") or PROJECT_ROOT / "include" / "labelling")


def load_yaml(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as fh:
            return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except FileNotFoundError:
        raise LabellingConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise LabellingConfigError(f"{path}: not valid YAML: {exc}") from None


def require(mapping: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    """``mapping[key]`` checked for type, or an error naming ``where`` and the field."""
    if not isinstance(mapping, dict):
        raise LabellingConfigError(f"{where}: expected a mapping")
    if key not in mapping:
        raise LabellingConfigError(f"{where}: missing field '{key}'")
    value = mapping[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise LabellingConfigError(f"{where}.{key}: expected {names}, got {type(value).__name__}")
    return value


LANGUAGES = ("es", "pt", "en")
CERTAINTIES = ("positive", "negative", "uncertain", "historical", "family")
