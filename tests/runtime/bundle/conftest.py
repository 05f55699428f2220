"""Tiny signed bundles made here: Identity ONNX graphs named like the real ones, a voice pack, a manifest, keys."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from runtime.bundle.manifest import write_manifest
from runtime.bundle.signing import sign_bundle
from runtime.keys import TrustStore, generate_keypair

GRAPH_NAMES = ("gpt_prefill", "gpt_decode_step", "sovits_decoder", "ref_encoder")


@dataclass(frozen=True)
class Keys:
    private: Path
    trust_dir: Path
    trust: TrustStore


def identity_graph_bytes(name: str) -> bytes:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], name, [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="skyvoice-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def voice_pack_bytes(name: str = "captain", lang: str = "en") -> bytes:
    meta = json.dumps({"name": name, "lang": lang, "ref_text": "hello", "sovits": "0" * 64, "created_at": "2026-12-02T05:00:00Z"})
    buffer = io.BytesIO()
    np.savez(
        buffer,
        prompt_tokens=np.arange(8, dtype=np.int16),
        prompt_phones=np.arange(5, dtype=np.int16),
        ge=np.ones(16, dtype=np.float32),
        meta=np.array(meta),
    )
    return buffer.getvalue()


def write_bundle(
    directory: Path,
    keys: Optional[Keys],
    *,
    version: str = "1.0.0",
    targets: Optional[dict] = None,
    voices: tuple[str, ...] = ("captain",),
    graph_bytes: Optional[Callable[[str], bytes]] = None,
) -> Path:
    """Write a complete bundle into `directory`, signed with keys.private when keys are given."""
    (directory / "graphs").mkdir(parents=True, exist_ok=True)
    graphs = {}
    for name in GRAPH_NAMES:
        (directory / "graphs" / f"{name}.onnx").write_bytes((graph_bytes or identity_graph_bytes)(name))
        graphs[name] = {"file": f"graphs/{name}.onnx", "precision": "fp32"}
    if voices:
        (directory / "voices").mkdir(exist_ok=True)
        for voice in voices:
            (directory / "voices" / f"{voice}.npz").write_bytes(voice_pack_bytes(voice))
    meta = {"bundle_version": version, "model_version": "v2", "graphs": graphs, "tools": {"skyvoice": "test"}}
    if targets is not None:
        meta["targets"] = targets
    write_manifest(directory, meta)
    if keys is not None:
        sign_bundle(directory, keys.private)
    return directory


@pytest.fixture(scope="session")
def keys(tmp_path_factory) -> Keys:
    directory = tmp_path_factory.mktemp("keys")
    private, _ = generate_keypair(directory / "private", "release")
    generate_keypair(directory / "other", "intruder")
    trust_dir = directory / "trusted"
    trust_dir.mkdir()
    (trust_dir / "release.pub").write_bytes((directory / "private" / "release.pub").read_bytes())
    return Keys(private=private, trust_dir=trust_dir, trust=TrustStore.from_dir(trust_dir))


@pytest.fixture(scope="session")
def intruder_key(keys, tmp_path_factory) -> Path:
    return keys.private.parent.parent / "other" / "intruder.key"


@pytest.fixture
def make_bundle(tmp_path, keys) -> Callable[..., Path]:
    def make(version: str = "1.0.0", **kwargs) -> Path:
        return write_bundle(tmp_path / f"bundle-{version}", keys, version=version, **kwargs)

    return make


@pytest.fixture
def pack_bytes() -> Callable[..., bytes]:
    return voice_pack_bytes


@pytest.fixture
def bundle_writer() -> Callable[..., Path]:
    return write_bundle


@pytest.fixture
def identity_graph() -> Callable[[str], bytes]:
    return identity_graph_bytes
