"""A throwaway mosquitto on a free 127.0.0.1 port (for `skyvoice demo`): config in a temp dir, ready when it says so."""

from __future__ import annotations

import queue
import shutil
import socket
import subprocess
import threading
from pathlib import Path
from typing import Optional

from runtime.errors import ConfigError

READY_MARKER = "running"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LocalBroker:
    def __init__(self, work_dir: Path, *, port: Optional[int] = None, extra_config: str = ""):
        self.executable = shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
        )
        if self.executable is None:
            raise ConfigError("mosquitto is not installed; install it (apt-get install mosquitto, or run scripts/setup)")
        self.port = port or free_port()
        self.config_path = Path(work_dir) / "mosquitto.conf"
        self.config_path.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\n" + extra_config
        )
        self.process: Optional[subprocess.Popen] = None
        self.log: list[str] = []

    def start(self, timeout_s: float = 10.0) -> "LocalBroker":
        self.process = subprocess.Popen(
            [self.executable, "-c", str(self.config_path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        lines: "queue.Queue[Optional[str]]" = queue.Queue()

        def read() -> None:
            for line in self.process.stderr:
                self.log.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, name="mosquitto-log", daemon=True).start()
        while True:
            try:
                line = lines.get(timeout=timeout_s)
            except queue.Empty:
                self.stop()
                raise ConfigError(f"mosquitto did not start within {timeout_s:.0f} s on port {self.port}") from None
            if line is None:
                raise ConfigError(f"mosquitto exited at start on port {self.port}: {''.join(self.log[-5:]).strip()}")
            if READY_MARKER in line:
                break
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout_s):
            pass
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
