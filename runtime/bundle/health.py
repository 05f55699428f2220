"""The default health check of a freshly switched release: every graph loads in ONNX Runtime and, when the neural
voice is available, a test phrase is synthesised, non-silent, in sane time.

It runs in a child process (`python -m runtime.bundle.health RELEASE`) so a crash inside ONNX Runtime is a failed
check, not a dead installer.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Optional

import numpy as np

from runtime.bundle.errors import HealthCheckFailed
from runtime.bundle.manifest import VOICES_DIR, read_manifest

_LOGGER = logging.getLogger(__name__)

TEST_PHRASE: Final = "This is a test of the public address system."
DEFAULT_TIMEOUT_S: Final = 600.0
TEST_MAX_TOKENS: Final = 500  # 20 s of semantic tokens: far more than the phrase needs, bounds a runaway decode
MIN_RMS: Final = 1e-4
MAX_REAL_TIME_FACTOR: Final = 10.0  # synthesis slower than 10x real time is not a usable PA voice


@dataclass(frozen=True)
class HealthReport:
    graphs: tuple[str, ...]
    backends: tuple[str, ...]
    synthesized_s: Optional[float] = None
    real_time_factor: Optional[float] = None
    note: str = ""


def graph_files(release_dir: Path) -> list[Path]:
    manifest = read_manifest(release_dir)
    files = [release_dir / g["file"] for g in manifest.graphs.values() if isinstance(g, dict) and "file" in g]
    if not files:
        files = sorted((release_dir / "graphs").glob("*.onnx"))
    if not files:
        raise HealthCheckFailed(f"release {release_dir} has no graphs (manifest 'graphs' is empty, graphs/ has no .onnx)")
    return files


def load_graphs(release_dir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    from runtime.errors import SynthesisError
    from runtime.synth.runner import OrtRunner

    names, backends = [], []
    for path in graph_files(release_dir):
        try:
            runner = OrtRunner(path, intra_op_threads=1)
        except SynthesisError as exc:
            raise HealthCheckFailed(f"graph {path} does not load: {exc}") from None
        names.append(path.stem)
        backends.append(runner.backend)
    return tuple(names), tuple(backends)


def synthesize_test_phrase(release_dir: Path) -> Optional[tuple[float, float]]:
    """(seconds of audio, real-time factor), or None when the neural voice or any voice pack is not available."""
    try:
        from runtime.synth.voice_engine import load_synthesizer
    except ImportError:
        return None
    if not any((release_dir / VOICES_DIR).glob("*.npz")):
        return None
    from runtime.synth.synthesizer import SynthesisOptions

    synthesizer = load_synthesizer(release_dir)
    options = SynthesisOptions(seed=0, max_tokens=TEST_MAX_TOKENS)
    started = time.monotonic()
    chunks = synthesizer.synthesize(TEST_PHRASE, lang="en", options=options)
    pieces = [np.asarray(chunk.samples, dtype=np.float32).ravel() for chunk in chunks]
    elapsed_s = time.monotonic() - started
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    duration_s = audio.size / float(synthesizer.sample_rate_hz)
    if audio.size == 0 or not np.isfinite(audio).all():
        raise HealthCheckFailed(f"release {release_dir} produced no audio (or NaN) for the test phrase")
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    if rms < MIN_RMS:
        raise HealthCheckFailed(f"release {release_dir} produced silence for the test phrase (rms {rms:.2e})")
    rtf = elapsed_s / max(duration_s, 1e-6)
    if rtf > MAX_REAL_TIME_FACTOR:
        raise HealthCheckFailed(f"release {release_dir} synthesised at {rtf:.1f}x real time (limit {MAX_REAL_TIME_FACTOR}x)")
    return duration_s, rtf


def check_release(release_dir: str | os.PathLike, *, speak: bool = True) -> HealthReport:
    """Load every graph; with speak, also synthesise the test phrase when the neural voice is available."""
    release_dir = Path(release_dir)
    names, backends = load_graphs(release_dir)
    if not speak:
        return HealthReport(graphs=names, backends=backends, note="graphs loaded; speaking was not asked for")
    spoken = synthesize_test_phrase(release_dir)
    if spoken is None:
        return HealthReport(graphs=names, backends=backends, note="graphs loaded; no neural voice or voice pack to speak with")
    return HealthReport(graphs=names, backends=backends, synthesized_s=spoken[0], real_time_factor=spoken[1])


def default_health_check(release_dir: Path, *, timeout_s: float = DEFAULT_TIMEOUT_S, speak: bool = True) -> str:
    """Run `check_release` in a child process; raise HealthCheckFailed with its last error line."""
    command = [sys.executable, "-m", "runtime.bundle.health", str(release_dir)] + ([] if speak else ["--graphs-only"])
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise HealthCheckFailed(f"health check of {release_dir} took longer than {timeout_s:.0f} s") from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or "").strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else f"exit status {result.returncode}"
        raise HealthCheckFailed(f"health check of {release_dir} failed: {detail}")
    return result.stdout.strip()


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.bundle.health", description=__doc__)
    parser.add_argument("release", type=Path)
    parser.add_argument("--graphs-only", action="store_true", help="load the graphs but do not synthesise")
    args = parser.parse_args(argv)
    try:
        report = check_release(args.release, speak=not args.graphs_only)
    except HealthCheckFailed as exc:
        print(str(exc), file=sys.stderr)
        return 1
    summary = f"ok graphs={','.join(report.graphs)} backend={report.backends[0] if report.backends else '-'}"
    if report.synthesized_s is not None:
        summary += f" audio_s={report.synthesized_s:.2f} rtf={report.real_time_factor:.2f}"
    else:
        summary += f" note={report.note!r}"
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
