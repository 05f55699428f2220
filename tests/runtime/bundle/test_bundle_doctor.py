"""doctor: OK/FIX lines from real probes on fixtures: an L4T file, a real mosquitto, the null amplifier, engine keys."""

from __future__ import annotations

import json
import os
import select
import shutil
import socket
import subprocess
import time

import pytest

from runtime.bundle.box_facts import BoxFacts, read_l4t, read_gpu, version_matches
from runtime.bundle.doctor import DoctorConfig, check_clock, check_native_step, run_checks
from runtime.bundle.install import flash

ORIN = BoxFacts(l4t="36.4.3", tensorrt="10.3.0.30", cuda="12.6.68", gpu_name="Jetson Orin", compute_capability="8.7")


def lines_by_name(results):
    return {r.name: r.line() for r in results}


def test_probes_read_jetson_files(tmp_path):
    release = tmp_path / "nv_tegra_release"
    release.write_text("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, DATE: Wed Jan  8\n")
    assert read_l4t(release) == "36.4.3"
    assert read_l4t(tmp_path / "absent") is None
    compatible = tmp_path / "compatible"
    compatible.write_bytes(b"nvidia,p3768-0000+p3767-0005\0nvidia,p3767-0005\0nvidia,tegra234\0")
    assert read_gpu(compatible, nvidia_smi="/nonexistent") == ("Jetson Orin", "8.7")
    assert version_matches("36.4", "36.4.3") and not version_matches("36.4", "36.40.1")


def test_cpu_box_without_bundle(tmp_path):
    results = lines_by_name(run_checks(DoctorConfig(root=tmp_path / "box"), facts=BoxFacts()))
    assert results["gpu"] == "OK   gpu: none (CPU only)"
    assert results["tensorrt"].startswith("OK   tensorrt: none")
    assert results["bundle"].startswith("FIX  bundle: no current release")
    assert "amplifier" not in results and "broker" not in results


def test_native_step_line_says_whether_it_is_built_for_this_cpu(tmp_path):
    from runtime.native.build import build, compiler

    missing = check_native_step(tmp_path / "empty")
    assert missing.line().startswith("FIX  native-step: the native decode step is not built for this CPU")
    assert "python -m runtime.native.build" in missing.line()
    if compiler() is None:
        pytest.skip("no C compiler here")
    build(tmp_path / "built")
    assert check_native_step(tmp_path / "built").line().startswith("OK   native-step: built")


def test_jetson_with_bundle_engines_amplifier_and_broker(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    flash(make_bundle("1.0.0"), root, keys.trust, lambda release: "ok", facts=ORIN)
    write_engine(root, "gpt_prefill", ORIN)
    write_engine(root, "sovits_decoder", BoxFacts(l4t="35.4.1", tensorrt="8.5.2.2", cuda="11.4", gpu_name="Jetson Orin", compute_capability="8.7"))
    profile = tmp_path / "null.toml"
    profile.write_text('name = "bench"\nprotocol = "null"\n')
    with mosquitto(tmp_path) as port:
        config = DoctorConfig(root=root, trust_dir=keys.trust_dir, amp_profile=profile, broker_host="127.0.0.1", broker_port=port)
        results = lines_by_name(run_checks(config, facts=ORIN))
    assert results["jetpack"] == "OK   jetpack: L4T R36.4.3 (JetPack 6.1/6.2)"
    assert results["gpu"] == "OK   gpu: Jetson Orin, compute capability 8.7"
    assert results["bundle"].startswith("OK   bundle: 1.0.0 (model v2), signature and files verified")
    assert results["voices"] == "OK   voices: captain"
    assert results["engines"].startswith("FIX  engines: stale engines: sovits_decoder.engine: tensorrt differs (engine built with 8.5.2.2")
    assert "gpt_prefill" not in results["engines"]
    assert results["amplifier"].startswith("OK   amplifier: answers on null")
    assert results["broker"] == f"OK   broker: 127.0.0.1:{port} accepts MQTT connections"


def write_engine(root, graph, built_on):
    from runtime.bundle.manifest import read_manifest
    from runtime.trt.engine_key import EngineKey, platform_from_facts, write_key

    engine = root / "current" / "engines" / f"{graph}.engine"
    engine.parent.mkdir(exist_ok=True)
    engine.write_bytes(b"plan")
    onnx_file = f"graphs/{graph}.onnx"
    sha = read_manifest(root / "current").files[onnx_file].sha256
    write_key(engine, EngineKey(platform_from_facts(built_on), graph, onnx_file, sha, "fp16", {}))


def test_readiness_of_a_bundle_is_reported(make_bundle, tmp_path):
    results = lines_by_name(run_checks(DoctorConfig(root=tmp_path / "box", bundle=make_bundle()), facts=BoxFacts()))
    assert "readiness of" in results["tensorrt-readiness"]


def test_pending_release_and_tampered_bundle_are_reported(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    flash(make_bundle("1.0.0"), root, keys.trust, lambda release: "ok", facts=BoxFacts())
    (root / "current" / "graphs" / "ref_encoder.onnx").write_bytes(b"x")
    results = lines_by_name(run_checks(DoctorConfig(root=root, trust_dir=keys.trust_dir), facts=BoxFacts()))
    assert results["bundle"].startswith("FIX  bundle: bundle file") and "ref_encoder.onnx" in results["bundle"]
    (root / "pending.json").write_text(json.dumps({"version": "1.0.0", "previous": None, "started_at": "2026-12-02T05:00:00Z"}))
    results = lines_by_name(run_checks(DoctorConfig(root=root), facts=BoxFacts()))
    assert "skyvoice flash --recover" in results["bundle"]


def test_clock_sanity():
    assert check_clock(now=0.0).line().startswith("FIX  clock: 1970-01-01")
    assert not check_clock(now=time.time(), timedatectl="/nonexistent").line().startswith("FIX")


class mosquitto:
    """A real broker on a free 127.0.0.1 port for the duration of a with-block; ready when it logs "running"."""

    def __init__(self, tmp_path) -> None:
        self.config = tmp_path / "mosquitto.conf"

    def __enter__(self) -> int:
        binary = shutil.which("mosquitto")
        if binary is None:
            pytest.skip("mosquitto is not installed (scripts/setup installs it)")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.config.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\nlog_type all\n")
        self.process = subprocess.Popen([binary, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline, log = time.monotonic() + 15, b""
        while b"running" not in log and time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stderr], [], [], max(0.0, deadline - time.monotonic()))
            chunk = os.read(self.process.stderr.fileno(), 4096) if ready else b""
            if not chunk:
                break
            log += chunk
        if b"running" not in log:
            self.__exit__()
            pytest.fail(f"mosquitto did not start: {log.decode(errors='replace')[-500:]}")
        return self.port

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.communicate(timeout=10)
