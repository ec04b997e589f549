"""TLS and mTLS: option handling, and real handshakes with a TLS gRPC server of the test's own.

The handshakes go to a grpc server on 127.0.0.1 with no services: a call that reaches it
fails UNIMPLEMENTED (the handshake passed), one that cannot fails UNAVAILABLE. The same
cases against a real City serving TLS are in test_city_tls.py.
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
from concurrent import futures
from typing import Iterator

import grpc
import pytest

from downcity import TLS, AsyncUserClient, DowncityError, UserClient
from downcity._tls import connection

MAKE_PKI = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "make-test-pki"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run([str(MAKE_PKI), str(directory)], check=True)
    return directory


def tls_server(pki: pathlib.Path, require_client: bool) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    credentials = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes() if require_client else None,
        require_client_auth=require_client)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


@pytest.fixture(scope="module")
def tls_addr(pki: pathlib.Path) -> Iterator[str]:
    yield from tls_server(pki, require_client=False)


@pytest.fixture(scope="module")
def mtls_addr(pki: pathlib.Path) -> Iterator[str]:
    yield from tls_server(pki, require_client=True)


def reaches(target: str, **kwargs: object) -> grpc.StatusCode:
    """The code of one call: UNIMPLEMENTED once TLS is through, UNAVAILABLE if not."""
    with UserClient(target, "studio", "dcu_token", timeout=10, **kwargs) as client:  # type: ignore[arg-type]
        with pytest.raises(DowncityError) as caught:
            client.ai.models()
    code: grpc.StatusCode = caught.value.code
    return code


def test_private_ca(pki, tls_addr):
    assert reaches(tls_addr, tls=TLS(ca=pki / "ca.pem")) == grpc.StatusCode.UNIMPLEMENTED
    assert reaches(f"https://{tls_addr}", tls=TLS(ca=str(pki / "ca.pem"))) == grpc.StatusCode.UNIMPLEMENTED
    # The PEM itself, as bytes or text; and a server name the certificate carries.
    pem = (pki / "ca.pem").read_bytes()
    assert reaches(tls_addr, tls=TLS(ca=pem, server_name="city.test")) == grpc.StatusCode.UNIMPLEMENTED
    assert reaches(tls_addr, tls=TLS(ca=pem.decode())) == grpc.StatusCode.UNIMPLEMENTED
    assert reaches(tls_addr, credentials=grpc.ssl_channel_credentials(pem)) == grpc.StatusCode.UNIMPLEMENTED


def test_what_must_not_connect(pki, tls_addr):
    assert reaches(tls_addr, tls=TLS(ca=pki / "other-ca.pem")) == grpc.StatusCode.UNAVAILABLE
    assert reaches(tls_addr, tls=TLS(ca=pki / "ca.pem", server_name="other.test")) == grpc.StatusCode.UNAVAILABLE
    # https:// alone trusts the system roots only: the test CA is not one of them.
    assert reaches(f"https://{tls_addr}") == grpc.StatusCode.UNAVAILABLE
    assert reaches(tls_addr) == grpc.StatusCode.UNAVAILABLE  # plaintext to a TLS port


def test_mutual_tls(pki, mtls_addr):
    mtls = TLS(ca=pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key")
    assert reaches(mtls_addr, tls=mtls) == grpc.StatusCode.UNIMPLEMENTED
    assert reaches(mtls_addr, tls=TLS(ca=pki / "ca.pem")) == grpc.StatusCode.UNAVAILABLE
    other = TLS(ca=pki / "ca.pem", cert=pki / "other-client.pem", key=pki / "other-client.key")
    assert reaches(mtls_addr, tls=other) == grpc.StatusCode.UNAVAILABLE


def test_async_client_over_mutual_tls(pki, mtls_addr):
    async def run() -> grpc.StatusCode:
        mtls = TLS(ca=pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key")
        async with AsyncUserClient(f"https://{mtls_addr}", "studio", "dcu_token", tls=mtls, timeout=10) as client:
            with pytest.raises(DowncityError) as caught:
                await client.ai.models()
        code: grpc.StatusCode = caught.value.code
        return code

    assert asyncio.run(run()) == grpc.StatusCode.UNIMPLEMENTED


def test_targets_and_options():
    assert connection("127.0.0.1:1", None, None, []) == ("127.0.0.1:1", None, [])
    assert connection("http://127.0.0.1:1/", None, None, []) == ("127.0.0.1:1", None, [])
    address, credentials, _ = connection("https://city.example:443", None, None, [])
    assert address == "city.example:443" and isinstance(credentials, grpc.ChannelCredentials)
    _, credentials, options = connection("127.0.0.1:1", TLS(server_name="city.test"), None, [("a", 1)])
    assert credentials is not None
    assert options == [("a", 1), ("grpc.ssl_target_name_override", "city.test"),
                       ("grpc.default_authority", "city.test")]


@pytest.mark.parametrize(
    ("target", "kwargs", "error", "expected"),
    [
        ("http://127.0.0.1:1", {"tls": TLS()}, ValueError, "is plaintext (http://) but TLS was asked for"),
        ("127.0.0.1:1", {"tls": TLS(), "credentials": grpc.ssl_channel_credentials()}, ValueError, "not both"),
        ("127.0.0.1:1", {"tls": TLS(cert=b"-----BEGIN CERTIFICATE-----")}, ValueError, "needs its key"),
        ("127.0.0.1:1", {"tls": TLS(key=b"-----BEGIN PRIVATE KEY-----")}, ValueError, "needs its key"),
        ("127.0.0.1:1", {"tls": TLS(ca=42)}, TypeError, "TLS ca: expected PEM bytes"),  # type: ignore[arg-type]
        ("127.0.0.1:1", {"tls": TLS(ca="/nonexistent/ca.pem")}, FileNotFoundError, "/nonexistent/ca.pem"),
    ],
)
def test_bad_options(target, kwargs, error, expected):
    with pytest.raises(error) as caught:
        UserClient(target, "studio", "token", **kwargs)
    assert expected in str(caught.value)
