"""`skyvoice sim-amp`: Run a simulated amplifier on a serial port or pty (tests, and bench checks of a box)."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sim-amp",
        help="Run a simulated amplifier on a serial port or pty",
        description="Answer as the amplifier of PROFILE (Modbus: pymodbus's server; ASCII: a line responder) until "
        "Ctrl-C. With --pty, create a linked pty pair and print the path the box should use as its --port.",
    )
    parser.add_argument("--profile", required=True, help="amplifier profile TOML (configs/amplifiers/*.toml)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port or pty the simulator opens (the amplifier's end of the line)")
    where.add_argument("--pty", action="store_true", help="create a pty pair; print the box's end on stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import signal
    import threading

    from device.profiles import load_profile
    from device.sim import PtyPair, open_sim

    profile = load_profile(args.profile)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    pair = PtyPair() if args.pty else None
    try:
        sim = open_sim(profile, pair.amp_path if pair else args.port)
        sim.start()
        try:
            if pair is not None:
                print(pair.host_path, flush=True)
            print(
                f"simulated amplifier '{profile.name}' ({profile.protocol}) on {pair.host_path if pair else args.port}; "
                "Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            stop.wait()
        finally:
            sim.stop()
    finally:
        if pair is not None:
            pair.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
