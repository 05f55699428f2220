"""`skyvoice flash`: Install a bundle atomically, health-check it, roll back on failure."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

DEFAULT_ROOT = "/opt/skyvoice"
DEFAULT_TRUST = "/etc/skyvoice/trusted-keys"
SSH_ENV, SCP_ENV = "SKYVOICE_SSH", "SKYVOICE_SCP"
REMOTE_TMP = "/tmp"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "flash",
        help="Install a bundle atomically, health-check it, roll back on failure",
        description="Verify BUNDLE (signature, targets, hashes, free disk), copy it into ROOT/releases/<version>, "
        "switch ROOT/current atomically, restart, health-check, and keep it or roll back.",
    )
    parser.add_argument("bundle", type=Path, nargs="?", help="bundle directory or .tar (omit with --recover/--status)")
    parser.add_argument("--root", type=Path, default=Path(DEFAULT_ROOT), help=f"box root (default {DEFAULT_ROOT})")
    parser.add_argument("--trust", type=Path, default=Path(DEFAULT_TRUST), help=f"trusted .pub keys (default {DEFAULT_TRUST})")
    parser.add_argument("--force", action="store_true", help="allow installing an older version than the running one")
    parser.add_argument("--box", metavar="HOST", help="flash a remote box over ssh/scp (user@host); paths are the box's")
    parser.add_argument("--remote-skyvoice", default="skyvoice", help="skyvoice command on the box (with --box)")
    parser.add_argument("--restart-cmd", default=os.environ.get("SKYVOICE_RESTART_CMD", ""),
                        help="command that restarts the daemon after the switch, e.g. 'systemctl restart skyvoice'")
    parser.add_argument("--health-check", choices=("speak", "graphs"), default="speak",
                        help="speak: load every graph and synthesise a test phrase (default); graphs: only load them")
    parser.add_argument("--health-timeout", type=float, default=600.0, help="seconds the health check may take")
    parser.add_argument("--recover", action="store_true", help="only roll back an unconfirmed release (run at start)")
    parser.add_argument("--status", action="store_true", help="only show the installed releases")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from runtime.errors import ConfigError

    if args.box:
        return run_remote(args)
    from runtime.bundle.releases import ReleaseStore

    store = ReleaseStore(args.root)
    if args.recover or args.status:
        if args.recover:
            recovery = store.recover()
            print(recovery.note or f"nothing to recover; current release {store.current_version() or 'none'}")
        if args.status:
            print_status(store)
        return 0
    if args.bundle is None:
        raise ConfigError("give a BUNDLE to flash (or --recover / --status)")
    return run_local(args, store)


def print_status(store) -> None:
    current, previous, pending = store.current_version(), store.previous_version(), store.read_pending()
    print(f"root {store.root}")
    for version in store.versions():
        tags = [t for t, v in (("current", current), ("previous", previous)) if v == version]
        print(f"  {version}{'  (' + ', '.join(tags) + ')' if tags else ''}")
    if pending:
        print(f"  pending confirmation: {pending.version} (since {pending.started_at}); run 'skyvoice flash --recover'")


def run_local(args: argparse.Namespace, store) -> int:
    from functools import partial

    from runtime.bundle.health import default_health_check
    from runtime.bundle.install import command_restart_hook, flash
    from runtime.keys import TrustStore

    trust = TrustStore.from_dir(args.trust)
    restart = command_restart_hook(shlex.split(args.restart_cmd)) if args.restart_cmd else None
    print(f"flashing {args.bundle} onto {args.root} (current: {store.current_version() or 'none'})", flush=True)
    result = flash(
        args.bundle,
        args.root,
        trust,
        partial(default_health_check, timeout_s=args.health_timeout, speak=args.health_check == "speak"),
        force=args.force,
        restart=restart,
    )
    print(f"OK release {result.version} is current and healthy ({result.health})")
    if result.previous:
        print(f"previous release {result.previous} kept for rollback")
    if result.carried_voices:
        print(f"voices kept from the previous release: {', '.join(result.carried_voices)}")
    if result.dropped_voices:
        print(f"voices NOT kept (made for another SoVITS model; install them again): {', '.join(result.dropped_voices)}")
    if result.removed:
        print(f"removed old releases: {', '.join(result.removed)}")
    return 0


def remote_commands(args: argparse.Namespace, archive: Path) -> tuple[list[str], list[str], list[str]]:
    """(scp, ssh flash, ssh cleanup) command lines for flashing `archive` on args.box."""
    ssh = shlex.split(os.environ.get(SSH_ENV, "ssh"))
    scp = shlex.split(os.environ.get(SCP_ENV, "scp"))
    remote_path = f"{REMOTE_TMP}/{archive.name}"
    flash_cmd = [*shlex.split(args.remote_skyvoice), "flash", remote_path, "--root", str(args.root), "--trust", str(args.trust)]
    if args.force:
        flash_cmd.append("--force")
    if args.restart_cmd:
        flash_cmd += ["--restart-cmd", args.restart_cmd]
    flash_cmd += ["--health-check", args.health_check, "--health-timeout", str(args.health_timeout)]
    return (
        [*scp, str(archive), f"{args.box}:{remote_path}"],
        [*ssh, args.box, shlex.join(flash_cmd)],
        [*ssh, args.box, shlex.join(["rm", "-f", remote_path])],
    )


def run_remote(args: argparse.Namespace) -> int:
    import subprocess
    import tarfile
    import tempfile

    from runtime.errors import ConfigError

    if args.bundle is None or not args.bundle.exists():
        raise ConfigError(f"bundle {args.bundle} does not exist on this laptop; give the bundle directory or .tar")
    with tempfile.TemporaryDirectory(prefix="skyvoice-flash-") as tmp:
        archive = args.bundle
        if args.bundle.is_dir():
            archive = Path(tmp) / f"skyvoice-bundle-{os.getpid()}.tar"
            with tarfile.open(archive, "w") as tar:
                tar.add(args.bundle, arcname="bundle")
        copy, remote_flash, cleanup = remote_commands(args, archive)
        print(f"copying {archive.name} to {args.box}", flush=True)
        if subprocess.run(copy, check=False).returncode != 0:
            raise ConfigError(f"copying the bundle to {args.box} failed; check the address, ssh keys and free space in {REMOTE_TMP}")
        try:
            status = subprocess.run(remote_flash, check=False).returncode
        finally:
            subprocess.run(cleanup, check=False)
    if status != 0:
        print(f"flash on {args.box} failed (exit {status}); the box kept its previous release, see the message above")
    return status
