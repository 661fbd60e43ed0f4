"""The main job end to end, as a user does it: the agent (the built zipapp) scans a real root into a real
server, and the `machinescan` command lists, shows, downloads and compares what it found. Expected values
come from the tools of the scanned system (dpkg-query) and from the files on disk, never from our code."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from package_roots import DebPackage, DpkgRoot, require_tools

DATA = os.urandom(300 * 1024 + 5)


@pytest.fixture(scope="module")
def agent_pyz(tmp_path_factory) -> Path:
    """The agent as users get it: one zipapp, built from this source tree."""
    path = tmp_path_factory.mktemp("agent") / "machinescan-agent.pyz"
    subprocess.run([sys.executable, "-m", "machinescan.agent.build", str(path)], check=True, capture_output=True)
    return path


def scan(agent: Path, server, account, name: str, root: str, *excludes: str) -> None:
    command = [sys.executable, str(agent), "-U", server.url, "-u", account.login, "-p", account.password,
               "-n", name, "-o", "--root", root, "--quiet"]
    for path in excludes:
        command += ["-e", path]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


def machinescan(server, account, *args: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, MACHINESCAN_URL=server.url, MACHINESCAN_USER=account.login,
                       MACHINESCAN_PASSWORD=account.password)
    result = subprocess.run([sys.executable, "-m", "machinescan.cli.main", *args], capture_output=True,
                            text=True, timeout=300, env=environment)
    assert result.returncode == 0, result.stderr
    return result


def as_json(server, account, *args: str):
    return json.loads(machinescan(server, account, *args, "--json").stdout)


def finished_scans(server, account, name: str) -> list[dict]:
    """The scans of instance `name`, once the server has indexed each and checked its overlay."""
    from scanning import wait_for_scan

    [instance] = [i for i in as_json(server, account, "list") if i["name"] == name]
    with server.client(account) as http:
        return [wait_for_scan(http, "/" + s["uri"], done=lambda s: s["status"]["complete"] or s["error"])
                for s in sorted(instance["scans"], key=lambda s: s["dbId"])]


def dpkg_query(admin_dir: str) -> set[tuple[str, str, str]]:
    output = subprocess.run(["dpkg-query", "--admindir", admin_dir, "-W", "-f",
                             "${db:Status-Status} ${Package} ${Version} ${Architecture}\n"],
                            capture_output=True, text=True, check=True).stdout
    return {tuple(line.split()[1:]) for line in output.splitlines() if line.startswith("installed ")}


def packages_listed(server, account, scan_id: int) -> set[tuple[str, str, str]]:
    """(name, version as dpkg writes it: [epoch:]upstream[-release], arch) of each package the CLI lists."""
    def version(package: dict) -> str:
        epoch = f"{package['epoch']}:" if package.get("epoch") is not None else ""
        return epoch + package["version"] + (f"-{package['release']}" if package.get("release") else "")

    return {(p["name"], version(p), p["arch"]) for p in as_json(server, account, "packages", str(scan_id))}


def snapshot(root: Path) -> dict[str, tuple]:
    """What a comparison looks at, read straight off the disk: kind, mode, owner, size and content."""
    state = {}
    for directory, folders, files in os.walk(root):
        for name in folders + files:
            path = Path(directory, name)
            info = path.lstat()
            content = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else \
                os.readlink(path) if stat.S_ISLNK(info.st_mode) else None
            size = info.st_size if stat.S_ISREG(info.st_mode) else None
            state["/" + str(path.relative_to(root))] = (stat.S_IFMT(info.st_mode), stat.S_IMODE(info.st_mode),
                                                        info.st_uid, info.st_gid, size, content)
    return state


def differences(before: dict, after: dict) -> dict[str, str]:
    changed = {path: "modified" for path in before.keys() & after.keys() if before[path] != after[path]}
    return {**changed, **{path: "added" for path in after.keys() - before.keys()},
            **{path: "deleted" for path in before.keys() - after.keys()}}


def overlay_member(server, account, scan_id: int, member: str, tmp_path: Path, *download: str) -> bytes:
    target = tmp_path / f"download-{uuid.uuid4().hex}.tar.gz"
    machinescan(server, account, "download", str(scan_id), *download, "-o", str(target))
    with tarfile.open(target) as archive:
        return archive.extractfile(member).read()


@pytest.fixture
def dpkg_machine(tmp_path) -> DpkgRoot:
    """A small Debian machine: an os-release, two packages installed with dpkg, one of them later upgraded."""
    require_tools("dpkg", "dpkg-deb", "dpkg-query")
    root = DpkgRoot(tmp_path / "root")
    Path(root.path, "etc").mkdir(exist_ok=True)
    Path(root.path, "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n')
    root.install(DebPackage("hello", "1.0-1", files={"/usr/bin/hello": b"#!/bin/sh\necho hello\n",
                                                     "/etc/hello.conf": b"greeting = hello\n"},
                            conffiles=["/etc/hello.conf"]).build(tmp_path / "debs"),
                 DebPackage("world", "2.0", files={"/usr/share/world/map": b"round\n"}).build(tmp_path / "debs"))
    return root


def test_a_dpkg_machine_scanned_listed_downloaded_and_compared(server, alice, agent_pyz, dpkg_machine, tmp_path):
    root = Path(dpkg_machine.path)
    (root / "srv/app").mkdir(parents=True)
    (root / "srv/app/data.bin").write_bytes(DATA)
    (root / "srv/app/old.txt").write_text("going away\n")
    (root / "etc/hello.conf").write_text("greeting = bonjour\n")
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    before = snapshot(root)
    scan(agent_pyz, server, alice, name, str(root))

    [first] = finished_scans(server, alice, name)
    assert first["status"]["complete"] and not first["error"], first
    assert packages_listed(server, alice, first["dbId"]) == dpkg_query(str(root / "var/lib/dpkg"))
    files = {f["fullPath"]: f["change"] for f in as_json(server, alice, "files", str(first["dbId"]))}
    assert files["/srv/app/data.bin"] == "added" and files["/etc/hello.conf"] == "modified"
    assert overlay_member(server, alice, first["dbId"], "srv/app/data.bin", tmp_path) == DATA
    assert overlay_member(server, alice, first["dbId"], "srv/app/data.bin", tmp_path,
                          "--files", "--dir", "/srv") == DATA

    # The change: a file added, one rewritten, one removed, a package upgraded with dpkg.
    (root / "srv/app/new.txt").write_text("fresh\n")
    (root / "srv/app/data.bin").write_bytes(DATA[::-1])
    (root / "srv/app/old.txt").unlink()
    dpkg_machine.install(DebPackage("world", "2.1", files={"/usr/share/world/map": b"round\n"})
                         .build(tmp_path / "debs-2"))
    after = snapshot(root)
    scan(agent_pyz, server, alice, name, str(root))

    first, second = finished_scans(server, alice, name)
    assert second["status"]["complete"], second
    compared = as_json(server, alice, "compare", str(first["dbId"]), str(second["dbId"]))
    assert {(p["name"], p["comparison"]) for p in compared["packages"]} == {("world", "changed")}
    assert {f["fullPath"]: f["change"] for f in compared["extraFiles"]} == differences(before, after)
    assert overlay_member(server, alice, second["dbId"], "srv/app/new.txt", tmp_path,
                          "--files", "--since", str(first["dbId"])) == b"fresh\n"


@pytest.mark.skipif(not Path("/var/lib/dpkg/status").exists() or not shutil.which("dpkg-query"),
                    reason="this machine has no dpkg database")
def test_this_machine_scanned_with_most_of_it_excluded(server, alice, agent_pyz, tmp_path):
    """`/` itself, the way `make run` scans it, cut down by exclusions to a minute at most: the package
    database is read whole, the walk sees /etc and a file this test adds."""
    marker = Path("/etc") / f"machinescan-e2e-{uuid.uuid4().hex}.conf"
    marker.write_bytes(DATA)
    try:
        excluded = [str(path) for path in Path("/").iterdir() if path.name != "etc"]
        name = f"this-machine-{uuid.uuid4().hex[:8]}"
        scan(agent_pyz, server, alice, name, "/", *excluded)
    finally:
        marker.unlink()
    [result] = finished_scans(server, alice, name)
    assert result["status"]["complete"], result
    assert packages_listed(server, alice, result["dbId"]) == dpkg_query("/var/lib/dpkg")
    added = {f["fullPath"] for f in as_json(server, alice, "files", str(result["dbId"]), "--added")}
    assert str(marker) in added
    assert overlay_member(server, alice, result["dbId"], str(marker).lstrip("/"), tmp_path) == DATA
