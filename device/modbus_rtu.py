"""`ModbusRtuAmplifier`: a PA amplifier on Modbus RTU over RS485 (pymodbus 3.16.1 client over pyserial).

Every write is followed by a read of the same point; a different value raises `ReadBackMismatch`. All traffic goes
through one bus lock (a write and its read-back are one critical section), so fault polling from another thread
never interleaves with commands. Before each frame the driver waits the profile's inter-frame gap since the end of
the previous one (some amplifiers want 300 ms). A silent bus raises `AmplifierUnreachable` after the response
timeout × (retries + 1); a Modbus exception reply raises `AmplifierFault` naming the point and the code.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Sequence

from device.amplifier import AmplifierState
from device.errors import AmplifierFault, AmplifierUnreachable, ReadBackMismatch
from device.profiles import (
    TABLE_COIL,
    TABLE_DISCRETE,
    TABLE_HOLDING,
    TABLE_INPUT,
    AmplifierProfile,
    ModbusMap,
    ModbusSwitch,
    mask_to_zones,
    raw_to_volume,
    volume_to_raw,
    zones_to_mask,
)

_LOGGER = logging.getLogger(__name__)

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}


def _default_client(profile: AmplifierProfile, port: str):
    from pymodbus.client import ModbusSerialClient
    from pymodbus.framer import FramerType

    return ModbusSerialClient(
        port,
        framer=FramerType.RTU,
        baudrate=profile.serial.baudrate,
        bytesize=profile.serial.bytesize,
        parity=profile.serial.parity,
        stopbits=profile.serial.stopbits,
        timeout=profile.timing.response_timeout_s,
        retries=profile.timing.retries,
        reconnect_delay=0,
    )


class ModbusRtuAmplifier:
    """Drive one Modbus RTU amplifier described by `profile` on serial `port` (opened lazily, at the first call)."""

    def __init__(
        self,
        profile: AmplifierProfile,
        port: str,
        *,
        client_factory: Optional[Callable[[AmplifierProfile, str], object]] = None,
    ) -> None:
        if profile.modbus is None:
            raise AmplifierFault(f"{profile.source}: profile '{profile.name}' has no [modbus] map, use a Modbus profile")
        self.profile = profile
        self.port = port
        self.warmup_s = profile.timing.warmup_s
        self.poll_interval_s = profile.timing.poll_interval_s
        self._map: ModbusMap = profile.modbus
        self._client = (client_factory or _default_client)(profile, port)
        self._bus_lock = threading.RLock()
        self._last_frame_end = 0.0

    # --- Amplifier ----------------------------------------------------------------------------------------------

    def power_on(self) -> None:
        self._switch("power", self._map.power, True)

    def standby(self) -> None:
        self._switch("power", self._map.power, False)

    def mute(self) -> None:
        self._switch("mute", self._map.mute, True)

    def unmute(self) -> None:
        self._switch("mute", self._map.mute, False)

    def set_emergency(self, enabled: bool) -> None:
        self._switch("emergency", self._map.emergency, enabled)

    def set_volume(self, volume_pct: int) -> None:
        point = self._map.volume
        raw = volume_to_raw(volume_pct, point.raw_min, point.raw_max)
        self._write_checked("volume", point.table, point.address, raw)

    def set_zones(self, zones: Sequence[int]) -> None:
        point = self._map.zones
        if point is None:
            _LOGGER.debug("amp skip function=zones reason=not_in_profile profile=%s", self.profile.name)
            return
        mask = zones_to_mask(tuple(zones), point.count, self.profile.source)
        self._write_checked("zones", point.table, point.address, mask)

    def read_state(self) -> AmplifierState:
        with self._bus_lock:
            powered = self._read_switch("power", self._map.power, default=True)
            muted = self._read_switch("mute", self._map.mute, default=False)
            emergency = self._read_switch("emergency", self._map.emergency, default=False)
            volume = self._map.volume
            raw_volume = self._read(volume.table, volume.address, "volume")
            volume_pct = raw_to_volume(raw_volume, volume.raw_min, volume.raw_max)
            zones: tuple[int, ...] = ()
            if (zone_point := self._map.zones) is not None:
                zones = mask_to_zones(self._read(zone_point.table, zone_point.address, "zones"), zone_point.count)
            faults: tuple[str, ...] = ()
            if (fault_point := self._map.faults) is not None:
                word = self._read(fault_point.table, fault_point.address, "faults")
                names = dict(fault_point.bits)
                faults = tuple(names.get(bit, f"fault_bit_{bit}") for bit in range(16) if word & (1 << bit))
            temperature = None
            if (measure := self._map.temperature) is not None:
                raw = self._read(measure.table, measure.address, "temperature")
                if measure.signed and raw >= 0x8000:
                    raw -= 0x10000
                temperature = raw * measure.scale + measure.offset
        return AmplifierState(
            powered=powered,
            muted=muted,
            volume_pct=volume_pct,
            zones=zones,
            emergency=emergency,
            faults=faults,
            temperature_c=temperature,
        )

    def close(self) -> None:
        with self._bus_lock:
            self._client.close()

    # --- points -------------------------------------------------------------------------------------------------

    def _switch(self, what: str, point: Optional[ModbusSwitch], on: bool) -> None:
        if point is None:
            _LOGGER.debug("amp skip function=%s reason=not_in_profile profile=%s", what, self.profile.name)
            return
        value = point.on_value if on else point.off_value
        self._write_checked(what, point.table, point.address, value)

    def _read_switch(self, what: str, point: Optional[ModbusSwitch], default: bool) -> bool:
        if point is None:
            return default
        value = self._read(point.table, point.address, what)
        return value == point.on_value

    def _write_checked(self, what: str, table: str, address: int, value: int) -> None:
        with self._bus_lock:
            self._write(what, table, address, value)
            read_back = self._read(table, address, what)
        if read_back != value:
            raise ReadBackMismatch(
                f"amplifier '{self.profile.name}' on {self.port}: wrote {what}={value} to {table} {address} but read "
                f"back {read_back}; the amplifier refused it or the profile's address or scale is wrong"
            )
        _LOGGER.info("amp write function=%s table=%s address=%d value=%d ok", what, table, address, value)

    def _write(self, what: str, table: str, address: int, value: int) -> None:
        device_id = self._map.device_id
        if table == TABLE_COIL:
            self._transact(what, lambda c: c.write_coil(address, bool(value), device_id=device_id))
        elif table == TABLE_HOLDING and self._map.write_function == 16:
            self._transact(what, lambda c: c.write_registers(address, [int(value) & 0xFFFF], device_id=device_id))
        elif table == TABLE_HOLDING:
            self._transact(what, lambda c: c.write_register(address, int(value) & 0xFFFF, device_id=device_id))
        else:  # profiles refuse this; kept as a guard against hand-built maps
            raise AmplifierFault(f"{self.profile.source}: {what} is on read-only table '{table}', use coil or holding")

    def _read(self, table: str, address: int, what: str) -> int:
        device_id = self._map.device_id
        if table == TABLE_COIL:
            return int(self._transact(what, lambda c: c.read_coils(address, count=1, device_id=device_id)).bits[0])
        if table == TABLE_DISCRETE:
            response = self._transact(what, lambda c: c.read_discrete_inputs(address, count=1, device_id=device_id))
            return int(response.bits[0])
        if table == TABLE_HOLDING:
            response = self._transact(what, lambda c: c.read_holding_registers(address, count=1, device_id=device_id))
            return int(response.registers[0])
        if table == TABLE_INPUT:
            response = self._transact(what, lambda c: c.read_input_registers(address, count=1, device_id=device_id))
            return int(response.registers[0])
        raise AmplifierFault(f"{self.profile.source}: unknown Modbus table '{table}' for {what}")

    # --- bus ----------------------------------------------------------------------------------------------------

    def _connect(self) -> None:
        if self._client.connected:
            return
        if not self._client.connect():
            raise AmplifierUnreachable(
                f"amplifier '{self.profile.name}': cannot open serial port {self.port}; check the --port path and "
                "that no other program holds it"
            )
        if self.profile.serial.rs485_mode:
            from serial.rs485 import RS485Settings

            try:
                self._client.socket.rs485_mode = RS485Settings(rts_level_for_tx=True, rts_level_for_rx=False)
            except (ValueError, OSError) as exc:
                self._client.close()
                raise AmplifierFault(
                    f"{self.profile.source}: port {self.port} does not support kernel RS485 mode ({exc}); set "
                    "serial.rs485_mode = false for ptys and auto-direction adapters"
                ) from None

    def _transact(self, what: str, call: Callable):
        """One request/response under the bus lock, after the inter-frame gap; errors become `AmplifierFault`s."""
        from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

        with self._bus_lock:
            self._connect()
            wait = self._last_frame_end + self.profile.timing.inter_frame_gap_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            try:
                response = call(self._client)
            except (ModbusIOException, ConnectionException) as exc:
                raise AmplifierUnreachable(
                    f"amplifier '{self.profile.name}' (device {self._map.device_id} on {self.port}) did not answer "
                    f"{what} after {self.profile.timing.retries + 1} tries of "
                    f"{self.profile.timing.response_timeout_s:g} s; check power, wiring, baud rate and device id"
                ) from exc
            except ModbusException as exc:
                raise AmplifierFault(
                    f"amplifier '{self.profile.name}' on {self.port}: Modbus error during {what} ({exc})"
                ) from exc
            finally:
                self._last_frame_end = time.monotonic()
        if response.isError():
            code = getattr(response, "exception_code", 0)
            raise AmplifierFault(
                f"amplifier '{self.profile.name}' (device {self._map.device_id} on {self.port}) refused {what} with "
                f"Modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')}); check the profile's table and "
                "address for it against the manual"
            )
        return response
