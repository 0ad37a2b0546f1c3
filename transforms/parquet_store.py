"""Publishing a run's table into a partner's Parquet file: replace by key, atomically.

Re-running a DAG on the same input yields the same keyed UIDs, so merging by
primary key makes publication idempotent: no duplicates, and a re-published
row replaces its older version.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq


def _key(table: pa.Table, columns: tuple[str, ...]) -> pa.Array:
    if len(columns) == 1:
        return pc.cast(table[columns[0]], pa.string())
    parts = [pc.fill_null(pc.cast(table[c], pa.string()), "") for c in columns]
    return pc.binary_join_element_wise(*parts, "\x1f")


def merge_table(path: Path, new: pa.Table, key: tuple[str, ...]) -> int:
    """Write ``existing - rows with new keys + new`` to ``path``; return the row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        old = pq.read_table(path)
        if old.schema != new.schema:
            old = old.cast(new.schema) if set(old.schema.names) == set(new.schema.names) else old.select(new.schema.names).cast(new.schema)
        keep = pc.invert(pc.is_in(_key(old, key), value_set=_key(new, key)))
        merged = pa.concat_tables([old.filter(keep), new])
    else:
        merged = new
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(merged, tmp, compression="zstd")
    os.replace(tmp, path)
    return merged.num_rows
