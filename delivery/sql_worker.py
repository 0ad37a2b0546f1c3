"""One workspace query in its own process: ``python -m delivery.sql_worker``
reads ``{"workspace", "sql", "limits"}`` (JSON) on stdin and writes the result
or ``{"error": "refused"|"failed", "message"}`` on stdout.

Why a process: DuckDB's ``memory_limit`` governs its buffer manager, not
every allocation a query can make (``SELECT repeat('a', 1000000) FROM
range(3000)`` grew a process to 3 GB here). The parent caps this process's
address space (``RLIMIT_AS``) and CPU seconds and kills it at the wall-clock
limit, so no query can take the service down with it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path


def main() -> int:
    from delivery.workspaces import Limits, QueryFailed, QueryRefused, run_query

    req = json.load(sys.stdin)
    try:
        out = run_query(Path(req["workspace"]), req["sql"], Limits(**req["limits"]))
    except QueryRefused as exc:
        out = {"error": "refused", "message": str(exc)}
    except QueryFailed as exc:
        out = {"error": "failed", "message": str(exc)}
    except MemoryError:
        out = {"error": "failed", "message": "query needs more memory than the workspace allows"}
    sys.stdout.write(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())



