"""`PtyPair`: two pseudo-terminals joined by a relay thread, what `socat pty pty` does, in pure Python.

The simulator opens `amp_path`, the driver opens `host_path`. `cut()` silences the line both ways (a dead bus),
`reconnect()` restores it, `tamper` may rewrite the bytes going from the amplifier to the host (bad CRC,
garbage), and `trace` sees every relayed chunk with its sender. No hardware and no socat needed.
"""

from __future__ import annotations

import os
import pty
import select
import threading
import tty
from typing import Callable, Optional


class PtyPair:
    """Two linked ptys: bytes written to `host_path` come out of `amp_path` and back. Close with `close()`."""

    def __init__(self) -> None:
        self._amp_master, self._amp_slave = pty.openpty()
        self._host_master, self._host_slave = pty.openpty()
        for fd in (self._amp_slave, self._host_slave):
            tty.setraw(fd)
        self.amp_path = os.ttyname(self._amp_slave)
        self.host_path = os.ttyname(self._host_slave)
        self.connected = True  # False: the line is cut, bytes vanish both ways
        self.tamper: Optional[Callable[[bytes], bytes]] = None  # rewrites amp → host bytes (bad CRC, garbage)
        self.trace: Optional[Callable[[str, bytes], None]] = None  # sees ("host"|"amp", bytes) as relayed
        self._wake_r, self._wake_w = os.pipe()
        self._stop = False
        self._thread = threading.Thread(target=self._relay, name="pty-relay", daemon=True)
        self._thread.start()

    def cut(self) -> None:
        self.connected = False

    def reconnect(self) -> None:
        self.connected = True

    def _relay(self) -> None:
        masters = (self._amp_master, self._host_master)
        while not self._stop:
            try:
                ready, _, _ = select.select([*masters, self._wake_r], [], [])
            except (OSError, ValueError):
                return
            if self._wake_r in ready:
                return
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:  # EIO while no side has the slave open: nothing to relay
                    continue
                if not data or not self.connected:
                    continue
                if self.trace is not None:
                    self.trace("amp" if fd == self._amp_master else "host", data)
                if fd == self._amp_master:
                    if self.tamper is not None:
                        data = self.tamper(data)
                    target = self._host_master
                else:
                    target = self._amp_master
                try:
                    os.write(target, data)
                except OSError:
                    continue

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5.0)
        for fd in (self._amp_master, self._amp_slave, self._host_master, self._host_slave, self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> "PtyPair":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
