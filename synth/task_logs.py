"""Task logs of ``dag.test()`` runs written where Airflow's UI reads them.

``dag.test()`` (the demo and the end-to-end tests) runs each task in-process
and its log goes to the console only, so the UI says "Log file not found" for
every task of those runs. Under a real executor the task supervisor writes
``<base_log_folder>/dag_id=…/run_id=…/task_id=…/[map_index=…/]attempt=N.log``
as JSON lines; this module does the same for in-process runs: around each
task it tees the task's log events into that file, in that format, so the
api-server serves them like any other task's log.

Two streams make up a task's log: the task runner's own events (structlog:
"Task failed with exception", tracebacks, "Done. Returned value") and the
libraries' stdlib records (the pipeline's per-file outcome lines and run
summary, at INFO; anything else at WARNING and above).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import traceback
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

_current = threading.local()  # the open log file of the task running on this thread
_INFO_LOGGERS = ("sta",)  # project loggers whose INFO lines belong in a task log


def _write(level: str, logger: str, event: str, exception: str | None = None) -> None:
    fh = getattr(_current, "fh", None)
    if fh is None:
        return
    line: dict[str, Any] = {"timestamp": datetime.now(timezone.utc).isoformat(), "level": level.lower(),
                            "logger": logger, "event": event}
    if exception:
        line["event"] = f"{event}\n{exception}"
    fh.write(json.dumps(line, default=str) + "\n")
    fh.flush()


class _StdlibTee(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and not record.name.startswith(_INFO_LOGGERS):
            return
        if record.name.startswith(("airflow.api_fastapi", "sqlalchemy", "alembic")):
            return  # the in-process API server's own bookkeeping, not the task's
        exc = "".join(traceback.format_exception(*record.exc_info)) if record.exc_info else None
        try:
            _write(record.levelname, record.name, record.getMessage(), exc)
        except Exception:  # noqa: BLE001 - a log tee must never break the task
            pass


def _structlog_tee(_logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    try:
        name = str(event_dict.get("logger") or event_dict.get("logger_name") or "task")
        if not name.startswith("airflow.api_fastapi"):
            exc = event_dict.get("exception")
            ei = event_dict.get("exc_info")
            if exc is None and ei:
                if isinstance(ei, BaseException):
                    ei = (type(ei), ei, ei.__traceback__)
                exc = "".join(traceback.format_exception(*ei)) if isinstance(ei, tuple) else traceback.format_exc()
            elif exc is not None and not isinstance(exc, str):
                exc = json.dumps(exc, default=str, indent=1)
            _write(str(event_dict.get("level") or method), name, str(event_dict.get("event", "")), exc)
    except Exception:  # noqa: BLE001
        pass
    return event_dict


def _log_path(ti: Any) -> Path:
    """The file Airflow's log reader looks for (rendered with Airflow's own filename template)."""
    from airflow.configuration import conf
    from airflow.utils.log.file_task_handler import FileTaskHandler

    base = conf.get("logging", "base_log_folder")
    return Path(base) / FileTaskHandler(base)._render_filename(ti, ti.try_number)


@contextlib.contextmanager
def task_log_files() -> Iterator[None]:
    """Within this block, every task ``dag.test()`` runs leaves its log file for the UI."""
    import structlog

    import airflow.sdk.definitions.dag as dag_module

    original_run_task = dag_module._run_task

    def run_task(*, ti: Any, task: Any, **kwargs: Any) -> Any:
        try:
            path = _log_path(ti)
            path.parent.mkdir(parents=True, exist_ok=True)
            fh = path.open("a", encoding="utf-8")
            os.chmod(path, 0o600)
        except Exception:  # noqa: BLE001 - no file: the run goes on, logs on the console only
            return original_run_task(ti=ti, task=task, **kwargs)
        _current.fh = fh
        try:
            return original_run_task(ti=ti, task=task, **kwargs)
        finally:
            _current.fh = None
            fh.close()

    tee = _StdlibTee(logging.INFO)
    root = logging.getLogger()
    saved_levels = {n: logging.getLogger(n).level for n in _INFO_LOGGERS}
    config = structlog.get_config()
    processors = list(config["processors"])
    structlog.configure(processors=[*processors[:-1], _structlog_tee, processors[-1]])
    root.addHandler(tee)
    for n in _INFO_LOGGERS:
        if logging.getLogger(n).getEffectiveLevel() > logging.INFO:
            logging.getLogger(n).setLevel(logging.INFO)
            logging.getLogger(n).propagate = True
    dag_module._run_task = run_task
    try:
        yield
    finally:
        dag_module._run_task = original_run_task
        root.removeHandler(tee)
        structlog.configure(processors=processors)
        for n, level in saved_levels.items():
            logging.getLogger(n).setLevel(level)
