"""Amplifier profiles: a TOML file in configs/amplifiers/ → the frozen dataclasses of `device.profile_schema`.

A profile names the protocol (`modbus_rtu`, `ascii_line` or `null`), the serial settings, the bus timing and the
protocol's map of functions (power, mute, volume, zones, emergency, faults, temperature). Unknown keys are errors
naming the key, so a typo never silently disables a function. Also here: the volume and zone-mask conversions the
adapters share.
"""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path
from typing import Any, Optional, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from device.errors import ProfileError
from device.profile_schema import (  # re-exported: device.profiles is the one place to import them from
    PROTOCOLS,
    PROTOCOL_ASCII_LINE,
    PROTOCOL_MODBUS_RTU,
    PROTOCOL_NULL,
    READ_TABLES,
    TABLE_COIL,
    TABLE_DISCRETE,
    TABLE_HOLDING,
    TABLE_INPUT,
    WRITE_TABLES,
    AmplifierProfile,
    AsciiFaults,
    AsciiLevel,
    AsciiMeasure,
    AsciiProtocol,
    AsciiSwitch,
    AsciiZones,
    BusTiming,
    ModbusFaults,
    ModbusLevel,
    ModbusMap,
    ModbusMeasure,
    ModbusSwitch,
    ModbusZones,
    SerialSettings,
)

__all__ = [
    "AmplifierProfile",
    "AsciiFaults",
    "AsciiLevel",
    "AsciiMeasure",
    "AsciiProtocol",
    "AsciiSwitch",
    "AsciiZones",
    "BusTiming",
    "ModbusFaults",
    "ModbusLevel",
    "ModbusMap",
    "ModbusMeasure",
    "ModbusSwitch",
    "ModbusZones",
    "PROTOCOLS",
    "PROTOCOL_ASCII_LINE",
    "PROTOCOL_MODBUS_RTU",
    "PROTOCOL_NULL",
    "READ_TABLES",
    "SerialSettings",
    "TABLE_COIL",
    "TABLE_DISCRETE",
    "TABLE_HOLDING",
    "TABLE_INPUT",
    "WRITE_TABLES",
    "load_profile",
    "mask_to_zones",
    "profile_from_dict",
    "raw_to_volume",
    "volume_to_raw",
    "zones_to_mask",
]


class _Table:
    """A TOML table being read: takes keys with type checks, then refuses whatever is left over."""

    def __init__(self, data: Any, where: str, source: str) -> None:
        if not isinstance(data, dict):
            raise ProfileError(f"{source}: [{where}] must be a table, fix the profile")
        self._data = dict(data)
        self.where = where
        self.source = source

    def has(self, key: str) -> bool:
        return key in self._data

    def take(self, key: str, kind: Union[type, tuple], default: Any = ..., *, choices: tuple = ()) -> Any:
        name = f"{self.where}.{key}" if self.where else key
        if key not in self._data:
            if default is ...:
                raise ProfileError(f"{self.source}: required key '{name}' is missing, add it to the profile")
            return default
        value = self._data.pop(key)
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if bool not in kinds and isinstance(value, bool) or not isinstance(value, kinds):
            wanted = "/".join(k.__name__ for k in kinds)
            raise ProfileError(f"{self.source}: '{name}' = {value!r} must be a {wanted}, fix the profile")
        if choices and value not in choices:
            raise ProfileError(f"{self.source}: '{name}' = {value!r} is not one of {', '.join(map(str, choices))}")
        return value

    def sub(self, key: str, required: bool = False) -> Optional["_Table"]:
        if key not in self._data:
            if required:
                name = f"{self.where}.{key}" if self.where else key
                raise ProfileError(f"{self.source}: required table [{name}] is missing, add it to the profile")
            return None
        return _Table(self._data.pop(key), f"{self.where}.{key}" if self.where else key, self.source)

    def done(self) -> None:
        if self._data:
            key = sorted(self._data)[0]
            name = f"{self.where}.{key}" if self.where else key
            raise ProfileError(f"{self.source}: unknown key '{name}', remove it or fix its spelling")


def _check_address(table: _Table, value: int, key: str = "address") -> int:
    if not 0 <= value <= 0xFFFF:
        raise ProfileError(f"{table.source}: '{table.where}.{key}' = {value} is not a 0-based PDU address (0..65535)")
    return value


def _read_timing(table: Optional[_Table]) -> BusTiming:
    if table is None:
        return BusTiming()
    timing = BusTiming(
        inter_frame_gap_s=table.take("inter_frame_gap_ms", float, 10.0) / 1000.0,
        response_timeout_s=table.take("response_timeout_ms", float, 500.0) / 1000.0,
        retries=table.take("retries", int, 2),
        warmup_s=table.take("warmup_ms", float, 1000.0) / 1000.0,
        poll_interval_s=table.take("poll_interval_ms", float, 5000.0) / 1000.0,
    )
    table.done()
    if timing.response_timeout_s <= 0 or timing.retries < 0 or timing.inter_frame_gap_s < 0:
        raise ProfileError(f"{table.source}: [timing] needs response_timeout_ms > 0, retries >= 0, gaps >= 0")
    return timing


def _read_serial(table: Optional[_Table]) -> SerialSettings:
    if table is None:
        return SerialSettings()
    settings = SerialSettings(
        baudrate=table.take("baudrate", int, 19200),
        bytesize=table.take("bytesize", int, 8, choices=(5, 6, 7, 8)),
        parity=table.take("parity", str, "N", choices=("N", "E", "O")),
        stopbits=table.take("stopbits", int, 1, choices=(1, 2)),
        rs485_mode=table.take("rs485_mode", bool, False),
    )
    table.done()
    return settings


def _bit_names(table: _Table, key: str) -> tuple[tuple[int, str], ...]:
    raw = table.take(key, dict, {})
    bits = []
    for bit, name in raw.items():
        if not (bit.isdigit() and 0 <= int(bit) <= 15) or not isinstance(name, str):
            raise ProfileError(f"{table.source}: '{table.where}.{key}.{bit}' must map a bit 0..15 to a fault name")
        bits.append((int(bit), name))
    return tuple(sorted(bits))


def _modbus_switch(table: Optional[_Table]) -> Optional[ModbusSwitch]:
    if table is None:
        return None
    point = ModbusSwitch(
        table=table.take("table", str, choices=WRITE_TABLES),
        address=_check_address(table, table.take("address", int)),
        on_value=table.take("on_value", int, 1),
        off_value=table.take("off_value", int, 0),
    )
    table.done()
    if point.table == TABLE_COIL and (point.on_value, point.off_value) not in ((1, 0), (0, 1)):
        raise ProfileError(f"{table.source}: [{table.where}] is a coil, so on_value/off_value must be 1/0 or 0/1")
    return point


def _read_modbus(table: _Table) -> ModbusMap:
    device_id = table.take("device_id", int)
    if not 1 <= device_id <= 247:
        raise ProfileError(f"{table.source}: 'modbus.device_id' = {device_id} must be 1..247 (0 is broadcast)")
    volume_table = table.sub("volume", required=True)
    volume = ModbusLevel(
        table=volume_table.take("table", str, TABLE_HOLDING, choices=(TABLE_HOLDING,)),
        address=_check_address(volume_table, volume_table.take("address", int)),
        raw_min=volume_table.take("raw_min", int, 0),
        raw_max=volume_table.take("raw_max", int, 100),
    )
    volume_table.done()
    zones = None
    if (zones_table := table.sub("zones")) is not None:
        zones = ModbusZones(
            table=zones_table.take("table", str, TABLE_HOLDING, choices=(TABLE_HOLDING,)),
            address=_check_address(zones_table, zones_table.take("address", int)),
            count=zones_table.take("count", int, 8),
        )
        zones_table.done()
        if not 1 <= zones.count <= 16:
            raise ProfileError(f"{table.source}: 'modbus.zones.count' = {zones.count} must be 1..16 (one register)")
    faults = None
    if (faults_table := table.sub("faults")) is not None:
        faults = ModbusFaults(
            table=faults_table.take("table", str, choices=READ_TABLES),
            address=_check_address(faults_table, faults_table.take("address", int)),
            bits=_bit_names(faults_table, "bits"),
        )
        faults_table.done()
    temperature = None
    if (temperature_table := table.sub("temperature")) is not None:
        temperature = ModbusMeasure(
            table=temperature_table.take("table", str, choices=(TABLE_HOLDING, TABLE_INPUT)),
            address=_check_address(temperature_table, temperature_table.take("address", int)),
            scale=temperature_table.take("scale", float, 1.0),
            offset=temperature_table.take("offset", float, 0.0),
            signed=temperature_table.take("signed", bool, True),
        )
        temperature_table.done()
    result = ModbusMap(
        device_id=device_id,
        volume=volume,
        write_function=table.take("write_function", int, 6, choices=(6, 16)),
        power=_modbus_switch(table.sub("power")),
        mute=_modbus_switch(table.sub("mute")),
        zones=zones,
        emergency=_modbus_switch(table.sub("emergency")),
        faults=faults,
        temperature=temperature,
    )
    table.done()
    return result


def _regex(table: _Table, key: str, required: bool = False, group: Optional[str] = "value") -> Optional[str]:
    pattern = table.take(key, str, ... if required else None)
    if pattern is None:
        return None
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ProfileError(f"{table.source}: '{table.where}.{key}' is not a valid regex ({exc}), fix the pattern")
    if group and group not in compiled.groupindex:
        raise ProfileError(f"{table.source}: '{table.where}.{key}' needs a named group (?P<{group}>...)")
    return pattern


def _template(table: _Table, key: str, fields: tuple[str, ...], required: bool = True) -> Optional[str]:
    text = table.take(key, str, ... if required else None)
    if text is None:
        return None
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    except ValueError as exc:
        raise ProfileError(f"{table.source}: '{table.where}.{key}' = {text!r} is not a valid template ({exc})")
    if used - set(fields) or (fields and not used):
        raise ProfileError(
            f"{table.source}: '{table.where}.{key}' = {text!r} must use exactly the field(s) {{{', '.join(fields)}}}"
        )
    return text


def _query_pair(table: _Table) -> tuple[Optional[str], Optional[str]]:
    query = _template(table, "query", (), required=False)
    reply = _regex(table, "reply")
    if (query is None) != (reply is None):
        raise ProfileError(f"{table.source}: [{table.where}] needs both 'query' and 'reply' for read-back, or neither")
    return query, reply


def _ascii_switch(table: Optional[_Table]) -> Optional[AsciiSwitch]:
    if table is None:
        return None
    on = _template(table, "on", ())
    off = _template(table, "off", ())
    query, reply = _query_pair(table)
    point = AsciiSwitch(
        on=on,
        off=off,
        query=query,
        reply=reply,
        on_value=table.take("on_value", str, "1"),
        off_value=table.take("off_value", str, "0"),
    )
    table.done()
    return point


def _base(table: _Table, default: int, allowed: tuple = (2, 10, 16)) -> int:
    return table.take("base", int, default, choices=allowed)


def _read_ascii(table: _Table) -> AsciiProtocol:
    volume_table = table.sub("volume", required=True)
    volume_set = _template(volume_table, "set", ("raw",))
    query, reply = _query_pair(volume_table)
    volume = AsciiLevel(
        set=volume_set,
        query=query,
        reply=reply,
        raw_min=volume_table.take("raw_min", int, 0),
        raw_max=volume_table.take("raw_max", int, 100),
        base=_base(volume_table, 10),
    )
    volume_table.done()
    zones = None
    if (zones_table := table.sub("zones")) is not None:
        zones_set = _template(zones_table, "set", ("mask",))
        query, reply = _query_pair(zones_table)
        zones = AsciiZones(
            set=zones_set, query=query, reply=reply, count=zones_table.take("count", int, 8), base=_base(zones_table, 10)
        )
        zones_table.done()
    faults = None
    if (faults_table := table.sub("faults")) is not None:
        codes = faults_table.take("codes", dict, {})
        if not all(isinstance(v, str) for v in codes.values()):
            raise ProfileError(f"{table.source}: 'ascii.faults.codes' must map reply values to fault names (strings)")
        faults = AsciiFaults(
            query=_template(faults_table, "query", ()),
            reply=_regex(faults_table, "reply", required=True),
            ok_value=faults_table.take("ok_value", str, "0"),
            codes=tuple(sorted(codes.items())),
            base=_base(faults_table, 0, (0, 2, 10, 16)),
            bits=_bit_names(faults_table, "bits"),
        )
        faults_table.done()
    temperature = None
    if (temperature_table := table.sub("temperature")) is not None:
        temperature = AsciiMeasure(
            query=_template(temperature_table, "query", ()),
            reply=_regex(temperature_table, "reply", required=True),
            scale=temperature_table.take("scale", float, 1.0),
            offset=temperature_table.take("offset", float, 0.0),
        )
        temperature_table.done()
    result = AsciiProtocol(
        volume=volume,
        terminator=table.take("terminator", str, "\r"),
        encoding=table.take("encoding", str, "ascii"),
        ack=_regex(table, "ack", group=None),
        error=_regex(table, "error", group=None),
        power=_ascii_switch(table.sub("power")),
        mute=_ascii_switch(table.sub("mute")),
        zones=zones,
        emergency=_ascii_switch(table.sub("emergency")),
        faults=faults,
        temperature=temperature,
    )
    table.done()
    if not result.terminator:
        raise ProfileError(f"{table.source}: 'ascii.terminator' must not be empty (e.g. \"\\r\" or \"\\r\\n\")")
    return result


def profile_from_dict(data: dict, source: str = "<profile>") -> AmplifierProfile:
    """Build a profile from parsed TOML; `source` names the file in error messages."""
    top = _Table(data, "", source)
    name = top.take("name", str)
    protocol = top.take("protocol", str, choices=PROTOCOLS)
    description = top.take("description", str, "")
    serial = _read_serial(top.sub("serial"))
    timing = _read_timing(top.sub("timing"))
    modbus = ascii_protocol = None
    if protocol == PROTOCOL_MODBUS_RTU:
        modbus = _read_modbus(top.sub("modbus", required=True))
    elif protocol == PROTOCOL_ASCII_LINE:
        ascii_protocol = _read_ascii(top.sub("ascii", required=True))
    top.done()
    return AmplifierProfile(
        name=name,
        protocol=protocol,
        source=source,
        serial=serial,
        timing=timing,
        modbus=modbus,
        ascii=ascii_protocol,
        description=description,
    )


def load_profile(path: Union[str, Path]) -> AmplifierProfile:
    """Read one TOML profile; raise `ProfileError` naming the file and the key at fault."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"amplifier profile {path} does not exist, pass a file from configs/amplifiers/") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"amplifier profile {path} is not valid TOML ({exc}), fix its syntax") from None
    return profile_from_dict(data, str(path))


def volume_to_raw(volume_pct: int, raw_min: int, raw_max: int) -> int:
    """0..100 % → the device's raw scale (linear, rounded)."""
    pct = min(100, max(0, int(volume_pct)))
    return int(round(raw_min + (raw_max - raw_min) * pct / 100.0))


def raw_to_volume(raw: int, raw_min: int, raw_max: int) -> int:
    """The device's raw scale → 0..100 % (rounded)."""
    if raw_max == raw_min:
        return 0
    return int(round(100.0 * (raw - raw_min) / (raw_max - raw_min)))


def zones_to_mask(zones: tuple[int, ...], count: int, source: str) -> int:
    """Zone numbers (1-based) → bitmask; refuse a zone the amplifier does not have."""
    mask = 0
    for zone in zones:
        if not 1 <= zone <= count:
            raise ProfileError(f"{source}: zone {zone} does not exist on this amplifier (zones 1..{count})")
        mask |= 1 << (zone - 1)
    return mask


def mask_to_zones(mask: int, count: int) -> tuple[int, ...]:
    """Bitmask → zone numbers (1-based)."""
    return tuple(zone for zone in range(1, count + 1) if mask & (1 << (zone - 1)))
