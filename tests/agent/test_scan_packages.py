"""Whole scans of roots installed with the real dpkg and rpm: classification checked against debsums and rpm -V."""

import collections
import hashlib
import os
import shutil
import subprocess

import pytest

from machinescan.agent.scan import ScanOptions, run_scan
from machinescan.report import decode_path, read_report


def scan_records(root, out, overlay=True):
    result = run_scan(ScanOptions(root=str(root), output_dir=str(out), overlay=overlay))
    files, others = {}, collections.defaultdict(list)
    with open(result.report_path, "rb") as report:
        for _, record in read_report(report):
            if record["type"] == "file":
                files[decode_path(record["path"])] = record
            else:
                others[record["type"]].append(record)
    return result, files, others


def overlay_members(archive):
    listing = subprocess.check_output(["tar", "-tzf", archive]).decode()
    return sorted("/" + name.rstrip("/") for name in listing.split("\n") if name)


@pytest.fixture
def installed_dpkg_root(dpkg_root, builders, tmp_path):
    app = builders.DebPackage("app", "1.0-1", files={
        "/etc/app.conf": b"setting=shipped\n",
        "/usr/bin/app": b"#!/bin/sh\necho app\n",
        "/usr/share/doc/app/README": b"read me\n",
        "/usr/share/doc/app/CHANGES": b"changes\n",
        "/usr/lib/app/link": ("symlink", "../../bin/app"),
    }, conffiles=["/etc/app.conf"])
    dpkg_root.install(app.build(tmp_path / "debs"))
    return dpkg_root


def test_dpkg_root_scan_matches_debsums(installed_dpkg_root, tmp_path):
    if shutil.which("debsums") is None:
        pytest.skip("needs debsums (listed in .ci/apt-packages)")
    root = installed_dpkg_root.path
    with open(os.path.join(root, "etc/app.conf"), "w") as conf:
        conf.write("setting=local\n")
    with open(os.path.join(root, "usr/share/doc/app/CHANGES"), "wb") as changes:
        changes.write(b"CHANGES\n")  # same size, other content
    os.remove(os.path.join(root, "usr/share/doc/app/README"))
    os.makedirs(os.path.join(root, "etc/app.d"))
    with open(os.path.join(root, "etc/app.d/local.conf"), "w") as local:
        local.write("added=1\n")

    debsums = subprocess.run(["debsums", "-a", "-c", "--root", root], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    # debsums names the files with the root in front and reports missing ones on stderr.
    changed_by_debsums = set(line[len(root):] for line in debsums.stdout.decode().split("\n") if line)
    missing_by_debsums = set(line.split("missing file ")[1].split(" (")[0][len(root):]
                             for line in debsums.stderr.decode().split("\n") if "missing file" in line)

    result, files, others = scan_records(root, tmp_path / "out")
    modified = set(p.decode() for p, r in files.items() if r["change"] == "modified")
    deleted = set(p.decode() for p, r in files.items() if r["change"] == "deleted")
    assert modified == changed_by_debsums == {"/etc/app.conf", "/usr/share/doc/app/CHANGES"}
    assert deleted == missing_by_debsums == {"/usr/share/doc/app/README"}
    assert files[b"/etc/app.conf"]["conffile"] is True
    assert files[b"/usr/bin/app"]["change"] == "unchanged"
    assert files[b"/usr/lib/app/link"]["change"] == "unchanged"
    assert files[b"/etc/app.d/local.conf"]["change"] == "added"
    package = [p for p in others["package"] if p["name"] == "app"][0]
    assert (package["modified"], package["missing_files"]) == (True, 1)
    in_overlay = sorted(p.decode() for p, r in files.items() if r["in_overlay"])
    assert overlay_members(result.overlay_path) == in_overlay
    assert {"/etc/app.conf", "/usr/share/doc/app/CHANGES", "/etc/app.d", "/etc/app.d/local.conf"} <= set(in_overlay)
    assert "/usr/bin/app" not in in_overlay
    assert files[b"/etc/app.conf"]["sha256"] == hashlib.sha256(b"setting=local\n").hexdigest()


def test_dpkg_owned_paths_are_compared_through_a_merged_usr(dpkg_root, builders, tmp_path):
    root = dpkg_root.path
    os.makedirs(os.path.join(root, "usr/bin"))
    os.symlink("usr/bin", os.path.join(root, "bin"))
    tool = builders.DebPackage("tool", "1", files={"/bin/tool": b"tool\n"})
    dpkg_root.install(tool.build(tmp_path / "debs"))
    _, files, _ = scan_records(root, tmp_path / "out")
    assert files[b"/usr/bin/tool"]["change"] == "unchanged"
    assert files[b"/usr/bin/tool"]["packages"] == ["tool"]
    assert not any(r["change"] == "deleted" for r in files.values())


def test_rpm_root_metadata_and_content_changes_match_rpm_verify(builders, tmp_path):
    builders.require_tools("rpm", "rpmbuild")
    package = builders.RpmPackage("svc", "2.0", files={
        "/etc/svc.conf": b"a=1\n", "/usr/bin/svc": b"#!/bin/sh\n", "/usr/share/svc/data": b"data\n"},
        config=["/etc/svc.conf"], attrs={"/usr/bin/svc": "0755,root,root"})
    root = builders.RpmRoot(tmp_path / "root")
    (tmp_path / "rpmbuild").mkdir()
    root.install(package.build(tmp_path / "rpmbuild"))
    os.chmod(os.path.join(root.path, "usr/bin/svc"), 0o700)
    with open(os.path.join(root.path, "etc/svc.conf"), "w") as conf:
        conf.write("a=2\n")
    verify = subprocess.run(["rpm", "--root", root.path, "--dbpath", "/var/lib/rpm", "-V", "svc"],
                            stdout=subprocess.PIPE).stdout.decode()
    flags = dict((line.split()[-1], line.split()[0]) for line in verify.split("\n") if line.strip())
    assert "5" in flags["/etc/svc.conf"] and flags["/usr/bin/svc"].startswith(".M")

    result, files, _ = scan_records(root.path, tmp_path / "out")
    assert (files[b"/usr/bin/svc"]["change"], files[b"/usr/bin/svc"]["changed"]) == ("metadata", ["mode"])
    assert (files[b"/etc/svc.conf"]["change"], files[b"/etc/svc.conf"]["changed"]) == ("modified", ["digest"])
    assert files[b"/usr/share/svc/data"]["change"] == "unchanged"
    assert files[b"/usr/share/svc/data"]["sha256"] == hashlib.sha256(b"data\n").hexdigest()
    assert "/etc/svc.conf" in overlay_members(result.overlay_path)
    assert "/usr/bin/svc" not in overlay_members(result.overlay_path)


def test_diverted_and_multi_arch_files_are_neither_added_nor_deleted(dpkg_root, builders, tmp_path):
    debs = tmp_path / "debs"
    lib = builders.DebPackage("libdemo", "1", arch="amd64", multi_arch="same",
                              files={"/usr/lib/x86_64-linux-gnu/libdemo.so.1": b"\x7fELF demo\n"})
    tool = builders.DebPackage("tool", "1", files={"/usr/bin/tool": b"original tool\n"})
    wrapper = builders.DebPackage("wrapper", "1", files={"/usr/share/wrapper/README": b"wraps tool\n"})
    dpkg_root.install(lib.build(debs), tool.build(debs), wrapper.build(debs))
    dpkg_root.divert("/usr/bin/tool", "/usr/bin/tool.real", "wrapper")
    with open(os.path.join(dpkg_root.path, "usr/bin/tool"), "wb") as replacement:
        replacement.write(b"#!/bin/sh\nexec tool.real\n")
    _, files, others = scan_records(dpkg_root.path, tmp_path / "out")
    assert files[b"/usr/bin/tool.real"]["change"] == "unchanged"
    assert files[b"/usr/bin/tool.real"]["packages"] == ["tool"]
    assert files[b"/usr/bin/tool"]["change"] == "added"  # the wrapper put it there, no package ships it
    assert files[b"/usr/lib/x86_64-linux-gnu/libdemo.so.1"]["packages"] == ["libdemo:amd64"]
    assert files[b"/usr/lib/x86_64-linux-gnu/libdemo.so.1"]["change"] == "unchanged"
    assert not [path for path, record in files.items() if record["change"] == "deleted"]
    by_key = dict((package["key"], package) for package in others["package"])
    assert by_key["libdemo:amd64"]["modified"] is False and by_key["tool"]["missing_files"] == 0
