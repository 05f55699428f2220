"""Static TensorRT readiness on hand-made graphs with the production I/O names: no TensorRT needed."""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from runtime.trt.readiness import check_bundle, check_model
from runtime.trt.supported_ops import SUPPORTED_OPS, UNSUPPORTED_OPS

LAYERS, WIDTH = 2, 8


def _model(nodes, inputs, outputs, inits=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9
    return model


def decode_step_model(cache_dims=(1, 4, "cache_len", WIDTH // 4), extra_nodes=()):
    """A straight-line stand-in for gpt_decode_step with the contract's inputs and outputs."""
    inputs = [
        helper.make_tensor_value_info("token", TensorProto.INT64, [1, 1]),
        helper.make_tensor_value_info("audio_position", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("kv_len", TensorProto.INT64, [1]),
    ]
    nodes = [
        helper.make_node("Cast", ["token"], ["token_f"], to=TensorProto.FLOAT),
        helper.make_node("MatMul", ["token_f", "w"], ["logits"]),
    ]
    for i in range(LAYERS):
        for kind in ("k", "v"):
            inputs.append(helper.make_tensor_value_info(f"{kind}_cache_{i}", TensorProto.FLOAT, list(cache_dims)))
    nodes.append(helper.make_node("ReduceSum", ["k_cache_0"], ["k_new"], keepdims=1))
    nodes.append(helper.make_node("ReduceSum", ["v_cache_0"], ["v_new"], keepdims=1))
    nodes.extend(extra_nodes)
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("logits", "k_new", "v_new")]
    return _model(nodes, inputs, outputs, [numpy_helper.from_array(np.ones((1, 1025), np.float32), "w")])


def test_contract_shaped_decode_step_is_ready():
    report = check_model("gpt_decode_step", decode_step_model())
    assert report.ok, report.findings
    assert {"Cast", "MatMul", "ReduceSum"} == set(report.op_types)


def test_planted_unsupported_op_fails_the_check():
    planted = helper.make_node("NonMaxSuppression", [], [], name="fine")  # supported: must not be flagged
    bad = helper.make_node("DynamicQuantizeLinear", ["k_cache_1"], ["q", "s", "z"], name="planted")
    report = check_model("gpt_decode_step", decode_step_model(extra_nodes=[bad]))
    assert not report.ok
    [finding] = [f for f in report.findings if f.check == "operators"]
    assert "DynamicQuantizeLinear" in finding.message and "does not import" in finding.message
    assert "DynamicQuantizeLinear" in UNSUPPORTED_OPS and planted.op_type in SUPPORTED_OPS


def test_unknown_and_custom_domain_ops_fail():
    unknown = helper.make_node("MadeUpOp", ["k_cache_1"], ["u"])
    custom = helper.make_node("FusedMatMul", ["k_cache_1", "k_cache_1"], ["f"], domain="com.microsoft")
    report = check_model("gpt_decode_step", decode_step_model(extra_nodes=[unknown, custom]))
    messages = " ".join(f.message for f in report.findings if f.check == "operators")
    assert "MadeUpOp" in messages and "com.microsoft::FusedMatMul" in messages
    assert not report.ok


def test_loop_in_the_decode_path_fails_and_ops_inside_bodies_are_checked():
    body = helper.make_graph(
        [helper.make_node("Unique", ["cond_in"], ["cond_out"])],  # unsupported op hidden inside the body
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, [])],
    )
    loop = helper.make_node("Loop", ["", "cond"], [], body=body)
    cond = helper.make_node("Constant", [], ["cond"], value=numpy_helper.from_array(np.array(True)))
    report = check_model("gpt_decode_step", decode_step_model(extra_nodes=[cond, loop]))
    checks = {f.check: f for f in report.findings if f.severity == "error"}
    assert "control_flow" in checks and "Loop" in checks["control_flow"].message
    assert "Unique" in checks["operators"].message
    # outside the decode path a Loop is only a warning
    elsewhere = check_model("sovits_decoder", decode_step_model(extra_nodes=[cond, helper.make_node("Loop", ["", "cond"], [], body=helper.make_graph([], "b", body.input, [helper.make_tensor_value_info("cond_in", TensorProto.BOOL, [])]))]))
    assert any(f.check == "control_flow" and f.severity == "warning" for f in elsewhere.findings)


def test_wrong_static_and_dynamic_axes_are_named():
    report = check_model("gpt_decode_step", decode_step_model(cache_dims=(1, 4, 512, WIDTH // 4)))
    errors = [f.message for f in report.findings if f.check == "shapes"]
    assert any("'k_cache_0' axis 2 is fixed at 512 but must be dynamic" in m for m in errors)
    token_major = check_model("gpt_decode_step", decode_step_model(cache_dims=(1, "cache_len", WIDTH)))
    assert not token_major.ok  # the layout before head-major caches: wrong rank
    model = decode_step_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "steps"  # token must be [1,1]
    errors = [f.message for f in check_model("gpt_decode_step", model).findings if f.check == "shapes"]
    assert any("'token' axis 1" in m for m in errors)


def test_nonzero_zero_point_fails():
    inits = [
        numpy_helper.from_array(np.array(0.1, np.float32), "scale"),
        numpy_helper.from_array(np.array(3, np.int8), "zp"),
    ]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zp"], ["q"]), helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    findings = [f for f in check_model("other", model).findings if f.check == "quantization"]
    assert len(findings) == 2 and all("nonzero zero point" in f.message for f in findings)


def test_opset_out_of_range():
    model = _model([helper.make_node("Identity", ["x"], ["y"])], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])], opset=23)
    assert any(f.check == "opset" for f in check_model("other", model).findings)


def test_check_bundle_reads_the_manifest_and_formats_a_report(tmp_path):
    (tmp_path / "graphs").mkdir()
    onnx.save(decode_step_model(), str(tmp_path / "graphs" / "gpt_decode_step.onnx"))
    bad = decode_step_model(extra_nodes=[helper.make_node("Unique", ["k_cache_1"], ["u"])])
    onnx.save(bad, str(tmp_path / "graphs" / "other.onnx"))
    manifest = {"graphs": {"gpt_decode_step": {"file": "graphs/gpt_decode_step.onnx"}, "ref_encoder": {"file": "graphs/missing.onnx"}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    report = check_bundle(tmp_path)
    by_name = {g.name: g for g in report.graphs}
    assert by_name["gpt_decode_step"].ok and not by_name["ref_encoder"].ok
    assert not report.ok
    text = report.format()
    assert "gpt_decode_step" in text and "missing" in text and "not ready" in text
    assert json.loads(json.dumps(report.to_dict()))["ok"] is False

    (tmp_path / "manifest.json").unlink()  # no manifest: graphs/*.onnx
    report = check_bundle(tmp_path)
    assert {g.name for g in report.graphs} == {"gpt_decode_step", "other"}
    assert not {g.name: g for g in report.graphs}["other"].ok


def test_empty_directory_is_not_ready(tmp_path):
    report = check_bundle(tmp_path)
    assert not report.ok and "no graphs" in report.format()


def test_engines_commands_without_tensorrt(tmp_path, capsys):
    from runtime.cli import main

    (tmp_path / "graphs").mkdir()
    onnx.save(decode_step_model(), str(tmp_path / "graphs" / "gpt_decode_step.onnx"))
    (tmp_path / "manifest.json").write_text(json.dumps({"graphs": {"gpt_decode_step": {"file": "graphs/gpt_decode_step.onnx", "precision": "fp32"}}}))
    assert main(["engines", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "gpt_decode_step" in out and "ready for 'skyvoice engines build'" in out and "engines: not checked" in out
    assert main(["engines", "build", str(tmp_path), "--graphs", "sovits_decoder"]) == 2
    assert "not in" in capsys.readouterr().err
    from runtime.bundle.box_facts import read_tensorrt

    if read_tensorrt() is None:  # on a box with TensorRT this would really build
        assert main(["engines", "build", str(tmp_path), "--graphs", "gpt_decode_step"]) == 2
        assert "cannot build engines here" in capsys.readouterr().err
