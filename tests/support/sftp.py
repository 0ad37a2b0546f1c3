"""A real SSH/SFTP server on loopback (asyncssh), rooted at a temp folder.

Runs its own event loop in a thread. Fault injection happens server-side,
as a failing server would: ``cut_after(name, n)`` makes the server drop the
whole SSH connection once ``n`` bytes of that file have been served.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
from pathlib import Path

import asyncssh

USER, PASSWORD = "hospital", "s3cret-pass"


class SFTPServer:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root or tempfile.mkdtemp(prefix="sftp-root-"))
        self.host_key = asyncssh.generate_private_key("ssh-ed25519")
        self.cuts: dict[str, list[int]] = {}  # file name -> [cut after n bytes, times left]
        self.served: dict[str, int] = {}
        self.cuts_fired = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    @property
    def host_key_line(self) -> str:
        return self.host_key.export_public_key("openssh").decode().split()[0] + " " + \
            self.host_key.export_public_key("openssh").decode().split()[1]  # fmt: skip

    def cut_after(self, name: str, nbytes: int, times: int = 1) -> None:
        self.cuts[name] = [nbytes, times]

    def connection(self, conn_id: str = "partner_sftp", **extra):
        from transforms.sources.base import ConnectionInfo

        return ConnectionInfo(
            conn_id=conn_id, conn_type="sftp", host="127.0.0.1", port=self.port, login=USER,
            password=PASSWORD, extra={"host_key": self.host_key_line, **extra},
        )  # fmt: skip

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        outer = self

        class Server(asyncssh.SSHServer):
            def begin_auth(self, username: str) -> bool:
                return True

            def password_auth_supported(self) -> bool:
                return True

            def validate_password(self, username: str, password: str) -> bool:
                return username == USER and password == PASSWORD

        class SFTP(asyncssh.SFTPServer):
            def __init__(self, chan):
                super().__init__(chan, chroot=os.fsencode(outer.root))
                self._names: dict[int, str] = {}

            def open(self, path, pflags, attrs):
                f = super().open(path, pflags, attrs)
                self._names[id(f)] = os.fsdecode(path).rsplit("/", 1)[-1]
                return f

            def read(self, file_obj, offset, size):
                name = self._names.get(id(file_obj), "")
                cut = outer.cuts.get(name)
                if cut and cut[1] > 0 and offset + size > cut[0]:
                    cut[1] -= 1
                    outer.cuts_fired += 1
                    self.channel.get_connection().abort()  # the network drops
                    raise asyncssh.SFTPConnectionLost("cut by test")
                outer.served[name] = outer.served.get(name, 0) + size
                return super().read(file_obj, offset, size)

        self._server = await asyncssh.listen(
            "127.0.0.1", 0, server_host_keys=[self.host_key], server_factory=Server,
            sftp_factory=SFTP, allow_scp=False,
        )  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1]

    def close(self) -> None:
        async def shutdown() -> None:
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
