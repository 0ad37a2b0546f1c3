"""Shared by the delivery commands (export, sql, usage, account): the data
root, the service database and a customer by name. Not a command itself."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", help="data root (default $STA_DATA_ROOT or ./data)")
    p.add_argument("--db", help="service database (default <data_root>/service/service.sqlite or $STA_SERVICE_DB)")


def root(args: argparse.Namespace) -> Path:
    from foundation.paths import data_root

    return Path(args.data_root).resolve() if getattr(args, "data_root", None) else data_root()


def open_db(args: argparse.Namespace):  # noqa: ANN201 - delivery.servicedb.ServiceDB
    from delivery.database import default_db_path
    from delivery.servicedb import ServiceDB

    return ServiceDB(Path(args.db) if getattr(args, "db", None) else default_db_path(root(args)))


def customer(db, name: str):  # noqa: ANN001, ANN201
    c = db.customer(name)
    if c is None:
        raise ValueError(f"no customer named {name!r} (sta apikey list shows them)")
    return c
