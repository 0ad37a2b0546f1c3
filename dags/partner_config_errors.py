"""Partner files that don't load, shown in Airflow as this file's DAG import error.

The DAG factories (``ingest_partners.py``, ``link_regions.py``) build every
partner whose YAML loads and skip the others, so one malformed file breaks
only its own partner's DAG. This file raises the skipped files' errors (each
names the YAML file and the field), so Airflow's UI lists them under
"DAG Import Errors" until the file is fixed; then this file parses cleanly
and the error disappears on the dag-processor's next pass.
"""

from __future__ import annotations

from foundation.partners import ConfigError, load_partners_checked

_partners, _errors = load_partners_checked()
if _errors:
    raise ConfigError(
        f"{len(_errors)} partner file(s) not loaded, their ingest_<partner> DAGs are missing:\n"
        + "\n".join(f"- {msg}" for msg in _errors.values())
    )
