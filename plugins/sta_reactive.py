"""Reactive syncs: an Airflow event trigger that fires when a partner's new files are complete.

Partners with ``reactive: true`` in their YAML are scheduled on an asset
watched by :class:`NewStableFilesTrigger` (``AssetWatcher``): the triggerer
runs it, it polls the partner's source (folder, bucket, any connector) every
``reactive_poll_seconds`` and yields one event when files that the partner's
sync state doesn't hold have kept the same version for
``reactive_stable_seconds``. Each event becomes an asset event, and the
asset event a run of ``ingest_<partner>``. The logic is
:mod:`transforms.source_watch` (plain Python); this is the Airflow shell.

The event's payload carries the partner id, a count and a digest, never a
file name (asset events are shown in the UI and kept in the metadata DB).
This module lives in ``plugins/``, which every Airflow process has on
``sys.path``, so the triggerer imports it by the class path below.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from airflow.sdk import Asset, AssetWatcher
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

CLASSPATH = "sta_reactive.NewStableFilesTrigger"


class NewStableFilesTrigger(BaseEventTrigger):
    """Yield an event each time a partner's source holds new files that stopped changing."""

    def __init__(self, partner_id: str, poll_seconds: float = 10.0, stable_seconds: float = 30.0) -> None:
        super().__init__()
        self.partner_id = partner_id
        self.poll_seconds = float(poll_seconds)
        self.stable_seconds = float(stable_seconds)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return CLASSPATH, {"partner_id": self.partner_id, "poll_seconds": self.poll_seconds,
                           "stable_seconds": self.stable_seconds}

    def _open(self):  # noqa: ANN202 - (SourceWatch, close)
        from transforms.source_watch import partner_watch

        return partner_watch(self.partner_id, stable_seconds=self.stable_seconds, connections=_airflow_connections)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        watch, close = None, None
        try:
            while True:
                if watch is None:
                    try:
                        # On the event loop: resolving an Airflow Connection talks to the
                        # triggerer's supervisor, which only works from this thread.
                        watch, close = self._open()
                    except Exception as exc:  # noqa: BLE001 - a source not there yet: keep waiting, say why
                        log.warning("partner %s: source not available yet (%s); retrying in %ss",
                                    self.partner_id, type(exc).__name__, self.poll_seconds)
                else:
                    try:
                        result = await asyncio.to_thread(watch.poll)  # listing may take seconds: off the loop
                    except Exception as exc:  # noqa: BLE001 - a failed listing is retried, never fatal
                        log.warning("partner %s: listing failed (%s); retrying", self.partner_id, type(exc).__name__)
                    else:
                        if result.ready:
                            log.info("partner %s: %d new stable files (of %d listed)", self.partner_id,
                                     result.ready, result.listed)
                            yield TriggerEvent(result.event(self.partner_id))
                await asyncio.sleep(self.poll_seconds)
        finally:
            if close is not None:
                close()


def _airflow_connections(conn_id: str) -> Any:
    from airflow.sdk import BaseHook

    from transforms.sources.base import ConnectionInfo

    return ConnectionInfo.from_airflow(BaseHook.get_connection(conn_id))


def incoming_asset(partner: Any) -> Asset:
    """The asset a reactive partner's DAG is scheduled on: new files at its source, watched by the triggerer."""
    trigger = NewStableFilesTrigger(partner.id, partner.reactive_poll_seconds, partner.reactive_stable_seconds)
    return Asset(
        name=f"incoming_{partner.id}",
        uri=f"sta://{partner.region}/{partner.id}/incoming",
        watchers=[AssetWatcher(name=f"new_files_{partner.id}", trigger=trigger)],
    )
