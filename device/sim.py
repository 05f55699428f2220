"""Simulated amplifiers for tests and bench checks, and a pty pair to connect them without hardware.

- `PtyPair`: two pseudo-terminals joined by a relay thread (what `socat pty pty` does): the simulator opens
  `amp_path`, the driver opens `host_path`. `cut()` silences the line (a dead bus), `tamper` rewrites replies.
- `ModbusAmplifierSim`: pymodbus's own serial server (the independent Modbus peer) holding the registers of a
  Modbus profile. It records every write (`writes` queue), can hold a point stuck (read-back mismatch), answer a
  point with an exception code, and report faults and a temperature.
- `AsciiAmplifierSim`: a line responder built from an ASCII profile's templates and reply patterns.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pty
import queue
import re
import select
import string
import threading
import tty
from dataclasses import dataclass
from typing import Callable, Optional

from device.errors import DeviceError
from device.profiles import (
    TABLE_COIL,
    TABLE_DISCRETE,
    TABLE_HOLDING,
    TABLE_INPUT,
    AmplifierProfile,
    AsciiSwitch,
)

_LOGGER = logging.getLogger(__name__)


class SimError(DeviceError):
    """The simulator could not start or cannot model what the profile asks."""


# --- pty pair -------------------------------------------------------------------------------------------------------


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


# --- Modbus --------------------------------------------------------------------------------------------------------

_FC_TABLE = {1: TABLE_COIL, 5: TABLE_COIL, 15: TABLE_COIL, 2: TABLE_DISCRETE, 3: TABLE_HOLDING, 6: TABLE_HOLDING,
             16: TABLE_HOLDING, 4: TABLE_INPUT}  # fmt: skip


@dataclass(frozen=True)
class ModbusWrite:
    """One write the simulated amplifier received: the profile function it belongs to, and the value."""

    function: str  # power, mute, volume, zones, emergency (or "table:address" for unmapped points)
    table: str
    address: int
    value: int


class ModbusAmplifierSim:
    """pymodbus's serial server on `port`, answering as the amplifier described by a Modbus `profile`.

    Test hooks (thread-safe): `writes` (a Queue of `ModbusWrite`), `stick(function, value)` to make a function
    read back `value` whatever is written, `refuse(function, code)` to answer it with Modbus exception `code`,
    `set_faults(names)`, `set_temperature(celsius)`, `value(function)`.
    """

    def __init__(self, profile: AmplifierProfile, port: str) -> None:
        if profile.modbus is None:
            raise SimError(f"{profile.source}: profile '{profile.name}' is not a Modbus profile")
        self.profile = profile
        self.port = port
        self.writes: "queue.Queue[ModbusWrite]" = queue.Queue()
        self._lock = threading.Lock()
        self._points: dict[str, tuple[str, int]] = {}
        mapping = profile.modbus
        for name in ("power", "mute", "volume", "zones", "emergency", "faults", "temperature"):
            point = getattr(mapping, name)
            if point is not None:
                self._points[name] = (point.table, point.address)
        self._by_address = {where: name for name, where in self._points.items()}
        self._values: dict[tuple[str, int], int] = {where: 0 for where in self._points.values()}
        if mapping.mute is not None:
            self._values[self._points["mute"]] = mapping.mute.on_value  # starts muted
        if mapping.power is not None:
            self._values[self._points["power"]] = mapping.power.off_value  # starts in standby
        self._values[self._points["volume"]] = mapping.volume.raw_min
        if mapping.temperature is not None:  # a plausible heatsink temperature
            raw = int(round((35.0 - mapping.temperature.offset) / mapping.temperature.scale)) & 0xFFFF
            self._values[self._points["temperature"]] = raw
        self._stuck: dict[tuple[str, int], int] = {}
        self._refused: dict[tuple[str, int], int] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server = None
        self._thread: Optional[threading.Thread] = None

    # --- hooks --------------------------------------------------------------------------------------------------

    def stick(self, function: str, value: int) -> None:
        with self._lock:
            where = self._where(function)
            self._stuck[where] = value
            self._values[where] = value

    def refuse(self, function: str, code: int = 4) -> None:
        with self._lock:
            self._refused[self._where(function)] = code

    def clear_injections(self) -> None:
        with self._lock:
            self._stuck.clear()
            self._refused.clear()

    def set_faults(self, names: tuple[str, ...]) -> None:
        faults = self.profile.modbus.faults
        if faults is None:
            raise SimError(f"{self.profile.source}: the profile has no [modbus.faults] to report")
        by_name = {name: bit for bit, name in faults.bits}
        word = 0
        for name in names:
            if name not in by_name:
                raise SimError(f"{self.profile.source}: fault '{name}' is not in modbus.faults.bits")
            word |= 1 << by_name[name]
        with self._lock:
            self._values[self._points["faults"]] = word

    def set_temperature(self, celsius: float) -> None:
        measure = self.profile.modbus.temperature
        if measure is None:
            raise SimError(f"{self.profile.source}: the profile has no [modbus.temperature]")
        raw = int(round((celsius - measure.offset) / measure.scale)) & 0xFFFF
        with self._lock:
            self._values[self._points["temperature"]] = raw

    def value(self, function: str) -> int:
        with self._lock:
            return self._values[self._where(function)]

    def _where(self, function: str) -> tuple[str, int]:
        if function not in self._points:
            raise SimError(f"{self.profile.source}: the profile has no Modbus point for '{function}'")
        return self._points[function]

    # --- server -------------------------------------------------------------------------------------------------

    def _device(self):
        from pymodbus.simulator import DataType, SimData, SimDevice

        highest = {TABLE_COIL: 0, TABLE_DISCRETE: 0, TABLE_HOLDING: 0, TABLE_INPUT: 0}
        for table, address in self._points.values():
            highest[table] = max(highest[table], address)
        bits = [SimData(0, values=[False] * (highest[t] + 1), datatype=DataType.BITS) for t in (TABLE_COIL, TABLE_DISCRETE)]
        regs = [SimData(0, values=[0] * (highest[t] + 1), datatype=DataType.REGISTERS) for t in (TABLE_HOLDING, TABLE_INPUT)]
        return SimDevice(
            id=self.profile.modbus.device_id,
            simdata=([bits[0]], [bits[1]], [regs[0]], [regs[1]]),
            action=self._action,
        )

    async def _action(self, func_code, start_address, address, count, registers, set_values):
        from pymodbus.constants import ExcCodes

        table = _FC_TABLE.get(func_code)
        with self._lock:
            for offset in range(count if table in (TABLE_HOLDING, TABLE_INPUT) else 1):
                where = (table, address + offset)
                if where in self._refused:
                    return ExcCodes(self._refused[where])
            if set_values is not None:
                values = list(set_values) if isinstance(set_values, list) else [set_values]
                for offset, value in enumerate(values):
                    where = (table, address + offset)
                    written = int(value)
                    if where in self._stuck:
                        set_values[offset] = type(value)(self._stuck[where])
                    self._values[where] = int(set_values[offset])
                    name = self._by_address.get(where, f"{table}:{address + offset}")
                    self.writes.put(ModbusWrite(name, table, address + offset, written))
            if table in (TABLE_HOLDING, TABLE_INPUT):  # registers: serve our values (faults, temperature...)
                for offset in range(count):
                    where = (table, address + offset)
                    if where in self._values:
                        registers[address + offset - start_address] = self._values[where]
            elif set_values is None:  # bits: our values into the packed words
                for offset in range(count):
                    where = (table, address + offset)
                    if where in self._values:
                        bit = address + offset - start_address * 16
                        word, shift = divmod(bit, 16)
                        if self._values[where]:
                            registers[word] |= 1 << shift
                        else:
                            registers[word] &= ~(1 << shift) & 0xFFFF
        return None

    def _only_our_device(self, sending: bool, pdu):
        """Stay silent to frames for other device ids, as a real device on a shared bus does."""
        if not sending and pdu.dev_id != self.profile.modbus.device_id:
            return None
        return pdu

    def start(self) -> "ModbusAmplifierSim":
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def serve() -> None:
                from pymodbus.framer import FramerType
                from pymodbus.server import ModbusSerialServer

                self._server = ModbusSerialServer(
                    self._device(),
                    framer=FramerType.RTU,
                    port=self.port,
                    baudrate=self.profile.serial.baudrate,
                    bytesize=self.profile.serial.bytesize,
                    parity=self.profile.serial.parity,
                    stopbits=self.profile.serial.stopbits,
                    trace_pdu=self._only_our_device,
                )
                await self._server.serve_forever(background=True)

            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # reported to start()'s caller below
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="modbus-amp-sim", daemon=True)
        self._thread.start()
        started.wait(10.0)
        if failure:
            self._thread.join()
            raise SimError(f"simulated amplifier could not open {self.port} ({failure[0]})")
        _LOGGER.info("sim modbus started port=%s device_id=%d", self.port, self.profile.modbus.device_id)
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        loop, server = self._loop, self._server

        async def shutdown() -> None:
            if server is not None:
                await server.shutdown()

        if loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), loop).result(timeout=10.0)
            loop.call_soon_threadsafe(loop.stop)
        self._thread.join(timeout=10.0)
        self._loop = self._thread = None

    def __enter__(self) -> "ModbusAmplifierSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --- ASCII ---------------------------------------------------------------------------------------------------------


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


def open_sim(profile: AmplifierProfile, port: str):
    """The simulator matching the profile's protocol, not yet started."""
    if profile.modbus is not None:
        return ModbusAmplifierSim(profile, port)
    if profile.ascii is not None:
        return AsciiAmplifierSim(profile, port)
    raise SimError(f"{profile.source}: protocol '{profile.protocol}' has nothing to simulate")
