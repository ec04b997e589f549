"""A real City for the tests: `downcity serve --dev` on port 0 with its own data dir."""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import tempfile
import time
from typing import Dict, Iterator

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
KEYS = ("DOWNCITY_ADDR", "DOWNCITY_ADMIN_KEY", "DOWNCITY_STUDIO_ID", "DOWNCITY_USER_TOKEN")


def city_binary() -> str:
    """$DOWNCITY_BIN, else the newest of target/{release,debug}/downcity."""
    if os.environ.get("DOWNCITY_BIN"):
        return os.environ["DOWNCITY_BIN"]
    found = [p for p in (REPO / "target/release/downcity", REPO / "target/debug/downcity") if p.exists()]
    if not found:
        pytest.fail("no City binary: run `cargo build --bin downcity` (or set DOWNCITY_BIN)")
    return str(max(found, key=lambda p: p.stat().st_mtime))


def read_dev_env(path: pathlib.Path) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


class City:
    def __init__(self, env: Dict[str, str], data_dir: str) -> None:
        self.env = env
        self.data_dir = data_dir
        self.addr = env["DOWNCITY_ADDR"]
        self.admin_key = env["DOWNCITY_ADMIN_KEY"]
        self.studio_id = env["DOWNCITY_STUDIO_ID"]
        self.user_token = env["DOWNCITY_USER_TOKEN"]


@pytest.fixture(scope="session")
def city() -> Iterator[City]:
    with tempfile.TemporaryDirectory(prefix="downcity-py-") as data_dir:
        log = open(os.path.join(data_dir, "city.log"), "wb")
        proc = subprocess.Popen(
            [city_binary(), "serve", "--dev", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        try:
            dev_env = pathlib.Path(data_dir, "dev.env")
            deadline = time.monotonic() + 60
            env: Dict[str, str] = {}
            while not all(k in env for k in KEYS):
                if proc.poll() is not None:
                    pytest.fail(f"City exited with {proc.returncode}: "
                                f"{pathlib.Path(data_dir, 'city.log').read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail("City wrote no dev.env within 60 s")
                if dev_env.exists():
                    env = read_dev_env(dev_env)
                time.sleep(0.05)
            yield City(env, data_dir)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
