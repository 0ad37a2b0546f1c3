"""What a stage runs on: the resolved partner, its enclave and the run's work folder."""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from foundation.partners import PartnerConfig, get_partner
from foundation.paths import PartnerRoot, RunFolder
from foundation.profiles import Profile, load_profile

_log = logging.getLogger("sta.outcomes")


@dataclass(frozen=True)
class RunContext:
    """One partner's run, resolved once per task and handed to a stage."""

    partner: PartnerConfig
    root: PartnerRoot
    run: RunFolder

    @classmethod
    def resolve(cls, partner_id: str, run_id: str, base: Path | None = None) -> "RunContext":
        """Load the partner's YAML (validated, profile included) and name its paths."""
        return cls.of(get_partner(partner_id), run_id, base)

    @classmethod
    def of(cls, partner: PartnerConfig, run_id: str, base: Path | None = None) -> "RunContext":
        root = partner.root(base)
        return cls(partner, root, root.run(run_id))

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @functools.cached_property
    def profile(self) -> Profile:
        return load_profile(self.partner.profile, self.partner.profile_overrides)

    @property
    def quarantine(self) -> Path:
        """Where this run's refused raw files go."""
        return self.root.quarantine_run(self.run_id)

    def landing(self, relpath: str) -> Path:
        """A landed file, refused if the path escapes the partner's root."""
        return self.root.ensure_inside(self.root.landing / relpath)

    def quarantine_file(self, src: Path, relpath: str, code: str, stage: str, detail: str = "") -> Path:
        """Quarantine a landed file under its landing id, with a reason that names no raw path."""
        from foundation.landing import landing_id
        from foundation.quarantine import Reason, quarantine_file

        return quarantine_file(src, self.quarantine, landing_id(relpath),
                               Reason(code, stage, safe_detail(detail, relpath), self.run_id))

    def work(self) -> RunFolder:
        """The run folder, created and checked to be inside the partner's root."""
        self.run.create()
        self.root.ensure_inside(self.run.path)
        return self.run


def safe_detail(detail: str, relpath: str, limit: int = 200) -> str:
    """An error message without the raw path or any of its parts (partner paths carry names and MRNs)."""
    import re

    parts = {relpath, *Path(relpath).parts, Path(relpath).stem}
    for part in sorted((p for p in parts if len(p) >= 3), key=len, reverse=True):
        detail = detail.replace(part, "<file>")
    return re.sub(r"(/[^\s:'\"]+)+", "<path>", detail)[:limit]


def write_json(path: Path, data: Any) -> None:
    """Write atomically (temp file then rename): a killed task leaves the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def record_outcomes(run: RunFolder, name: str, outcomes: list[dict[str, Any]]) -> None:
    """One line per file: ``{relpath, status, reason, kind}``; the ledger adds them up.

    Each outcome is also one task-log line naming the file by its landing id
    (never its path: partner paths carry names and record numbers).
    """
    from foundation.landing import landing_id

    path = run.outcome_file(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for o in outcomes:
            fh.write(json.dumps(o) + "\n")
            _log.info("file %s %s %s (%s)", landing_id(o["relpath"]), o["status"], o.get("reason") or "-",
                      o.get("kind") or name)


def fetched(run: RunFolder) -> list[str]:
    """Landing paths of the files this run pulled (empty when the pull never ran)."""
    path = run.pull_report
    return [f["landing_relpath"] for f in read_json(path).get("fetched", [])] if path.exists() else []


F = TypeVar("F", bound=Callable[..., dict[str, Any]])


def timed(fn: F) -> F:
    """Run a stage ``fn(ctx, ...)`` inside the enclave's rules; add ``seconds`` to its summary.

    The partner's raw zone is (re)created 0700 and the stage runs with umask
    077, so every file it writes (landing copies, identity maps, quarantined
    originals) is readable only by the pipeline's user.
    """

    @functools.wraps(fn)
    def wrapper(ctx: "RunContext", *args: Any, **kwargs: Any) -> dict[str, Any]:
        t0 = time.perf_counter()
        ctx.root.secure_raw_zone()
        old = os.umask(0o077)
        try:
            out = fn(ctx, *args, **kwargs)
        finally:
            os.umask(old)
        out["seconds"] = round(time.perf_counter() - t0, 3)
        return out

    return wrapper  # type: ignore[return-value]


stage = timed
