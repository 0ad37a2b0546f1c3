"""S3 on loopback: moto in server mode (real HTTP), with a fault proxy in front."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass


from support.faultproxy import FaultProxy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class S3Server:
    endpoint: str  # moto itself
    proxy: FaultProxy  # what the connector talks to

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id="testing",
            aws_secret_access_key="testing", region_name="us-east-1",
        )  # fmt: skip

    def new_bucket(self) -> str:
        name = f"partner-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def connection(self, conn_id: str = "partner_s3"):
        from transforms.sources.base import ConnectionInfo

        return ConnectionInfo(
            conn_id=conn_id, conn_type="aws", login="testing", password="testing",
            extra={"endpoint_url": self.proxy.url, "region_name": "us-east-1"},
        )  # fmt: skip


def start_s3_server() -> tuple[S3Server, object]:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return S3Server(f"http://127.0.0.1:{port}", FaultProxy("127.0.0.1", port)), server
