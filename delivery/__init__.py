"""Delivery: what customers receive and what it is recorded as.

Plain Python (no Airflow, no ``sta`` import), used by the query service, the
``sta`` CLI and the ``export`` / ``provision_workspace`` DAGs alike:

- ``database``: the service database (SQLite, WAL) every part below writes to;
- ``accounts``: customers, plans, regions, hashed API keys, sessions, sign-up,
  Pro requests and Enterprise contacts;
- ``metering``: the audit log and the deliveries ledger (which partner's
  studies went to which customer), monthly usage;
- ``entitlement``: the studies a customer may receive (regions, plan);
- ``exports``: export orders and the package builder (JSON / DICOM, streamed,
  checksummed manifest);
- ``links``: signed, expiring download links;
- ``mail``: the "your export is ready" message;
- ``workspaces``: Pro SQL workspaces (a DuckDB file per customer) and the
  guarded query runner.
"""
