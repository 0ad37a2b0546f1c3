"""Quarantine: where refused raw files wait, each with a machine-readable reason.

A quarantined file keeps its path relative to the input (landing or the CLI's
INPUT_DIR) and gets ``<name>.reason.json`` beside it. The reason names the
stage and a stable code (``not_dicom``, ``truncated``, ``residual_phi`` ...)
and never an identifying value, so it can be shown to an engineer or counted
on a dashboard. Quarantine is inside the partner's enclave: it holds raw data.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

REASON_SUFFIX = ".reason.json"


@dataclass(frozen=True)
class Reason:
    code: str
    stage: str
    detail: str = ""
    run_id: str = ""


def quarantine_file(src: Path, quarantine_root: Path, relpath: str, reason: Reason, *, move: bool = False) -> Path:
    """Copy (or move) ``src`` to ``quarantine_root/relpath`` and write its reason beside it."""
    dst = quarantine_root / relpath
    if quarantine_root.resolve() not in dst.resolve().parents:
        raise PermissionError(f"quarantine path escapes its root: {relpath!r}")
    dst.parent.mkdir(parents=True, exist_ok=True)
    if src.exists():
        if move:
            shutil.move(str(src), dst)
        else:
            shutil.copy2(src, dst)
    record = asdict(reason) | {"file": relpath, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    dst.with_name(dst.name + REASON_SUFFIX).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return dst


def read_reason(quarantined: Path) -> dict:
    return json.loads(quarantined.with_name(quarantined.name + REASON_SUFFIX).read_text(encoding="utf-8"))
