"""The `int8_column` GPT form: one set of per-column int8 weights, integer GEMMs in the prefill, `MatMulNBits` weight
views in the decode step, stored once by `share_weights` and laid out by the runtime at load."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.quantize import quantize_graph
from export.shared_weights import share_weights
from runtime.errors import SynthesisError
from runtime.synth.runner import OrtRunner
from runtime.synth.weight_views import column_to_view, views_path

WIDTH = 64


def _ffn(path, rows):
    """x [1, rows, W] -> MatMul(w1) + b1 -> Relu -> MatMul(w2): the same FP32 weights for every `rows`."""
    rng = np.random.default_rng(5)
    inits = [
        numpy_helper.from_array((rng.standard_normal((WIDTH, 4 * WIDTH)) / 8).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(4 * WIDTH) / 8).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((4 * WIDTH, WIDTH)) / 16).astype(np.float32), "w2"),
    ]
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Add", ["h", "b1"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["a"]), helper.make_node("MatMul", ["a", "w2"], ["y"])]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, rows, WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, rows, WIDTH])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _run(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.fixture()
def column_pair(tmp_path):
    """The FP32 pair and its int8_column lowering (prefill: many rows; step: one row), before sharing."""
    fp32 = {"prefill": _ffn(tmp_path / "prefill.fp32.onnx", "t"), "step": _ffn(tmp_path / "step.fp32.onnx", 1)}
    out = tmp_path / "graphs"
    out.mkdir()
    lowered = {
        "prefill": quantize_graph(fp32["prefill"], out / "prefill.onnx", [], "int8_column"),
        "step": quantize_graph(fp32["step"], out / "step.onnx", [], "int8_column", single_row=True),
    }
    return fp32, lowered


def test_column_view_is_the_transposed_int8_matrix_plus_128_in_whole_blocks():
    weight = np.array([[-128, 5], [127, -1], [0, 3]], dtype=np.int8)  # K=3, N=2
    view = column_to_view(weight, block=16)
    assert view.shape == (2, 1, 16) and view.dtype == np.uint8
    assert view[0, 0, :3].tolist() == [0, 255, 128] and view[1, 0, :3].tolist() == [133, 127, 131]
    assert (view[:, 0, 3:] == 128).all()  # padding is the zero point


def test_prefill_multiplies_integer_gemms_and_the_step_the_same_bytes_through_views(column_pair):
    fp32, lowered = column_pair
    prefill_ops = {n.op_type for n in onnx.load(str(lowered["prefill"])).graph.node}
    step = onnx.load(str(lowered["step"]))
    assert "MatMulInteger" in prefill_ops and "MatMulNBits" not in prefill_ops
    assert [n.op_type for n in step.graph.node] == ["MatMulNBits", "Relu", "MatMulNBits"]
    assert step.graph.node[0].input[5] == "b1"  # the bias folded in
    x = np.random.default_rng(1).standard_normal((1, 1, WIDTH)).astype(np.float32)
    want = _run(fp32["step"], x)
    for got in (_run(lowered["step"], x), _run(lowered["prefill"], x)):
        assert np.sqrt(np.mean((got - want) ** 2)) < 0.03 * np.sqrt(np.mean(want**2))


def test_shared_weights_store_the_views_source_once_and_the_runner_lays_them_out(column_pair, tmp_path):
    _, lowered = column_pair
    unshared = tmp_path / "unshared"
    shutil.copytree(lowered["step"].parent, unshared)
    share_weights([lowered["prefill"], lowered["step"]])
    sidecar = json.loads(views_path(lowered["step"]).read_text())
    assert sidecar["format"] == 1 and len(sidecar["views"]) == 2
    weights = lowered["step"].parent / "gpt_weights.bin"
    assert weights.stat().st_size < 3 * WIDTH * 4 * WIDTH  # both int8 matrices (2 x 16 KiB) + alignment, not twice
    with pytest.raises(Exception, match="out of bounds|can not be read"):  # a loader that knows no views fails loudly
        ort.InferenceSession(str(lowered["step"]), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).standard_normal((1, 1, WIDTH)).astype(np.float32)
    got = OrtRunner(lowered["step"], providers=["CPUExecutionProvider"]).run({"x": x})["y"]
    np.testing.assert_array_equal(got, _run(unshared / "step.onnx", x))


def test_a_view_whose_source_is_not_shared_keeps_its_own_bytes(tmp_path):
    out = tmp_path / "graphs"
    out.mkdir()
    prefill = shutil.copyfile(_ffn(tmp_path / "p.onnx", "t"), out / "prefill.onnx")  # the prefill stayed FP32
    step = quantize_graph(_ffn(tmp_path / "s.onnx", 1), out / "step.onnx", [], "int8_column", single_row=True)
    x = np.random.default_rng(3).standard_normal((1, 1, WIDTH)).astype(np.float32)
    before = _run(step, x)
    share_weights([prefill, step])
    assert not views_path(step).exists()
    np.testing.assert_array_equal(_run(step, x), before)  # plain ONNX Runtime loads it as it is


def test_a_damaged_views_sidecar_is_one_clear_error(column_pair):
    _, lowered = column_pair
    share_weights([lowered["prefill"], lowered["step"]])
    sidecar = views_path(lowered["step"])
    spec = json.loads(sidecar.read_text())
    next(iter(spec["views"].values()))["offset"] = 10**9
    sidecar.write_text(json.dumps(spec))
    with pytest.raises(SynthesisError, match=r"weight views .*step\.weight_views\.json cannot be read: view .* needs bytes"):
        OrtRunner(lowered["step"], providers=["CPUExecutionProvider"])
