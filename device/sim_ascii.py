"""`AsciiAmplifierSim`: a line responder built from an ASCII profile's command templates and reply patterns.

It parses the lines the driver sends with regexes made from the profile's templates, keeps the amplifier's state,
and answers queries by filling the profile's reply patterns (literal text around named groups) with that state.
"""

from __future__ import annotations

import queue
import re
import string
import threading
from typing import Optional

from device.errors import SimError
from device.profiles import AmplifierProfile, AsciiSwitch


def template_regex(template: str) -> "re.Pattern[str]":
    """A command template (`VOL {raw:02X}`) → a regex matching the sent line, capturing each field by name."""
    parts = []
    for literal, name, spec, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if name is not None:
            digits = "[0-9A-Fa-f]" if spec and spec[-1] in "xX" else "[01]" if spec and spec[-1] == "b" else "[0-9]"
            parts.append(f"(?P<{name}>-?{digits}+)")
    return re.compile("^" + "".join(parts) + "$")


def template_base(template: str) -> int:
    for _, name, spec, _ in string.Formatter().parse(template):
        if name is not None and spec:
            return 16 if spec[-1] in "xX" else 2 if spec[-1] == "b" else 10
    return 10


def format_reply(pattern: str, **groups: str) -> str:
    """The text a simple reply regex matches: literal text around named groups, each replaced by `groups[name]`."""
    body = pattern[1:] if pattern.startswith("^") else pattern
    body = body[:-1] if body.endswith("$") and not body.endswith("\\$") else body
    out = []
    i = 0
    while i < len(body):
        if body.startswith("(?P<", i):
            end_name = body.index(">", i)
            name = body[i + 4:end_name]
            depth, j = 1, end_name + 1
            while depth:
                if body[j] == "\\":
                    j += 2
                    continue
                depth += {"(": 1, ")": -1}.get(body[j], 0)
                j += 1
            if name not in groups:
                raise SimError(f"reply pattern {pattern!r} has a group '{name}' the simulator has no value for")
            out.append(str(groups[name]))
            i = j
        elif body[i] == "\\":
            out.append(body[i + 1])
            i += 2
        elif body[i] in ".*+?[]{}()|^$":
            raise SimError(f"reply pattern {pattern!r} is not literal text around named groups; the simulator needs one")
        else:
            out.append(body[i])
            i += 1
    return "".join(out)


class AsciiAmplifierSim:
    """A scripted ASCII amplifier on `port`: answers the profile's commands and queries from its own state.

    Test hooks: `lines` (Queue of every line received), `writes` (Queue of (function, value)), `stick(function,
    value)` (read-back mismatch), `refuse(function)` (answer with the profile's error), `silent` (answer nothing),
    `set_fault(value)` (raw fault reply value), `set_temperature(value)`.
    """

    def __init__(self, profile: AmplifierProfile, port: str) -> None:
        if profile.ascii is None:
            raise SimError(f"{profile.source}: profile '{profile.name}' is not an ASCII profile")
        self.profile = profile
        self.port = port
        self.protocol = profile.ascii
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.writes: "queue.Queue[tuple[str, object]]" = queue.Queue()
        self.silent = False
        self._lock = threading.Lock()
        self._state: dict[str, str] = {}
        self._stuck: dict[str, str] = {}
        self._refused: set[str] = set()
        proto = self.protocol
        for name in ("power", "mute", "emergency"):
            switch: Optional[AsciiSwitch] = getattr(proto, name)
            if switch is not None:
                self._state[name] = switch.on_value if name == "mute" else switch.off_value
        self._state["volume"] = self._number(proto.volume.raw_min, template_base(proto.volume.set))
        if proto.zones is not None:
            self._state["zones"] = self._number(0, template_base(proto.zones.set))
        if proto.faults is not None:
            self._state["faults"] = proto.faults.ok_value
        if proto.temperature is not None:
            self._state["temperature"] = "35"
        self._serial = None
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()

    @staticmethod
    def _number(value: int, base: int, width: int = 2) -> str:
        return format(value, f"0{width}X") if base == 16 else format(value, "b") if base == 2 else str(value)

    # --- hooks --------------------------------------------------------------------------------------------------

    def stick(self, function: str, value: str) -> None:
        with self._lock:
            self._stuck[function] = value
            self._state[function] = value

    def refuse(self, function: str) -> None:
        with self._lock:
            self._refused.add(function)

    def set_fault(self, value: str) -> None:
        with self._lock:
            self._state["faults"] = value

    def set_temperature(self, value: str) -> None:
        with self._lock:
            self._state["temperature"] = value

    def value(self, function: str) -> str:
        with self._lock:
            return self._state[function]

    # --- serving ------------------------------------------------------------------------------------------------

    def _handle(self, line: str) -> list[str]:
        proto = self.protocol
        ack = [format_reply(proto.ack)] if proto.ack else []
        for name in ("power", "mute", "emergency"):
            switch = getattr(proto, name)
            if switch is None:
                continue
            for command, value in ((switch.on, switch.on_value), (switch.off, switch.off_value)):
                if line == command:
                    return self._write(name, value, value == switch.on_value, ack)
            if switch.query and line == switch.query:
                return [format_reply(switch.reply, value=self._state[name])]
        for name in ("volume", "zones"):
            point = getattr(proto, name)
            if point is None:
                continue
            field = "raw" if name == "volume" else "mask"
            match = template_regex(point.set).match(line)
            if match:
                number = int(match.group(field), template_base(point.set))
                return self._write(name, self._number(number, point.base), number, ack)
            if point.query and line == point.query:
                return [format_reply(point.reply, value=self._state[name])]
        for name in ("faults", "temperature"):
            point = getattr(proto, name)
            if point is not None and line == point.query:
                return [format_reply(point.reply, value=self._state[name])]
        return [self._error_line("unknown command")]

    def _write(self, name: str, text: str, logged: object, ack: list[str]) -> list[str]:
        if name in self._refused:
            return [self._error_line(f"{name} refused")]
        self.writes.put((name, logged))
        if name not in self._stuck:
            self._state[name] = text
        return ack

    def _error_line(self, reason: str) -> str:
        if not self.protocol.error:
            return "ERR"
        try:
            return format_reply(self.protocol.error, reason=reason)
        except SimError:
            return format_reply(self.protocol.error)

    def _serve(self) -> None:
        terminator = self.protocol.terminator.encode(self.protocol.encoding)
        buffer = b""
        while not self._stop.is_set():
            try:
                data = self._serial.read(256)
            except (OSError, TypeError, ValueError):  # port closed under us by stop()
                return
            if not data:
                continue
            buffer += data
            while terminator in buffer:
                raw, buffer = buffer.split(terminator, 1)
                line = raw.decode(self.protocol.encoding, errors="replace").strip("\r\n")
                self.lines.put(line)
                with self._lock:
                    replies = [] if self.silent else self._handle(line)
                for reply in replies:
                    self._serial.write(reply.encode(self.protocol.encoding) + terminator)

    def start(self) -> "AsciiAmplifierSim":
        import serial

        try:
            self._serial = serial.serial_for_url(
                self.port, baudrate=self.profile.serial.baudrate, timeout=0.05, exclusive=True
            )
        except (serial.SerialException, OSError) as exc:
            raise SimError(f"simulated amplifier could not open {self.port} ({exc})") from None
        self._thread = threading.Thread(target=self._serve, name="ascii-amp-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        if self._serial is not None:
            self._serial.close()
            self._serial = None

    def __enter__(self) -> "AsciiAmplifierSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
