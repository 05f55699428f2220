"""INT8 Q/DQ, dynamic INT8 and FP16 variants of small hand-made graphs, run in real ONNX Runtime; the fidelity gate."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from export.errors import ExportError
from export.fidelity import (
    FidelityThresholds,
    choose_precision,
    gate,
    log_mel_distance_db,
    measure_fidelity,
    snr_db,
)
from export.quantize import (
    CALIBRATION_LANGUAGES,
    graph_size_bytes,
    load_calibration_texts,
    quantize_graph,
    split_calibration,
)
from runtime.trt.readiness import check_model

WIDTH = 64
VOCAB = 128


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def make_gpt_like(path, rng):
    """x [1,T,W] -> a MatMul+Relu block with a residual, LayerNorm, an attention-style x@x^T, logits [1,VOCAB]."""
    inits = [
        numpy_helper.from_array((rng.standard_normal((WIDTH, 4 * WIDTH)) / np.sqrt(WIDTH)).astype(np.float32), "w_up"),
        numpy_helper.from_array((rng.standard_normal((4 * WIDTH, WIDTH)) / np.sqrt(4 * WIDTH)).astype(np.float32), "w_down"),
        numpy_helper.from_array(np.ones(WIDTH, np.float32), "ln_scale"),
        numpy_helper.from_array(np.zeros(WIDTH, np.float32), "ln_bias"),
        numpy_helper.from_array((rng.standard_normal((WIDTH, VOCAB)) / np.sqrt(WIDTH)).astype(np.float32), "w_head"),
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([2147483647], np.int64), "end"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w_up"], ["up"]),
        helper.make_node("Relu", ["up"], ["act"]),
        helper.make_node("MatMul", ["act", "w_down"], ["down"]),
        helper.make_node("Add", ["x", "down"], ["res"]),
        helper.make_node("Transpose", ["res"], ["res_t"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["res", "res_t"], ["scores"]),  # activation x activation: stays float
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "res"], ["mixed"]),
        helper.make_node("LayerNormalization", ["mixed", "ln_scale", "ln_bias"], ["normed"], axis=-1),
        helper.make_node("Slice", ["normed", "last", "end", "axis1"], ["last_row"]),
        helper.make_node("MatMul", ["last_row", "w_head"], ["logits3"]),
        helper.make_node("Squeeze", ["logits3", "axis1"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "gpt_like",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "t", WIDTH])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, VOCAB])],
        inits,
    )
    return _save(graph, path)


def make_decoder_like(path, rng):
    """z [1,8,T] -> Conv 8->16 k3, LeakyRelu, ConvTranspose x4, Conv 16->1 k7, Tanh -> audio [1,1,4T]."""
    inits = [
        numpy_helper.from_array((rng.standard_normal((16, 8, 3)) * 0.3).astype(np.float32), "c1"),
        numpy_helper.from_array(np.zeros(16, np.float32), "c1_b"),
        numpy_helper.from_array((rng.standard_normal((16, 16, 8)) * 0.1).astype(np.float32), "up"),
        numpy_helper.from_array((rng.standard_normal((1, 16, 7)) * 0.1).astype(np.float32), "c2"),
    ]
    nodes = [
        helper.make_node("Conv", ["z", "c1", "c1_b"], ["h1"], pads=[1, 1]),
        helper.make_node("LeakyRelu", ["h1"], ["a1"], alpha=0.1),
        helper.make_node("ConvTranspose", ["a1", "up"], ["h2"], strides=[4], pads=[2, 2]),
        helper.make_node("LeakyRelu", ["h2"], ["a2"], alpha=0.1),
        helper.make_node("Conv", ["a2", "c2"], ["h3"], pads=[3, 3]),
        helper.make_node("Tanh", ["h3"], ["audio"]),
    ]
    graph = helper.make_graph(
        nodes, "decoder_like",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, "t"])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 1, "samples"])],
        inits,
    )
    return _save(graph, path)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    rng = np.random.default_rng(7)
    root = tmp_path_factory.mktemp("quant")
    gpt = make_gpt_like(root / "gpt_like.onnx", rng)
    dec = make_decoder_like(root / "decoder_like.onnx", rng)
    gpt_feeds = [{"x": rng.standard_normal((1, int(t), WIDTH)).astype(np.float32)} for t in rng.integers(3, 12, 16)]
    dec_feeds = [{"z": rng.standard_normal((1, 8, int(t))).astype(np.float32)} for t in rng.integers(200, 400, 8)]
    return {"root": root, "gpt": gpt, "dec": dec, "gpt_feeds": gpt_feeds, "dec_feeds": dec_feeds}


def _qdq_nodes(path):
    model = onnx.load(str(path))
    return model, [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def test_int8_qdq_is_symmetric_per_channel_and_runs_in_onnxruntime(graphs):
    calib, held = split_calibration(graphs["gpt_feeds"])
    out = quantize_graph(graphs["gpt"], graphs["root"] / "gpt_int8.onnx", calib, "int8")
    model, qdq = _qdq_nodes(out)
    assert qdq, "no Q/DQ nodes were inserted"
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in qdq:
        zero_point = inits[node.input[2]]
        assert zero_point.dtype == np.int8 and not zero_point.any(), node.name
    weight_dqs = [n for n in qdq if n.op_type == "DequantizeLinear" and n.input[0] in inits]
    assert {n.input[0] for n in weight_dqs} >= {"w_up_quantized", "w_down_quantized", "w_head_quantized"}
    for node in weight_dqs:
        axis = {a.name: a.i for a in node.attribute}.get("axis")
        assert axis == 1 and inits[node.input[1]].ndim == 1, f"{node.name}: not per-channel on the output axis"
    # the attention-style activation x activation MatMuls and the graph output stay float
    consumers = {n.output[0]: n for n in model.graph.node}
    assert consumers["logits"].op_type == "Squeeze"
    scores = next(n for n in model.graph.node if n.output[0] == "scores")
    assert all(not name.endswith("_DequantizeLinear_Output") for name in scores.input)
    assert check_model("gpt_like", model).ok  # readiness: TensorRT-importable ops, zero points all zero

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    reference = ort.InferenceSession(str(graphs["gpt"]), providers=["CPUExecutionProvider"])
    for feed in held:
        got, want = session.run(None, feed)[0], reference.run(None, feed)[0]
        assert got.shape == want.shape == (1, VOCAB)
        assert np.sqrt(np.mean((got - want) ** 2)) < 0.1 * np.sqrt(np.mean(want**2))


def test_fp16_and_dynamic_variants_keep_float32_io(graphs):
    feed = graphs["gpt_feeds"][0]
    want = ort.InferenceSession(str(graphs["gpt"]), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    for mode in ("fp16", "int8_dynamic", "fp32"):
        out = quantize_graph(graphs["gpt"], graphs["root"] / f"gpt_{mode}.onnx", [], mode)
        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == "tensor(float)"
        got = session.run(None, feed)[0]
        assert got.dtype == np.float32 and got.shape == want.shape
        assert np.abs(got - want).max() < 0.1 * np.abs(want).max() + 1e-3, mode
    fp32, fp16 = graph_size_bytes(graphs["gpt"]), graph_size_bytes(graphs["root"] / "gpt_fp16.onnx")
    assert fp16 < 0.6 * fp32


def test_gate_passes_int8_decoder_and_records_report(graphs, tmp_path):
    calib, held = split_calibration(graphs["dec_feeds"])
    int8 = quantize_graph(graphs["dec"], tmp_path / "dec_int8.onnx", calib, "int8")
    result = measure_fidelity("sovits_decoder", graphs["dec"], int8, "int8", held)
    assert result.kind == "decoder" and set(result.metrics) == {"snr_db_min", "log_mel_db"}
    assert result.metrics["snr_db_min"] > 15.0, result
    report = gate([result], thresholds=FidelityThresholds(decoder_min_snr_db=15.0, decoder_max_log_mel_db=3.0))
    saved = json.loads(report.write(tmp_path / "fidelity.json").read_text())
    assert "not a quality claim" in saved["note"]
    assert saved["graphs"]["sovits_decoder"]["precisions"]["int8"]["metrics"]["snr_db_min"] == pytest.approx(result.metrics["snr_db_min"])
    assert "sovits_decoder" in report.format_table()


def test_int8_block_is_matmulnbits_with_the_bias_folded_in(tmp_path):
    """Weight-only block INT8: every constant-weight MatMul becomes MatMulNBits (8 bits); a following constant bias
    Add becomes its bias input; outputs stay close to FP32."""
    rng = np.random.default_rng(3)
    inits = [
        numpy_helper.from_array((rng.standard_normal((WIDTH, 4 * WIDTH)) / 8).astype(np.float32), "w1"),
        numpy_helper.from_array((rng.standard_normal(4 * WIDTH) / 8).astype(np.float32), "b1"),
        numpy_helper.from_array((rng.standard_normal((4 * WIDTH, WIDTH)) / 16).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["a"]),
        helper.make_node("MatMul", ["a", "w2"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "t", WIDTH])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "t", WIDTH])], inits)
    fp32 = _save(graph, tmp_path / "ffn.onnx")
    out = quantize_graph(fp32, tmp_path / "ffn_block.onnx", [], "int8_block")
    ops = [(n.op_type, list(n.input)) for n in onnx.load(str(out)).graph.node]
    assert [op for op, _ in ops] == ["MatMulNBits", "Relu", "MatMulNBits"]
    assert ops[0][1][5] == "b1"
    x = rng.standard_normal((1, 5, WIDTH)).astype(np.float32)
    want = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.sqrt(np.mean((got - want) ** 2)) < 0.03 * np.sqrt(np.mean(want**2))


def test_int8_cpu_form_runs_conv_as_qlinearconv_in_onnxruntime(graphs, tmp_path):
    """The CPU form (uint8 activations, Q on outputs) is what ORT fuses into integer kernels; the TensorRT form
    (symmetric int8, float outputs) leaves a float Conv between Q/DQ pairs on x86."""
    calib, held = split_calibration(graphs["dec_feeds"])
    fused = {}
    for mode in ("int8", "int8_cpu"):
        out = quantize_graph(graphs["dec"], tmp_path / f"dec_{mode}.onnx", calib, mode)
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"dec_{mode}.optimized.onnx")
        ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
        fused[mode] = {n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node}
        result = measure_fidelity("sovits_decoder", graphs["dec"], out, mode, held)
        assert result.metrics["snr_db_min"] > 15.0, (mode, result)
    assert "QLinearConv" in fused["int8_cpu"] and "QLinearConv" not in fused["int8"]
    zero_points = [numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "dec_int8_cpu.onnx")).graph.initializer if i.name.endswith("_zero_point")]
    assert any(z.dtype == np.uint8 for z in zero_points)


def make_resblock_like(path, rng):
    """z [1,8,T] -> an encoder Add (stays float) -> two ResBlock-style residual steps x = conv(lrelu(conv(lrelu(x)))) + x
    named like the vocoder's (/dec/resblocks.N/Add) -> audio [1,8,T]."""
    inits = [numpy_helper.from_array(np.full((1, 8, 1), 0.1, np.float32), "enc_bias")]
    nodes = [helper.make_node("Add", ["z", "enc_bias"], ["x0"], name="/enc/Add")]
    for block in range(2):
        for conv in (1, 2):
            name = f"w{block}_{conv}"
            inits += [numpy_helper.from_array((rng.standard_normal((8, 8, 3)) * 0.2).astype(np.float32), name),
                      numpy_helper.from_array(np.zeros(8, np.float32), name + "_b")]
        x = f"x{block}"
        nodes += [
            helper.make_node("LeakyRelu", [x], [f"a{block}"], alpha=0.1, name=f"/dec/resblocks.{block}/LeakyRelu"),
            helper.make_node("Conv", [f"a{block}", f"w{block}_1", f"w{block}_1_b"], [f"c{block}"], pads=[1, 1],
                             name=f"/dec/resblocks.{block}/convs1/Conv"),
            helper.make_node("LeakyRelu", [f"c{block}"], [f"b{block}"], alpha=0.1, name=f"/dec/resblocks.{block}/LeakyRelu_1"),
            helper.make_node("Conv", [f"b{block}", f"w{block}_2", f"w{block}_2_b"], [f"d{block}"], pads=[1, 1],
                             name=f"/dec/resblocks.{block}/convs2/Conv"),
            helper.make_node("Add", [f"d{block}", x], ["audio" if block == 1 else f"x{block + 1}"], name=f"/dec/resblocks.{block}/Add"),
        ]
    graph = helper.make_graph(
        nodes, "resblock_like",
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 8, "t"])],
        [helper.make_tensor_value_info("audio", TensorProto.FLOAT, [1, 8, "t"])],
        inits,
    )
    return _save(graph, path)


def test_int8_cpu_residual_quantizes_only_the_named_residual_adds(graphs, tmp_path):
    """The vocoder's residual Adds become QLinearAdd in ORT (the resblock chain stays uint8); any other Add stays
    float; the mode refuses a graph without residual names."""
    rng = np.random.default_rng(3)
    fp32 = make_resblock_like(tmp_path / "res.onnx", rng)
    feeds = [{"z": rng.standard_normal((1, 8, int(t))).astype(np.float32)} for t in rng.integers(200, 400, 8)]
    calib, held = split_calibration(feeds)
    fused = {}
    for mode in ("int8_cpu", "int8_cpu_residual"):
        out = quantize_graph(fp32, tmp_path / f"res_{mode}.onnx", calib, mode, residual_adds=("/dec/resblocks.",))
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(tmp_path / f"res_{mode}.optimized.onnx")
        ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
        fused[mode] = [n.op_type for n in onnx.load(options.optimized_model_filepath).graph.node]
        result = measure_fidelity("sovits_decoder", fp32, out, mode, held)
        assert result.metrics["snr_db_min"] > 25.0, (mode, result)
    assert fused["int8_cpu_residual"].count("QLinearAdd") == 2 and fused["int8_cpu_residual"].count("Add") == 1
    assert "QLinearAdd" not in fused["int8_cpu"]
    with pytest.raises(ExportError, match="residual Add"):
        quantize_graph(fp32, tmp_path / "no_names.onnx", calib, "int8_cpu_residual")


def _conv_weights(path) -> list[np.ndarray]:
    """The int8 weight tensors the Convs of a Q/DQ graph dequantize."""
    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    produced = {out: node for node in model.graph.node for out in node.output}
    weights = []
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        dq = produced.get(node.input[1])
        if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
            weights.append(numpy_helper.to_array(inits[dq.input[0]]))
    return weights


def test_int8_cpu_weights_take_7_bits_so_u8s8_cannot_saturate_without_vnni(graphs, tmp_path):
    """x86 without VNNI sums u8 x s8 pairs into a saturating int16: 2 x 255 x 127 overflows it, 2 x 255 x 64 does not.
    The TensorRT form keeps the full 8 bits."""
    calib, _ = split_calibration(graphs["dec_feeds"])
    widths = {}
    for mode in ("int8", "int8_cpu"):
        weights = _conv_weights(quantize_graph(graphs["dec"], tmp_path / f"rr_{mode}.onnx", calib, mode))
        assert weights and all(w.dtype == np.int8 for w in weights)
        widths[mode] = max(int(np.abs(w.astype(np.int32)).max()) for w in weights)
    assert widths["int8_cpu"] <= 64 and 2 * 255 * widths["int8_cpu"] <= 32767
    assert widths["int8"] > 64


def test_gate_picks_fp32_when_int8_error_is_forced_over_threshold(graphs, tmp_path):
    """Calibrate on inputs 1000x larger than the held-out ones: the int8 step swamps real activations."""
    calib, held = split_calibration(graphs["gpt_feeds"])
    blown = [{"x": feed["x"] * 1000.0} for feed in calib]
    int8 = quantize_graph(graphs["gpt"], tmp_path / "gpt_bad_int8.onnx", blown, "int8")
    bad = measure_fidelity("gpt_decode_step", graphs["gpt"], int8, "int8", held, kind="gpt")
    assert not bad.passed and bad.failures
    assert choose_precision([bad]) == "fp32"
    report = gate([bad])
    assert report.chosen == {"gpt_decode_step": "fp32"}
    assert "FAIL" in report.format_table()

    fp16 = quantize_graph(graphs["gpt"], tmp_path / "gpt_fp16.onnx", [], "fp16")
    good = measure_fidelity("gpt_decode_step", graphs["gpt"], fp16, "fp16", held, kind="gpt")
    assert good.passed, good.failures
    assert choose_precision([bad, good]) == "fp16"
    assert choose_precision([bad, good], preference=("int8", "fp32")) == "fp32"


def test_metrics_on_known_signals():
    t = np.arange(32000) / 32000.0
    tone = np.sin(2 * np.pi * 440.0 * t).astype(np.float32)
    assert snr_db(tone, tone) == float("inf")
    assert snr_db(tone, tone * 1.1) == pytest.approx(20.0, abs=1e-4)  # noise = 0.1 x signal
    assert log_mel_distance_db(tone, tone) == 0.0
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1  # energy in every band
    assert log_mel_distance_db(noise, noise * 2.0) == pytest.approx(20 * np.log10(2.0), abs=1e-6)


def test_calibration_texts_ship_for_every_language_and_split():
    texts = load_calibration_texts()
    assert set(texts) == set(CALIBRATION_LANGUAGES)
    for lang, lines in texts.items():
        calib, held = split_calibration(lines)
        assert len(calib) >= 6 and len(held) >= 2, lang
        assert not set(calib) & set(held)


def test_bad_inputs_are_refused_with_a_clear_error(graphs, tmp_path):
    with pytest.raises(ExportError, match="calibration inputs"):
        quantize_graph(graphs["gpt"], tmp_path / "x.onnx", [], "int8")
    with pytest.raises(ExportError, match="not one of"):
        quantize_graph(graphs["gpt"], tmp_path / "x.onnx", [], "int4")
    with pytest.raises(ExportError, match="does not exist"):
        quantize_graph(tmp_path / "missing.onnx", tmp_path / "x.onnx", [], "fp16")


def test_embedding_tables_become_int8_rows_behind_a_dequantize(tmp_path):
    rng = np.random.default_rng(3)
    table = rng.standard_normal((512, 64)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"]), helper.make_node("Relu", ["rows"], ["out"])],
        "embed",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, "n"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, "n", 64])],
        [numpy_helper.from_array(table, "table")],
    )
    fp32 = _save(graph, tmp_path / "embed.onnx")
    feeds = [{"ids": rng.integers(0, 512, (1, 9), dtype=np.int64)} for _ in range(3)]
    out = quantize_graph(fp32, tmp_path / "embed_int8.onnx", feeds, "int8")
    model, qdq = _qdq_nodes(out)
    [dq] = qdq
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert inits[dq.input[0]].dtype == np.int8 and inits[dq.input[1]].shape == (512,) and not inits[dq.input[2]].any()
    assert graph_size_bytes(out) < 0.3 * graph_size_bytes(fp32)
    assert check_model("embed", model).ok
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, feeds[0])[0]
    want = np.maximum(table[feeds[0]["ids"]], 0)
    assert np.abs(got - want).max() <= np.abs(table).max() / 127.0


def test_fastest_variant_is_measured_and_keeps_fp32_without_a_real_gain(graphs):
    from export.quantize import fastest_variant

    feeds = graphs["gpt_feeds"][:2]
    same = {"fp32": graphs["gpt"], "copy": quantize_graph(graphs["gpt"], graphs["root"] / "gpt_copy.onnx", [], "fp32")}
    choice, timings = fastest_variant(same, feeds, repeats=2, min_gain=0.0)  # nothing beats 0 x FP32's time
    assert choice == "fp32" and set(timings) == {"fp32", "copy"} and all(t > 0 for t in timings.values())


def test_keep_float_leaves_named_nodes_unquantized(graphs, tmp_path):
    calib, _ = split_calibration(graphs["dec_feeds"])
    out = quantize_graph(graphs["dec"], tmp_path / "dec_keep.onnx", calib, "int8", keep_float=("ConvTranspose",))
    model = onnx.load(str(out))
    producers = {o: n for n in model.graph.node for o in n.output}
    [upsample] = [n for n in model.graph.node if n.op_type == "ConvTranspose"]
    assert all(producers.get(i) is None or producers[i].op_type != "DequantizeLinear" for i in upsample.input)
    assert sum(n.op_type == "Conv" and producers[n.input[1]].op_type == "DequantizeLinear" for n in model.graph.node) == 2


def test_calibration_file_option(tmp_path):
    calib = tmp_path / "calib.tsv"
    calib.write_text("# lang<TAB>text\nen\tDoors are closing.\nzh\t请注意安全。\n\nen\tMind the gap.\n", encoding="utf-8")
    assert load_calibration_texts(path=calib) == {"en": ["Doors are closing.", "Mind the gap."], "zh": ["请注意安全。"]}
    calib.write_text("en Doors are closing.\n", encoding="utf-8")
    with pytest.raises(ExportError, match="line 1"):
        load_calibration_texts(path=calib)
    with pytest.raises(ExportError, match="no calibration texts for language 'xx'"):
        load_calibration_texts(["xx"])
