"""Audio sinks: `AlsaSink` (a long-lived `aplay` fed from a bounded queue), `WavFileSink`, `NullSink`.

All take mono float32 chunks at the rate given to `open(sample_rate_hz)` and follow `device.audio_sink.AudioSink`:
`write` blocks while the buffer is full, `drain` returns when everything written has been handed to the output,
`abort` drops buffered audio at once (pre-emption) and makes a blocked `write` return.
"""

from __future__ import annotations

import logging
import queue
import subprocess
import threading
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from device.errors import AudioSinkError
from device.resample import StreamResampler, to_int16_bytes

_LOGGER = logging.getLogger(__name__)


class NullSink:
    """Discards audio; counts what it was given (`samples_written`, `aborts`)."""

    def __init__(self) -> None:
        self.sample_rate_hz = 0
        self.samples_written = 0
        self.aborts = 0

    def open(self, sample_rate_hz: int) -> None:
        self.sample_rate_hz = int(sample_rate_hz)

    def write(self, samples: np.ndarray) -> None:
        self.samples_written += int(np.asarray(samples).size)

    def drain(self) -> None:
        pass

    def abort(self) -> None:
        self.aborts += 1

    def close(self) -> None:
        pass


class WavFileSink:
    """Appends every playback to one 16-bit mono WAV file at `path`; the rate is fixed by the first `open`.

    Later playbacks at another rate are resampled to it. The header is rewritten after each `drain`, so the file
    is a valid WAV between playbacks; `close` finishes it. `abort` cuts the current playback short.
    """

    def __init__(self, path: Union[str, Path]) -> None:
        self.path = Path(path)
        self._file = None
        self._file_rate_hz = 0
        self._resampler: Optional[StreamResampler] = None
        self._aborted = False
        self._lock = threading.Lock()

    @property
    def sample_rate_hz(self) -> int:
        return self._file_rate_hz

    def open(self, sample_rate_hz: int) -> None:
        import soundfile

        with self._lock:
            self._aborted = False
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    self._file = soundfile.SoundFile(
                        str(self.path), mode="w", samplerate=int(sample_rate_hz), channels=1, subtype="PCM_16"
                    )
                except (OSError, RuntimeError) as exc:
                    raise AudioSinkError(f"cannot write WAV output {self.path} ({exc}); check the directory") from None
                self._file_rate_hz = int(sample_rate_hz)
            self._resampler = StreamResampler(int(sample_rate_hz), self._file_rate_hz)

    def write(self, samples: np.ndarray) -> None:
        with self._lock:
            if self._file is None:
                raise AudioSinkError(f"WAV output {self.path} was written before open(); call open(rate) first")
            if self._aborted:
                return
            data = self._resampler.process(samples) if self._resampler else np.asarray(samples, np.float32)
            self._file.write(np.clip(data, -1.0, 1.0))

    def drain(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.flush()

    def abort(self) -> None:
        with self._lock:
            self._aborted = True

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


ProcessFactory = Callable[[Sequence[str]], "subprocess.Popen"]


def _spawn(argv: Sequence[str]) -> "subprocess.Popen":
    return subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


class AlsaSink:
    """A long-lived ALSA output through `aplay` (raw S16_LE mono at `device_rate_hz`), fed from a bounded queue.

    `write` resamples to the device rate, cuts the audio into `period_ms` blocks and queues them (blocking while
    `queue_periods` are waiting). A writer thread feeds `aplay`; while a playback is open and the queue runs dry
    (streaming synthesis fell behind) it writes silence periods, so the device never underruns mid-sentence.
    `abort` empties the queue and kills `aplay` (dropping what ALSA buffered), then returns: the next `open`
    starts a fresh `aplay`. `buffer_ms` bounds ALSA's own buffer, which `drain` waits out before returning so the
    amplifier is not muted on the last syllable. `process_factory(argv)` starts the process (tests inject a fake).
    """

    def __init__(
        self,
        device: str = "default",
        *,
        device_rate_hz: int = 48000,
        period_ms: int = 20,
        queue_periods: int = 25,
        buffer_ms: int = 100,
        process_factory: Optional[ProcessFactory] = None,
    ) -> None:
        self.device = device
        self.device_rate_hz = int(device_rate_hz)
        self.period_samples = max(1, self.device_rate_hz * int(period_ms) // 1000)
        self.buffer_s = buffer_ms / 1000.0
        self._argv = [
            "aplay", "-q", "-D", device, "-t", "raw", "-f", "S16_LE", "-c", "1",
            "-r", str(self.device_rate_hz), "--buffer-time", str(int(buffer_ms) * 1000),
        ]  # fmt: skip
        self._process_factory = process_factory or _spawn
        self._queue: "queue.Queue[bytes]" = queue.Queue(maxsize=max(1, int(queue_periods)))
        self._lock = threading.Lock()
        self._process = None
        self._writer: Optional[threading.Thread] = None
        self._stop_writer = threading.Event()
        self._aborted = threading.Event()
        self._playing = threading.Event()  # between open() and the end of drain(): fill gaps with silence
        self._idle = threading.Event()  # the writer has nothing queued and is not writing
        self._idle.set()
        self._resampler: Optional[StreamResampler] = None
        self._pending = np.zeros(0, dtype=np.float32)  # less than one period, waiting for more
        self._error: Optional[str] = None
        self._last_message = ""
        self._silence = to_int16_bytes(np.zeros(self.period_samples, dtype=np.float32))

    # --- AudioSink ----------------------------------------------------------------------------------------------

    def open(self, sample_rate_hz: int) -> None:
        with self._lock:
            self._aborted.clear()
            self._error = None
            self._resampler = StreamResampler(int(sample_rate_hz), self.device_rate_hz)
            self._pending = np.zeros(0, dtype=np.float32)
            if self._process is None or self._process.poll() is not None:
                self._start_process()
            self._playing.set()

    def write(self, samples: np.ndarray) -> None:
        if self._aborted.is_set():
            return
        self._raise_if_failed()
        if self._resampler is None:
            raise AudioSinkError(f"ALSA output '{self.device}' was written before open(); call open(rate) first")
        data = np.concatenate([self._pending, self._resampler.process(samples)])
        whole = (data.size // self.period_samples) * self.period_samples
        self._pending = data[whole:]
        for start in range(0, whole, self.period_samples):
            if not self._put(to_int16_bytes(data[start:start + self.period_samples])):
                return

    def drain(self) -> None:
        if self._pending.size and not self._aborted.is_set():
            block = np.zeros(self.period_samples, dtype=np.float32)
            block[: self._pending.size] = self._pending
            self._pending = np.zeros(0, dtype=np.float32)
            self._put(to_int16_bytes(block))
        self._playing.clear()  # no more silence filling: the writer goes idle once the queue is empty
        while not self._aborted.is_set() and not self._error:
            if self._idle.wait(0.05) and self._queue.empty():
                break
        if not self._aborted.is_set():
            self._aborted.wait(self.buffer_s)  # let ALSA play out its own buffer; returns early on abort
        self._raise_if_failed()

    def abort(self) -> None:
        """Drop everything buffered now: empty the queue, kill `aplay`, release a blocked `write`."""
        self._aborted.set()
        self._playing.clear()
        self._clear_queue()
        with self._lock:
            process, self._process = self._process, None
            writer, self._writer = self._writer, None
            self._stop_writer.set()
        if process is not None:
            self._kill(process)
        if writer is not None:
            writer.join(timeout=1.0)
        self._clear_queue()
        _LOGGER.info("alsa abort device=%s", self.device)

    def close(self) -> None:
        self._playing.clear()
        with self._lock:
            process, self._process = self._process, None
            writer, self._writer = self._writer, None
            self._stop_writer.set()
        self._clear_queue()
        if writer is not None:
            writer.join(timeout=2.0)
        if process is not None:
            try:
                if process.stdin:
                    process.stdin.close()
            except OSError:  # the pipe is already broken: the process is gone
                pass
            try:
                process.wait(timeout=max(1.0, 2 * self.buffer_s))
            except subprocess.TimeoutExpired:
                self._kill(process)

    # --- internals ----------------------------------------------------------------------------------------------

    def _start_process(self) -> None:
        try:
            process = self._process_factory(self._argv)
        except OSError as exc:
            raise AudioSinkError(
                f"cannot start aplay for ALSA device '{self.device}' ({exc}); install alsa-utils or use the WAV sink"
            ) from None
        self._process = process
        if getattr(process, "stderr", None) is not None:  # drain aplay's messages so it never blocks on a full pipe
            threading.Thread(target=self._read_stderr, args=(process.stderr,), name="alsa-stderr", daemon=True).start()
        self._stop_writer = threading.Event()
        self._idle.set()
        self._writer = threading.Thread(
            target=self._write_loop, args=(process, self._stop_writer), name=f"alsa-writer-{self.device}", daemon=True
        )
        self._writer.start()
        _LOGGER.info("alsa open device=%s rate=%d", self.device, self.device_rate_hz)

    def _put(self, block: bytes) -> bool:
        while not self._aborted.is_set():
            self._raise_if_failed()
            try:
                self._queue.put(block, timeout=0.05)
                self._idle.clear()
                return True
            except queue.Full:
                continue
        return False

    def _clear_queue(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _write_loop(self, process, stop: threading.Event) -> None:
        stdin = process.stdin
        while not stop.is_set():
            try:
                block = self._queue.get(timeout=0.02)
            except queue.Empty:
                if not self._playing.is_set():
                    self._idle.set()
                    continue
                block = self._silence  # streaming fell behind: keep the device fed
            try:
                stdin.write(block)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError) as exc:
                if not stop.is_set():
                    said = f": {self._last_message}" if self._last_message else ""
                    self._error = f"aplay on ALSA device '{self.device}' stopped ({exc}{said}); check the device name"
                    _LOGGER.warning("alsa writer error device=%s error=%s", self.device, exc)
                return
            if self._queue.empty() and not self._playing.is_set():
                self._idle.set()

    def _read_stderr(self, stream) -> None:
        try:
            for raw in iter(stream.readline, b""):
                line = raw.decode(errors="replace").strip()
                if line:
                    self._last_message = line
                    _LOGGER.debug("aplay device=%s says=%s", self.device, line)
        except (OSError, ValueError):  # the pipe closed with the process
            return

    def _raise_if_failed(self) -> None:
        if self._error:
            raise AudioSinkError(self._error)

    @staticmethod
    def _kill(process) -> None:
        try:
            process.kill()
        except OSError:  # already exited
            pass
        try:
            process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            _LOGGER.warning("alsa aplay did not exit after kill pid=%s", getattr(process, "pid", "?"))
