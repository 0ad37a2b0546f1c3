"""The generator's vocabulary, read from YAML files in ``synth/data/`` (data, not code)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"


@lru_cache(maxsize=None)
def table(name: str) -> Any:
    """``synth/data/<name>.yaml`` parsed (cached: the generator reads each file once)."""
    path = DATA_DIR / f"{name}.yaml"
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise RuntimeError(f"{path}: cannot read the generator's table: {exc}") from exc
