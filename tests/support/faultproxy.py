"""A TCP proxy that breaks chosen HTTP responses: cut the connection mid-body, or flip a byte.

Faults are injected on the wire, between an unmodified client library and an
unmodified server (moto), which is what a flaky network or a corrupting
middlebox does; no client method is patched.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass


@dataclass
class Fault:
    match: bytes  # bytes the request must contain, e.g. b"GET /bucket/key"
    action: str  # "cut" or "corrupt"
    after: int  # body bytes passed through before the fault
    times: int = 1


class _ConnState:
    def __init__(self) -> None:
        self.armed: Fault | None = None
        self.header_buf = b""
        self.in_body = False
        self.body_seen = 0


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.faults: list[Fault] = []
        self.fired: list[Fault] = []
        self._lock = threading.Lock()
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, match: bytes, action: str, after: int = 0, times: int = 1) -> Fault:
        f = Fault(match, action, after, times)
        with self._lock:
            self.faults.append(f)
        return f

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()
            self.fired.clear()

    def close(self) -> None:
        self._stop = True
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            st = _ConnState()
            threading.Thread(target=self._up, args=(client, upstream, st), daemon=True).start()
            threading.Thread(target=self._down, args=(upstream, client, st), daemon=True).start()

    def _up(self, client: socket.socket, upstream: socket.socket, st: _ConnState) -> None:
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                with self._lock:
                    for f in self.faults:
                        if f.times > 0 and f.match in data:
                            f.times -= 1
                            st.armed, st.header_buf, st.in_body, st.body_seen = f, b"", False, 0
                            self.fired.append(f)
                            break
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            for s in (upstream,):
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass

    def _down(self, upstream: socket.socket, client: socket.socket, st: _ConnState) -> None:
        try:
            while True:
                data = upstream.recv(65536)
                if not data:
                    break
                f = st.armed
                if f is not None:
                    if not st.in_body:
                        st.header_buf += data
                        end = st.header_buf.find(b"\r\n\r\n")
                        if end < 0:
                            client.sendall(data)
                            continue
                        # bytes of this chunk that belong to the body
                        body_start_in_chunk = len(data) - (len(st.header_buf) - (end + 4))
                        head, data = data[:body_start_in_chunk], data[body_start_in_chunk:]
                        client.sendall(head)
                        st.in_body = True
                    pos = st.body_seen
                    if f.after < pos + len(data):
                        k = f.after - pos
                        if f.action == "cut":
                            client.sendall(data[:k])
                            break
                        if f.action == "corrupt":
                            data = data[:k] + bytes([data[k] ^ 0xFF]) + data[k + 1 :]
                            st.armed = None
                    st.body_seen += len(data)
                client.sendall(data)
        except OSError:
            pass
        finally:
            # shutdown() first: close() alone does not wake the other pump's recv()
            # nor send the FIN the client must see.
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
