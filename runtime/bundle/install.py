"""`flash`: install a signed bundle on the box atomically, health-check it, keep it or roll back.

Steps (each named, so fault-injection tests can stop the installer there and SIGKILL it):

  verified → staging (first file copied) → staged → marked (pending.json) → committed (in releases/) →
  switched (current → new) → restarted → health_checked → confirmed

Until `confirmed`, a killed installer leaves either the old `current` untouched or a pending marker that
`ReleaseStore.recover()` (run by every flash and by the daemon at start) turns into a switch back.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final, Optional

from runtime.bundle.box_facts import BoxFacts, probe_box_facts
from runtime.bundle.errors import HealthCheckFailed
from runtime.bundle.manifest import Manifest, fsync_dir, parse_version, walk_bundle
from runtime.bundle.releases import DEFAULT_KEEP_RELEASES, ReleaseStore
from runtime.bundle.verify import verify_bundle
from runtime.errors import BundleRejected, SkyvoiceError
from runtime.keys import TrustStore

_LOGGER = logging.getLogger(__name__)

STEPS: Final = (
    "verified", "staging", "staged", "marked", "committed", "switched", "restarted", "health_checked", "confirmed",
)
STOP_AT_ENV: Final = "SKYVOICE_FLASH_STOP_AT"
STOP_FD_ENV: Final = "SKYVOICE_FLASH_STOP_FD"
DISK_MARGIN_BYTES: Final = 16 * 1024 * 1024
DISK_MARGIN_FRACTION: Final = 0.05

HealthCheck = Callable[[Path], object]  # raise (any exception) when unhealthy
RestartHook = Callable[[Path], None]
FreeSpaceProbe = Callable[[Path], int]
StepHook = Callable[[str], None]


@dataclass(frozen=True)
class FlashResult:
    version: str
    previous: Optional[str]
    removed: tuple[str, ...]
    health: str
    carried_voices: tuple[str, ...] = ()
    dropped_voices: tuple[str, ...] = ()


def step_hook_from_env() -> StepHook:
    """Fault injection: with SKYVOICE_FLASH_STOP_AT=<step> and SKYVOICE_FLASH_STOP_FD=<fd>, the installer writes the
    step name to that fd when it reaches the step, then waits to be killed. Without them, a no-op."""
    stop_at, fd = os.environ.get(STOP_AT_ENV), os.environ.get(STOP_FD_ENV)
    if not stop_at or not fd:
        return lambda step: None

    def hook(step: str) -> None:
        if step != stop_at:
            return
        os.write(int(fd), (step + "\n").encode())
        while True:
            signal.pause()

    return hook


def disk_free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


def bundle_bytes(bundle_dir: Path) -> int:
    return sum((bundle_dir / relative).stat().st_size for relative in walk_bundle(bundle_dir))


def check_free_space(bundle_dir: Path, root: Path, free_space: FreeSpaceProbe) -> None:
    check_free_bytes(bundle_bytes(bundle_dir), root, free_space)


def check_free_bytes(needed: int, root: Path, free_space: FreeSpaceProbe) -> None:
    needed_with_margin = int(needed * (1 + DISK_MARGIN_FRACTION)) + DISK_MARGIN_BYTES
    free = free_space(root)
    if free < needed_with_margin:
        raise BundleRejected(
            f"not enough free disk on {root}: the bundle needs {needed_with_margin / 2**20:.0f} MiB "
            f"(with margin) but only {free / 2**20:.0f} MiB are free; remove old files or releases and flash again"
        )


def command_restart_hook(command: list[str]) -> RestartHook:
    """A restart hook that runs a command (e.g. `systemctl restart skyvoice`) and fails loudly if it fails."""

    def restart(current: Path) -> None:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            said = result.stderr.strip()[-200:]
            raise HealthCheckFailed(
                f"restart command {' '.join(command)!r} exited {result.returncode}" + (f": {said}" if said else "")
            )

    return restart


def check_anti_rollback(new: str, current: Optional[str], *, force: bool) -> None:
    if current is None:
        return
    if parse_version(new) == parse_version(current):
        raise BundleRejected(f"bundle {new} is already the current release; nothing to flash")
    if parse_version(new) < parse_version(current) and not force:
        raise BundleRejected(
            f"bundle {new} is older than the running release {current} (anti-rollback); "
            "flash a newer bundle, or add --force to downgrade on purpose"
        )


def _safe_extract(archive: Path, into: Path) -> Path:
    """Unpack a bundle .tar with regular files and directories only, nothing outside `into`; return the bundle dir."""
    try:
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name
                if name.startswith("/") or ".." in Path(name).parts:
                    raise BundleRejected(f"bundle archive {archive} holds the unsafe path {name!r}; rebuild the archive")
                if not (member.isfile() or member.isdir()):
                    raise BundleRejected(f"bundle archive {archive} holds {name!r}, which is not a regular file")
            for member in tar.getmembers():
                target = into / member.name
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                with source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
    except tarfile.TarError as exc:
        raise BundleRejected(f"bundle archive {archive} cannot be read ({exc}); copy it again") from None
    manifests = sorted(into.rglob("manifest.json"), key=lambda p: len(p.parts))
    if not manifests:
        raise BundleRejected(f"bundle archive {archive} has no manifest.json; it is not a bundle")
    return manifests[0].parent


def _copy_file_synced(source: Path, target: Path) -> None:
    with open(source, "rb") as src, open(target, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
        dst.flush()
        os.fsync(dst.fileno())


def _copy_tree(source: Path, target: Path, step: StepHook) -> None:
    """Copy every file with fsync (files, then directories); announce `staging` after the first file."""
    first = True
    for relative in walk_bundle(source):
        out = target / relative
        out.parent.mkdir(parents=True, exist_ok=True)
        _copy_file_synced(source / relative, out)
        if first:
            step("staging")
            first = False
    for dirpath, _, _ in os.walk(target):
        fsync_dir(dirpath)


def flash(
    bundle: str | os.PathLike,
    root: str | os.PathLike,
    trust: TrustStore,
    health_check: Optional[HealthCheck] = None,
    force: bool = False,
    *,
    restart: Optional[RestartHook] = None,
    free_space: FreeSpaceProbe = disk_free_bytes,
    facts: Optional[BoxFacts] = None,
    step_hook: Optional[StepHook] = None,
    keep: int = DEFAULT_KEEP_RELEASES,
) -> FlashResult:
    """Install `bundle` (a directory or .tar) as ROOT's current release; raise BundleRejected on refusal or rollback."""
    from runtime.bundle.health import default_health_check

    bundle, store = Path(bundle), ReleaseStore(root)
    health_check = health_check or default_health_check
    step = step_hook or step_hook_from_env()
    facts = facts if facts is not None else probe_box_facts()
    if not bundle.exists():
        raise BundleRejected(f"bundle {bundle} does not exist; give the bundle directory or its .tar")
    store.ensure_layout()
    with store.lock():
        store.check_links()
        recovery = store.recover_locked()
        if recovery.note:
            _LOGGER.warning("before flash: %s", recovery.note)
        source = bundle
        if bundle.is_file():
            check_free_bytes(2 * bundle.stat().st_size, store.root, free_space)  # unpacked, then copied
            source = _safe_extract(bundle, store.new_staging("unpacked"))
        manifest = verify_bundle(source, trust, facts=facts)
        version, previous = manifest.bundle_version, store.current_version()
        check_anti_rollback(version, previous, force=force)
        check_free_space(source, store.root, free_space)
        step("verified")

        staged = store.new_staging(version)
        try:
            _copy_tree(source, staged, step)
            carried, dropped = carry_over_voices(store.current_dir(), staged, manifest)
            _recheck_copy(staged, trust, facts, manifest)
        except SkyvoiceError:
            store.clean_staging()  # nothing was switched; leave no half copy behind
            raise
        step("staged")
        store.mark_pending(version, previous)
        step("marked")
        store.commit_staged(staged, version)
        store.clean_staging()
        step("committed")
        store.switch_to(version)
        step("switched")
        try:
            if restart:
                restart(store.current_link)
            step("restarted")
            health = health_check(store.release_dir(version))
        except Exception as exc:  # the restart and the health check judge the release: any failure means "not healthy"
            reason = str(exc) or type(exc).__name__
            restart_note = _rollback(store, version, previous, restart)
            where = f"rolled back to {previous}" if previous else "no earlier release to roll back to, removed it"
            raise HealthCheckFailed(f"release {version} failed its health check ({reason}); {where}{restart_note}") from None
        step("health_checked")
        store.confirm(version, previous)
        step("confirmed")
        removed = store.prune(keep)
    _LOGGER.info("flash done version=%s previous=%s removed=%s", version, previous, removed)
    return FlashResult(
        version=version, previous=previous, removed=tuple(removed), health=str(health or "ok"),
        carried_voices=carried, dropped_voices=dropped,
    )


def voice_model_identity(manifest: Manifest) -> object:
    """What a voice pack depends on: the SoVITS checkpoint the build recorded, else the SoVITS decoder graph's hash."""
    source = manifest.raw.get("source")
    if isinstance(source, dict) and source.get("sovits"):
        return source["sovits"]
    graph = manifest.graphs.get("sovits_decoder", {})
    entry = manifest.files.get(graph.get("file", "graphs/sovits_decoder.onnx")) if isinstance(graph, dict) else None
    return entry.sha256 if entry else None


def carry_over_voices(current: Optional[Path], staged: Path, manifest: Manifest) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Copy voice packs installed on the box (e.g. over MQTT) into the new release when it has the same SoVITS model
    and no pack of that name; return (carried, dropped). Packs keep their signatures and are verified with the copy."""
    from runtime.bundle.manifest import VOICES_DIR, read_manifest

    if current is None or not (current / VOICES_DIR).is_dir():
        return (), ()
    try:
        old_model, new_model = voice_model_identity(read_manifest(current)), voice_model_identity(manifest)
        same_model = new_model is not None and old_model == new_model
    except BundleRejected:
        same_model = False
    carried, dropped = [], []
    for pack in sorted((current / VOICES_DIR).glob("*.npz")):
        target = staged / VOICES_DIR / pack.name
        if target.exists():
            continue
        name = pack.name[: -len(".npz")]
        signature = pack.with_name(pack.name + ".sig")
        if not same_model or not signature.is_file():
            dropped.append(name)
            continue
        target.parent.mkdir(exist_ok=True)
        for path in (pack, signature):
            _copy_file_synced(path, target.parent / path.name)
        fsync_dir(target.parent)
        carried.append(name)
    if carried or dropped:
        _LOGGER.info("voices carried=%s dropped=%s (dropped packs were made for another SoVITS model)", carried, dropped)
    return tuple(carried), tuple(dropped)


def _recheck_copy(staged: Path, trust: TrustStore, facts: BoxFacts, verified: Manifest) -> None:
    """Verify the copy itself (signature included), so a source changed during the copy, or a disk that lied, is
    caught before the switch."""
    copy = verify_bundle(staged, trust, facts=facts)
    if copy.raw != verified.raw:
        raise BundleRejected(f"the bundle changed while it was being copied to {staged}; copy it again and flash once more")


def _rollback(store: ReleaseStore, version: str, previous: Optional[str], restart: Optional[RestartHook]) -> str:
    """Switch back, drop the failed release and the marker, then restart; return a note when the restart failed."""
    if previous:
        store.switch_to(previous)
    else:
        store.current_link.unlink(missing_ok=True)
        fsync_dir(store.root)
    store.remove_release(version)
    store.clear_pending()
    _LOGGER.warning("flash rolled back version=%s to=%s", version, previous)
    if restart and previous:
        try:
            restart(store.current_link)
        except SkyvoiceError as exc:
            _LOGGER.error("restart after rollback failed error=%s", exc)
            return f"; restarting the daemon on {previous} failed too ({exc}), restart it by hand"
    return ""
