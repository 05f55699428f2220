"""ctypes bindings of the native library (`gpt_step.c`): the functions, their argument types, and which kernel it has."""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Final, Optional

KERNELS: Final = {0: "portable C", 1: "AVX-512 VNNI"}
FAST_KERNELS: Final = frozenset({1})

_f32p = ctypes.POINTER(ctypes.c_float)
_u8p = ctypes.POINTER(ctypes.c_uint8)


class NativeLibrary:
    """One loaded library; `kernel` names the product kernel it was compiled with."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        lib = ctypes.CDLL(str(self.path))  # CDLL calls release the GIL: the decoder stage runs meanwhile
        lib.sv_kernel.restype = ctypes.c_int
        lib.sv_create.restype = ctypes.c_void_p
        lib.sv_create.argtypes = [ctypes.c_int] * 6 + [ctypes.c_float, ctypes.c_float, ctypes.c_int]
        lib.sv_free.restype = None
        lib.sv_free.argtypes = [ctypes.c_void_p]
        lib.sv_set_matrix.restype = ctypes.c_int
        lib.sv_set_matrix.argtypes = [ctypes.c_void_p, ctypes.c_int, _u8p, _f32p, ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.sv_set_vector.restype = ctypes.c_int
        lib.sv_set_vector.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, _f32p, ctypes.c_int]
        lib.sv_set_embedding.restype = ctypes.c_int
        lib.sv_set_embedding.argtypes = [ctypes.c_void_p, _f32p, ctypes.c_int, ctypes.c_int]
        lib.sv_step.restype = ctypes.c_int
        lib.sv_step.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                                ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        self.lib = lib
        self.kernel_id = int(lib.sv_kernel())
        self.kernel = KERNELS.get(self.kernel_id, f"kernel {self.kernel_id}")

    @property
    def fast(self) -> bool:
        """Whether the products use a vector integer dot-product kernel (else the portable loops)."""
        return self.kernel_id in FAST_KERNELS


_LOADED: dict[Path, NativeLibrary] = {}


def load_library(path: Optional[Path] = None) -> NativeLibrary:
    """The library at `path` (default: the one built for this machine); raises OSError when it is not there."""
    from runtime.native.build import library_path

    path = Path(path) if path is not None else library_path()
    if path not in _LOADED:
        if not path.is_file():
            raise OSError(f"{path} is not built (run: python -m runtime.native.build)")
        _LOADED[path] = NativeLibrary(path)
    return _LOADED[path]
