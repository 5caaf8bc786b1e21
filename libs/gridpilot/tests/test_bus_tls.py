"""The bus over TLS against a real nats-server with a throwaway certificate authority."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gridpilot.bus import Bus, BusSettings
from gridpilot.embedded import NatsServer
from gridpilot.errors import BusUnavailable

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture
def tls_files(tmp_path: Path) -> Path:
    """A CA and a server certificate for 127.0.0.1 signed by it."""
    d = tmp_path / "pki"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=test-ca",
             "-keyout", "ca.key", "-out", "ca.pem", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", "server.key", "-out", "server.csr", cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "1", "-extfile", "ext.cnf", "-out", "server.pem", cwd=d)
    return d


async def test_the_bus_connects_over_tls_with_the_ca_and_refuses_without_it(
        tmp_path: Path, tls_files: Path) -> None:
    with NatsServer.start(tmp_path / "nats", tls_cert=tls_files / "server.pem",
                          tls_key=tls_files / "server.key") as srv:
        url = f"tls://127.0.0.1:{srv.port}"
        bus = await Bus.connect(BusSettings(url=url, tls_ca=tls_files / "ca.pem",
                                            connect_attempts=1), name="tls-test")
        try:
            assert bus.connected
            await bus.ensure_streams()
        finally:
            await bus.close()
        # Without our CA the server's certificate is not trusted: a clean, transient error.
        with pytest.raises(BusUnavailable) as info:
            await Bus.connect(BusSettings(url=url, connect_attempts=1, connect_timeout_s=2),
                              name="tls-untrusted")
        assert "127.0.0.1" in str(info.value)
