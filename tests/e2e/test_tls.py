"""Mutual TLS: the daemon presents a client certificate to a mosquitto listener that requires one."""

from __future__ import annotations

import datetime
import ipaddress
import os
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "runtime" / "daemon"))

from daemon_docs import speak_doc  # noqa: E402

from runtime.daemon.local_broker import LocalBroker, free_port  # noqa: E402


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, ip: str | None = None):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, name: str, key, cert) -> tuple[Path, Path]:
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture
def tls_broker(broker, tmp_path):
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "skyvoice test CA")])
    ca_cert = _certificate("skyvoice test CA", ca_key, ca_name, ca_key, ca=True)
    _, ca_path = _write(tmp_path, "ca", ca_key, ca_cert)
    server_key, box_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server = _write(tmp_path, "server", server_key, _certificate("broker", server_key, ca_name, ca_key, ca=False, ip="127.0.0.1"))
    box = _write(tmp_path, "box", box_key, _certificate("box-1", box_key, ca_name, ca_key, ca=False))
    tls_port = free_port()
    running = LocalBroker(tmp_path, extra_config=(
        f"listener {tls_port} 127.0.0.1\ncafile {ca_path}\ncertfile {server[1]}\nkeyfile {server[0]}\n"
        "require_certificate true\ntls_version tlsv1.2\n"
        + ("user root\n" if os.geteuid() == 0 else "")  # as root, mosquitto drops to 'mosquitto', which cannot read tmp_path
    )).start()
    yield running, tls_port, {"ca_file": str(ca_path), "cert_file": str(box[1]), "key_file": str(box[0])}
    running.stop()


def test_daemon_connects_with_a_client_certificate(tls_broker, make_box):
    running, tls_port, tls = tls_broker
    box = make_box(mqtt={"port": tls_port}, tls=tls, broker=running)
    box.start()
    box.wait_online()
    doc = speak_doc("Over TLS.")
    box.publish("speak", doc)
    box.stream.wait_ack(doc["id"], "done", timeout=30)


def test_daemon_without_a_client_certificate_is_refused(tls_broker, make_box):
    running, tls_port, tls = tls_broker
    box = make_box(mqtt={"port": tls_port}, tls={"ca_file": tls["ca_file"]}, broker=running)
    box.start()
    with pytest.raises(AssertionError, match="no matching event"):
        box.wait_online(timeout=4)
