"""`skyvoice doctor`: one report a technician can read. Each check returns an OK line or a FIX line with what to do.

Checks never raise: a probe that fails is itself the finding. Optional checks (amplifier, broker) run only when
their address is given.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Final, Optional

from runtime.bundle.box_facts import BoxFacts, NV_TEGRA_RELEASE, probe_box_facts, version_matches
from runtime.bundle.manifest import ENGINES_DIR, read_manifest
from runtime.bundle.releases import ReleaseStore
from runtime.errors import SkyvoiceError

_LOGGER = logging.getLogger(__name__)

MIN_AVAILABLE_MEMORY_BYTES: Final = 1 << 30
MIN_FREE_DISK_BYTES: Final = 1 << 30
EARLIEST_SANE_TIME: Final = 1767225600  # 2026-01-01T00:00:00Z: older than this skyvoice, so the clock is wrong
LATEST_SANE_TIME: Final = 4102444800  # 2100-01-01
BROKER_TIMEOUT_S: Final = 5.0
ENGINE_KEY_SUFFIX: Final = ".engine.key.json"
L4T_TO_JETPACK: Final = (("38.4", "7.1"), ("38.2", "7.0"), ("36.4", "6.1/6.2"), ("36.3", "6.0"), ("35.4", "5.1.2"),
                         ("35.3", "5.1.1"))


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str = ""

    def line(self) -> str:
        if self.ok:
            return f"OK   {self.name}: {self.detail}"
        return f"FIX  {self.name}: {self.detail} -> {self.fix}"


@dataclass(frozen=True)
class DoctorConfig:
    root: Path
    trust_dir: Optional[Path] = None
    amp_profile: Optional[Path] = None
    amp_port: str = ""
    broker_host: str = ""
    broker_port: int = 1883
    bundle: Optional[Path] = None  # a bundle to run the static TensorRT readiness check on
    meminfo: Path = Path("/proc/meminfo")


def _ok(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def _fix(name: str, detail: str, fix: str) -> CheckResult:
    return CheckResult(name, False, detail, fix)


def check_l4t(facts: BoxFacts) -> CheckResult:
    if facts.l4t is None:
        return _ok("jetpack", f"not a Jetson ({NV_TEGRA_RELEASE} absent); the ONNX Runtime CPU path serves")
    jetpack = next((jp for l4t, jp in L4T_TO_JETPACK if version_matches(l4t, facts.l4t)), None)
    if jetpack is None:
        return _fix("jetpack", f"L4T R{facts.l4t} is not a release skyvoice was checked on",
                    "use JetPack 6.1/6.2 (L4T R36.4) or JetPack 5.1.x / 7.x")
    return _ok("jetpack", f"L4T R{facts.l4t} (JetPack {jetpack})")


def check_tensorrt(facts: BoxFacts) -> CheckResult:
    if facts.tensorrt:
        return _ok("tensorrt", facts.tensorrt)
    if facts.l4t:
        return _fix("tensorrt", "the tensorrt Python module does not import",
                    "apt install python3-libnvinfer and make the venv with --system-site-packages")
    return _ok("tensorrt", "none (not needed off Jetson; ONNX Runtime serves)")


def check_cuda(facts: BoxFacts) -> CheckResult:
    if facts.cuda:
        return _ok("cuda", facts.cuda)
    if facts.l4t:
        return _fix("cuda", "no CUDA toolkit found (/usr/local/cuda/version.json, nvcc)", "apt install nvidia-jetpack")
    return _ok("cuda", "none")


def check_gpu(facts: BoxFacts) -> CheckResult:
    if facts.compute_capability:
        return _ok("gpu", f"{facts.gpu_name}, compute capability {facts.compute_capability}")
    if facts.l4t:
        return _fix("gpu", "a Jetson without a recognised GPU in /proc/device-tree/compatible",
                    "check the module seating and the JetPack install")
    return _ok("gpu", "none (CPU only)")


def check_native_step(directory: Optional[Path] = None) -> CheckResult:
    """The native GPT decode step's library (runtime/native): built for this CPU, and with which kernel."""
    from runtime.native.build import library_path
    from runtime.native.library import load_library

    path = library_path(directory)
    if not path.is_file():
        return _fix("native-step", "the native decode step is not built for this CPU; INT8 decode steps run on ONNX Runtime (slower)",
                    "run .venv/bin/python -m runtime.native.build (needs gcc: apt install gcc libc6-dev)")
    try:
        library = load_library(path)
    except OSError as exc:
        return _fix("native-step", f"{path} does not load: {exc}", "run .venv/bin/python -m runtime.native.build --force")
    if not library.fast:
        return _ok("native-step", f"built with the {library.kernel} kernel only; INT8 decode steps run on ONNX Runtime")
    return _ok("native-step", f"built ({library.kernel}): INT8 decode steps run natively")


def check_memory(config: DoctorConfig) -> CheckResult:
    try:
        fields = dict(line.split(":", 1) for line in config.meminfo.read_text().splitlines() if ":" in line)
        available = int(fields["MemAvailable"].strip().split()[0]) * 1024
        total = int(fields["MemTotal"].strip().split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return _fix("memory", f"cannot read {config.meminfo}", "run doctor on the box itself (Linux)")
    detail = f"{available / 2**30:.1f} GiB available of {total / 2**30:.1f} GiB"
    if available < MIN_AVAILABLE_MEMORY_BYTES:
        return _fix("memory", detail, "stop other services; skyvoice needs about 1 GiB free to load the graphs")
    return _ok("memory", detail)


def check_disk(config: DoctorConfig) -> CheckResult:
    probe = config.root if config.root.exists() else config.root.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError as exc:
        return _fix("disk", f"cannot read free space of {probe}: {exc}", "create the box root or mount its disk")
    current = ReleaseStore(config.root).current_dir()
    needed = max(MIN_FREE_DISK_BYTES, 2 * _tree_bytes(current) if current else 0)
    detail = f"{usage.free / 2**30:.1f} GiB free on {probe}"
    if usage.free < needed:
        return _fix("disk", detail, f"free at least {needed / 2**30:.1f} GiB so the next flash fits beside the current release")
    return _ok("disk", detail)


def _tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def check_bundle(config: DoctorConfig) -> CheckResult:
    store = ReleaseStore(config.root)
    pending = store.read_pending()
    if pending:
        return _fix("bundle", f"release {pending.version} is waiting for health confirmation since {pending.started_at}",
                    "if no flash is running, run 'skyvoice flash --recover' (or restart the daemon)")
    current = store.current_dir()
    if current is None or not current.is_dir():
        return _fix("bundle", f"no current release under {config.root}", "flash one: skyvoice flash BUNDLE --root ROOT --trust DIR")
    previous = store.previous_version() or "none"
    if config.trust_dir is None:
        manifest = read_manifest(current)
        return _ok("bundle", f"{manifest.bundle_version} (model {manifest.model_version}, signature not checked: no --trust), previous {previous}")
    from runtime.bundle.verify import verify_bundle
    from runtime.keys import TrustStore

    try:
        manifest = verify_bundle(current, TrustStore.from_dir(config.trust_dir))
    except SkyvoiceError as exc:
        return _fix("bundle", str(exc), "flash the signed bundle again")
    return _ok("bundle", f"{manifest.bundle_version} (model {manifest.model_version}), signature and files verified, previous {previous}")


def check_voices(config: DoctorConfig) -> CheckResult:
    from runtime.bundle.voices import list_voices

    current = ReleaseStore(config.root).current_dir()
    voices = list_voices(current) if current else []
    if not voices:
        return _fix("voices", "no voice pack installed", "install one: skyvoice voice install PACK.npz (with PACK.npz.sig)")
    return _ok("voices", ", ".join(voices))


def check_engines(config: DoctorConfig, facts: BoxFacts) -> CheckResult:
    """Every engine's key (`engines/<graph>.engine.key.json`) against this box and the bundle's ONNX hashes."""
    from runtime.trt.engine_key import EngineKeyError, check_engine, graph_sha256, platform_from_facts, read_key

    current = ReleaseStore(config.root).current_dir()
    keys = sorted((current / ENGINES_DIR).glob("*" + ENGINE_KEY_SUFFIX)) if current else []
    if not keys:
        if facts.tensorrt:
            return _fix("engines", "no TensorRT engines built; ONNX Runtime serves meanwhile",
                        "build them: skyvoice engines build ROOT/current")
        return _ok("engines", "none (no TensorRT on this box; ONNX Runtime serves)")
    try:
        platform = platform_from_facts(facts)
    except EngineKeyError as exc:
        return _ok("engines", f"{len(keys)} engine(s) present but unusable here ({exc}); ONNX Runtime serves")
    files = read_manifest(current).files
    stale = []
    for path in keys:
        engine = path.with_name(path.name[: -len(".key.json")])
        try:
            onnx_file = read_key(engine).onnx_file
        except EngineKeyError as exc:
            stale.append(f"{engine.name}: {exc}")
            continue
        graph = current / onnx_file
        match = check_engine(engine, platform, graph_sha256(graph) if onnx_file in files and graph.is_file() else "")
        if not match.ok:
            stale.append(f"{engine.name}: {match}")
    if stale:
        return _fix("engines", "stale engines: " + "; ".join(stale), "rebuild them: skyvoice engines build ROOT/current")
    return _ok("engines", f"{len(keys)} engine(s) match this box and the bundle")


def check_readiness(config: DoctorConfig) -> Optional[CheckResult]:
    """The static TensorRT readiness of `--bundle` (operators, no Loop/If in the decode path, shapes)."""
    if config.bundle is None:
        return None
    from runtime.trt.readiness import check_bundle as readiness_of

    report = readiness_of(config.bundle)
    detail = report.format()
    if report.ok:
        return _ok("tensorrt-readiness", detail)
    return _fix("tensorrt-readiness", detail, "re-export the graphs named above (see docs/bundle-format.md)")


def check_amplifier(config: DoctorConfig) -> Optional[CheckResult]:
    if config.amp_profile is None:
        return None
    from device.errors import DeviceError
    from device.open_amplifier import open_amplifier

    try:
        amplifier = open_amplifier(config.amp_profile, config.amp_port)
        try:
            state = amplifier.read_state()
        finally:
            amplifier.close()
    except DeviceError as exc:
        return _fix("amplifier", str(exc), f"check the RS485 wiring, port {config.amp_port or '?'}, baud rate and device id")
    faults = f", faults: {', '.join(state.faults)}" if state.faults else ""
    detail = f"answers on {config.amp_port or 'null'} (powered={state.powered} muted={state.muted} volume={state.volume_pct}%{faults})"
    if state.faults:
        return _fix("amplifier", detail, "clear the amplifier faults (see its manual) before relying on it")
    return _ok("amplifier", detail)


def mqtt_connect_packet(client_id: str) -> bytes:
    """A minimal MQTT 3.1.1 CONNECT (clean session, keepalive 10 s); enough to see a CONNACK."""
    cid = client_id.encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x0a"
    payload = len(cid).to_bytes(2, "big") + cid
    body = variable + payload
    return bytes([0x10, len(body)]) + body


def check_broker(config: DoctorConfig) -> Optional[CheckResult]:
    if not config.broker_host:
        return None
    where = f"{config.broker_host}:{config.broker_port}"
    try:
        with socket.create_connection((config.broker_host, config.broker_port), timeout=BROKER_TIMEOUT_S) as sock:
            sock.settimeout(BROKER_TIMEOUT_S)
            sock.sendall(mqtt_connect_packet(f"skyvoice-doctor-{os.getpid()}"))
            reply = sock.recv(4)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
    except OSError as exc:
        return _fix("broker", f"{where} unreachable ({exc})", "check the address, the link and that mosquitto runs")
    if len(reply) < 4 or reply[0] != 0x20:
        return _fix("broker", f"{where} answered but not with an MQTT CONNACK", "check the port is the MQTT listener")
    if reply[3] != 0:
        return _fix("broker", f"{where} refused the connection (CONNACK code {reply[3]})", "check the broker's listener and ACLs")
    return _ok("broker", f"{where} accepts MQTT connections")


def check_clock(now: Optional[float] = None, timedatectl: Optional[str] = None) -> CheckResult:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    if not EARLIEST_SANE_TIME <= now < LATEST_SANE_TIME:
        return _fix("clock", f"{stamp} is not plausible", "set the time (timedatectl set-time, or fix NTP/GPS); expiry checks depend on it")
    synced = _ntp_synchronized(timedatectl)
    if synced is False:
        return _fix("clock", f"{stamp}, not NTP-synchronised", "enable NTP (timedatectl set-ntp true) or a GPS time source")
    return _ok("clock", stamp + (", NTP-synchronised" if synced else ""))


def _ntp_synchronized(timedatectl: Optional[str]) -> Optional[bool]:
    program = timedatectl or shutil.which("timedatectl")
    if not program:
        return None
    try:
        result = subprocess.run([program, "show", "-p", "NTPSynchronized", "--value"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = result.stdout.strip()
    return {"yes": True, "no": False}.get(value) if result.returncode == 0 else None


def run_checks(config: DoctorConfig, facts: Optional[BoxFacts] = None) -> list[CheckResult]:
    facts = facts if facts is not None else probe_box_facts()
    checks: list[tuple[str, Callable[[], Optional[CheckResult]]]] = [
        ("jetpack", lambda: check_l4t(facts)),
        ("tensorrt", lambda: check_tensorrt(facts)),
        ("cuda", lambda: check_cuda(facts)),
        ("gpu", lambda: check_gpu(facts)),
        ("native-step", check_native_step),
        ("memory", lambda: check_memory(config)),
        ("disk", lambda: check_disk(config)),
        ("bundle", lambda: check_bundle(config)),
        ("voices", lambda: check_voices(config)),
        ("engines", lambda: check_engines(config, facts)),
        ("amplifier", lambda: check_amplifier(config)),
        ("broker", lambda: check_broker(config)),
        ("clock", check_clock),
        ("tensorrt-readiness", lambda: check_readiness(config)),
    ]
    results = []
    for name, check in checks:
        try:
            result = check()
        except SkyvoiceError as exc:  # a check that cannot even run is a finding, named by its message
            result = _fix(name, str(exc), "see the message and run doctor again")
        if result is not None:
            results.append(result)
    return results
