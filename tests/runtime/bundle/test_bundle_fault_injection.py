"""SIGKILL the real installer (`skyvoice flash` in a child process) at every step; the next start must leave the
previous release active and serving. The child stops at step N through SKYVOICE_FLASH_STOP_AT and tells us over a
pipe; we kill it only then (no sleeps)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys

import pytest

from runtime.bundle.box_facts import BoxFacts
from runtime.bundle.health import check_release
from runtime.bundle.install import STEPS, STOP_AT_ENV, STOP_FD_ENV, flash
from runtime.bundle.releases import ReleaseStore
from runtime.bundle.verify import verify_bundle

WAIT_S = 120.0


def skyvoice(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "runtime.cli", *args], capture_output=True, text=True, timeout=WAIT_S, **kwargs)


def flash_args(bundle, root, keys) -> list[str]:
    return ["flash", str(bundle), "--root", str(root), "--trust", str(keys.trust_dir), "--health-check", "graphs"]


def run_until_step(args: list[str], step: str) -> subprocess.Popen:
    read_fd, write_fd = os.pipe()
    env = dict(os.environ, **{STOP_AT_ENV: step, STOP_FD_ENV: str(write_fd)})
    child = subprocess.Popen(
        [sys.executable, "-m", "runtime.cli", *args], env=env, pass_fds=(write_fd,),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    os.close(write_fd)
    try:
        ready, _, _ = select.select([read_fd], [], [], WAIT_S)
        reached = os.read(read_fd, 64).decode().strip() if ready else ""
    finally:
        os.close(read_fd)
    if reached != step:
        child.kill()
        _, err = child.communicate(timeout=WAIT_S)
        pytest.fail(f"installer did not stop at {step!r} (got {reached!r}); stderr: {err.decode()[-2000:]}")
    return child


def assert_serving(root, keys, version):
    store = ReleaseStore(root)
    assert store.current_version() == version
    verify_bundle(root / "current", keys.trust)
    assert len(check_release(root / "current", speak=False).graphs) == 4


@pytest.fixture
def box_with_v1(make_bundle, keys, tmp_path):
    root = tmp_path / "box"
    result = skyvoice(*flash_args(make_bundle("1.0.0"), root, keys))
    assert result.returncode == 0, result.stderr
    return root


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_keeps_previous_release(step, box_with_v1, make_bundle, keys):
    root = box_with_v1
    child = run_until_step(flash_args(make_bundle("2.0.0"), root, keys), step)
    try:
        store = ReleaseStore(root)
        if step in ("switched", "restarted", "health_checked"):
            assert store.current_version() == "2.0.0" and store.read_pending() is not None
            # The daemon starting now must not undo a flash that is still running (the installer holds the lock).
            assert "in progress" in store.recover().note
            assert store.current_version() == "2.0.0"
        elif step != "confirmed":
            assert store.current_version() == "1.0.0"
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=WAIT_S)
    assert child.returncode == -signal.SIGKILL

    recovered = skyvoice("flash", "--recover", "--root", str(root))  # what the box does on its next start
    assert recovered.returncode == 0, recovered.stderr
    store = ReleaseStore(root)
    assert store.read_pending() is None
    assert not list(store.staging_dir.iterdir())
    if step == "confirmed":  # the new release was already confirmed healthy: it stays
        assert_serving(root, keys, "2.0.0")
        assert store.previous_version() == "1.0.0"
    else:
        assert_serving(root, keys, "1.0.0")
        assert store.versions() == ["1.0.0"]
        if step in ("switched", "restarted", "health_checked"):
            assert "never confirmed healthy; rolled back to 1.0.0" in recovered.stdout

    flash(make_bundle("2.0.1"), root, keys.trust, lambda release: "ok", facts=BoxFacts())  # the next flash works
    assert_serving(root, keys, "2.0.1")
