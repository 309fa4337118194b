"""Throwaway X.509 material for the NATS TLS tests, made with the system's `openssl` (skips when it is absent):
a CA, a server certificate for 127.0.0.1 signed by it, and client certificates signed by it (mutual TLS).
Keys are RSA 2048, valid one day, unencrypted; nothing here is fit for anything but a test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(d: Path, ca: str, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A key and a certificate `name`.pem/.key in `d`, signed by the CA `ca`.pem/.key there."""
    (d / f"{name}.ext").write_text(extensions + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)
    return d / f"{name}.pem", d / f"{name}.key"


def make_ca_and_server_cert(d: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A CA and, signed by it, a certificate for 127.0.0.1: (ca.pem, server.pem, server.key)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: it makes the test's certificates")
    d.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", "1", "-subj", f"/CN=qamoe-test-{name}", cwd=d)
    cert, key = _signed(d, name, "server", "/CN=127.0.0.1",
                        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth")
    return d / f"{name}.pem", cert, key


def make_client_cert(d: Path, ca: str = "ca", name: str = "client") -> tuple[Path, Path]:
    """A client certificate and key signed by the CA `ca` that make_ca_and_server_cert(d, ca) made."""
    return _signed(d, ca, name, f"/CN=qamoe-{name}", "extendedKeyUsage=clientAuth")
