"""What an amplifier profile holds: frozen dataclasses for the port, the timing and each protocol's function map.

`device/profiles.py` reads them from TOML. Every function except volume is optional: an adapter skips what its
amplifier does not have. Modbus addresses are 0-based PDU addresses (see docs/amplifiers.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

PROTOCOL_MODBUS_RTU = "modbus_rtu"
PROTOCOL_ASCII_LINE = "ascii_line"
PROTOCOL_NULL = "null"
PROTOCOLS = (PROTOCOL_MODBUS_RTU, PROTOCOL_ASCII_LINE, PROTOCOL_NULL)

# Modbus data tables: coils and holding registers are writable; discrete inputs and input registers are read-only.
TABLE_COIL = "coil"
TABLE_DISCRETE = "discrete"
TABLE_HOLDING = "holding"
TABLE_INPUT = "input"
READ_TABLES = (TABLE_COIL, TABLE_DISCRETE, TABLE_HOLDING, TABLE_INPUT)
WRITE_TABLES = (TABLE_COIL, TABLE_HOLDING)


@dataclass(frozen=True)
class SerialSettings:
    """How to open the port: 8N1 at 19200 baud unless the manual says otherwise."""

    baudrate: int = 19200
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1
    rs485_mode: bool = False  # kernel RS485 (TIOCSRS485); off for ptys and auto-direction USB adapters


@dataclass(frozen=True)
class BusTiming:
    """Per-device timing: gap between frames, how long to wait for an answer, how often to retry, warm-up."""

    inter_frame_gap_s: float = 0.01
    response_timeout_s: float = 0.5
    retries: int = 2
    warmup_s: float = 1.0  # after power-on, before audio may start
    poll_interval_s: float = 5.0  # fault/temperature polling period


# --- Modbus RTU -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModbusSwitch:
    """An on/off function (power, mute, emergency) held in one coil or holding register."""

    table: str
    address: int
    on_value: int = 1
    off_value: int = 0


@dataclass(frozen=True)
class ModbusLevel:
    """Volume in one holding register, scaled linearly: 0 % → raw_min, 100 % → raw_max."""

    table: str
    address: int
    raw_min: int = 0
    raw_max: int = 100


@dataclass(frozen=True)
class ModbusZones:
    """Zone routing as a bitmask in one holding register: bit n set = zone n+1 on."""

    table: str
    address: int
    count: int = 8


@dataclass(frozen=True)
class ModbusFaults:
    """Fault status: bits of one register (or one discrete input/coil) named by the profile."""

    table: str
    address: int
    bits: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class ModbusMeasure:
    """A measured value (temperature): value = raw * scale + offset; raw is signed 16-bit when `signed`."""

    table: str
    address: int
    scale: float = 1.0
    offset: float = 0.0
    signed: bool = True


@dataclass(frozen=True)
class ModbusMap:
    """Where each function lives on the device."""

    device_id: int
    volume: ModbusLevel
    write_function: int = 6  # holding-register writes: 6 (write single register) or 16 (write multiple registers)
    power: Optional[ModbusSwitch] = None
    mute: Optional[ModbusSwitch] = None
    zones: Optional[ModbusZones] = None
    emergency: Optional[ModbusSwitch] = None
    faults: Optional[ModbusFaults] = None
    temperature: Optional[ModbusMeasure] = None


# --- ASCII line protocol ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AsciiSwitch:
    """An on/off function: two commands, and optionally a query whose reply regex captures `value`."""

    on: str
    off: str
    query: Optional[str] = None
    reply: Optional[str] = None
    on_value: str = "1"
    off_value: str = "0"


@dataclass(frozen=True)
class AsciiLevel:
    """A number sent through a template field `{raw}` (format spec allowed, e.g. `{raw:02X}`) and read back."""

    set: str
    query: Optional[str] = None
    reply: Optional[str] = None
    raw_min: int = 0
    raw_max: int = 100
    base: int = 10  # base of the number captured by `reply`


@dataclass(frozen=True)
class AsciiZones:
    """Zone routing through a template field `{mask}` (bit n = zone n+1) and read back."""

    set: str
    query: Optional[str] = None
    reply: Optional[str] = None
    count: int = 8
    base: int = 10


@dataclass(frozen=True)
class AsciiFaults:
    """A fault query; its reply captures `value`: `ok_value` means no fault, `codes` names the others."""

    query: str
    reply: str
    ok_value: str = "0"
    codes: tuple[tuple[str, str], ...] = ()
    base: int = 0  # 0: match codes as text; 2/10/16: parse as a number and name set bits through `bits`
    bits: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class AsciiMeasure:
    """A measured value (temperature): reply captures `value`; value = number * scale + offset."""

    query: str
    reply: str
    scale: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class AsciiProtocol:
    """Line framing, acknowledgement and the command map."""

    volume: AsciiLevel
    terminator: str = "\r"
    encoding: str = "ascii"
    ack: Optional[str] = None  # regex every write must be answered with; None: writes are not answered
    error: Optional[str] = None  # regex of a refusal; its `reason` group (if any) goes into the fault message
    power: Optional[AsciiSwitch] = None
    mute: Optional[AsciiSwitch] = None
    zones: Optional[AsciiZones] = None
    emergency: Optional[AsciiSwitch] = None
    faults: Optional[AsciiFaults] = None
    temperature: Optional[AsciiMeasure] = None


@dataclass(frozen=True)
class AmplifierProfile:
    """One amplifier model: protocol, port settings, timing and its function map."""

    name: str
    protocol: str
    source: str  # the file it came from, for messages
    serial: SerialSettings = SerialSettings()
    timing: BusTiming = BusTiming()
    modbus: Optional[ModbusMap] = None
    ascii: Optional[AsciiProtocol] = None
    description: str = ""
