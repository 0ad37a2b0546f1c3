"""Watching a partner's source for new files that have stopped changing.

A reactive partner (``reactive: true`` in its YAML) is ingested when files
arrive rather than on a clock. Airflow's triggerer runs a small trigger
(``plugins/sta_reactive.py``) that calls :meth:`SourceWatch.poll` every few
seconds; this module is the plain-Python part, usable and testable without
Airflow.

What counts as *new*: an entry the source lists whose ``(remote_id, version)``
the partner's sync state does not hold as fetched (the same rule the pull uses
to decide what to fetch), so a file already pulled never fires again, and a
file changed at the source does.

What counts as *stable*: the same version (size + mtime, ETag, ...) seen in
polls at least ``stable_seconds`` apart. A file still being copied into a
folder or uploaded to a bucket keeps changing, so a run never starts on half a
file. Temp names of uploaders (``.part``, ``~``, dot files) are ignored.

Nothing identifying leaves this module: a poll reports counts and a digest of
the new entries' ids, never names or paths.
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transforms.sources.base import RemoteEntry

#: Names uploaders use while a file is still arriving: never a new file.
_PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".tmp", ".upload", "~")
_LIVE = ("landed", "done", "duplicate")  # sync-state rows the pull treats as fetched


def _partial(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.startswith(".") or name.endswith(_PARTIAL_SUFFIXES)


def fetched_versions(state_db: Path) -> set[tuple[str, str]]:
    """``(remote_id, version)`` of every file the pull already holds (read-only, never locks a pull out)."""
    if not state_db.exists():
        return set()
    uri = f"file:{state_db}?mode=ro"
    try:
        with sqlite3.connect(uri, uri=True, timeout=5) as db:
            q = f"SELECT remote_id, version FROM files WHERE status IN ({','.join('?' * len(_LIVE))})"
            return {(r[0], r[1]) for r in db.execute(q, _LIVE)}
    except sqlite3.Error:
        return set()  # a state being created right now: everything listed is new, the pull decides


@dataclass
class PollResult:
    """What one poll saw. ``ready`` files are new and stable and were not signalled before."""

    listed: int = 0
    new: int = 0  # new but maybe still changing
    ready: int = 0
    digest: str = ""  # sha256 over the ready entries' (remote_id, version): dedupes events, no names

    def event(self, partner_id: str) -> dict[str, Any]:
        return {"partner_id": partner_id, "new_files": self.ready, "batch": self.digest}


@dataclass
class SourceWatch:
    """Poll state of one partner's source (kept in memory by the trigger between polls).

    ``list_entries`` lists the source (a connector's ``list()``); ``known``
    returns the fetched ``(remote_id, version)`` pairs (the sync state).
    """

    list_entries: Callable[[], Iterable[RemoteEntry]]
    known: Callable[[], set[tuple[str, str]]]
    stable_seconds: float = 30.0
    clock: Callable[[], float] = time.monotonic
    _first_seen: dict[tuple[str, str], float] = field(default_factory=dict)
    _signalled: set[tuple[str, str]] = field(default_factory=set)

    def poll(self) -> PollResult:
        """List once; return the new entries that have been stable for ``stable_seconds``."""
        now = self.clock()
        fetched = self.known()
        current: dict[tuple[str, str], float] = {}
        result = PollResult()
        for entry in self.list_entries():
            result.listed += 1
            if not entry.downloadable or _partial(entry.path):
                continue
            key = (entry.remote_id, entry.version)
            if key in fetched:
                continue
            result.new += 1
            current[key] = self._first_seen.get(key, now)
        # a version that changed or vanished starts its stability clock again
        self._first_seen = current
        self._signalled &= set(current)
        ready = sorted(k for k, t0 in current.items() if now - t0 >= self.stable_seconds and k not in self._signalled)
        if ready:
            self._signalled.update(ready)
            result.ready = len(ready)
            result.digest = hashlib.sha256("\n".join(f"{a}\t{b}" for a, b in ready).encode()).hexdigest()[:16]
        return result


def partner_watch(partner_id: str, *, stable_seconds: float, connections: Any = None) -> tuple[SourceWatch, Callable[[], None]]:
    """A :class:`SourceWatch` on a partner's configured source and sync state, and a closer for the connector."""
    from foundation.partners import get_partner
    from transforms.pull import sync_state_path
    from transforms.sources import open_source

    partner = get_partner(partner_id)
    root = partner.root()
    state_db = sync_state_path(partner, root)
    source = open_source(partner, connections, base=root.base)

    def list_entries() -> Iterable[RemoteEntry]:
        try:
            yield from source.list()
        except FileNotFoundError:
            return  # a folder that does not exist yet: nothing has arrived

    return SourceWatch(list_entries, lambda: fetched_versions(state_db), stable_seconds), source.close
