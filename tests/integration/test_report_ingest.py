"""Report ingestion: counters and life cycle, identical answers on re-ingestion, clean failures."""

import gzip

import json

import pytest
from helpers import valid_xml
from reports import file, package, report_bytes
from scanning import JSON, create_instance, ingest
from sqlalchemy import func, select

from machinescan.server.db.models import ScannedFile, ScannedPackage

PACKAGES = [package("bash", "5.2.15-2", source="bash", key="bash"),
            package("libc6", "2.36-9", arch="amd64", key="libc6:amd64"),
            package("libc6", "2.36-9", arch="i386", key="libc6:i386"),
            package("kernel", "6.1", manager="rpm", arch="x86_64", epoch=0, release="1.el9", key="kernel")]
FILES = [
    file("/", kind="dir", size=4096),
    file("/bin/bash", packages=["bash"]),
    file("/etc/bash.bashrc", change="modified", changed=["digest"], packages=["bash"], conffile=True,
         sha256="ab" * 32),
    file("/lib/libc.so.6", change="metadata", changed=["mode"], packages=["libc6:amd64", "libc6:i386"],
         in_overlay=False),
    file("/opt/app/run.sh", change="added", size=120),
    file("/opt/app/lib/util.py", change="added", size=30),
    file({"b64": "L29wdC9hcHAvbGF0aW4x6Q=="}, change="added", size=5),  # /opt/app/latin1\xe9
    file("/usr/share/doc/bash/README", change="deleted", packages=["bash"], size=None),
]
PROFILE = {"timezone": "Europe/Paris", "users": [{"name": "root", "uid": 0, "gid": 0, "home": "/root",
                                                  "shell": "/bin/bash"}],
           "groups": [{"name": "root", "gid": 0}], "kernel_cmdline": "quiet", "selinux": {"mode": "disabled"},
           "network_interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01"}], "keyboard": {"layout": "fr"}}


@pytest.fixture
def machine(server, alice):
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "web")
        uri, scan = ingest(client, alice.login, siid, report_bytes(PACKAGES, FILES, profile=PROFILE))
    return alice, siid, uri, scan


def test_ingested_report_sets_counters_and_completes(server, machine):
    alice, siid, uri, scan = machine
    assert scan["error"] is False, scan.get("errorMsg")
    assert (scan["validated"], scan["status"]["complete"], scan["status"]["percentage"]) == (True, True, 100)
    assert (scan["totalPackages"], scan["totalFilesAdded"], scan["totalFilesModified"],
            scan["totalFilesDeleted"]) == (4, 3, 2, 1)  # modified counts metadata-only changes too
    assert scan["uncompressedBinarySize"] == 120 + 30 + 5 + 10  # in_overlay files: added + modified
    with server.client(alice) as client:
        instance = client.get(f"/users/{alice.login}/scannedinstances/{siid}", headers=JSON).json()
    assert (instance["distribution"]["detectedName"], instance["distribution"]["version"],
            instance["ramSize"], instance["overlayIncluded"]) == ("debian", "12", 2048, False)


def test_packages_list_exactly_the_reported_packages(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        listing = client.get(f"{uri}/packages", headers=JSON).json()
    assert listing["total"] == 4
    got = {(p["name"], p["version"], p["arch"], p.get("epoch"), p.get("release")) for p in listing["scannedPackages"]}
    assert got == {("bash", "5.2.15-2", "amd64", None, None), ("libc6", "2.36-9", "amd64", None, None),
                   ("libc6", "2.36-9", "i386", None, None), ("kernel", "6.1", "x86_64", 0, "1.el9")}


def test_package_files_follow_the_package_key(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        packages = client.get(f"{uri}/packages", params={"search": "libc6"}, headers=JSON).json()
        i386 = next(p for p in packages["scannedPackages"] if p["arch"] == "i386")
        files = client.get(f"{uri}/packages/{i386['dbId']}/files", headers=JSON).json()
        bash = next(p for p in client.get(f"{uri}/packages", params={"excludeFiles": "false"},
                                          headers=JSON).json()["scannedPackages"] if p["name"] == "bash")
    assert [f["fullPath"] for f in files["scannedFiles"]] == ["/lib/libc.so.6"]
    assert sorted(f["fullPath"] for f in bash["modifiedFiles"]) == ["/etc/bash.bashrc", "/usr/share/doc/bash/README"]


def test_file_filters(server, machine):
    alice, siid, uri, _ = machine

    def paths(**params) -> list[str]:
        with server.client(alice) as client:
            listing = client.get(f"{uri}/files", params=params, headers=JSON).json()
        return [f["fullPath"] for f in listing["scannedFiles"]]

    latin1 = "/opt/app/latin1\ufffd"
    # Paths sort by their bytes (UTF-8), on SQLite and PostgreSQL alike.
    assert paths() == ["/etc/bash.bashrc", "/lib/libc.so.6", latin1, "/opt/app/lib/util.py", "/opt/app/run.sh",
                       "/usr/share/doc/bash/README"]
    assert paths(pkgFiles="false") == [latin1, "/opt/app/lib/util.py", "/opt/app/run.sh"]
    assert paths(added="false") == ["/etc/bash.bashrc", "/lib/libc.so.6", "/usr/share/doc/bash/README"]
    assert paths(dir="/opt/app", rellevel="true") == [latin1, "/opt/app/run.sh"]
    assert paths(dir="/opt") == [latin1, "/opt/app/lib/util.py", "/opt/app/run.sh"]
    assert paths(changeType="deleted") == ["/usr/share/doc/bash/README"]
    assert paths(changeType="all", dir="/bin") == ["/bin/bash"]
    assert paths(search="run") == ["/opt/app/run.sh"]
    assert paths(index=1, max=2) == ["/lib/libc.so.6", latin1]


def test_non_utf8_paths_keep_their_exact_bytes(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        listing = client.get(f"{uri}/files", params={"search": "latin1"}, headers=JSON).json()
    assert listing["scannedFiles"][0]["pathB64"] == "L29wdC9hcHAvbGF0aW4x6Q=="


def test_files_as_plain_text_list_every_path_a_line(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        response = client.get(f"{uri}/files", params={"changeType": "added"}, headers={"Accept": "text/plain"})
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.splitlines() == ["/opt/app/latin1\ufffd", "/opt/app/lib/util.py", "/opt/app/run.sh"]


def test_files_delta_counts_changes_per_directory(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        tree = client.get(f"{uri}/files/delta", params={"dir": "/", "max-depth": 2}, headers=JSON).json()
        opt = client.get(f"{uri}/files/delta", params={"dir": "/opt/app", "filter-by-type": "added"},
                         headers=JSON).json()
    assert (tree["sumAdded"], tree["sumChanged"], tree["sumDeleted"]) == (3, 2, 1)
    children = {d["path"]: (d["sumAdded"], d["sumChanged"], d["sumDeleted"]) for d in tree["subDirectories"]}
    assert children == {"/etc": (0, 1, 0), "/lib": (0, 1, 0), "/opt": (3, 0, 0), "/usr": (0, 0, 1)}
    opt_children = {d["path"]: d["sumAdded"] for d in next(
        d for d in tree["subDirectories"] if d["path"] == "/opt")["subDirectories"]}
    assert opt_children == {"/opt/app": 3}
    assert (opt["sumAdded"], [f["fullPath"] for f in opt["files"]]) == (3, ["/opt/app/latin1\ufffd",
                                                                            "/opt/app/run.sh"])
    assert [d["path"] for d in opt["subDirectories"]] == ["/opt/app/lib"]


def test_install_profile(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        profile = client.get(f"{uri}/installProfile", headers=JSON).json()
    assert (profile["timezone"], profile["kernelParameters"], profile["keyboard"], profile["seLinuxMode"],
            profile["memorySize"]) == ("Europe/Paris", "quiet", "fr", "disabled", 2048)
    assert [(u["name"], u["userId"], u["shell"]) for u in profile["users"]] == [("root", "0", "/bin/bash")]
    assert profile["profile"] == PROFILE


def test_scan_get_embeds_packages_unless_told_not_to(server, machine):
    alice, siid, uri, _ = machine
    with server.client(alice) as client:
        full = client.get(uri, headers=JSON).json()
        light = client.get(uri, params={"pkgs": "false"}, headers=JSON).json()
    assert len(full["packages"]) == 4 and "packages" not in light


def comparable(listing: dict, key: str) -> list[dict]:
    drop = {"dbId", "uri", "parentUri", "filesUri", "scannedInstanceId"}
    return [{k: v for k, v in item.items() if k not in drop} for item in listing[key]]


def test_ingesting_the_same_report_twice_gives_identical_answers(server, alice):
    body = report_bytes(PACKAGES, FILES, profile=PROFILE)
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "twice")
        first, _ = ingest(client, alice.login, siid, body)
        second, _ = ingest(client, alice.login, siid, body)
        for path, key in (("/packages", "scannedPackages"), ("/files?changeType=all", "scannedFiles")):
            a = client.get(first + path, headers=JSON).json()
            b = client.get(second + path, headers=JSON).json()
            assert a["total"] == b["total"] and comparable(a, key) == comparable(b, key)
        profiles = [client.get(uri + "/installProfile", headers=JSON).json() for uri in (first, second)]
        assert profiles[0] | {"uri": None} == profiles[1] | {"uri": None}


def gzip_lines(lines: list[bytes]) -> bytes:
    return gzip.compress(b"".join(line + b"\n" for line in lines))


def good_lines() -> list[bytes]:
    return gzip.decompress(report_bytes(PACKAGES, FILES)).splitlines()


def without_trailer() -> bytes:
    return gzip_lines(good_lines()[:-1])


def newer_version() -> bytes:
    lines = good_lines()
    header = json.loads(lines[0])
    header["version"] = 2
    return gzip_lines([json.dumps(header).encode()] + lines[1:])


def invalid_json_on_line_3() -> bytes:
    lines = good_lines()
    return gzip_lines(lines[:2] + [b'{"type": "package", "name": '] + lines[3:])


def wrong_type_on_line_2() -> bytes:
    lines = good_lines()
    record = json.loads(lines[1])
    record["version"] = 5
    return gzip_lines([lines[0], json.dumps(record).encode()] + lines[2:])


def cut_gzip() -> bytes:
    body = report_bytes(PACKAGES, FILES * 50)
    return body[:len(body) // 2]


@pytest.mark.parametrize("make_report, expected", [
    (without_trailer, "trailer"),
    (newer_version, "line 1"),
    (invalid_json_on_line_3, "line 3: invalid JSON"),
    (wrong_type_on_line_2, "line 2"),
    (cut_gzip, "line"),
])
def test_a_bad_report_fails_the_scan_with_the_line_and_cause_and_leaves_no_rows(server, alice, make_report,
                                                                                   expected):
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "broken")
        uri, scan = ingest(client, alice.login, siid, make_report())
        assert client.get(f"{uri}/packages", headers=JSON).status_code == 409
    assert scan["error"] is True and scan["validated"] is False and scan["status"]["complete"] is False
    assert expected in scan["errorMsg"], scan["errorMsg"]
    scan_id = int(uri.rsplit("/", 1)[1])
    with server.database.session() as session:
        assert session.scalar(select(func.count()).where(ScannedFile.scan_id == scan_id)) == 0
        assert session.scalar(select(func.count()).where(ScannedPackage.scan_id == scan_id)) == 0


def test_a_report_that_is_not_gzip_fails_cleanly(server, alice):
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "junk")
        _, scan = ingest(client, alice.login, siid, b"plain text, not a report")
    assert scan["error"] is True and "report is invalid" in scan["errorMsg"]


def test_large_report_ingests_in_batches(server, alice):
    files = [file(f"/data/d{i // 1000}/f{i}", change="added", size=1) for i in range(12000)]
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "big")
        uri, scan = ingest(client, alice.login, siid, report_bytes(PACKAGES, files))
        assert scan["totalFilesAdded"] == 12000
        tree = client.get(f"{uri}/files/delta", params={"dir": "/data"}, headers=JSON).json()
    assert tree["sumAdded"] == 12000
    assert {d["path"]: d["sumAdded"] for d in tree["subDirectories"]} == {f"/data/d{k}": 1000 for k in range(12)}




def test_an_ill_typed_install_profile_is_served_without_the_odd_fields(server, alice):
    """Profile fields are free-form: a report with odd types still has an install profile to show."""
    odd = {"users": "x", "groups": 5, "swap": [{"size": "big"}], "timezone": 3, "network_interfaces": [1],
           "keyboard": ["fr"], "selinux": {"mode": 1}}
    with server.client(alice) as client:
        siid = create_instance(client, alice.login, "odd-profile")
        uri, _ = ingest(client, alice.login, siid, report_bytes([], [], profile=odd, memory_bytes="lots"))
        response = client.get(f"{uri}/installProfile", headers=JSON)
        assert response.status_code == 200, response.text
        profile = response.json()
        assert (profile.get("users", []), profile.get("groups", []), profile.get("nics", [])) == ([], [], [])
        assert all(profile.get(key) is None for key in ("timezone", "keyboard", "seLinuxMode", "swapSize",
                                                         "memorySize"))
        assert profile["profile"] == odd
        valid_xml(client.get(f"{uri}/installProfile", headers={"Accept": "application/xml"}), "installProfile")
