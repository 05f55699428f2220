"""Compile `gpt_step.c` into a shared library for this machine: `python -m runtime.native.build`.

The library is built with `-march=native`, so its name carries a digest of the source, the flags and this CPU's
feature flags: a library built on another CPU (a venv copied between machines) is never loaded, it is rebuilt.
It lies in `runtime/native/_build/` beside the source, or in `$SKYVOICE_NATIVE_DIR`.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final, Optional

SOURCE: Final = Path(__file__).with_name("gpt_step.c")
FLAGS: Final = ("-O3", "-march=native", "-fPIC", "-shared", "-pthread", "-std=gnu11")
PORTABLE_FLAGS: Final = tuple(flag for flag in FLAGS if flag != "-march=native")  # the portable loops only (tests)
LIBS: Final = ("-lm",)
STEM: Final = "libskyvoice_gpt_step"


class NativeBuildError(RuntimeError):
    """The C compiler is missing or failed."""


def library_dir() -> Path:
    return Path(os.environ.get("SKYVOICE_NATIVE_DIR") or Path(__file__).with_name("_build"))


def _cpu_features() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as info:
            for line in info:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.machine() + " " + platform.processor()


def library_path(directory: Optional[Path] = None, portable: bool = False) -> Path:
    """Where the library for this source, these flags and this CPU lies (it may not exist)."""
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(_flags(portable) + LIBS).encode(), _cpu_features().encode()):
        digest.update(part)
        digest.update(b"\0")
    return (directory or library_dir()) / f"{STEM}-{digest.hexdigest()[:16]}.so"


def compiler() -> Optional[str]:
    """$CC, else cc, gcc or clang on PATH; None when there is none."""
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc", "clang"]
    for name in names:
        path = shutil.which(shlex.split(name)[0]) if name else None
        if path:
            return name
    return None


def _flags(portable: bool) -> tuple[str, ...]:
    return PORTABLE_FLAGS if portable else FLAGS


def build(directory: Optional[Path] = None, force: bool = False, portable: bool = False) -> Path:
    """Compile the library (unless it is already there) and return its path; raises NativeBuildError.
    `portable` leaves out -march=native (the portable C loops: what a CPU without a vector kernel runs)."""
    target = library_path(directory, portable)
    if target.is_file() and not force:
        return target
    cc = compiler()
    if cc is None:
        raise NativeBuildError("no C compiler found (set CC, or install gcc); the decode step will run on ONNX Runtime")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        out = Path(scratch) / target.name
        command = [*shlex.split(cc), *_flags(portable), "-o", str(out), str(SOURCE), *LIBS]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NativeBuildError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        os.replace(out, target)  # atomic: a reader never sees half a library
    current = {library_path(directory, False).name, library_path(directory, True).name}
    for stale in target.parent.glob(f"{STEM}-*.so"):  # built from an older source or on another CPU
        if stale.name not in current:
            stale.unlink(missing_ok=True)
    return target


def main(argv: Optional[list[str]] = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m runtime.native.build", description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="compile even if the library is already there")
    args = parser.parse_args(argv)
    try:
        path = build(force=args.force)
    except (NativeBuildError, OSError) as exc:
        print(f"skyvoice: the native decode step was not built: {exc}", file=sys.stderr)
        return 1
    from runtime.native.library import load_library

    library = load_library(path)
    print(f"native decode step: {path} (kernel: {library.kernel})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
