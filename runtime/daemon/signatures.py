"""Ed25519 signatures over commands: canonical form, signing (for clients and tests), and the box's policy.

Canonical form: `skyvoice-command-v1 <kind>\n` + the JSON object without `signatures`, keys sorted, no spaces,
ASCII escapes. Binding the kind means a signed speak cannot be replayed as an alert.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable, Iterable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.daemon.envelope import AlertCommand, Command, SpeakCommand, StatusCommand
from runtime.errors import BundleRejected, CommandRejected
from runtime.keys import TrustStore, sign_bytes

DOMAIN = "skyvoice-command-v1"


def canonical_bytes(document: dict, kind: str) -> bytes:
    body = {key: value for key, value in document.items() if key != "signatures"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return f"{DOMAIN} {kind}\n{text}".encode("ascii")


def sign_document(document: dict, kind: str, keys: Iterable[Ed25519PrivateKey]) -> dict:
    """A copy of `document` with a `signatures` list, one block per key (what an operator's console does)."""
    data = canonical_bytes(document, kind)
    signed = {key: value for key, value in document.items() if key != "signatures"}
    signed["signatures"] = [sign_bytes(key, data) for key in keys]
    return signed


@dataclass(frozen=True)
class SignaturePolicy:
    """Which commands need signatures, from whom, and how fresh.

    Alerts, cancels and voice installs always need one valid signature from a trusted key; `Actual` alerts need
    two from distinct keys when `actual_requires_two`. Speak needs one only when `require_signed_speak`.
    Alerts are refused when `issued_at` is older than `replay_window_s` or further ahead than `clock_skew_s`.
    """

    trust: TrustStore
    replay_window_s: float = 300.0
    clock_skew_s: float = 30.0
    actual_requires_two: bool = False
    require_signed_speak: bool = False
    clock: Callable[[], float] = time.time

    def check(self, command: Command, document: dict) -> tuple[str, ...]:
        """Return the key ids that signed; raise CommandRejected('bad signature: ...') otherwise."""
        required = self._required_signers(command)
        signatures = command.envelope.signatures
        if required == 0 and not signatures:
            return ()
        if not signatures:
            raise CommandRejected(f"bad signature: a {command.kind} command must be signed by a trusted key")
        data = canonical_bytes(document, command.kind)
        signers: list[str] = []
        for key_id, signature in signatures:
            try:
                signer = self.trust.verify(data, {"key_id": key_id, "signature": signature}, what=f"command {command.envelope.id}")
            except BundleRejected as exc:
                raise CommandRejected(f"bad signature: {exc}") from None
            if signer in signers:
                raise CommandRejected(f"bad signature: key {signer} signed twice; a second signature must come from another key")
            signers.append(signer)
        if len(signers) < required:
            raise CommandRejected(
                f"bad signature: an Actual alert needs {required} signatures from distinct trusted keys, got {len(signers)}"
            )
        if isinstance(command, AlertCommand):
            self._check_fresh(command)
        return tuple(signers)

    def _required_signers(self, command: Command) -> int:
        if isinstance(command, StatusCommand):
            return 0
        if isinstance(command, SpeakCommand):
            return 1 if self.require_signed_speak else 0
        if isinstance(command, AlertCommand) and command.status == "Actual" and self.actual_requires_two:
            return 2
        return 1

    def _check_fresh(self, command: AlertCommand) -> None:
        age = self.clock() - command.envelope.issued_at
        if age > self.replay_window_s:
            raise CommandRejected(
                f"replayed: alert issued {age:.0f} s ago is outside the {self.replay_window_s:.0f} s replay window"
            )
        if age < -self.clock_skew_s:
            raise CommandRejected(f"bad time: alert issued {-age:.0f} s in the future; check the sender's clock")

