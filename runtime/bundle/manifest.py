"""`manifest.json`: read, write and hash. Pure file I/O; signatures live in `signing.py`, checks in `verify.py`.

The manifest lists every file of the bundle except itself, its signature, `voices/` (voice packs carry their own
signature) and `engines/` (built on the box, checked by their key).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Mapping, Optional

from runtime.errors import BundleRejected

_LOGGER = logging.getLogger(__name__)

FORMAT_VERSION: Final = 1
MANIFEST_NAME: Final = "manifest.json"
SIGNATURE_NAME: Final = "manifest.sig"
VOICES_DIR: Final = "voices"
ENGINES_DIR: Final = "engines"
UNLISTED_DIRS: Final = (VOICES_DIR, ENGINES_DIR)
TARGET_KEYS: Final = ("l4t", "compute_capability", "tensorrt")
_VERSION_RE: Final = re.compile(r"^[0-9]+(\.[0-9]+){0,5}$")
_HASH_CHUNK_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class FileEntry:
    """What the manifest promises about one file."""

    sha256: str
    size: int


@dataclass(frozen=True)
class Targets:
    """Where a bundle may run. An empty tuple means "any": an ONNX-only bundle runs anywhere and builds its engines on
    the box. Values are release prefixes: l4t "36.4" matches R36.4.3, tensorrt "10.3" matches 10.3.0.30."""

    l4t: tuple[str, ...] = ()
    compute_capability: tuple[str, ...] = ()
    tensorrt: tuple[str, ...] = ()

    @property
    def onnx_only(self) -> bool:
        return not (self.l4t or self.compute_capability or self.tensorrt)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest; `raw` keeps every field (model config, graphs, fidelity, tools) for other readers."""

    format_version: int
    bundle_version: str
    model_version: str
    created_at: str
    files: Mapping[str, FileEntry]
    targets: Targets
    graphs: Mapping[str, Mapping[str, Any]]
    raw: Mapping[str, Any] = field(repr=False)


def parse_version(text: str) -> tuple[int, ...]:
    """`"2026.12.2"` → (2026, 12, 2); the order of releases for anti-rollback."""
    if not isinstance(text, str) or not _VERSION_RE.match(text):
        raise BundleRejected(
            f"bundle_version {text!r} is not dotted numbers like '1.4.0' or '2026.12.02.0500'; fix it in the build"
        )
    return tuple(int(part) for part in text.split("."))


def default_bundle_version(now: Optional[float] = None) -> str:
    """A version that grows with build time: YYYY.MM.DD.HHMMSS (UTC)."""
    return time.strftime("%Y.%m.%d.%H%M%S", time.gmtime(now))


def hash_file(path: str | os.PathLike) -> FileEntry:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return FileEntry(sha256=digest.hexdigest(), size=size)


def is_listed_path(relative: str) -> bool:
    """True for paths the manifest must list (everything but the manifest, its signature, voices/ and engines/)."""
    if relative in (MANIFEST_NAME, SIGNATURE_NAME):
        return False
    return relative.split("/", 1)[0] not in UNLISTED_DIRS


def walk_bundle(bundle_dir: str | os.PathLike) -> list[str]:
    """Every regular file under bundle_dir as a sorted relative POSIX path; a symlink or special file is refused."""
    bundle_dir = Path(bundle_dir)
    found = []
    for dirpath, dirnames, filenames in os.walk(bundle_dir):
        dirnames.sort()
        for name in list(dirnames) + filenames:
            path = Path(dirpath) / name
            relative = path.relative_to(bundle_dir).as_posix()
            if path.is_symlink():
                raise BundleRejected(f"bundle file {relative} is a symbolic link; bundles hold regular files only")
            if name in filenames:
                if not path.is_file():
                    raise BundleRejected(f"bundle file {relative} is not a regular file; remove it from the bundle")
                found.append(relative)
    return sorted(found)


def listed_files(bundle_dir: str | os.PathLike) -> list[str]:
    return [relative for relative in walk_bundle(bundle_dir) if is_listed_path(relative)]


def _tuple_of_strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BundleRejected(f"manifest field {where} must be a list of strings such as [\"36.4\"]")
    return tuple(value)


def parse_targets(value: Any) -> Targets:
    if value is None:
        return Targets()
    if not isinstance(value, dict):
        raise BundleRejected("manifest field 'targets' must be an object with keys l4t, compute_capability, tensorrt")
    unknown = sorted(set(value) - set(TARGET_KEYS))
    if unknown:
        raise BundleRejected(f"manifest field 'targets' has unknown keys {unknown}; allowed: {list(TARGET_KEYS)}")
    return Targets(**{key: _tuple_of_strings(value.get(key), f"targets.{key}") for key in TARGET_KEYS})


def manifest_from_bytes(data: bytes, *, source: str = MANIFEST_NAME) -> Manifest:
    """Parse manifest bytes; every problem is one BundleRejected sentence naming the field."""
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleRejected(f"{source} is not valid UTF-8 JSON ({exc}); rebuild the bundle") from None
    if not isinstance(raw, dict):
        raise BundleRejected(f"{source} must hold a JSON object; rebuild the bundle")
    if raw.get("format_version") != FORMAT_VERSION:
        raise BundleRejected(
            f"{source} has format_version {raw.get('format_version')!r} but this skyvoice reads only {FORMAT_VERSION}; "
            "rebuild the bundle with a matching skyvoice or update the box"
        )
    bundle_version = raw.get("bundle_version")
    parse_version(bundle_version)
    files_raw = raw.get("files")
    if not isinstance(files_raw, dict):
        raise BundleRejected(f"{source} has no 'files' object; rebuild the bundle with 'skyvoice build'")
    files = {}
    for relative, entry in files_raw.items():
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("sha256"), str)
            or not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"])
            or not isinstance(entry.get("size"), int)
            or entry["size"] < 0
        ):
            raise BundleRejected(f"{source} entry files[{relative!r}] needs a 64-hex 'sha256' and an integer 'size'")
        if relative.startswith("/") or ".." in relative.split("/") or "\\" in relative or not is_listed_path(relative):
            raise BundleRejected(f"{source} lists the path {relative!r}, which is outside what a manifest may list")
        files[relative] = FileEntry(sha256=entry["sha256"], size=entry["size"])
    graphs = raw.get("graphs") or {}
    if not isinstance(graphs, dict):
        raise BundleRejected(f"{source} field 'graphs' must be an object of graph name to description")
    return Manifest(
        format_version=FORMAT_VERSION,
        bundle_version=bundle_version,
        model_version=str(raw.get("model_version", "")),
        created_at=str(raw.get("created_at", "")),
        files=files,
        targets=parse_targets(raw.get("targets")),
        graphs=graphs,
        raw=raw,
    )


def read_manifest(bundle_dir: str | os.PathLike) -> Manifest:
    path = Path(bundle_dir) / MANIFEST_NAME
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleRejected(f"{path} does not exist; this is not a bundle (build one with 'skyvoice build')") from None
    return manifest_from_bytes(data, source=str(path))


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write JSON to a temp file, fsync, rename over path, fsync the directory."""
    path = Path(path)
    data = (json.dumps(value, indent=2, sort_keys=True) + "\n").encode("utf-8")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def fsync_dir(directory: str | os.PathLike) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(bundle_dir: str | os.PathLike, meta: Mapping[str, Any]) -> Path:
    """Write `manifest.json` from meta (model config, graphs, tools, targets...), filling `files` by hashing.

    Sets format_version, and created_at / bundle_version when meta has none. A stale `manifest.sig` is removed:
    the bundle must be signed again (`skyvoice bundle sign`).
    """
    bundle_dir = Path(bundle_dir)
    manifest = dict(meta)
    manifest["format_version"] = FORMAT_VERSION
    manifest.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    manifest.setdefault("bundle_version", default_bundle_version())
    parse_version(manifest["bundle_version"])
    parse_targets(manifest.get("targets"))
    files = {}
    for relative in listed_files(bundle_dir):
        entry = hash_file(bundle_dir / relative)
        files[relative] = {"sha256": entry.sha256, "size": entry.size}
    manifest["files"] = files
    path = bundle_dir / MANIFEST_NAME
    write_json_atomic(path, manifest)
    stale_signature = bundle_dir / SIGNATURE_NAME
    if stale_signature.exists():
        stale_signature.unlink()
        _LOGGER.info("stale signature removed bundle=%s", bundle_dir)
    _LOGGER.info("manifest written bundle=%s files=%d version=%s", bundle_dir, len(files), manifest["bundle_version"])
    return path
