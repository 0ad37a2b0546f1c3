"""Great Expectations gate in front of publication.

A partner run writes its tables (``foundation.schema``) to a staging folder;
:func:`expectations.gate.validate_tables` runs one expectation suite per table
through a GX Checkpoint and returns a :class:`expectations.gate.GateResult`
whose ``failures`` say, table and column first, why a run must not be
published.

Importing this package is cheap on purpose: ``great_expectations`` costs 5-8 s
to import, and DAG files, the CLI and the dag-processor import this package
without validating anything. GX is imported inside the validating function;
the names below are resolved lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GateResult", "validate_tables", "validate_parquet_dir"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from expectations import gate

        return getattr(gate, name)
    raise AttributeError(f"module 'expectations' has no attribute {name!r}")
