"""Backend selection (runs everywhere) and the TensorRT runner (runs where tensorrt, pycuda and a GPU are present).

Selection tests use a real ONNX Runtime session for the fallback; the only stand-in is the TensorRT runner factory
on machines without a GPU (the true edge), which lets the key-match path be tested without TensorRT.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from runtime.synth.runner import OrtRunner
from runtime.synth.trt_runner import engine_path_for, select_runner
from runtime.trt.engine_key import EngineKey, PlatformInfo, file_sha256, write_key

ORIN = PlatformInfo("10.3.0.30", "12.6.68", "36.4.3", "6.1/6.2", "Jetson Orin", "8.7")


GIN = 8


def _tiny_graph(path):
    """A ref_encoder stand-in with the contract's I/O: spectrogram [1,1025,Tr] -> mean over time -> 1x1 conv -> ge [1,GIN,1]."""
    weight = numpy_helper.from_array(np.random.default_rng(1).standard_normal((GIN, 1025, 1)).astype(np.float32) / 32.0, "w")
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["spectrogram"], ["pooled"], axes=[2], keepdims=1),
            helper.make_node("Conv", ["pooled", "w"], ["ge"]),
        ],
        "ref_encoder",
        [helper.make_tensor_value_info("spectrogram", TensorProto.FLOAT, [1, 1025, "frames"])],
        [helper.make_tensor_value_info("ge", TensorProto.FLOAT, [1, GIN, 1])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(path))
    return path


@pytest.fixture()
def bundle(tmp_path):
    (tmp_path / "graphs").mkdir()
    (tmp_path / "engines").mkdir()
    graph = _tiny_graph(tmp_path / "graphs" / "ref_encoder.onnx")
    return tmp_path, graph


def _fake_engine(bundle_dir, graph, platform=ORIN, sha=None):
    engine = engine_path_for(bundle_dir / "engines", graph.stem)
    engine.write_bytes(b"not a real plan")
    write_key(engine, EngineKey(platform, graph.stem, f"graphs/{graph.name}", sha or file_sha256(graph), "fp16", {}))
    return engine


class _DeviceRunnerStandIn:
    """Stands in for a TensorRT runner on machines without a GPU."""

    input_names, output_names, backend = ("spectrogram",), ("ge",), "tensorrt:stand-in"

    def __init__(self, engine_path):
        self.engine_path = engine_path


def test_no_engine_falls_back_to_onnxruntime(bundle, caplog):
    bundle_dir, graph = bundle
    with caplog.at_level(logging.INFO, logger="runtime.synth.trt_runner"):
        choice = select_runner(graph, bundle_dir / "engines", platform=ORIN)
    assert isinstance(choice.runner, OrtRunner) and choice.backend.startswith("onnxruntime:")
    assert "no TensorRT engine" in choice.reason
    assert any("backend=onnxruntime" in r.getMessage() for r in caplog.records)
    out = choice.runner.run({"spectrogram": np.ones((1, 1025, 20), np.float32)})["ge"]
    assert out.shape == (1, GIN, 1)


def test_stale_key_is_reported_once_and_falls_back(bundle, caplog):
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph, platform=dataclasses.replace(ORIN, tensorrt="10.3.0.26"))
    with caplog.at_level(logging.INFO, logger="runtime.synth.trt_runner"):
        choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=_DeviceRunnerStandIn)
    assert isinstance(choice.runner, OrtRunner)
    assert "tensorrt differs" in choice.reason and "skyvoice engines build" in choice.reason
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "10.3.0.26" in warnings[0].getMessage()


def test_changed_onnx_makes_the_engine_stale(bundle):
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph, sha="0" * 64)
    choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=_DeviceRunnerStandIn)
    assert isinstance(choice.runner, OrtRunner) and "ONNX graph changed" in choice.reason


def test_matching_key_selects_tensorrt(bundle):
    bundle_dir, graph = bundle
    engine = _fake_engine(bundle_dir, graph)
    choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=_DeviceRunnerStandIn)
    assert choice.backend == "tensorrt:stand-in" and choice.reason == ""
    assert choice.runner.engine_path == engine


def test_unloadable_engine_falls_back(bundle):
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph)

    def broken(path):
        raise RuntimeError("deserialize_cuda_engine returned None")

    choice = select_runner(graph, bundle_dir / "engines", platform=ORIN, trt_runner_factory=broken)
    assert isinstance(choice.runner, OrtRunner) and "failed to load" in choice.reason


def test_box_without_tensorrt_falls_back(bundle):
    pytest.importorskip("onnxruntime")
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver  # noqa: F401

        pytest.skip("tensorrt and pycuda import here; the no-TensorRT path is not reachable")
    except ImportError:
        pass
    bundle_dir, graph = bundle
    _fake_engine(bundle_dir, graph)
    choice = select_runner(graph, bundle_dir / "engines")  # probes the platform for real
    assert isinstance(choice.runner, OrtRunner) and "TensorRT is not usable here" in choice.reason


# --- on a machine with TensorRT, pycuda and a GPU ------------------------------------------------------------

def _gpu_stack():
    try:
        import tensorrt  # noqa: F401
        import pycuda.driver as cuda

        cuda.init()
        if cuda.Device.count() < 1:
            return "no CUDA device"
    except ImportError as exc:
        return f"tensorrt/pycuda do not import here ({exc})"
    except Exception as exc:  # pycuda raises its own error type when no driver is loaded
        return f"CUDA is not usable here ({exc})"
    return ""


GPU_REASON = _gpu_stack()
needs_gpu = pytest.mark.skipif(bool(GPU_REASON), reason=GPU_REASON or "gpu present")


@needs_gpu
def test_engine_build_and_run_match_onnxruntime(bundle):
    from runtime.trt.build import ShapeLimits, build_engine
    from runtime.trt.engine_key import probe_platform

    bundle_dir, graph = bundle
    platform = probe_platform()
    engine = engine_path_for(bundle_dir / "engines", "ref_encoder")
    key = build_engine(graph, engine, "ref_encoder", "fp32", platform, limits=ShapeLimits(spectrogram_frames=(16, 64, 256)))
    assert key.profiles["spectrogram"] == ((1, 1025, 16), (1, 1025, 64), (1, 1025, 256))
    choice = select_runner(graph, bundle_dir / "engines", platform=platform)
    assert choice.backend.startswith("tensorrt:"), choice.reason
    for frames in (16, 100):
        spectrogram = np.abs(np.random.default_rng(frames).standard_normal((1, 1025, frames))).astype(np.float32)
        got = choice.runner.run({"spectrogram": spectrogram})["ge"]
        want = OrtRunner(graph, providers=["CPUExecutionProvider"]).run({"spectrogram": spectrogram})["ge"]
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
