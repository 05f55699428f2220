"""Lower-precision variants of an exported FP32 graph: INT8 Q/DQ (TensorRT form), dynamic INT8 (CPU), FP16.

Modes:
- `int8`: explicit Q/DQ, the form TensorRT 10+ consumes. Weights per-channel symmetric int8 (Conv axis 0, MatMul
  weight [K,N] axis 1), activations per-tensor symmetric int8, every zero point 0. Only weighted ops are quantized
  (Conv, ConvTranspose, Gemm, MatMul with an initializer weight): attention's activation x activation MatMuls,
  LayerNorm, Softmax and the graph outputs stay float. Ranges come from running the calibration inputs through the
  FP32 graph (ONNX Runtime, CPU). Runs in ONNX Runtime CPU too (slowly for MatMul on x86 without VNNI).
- `int8_cpu`: static Q/DQ in the form ONNX Runtime's CPU kernels fuse: activations per-tensor *asymmetric uint8*
  with a Q on each weighted op's output too, weights per-channel symmetric int8, int32 bias. ORT then runs Conv as
  QLinearConv (u8s8) instead of a float Conv between Q/DQ pairs (ORT on x86 does not fuse int8 activations).
  Weights take 7 bits (`reduce_range`): x86 without VNNI multiplies u8 x s8 pairs into a saturating int16
  (`vpmaddubsw`), which full 8-bit weights overflow. Measured on the full-size decoder on an AVX2-only EPYC:
  8-bit weights 23.0 dB SNR vs FP32 (fails the gate), 7-bit 32.4 dB; so a bundle's fidelity does not depend on
  whether the box has VNNI. Full-size decoder, one thread: 2.9x faster than FP32 with VNNI, 1.9x on AVX2 only
  (the `int8` form is not faster than FP32 on either). Not for TensorRT (it wants symmetric int8); `--target cpu`
  bundles only.
- `int8_cpu_residual`: `int8_cpu` with the vocoder's residual additions in uint8 too (the Adds named by
  `RESIDUAL_ADDS`: ResBlock's `x = conv2(...) + x`), so ORT runs them as `QLinearAdd` and the resblock chains stay in
  uint8 without a dequantize, float add, quantize and layout transposes around every residual. The residual stream
  then carries the per-tensor uint8 step, so this form loses more than `int8_cpu` and is raced only where it passes
  the gate. Measured on the full-size decoder, random weights, two threads, Xeon with VNNI (2026-12-03 ~06:25 UTC):
  64 tokens 341 vs 466 ms, 28 tokens 178 vs 203 ms; SNR vs FP32 27.0-27.7 vs 30.2-31.6 dB. Quantizing every Add
  (text encoders, flow) fell to 13-14 dB.
- `int8_dynamic`: ONNX Runtime `quantize_dynamic` (int8 weights, activation scales per run) on MatMul/Gemm: the
  CPU variant for the memory-bound GPT decode step. Not TensorRT-importable (DynamicQuantizeLinear); whether it is
  faster is measured (`time_graph_ms`), not assumed.
- `int8_block`: weight-only INT8 in ONNX Runtime's `MatMulNBits` (8 bits, symmetric, one scale per block of
  `INT8_BLOCK_SIZE` input rows, bias folded in), computed with int8 activations (accuracy level 4). On the
  full-size GPT decode step, one thread: ~18 % faster than `int8_dynamic` and closer to FP32 (logit rel RMS 0.017
  vs 0.022); the prefill (M ~ 190 rows) is slower than with `int8_dynamic`. CPU only (a contrib operator).
- `int8_column`: one set of INT8 weights for both GPT graphs, multiplied by the kernel each graph's shape wants.
  Weights per output column, symmetric int8 (`quantize_dynamic`, per channel). The prefill (M ~ 190 rows) runs them
  as integer GEMMs (`DynamicQuantizeMatMul`, which AMX/VNNI machines run fast); the decode step (one row) runs the
  same bytes through `MatMulNBits`, the fastest one-row int8 kernel here, as *weight views*: the step graph's
  `MatMulNBits` weight is the transposed `[N, K]` copy of the prefill's `[K, N]` int8 matrix (stored +128 as uint8,
  the block scales all the column's scale), which is exact. `export/shared_weights.py` stores only the prefill's
  bytes and the runtime lays the views out at load (`runtime/synth/weight_views.py`). Measured on the full-size
  prefill, 184 rows, two threads, Xeon with AMX (2026-12-02 22:35 UTC): 125 vs 199 ms (`int8_block`), logit rel
  RMS 0.020 vs 0.017.
  CPU only (contrib operators).
- `fp16`: float16 weights and compute, float32 graph I/O (the runtime contract), Casts at the edges.
- `fp32`: a copy.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Final, Iterable, Mapping, Optional, Sequence

import numpy as np

from export.errors import ExportError

_LOGGER = logging.getLogger(__name__)

MODES: Final = ("fp32", "fp16", "int8", "int8_cpu", "int8_cpu_residual", "int8_dynamic", "int8_block", "int8_column")
INT8_BLOCK_SIZE: Final = 256  # rows of K per scale in `int8_block` (128: a little closer to FP32, ~6 % slower)
QUANTIZED_OP_TYPES: Final = ("Conv", "ConvTranspose", "Gemm", "MatMul")
# Kept in float32 by the fp16 conversion: normalisations and reductions overflow or lose range in fp16.
FP16_KEEP_FP32_OPS: Final = ("LayerNormalization", "ReduceMean", "ReduceSum", "Softmax", "Pow", "Range", "CumSum")
CALIBRATION_METHOD: Final = "MinMax"  # "MinMax", "Entropy" or "Percentile" (onnxruntime CalibrationMethod names)
# Embedding tables / codebooks read by Gather: stored int8 with one symmetric scale per row behind a DequantizeLinear
# (weight-only; the gathered rows are float). Smaller tables stay float.
GATHER_TABLE_MIN_ELEMENTS: Final = 16384
# Node-name fragments kept in float per graph (research: keep a vocoder's first/last conv and its upsamplers out of
# INT8). Pass `keep_float=KEEP_FLOAT.get(graph_name, ())` to `quantize_graph`.
KEEP_FLOAT: Final = {
    "gpt_prefill": ("/ar_predict_layer/",),  # the LM head: logits decide the token (0.7 % of the GPT's weights)
    "gpt_decode_step": ("/ar_predict_layer/",),
    "sovits_decoder": ("/dec/conv_pre/", "/dec/conv_post/", "/dec/ups."),
}
# Node-name fragments of the residual Adds `int8_cpu_residual` quantizes, per graph (the vocoder's ResBlocks; every
# other Add stays float). Pass `residual_adds=RESIDUAL_ADDS.get(graph_name, ())` to `quantize_graph`.
RESIDUAL_ADDS: Final = {"sovits_decoder": ("/dec/resblocks.",)}


class _ListCalibrationReader:
    """`onnxruntime.quantization.CalibrationDataReader` over a list of feeds (numpy arrays by input name)."""

    def __init__(self, feeds: Sequence[Mapping[str, np.ndarray]], input_names: Iterable[str]) -> None:
        names = set(input_names)
        self._feeds = [{k: np.asarray(v) for k, v in feed.items() if k in names} for feed in feeds]
        self._index = 0

    def get_next(self) -> Optional[dict[str, np.ndarray]]:
        if self._index >= len(self._feeds):
            return None
        feed = self._feeds[self._index]
        self._index += 1
        return feed

    def rewind(self) -> None:
        self._index = 0


def _weighted_nodes_to_exclude(model) -> list[str]:
    """MatMul/Gemm nodes whose second operand is not a constant (attention QK^T, PV): leave them in float."""
    constants = {init.name for init in model.graph.initializer}
    constants.update(out for node in model.graph.node if node.op_type == "Constant" for out in node.output)
    excluded = []
    for node in model.graph.node:
        if node.op_type in ("MatMul", "Gemm") and (len(node.input) < 2 or node.input[1] not in constants):
            excluded.append(node.name)
    return excluded


def _ensure_node_names(model) -> None:
    """quantize_static addresses nodes by name; unnamed nodes get a stable one."""
    for index, node in enumerate(model.graph.node):
        if not node.name:
            node.name = f"{node.op_type}_{index}"


def _static_options(cpu_form: bool, residual: bool = False) -> dict:
    """quantize_static arguments of the static forms (see the module docstring)."""
    from onnxruntime.quantization import QuantType

    if cpu_form:
        weighted = [op for op in QUANTIZED_OP_TYPES if op != "ConvTranspose"]  # no fused u8 ConvTranspose kernel
        return {
            "activation_type": QuantType.QUInt8,
            "op_types": weighted + (["Add"] if residual else []),
            "extra_options": {"ActivationSymmetric": False, "WeightSymmetric": True, "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1}},
            "reduce_range": True,  # 7-bit weights: u8 x s8 pair sums cannot saturate int16 on x86 without VNNI
        }
    return {
        "activation_type": QuantType.QInt8,
        "op_types": list(QUANTIZED_OP_TYPES),
        "reduce_range": False,  # TensorRT's int8 kernels do not saturate: keep the full 8 bits
        "extra_options": {
            "ActivationSymmetric": True,
            "WeightSymmetric": True,
            "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
            "DedicatedQDQPair": True,
            # Q/DQ on the inputs of weighted ops only: their outputs (and so the graph outputs) stay float.
            "OpTypesToExcludeOutputQuantization": list(QUANTIZED_OP_TYPES),
            "QuantizeBias": False,  # TensorRT keeps bias in float; an int32 bias DQ only gets in its way
        },
    }


def _quantize_int8_qdq(
    fp32_path: Path,
    out_path: Path,
    calibration_inputs: Sequence[Mapping[str, np.ndarray]],
    keep_float: Sequence[str] = (),
    cpu_form: bool = False,
    residual_adds: Sequence[str] = (),
) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    form = _static_options(cpu_form, residual=bool(residual_adds))

    if not calibration_inputs:
        raise ExportError(f"INT8 quantization of {fp32_path} needs calibration inputs; pass --calib or use --precision fp16")
    model = onnx.load(str(fp32_path))
    _ensure_node_names(model)
    input_names = [i.name for i in model.graph.input]
    excluded = _weighted_nodes_to_exclude(model)
    excluded += [n.name for n in model.graph.node if n.name not in excluded and any(part in n.name for part in keep_float)]
    if residual_adds:  # Add is quantized then: only the named residual ones
        excluded += [n.name for n in model.graph.node
                     if n.op_type == "Add" and n.name not in excluded and not any(part in n.name for part in residual_adds)]
    with tempfile.TemporaryDirectory(prefix="skyvoice-quant-") as tmp:
        named_path = Path(tmp) / "named.onnx"
        large = model.ByteSize() > 1_800_000_000
        onnx.save(model, str(named_path), save_as_external_data=large)
        quantize_static(
            model_input=str(named_path),
            model_output=str(out_path),
            calibration_data_reader=_ListCalibrationReader(calibration_inputs, input_names),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=form["op_types"],
            per_channel=True,
            reduce_range=form["reduce_range"],
            activation_type=form["activation_type"],
            weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded,
            use_external_data_format=large,
            calibrate_method=getattr(CalibrationMethod, CALIBRATION_METHOD),
            extra_options=form["extra_options"],
        )
    quantized = onnx.load(str(out_path))
    tables = quantize_gather_tables(quantized)
    if tables:
        onnx.save(quantized, str(out_path), save_as_external_data=quantized.ByteSize() > 1_800_000_000)
    _LOGGER.info(
        "quantized mode=%s file=%s float_nodes=%d gather_tables=%d calib=%d",
        ("int8_cpu_residual" if residual_adds else "int8_cpu") if cpu_form else "int8", out_path.name, len(excluded), tables,
        len(calibration_inputs),
    )


def quantize_gather_tables(model, min_elements: int = GATHER_TABLE_MIN_ELEMENTS) -> int:
    """In place: each float32 initializer used only as Gather data (axis 0) becomes int8 + per-row scale -> DQ -> Gather.

    Symmetric, zero point 0, DQ axis 0: the weight-only Q/DQ form TensorRT accepts. Returns the number of tables.
    """
    from onnx import TensorProto, helper, numpy_helper

    uses: dict[str, list] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            uses.setdefault(name, []).append((node, position))
    graph_outputs = {o.name for o in model.graph.output}
    replaced = 0
    for init in list(model.graph.initializer):
        consumers = uses.get(init.name, [])
        if (
            init.data_type != TensorProto.FLOAT
            or init.name in graph_outputs
            or not consumers
            or any(node.op_type != "Gather" or position != 0 for node, position in consumers)
            or any(next((a.i for a in node.attribute if a.name == "axis"), 0) != 0 for node, _ in consumers)
        ):
            continue
        table = numpy_helper.to_array(init)
        if table.ndim != 2 or table.size < min_elements:
            continue
        scale = (np.abs(table).max(axis=1) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        quantized = np.clip(np.round(table / scale[:, None]), -127, 127).astype(np.int8)
        base = init.name
        model.graph.initializer.remove(init)
        model.graph.initializer.extend([
            numpy_helper.from_array(quantized, base + "_quantized"),
            numpy_helper.from_array(scale, base + "_scale"),
            numpy_helper.from_array(np.zeros(scale.shape, np.int8), base + "_zero_point"),
        ])
        model.graph.node.insert(0, helper.make_node(
            "DequantizeLinear", [base + "_quantized", base + "_scale", base + "_zero_point"], [base], name=base + "_DequantizeLinear", axis=0,
        ))
        replaced += 1
    return replaced


def _quantize_int8_dynamic(fp32_path: Path, out_path: Path, per_channel: bool = False) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        model_input=str(fp32_path),
        model_output=str(out_path),
        op_types_to_quantize=["MatMul", "Gemm"],
        per_channel=per_channel,
        reduce_range=False,
        weight_type=QuantType.QInt8,
    )
    _LOGGER.info("quantized mode=int8_dynamic file=%s per_channel=%s", out_path.name, per_channel)


def _quantize_int8_column(fp32_path: Path, out_path: Path, single_row: bool) -> None:
    """Per-column int8 weights (see `int8_column`); for a `single_row` graph, its integer MatMuls become weight views."""
    import onnx

    from export.weight_views import matmul_integer_to_views

    _quantize_int8_dynamic(fp32_path, out_path, per_channel=True)
    if not single_row:
        return
    model = onnx.load(str(out_path))
    views = matmul_integer_to_views(model, INT8_BLOCK_SIZE)
    folded = _fold_matmul_nbits_bias(model)
    onnx.save(model, str(out_path), save_as_external_data=model.ByteSize() > 1_800_000_000)
    _LOGGER.info("quantized mode=int8_column file=%s views=%d bias_folded=%d", out_path.name, views, folded)


def _fold_matmul_nbits_bias(model) -> int:
    """`MatMulNBits` → `Add(constant vector)` becomes one `MatMulNBits` with its optional bias input (input 5)."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    users: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    folded = []
    for node in graph.node:
        if node.op_type != "MatMulNBits" or node.output[0] in outputs or len(users.get(node.output[0], [])) != 1:
            continue
        add = users[node.output[0]][0]
        if add.op_type != "Add":
            continue
        bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
        if bias not in constants or numpy_helper.to_array(constants[bias]).ndim != 1:
            continue
        inputs = list(node.input) + [""] * (6 - len(node.input))
        inputs[5] = bias
        del node.input[:]
        node.input.extend(inputs)
        node.output[0] = add.output[0]
        folded.append(add)
    for add in folded:
        graph.node.remove(add)
    return len(folded)


def _quantize_int8_block(fp32_path: Path, out_path: Path) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer
    from onnxruntime.quantization.quant_utils import QuantFormat

    config = DefaultWeightOnlyQuantConfig(
        block_size=INT8_BLOCK_SIZE, is_symmetric=True, accuracy_level=4, bits=8, quant_format=QuantFormat.QOperator
    )
    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(fp32_path)), bits=8, block_size=INT8_BLOCK_SIZE, is_symmetric=True, accuracy_level=4, algo_config=config
    )
    quantizer.process()
    model = quantizer.model.model
    folded = _fold_matmul_nbits_bias(model)
    onnx.save(model, str(out_path), save_as_external_data=model.ByteSize() > 1_800_000_000)
    _LOGGER.info("quantized mode=int8_block file=%s block=%d bias_folded=%d", out_path.name, INT8_BLOCK_SIZE, folded)


def _convert_fp16(fp32_path: Path, out_path: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(fp32_path))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(FP16_KEEP_FP32_OPS))
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=block, disable_shape_infer=False)
    onnx.save(converted, str(out_path), save_as_external_data=converted.ByteSize() > 1_800_000_000)
    _LOGGER.info("converted mode=fp16 file=%s", out_path.name)


def quantize_graph(
    fp32_path: str | os.PathLike,
    out_path: str | os.PathLike,
    calibration_inputs: Sequence[Mapping[str, np.ndarray]],
    mode: str,
    keep_float: Sequence[str] = (),
    single_row: bool = False,
    residual_adds: Sequence[str] = (),
) -> Path:
    """Write the `mode` variant of the FP32 graph at `fp32_path` to `out_path`; return `out_path`.

    `calibration_inputs` are feeds for the FP32 graph (used by the static `int8`, `int8_cpu` and `int8_cpu_residual`
    only); extra keys are ignored. `keep_float`: node-name fragments whose nodes stay float in those modes (see
    KEEP_FLOAT). `single_row`: the graph multiplies one row at a time (the GPT decode step), which `int8_column`
    lowers differently. `residual_adds`: node-name fragments of the Adds `int8_cpu_residual` quantizes (see
    RESIDUAL_ADDS).
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    if mode not in MODES:
        raise ExportError(f"precision mode {mode!r} is not one of {', '.join(MODES)}")
    if not fp32_path.is_file():
        raise ExportError(f"FP32 graph {fp32_path} does not exist; export it before quantizing")
    if fp32_path.resolve() == out_path.resolve():
        raise ExportError(f"quantizing {fp32_path} onto itself; give a different output path")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    if mode == "fp32":
        shutil.copyfile(fp32_path, out_path)
    elif mode == "fp16":
        _convert_fp16(fp32_path, out_path)
    elif mode in ("int8", "int8_cpu", "int8_cpu_residual"):
        if mode == "int8_cpu_residual" and not residual_adds:
            raise ExportError(f"int8_cpu_residual of {fp32_path} needs the names of its residual Add nodes (residual_adds)")
        _quantize_int8_qdq(fp32_path, out_path, calibration_inputs, keep_float, cpu_form=mode != "int8",
                           residual_adds=residual_adds if mode == "int8_cpu_residual" else ())
    elif mode == "int8_block":
        _quantize_int8_block(fp32_path, out_path)
    elif mode == "int8_column":
        _quantize_int8_column(fp32_path, out_path, single_row)
    else:
        _quantize_int8_dynamic(fp32_path, out_path)
    _LOGGER.info(
        "graph variant mode=%s file=%s bytes=%d fp32_bytes=%d seconds=%.1f",
        mode, out_path.name, graph_size_bytes(out_path), graph_size_bytes(fp32_path), time.monotonic() - started,
    )
    return out_path


def graph_size_bytes(path: str | os.PathLike) -> int:
    """Size of a graph file plus any external-data files it references."""
    import onnx
    from onnx.external_data_helper import uses_external_data

    path = Path(path)
    total = path.stat().st_size
    model = onnx.load(str(path), load_external_data=False)
    locations = set()
    for init in model.graph.initializer:
        if uses_external_data(init):
            for entry in init.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    return total + sum((path.parent / loc).stat().st_size for loc in locations if (path.parent / loc).is_file())


def time_graph_ms(path: str | os.PathLike, feeds: Sequence[Mapping[str, np.ndarray]], repeats: int = 5, threads: int = 0) -> float:
    """Median wall time of one run over `feeds` on ONNX Runtime CPU, in milliseconds (after one warm-up pass), with
    the runtime's session settings (`threads` intra-op threads, 0 = all cores; spinning as the box has it)."""
    import onnxruntime as ort

    from runtime.synth.runner import session_options

    session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    prepared = [{k: v for k, v in feed.items() if k in names} for feed in feeds]
    for feed in prepared:
        session.run(None, feed)
    samples = []
    for _ in range(max(1, repeats)):
        for feed in prepared:
            started = time.perf_counter()
            session.run(None, feed)
            samples.append((time.perf_counter() - started) * 1000.0)
    return float(np.median(samples))


CALIBRATION_DIR: Final = Path(__file__).resolve().parent.parent / "configs" / "calibration"
CALIBRATION_LANGUAGES: Final = ("zh", "en", "ja", "ko", "yue")
HELD_OUT_EVERY: Final = 4  # every 4th text is held out for the fidelity gate, never used for ranges


def load_calibration_texts(languages: Sequence[str] = CALIBRATION_LANGUAGES, path: Optional[str | os.PathLike] = None) -> dict[str, list[str]]:
    """{lang: [text, ...]} from `configs/calibration/<lang>.txt`, or from one file `path` (`--calib FILE`: `lang<TAB>text` lines)."""
    if path is not None:
        texts: dict[str, list[str]] = {}
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            lang, sep, text = line.partition("\t")
            if not sep or not text.strip():
                raise ExportError(f"{path} line {number} is not 'lang<TAB>text'; fix the calibration file")
            texts.setdefault(lang.strip(), []).append(text.strip())
        return texts
    texts = {}
    for lang in languages:
        file = CALIBRATION_DIR / f"{lang}.txt"
        if not file.is_file():
            raise ExportError(f"no calibration texts for language '{lang}' at {file}; add the file or drop the language")
        texts[lang] = [l.strip() for l in file.read_text(encoding="utf-8").splitlines() if l.strip() and not l.lstrip().startswith("#")]
    return texts


def split_calibration(items: Sequence, every: int = HELD_OUT_EVERY) -> tuple[list, list]:
    """(calibration, held_out): every `every`-th item (1-based) is held out; the rest set the INT8 ranges."""
    calibration = [item for index, item in enumerate(items, 1) if index % every]
    held_out = [item for index, item in enumerate(items, 1) if not index % every]
    return calibration, held_out


def pick_fastest(timings: Mapping[str, float], min_gain: float = 0.9) -> str:
    """The variant with the least time; "fp32" (when timed) unless the best takes at most `min_gain` of its time."""
    baseline = timings.get("fp32")
    best = min(timings, key=timings.get)
    if baseline is not None and timings[best] > min_gain * baseline:
        best = "fp32"
    _LOGGER.info("cpu timing %s choice=%s", " ".join(f"{k}_ms={v:.3f}" for k, v in timings.items()), best)
    return best


def fastest_variant(
    variants: Mapping[str, str | os.PathLike], feeds: Sequence[Mapping[str, np.ndarray]], repeats: int = 5, min_gain: float = 0.9
) -> tuple[str, dict[str, float]]:
    """Time each variant (`{"fp32": path, "int8_dynamic": path, ...}`) on ONNX Runtime CPU on all cores, as the box
    runs the decoder; return (choice, ms by variant).

    A variant replaces "fp32" only when it takes at most `min_gain` of FP32's time: the choice is measured, not
    assumed (static Q/DQ MatMul is several times slower than FP32 on x86 CPUs without VNNI).
    """
    timings = {name: time_graph_ms(path, feeds, repeats) for name, path in variants.items()}
    return pick_fastest(timings, min_gain), timings
