"""`skyvoice doctor`: One report of what the box has and what to fix."""

from __future__ import annotations

import argparse
from pathlib import Path

from runtime.commands.flash import DEFAULT_ROOT, DEFAULT_TRUST


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="One report of what the box has and what to fix",
        description="Each line is OK, or FIX with the action to take. Exit status 1 when any line says FIX.",
    )
    parser.add_argument("--root", type=Path, default=Path(DEFAULT_ROOT), help=f"box root (default {DEFAULT_ROOT})")
    parser.add_argument("--trust", type=Path, default=None,
                        help=f"trusted keys to verify the current bundle with (e.g. {DEFAULT_TRUST})")
    parser.add_argument("--amp-profile", type=Path, default=None, help="amplifier profile TOML to test (optional)")
    parser.add_argument("--amp-port", default="", help="serial port of the amplifier, e.g. /dev/ttyUSB0")
    parser.add_argument("--broker", default="", metavar="HOST[:PORT]", help="MQTT broker to test (optional)")
    parser.add_argument("--bundle", type=Path, default=None,
                        help="also run the static TensorRT readiness check on this bundle's graphs")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.bundle.doctor import DoctorConfig, run_checks

    host, _, port = args.broker.partition(":")
    config = DoctorConfig(
        root=args.root,
        trust_dir=args.trust,
        amp_profile=args.amp_profile,
        amp_port=args.amp_port,
        broker_host=host,
        broker_port=int(port) if port else 1883,
        bundle=args.bundle,
    )
    results = run_checks(config)
    for result in results:
        print(result.line())
    failing = [r for r in results if not r.ok]
    print(f"{len(results) - len(failing)} OK, {len(failing)} to fix")
    return 1 if failing else 0
