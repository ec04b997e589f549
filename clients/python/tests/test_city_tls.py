"""The client over TLS and mTLS against a real City (`serve --tls-cert/--tls-key/--tls-client-ca`)."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Dict, Iterator, List

import grpc
import pytest

from conftest import city_binary, read_dev_env
from downcity import TLS, DowncityError, UserClient

MAKE_PKI = pathlib.Path(__file__).resolve().parents[2] / "testdata" / "make-test-pki"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    directory = tmp_path_factory.mktemp("pki")
    subprocess.run([str(MAKE_PKI), str(directory)], check=True)
    return directory


@contextlib.contextmanager
def city(pki: pathlib.Path, extra: List[str]) -> Iterator[Dict[str, str]]:
    """`serve --dev` over TLS with copies of the test PKI's server pair (so a test may rotate them)."""
    with tempfile.TemporaryDirectory(prefix="downcity-py-tls-") as data_dir:
        cert, key = pathlib.Path(data_dir, "tls.crt"), pathlib.Path(data_dir, "tls.key")
        shutil.copy(pki / "server.pem", cert)
        shutil.copy(pki / "server.key", key)
        log = open(os.path.join(data_dir, "city.log"), "wb")
        env = dict(os.environ, DOWNCITY_TLS__RELOAD_INTERVAL_MS="100")
        proc = subprocess.Popen(
            [city_binary(), "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir,
             "--tls-cert", str(cert), "--tls-key", str(key), *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            dev_env = pathlib.Path(data_dir, "dev.env")
            deadline = time.monotonic() + 60
            while not dev_env.exists() or "DOWNCITY_USER_TOKEN" not in dev_env.read_text():
                if proc.poll() is not None:
                    pytest.fail(f"City exited: {pathlib.Path(data_dir, 'city.log').read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail("City wrote no dev.env within 60 s")
                time.sleep(0.05)
            values = read_dev_env(dev_env)
            values["DATA_DIR"] = data_dir
            yield values
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            log.close()


@pytest.fixture(scope="module")
def tls_city(pki: pathlib.Path) -> Iterator[Dict[str, str]]:
    with city(pki, []) as env:
        yield env


@pytest.fixture(scope="module")
def mtls_city(pki: pathlib.Path) -> Iterator[Dict[str, str]]:
    with city(pki, ["--tls-client-ca", str(pki / "ca.pem")]) as env:
        yield env


def client(env: Dict[str, str], target: str = "", **kwargs: object) -> UserClient:
    return UserClient(target or env["DOWNCITY_ADDR"], env["DOWNCITY_STUDIO_ID"],
                      env["DOWNCITY_USER_TOKEN"], timeout=10, **kwargs)  # type: ignore[arg-type]


def refused(env: Dict[str, str], target: str = "", **kwargs: object) -> grpc.StatusCode:
    with client(env, target, **kwargs) as c, pytest.raises(DowncityError) as caught:
        c.ai.text("let me in")
    code: grpc.StatusCode = caught.value.code
    return code


def test_dev_env_names_an_https_address(tls_city):
    assert tls_city["DOWNCITY_ADDR"].startswith("https://127.0.0.1:")


def test_text_and_streams_over_tls(pki, tls_city):
    with client(tls_city, tls=TLS(ca=pki / "ca.pem")) as c:
        assert c.ai.text("over TLS").text == "Echo: over TLS"
        stream = c.ai.stream("one two three")
        assert "".join(piece.delta for piece in stream) == "Echo: one two three"
        assert stream.usage is not None and stream.usage.output_tokens > 0
        cancelled = c.ai.stream("a long story " * 50, max_tokens=500)
        next(cancelled)
        cancelled.cancel()
        assert list(cancelled) == []
    # The certificate also holds DNS city.test: reach 127.0.0.1 under that name.
    with client(tls_city, tls=TLS(ca=pki / "ca.pem", server_name="city.test")) as c:
        assert c.ai.text("by name").text == "Echo: by name"


def test_what_city_refuses_over_tls(pki, tls_city):
    plain = tls_city["DOWNCITY_ADDR"].removeprefix("https://")
    assert refused(tls_city, plain) == grpc.StatusCode.UNAVAILABLE
    assert refused(tls_city, tls=TLS(ca=pki / "other-ca.pem")) == grpc.StatusCode.UNAVAILABLE


def test_mtls(pki, mtls_city):
    mtls = TLS(ca=pki / "ca.pem", cert=pki / "client.pem", key=pki / "client.key")
    with client(mtls_city, tls=mtls) as c:
        assert c.ai.text("mutual").text == "Echo: mutual"
    assert refused(mtls_city, tls=TLS(ca=pki / "ca.pem")) == grpc.StatusCode.UNAVAILABLE
    other = TLS(ca=pki / "ca.pem", cert=pki / "other-client.pem", key=pki / "other-client.key")
    assert refused(mtls_city, tls=other) == grpc.StatusCode.UNAVAILABLE


def test_rotation_is_seen_by_a_new_connection(pki, tmp_path):
    """City reloads its files: after a swap to a pair from another CA, new connections need that CA."""
    subprocess.run([str(MAKE_PKI), str(tmp_path)], check=True)
    with city(pki, []) as env:
        data_dir = pathlib.Path(env["DATA_DIR"])
        with client(env, tls=TLS(ca=pki / "ca.pem")) as c:
            assert c.ai.text("before").text == "Echo: before"
        for name, source in (("tls.key", "server.key"), ("tls.crt", "server.pem")):
            shutil.copy(tmp_path / source, data_dir / f"{name}.new")
            os.replace(data_dir / f"{name}.new", data_dir / name)
        deadline = time.monotonic() + 10
        while True:
            try:
                with client(env, tls=TLS(ca=tmp_path / "ca.pem")) as c:
                    assert c.ai.text("after").text == "Echo: after"
                break
            except DowncityError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert refused(env, tls=TLS(ca=pki / "ca.pem")) == grpc.StatusCode.UNAVAILABLE
