"""The `machinescan user` commands, run as a person would, against a real database and server."""

import subprocess
import sys

import httpx


def machinescan(data_dir, *args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "machinescan.cli.main", *args, "--data-dir", str(data_dir)],
                          input=stdin, capture_output=True, text=True, timeout=120)


def test_user_commands_manage_users_that_the_server_accepts(tmp_path):
    from servers import start_server

    data_dir = tmp_path / "data"
    added = machinescan(data_dir, "user", "add", "alice", "--entitlement", "migration_access",
                        "--password-stdin", stdin="pw-alice\n")
    assert added.returncode == 0, added.stderr
    plain = machinescan(data_dir, "user", "add", "bob", "--password-stdin", stdin="pw-bob\n")
    assert plain.returncode == 0 and "machinescan user entitle bob migration_access" in plain.stderr
    duplicate = machinescan(data_dir, "user", "add", "alice", "--password-stdin", stdin="x\n")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr
    listing = machinescan(data_dir, "user", "list").stdout.splitlines()
    assert [line.split()[0] for line in listing[1:]] == ["alice", "bob"]
    key_lines = machinescan(data_dir, "user", "apikey", "alice").stdout.splitlines()
    assert key_lines[0].startswith("public key: ") and key_lines[1].startswith("secret key: ")

    server = start_server(data_dir, f"sqlite:///{data_dir / 'db.sqlite'}")
    url = f"http://127.0.0.1:{server.port}/api"
    try:
        assert httpx.get(f"{url}/users/alice/scannedinstances", auth=("alice", "pw-alice")).status_code == 200
        assert httpx.get(f"{url}/users/bob/scannedinstances", auth=("bob", "pw-bob")).status_code == 403
        assert machinescan(data_dir, "user", "entitle", "bob", "migration_access").returncode == 0
        assert httpx.get(f"{url}/users/bob/scannedinstances", auth=("bob", "pw-bob")).status_code == 200
        deleted = machinescan(data_dir, "user", "delete", "alice")
        assert deleted.returncode == 0, deleted.stderr
        assert httpx.get(f"{url}/users/alice", auth=("alice", "pw-alice")).status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_serve_creates_a_first_administrator_once(tmp_path):
    from servers import start_server

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    server = start_server(data_dir, f"sqlite:///{data_dir / 'db.sqlite'}")
    server.terminate()
    server.wait(timeout=10)
    log = (data_dir / "server.log").read_text()
    password = log.split("password ")[1].split()[0]
    server = start_server(data_dir, f"sqlite:///{data_dir / 'db.sqlite'}")
    try:
        url = f"http://127.0.0.1:{server.port}/api"
        assert httpx.get(f"{url}/users/admin", auth=("admin", password)).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert (data_dir / "server.log").read_text().count("First administrator created") == 1
