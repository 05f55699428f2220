"""A user-space TCP proxy on 127.0.0.1 that behaves like a satellite link: delay, jitter, retransmission stalls, blackholes.

No netem on the test VMs (edge research §7), so the link is emulated above TCP:
- every chunk is delivered `one_way_delay_s ± jitter_s` after it was read, in order (FIFO per direction);
- with probability `drop_rate` a chunk is "lost" and delivered one retransmission timeout later (TCP hides loss
  as a stall; dropping bytes inside a stream would corrupt MQTT framing, which no real link does);
- `blackhole(seconds)`: nothing moves either way and new connections hang, like a satellite outage without ICMP;
  when it ends every connection that lived through it is cut (their data is lost) and new ones work again.
All threads are daemon threads; `close()` stops them.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass



@dataclass(frozen=True)
class LinkProfile:
    name: str
    one_way_delay_s: float
    jitter_s: float
    drop_rate: float
    retransmit_s: float

    @property
    def rtt_ms(self) -> float:
        return 2000 * self.one_way_delay_s


STARLINK = LinkProfile("starlink", 0.020, 0.008, 0.015, 0.2)
GEO = LinkProfile("geo", 0.300, 0.030, 0.01, 1.0)


class _Pipe:
    """One direction of one connection: reader thread → timed FIFO → sender thread."""

    def __init__(self, proxy: "LinkProxy", source: socket.socket, target: socket.socket, generation: int):
        self.proxy, self.source, self.target, self.generation = proxy, source, target, generation
        self.queue: deque = deque()
        self.cond = threading.Condition()
        self.last_delivery = 0.0
        self.closed = False
        threading.Thread(target=self._read, daemon=True, name="link-read").start()
        threading.Thread(target=self._send, daemon=True, name="link-send").start()

    def _read(self) -> None:
        while True:
            try:
                data = self.source.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                if not data:
                    self.queue.append((0.0, None))
                else:
                    profile = self.proxy.profile
                    delay = max(0.0, profile.one_way_delay_s + self.proxy.rng.uniform(-profile.jitter_s, profile.jitter_s))
                    if self.proxy.rng.random() < profile.drop_rate:
                        delay += profile.retransmit_s
                    self.last_delivery = max(time.monotonic() + delay, self.last_delivery)
                    self.queue.append((self.last_delivery, data))
                self.cond.notify_all()
            if not data:
                return

    def _send(self) -> None:
        while True:
            with self.cond:
                if self.closed:
                    return
                cut = self.generation < self.proxy.cut_generation and not self.proxy.blackholed()
                if not self.queue and not cut:
                    self.cond.wait(0.05)
                    continue
                due, data = self.queue[0] if self.queue else (0.0, None)
                wait = due - time.monotonic()
                if wait > 0 or self.proxy.blackholed():
                    self.cond.wait(max(0.01, wait) if not self.proxy.blackholed() else 0.05)
                    continue
                if self.queue:
                    self.queue.popleft()
            if self.generation < self.proxy.cut_generation:
                data = None  # lived through a blackhole: cut
            if data is None:
                self.proxy._shutdown_pair(self)
                return
            try:
                self.target.sendall(data)
            except OSError:
                self.proxy._shutdown_pair(self)
                return

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


class LinkProxy:
    def __init__(self, target_port: int, profile: LinkProfile, *, seed: int = 6):
        self.target_port = target_port
        self.profile = profile
        self.rng = random.Random(seed)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._blackhole_until = 0.0
        self.generation = 0
        self.cut_generation = 0
        self._pipes: list[_Pipe] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self._closed_event = threading.Event()
        threading.Thread(target=self._accept, daemon=True, name="link-accept").start()

    def blackholed(self) -> bool:
        return time.monotonic() < self._blackhole_until

    def blackhole(self, seconds: float) -> None:
        """From now on, `seconds` of silence; connections alive during it are cut when it ends."""
        with self._lock:
            self._blackhole_until = time.monotonic() + seconds
            self.generation += 1
            self.cut_generation = self.generation

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True, name="link-connect").start()

    def _connect(self, client: socket.socket) -> None:
        while self.blackholed():  # a SYN into the void: the client's connect attempt just hangs
            if self._closed_event.wait(0.05):  # the emulated outage itself, not a test waiting for a result
                client.close()
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        with self._lock:
            generation = self.generation
            self._sockets += [client, upstream]
            self._pipes += [_Pipe(self, client, upstream, generation), _Pipe(self, upstream, client, generation)]

    def _shutdown_pair(self, pipe: _Pipe) -> None:
        for sock in (pipe.source, pipe.target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        pipe.close()

    def close(self) -> None:
        self._closed = True
        self._closed_event.set()
        self._listener.close()
        with self._lock:
            for pipe in self._pipes:
                pipe.close()
            for sock in self._sockets:
                try:
                    sock.close()
                except OSError:
                    pass
