"""Signed, expiring, single-use download links for export packages.

A link carries a token signed with itsdangerous (HMAC-SHA256 over the order
id, the owner's customer id and a random nonce, with its creation time). The
download endpoint accepts it only if the signature holds, it is younger than
``max_age``, it names the order asked for, the caller (``X-API-Key``) is the
order's owner, and its nonce was never used: each link works once (a fresh
one comes with every ``GET /api/exports/{id}`` by the owner).

The secret is derived from the deployment key (``STA_SECRET_KEY``) with a
purpose label, so a link token can't be replayed as anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

DEFAULT_MAX_AGE_S = 72 * 3600
_SALT = "sta-export-download"


class LinkError(Exception):
    """A link that is not valid (the message is safe to show)."""


class LinkExpired(LinkError):
    pass


@dataclass(frozen=True)
class LinkClaims:
    order_id: str
    customer_id: int
    nonce: str


def derive_secret(deployment_key: str) -> bytes:
    if not deployment_key:
        raise ValueError("no deployment key (STA_SECRET_KEY) to sign download links with")
    return hmac.new(deployment_key.encode(), b"sta/export-links/v1", hashlib.sha256).digest()


class LinkSigner:
    def __init__(self, secret: bytes, max_age_s: int = DEFAULT_MAX_AGE_S) -> None:
        self._s = URLSafeTimedSerializer(secret, salt=_SALT)
        self.max_age_s = max_age_s

    def sign(self, order_id: str, customer_id: int) -> str:
        return self._s.dumps({"o": order_id, "c": customer_id, "n": secrets.token_urlsafe(9)})

    def verify(self, token: str) -> LinkClaims:
        try:
            data = self._s.loads(token, max_age=self.max_age_s)
        except SignatureExpired as exc:
            raise LinkExpired("the download link has expired; ask for a new one") from exc
        except BadSignature as exc:
            raise LinkError("the download link is not valid") from exc
        try:
            return LinkClaims(str(data["o"]), int(data["c"]), str(data["n"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise LinkError("the download link is not valid") from exc


def download_path(order_id: str, token: str) -> str:
    """The path (under the service's base URL) of a package download."""
    return f"/api/exports/{order_id}/download?token={token}"


def download_page_path(order_id: str, token: str) -> str:
    """The page that downloads a package with the customer's stored key (the
    email's link: a browser cannot send X-API-Key by itself)."""
    return f"/descarga?pedido={order_id}&token={token}"
