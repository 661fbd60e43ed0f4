"""The `machinescan` client commands as scripts and pipes meet them: resumed downloads, exit statuses, pipes
that close early, and lines that are never cut."""

import os
import subprocess
import sys

from overlays import JSON, new_scan
from reports import file, report_bytes
from scanning import create_instance, ingest


def machinescan(account, *args: str, **environment) -> subprocess.CompletedProcess:
    env = dict(os.environ, MACHINESCAN_URL=account.server.url, MACHINESCAN_USER=account.login,
               MACHINESCAN_PASSWORD=account.password, **environment)
    env.pop("COLUMNS", None)
    return subprocess.run([sys.executable, "-m", "machinescan.cli.main", *args], capture_output=True, text=True,
                          timeout=120, env=env)


def test_an_interrupted_overlay_download_resumes_from_its_part_file(server, alice, tmp_path):
    overlay = new_scan(server, alice)
    data = os.urandom(3 * 1024 * 1024 + 17)
    overlay.upload(data, chunk_size=1024 * 1024)
    target = tmp_path / "overlay.tar.gz"
    arrived = 1024 * 1024 + 5
    (tmp_path / "overlay.tar.gz.part").write_bytes(data[:arrived])  # what a Ctrl-C left behind

    result = machinescan(alice, "download", str(overlay.scan_id), "-o", str(target))

    assert result.returncode == 0, result.stderr
    assert f"resuming {target}.part at byte {arrived} of {len(data)}" in result.stdout
    assert target.read_bytes() == data
    assert not (tmp_path / "overlay.tar.gz.part").exists()
    again = machinescan(alice, "download", str(overlay.scan_id), "-o", str(target))
    assert again.returncode == 0 and "already complete" in again.stdout


def test_a_failure_exits_1_with_one_line_and_bad_flags_exit_2(server, alice):
    wrong = machinescan(alice, "list", "--password", "not-the-password")
    assert wrong.returncode == 1
    assert wrong.stderr.splitlines() == ["machinescan: the server answered 401: wrong user name or password "
                                         "(check --user/--password)"]
    assert machinescan(alice, "list", "--no-such-flag").returncode == 2


def test_a_url_without_api_gets_a_hint(server, alice):
    result = machinescan(alice, "list", "--url", server.url.removesuffix("/api"))
    assert result.returncode == 1
    assert f"try --url {server.url}" in result.stderr


def test_output_into_a_closed_pipe_stops_quietly(server, alice):
    with server.client(alice) as http:
        for number in range(300):  # well past a pipe's 64 KiB buffer once listed as JSON
            created = http.post(f"/users/{alice.login}/scannedinstances", json={"name": f"host-{number:04d}"},
                                headers=JSON)
            assert created.status_code == 201, created.text
    env = dict(os.environ, MACHINESCAN_URL=server.url, MACHINESCAN_USER=alice.login,
               MACHINESCAN_PASSWORD=alice.password)
    reader = subprocess.Popen([sys.executable, "-m", "machinescan.cli.main", "list", "--json"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert reader.stdout.read(100)
    reader.stdout.close()  # as `head -c 100` does
    errors = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 141
    assert errors == ""


def test_piped_tables_keep_each_row_on_one_line(server, alice):
    long_name = "a-machine-name-much-longer-than-eighty-columns-" + "x" * 60
    with server.client(alice) as http:
        assert http.post(f"/users/{alice.login}/scannedinstances", json={"name": long_name},
                         headers=JSON).status_code == 201
    result = machinescan(alice, "list")
    assert result.returncode == 0, result.stderr
    assert any(long_name in line for line in result.stdout.splitlines())


def test_delete_instance_removes_it_with_its_scans(server, alice):
    overlay = new_scan(server, alice)
    with server.client(alice) as http:
        [instance] = http.get(f"/users/{alice.login}/scannedinstances", headers=JSON).json()["scannedInstances"]
        kept = http.post(f"/users/{alice.login}/scannedinstances", json={"name": "kept"}, headers=JSON)
        assert kept.status_code == 201

        result = machinescan(alice, "delete", "--instance", instance["name"])

        assert result.returncode == 0, result.stderr
        left = http.get(f"/users/{alice.login}/scannedinstances", headers=JSON).json()["scannedInstances"]
        assert [item["name"] for item in left] == ["kept"]
        assert http.get(f"/users/{alice.login}/scans", params={"id": overlay.scan_id},
                        headers=JSON).json()["scans"] == []
    unknown = machinescan(alice, "delete", "--instance", "no-such-machine")
    assert unknown.returncode == 1 and "no scanned instance named 'no-such-machine'" in unknown.stderr
    assert machinescan(alice, "delete").returncode == 2  # neither a scan nor --instance


def test_empty_answers_say_so(server, alice):
    result = machinescan(alice, "list")
    assert result.returncode == 0
    assert f"{alice.login} has no scanned instance yet" in result.stderr


def test_a_file_filter_that_matches_nothing_says_so(server, alice):
    with server.client(alice) as http:
        _, scan = ingest(http, alice.login, create_instance(http, alice.login, "quiet"),
                         report_bytes([], [file("/srv/new.txt", change="added")]))
    listed = machinescan(alice, "files", str(scan["dbId"]))
    assert listed.stdout.split() == ["added", "/srv/new.txt"] and listed.stderr == ""
    nothing = machinescan(alice, "files", str(scan["dbId"]), "--deleted")
    assert nothing.returncode == 0 and nothing.stdout == ""
    assert nothing.stderr.startswith("no file matches")
