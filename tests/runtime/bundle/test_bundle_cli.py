"""The technician's commands end to end: keys new, bundle sign/verify, flash (local and --box over a stand-in ssh)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from runtime.bundle.releases import ReleaseStore
from runtime.cli import main


def test_keys_sign_verify_flash(tmp_path, capsys, bundle_writer):
    assert main(["keys", "new", "--name", "fleet", "--dir", str(tmp_path / "keys")]) == 0
    assert stat.S_IMODE((tmp_path / "keys" / "fleet.key").stat().st_mode) == 0o600
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "fleet.pub").write_bytes((tmp_path / "keys" / "fleet.pub").read_bytes())
    bundle = bundle_writer(tmp_path / "bundle", None, version="3.0.0")

    assert main(["bundle", "verify", str(bundle), "--trust", str(trust)]) == 2
    assert "manifest.sig is missing" in capsys.readouterr().err
    assert main(["bundle", "sign", str(bundle), "--key", str(tmp_path / "keys" / "fleet.key")]) == 0
    assert main(["bundle", "verify", str(bundle), "--trust", str(trust)]) == 0
    assert "OK bundle" in capsys.readouterr().out
    assert main(["bundle", "verify", str(bundle / "voices" / "captain.npz"), "--trust", str(trust)]) == 0
    assert "OK voice pack" in capsys.readouterr().out

    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["model_version"] = "v3"
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    assert main(["bundle", "verify", str(bundle), "--trust", str(trust)]) == 2
    assert "does not match the content" in capsys.readouterr().err
    assert main(["keys", "new", "--name", "fleet", "--dir", str(tmp_path / "keys")]) == 2
    assert "already exists" in capsys.readouterr().err


def test_flash_status_and_refusal_exit_codes(make_bundle, keys, tmp_path, capsys):
    root = tmp_path / "box"
    common = ["--root", str(root), "--trust", str(keys.trust_dir), "--health-check", "graphs"]
    assert main(["flash", str(make_bundle("1.0.0")), *common]) == 0
    assert "OK release 1.0.0 is current and healthy" in capsys.readouterr().out
    assert main(["flash", str(make_bundle("0.9.0")), *common]) == 2
    assert "anti-rollback" in capsys.readouterr().err
    assert main(["flash", "--status", "--root", str(root)]) == 0
    assert "1.0.0  (current)" in capsys.readouterr().out


def test_flash_to_a_box_over_ssh(make_bundle, keys, tmp_path):
    """--box copies a .tar with scp and runs skyvoice flash there; a local stand-in plays ssh/scp (no remote box)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "fake-scp").write_text('#!/bin/sh\nexec cp "$1" "${2#*:}"\n')
    (bin_dir / "fake-ssh").write_text('#!/bin/sh\nshift\nexec sh -c "$1"\n')
    for name in ("fake-scp", "fake-ssh"):
        (bin_dir / name).chmod(0o755)
    root = tmp_path / "box"
    env = dict(os.environ, SKYVOICE_SSH=str(bin_dir / "fake-ssh"), SKYVOICE_SCP=str(bin_dir / "fake-scp"))
    command = [
        sys.executable, "-m", "runtime.cli", "flash", str(make_bundle("4.0.0")), "--box", "tech@box1",
        "--remote-skyvoice", f"{sys.executable} -m runtime.cli",
        "--root", str(root), "--trust", str(keys.trust_dir), "--health-check", "graphs",
    ]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "OK release 4.0.0 is current and healthy" in result.stdout
    assert ReleaseStore(root).current_version() == "4.0.0"


def test_doctor_command_exit_status_and_lines(tmp_path, capsys):
    assert main(["doctor", "--root", str(tmp_path / "box")]) == 1
    out = capsys.readouterr().out
    assert "FIX  bundle: no current release" in out
    assert out.rstrip().splitlines()[-1].endswith("to fix")


def test_scripts_flash_passes_through_to_skyvoice(tmp_path):
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    env = dict(os.environ, SKYVOICE_ROOT=str(tmp_path / "box"), SKYVOICE_TRUST=str(tmp_path / "trust"))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    result = subprocess.run([str(repo / "scripts" / "flash"), "--status"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert f"root {tmp_path / 'box'}" in result.stdout
