"""The agent's command line sending a scan to a real server (started here on loopback), as uforge-scan does."""

import io
import os
import subprocess
import sys
import tarfile

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PYTHON36 = "/root/.pyenv/versions/3.6.15/bin/python3.6"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    servers = pytest.importorskip("servers", reason="the server test helpers (tests/servers.py) are needed")
    from machinescan.server.db.engine import Database
    data_dir = tmp_path_factory.mktemp("server")
    database_url = "sqlite:///%s" % (data_dir / "db.sqlite")
    process = servers.start_server(data_dir, database_url)
    running = servers.RunningServer("http://127.0.0.1:%d/api" % process.port, data_dir, database_url, process,
                                    Database(database_url), data_dir / "server.log")
    yield running
    process.terminate()
    process.wait(timeout=10)
    running.database.engine.dispose()


def agent(args, python=sys.executable):
    return subprocess.run([python, "-m", "machinescan.agent"] + args, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=dict(os.environ, PYTHONPATH=SRC), timeout=300)


def small_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "os-release").write_text('ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n')
    (root / "srv" / "app").mkdir(parents=True)
    (root / "srv" / "app" / "blob.bin").write_bytes(os.urandom(2 * 1024 * 1024 + 3))
    (root / "srv" / "app" / "caf\xe9.conf").write_text("answer = 42\n")
    return root


def finished_scan(server, account, name):
    """The scan of instance `name` once the server has ingested it and checked its overlay."""
    from scanning import wait_for_scan
    with server.client(account) as http:
        listing = http.get("/users/%s/scannedinstances" % account.login, params={"name": name},
                           headers={"Accept": "application/json"}).json()
        [instance] = listing["scannedInstances"]
        scans = http.get("/users/%s/scannedinstances/%d/scans" % (account.login, instance["dbId"]),
                         headers={"Accept": "application/json"}).json()["scans"]
        uri = "/users/%s/scannedinstances/%d/scans/%d" % (account.login, instance["dbId"], scans[-1]["dbId"])
        scan = wait_for_scan(http, uri, done=lambda s: s["status"]["complete"] or s["error"])
        overlay = http.get(uri + "/overlay").content
    return instance, scan, overlay


def test_scan_with_overlay_is_uploaded_and_verified_by_the_server(server, tmp_path):
    account = server.add_user()
    root = small_root(tmp_path)
    work = tmp_path / "work"
    result = agent(["-U", server.url, "-u", account.login, "-p", account.password, "-n", "web1", "-o",
                    "--root", str(root), "-t", str(work), "--chunk-size", "512K"])
    assert result.returncode == 0, result.stderr.decode()
    assert b"scan uploaded: " + server.url.encode() in result.stderr
    instance, scan, overlay = finished_scan(server, account, "web1")
    assert scan["error"] is False, scan.get("errorMsg")
    assert (scan["binariesReceived"], scan["binariesExtracted"]) == (True, True)
    with tarfile.open(fileobj=io.BytesIO(overlay), mode="r:gz") as archive:
        blob = archive.extractfile("srv/app/blob.bin").read()
    assert blob == (root / "srv" / "app" / "blob.bin").read_bytes()
    assert os.listdir(str(work)) == []  # the work files are removed once sent


def test_api_keys_probe_then_upload_under_python_3_6(server, tmp_path):
    if not os.path.exists(PYTHON36):
        pytest.skip("Python 3.6 not installed at " + PYTHON36)
    account = server.add_user()
    public, secret = account.api_key()
    credentials = ["-U", server.url, "-u", account.login, "-a", public, "-s", secret]
    probe = agent(credentials + ["-P"], python=PYTHON36)
    assert probe.returncode == 0, probe.stderr.decode()
    assert b"the credentials of " + account.login.encode() + b" work" in probe.stdout
    root = small_root(tmp_path)
    sent = agent(credentials + ["-n", "db1", "--root", str(root), "-t", str(tmp_path / "w"), "--quiet"],
                 python=PYTHON36)
    assert sent.returncode == 0, sent.stderr.decode()
    _, scan, _ = finished_scan(server, account, "db1")
    assert scan["error"] is False and scan["validated"] is True


def test_wrong_password_is_reported_with_a_hint(server, tmp_path):
    account = server.add_user()
    result = agent(["-U", server.url, "-u", account.login, "-p", "wrong", "-P"])
    assert result.returncode == 1
    assert b"401" in result.stderr and b"check -u/-p" in result.stderr
