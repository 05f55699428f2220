"""The one `skyvoice` command. Each subcommand lives in `runtime/commands/<name>.py` and exposes `register(subparsers)`.

Command modules keep their heavy imports (onnxruntime, torch, paho, serial) inside their `run` functions, so
`skyvoice --help` is fast and never touches torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Optional, Sequence

from runtime import __version__
from runtime.errors import SkyvoiceError

COMMAND_MODULES = (
    "runtime.commands.build",
    "runtime.commands.voice",
    "runtime.commands.speak",
    "runtime.commands.phonemize",
    "runtime.commands.serve",
    "runtime.commands.demo",
    "runtime.commands.amp",
    "runtime.commands.sim_amp",
    "runtime.commands.keys",
    "runtime.commands.bundle",
    "runtime.commands.engines",
    "runtime.commands.flash",
    "runtime.commands.doctor",
)

EXIT_USER_ERROR = 2


class KeyValueFormatter(logging.Formatter):
    """Structured, one line per event: `time level logger message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname.lower()} {record.name} {record.getMessage()}"
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="skyvoice",
        description="Voice-cloned public announcements: build bundles, speak, and serve MQTT commands on the box.",
    )
    parser.add_argument("--version", action="version", version=f"skyvoice {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-v info, -vv debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        result = args.func(args)
    except SkyvoiceError as exc:
        print(f"skyvoice {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # device-layer errors have their own root (device/ does not import runtime/)
        from device.errors import DeviceError

        if isinstance(exc, DeviceError):
            print(f"skyvoice {args.command}: error: {exc}", file=sys.stderr)
            return EXIT_USER_ERROR
        raise
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
