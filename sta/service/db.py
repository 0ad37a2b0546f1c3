"""The service database lives in the ``delivery`` library (accounts, audit,
metering, export orders: the CLI and the DAGs use it too); the service
imports it from here."""

from delivery.accounts import KEY_PREFIX, PLANS, Customer, hash_token
from delivery.database import default_db_path
from delivery.servicedb import ServiceDB

__all__ = ["KEY_PREFIX", "PLANS", "Customer", "ServiceDB", "default_db_path", "hash_token"]
