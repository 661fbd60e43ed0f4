"""Starting real servers on free loopback ports, for integration tests."""

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx

from machinescan.server.auth import MIGRATION_ACCESS, add_user, new_api_key
from machinescan.server.db.engine import Database


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class RunningServer:
    url: str  # ends with /api
    data_dir: Path
    database_url: str
    process: subprocess.Popen
    database: Database
    log_path: Path

    def add_user(self, admin: bool = False, entitled: bool = True) -> "Account":
        login = f"user-{uuid.uuid4().hex[:10]}"
        password = uuid.uuid4().hex
        with self.database.session() as session:
            add_user(session, login, password, admin=admin,
                     entitlements=(MIGRATION_ACCESS,) if entitled else ())
        return Account(login, password, self)

    def client(self, account: "Account | None" = None, **kwargs) -> httpx.Client:
        auth = (account.login, account.password) if account else None
        return httpx.Client(base_url=self.url, auth=auth, timeout=60, **kwargs)

    def blob_files(self) -> list[Path]:
        blobs = self.data_dir / "blobs"
        return sorted(p for p in blobs.rglob("*") if p.is_file() and ".staging" not in p.parts)


@dataclass
class Account:
    login: str
    password: str
    server: RunningServer

    def api_key(self) -> tuple[str, str]:
        from machinescan.server.auth import find_user

        with self.server.database.session() as session:
            key = new_api_key(session, find_user(session, self.login))
            return key.public_key, key.secret_key


def start_server(data_dir: Path, database_url: str, port: int | None = None,
                 extra_env: dict | None = None) -> subprocess.Popen:
    port = port or free_port()
    env = {**os.environ, "MACHINESCAN_DATABASE_URL": database_url, **(extra_env or {})}
    log = open(data_dir / "server.log", "ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "machinescan.cli.main", "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    process.port = port
    wait_until_up(f"http://127.0.0.1:{port}/api", process, data_dir / "server.log")
    return process


def wait_until_up(url: str, process: subprocess.Popen, log_path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if httpx.get(f"{url}/status", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer within {timeout}s:\n{log_path.read_text()}")


