"""What this box is: L4T release, TensorRT and CUDA versions, GPU and compute capability.

Each probe reads one source and returns None when the box does not have it (a CPU-only machine reports "none");
probes never raise. Paths and commands are arguments so tests can point them at fixtures.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Optional

_LOGGER = logging.getLogger(__name__)

NV_TEGRA_RELEASE: Final = Path("/etc/nv_tegra_release")
DEVICE_TREE_COMPATIBLE: Final = Path("/proc/device-tree/compatible")
CUDA_VERSION_JSON: Final = Path("/usr/local/cuda/version.json")
_PROBE_TIMEOUT_S: Final = 10.0

# Jetson SoC → (module family, compute capability); from NVIDIA's CUDA GPU tables.
TEGRA_SOCS: Final = {
    "tegra264": ("Jetson Thor", "11.0"),
    "tegra234": ("Jetson Orin", "8.7"),
    "tegra194": ("Jetson Xavier", "7.2"),
    "tegra186": ("Jetson TX2", "6.2"),
    "tegra210": ("Jetson Nano/TX1", "5.3"),
}


@dataclass(frozen=True)
class BoxFacts:
    """What the targets check compares against. None: the box has no such component."""

    l4t: Optional[str] = None  # "36.4.3"
    tensorrt: Optional[str] = None  # "10.3.0.30"
    cuda: Optional[str] = None  # "12.6.68"
    gpu_name: Optional[str] = None  # "Jetson Orin" or "NVIDIA H200"
    compute_capability: Optional[str] = None  # "8.7"


def read_l4t(path: Path = NV_TEGRA_RELEASE) -> Optional[str]:
    """`# R36 (release), REVISION: 4.3, GCID: ...` → "36.4.3"."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([0-9.]+)", text)
    return f"{match.group(1)}.{match.group(2)}" if match else None


def read_tensorrt() -> Optional[str]:
    try:
        import tensorrt  # noqa: PLC0415 (Jetson only; JetPack's python3-libnvinfer)
    except Exception:  # ImportError, or a broken install raising OSError on its shared libraries
        return None
    return str(getattr(tensorrt, "__version__", "unknown"))


def read_cuda(version_json: Path = CUDA_VERSION_JSON) -> Optional[str]:
    try:
        data = json.loads(version_json.read_text())
        return str(data["cuda"]["version"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    nvcc = shutil.which("nvcc")
    if nvcc:
        output = _run([nvcc, "--version"])
        match = re.search(r"release ([0-9.]+)", output or "")
        if match:
            return match.group(1)
    return None


def read_gpu(compatible: Path = DEVICE_TREE_COMPATIBLE, nvidia_smi: Optional[str] = None) -> tuple[Optional[str], Optional[str]]:
    """(name, compute capability) from the Jetson device tree, else from nvidia-smi, else (None, None)."""
    try:
        socs = compatible.read_bytes().decode(errors="replace").split("\0")
    except OSError:
        socs = []
    for entry in socs:
        soc = entry.split(",")[-1]
        if soc in TEGRA_SOCS:
            return TEGRA_SOCS[soc]
    smi = nvidia_smi or shutil.which("nvidia-smi")
    if smi:
        output = _run([smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"])
        if output:
            first = output.strip().splitlines()[0]
            name, _, cap = first.rpartition(",")
            if re.fullmatch(r"\s*\d+\.\d+\s*", cap):
                return name.strip(), cap.strip()
    return None, None


def _run(command: list[str]) -> Optional[str]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=_PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


def probe_box_facts() -> BoxFacts:
    gpu_name, compute_capability = read_gpu()
    facts = BoxFacts(
        l4t=read_l4t(), tensorrt=read_tensorrt(), cuda=read_cuda(), gpu_name=gpu_name, compute_capability=compute_capability
    )
    _LOGGER.info(
        "box facts l4t=%s tensorrt=%s cuda=%s gpu=%s cc=%s",
        facts.l4t, facts.tensorrt, facts.cuda, facts.gpu_name, facts.compute_capability,
    )
    return facts


def version_matches(wanted: str, have: Optional[str]) -> bool:
    """Dotted-prefix match: "36.4" matches "36.4.3", not "36.40"."""
    if have is None:
        return False
    wanted_parts, have_parts = wanted.strip().split("."), have.strip().split(".")
    return have_parts[: len(wanted_parts)] == wanted_parts
