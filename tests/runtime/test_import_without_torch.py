"""The box has no torch: importing runtime/ and device/ (every module) and `skyvoice --help` must not need it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["torch"] = None  # any `import torch` now raises ImportError
    import importlib, pkgutil
    import runtime, device
    for package in (runtime, device):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if ".trt" in info.name or "trt_runner" in info.name:
                continue  # tensorrt/pycuda are lazy imports on the Jetson
            importlib.import_module(info.name)
    from runtime.cli import build_parser
    build_parser().format_help()
    print("ok")
    """
)


def test_runtime_and_device_import_without_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")
