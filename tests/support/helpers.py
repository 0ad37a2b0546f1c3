"""Small helpers shared by the connector tests (partners, roots, landing contents)."""

from __future__ import annotations

from pathlib import Path

from foundation.partners import PartnerConfig

from foundation.paths import PartnerRoot


def make_partner(pid: str, **source) -> PartnerConfig:
    return PartnerConfig(id=pid, name=pid, country="co", region="co", source=source)


def make_root(tmp_path: Path, partner: PartnerConfig) -> PartnerRoot:
    return PartnerRoot(tmp_path / "data", "co", partner.id)


def landing_files(root: PartnerRoot) -> dict[str, bytes]:
    """Every file in landing (temp files included: a test must see them if any are left)."""
    if not root.landing.exists():
        return {}
    return {p.relative_to(root.landing).as_posix(): p.read_bytes() for p in root.landing.rglob("*") if p.is_file()}


def resolver(*conns):
    """A ConnectionResolver over fixed ConnectionInfo objects (the Airflow operator passes its own)."""
    from transforms.sources.base import ConnectionNotFound

    table = {c.conn_id: c for c in conns}

    def resolve(conn_id: str):
        if conn_id not in table:
            raise ConnectionNotFound(conn_id)
        return table[conn_id]

    return resolve
