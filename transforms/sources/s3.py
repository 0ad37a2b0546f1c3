"""S3 source (boto3): a bucket and prefix the partner writes to.

Credentials and endpoint come from an Airflow ``aws`` connection: login =
access key id, password = secret key, extra ``region_name``,
``endpoint_url`` (or ``service_config.s3.endpoint_url``) for S3-compatible
stores, ``aws_session_token``. Extra ``verify_etag: false`` turns off ETag
checking for buckets whose ETags are not MD5-based (SSE-KMS / SSE-C).

Safety: a fetch sends ``If-Match: <listed ETag>``, so an object overwritten
after the listing answers 412 and its new version is fetched instead of a
mix; a dropped connection resumes with ``Range``. The ETag is recomputed
while streaming (MD5, or MD5-of-part-MD5s for multipart uploads, with the part
size read from ``HeadObject PartNumber=1``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import urllib3.exceptions
import botocore.exceptions as bce
from botocore.config import Config

from transforms.sources.base import (
    ChangedAtSource,
    ConnectionInfo,
    ConnectionNotFound,
    CorruptTransfer,
    Hasher,
    NotFoundAtSource,
    RemoteEntry,
    S3EtagHasher,
    Source,
    SourceError,
    TransientError,
)

CHUNK = 1024 * 1024
_ETAG_RE = re.compile(r"^[0-9a-f]{32}(-\d+)?$")
_TRANSIENT = (
    bce.ConnectionError,  # EndpointConnectionError, ConnectionClosedError, ...
    bce.HTTPClientError,
    bce.ReadTimeoutError,
    bce.ResponseStreamingError,
    bce.IncompleteReadError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


class S3Source(Source):
    kind = "s3"
    max_workers = 8  # boto3 clients are thread-safe: clone() is self

    def __init__(
        self, conn: ConnectionInfo, bucket: str, prefix: str = "", chunk_size: int = CHUNK, page_size: int = 1000
    ) -> None:
        self.conn = conn
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        self.chunk_size = chunk_size
        self.page_size = page_size
        extra = conn.extra
        endpoint = extra.get("endpoint_url") or (extra.get("service_config") or {}).get("s3", {}).get("endpoint_url")
        if endpoint is None and conn.host:
            endpoint = conn.host if "://" in conn.host else f"https://{conn.host}"
            if conn.port:
                endpoint += f":{conn.port}"
        self.verify_etag = not (str(extra.get("verify_etag", "true")).lower() in ("0", "false", "no", "off"))
        self.client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=conn.login or extra.get("aws_access_key_id"),
            aws_secret_access_key=conn.password or extra.get("aws_secret_access_key"),
            aws_session_token=extra.get("aws_session_token"),
            region_name=extra.get("region_name") or "us-east-1",
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=10,
                read_timeout=60,
                s3={"addressing_style": extra.get("addressing_style", "auto")},
                max_pool_connections=16,
            ),
        )
        self._part_sizes: dict[str, int] = {}
        try:
            self.client.head_bucket(Bucket=bucket)
        except bce.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise ConnectionNotFound(conn.conn_id, f"refused by S3 for bucket {bucket!r}: {code}") from None
            raise SourceError(f"s3 bucket {bucket!r} via connection {conn.conn_id!r}: {code or exc}") from None
        except _TRANSIENT as exc:
            raise SourceError(f"s3 endpoint of connection {conn.conn_id!r} unreachable: {exc}") from None

    def _entry(self, key: str, size: int, etag: str, last_modified: Any) -> RemoteEntry:
        etag = etag.strip('"')
        source_hash = f"s3etag:{etag}" if self.verify_etag and _ETAG_RE.match(etag) else None
        return RemoteEntry(
            remote_id=key,
            path=key[len(self.prefix) :],
            size=int(size),
            mtime=last_modified.isoformat() if hasattr(last_modified, "isoformat") else str(last_modified),
            version=etag,
            source_hash=source_hash,
            extra={"etag": etag},
        )

    def list(self) -> Iterator[RemoteEntry]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.page_size}
        )
        for page in pages:
            for obj in page.get("Contents", []):
                key = obj["Key"]
                if key.endswith("/") and obj["Size"] == 0:
                    continue  # a "folder" placeholder made by consoles
                yield self._entry(key, obj["Size"], obj["ETag"], obj["LastModified"])

    def stat(self, entry: RemoteEntry) -> RemoteEntry | None:
        try:
            h = self.client.head_object(Bucket=self.bucket, Key=entry.remote_id)
        except bce.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return self._entry(entry.remote_id, h["ContentLength"], h["ETag"], h["LastModified"])

    def new_hasher(self, entry: RemoteEntry) -> Hasher | None:
        if not entry.source_hash:
            return None
        etag = entry.source_hash.split(":", 1)[1]
        if "-" not in etag:
            return S3EtagHasher()
        parts = int(etag.rsplit("-", 1)[1])
        try:
            h = self.client.head_object(Bucket=self.bucket, Key=entry.remote_id, PartNumber=1)
        except (bce.ClientError, *_TRANSIENT):
            return None  # cannot learn the part size: size check only
        return S3EtagHasher(part_size=int(h["ContentLength"]), parts=parts)

    def open_stream(self, entry: RemoteEntry, offset: int = 0) -> Iterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": entry.remote_id, "IfMatch": f'"{entry.version}"'}
        if offset:
            if entry.size is not None and offset >= entry.size:
                return
            kwargs["Range"] = f"bytes={offset}-"
        try:
            resp = self.client.get_object(**kwargs)
        except bce.ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "412"):
                raise ChangedAtSource(entry.path) from None
            if code in ("NoSuchKey", "404"):
                raise NotFoundAtSource(entry.path) from None
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500:
                raise TransientError(f"s3 {code}") from None
            raise
        except _TRANSIENT as exc:
            raise TransientError(str(exc)) from None
        body = resp["Body"]
        try:
            for chunk in body.iter_chunks(self.chunk_size):
                yield chunk
        except bce.FlexibleChecksumError as exc:
            raise CorruptTransfer(str(exc)) from None
        except _TRANSIENT as exc:
            raise TransientError(str(exc)) from None
        finally:
            body.close()

    def close(self) -> None:
        self.client.close()
