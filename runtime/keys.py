"""Ed25519 keys shared by bundle signing and alert signatures.

Private key: `<name>.key`, PEM PKCS#8, mode 0600. Public key: `<name>.pub`, one line of base64 of the raw 32 bytes.
A key id is the first 16 hex digits of sha256(raw public key). A trust store is a directory of `.pub` files.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from runtime.errors import BundleRejected, ConfigError


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def generate_keypair(out_dir: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Write `<name>.key` (0600) and `<name>.pub` into out_dir; refuse to overwrite an existing key."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path, public_path = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if private_path.exists() or public_path.exists():
        raise ConfigError(f"key '{name}' already exists in {out_dir}; choose another name or remove it first")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    public_path.write_text(base64.b64encode(public_raw(private.public_key())).decode() + "\n")
    return private_path, public_path


def load_private_key(path: str | os.PathLike) -> Ed25519PrivateKey:
    path = Path(path)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise ConfigError(f"private key file {path} does not exist; create one with 'skyvoice keys new'") from None
    except ValueError as exc:
        raise ConfigError(f"private key file {path} is not a PEM Ed25519 key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"private key file {path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike) -> Ed25519PublicKey:
    path = Path(path)
    try:
        raw = base64.b64decode(path.read_text().strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except FileNotFoundError:
        raise ConfigError(f"public key file {path} does not exist") from None
    except (ValueError, binascii.Error):
        raise ConfigError(f"public key file {path} is not one line of base64 of a 32-byte Ed25519 key") from None


def sign_bytes(private: Ed25519PrivateKey, data: bytes) -> dict[str, str]:
    """Return the signature block {"key_id", "signature"} (signature base64)."""
    return {"key_id": key_id_of(private.public_key()), "signature": base64.b64encode(private.sign(data)).decode()}


@dataclass
class TrustStore:
    """Public keys trusted by this box, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> "TrustStore":
        directory = Path(directory)
        if not directory.is_dir():
            raise ConfigError(f"trusted key directory {directory} does not exist")
        return cls.from_files(sorted(directory.glob("*.pub")))

    @classmethod
    def from_files(cls, paths: Iterable[str | os.PathLike]) -> "TrustStore":
        keys = {}
        for path in paths:
            key = load_public_key(path)
            keys[key_id_of(key)] = key
        return cls(keys)

    def verify(self, data: bytes, block: dict, *, what: str) -> str:
        """Check one signature block over data; return its key id or raise BundleRejected naming `what`."""
        if not isinstance(block, dict) or not isinstance(block.get("key_id"), str) or not isinstance(block.get("signature"), str):
            raise BundleRejected(f"{what}: the signature block must have string fields 'key_id' and 'signature'")
        key = self.keys.get(block["key_id"])
        if key is None:
            raise BundleRejected(f"{what}: key id {block['key_id']} is not among this box's trusted keys")
        try:
            key.verify(base64.b64decode(block["signature"], validate=True), data)
        except (InvalidSignature, ValueError, binascii.Error):
            raise BundleRejected(f"{what}: the signature by key {block['key_id']} does not match the content") from None
        return block["key_id"]
