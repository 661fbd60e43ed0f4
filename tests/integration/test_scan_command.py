"""`machinescan scan` run as a person would: the agent on this machine, or pushed over a real sshd (started here
on loopback as root with throw-away keys), into a real server; the scan must arrive with the tree's files."""

import glob
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from servers import free_port

from machinescan.cli.browse import _size
from machinescan.cli.scan import AGENT

SSHD = "/usr/sbin/sshd"
AGENT_SOURCES = Path(__file__).resolve().parents[2] / "src" / "machinescan"
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module", autouse=True)
def fresh_agent():
    if not AGENT.is_file():
        pytest.fail(f"{AGENT} is missing: run `make agent`")
    sources = [*(AGENT_SOURCES / "agent").rglob("*.py"), *(AGENT_SOURCES / "report").rglob("*.py")]
    if max(path.stat().st_mtime for path in sources) > AGENT.stat().st_mtime:
        pytest.fail(f"{AGENT} is older than the agent's sources: run `make agent`")


def tree(tmp_path: Path) -> Path:
    """A small system root: an os-release, a config file, a binary file and a nested folder."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n')
    (root / "srv" / "app" / "conf.d").mkdir(parents=True)
    (root / "srv" / "app" / "conf.d" / "main.ini").write_text("[main]\nanswer = 42\n")
    (root / "srv" / "app" / "data.bin").write_bytes(os.urandom(300_000))
    return root


def entries_of(root: Path) -> dict[str, str | None]:
    """Every path under root as the scan names it, with its sha256 (None for a folder)."""
    return {"/" + str(path.relative_to(root)): None if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
            for path in root.rglob("*")}


def machinescan(account, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "MACHINESCAN_URL": account.server.url, "MACHINESCAN_USER": account.login,
           "MACHINESCAN_PASSWORD": account.password}
    return subprocess.run([sys.executable, "-m", "machinescan.cli.main", "scan", *args], env=env,
                          capture_output=True, text=True, timeout=240)


def only_scan(account) -> tuple[dict, dict]:
    """The account's one instance and its one scan."""
    with account.server.client(account) as http:
        listing = http.get(f"/users/{account.login}/scannedinstances", params={"includeScans": "true"},
                           headers=JSON).json()
    [instance] = listing["scannedInstances"]
    [scan] = instance["scans"]
    return instance, scan


def added_entries(account, scan: dict) -> dict[str, str | None]:
    with account.server.client(account) as http:
        files = http.get(f"/{scan['uri']}/files", params={"changeType": "added", "max": 1000}, headers=JSON).json()
    return {item["fullPath"]: None if item["directory"] else item["checksum"] for item in files["scannedFiles"]}


def overlay_contents(account, scan: dict) -> dict[str, str]:
    with account.server.client(account) as http:
        archive = http.get(f"/{scan['uri']}/overlay").content
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        return {"/" + member.name: hashlib.sha256(tar.extractfile(member).read()).hexdigest()
                for member in tar.getmembers() if member.isfile()}


# ---------------------------------------------------------------- a real sshd


class SshServer:
    def __init__(self, folder: Path, port: int, process: subprocess.Popen):
        self.folder, self.port, self.process = folder, port, process
        self.identity = folder / "client_key"
        self.known_hosts = folder / "known_hosts"

    def options(self, identity: Path | None = None) -> list[str]:
        return ["--ssh-port", str(self.port), "--identity", str(identity or self.identity),
                "--ssh-option", f"UserKnownHostsFile={self.known_hosts}"]


def keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)


def wait_for_banner(port: int, process: subprocess.Popen, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"sshd exited with {process.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as connection:
                if connection.recv(4).startswith(b"SSH-"):
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"sshd did not answer within {timeout}s:\n{log.read_text()}")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not os.path.exists(SSHD) or not shutil.which("ssh") or not shutil.which("ssh-keygen"):
        pytest.skip(f"needs {SSHD}, ssh and ssh-keygen (openssh-server and openssh-client, in .ci/apt-packages)")
    if os.geteuid() != 0:
        pytest.skip("sshd must run as root to log a user in")
    folder = tmp_path_factory.mktemp("sshd")
    keygen(folder / "host_key")
    keygen(folder / "client_key")
    shutil.copy(folder / "client_key.pub", folder / "authorized_keys")
    port = free_port()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {(folder / 'host_key.pub').read_text()}")
    (folder / "sshd_config").write_text(
        f"ListenAddress 127.0.0.1\nHostKey {folder / 'host_key'}\nAuthorizedKeysFile {folder / 'authorized_keys'}\n"
        "PidFile none\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\n"
        "StrictModes no\n")  # the keys live under /tmp, which is world-writable
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation folder
    log = folder / "sshd.log"
    with open(log, "wb") as log_file:
        process = subprocess.Popen([SSHD, "-D", "-e", "-p", str(port), "-f", str(folder / "sshd_config")],
                                   stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_for_banner(port, process, log)
        yield SshServer(folder, port, process)
    finally:
        process.terminate()
        process.wait(timeout=10)


def agent_copies() -> set[str]:
    return set(glob.glob("/tmp/machinescan-agent-*.pyz"))


# ---------------------------------------------------------------- the tests


def test_scan_over_ssh_arrives_complete_with_the_tree_as_added_files(sshd, alice, tmp_path):
    root = tree(tmp_path)
    copies_before = agent_copies()
    result = machinescan(alice, "--host", "root@127.0.0.1", *sshd.options(), "-o", "--root", str(root))
    assert result.returncode == 0, result.stderr
    instance, scan = only_scan(alice)
    assert instance["name"] == socket.gethostname()  # named after the host, as the agent names it
    assert scan["status"]["complete"] is True and scan["error"] is False
    expected = entries_of(root)
    assert added_entries(alice, scan) == expected
    assert overlay_contents(alice, scan) == {path: digest for path, digest in expected.items() if digest}
    assert result.stdout == (f"scan {scan['dbId']} of {instance['name']}: complete, 0 packages, {len(expected)} added, "
                             f"0 modified, 0 deleted, overlay {_size(scan['overlaySize'])} "
                             f"({_size(scan['uncompressedBinarySize'])} of files)\n")
    assert f"server: scan {scan['dbId']} 100% scan complete" in result.stderr
    assert agent_copies() <= copies_before  # the agent was removed from the host


def test_a_key_the_host_refuses_is_one_clear_error(sshd, alice, tmp_path):
    keygen(tmp_path / "stranger_key")
    result = machinescan(alice, "--host", "root@127.0.0.1", *sshd.options(tmp_path / "stranger_key"),
                         "--root", str(tree(tmp_path)))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("machinescan: ssh to root@127.0.0.1 failed: ") and "Permission denied" in line
    assert "--identity" in line


def test_local_scan_prints_the_complete_scan_as_json(alice, tmp_path):
    root = tree(tmp_path)
    result = machinescan(alice, "-n", "local-box", "--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    instance, scan = only_scan(alice)
    assert instance["name"] == "local-box" and printed["dbId"] == scan["dbId"]
    assert printed["status"]["complete"] is True and printed.get("overlaySize") is None
    expected = entries_of(root)
    assert printed["totalFilesAdded"] == len(expected)
    assert added_entries(alice, scan) == expected


def test_an_unreachable_host_is_one_clear_error_and_no_scan(alice, tmp_path):
    closed_port = free_port()
    result = machinescan(alice, "--host", "root@127.0.0.1", "--ssh-port", str(closed_port),
                         "--root", str(tree(tmp_path)))
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line == (f"machinescan: ssh to root@127.0.0.1 failed: ssh: connect to host 127.0.0.1 port {closed_port}: "
                    "Connection refused (is sshd running there? check --host and --ssh-port)")
    with alice.server.client(alice) as http:
        assert http.get(f"/users/{alice.login}/scannedinstances", headers=JSON).json()["total"] == 0


def test_a_failing_agent_is_reported_and_exits_1(alice, tmp_path):
    result = machinescan(alice, "-n", "box", "--root", str(tree(tmp_path)), "--agent-url", "http://127.0.0.1:1/api")
    assert result.returncode == 1
    assert "the agent on this machine failed (exit status 1): cannot reach http://127.0.0.1:1/api" in result.stderr
    assert result.stdout == ""
