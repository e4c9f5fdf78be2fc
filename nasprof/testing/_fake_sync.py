"""The v1 file-sync sub-protocol (AOSP packages/modules/adb SYNC.TXT) of the fake adb device.

After ``sync:``, every message is a 4-byte ASCII id and a u32 little-endian length. ``SEND`` carries
``"<path>,<mode>"``, then ``DATA`` chunks of at most 64 KiB and ``DONE`` whose length field is the mtime;
``RECV`` answers ``DATA`` chunks then ``DONE``; ``STAT`` answers mode, size, mtime; ``QUIT`` ends the mode.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Callable

from nasprof.testing._fake_device import DeviceVanished, FakeDevice

__all__ = ["Sync", "read_exact", "SYNC_CHUNK"]

SYNC_CHUNK = 64 * 1024


def read_exact(sock: socket.socket, n: int) -> bytes | None:
    """``n`` bytes, or None on a clean EOF before the first byte."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            if not buf:
                return None
            raise ConnectionError("peer closed mid-message")
        buf += chunk
    return bytes(buf)



class Sync:
    """The v1 file-sync sub-protocol on one socket."""

    def __init__(self, sock: socket.socket, device: FakeDevice, log: Callable[[str], None]) -> None:
        self.sock, self.device, self.log = sock, device, log

    def _send_fail(self, message: str) -> None:
        data = message.encode()
        self.sock.sendall(b"FAIL" + struct.pack("<I", len(data)) + data)

    def serve(self) -> None:
        while True:
            head = read_exact(self.sock, 8)
            if head is None:
                return
            sid, length = head[:4], struct.unpack("<I", head[4:])[0]
            if not self.device.present:
                raise DeviceVanished(self.device.serial)
            if sid == b"QUIT":
                self.log("sync QUIT")
                return
            if length > 4096:
                self._send_fail("path too long")
                return
            path = (read_exact(self.sock, length) or b"").decode()
            self.log(f"sync {sid.decode(errors='replace')} {path}")
            handler = {b"STAT": self._stat, b"LIST": self._list, b"SEND": self._recv_file,
                       b"RECV": self._send_file}.get(sid)
            if handler is None:
                self._send_fail(f"unknown sync request {sid!r}")
                return
            handler(path)

    def _stat(self, path: str) -> None:
        p = self.device.host_path(path)
        if p.exists():
            st = p.stat()
            fields = (st.st_mode, st.st_size & 0xFFFFFFFF, int(st.st_mtime))
            self.sock.sendall(b"STAT" + struct.pack("<III", *fields))
        else:
            self.sock.sendall(b"STAT" + struct.pack("<III", 0, 0, 0))

    def _list(self, path: str) -> None:
        p = self.device.host_path(path)
        if p.is_dir():
            for child in sorted(p.iterdir()):
                st = child.stat()
                name = child.name.encode()
                self.sock.sendall(b"DENT" + struct.pack("<IIII", st.st_mode, st.st_size, int(st.st_mtime),
                                                        len(name)) + name)
        self.sock.sendall(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))

    def _recv_file(self, spec: str) -> None:
        """SEND from the client: DATA chunks then DONE(mtime); reply OKAY or FAIL."""
        path, _, mode = spec.rpartition(",")
        data = bytearray()
        while True:
            head = read_exact(self.sock, 8)
            if head is None:
                raise ConnectionError("client closed during SEND")
            sid, length = head[:4], struct.unpack("<I", head[4:])[0]
            if not self.device.present:
                raise DeviceVanished(self.device.serial)
            if sid == b"DATA":
                if length > SYNC_CHUNK:
                    self._send_fail("DATA chunk larger than 64 KiB")
                    return
                data += read_exact(self.sock, length) or b""
            elif sid == b"DONE":
                break
            else:
                self._send_fail(f"unexpected {sid!r} during SEND")
                return
        target = self.device.host_path(path)
        try:
            if target.is_dir() or path.endswith("/"):
                raise IsADirectoryError(21, "Is a directory")
            target.parent.mkdir(parents=True, exist_ok=True)  # adbd creates missing parents
            target.write_bytes(bytes(data))
            target.chmod(int(mode or "644") & 0o777)
            os.utime(target, (length, length))
        except OSError as exc:
            self._send_fail(f"couldn't create file: {exc.strerror or exc}")
            return
        self.sock.sendall(b"OKAY" + struct.pack("<I", 0))

    def _send_file(self, path: str) -> None:
        """RECV from the client: DATA chunks then DONE, or FAIL."""
        p = self.device.host_path(path)
        if not p.is_file():
            self._send_fail(f"open failed: No such file or directory: {path}")
            return
        with open(p, "rb") as f:
            while chunk := f.read(SYNC_CHUNK):
                if not self.device.present:
                    raise DeviceVanished(self.device.serial)
                self.sock.sendall(b"DATA" + struct.pack("<I", len(chunk)) + chunk)
        self.sock.sendall(b"DONE" + struct.pack("<I", 0))

