"""``ServiceDB``: the service database with every area's tables and methods
(accounts, metering, export orders) on one connection."""

from __future__ import annotations

from delivery import accounts, metering, orders
from delivery.accounts import AccountsMixin
from delivery.metering import MeteringMixin
from delivery.orders import OrdersMixin


class ServiceDB(AccountsMixin, MeteringMixin, OrdersMixin):
    """Open (and create) the service database at ``path``."""

    SCHEMAS = (accounts.SCHEMA, metering.SCHEMA, orders.SCHEMA)
