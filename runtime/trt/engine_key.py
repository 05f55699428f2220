"""Engine keys: what a TensorRT engine was built for, stored beside it as `<graph>.engine.key.json`.

An engine plan runs only on the exact TensorRT version (major.minor.patch.build) and GPU it was built for, and is
only right for the exact ONNX file it came from. The key records {TensorRT version, CUDA version, L4T release,
JetPack release, GPU name and compute capability, ONNX sha256, optimization profiles, precision}. The runtime compares
the stored key with this box and the bundle's ONNX; any difference is a named reason to rebuild and to fall back
to ONNX Runtime meanwhile. Platform probing imports tensorrt/pycuda lazily; everything else is pure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Final, Mapping

from runtime.errors import SkyvoiceError

_LOGGER = logging.getLogger(__name__)

KEY_FORMAT_VERSION: Final = 1
KEY_SUFFIX: Final = ".key.json"

# L4T (Jetson Linux) release prefix -> JetPack release (research notes §2).
_JETPACK_BY_L4T: Final = (
    ("39.2", "7.2"),
    ("38.4", "7.1"),
    ("38.2", "7.0"),
    ("36.5", "6.2.2"),
    ("36.4.4", "6.2.1"),
    ("36.4", "6.1/6.2"),
    ("36.3", "6.0"),
    ("35.4", "5.1.2"),
    ("35.3", "5.1.1"),
)

Profiles = Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]


class EngineKeyError(SkyvoiceError):
    """An engine key file is missing, unreadable or of an unknown format."""


@dataclass(frozen=True)
class PlatformInfo:
    """The parts of the key that describe the machine, not the graph (field names as in `runtime/bundle/box_facts.py`)."""

    tensorrt: str  # "10.3.0.30"
    cuda: str  # "12.6.68"
    l4t: str  # "36.4.3"; "" off Jetson
    jetpack: str  # "6.1/6.2"; "" off Jetson or when the L4T release is not in the table
    gpu_name: str  # "Jetson Orin"
    compute_capability: str  # "8.7" on Orin


@dataclass(frozen=True)
class EngineKey:
    platform: PlatformInfo
    graph: str
    onnx_file: str  # relative to the bundle, e.g. "graphs/gpt_prefill.onnx"
    onnx_sha256: str
    precision: str  # "fp32", "fp16" or "int8" (int8 = Q/DQ in the ONNX, FP16 elsewhere)
    profiles: Mapping[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "format_version": KEY_FORMAT_VERSION,
            "graph": self.graph,
            "onnx_file": self.onnx_file,
            "onnx_sha256": self.onnx_sha256,
            "precision": self.precision,
            "profiles": {name: [list(dims) for dims in shapes] for name, shapes in sorted(self.profiles.items())},
            **asdict(self.platform),
        }

    @classmethod
    def from_dict(cls, data: Mapping, source: str = "key") -> "EngineKey":
        if data.get("format_version") != KEY_FORMAT_VERSION:
            raise EngineKeyError(f"{source} has format_version {data.get('format_version')!r}, expected {KEY_FORMAT_VERSION}; rebuild the engine")
        try:
            platform = PlatformInfo(**{name: str(data[name]) for name in PlatformInfo.__dataclass_fields__})
            profiles = {
                name: tuple(tuple(int(v) for v in dims) for dims in shapes) for name, shapes in data["profiles"].items()
            }
            return cls(
                platform, str(data["graph"]), str(data["onnx_file"]), str(data["onnx_sha256"]), str(data["precision"]), profiles
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EngineKeyError(f"{source} lacks or garbles field {exc}; rebuild the engine with 'skyvoice engines build'") from exc


@dataclass(frozen=True)
class KeyMatch:
    ok: bool
    reasons: tuple[str, ...] = ()

    def __str__(self) -> str:
        return "match" if self.ok else "; ".join(self.reasons)


def key_path(engine_path: str | os.PathLike) -> Path:
    return Path(str(engine_path) + KEY_SUFFIX)


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(chunk)
    return digest.hexdigest()


def graph_sha256(path: str | os.PathLike) -> str:
    """The identity of a graph for engine keys: its file's sha256, combined with every external-data file it reads
    (the GPT graphs keep their weights in a shared graphs/gpt_weights.bin), so new weights make an engine stale."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path), load_external_data=False)
    locations = sorted({
        entry.value for tensor in model.graph.initializer if tensor.data_location == onnx.TensorProto.EXTERNAL
        for entry in tensor.external_data if entry.key == "location"
    })
    if not locations:
        return file_sha256(path)
    digest = hashlib.sha256(file_sha256(path).encode())
    for location in locations:
        digest.update(f"{location}:{file_sha256(path.parent / location)}".encode())
    return digest.hexdigest()


def write_key(engine_path: str | os.PathLike, key: EngineKey) -> Path:
    path = key_path(engine_path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(key.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_key(engine_path: str | os.PathLike) -> EngineKey:
    path = key_path(engine_path)
    if not path.is_file():
        raise EngineKeyError(f"engine key {path} is missing; rebuild the engine with 'skyvoice engines build'")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise EngineKeyError(f"engine key {path} is unreadable ({exc}); rebuild the engine with 'skyvoice engines build'") from exc
    if not isinstance(data, dict):
        raise EngineKeyError(f"engine key {path} is not a JSON object; rebuild the engine with 'skyvoice engines build'")
    return EngineKey.from_dict(data, source=str(path))


def compare_keys(stored: EngineKey, platform: PlatformInfo, onnx_sha256: str) -> KeyMatch:
    """Does an engine built under `stored` run here, for this ONNX? Each difference becomes one reason."""
    reasons = []
    for name in PlatformInfo.__dataclass_fields__:
        built, here = getattr(stored.platform, name), getattr(platform, name)
        if built != here:
            reasons.append(f"{name} differs (engine built with {built or 'none'}, this box has {here or 'none'})")
    if stored.onnx_sha256 != onnx_sha256:
        reasons.append(f"the ONNX graph changed (engine built from sha256 {stored.onnx_sha256[:12]}, bundle has {onnx_sha256[:12]})")
    return KeyMatch(not reasons, tuple(reasons))


def check_engine(engine_path: str | os.PathLike, platform: PlatformInfo, onnx_sha256: str) -> KeyMatch:
    """Match an engine file and its key against this box and the bundle's ONNX, never raising."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return KeyMatch(False, (f"no engine at {engine_path}",))
    try:
        stored = read_key(engine_path)
    except EngineKeyError as exc:
        return KeyMatch(False, (str(exc),))
    return compare_keys(stored, platform, onnx_sha256)


def jetpack_for_l4t(l4t_release: str) -> str:
    for prefix, jetpack in _JETPACK_BY_L4T:
        if l4t_release == prefix or l4t_release.startswith(prefix + "."):
            return jetpack
    return ""


def platform_from_facts(facts) -> PlatformInfo:
    """A PlatformInfo from `runtime.bundle.box_facts.BoxFacts`; raises EngineKeyError where TensorRT cannot run."""
    if not facts.tensorrt:
        raise EngineKeyError("the tensorrt Python module does not import on this box; on JetPack use a venv with --system-site-packages")
    if not facts.compute_capability:
        raise EngineKeyError("no NVIDIA GPU found (device tree, nvidia-smi); TensorRT engines need one")
    l4t = facts.l4t or ""
    return PlatformInfo(
        tensorrt=facts.tensorrt,
        cuda=facts.cuda or "",
        l4t=l4t,
        jetpack=jetpack_for_l4t(l4t),
        gpu_name=facts.gpu_name or "",
        compute_capability=facts.compute_capability,
    )


def probe_platform() -> PlatformInfo:
    """This box's TensorRT, CUDA, L4T and GPU (imports tensorrt); raises EngineKeyError where TensorRT cannot run."""
    from runtime.bundle.box_facts import probe_box_facts

    return platform_from_facts(probe_box_facts())
