"""`skyvoice amp`: Field checks of the PA amplifier (status, on, off, volume N, mute, unmute) over its profile."""

from __future__ import annotations

import argparse

ACTIONS = ("status", "on", "off", "volume", "mute", "unmute")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "amp",
        help="Field checks of the PA amplifier",
        description="Talk to the PA amplifier through its profile: read its state, power it on/off, set the volume.",
    )
    parser.add_argument("action", choices=ACTIONS, help="status | on | off (mute + standby) | volume N | mute | unmute")
    parser.add_argument("value", nargs="?", type=int, help="volume in percent (0..100), for `volume`")
    parser.add_argument("--profile", required=True, help="amplifier profile TOML (configs/amplifiers/*.toml)")
    parser.add_argument("--port", default="", help="serial port, e.g. /dev/ttyUSB0 (not needed for protocol = null)")
    parser.set_defaults(func=run)


def _print_state(state) -> None:
    print(f"powered:     {'yes' if state.powered else 'no (standby)'}")
    print(f"muted:       {'yes' if state.muted else 'no'}")
    print(f"volume:      {state.volume_pct} %")
    print(f"zones:       {', '.join(map(str, state.zones)) or '-'}")
    print(f"emergency:   {'on' if state.emergency else 'off'}")
    print(f"faults:      {', '.join(state.faults) or 'none'}")
    temperature = "-" if state.temperature_c is None else f"{state.temperature_c:.1f} °C"
    print(f"temperature: {temperature}")


def run(args: argparse.Namespace) -> int:
    from device.open_amplifier import open_amplifier
    from runtime.errors import ConfigError

    if args.action == "volume" and (args.value is None or not 0 <= args.value <= 100):
        raise ConfigError("'skyvoice amp volume' needs a percentage 0..100, e.g. `skyvoice amp volume 60`")
    if args.action != "volume" and args.value is not None:
        raise ConfigError(f"'skyvoice amp {args.action}' takes no value (only `volume N` does)")
    amplifier = open_amplifier(args.profile, args.port)
    try:
        if args.action == "on":
            amplifier.power_on()
        elif args.action == "off":
            amplifier.mute()
            amplifier.standby()
        elif args.action == "volume":
            amplifier.set_volume(args.value)
        elif args.action == "mute":
            amplifier.mute()
        elif args.action == "unmute":
            amplifier.unmute()
        if args.action != "status":
            print(f"{args.action}: ok (read back)")
        _print_state(amplifier.read_state())
    finally:
        amplifier.close()
    return 0
