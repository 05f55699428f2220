"""The GPT decode step on the native library (`runtime/native/gpt_step.c`) instead of ONNX Runtime.

A bundle's `gpt_decode_step.onnx` whose products are 8-bit `MatMulNBits` weights (the `int8_column` and
`int8_block` GPT forms) is read here into the native step: the same weights, scales, biases, layer norms, token
embedding and position scale, found by the parameter names the export keeps. The step computes what the graph
computes (the products quantize their input row per block as `MatMulNBits` does at accuracy level 4), in one call per
token: it streams the int8 weights once, where ORT's one-row kernels run at about half the memory's speed, and
skips the graph's ~1,000 small nodes. Graphs it does not recognise (FP32, `int8_dynamic`) stay on ONNX Runtime.

`NativeStepRunner` has the `bind` / `run` interface `HostKvCache` drives an `OrtRunner` through, so the KV cache,
its buckets and the loop are the same code for both.

Choice (`SKYVOICE_DECODE_STEP`): `auto` (default) takes the native step when its library is built for this CPU with
a vector dot-product kernel and the graph is one it reads, else ONNX Runtime; `native` insists (an error if it
cannot); `ort` never uses it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
from pathlib import Path
from typing import Callable, Final, Mapping, Optional, Sequence

import numpy as np

from runtime.errors import SynthesisError

_LOGGER = logging.getLogger(__name__)

STEP_CHOICES: Final = ("auto", "native", "ort")
EMBEDDING: Final = "model.ar_audio_embedding.word_embeddings.weight"
POSITION_ALPHA: Final = "model.ar_audio_position.alpha"
_BIAS_ROLES: Final = {"self_attn.in_proj_bias": 0, "self_attn.out_proj.bias": 1, "linear1.bias": 2, "linear2.bias": 3}
_VECTORS: Final = ("self_attn.in_proj_bias", "self_attn.out_proj.bias", "linear1.bias", "linear2.bias",
                   "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias")
_LAYER_PARAM: Final = re.compile(r"^model\.h\.layers\.(\d+)\.(.+)$")


class NativeStepUnavailable(Exception):
    """The native step cannot serve this graph or this machine; the message says why."""


def step_choice() -> str:
    """SKYVOICE_DECODE_STEP, checked."""
    value = os.environ.get("SKYVOICE_DECODE_STEP", "auto").strip().lower() or "auto"
    if value not in STEP_CHOICES:
        raise SynthesisError(f"SKYVOICE_DECODE_STEP={value!r} must be one of {', '.join(STEP_CHOICES)}")
    return value


def _ptr(array: np.ndarray, ctype) -> ctypes.POINTER:
    return array.ctypes.data_as(ctypes.POINTER(ctype))


class NativeStepRunner:
    """One decode-step graph loaded into the native library (see the module doc)."""

    def __init__(self, graph_path: str | os.PathLike, *, n_head: int, threads: int, library=None) -> None:
        import onnx
        from onnx import numpy_helper

        from runtime.native.library import load_library

        self.graph_path = Path(graph_path)
        try:
            self.library = library or load_library()
        except OSError as exc:
            raise NativeStepUnavailable(str(exc)) from None
        try:
            model = onnx.load(str(self.graph_path), load_external_data=False)
        except Exception as exc:  # onnx raises DecodeError and others on a corrupt file
            raise SynthesisError(f"{self.graph_path} cannot be read: {exc}; rebuild the bundle") from exc
        graph = model.graph
        initializers = {init.name: init for init in graph.initializer}
        base_dir = str(self.graph_path.parent)

        def array(name: str) -> np.ndarray:
            try:
                return numpy_helper.to_array(initializers[name], base_dir=base_dir)
            except KeyError:
                raise NativeStepUnavailable(f"the graph has no initializer {name}") from None

        products = [node for node in graph.node if node.op_type == "MatMulNBits"]
        if not products:
            raise NativeStepUnavailable("the graph has no 8-bit MatMulNBits products (an FP32 or int8_dynamic GPT)")
        norms = [node for node in graph.node if node.op_type == "LayerNormalization"]
        epsilons = {onnx.helper.get_attribute_value(a) for node in norms for a in node.attribute if a.name == "epsilon"}
        if len(epsilons) != 1:
            raise NativeStepUnavailable(f"the graph's layer norms do not share one epsilon ({sorted(epsilons)})")
        layers = sorted({int(m.group(1)) for name in initializers if (m := _LAYER_PARAM.match(name))})
        if not layers or layers != list(range(len(layers))):
            raise NativeStepUnavailable("the graph's parameters are not named model.h.layers.<i>.* (not a skyvoice export)")
        n_layer = len(layers)
        embedding = np.ascontiguousarray(array(EMBEDDING), dtype=np.float32)
        alpha = float(array(POSITION_ALPHA).reshape(-1)[0])
        emb_rows, d_model = embedding.shape
        logits = next((o for o in graph.output if o.name == "logits"), None)
        dims = [d.dim_value for d in logits.type.tensor_type.shape.dim] if logits is not None else []
        if not dims or dims[-1] <= 0:
            raise NativeStepUnavailable("the graph declares no static logits width")
        vocab = int(dims[-1])
        ff = int(array(f"model.h.layers.0.{_VECTORS[2]}").size)
        if d_model % n_head:
            raise NativeStepUnavailable(f"d_model {d_model} is not a multiple of n_head {n_head}")

        # Which product is which: by the bias it adds (the export keeps the parameter names); the logits product
        # is the one with no bias and the vocabulary's width.
        slots: dict[int, object] = {}
        for node in products:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            if attrs.get("bits") != 8 or (len(node.input) > 3 and node.input[3]) or (len(node.input) > 4 and node.input[4]):
                raise NativeStepUnavailable(f"product {node.name} is not a symmetric 8-bit MatMulNBits without g_idx")
            bias = node.input[5] if len(node.input) > 5 else ""
            match = _LAYER_PARAM.match(bias) if bias else None
            if match and match.group(2) in _BIAS_ROLES:
                slot = int(match.group(1)) * 4 + _BIAS_ROLES[match.group(2)]
            elif not bias and int(attrs["N"]) == vocab:
                slot = n_layer * 4
            else:
                raise NativeStepUnavailable(f"product {node.name} (bias {bias or 'none'}) has no known role")
            if slot in slots:
                raise NativeStepUnavailable(f"two products fill the same role ({node.name})")
            slots[slot] = (node, attrs)
        if sorted(slots) != list(range(n_layer * 4 + 1)):
            raise NativeStepUnavailable(f"the graph has {len(slots)} recognised products, not {n_layer * 4 + 1}")

        handle = self.library.lib.sv_create(n_layer, d_model, n_head, ff, vocab, emb_rows, float(epsilons.pop()), alpha, max(1, int(threads)))
        if not handle:
            raise NativeStepUnavailable("the native library refused the model's sizes or is out of memory")
        self._handle = ctypes.c_void_p(handle)
        self._free = self.library.lib.sv_free
        try:
            self._load(slots, array, embedding, n_layer, d_model)
        except BaseException:
            self.close()
            raise
        self.n_layer, self.d_model, self.n_head, self.vocab = n_layer, d_model, n_head, vocab
        self.logits_columns = vocab
        self.threads = max(1, int(threads))
        self.backend = f"native-int8 ({self.library.kernel}, {self.threads} threads)"

    def _load(self, slots, array, embedding, n_layer: int, d_model: int) -> None:
        from runtime.synth.weight_views import iter_weight_views

        lib, handle = self.library.lib, self._handle
        by_weight = {node.input[1]: slot for slot, (node, _) in slots.items()}
        loaded = set()

        def put(slot: int, weight: np.ndarray) -> None:
            node, attrs = slots[slot]
            k, n, block = int(attrs["K"]), int(attrs["N"]), int(attrs["block_size"])
            blocks = -(-k // block)
            weight = np.ascontiguousarray(weight, dtype=np.uint8).reshape(n, blocks * block)
            scales = np.ascontiguousarray(array(node.input[2]), dtype=np.float32).reshape(n, blocks)
            if lib.sv_set_matrix(handle, slot, _ptr(weight, ctypes.c_uint8), _ptr(scales, ctypes.c_float), k, n, block) != 0:
                raise NativeStepUnavailable(f"the native library refused product {node.name} ({k}x{n}, block {block})")
            loaded.add(slot)

        for name, view in iter_weight_views(self.graph_path):  # views are made one at a time: no second copy of all
            if name in by_weight:
                put(by_weight[name], view)
        for slot, (node, _) in slots.items():
            if slot not in loaded:
                put(slot, array(node.input[1]))
        for layer in range(n_layer):
            for which, suffix in enumerate(_VECTORS):
                values = np.ascontiguousarray(array(f"model.h.layers.{layer}.{suffix}"), dtype=np.float32).reshape(-1)
                if lib.sv_set_vector(handle, layer, which, _ptr(values, ctypes.c_float), values.size) != 0:
                    raise NativeStepUnavailable(f"model.h.layers.{layer}.{suffix} has {values.size} values, not the expected size")
        if lib.sv_set_embedding(handle, _ptr(embedding, ctypes.c_float), embedding.shape[0], d_model) != 0:
            raise NativeStepUnavailable(f"the token embedding {list(embedding.shape)} does not match d_model {d_model}")

    def close(self) -> None:
        handle, self._handle = getattr(self, "_handle", None), None
        if handle:
            self._free(handle)

    def __del__(self) -> None:
        self.close()

    # The step writes the new token's K/V into row kv_len of the caches it is given (as well as into k_new / v_new),
    # so HostKvCache skips its own write of that row; and it reads only rows < kv_len, so HostKvCache lays the cache
    # out at full capacity once (no bucket growth, no zeroed tail).
    writes_cache_rows = True
    reads_only_valid_rows = True

    def bind(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """A call that runs one step on `inputs` as they are when it is called (scalars read each time, caches by
        address) into `outputs` (logits [1,V], k_new / v_new [L,1,1,D]) and into cache row kv_len (which must
        exist); the arrays must outlive it."""
        token, position, kv_len = inputs["token"], inputs["audio_position"], inputs["kv_len"]
        k0, v0 = inputs["k_cache_0"], inputs["v_cache_0"]
        rows = int(k0.shape[2])
        for prefix, first in (("k_cache_", k0), ("v_cache_", v0)):
            stride = first.nbytes
            for layer in range(self.n_layer):
                cache = inputs[f"{prefix}{layer}"]
                if (cache.dtype != np.float32 or not cache.flags.c_contiguous or cache.shape != first.shape
                        or cache.ctypes.data != first.ctypes.data + layer * stride):
                    raise SynthesisError(f"the native decode step needs the layers' caches laid out one after another ({prefix}{layer})")
        logits, k_new, v_new = outputs["logits"], outputs["k_new"], outputs["v_new"]
        for name, out, size in (("logits", logits, self.vocab), ("k_new", k_new, self.n_layer * self.d_model), ("v_new", v_new, self.n_layer * self.d_model)):
            if out.dtype != np.float32 or not out.flags.c_contiguous or out.size != size:
                raise SynthesisError(f"the native decode step's output {name} must be {size} contiguous float32 values")
        step, handle = self.library.lib.sv_step, self._handle
        addresses = (k0.ctypes.data, v0.ctypes.data, logits.ctypes.data, k_new.ctypes.data, v_new.ctypes.data)

        def run() -> None:
            keep = (inputs, outputs)  # noqa: F841 (the addresses above belong to these arrays)
            status = step(handle, int(token.reshape(-1)[0]), int(position.reshape(-1)[0]), int(kv_len.reshape(-1)[0]),
                          addresses[0], addresses[1], rows, 1, addresses[2], addresses[3], addresses[4])
            if status != 0:
                raise SynthesisError(
                    f"the native decode step refused token {int(token.reshape(-1)[0])} at kv_len {int(kv_len.reshape(-1)[0])} "
                    f"of {rows} rows (a token outside the embedding or a full cache)"
                )

        return run

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        """One step with fresh output arrays (the `GraphRunner` interface); caches must be laid out one after another."""
        result = {
            "logits": np.zeros((1, self.vocab), dtype=np.float32),
            "k_new": np.zeros((self.n_layer, 1, 1, self.d_model), dtype=np.float32),
            "v_new": np.zeros((self.n_layer, 1, 1, self.d_model), dtype=np.float32),
        }
        self.bind(inputs, result)()
        return {name: result[name] for name in (outputs or result)}


def native_step_runner(graph_path: Path, *, n_head: int, threads: int, choice: Optional[str] = None) -> Optional[NativeStepRunner]:
    """The native step for `graph_path` when `choice` (default: `step_choice()`) and this machine allow it, else
    None (ONNX Runtime runs the step; the log says why). `native` raises SynthesisError instead of returning None."""
    choice = choice or step_choice()
    if choice == "ort":
        return None
    try:
        from runtime.native.library import load_library

        try:
            library = load_library()
        except OSError as exc:
            raise NativeStepUnavailable(str(exc)) from None
        if choice == "auto" and not library.fast:
            raise NativeStepUnavailable(f"the library has only the {library.kernel} kernel here")
        return NativeStepRunner(graph_path, n_head=n_head, threads=threads, library=library)
    except NativeStepUnavailable as exc:
        if choice == "native":
            raise SynthesisError(f"SKYVOICE_DECODE_STEP=native, but the native decode step cannot run {graph_path}: {exc}") from None
        _LOGGER.info("native decode step not used graph=%s reason=%s", graph_path, exc)
        return None
