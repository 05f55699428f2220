"""Verify a bundle before it is trusted: signature, format, every file's size and sha256, no extra files, voice
pack signatures, and (on the box) the targets. Each failure is one BundleRejected sentence naming the file."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

from runtime.bundle.box_facts import BoxFacts, version_matches
from runtime.bundle.manifest import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    VOICES_DIR,
    Manifest,
    hash_file,
    listed_files,
    manifest_from_bytes,
)
from runtime.bundle.signing import SIG_SUFFIX, read_signature_block, verify_file
from runtime.errors import BundleRejected
from runtime.keys import TrustStore

_LOGGER = logging.getLogger(__name__)


def check_signature(bundle_dir: Path, trust: TrustStore) -> tuple[bytes, str]:
    """Return manifest.json's exact bytes and the signing key id, or raise naming what is wrong."""
    manifest_path = bundle_dir / MANIFEST_NAME
    try:
        data = manifest_path.read_bytes()
    except FileNotFoundError:
        raise BundleRejected(f"{manifest_path} does not exist; this is not a bundle (build one with 'skyvoice build')") from None
    block = read_signature_block(bundle_dir / SIGNATURE_NAME, what=str(manifest_path))
    key_id = trust.verify(data, block, what=str(manifest_path))
    return data, key_id


def check_files(bundle_dir: Path, manifest_bytes: bytes) -> Manifest:
    """Every listed file present with its size and sha256, and no file the manifest does not list."""
    bundle_dir = Path(bundle_dir)
    manifest = manifest_from_bytes(manifest_bytes, source=str(bundle_dir / MANIFEST_NAME))
    present = set(listed_files(bundle_dir))
    for relative, promised in sorted(manifest.files.items()):
        path = bundle_dir / relative
        if relative not in present:
            raise BundleRejected(f"bundle file {path} listed in the manifest is missing; copy the whole bundle again")
        actual = hash_file(path)
        if actual.size != promised.size:
            raise BundleRejected(
                f"bundle file {path} is {actual.size} bytes but the manifest says {promised.size}; "
                "the copy is truncated or tampered with, copy the bundle again"
            )
        if actual.sha256 != promised.sha256:
            raise BundleRejected(
                f"bundle file {path} has sha256 {actual.sha256[:16]}… but the manifest says {promised.sha256[:16]}…; "
                "the file was altered, copy the bundle again from the signed original"
            )
    extra = sorted(present - set(manifest.files))
    if extra:
        raise BundleRejected(
            f"bundle file {bundle_dir / extra[0]} is not listed in the manifest ({len(extra)} unlisted in all); "
            "remove it or rebuild the bundle"
        )
    return manifest


def check_voices(bundle_dir: Path, trust: TrustStore) -> list[str]:
    """Each `voices/<name>.npz` carries a valid `<name>.npz.sig`; nothing else lives in voices/. Return the names."""
    voices_dir = Path(bundle_dir) / VOICES_DIR
    if not voices_dir.is_dir():
        return []
    names = []
    for path in sorted(voices_dir.iterdir()):
        if path.name.endswith(".npz"):
            verify_file(path, trust)
            names.append(path.name[: -len(".npz")])
        elif path.name.endswith(".npz" + SIG_SUFFIX):
            if not path.with_name(path.name[: -len(SIG_SUFFIX)]).is_file():
                raise BundleRejected(f"voice signature {path} has no voice pack beside it; remove it")
        else:
            raise BundleRejected(f"bundle file {path} is neither a voice pack (.npz) nor its signature; remove it")
    return names


def check_targets(manifest: Manifest, facts: BoxFacts) -> None:
    """Refuse a bundle built for another L4T release, GPU or TensorRT; an ONNX-only bundle (no targets) runs anywhere."""
    targets = manifest.targets
    checks = (
        ("l4t", "L4T release", targets.l4t, facts.l4t, "flash a box with that JetPack or build an ONNX-only bundle"),
        (
            "compute_capability",
            "GPU compute capability",
            targets.compute_capability,
            facts.compute_capability,
            "build engines for this module or ship an ONNX-only bundle",
        ),
        ("tensorrt", "TensorRT version", targets.tensorrt, facts.tensorrt, "build the bundle for this box's TensorRT"),
    )
    for key, label, wanted, have, fix in checks:
        if wanted and not any(version_matches(w, have) for w in wanted):
            raise BundleRejected(
                f"bundle {manifest.bundle_version} targets {label} {'/'.join(wanted)} (manifest targets.{key}) "
                f"but this box has {have or 'none'}; {fix}"
            )


def verify_bundle(bundle_dir: str | os.PathLike, trust: TrustStore, *, facts: Optional[BoxFacts] = None) -> Manifest:
    """Signature over manifest.json's exact bytes, then files, voices and (when facts are given) targets."""
    bundle_dir = Path(bundle_dir)
    if not bundle_dir.is_dir():
        raise BundleRejected(f"bundle {bundle_dir} is not a directory")
    data, key_id = check_signature(bundle_dir, trust)
    manifest = check_files(bundle_dir, data)
    voices = check_voices(bundle_dir, trust)
    if facts is not None:
        check_targets(manifest, facts)
    _LOGGER.info(
        "bundle verified bundle=%s version=%s key_id=%s files=%d voices=%d",
        bundle_dir, manifest.bundle_version, key_id, len(manifest.files), len(voices),
    )
    return manifest
