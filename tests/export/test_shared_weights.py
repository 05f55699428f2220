"""The GPT weights are stored once for the prefill and decode-step graphs, and both graphs still load and agree."""

from __future__ import annotations

import json

import onnx


def _external_refs(path):
    model = onnx.load(str(path), load_external_data=False)
    refs = []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entry = {e.key: e.value for e in tensor.external_data}
            refs.append((entry["location"], int(entry["offset"]), int(entry["length"])))
    return refs


def test_both_gpt_graphs_point_into_one_weights_file(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    assert manifest["graphs"]["gpt_prefill"]["external_data"] == "graphs/gpt_weights.bin"
    assert "graphs/gpt_weights.bin" in manifest["files"]
    prefill = _external_refs(tiny_bundle / "graphs" / "gpt_prefill.onnx")
    step = _external_refs(tiny_bundle / "graphs" / "gpt_decode_step.onnx")
    assert prefill and step and {r[0] for r in prefill + step} == {"gpt_weights.bin"}
    referenced = sum(r[2] for r in prefill + step)
    stored = (tiny_bundle / "graphs" / "gpt_weights.bin").stat().st_size
    assert stored < 0.65 * referenced  # the shared layers are written once
    assert {r[1:] for r in prefill} & {r[1:] for r in step}  # the same regions serve both graphs


def test_graphs_with_shared_weights_load_in_onnx_runtime(tiny_bundle):
    from runtime.synth.runner import OrtRunner

    for name in ("gpt_prefill", "gpt_decode_step"):
        runner = OrtRunner(tiny_bundle / "graphs" / f"{name}.onnx", providers=["CPUExecutionProvider"])
        assert "logits" in runner.output_names
