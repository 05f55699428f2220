"""The box's release store: several installed bundles, one of them current, switched by one atomic rename.

```
ROOT/
  releases/<bundle_version>/    complete, verified copies of bundles
  current  -> releases/<v>      what the daemon runs (relative symlink, replaced with rename(2))
  previous -> releases/<v>      the last confirmed release before current (the rollback target)
  pending.json                  present from just before a switch until the health check confirms it
  staging/                      partial copies and removals in progress; emptied by the next flash or start
  flash.lock                    flock held by the installer for the whole flash
```

A release is confirmed when pending.json is removed. If the box dies before that (crash, power loss, SIGKILL during
the health check), `recover()` on the next start switches back to the release named in the marker.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Iterator, Optional

from runtime.bundle.errors import FlashInProgress
from runtime.bundle.manifest import fsync_dir, parse_version, write_json_atomic
from runtime.errors import BundleRejected

_LOGGER = logging.getLogger(__name__)

RELEASES_DIR: Final = "releases"
CURRENT_LINK: Final = "current"
PREVIOUS_LINK: Final = "previous"
PENDING_MARKER: Final = "pending.json"
STAGING_DIR: Final = "staging"
LOCK_FILE: Final = "flash.lock"
DEFAULT_KEEP_RELEASES: Final = 2


@dataclass(frozen=True)
class Pending:
    """The marker written before a switch: which release is on trial and which one to go back to."""

    version: str
    previous: Optional[str]
    started_at: str


@dataclass(frozen=True)
class Recovery:
    """What `recover()` did at start: nothing, or rolled back an unconfirmed release."""

    rolled_back_from: Optional[str] = None
    rolled_back_to: Optional[str] = None
    note: str = ""


class ReleaseStore:
    """Operations on one box root; every change is a rename, followed by an fsync of the directory."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.releases_dir = self.root / RELEASES_DIR
        self.current_link = self.root / CURRENT_LINK
        self.previous_link = self.root / PREVIOUS_LINK
        self.pending_path = self.root / PENDING_MARKER
        self.staging_dir = self.root / STAGING_DIR
        self.lock_path = self.root / LOCK_FILE

    # --- reading -------------------------------------------------------------------------------------------------
    def _link_version(self, link: Path) -> Optional[str]:
        try:
            target = os.readlink(link)
        except (FileNotFoundError, OSError):
            return None
        return Path(target).name

    def current_version(self) -> Optional[str]:
        return self._link_version(self.current_link)

    def previous_version(self) -> Optional[str]:
        return self._link_version(self.previous_link)

    def release_dir(self, version: str) -> Path:
        parse_version(version)  # never build a path from an unchecked name
        return self.releases_dir / version

    def current_dir(self) -> Optional[Path]:
        version = self.current_version()
        return self.releases_dir / version if version else None

    def versions(self) -> list[str]:
        if not self.releases_dir.is_dir():
            return []
        found = []
        for entry in self.releases_dir.iterdir():
            try:
                found.append((parse_version(entry.name), entry.name))
            except BundleRejected:
                _LOGGER.warning("foreign entry in releases dir path=%s", entry)
        return [name for _, name in sorted(found)]

    def read_pending(self) -> Optional[Pending]:
        try:
            raw = json.loads(self.pending_path.read_text())
            return Pending(version=raw["version"], previous=raw.get("previous"), started_at=raw.get("started_at", ""))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            _LOGGER.warning("unreadable pending marker path=%s; treating the current release as unconfirmed", self.pending_path)
            return Pending(version=self.current_version() or "", previous=self.previous_version(), started_at="")

    # --- changing ------------------------------------------------------------------------------------------------
    def ensure_layout(self) -> None:
        for directory in (self.root, self.releases_dir, self.staging_dir):
            directory.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the flash lock; the kernel drops it when the holder dies, so a killed installer never blocks the box."""
        self.ensure_layout()
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise FlashInProgress(
                    f"another 'skyvoice flash' is running on {self.root} (it holds {self.lock_path}); wait for it to finish"
                ) from None
            yield
        finally:
            os.close(fd)

    def new_staging(self, name: str) -> Path:
        self.ensure_layout()
        path = self.staging_dir / f"{name}.{os.getpid()}"
        if path.exists():
            shutil.rmtree(path)
        path.mkdir()
        return path

    def clean_staging(self) -> None:
        if self.staging_dir.is_dir():
            for entry in self.staging_dir.iterdir():
                shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            _LOGGER.debug("staging cleaned root=%s", self.root)

    def commit_staged(self, staged: Path, version: str) -> Path:
        """Move a complete staged copy to releases/<version> (one rename); an old copy of that version goes first."""
        target = self.release_dir(version)
        if target.exists():
            self.remove_release(version)
        os.rename(staged, target)
        fsync_dir(self.releases_dir)
        return target

    def check_links(self) -> None:
        """`current` and `previous` must be links (or absent); a hand-made directory there is never overwritten."""
        for link in (self.current_link, self.previous_link):
            if link.exists() and not link.is_symlink():
                raise BundleRejected(
                    f"{link} is a real directory or file, not a link; move it into {self.releases_dir}/<version>/ and flash again"
                )

    def _set_link(self, link: Path, version: str) -> None:
        self.check_links()
        tmp = self.root / f".{link.name}.tmp-{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(f"{RELEASES_DIR}/{version}", tmp)
        os.replace(tmp, link)
        fsync_dir(self.root)

    def switch_to(self, version: str) -> None:
        if not self.release_dir(version).is_dir():
            raise BundleRejected(f"release {version} is not installed under {self.releases_dir}; cannot switch to it")
        self._set_link(self.current_link, version)
        _LOGGER.info("current switched root=%s version=%s", self.root, version)

    def mark_pending(self, version: str, previous: Optional[str]) -> None:
        write_json_atomic(
            self.pending_path,
            {"version": version, "previous": previous, "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        )

    def clear_pending(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.pending_path.unlink()
            fsync_dir(self.root)

    def confirm(self, version: str, previous: Optional[str]) -> None:
        """The release passed its health check: remember the rollback target, then drop the marker."""
        if previous and previous != version and self.release_dir(previous).is_dir():
            self._set_link(self.previous_link, previous)
        self.clear_pending()
        _LOGGER.info("release confirmed root=%s version=%s previous=%s", self.root, version, previous)

    def remove_release(self, version: str) -> None:
        """Rename out of releases/ first (atomic), then delete; a crash mid-delete leaves only staging junk."""
        if version == self.current_version():
            raise BundleRejected(f"release {version} is the current release on {self.root}; switch away before removing it")
        source = self.release_dir(version)
        if not source.exists():
            return
        self.ensure_layout()
        trash = self.staging_dir / f"removing-{version}.{os.getpid()}"
        os.rename(source, trash)
        fsync_dir(self.releases_dir)
        shutil.rmtree(trash)
        if self.previous_version() == version:
            self.previous_link.unlink()
            fsync_dir(self.root)
        _LOGGER.info("release removed root=%s version=%s", self.root, version)

    def prune(self, keep: int = DEFAULT_KEEP_RELEASES) -> list[str]:
        """Keep current and previous (up to `keep`), remove the rest; return what was removed."""
        protected = [v for v in (self.current_version(), self.previous_version()) if v][: max(keep, 1)]
        removed = []
        for version in self.versions():
            if version not in protected:
                self.remove_release(version)
                removed.append(version)
        return removed

    def recover(self) -> Recovery:
        """At start: roll back a release that was never confirmed. A running installer (lock held) is left alone."""
        try:
            with self.lock():
                return self.recover_locked()
        except FlashInProgress:
            return Recovery(note="a flash is in progress; it will confirm or roll back itself")

    def recover_locked(self) -> Recovery:
        recovery = self._roll_back_unconfirmed()
        self.clean_staging()
        if self.current_version():
            self.prune()  # a release that is neither current nor previous is a leftover of an interrupted flash
        return recovery

    def _roll_back_unconfirmed(self) -> Recovery:
        pending = self.read_pending()
        if pending is None:
            return Recovery()
        current = self.current_version()
        back_to = pending.previous
        if current == pending.version and back_to and self.release_dir(back_to).is_dir():
            self.switch_to(back_to)
            self.remove_release(pending.version)
            self.clear_pending()
            _LOGGER.warning("unconfirmed release rolled back root=%s from=%s to=%s", self.root, pending.version, back_to)
            return Recovery(
                rolled_back_from=pending.version,
                rolled_back_to=back_to,
                note=f"release {pending.version} was never confirmed healthy; rolled back to {back_to}",
            )
        if current != pending.version:
            # Died before the switch: current is still the old release; drop the half-installed one.
            if pending.version and pending.version != current:
                with contextlib.suppress(BundleRejected):
                    self.remove_release(pending.version)
            self.clear_pending()
            return Recovery(note=f"interrupted install of {pending.version} discarded; {current} stays current")
        self.clear_pending()
        _LOGGER.warning("unconfirmed first release kept root=%s version=%s (nothing to roll back to)", self.root, current)
        return Recovery(note=f"release {current} was never confirmed but there is no earlier release; kept it")
