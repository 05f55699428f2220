"""`skyvoice demo`: The whole loop on one machine: broker, daemon, simulated amplifier, WAV sink."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="The whole loop on one machine: broker, daemon, simulated amplifier, WAV sink")
    parser.add_argument("--out", default="skyvoice-demo.wav", metavar="WAV", help="where the played audio goes (default: %(default)s)")
    parser.add_argument("--bundle", default="", metavar="DIR", help="a voice bundle; default: the fallback voice speaks")
    parser.add_argument("--broker", choices=("auto", "mosquitto", "embedded"), default="auto",
                        help="auto: mosquitto if installed, else the embedded minimal broker (default: %(default)s)")
    parser.add_argument("--amp", choices=("sim", "null"), default="sim",
                        help="sim: the simulated Modbus RTU amplifier on a pty; null: no amplifier (default: %(default)s)")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after this many seconds (default: %(default)s)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.daemon.demo_loop import run_demo

    return run_demo(out_wav=args.out, bundle_dir=args.bundle, timeout_s=args.timeout, broker_choice=args.broker,
                    amp_choice=args.amp)
