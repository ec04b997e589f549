"""A real City for the SDK tests: `downcity serve --dev` on port 0 with its own
data dir; the admin CLI (the same binary) sets up studios, limits and models
and reads the usage rows."""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import signal
import subprocess
import tempfile
import time
from typing import Any, Dict, Iterator

import pytest
from openai import OpenAI

REPO = pathlib.Path(__file__).resolve().parents[3]
KEYS = ("DOWNCITY_ADDR", "DOWNCITY_ADMIN_KEY")


def city_binary() -> str:
    """$DOWNCITY_BIN, else target/debug/downcity."""
    path = os.environ.get("DOWNCITY_BIN") or str(REPO / "target/debug/downcity")
    if not os.path.exists(path):
        pytest.fail("no City binary: run `cargo build --bin downcity` (or set DOWNCITY_BIN)")
    return path


def read_dev_env(path: pathlib.Path) -> Dict[str, str]:
    env: Dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep:
            env[key.strip()] = value.strip()
    return env


class City:
    def __init__(self, env: Dict[str, str]) -> None:
        self.addr = env["DOWNCITY_ADDR"]
        self.admin_key = env["DOWNCITY_ADMIN_KEY"]
        self.base_url = f"http://{self.addr}/v1"
        self._studios = itertools.count()

    def admin(self, *args: str) -> Any:
        """Runs `downcity admin ... --json` and returns its JSON output."""
        env = dict(os.environ, DOWNCITY_ADDR=self.addr, DOWNCITY_ADMIN_KEY=self.admin_key)
        out = subprocess.run(
            [city_binary(), "admin", *args, "--json"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout
        return json.loads(out) if out.strip() else None

    def new_user(self) -> tuple[str, str]:
        """A fresh studio with one user; returns (studio id, user token)."""
        studio = f"sdk-py-{next(self._studios)}"
        self.admin("studios", "create", "--id", studio)
        issued = self.admin("tokens", "issue", studio, "user-1")
        return studio, issued["secret"]

    def client(self, token: str) -> OpenAI:
        # No retries: a refused call must surface at once, not be retried.
        return OpenAI(api_key=token, base_url=self.base_url, max_retries=0)

    def usage_rows(self, studio: str) -> list[dict[str, Any]]:
        listed = self.admin("usage", "list", "--studio", studio, "--all")
        rows: list[dict[str, Any]] = []
        for page in listed if isinstance(listed, list) else [listed]:
            rows.extend(page.get("records", []))
        return rows


@pytest.fixture(scope="session")
def city() -> Iterator[City]:
    with tempfile.TemporaryDirectory(prefix="downcity-openai-py-") as data_dir:
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
            yield City(env)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
