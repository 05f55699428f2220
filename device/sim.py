"""Simulated amplifiers for tests and bench checks (`skyvoice sim-amp`).

- `ModbusAmplifierSim`: pymodbus's own serial server (the independent Modbus peer) holding the registers of a
  Modbus profile. It records every write (`writes` queue), can hold a point stuck (read-back mismatch), answer a
  point with an exception code, stays silent to other device ids, and reports faults and a temperature.
- `AsciiAmplifierSim` (device/sim_ascii.py): a line responder built from an ASCII profile.
- `PtyPair` (device/pty_pair.py): linked ptys to connect a simulator and a driver without hardware.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from dataclasses import dataclass
from typing import Optional

from device.errors import SimError
from device.profiles import TABLE_COIL, TABLE_DISCRETE, TABLE_HOLDING, TABLE_INPUT, AmplifierProfile
from device.pty_pair import PtyPair
from device.sim_ascii import AsciiAmplifierSim

__all__ = ["AsciiAmplifierSim", "ModbusAmplifierSim", "ModbusWrite", "PtyPair", "SimError", "open_sim"]

_LOGGER = logging.getLogger(__name__)

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
        bits = [SimData(0, values=[False] * (highest[t] + 1), datatype=DataType.BITS)
                for t in (TABLE_COIL, TABLE_DISCRETE)]
        regs = [SimData(0, values=[0] * (highest[t] + 1), datatype=DataType.REGISTERS)
                for t in (TABLE_HOLDING, TABLE_INPUT)]
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


def open_sim(profile: AmplifierProfile, port: str):
    """The simulator matching the profile's protocol, not yet started."""
    if profile.modbus is not None:
        return ModbusAmplifierSim(profile, port)
    if profile.ascii is not None:
        return AsciiAmplifierSim(profile, port)
    raise SimError(f"{profile.source}: protocol '{profile.protocol}' has nothing to simulate")
