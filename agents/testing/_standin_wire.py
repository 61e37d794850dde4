"""The byte level of the ADB stand-in: one client connection, and the ``sync:`` file service on it.

See :mod:`agents.testing.adb_standin` for the protocol as a whole.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading

from agents.testing._standin_fs import DeviceFS, FileStat, normalize
from agents.testing._standin_shell import DeviceVanished

__all__ = ["SYNC_DATA_MAX", "Connection", "ProtocolError", "SyncService"]

SYNC_DATA_MAX = 64 * 1024  # the largest DATA chunk adbd accepts


# -- one client connection -------------------------------------------------------------------------


class ProtocolError(Exception):
    """The client broke the protocol; the connection is dropped."""


class Connection:
    """A client socket. ``abort`` (any thread) closes it under the handler, as an unplug does."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.cancel = threading.Event()  # set when the client left, the device left, or the server stops

    def read_exact(self, size: int) -> bytes | None:
        """Exactly ``size`` bytes; None at a clean end of stream before the first byte."""
        data = b""
        while len(data) < size:
            try:
                chunk = self.sock.recv(size - len(data))
            except OSError:
                chunk = b""
            if not chunk:
                if data:
                    raise ProtocolError(f"connection closed after {len(data)} of {size} bytes")
                return None
            data += chunk
        return data

    def read_request(self) -> str | None:
        """One length-prefixed request; None when the client closed the connection."""
        header = self.read_exact(4)
        if header is None:
            return None
        try:
            size = int(header.decode("ascii"), 16)
        except (UnicodeDecodeError, ValueError):
            raise ProtocolError(f"bad request length {header!r}") from None
        payload = self.read_exact(size) if size else b""
        if payload is None:
            raise ProtocolError("connection closed inside a request")
        return payload.decode("utf-8", errors="replace")

    def send(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            self.cancel.set()
            raise DeviceVanished(f"the client went away ({exc})") from None

    def okay(self) -> None:
        self.send(b"OKAY")

    def fail(self, message: str) -> None:
        encoded = message.encode()
        self.send(b"FAIL" + f"{len(encoded):04x}".encode() + encoded)

    def block(self, text: str) -> None:
        encoded = text.encode()
        self.send(f"{len(encoded):04x}".encode() + encoded)

    def peer_closed(self) -> bool:
        """Whether the client has closed its end (without consuming anything it sent)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
            return bool(readable) and self.sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def abort(self) -> None:
        self.cancel.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def finish(self, reader: threading.Thread, *, wait_s: float = 2.0) -> None:
        """End a command: the client sees the end of stream; its own close (seen by ``reader``) is awaited."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            return
        reader.join(wait_s)


# -- sync ------------------------------------------------------------------------------------------

_STAT_V1 = struct.Struct("<4sIII")  # id, mode, size, mtime
_STAT_V2 = struct.Struct("<4sIQQIIIIQqqq")  # id, error, dev, ino, mode, nlink, uid, gid, size, atime, mtime, ctime
_DENT_V1 = struct.Struct("<4sIIII")  # id, mode, size, mtime, namelen
_DENT_V2 = struct.Struct("<4sIQQIIIIQqqqI")  # stat_v2 fields then namelen
_ENOENT = 2


class SyncService:
    """The ``sync:`` service of one connection: requests until ``QUIT`` or the end of stream."""

    def __init__(self, connection: Connection, fs: DeviceFS) -> None:
        self.connection = connection
        self.fs = fs

    def serve(self) -> None:
        while True:
            header = self.connection.read_exact(8)
            if header is None:
                return
            request, size = header[:4], struct.unpack("<I", header[4:])[0]
            if request == b"QUIT":
                return
            if request not in (b"STAT", b"STA2", b"LST2", b"LIST", b"LIS2", b"SEND", b"RECV"):
                self._fail(f"unknown command {request!r}")
                return
            if size > 1024:
                self._fail("path too long")
                return
            path = (self.connection.read_exact(size) or b"").decode("utf-8", errors="replace")
            if request == b"SEND":
                if not self._send(path):
                    return
            elif request == b"RECV":
                self._recv(path)
            elif request in (b"LIST", b"LIS2"):
                self._list(path, v2=request == b"LIS2")
            else:
                self._stat(path, request)

    def _fail(self, message: str) -> None:
        encoded = message.encode()
        self.connection.send(b"FAIL" + struct.pack("<I", len(encoded)) + encoded)

    def _lookup(self, path: str) -> FileStat | None:
        try:
            return self.fs.stat(normalize(path))
        except OSError:
            return None

    def _v2_fields(self, found: FileStat | None, path: str) -> tuple[int, ...]:
        if found is None:
            return (_ENOENT, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        owner = 0 if self.fs.is_computed(path) else 2000  # root for sysfs, shell for everything else
        return (0, 64769, found.ino, found.mode, found.nlink, owner, owner, found.size, found.mtime, found.mtime, found.mtime)

    def _stat(self, path: str, request: bytes) -> None:
        found = self._lookup(path)
        if request == b"STAT":
            mode, size, mtime = (found.mode, found.size, found.mtime) if found else (0, 0, 0)
            self.connection.send(_STAT_V1.pack(b"STAT", mode, size & 0xFFFFFFFF, mtime & 0xFFFFFFFF))
        else:
            self.connection.send(_STAT_V2.pack(request, *self._v2_fields(found, path)))

    def _list(self, path: str, *, v2: bool) -> None:
        device_path = normalize(path)
        try:
            names = [".", "..", *self.fs.listdir(device_path)]
        except OSError:
            names = []
        for name in names:
            entry = normalize(name, device_path)
            found = self._lookup(entry)
            if found is None:
                continue
            encoded = name.encode()
            if v2:
                self.connection.send(_DENT_V2.pack(b"DNT2", *self._v2_fields(found, entry), len(encoded)) + encoded)
            else:
                fields = (found.mode, found.size & 0xFFFFFFFF, found.mtime & 0xFFFFFFFF, len(encoded))
                self.connection.send(_DENT_V1.pack(b"DENT", *fields) + encoded)
        if v2:
            self.connection.send(_DENT_V2.pack(b"DONE", *([0] * 11), 0))
        else:
            self.connection.send(_DENT_V1.pack(b"DONE", 0, 0, 0, 0))

    def _send(self, spec: str) -> bool:
        """Receive one file; False when the client broke the protocol (the connection then ends)."""
        path, _, mode_text = spec.rpartition(",")
        if not path or not mode_text.isdigit():
            path, mode_text = spec, "33188"  # no mode given: 0100644
        device_path = normalize(path)
        error: str | None = None
        sink = None
        try:
            self.fs.mkdir(normalize("..", device_path), parents=True, mode=0o771)
            sink = self.fs.open_write(device_path)
        except OSError as exc:
            error = f"couldn't create file: {exc.strerror}"
        mtime = 0
        try:
            while True:
                header = self.connection.read_exact(8)
                if header is None:
                    return False
                kind, size = header[:4], struct.unpack("<I", header[4:])[0]
                if kind == b"DONE":
                    mtime = size
                    break
                if kind != b"DATA" or size > SYNC_DATA_MAX:
                    self._fail(f"invalid data message: {kind!r} of {size} bytes (at most {SYNC_DATA_MAX})")
                    return False
                data = self.connection.read_exact(size) if size else b""
                if data is None:
                    return False
                if sink is not None:
                    sink.write(data)
        finally:
            if sink is not None:
                sink.close()
        if error is None:
            self.fs.chmod(device_path, int(mode_text) & 0o777)
            if mtime:
                self.fs.set_mtime(device_path, mtime)
            self.connection.send(b"OKAY" + struct.pack("<I", 0))
        else:
            self._fail(error)
        return True

    def _recv(self, path: str) -> None:
        try:
            data = self.fs.read(normalize(path))
        except OSError as exc:
            self._fail(f"open failed: {exc.strerror}")
            return
        for start in range(0, len(data), SYNC_DATA_MAX):
            chunk = data[start : start + SYNC_DATA_MAX]
            self.connection.send(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        self.connection.send(b"DONE" + struct.pack("<I", 0))
