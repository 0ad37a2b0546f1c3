"""Partner source connectors (folder, SFTP, S3, Google Drive, Dropbox).

:func:`open_source` turns a partner's ``source:`` block into a connected
:class:`~transforms.sources.base.Source`; connector modules are imported
lazily so a folder-only deployment never imports boto3 or the Google client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from transforms.sources.base import (
    ConnectionInfo,
    ConnectionNotFound,
    ConnectionResolver,
    RemoteEntry,
    Source,
    SourceError,
    env_connection_resolver,
)

if TYPE_CHECKING:
    from foundation.partners import PartnerConfig

__all__ = [
    "ConnectionInfo",
    "ConnectionNotFound",
    "ConnectionResolver",
    "RemoteEntry",
    "Source",
    "SourceError",
    "env_connection_resolver",
    "open_source",
]


def _conn(partner: "PartnerConfig", connections: ConnectionResolver) -> ConnectionInfo:
    conn_id = partner.source.conn_id
    if not conn_id:
        raise SourceError(f"partner {partner.id}: source type {partner.source.type!r} needs a conn_id")
    try:
        info = connections(conn_id)
    except ConnectionNotFound:
        raise
    except Exception as exc:  # the Airflow resolver raises its own NotFound types
        raise ConnectionNotFound(conn_id, f"cannot be resolved: {exc}") from exc
    if info is None:
        raise ConnectionNotFound(conn_id)
    return info


def open_source(
    partner: "PartnerConfig",
    connections: ConnectionResolver | None = None,
    base: Path | None = None,
) -> Source:
    """Build the connector named by ``partner.source`` (credentials from ``connections``)."""
    connections = connections or env_connection_resolver
    src = partner.source
    if src.type == "folder":
        from transforms.sources.folder import FolderSource

        return FolderSource(partner.source_path(base))
    # Resolve the connection first: a missing one must fail naming it, before anything else.
    conn = _conn(partner, connections)
    if src.type == "sftp":
        from transforms.sources.sftp import SFTPSource

        return SFTPSource(conn, src.path or ".")
    if src.type == "s3":
        from transforms.sources.s3 import S3Source

        if not src.bucket:
            raise SourceError(f"partner {partner.id}: s3 source needs 'bucket'")
        return S3Source(conn, src.bucket, src.prefix or "")
    if src.type == "gdrive":
        from transforms.sources.gdrive import DriveSource

        if not src.folder_id:
            raise SourceError(f"partner {partner.id}: gdrive source needs 'folder_id'")
        return DriveSource(conn, src.folder_id)
    if src.type == "dropbox":
        from transforms.sources.dropbox import DropboxSource

        return DropboxSource(conn, src.path or "")
    raise SourceError(f"partner {partner.id}: unknown source type {src.type!r}")
