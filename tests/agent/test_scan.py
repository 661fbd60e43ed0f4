"""A whole scan into a folder: the report validates, the overlay holds exactly its in_overlay entries."""

import collections
import hashlib
import os
import stat
import subprocess
import time

import pytest

from machinescan.agent.scan import ScanHooks, ScanOptions, run_scan
from machinescan.report import decode_path, read_report

Owned = collections.namedtuple(
    "Owned", "path kind size digest mode owner group link_target conffile packages")


class FakeDatabase(object):
    """A package database given as records, standing in for dpkg/rpm in classification tests."""

    manager = "dpkg"

    def __init__(self, packages, owned_paths):
        self._packages = packages
        self._owned = owned_paths

    def packages(self):
        return iter(self._packages)

    def owned_paths(self):
        return iter(self._owned)


def owned(path, kind="file", digest=None, packages=("base",), **fields):
    values = dict(size=None, mode=None, owner=None, group=None, link_target=None, conffile=False)
    values.update(fields)
    return Owned(path, kind, values["size"], digest, values["mode"], values["owner"], values["group"],
                 values["link_target"], values["conffile"], packages)


def md5(data):
    return "md5:" + hashlib.md5(data).hexdigest()


def records_of(report_path):
    """(header, {path: file record}, other records by type) of a report read with the project's reader."""
    files, others = {}, collections.defaultdict(list)
    with open(report_path, "rb") as report:
        for _, record in read_report(report):
            if record["type"] == "file":
                assert decode_path(record["path"]) not in files, "a path is recorded once"
                files[decode_path(record["path"])] = record
            else:
                others[record["type"]].append(record)
    return others["header"][0], files, others


def tar_member_names(archive):
    """Member paths of an archive as the scanned paths they stand for (read with Python, not the agent)."""
    import tarfile
    with tarfile.open(archive, "r:*", encoding="utf-8", errors="surrogateescape") as tar:
        return [b"/" + member.name.encode("utf-8", "surrogateescape").rstrip(b"/") for member in tar]


def extract(archive, target):
    os.makedirs(target)
    subprocess.check_call(["tar", "-xpf", archive, "-C", target])


def scan(root, out, overlay=True, databases=(), hooks=None, **options):
    result = run_scan(ScanOptions(root=str(root), output_dir=str(out), overlay=overlay, **options),
                      hooks=hooks, databases=list(databases))
    return result


@pytest.fixture
def odd_root(tmp_path):
    """A root with everything a walk can trip on."""
    root = tmp_path / "root"
    broot = os.fsencode(str(root))
    for folder in ("etc", "srv/excluded", "home/u", "var/log", "tmp", "proc"):
        os.makedirs(os.path.join(broot, os.fsencode(folder)))
    (root / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n")
    (root / "etc" / "group").write_text("root:x:0:\nu:x:1000:\n")
    (root / "proc" / "cpuinfo").write_text("not scanned")
    files = {
        b"/home/u/caf\xe9": b"non-utf8 name\n",
        b"/home/u/two\nlines": b"newline name\n",
        b"/home/u/big.bin": os.urandom(3 * 1024 * 1024),
        b"/home/u/text.log": b"log line\n" * 100000,
        b"/var/log/shrinks": os.urandom(200000),
        b"/var/log/grows": b"g" * 150000,
        b"/var/log/deleted": b"soon gone",
        b"/srv/excluded/first": b"hard linked across an excluded dir\n",
    }
    for path, content in files.items():
        with open(broot + path, "wb") as handle:
            handle.write(content)
    os.chmod(broot + b"/home/u/big.bin", 0o750)
    os.chown(broot + b"/home/u/big.bin", 1000, 1000)
    os.link(broot + b"/srv/excluded/first", broot + b"/home/u/linked_from_excluded")
    os.link(broot + b"/home/u/text.log", broot + b"/home/u/text.log.hardlink")
    os.symlink(b"loop", broot + b"/home/u/loop")
    os.symlink(b"../..", broot + b"/home/u/up")
    os.mkfifo(broot + b"/home/u/fifo")
    subprocess.check_call(["truncate", "-s", "20G", str(root / "var" / "log" / "sparse.img")])
    return root


def odd_hooks(root):
    def before_read(path):
        if path == b"/var/log/deleted":
            os.unlink(str(root / "var" / "log" / "deleted"))
        elif path == b"/var/log/shrinks":
            os.truncate(str(root / "var" / "log" / "shrinks"), 1000)
        elif path == b"/var/log/grows":
            with open(str(root / "var" / "log" / "grows"), "ab") as handle:
                handle.write(b"more")
    return ScanHooks(before_read=before_read)


def test_scan_of_odd_root_completes_and_overlay_matches_report(odd_root, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    result = scan(odd_root, out, excludes=["/srv/excluded"], hooks=odd_hooks(odd_root))
    assert time.monotonic() - started < 30, "the 20 GB sparse file must not be read"
    header, files, others = records_of(result.report_path)
    assert "/srv/excluded" in header["scan"]["excludes"] and "/proc" in header["scan"]["excludes"]
    assert others["trailer"][0]["complete"] is True

    in_overlay = [path for path, record in files.items() if record["in_overlay"]]
    assert sorted(tar_member_names(result.overlay_path)) == sorted(in_overlay)
    overlay_record = others["overlay"][0]
    archive_bytes = open(result.overlay_path, "rb").read()
    assert overlay_record["size"] == len(archive_bytes)
    assert overlay_record["sha256"] == hashlib.sha256(archive_bytes).hexdigest()
    assert overlay_record["members"] == len(in_overlay)

    target = str(tmp_path / "extracted")
    extract(result.overlay_path, target)
    broot, btarget = os.fsencode(str(odd_root)), os.fsencode(target)
    for path in (b"/home/u/caf\xe9", b"/home/u/two\nlines", b"/home/u/big.bin", b"/home/u/text.log"):
        original, copy = os.lstat(broot + path), os.lstat(btarget + path)
        assert open(broot + path, "rb").read() == open(btarget + path, "rb").read()
        assert stat.S_IMODE(original.st_mode) == stat.S_IMODE(copy.st_mode)
        assert int(original.st_mtime) == int(copy.st_mtime)
        assert (copy.st_uid, copy.st_gid) == (original.st_uid, original.st_gid)
        assert files[path]["sha256"] == hashlib.sha256(open(broot + path, "rb").read()).hexdigest()


def test_odd_entries_are_recorded_as_the_spec_says(odd_root, tmp_path):
    result = scan(odd_root, tmp_path / "out", excludes=["/srv/excluded"], hooks=odd_hooks(odd_root))
    _, files, others = records_of(result.report_path)
    assert files[b"/home/u/fifo"]["kind"] == "fifo" and not files[b"/home/u/fifo"]["in_overlay"]
    assert files[b"/home/u/loop"]["kind"] == "symlink" and files[b"/home/u/loop"]["in_overlay"]
    assert decode_path(files[b"/home/u/loop"]["link_target"]) == b"loop"
    sparse = files[b"/var/log/sparse.img"]
    assert (sparse["note"], sparse["in_overlay"], sparse["size"]) == ("sparse", False, 20 * 1024 ** 3)
    assert "sha256" not in sparse
    deleted = files[b"/var/log/deleted"]
    assert (deleted["note"], deleted["in_overlay"]) == ("vanished", False)
    assert any(decode_path(e["path"]) == b"/var/log/deleted" for e in others["error"])
    assert files[b"/var/log/shrinks"]["note"] == "changed_during_read"
    assert files[b"/var/log/shrinks"]["sha256"] == hashlib.sha256(
        open(str(odd_root / "var/log/shrinks"), "rb").read() + bytes(200000 - 1000)).hexdigest()
    assert files[b"/var/log/grows"]["note"] == "changed_during_read"
    assert files[b"/srv/excluded"]["note"] == "excluded_content"
    assert b"/srv/excluded/first" not in files and b"/proc/cpuinfo" not in files
    across = files[b"/home/u/linked_from_excluded"]
    assert across["kind"] == "file" and across["in_overlay"]  # its first path was never walked
    second = files[b"/home/u/text.log.hardlink"]
    assert second["kind"] == "hardlink" and decode_path(second["link_target"]) == b"/home/u/text.log"
    assert files[b"/home/u/big.bin"]["owner"] == "u" and files[b"/home/u/big.bin"]["mode"] == "0750"


def test_overlay_extraction_restores_hard_links_and_content(odd_root, tmp_path):
    result = scan(odd_root, tmp_path / "out", excludes=["/srv/excluded"])
    target = tmp_path / "x"
    extract(result.overlay_path, str(target))
    first, second = target / "home/u/text.log", target / "home/u/text.log.hardlink"
    assert os.stat(str(first)).st_ino == os.stat(str(second)).st_ino
    assert (target / "home/u/linked_from_excluded").read_bytes() == b"hard linked across an excluded dir\n"
    assert not (target / "var/log/sparse.img").exists()
    assert not (target / "home/u/fifo").exists()


def test_classification_against_a_package_database(tmp_path):
    root = tmp_path / "root"
    (root / "etc" / "app").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "etc" / "app" / "same.conf").write_bytes(b"same\n")
    (root / "etc" / "app" / "edited.conf").write_bytes(b"edited by admin\n")
    (root / "usr" / "bin" / "tool").write_bytes(b"#!/bin/sh\n")
    os.chmod(str(root / "usr" / "bin" / "tool"), 0o4755)
    (root / "etc" / "app" / "local").write_bytes(b"added by admin\n")
    (root / "tmp").mkdir()
    packages = [{"manager": "dpkg", "name": "app", "version": "1.0", "arch": "amd64"},
                {"manager": "dpkg", "name": "base", "version": "2", "arch": "all"}]
    database = FakeDatabase(packages, [
        owned(b"/etc/app", kind="dir", packages=("app",)),
        owned(b"/etc/app/same.conf", digest=md5(b"same\n"), conffile=True, packages=("app",)),
        owned(b"/etc/app/edited.conf", digest=md5(b"shipped\n"), conffile=True, packages=("app",)),
        owned(b"/usr/bin/tool", digest=md5(b"#!/bin/sh\n"), mode=0o755),
        owned(b"/usr/bin/removed", digest=md5(b"x")),
        owned(b"/tmp/owned-in-excluded", digest=md5(b"y")),
    ])
    result = scan(root, tmp_path / "out", databases=[database])
    _, files, others = records_of(result.report_path)
    assert files[b"/etc/app/same.conf"]["change"] == "unchanged"
    assert files[b"/etc/app/same.conf"]["in_overlay"] is False
    edited = files[b"/etc/app/edited.conf"]
    assert (edited["change"], edited["changed"], edited["in_overlay"], edited["conffile"]) == \
        ("modified", ["digest"], True, True)
    assert edited["sha256"] == hashlib.sha256(b"edited by admin\n").hexdigest()
    tool = files[b"/usr/bin/tool"]
    assert (tool["change"], tool["changed"], tool["in_overlay"]) == ("metadata", ["mode"], False)
    assert files[b"/etc/app/local"]["change"] == "added" and files[b"/etc/app/local"]["in_overlay"]
    assert files[b"/usr/bin/removed"]["change"] == "deleted"
    assert b"/tmp/owned-in-excluded" not in files
    by_name = dict((p["name"], p) for p in others["package"])
    assert (by_name["app"]["modified"], by_name["app"]["missing_files"]) == (True, 0)
    assert (by_name["base"]["modified"], by_name["base"]["missing_files"]) == (True, 1)
    # /etc, /usr and /usr/bin belong to no package here, so they are added directories.
    assert sorted(tar_member_names(result.overlay_path)) == [
        b"/etc", b"/etc/app/edited.conf", b"/etc/app/local", b"/usr", b"/usr/bin"]


def test_without_overlay_added_files_are_hashed_and_nothing_is_archived(tmp_path):
    root = tmp_path / "root"
    (root / "opt").mkdir(parents=True)
    (root / "opt" / "data").write_bytes(b"payload")
    result = scan(root, tmp_path / "out", overlay=False)
    _, files, others = records_of(result.report_path)
    assert files[b"/opt/data"]["sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert not any(record["in_overlay"] for record in files.values())
    assert "overlay" not in others and result.overlay_path is None
    assert sorted(os.listdir(str(tmp_path / "out"))) == ["report.jsonl.gz"]


def test_output_folder_inside_the_root_is_not_scanned(tmp_path):
    root = tmp_path / "root"
    (root / "srv").mkdir(parents=True)
    (root / "srv" / "file").write_bytes(b"f")
    result = scan(root, root / "scan-output", work_dir=str(root / "work"))
    header, files, _ = records_of(result.report_path)
    assert "/scan-output" in header["scan"]["excludes"] and "/work" in header["scan"]["excludes"]
    assert not any(path.startswith(b"/scan-output/") for path in files)


def test_too_large_files_stay_out_of_the_overlay(tmp_path):
    root = tmp_path / "root"
    (root / "opt").mkdir(parents=True)
    (root / "opt" / "big").write_bytes(os.urandom(5000))
    (root / "opt" / "small").write_bytes(b"s")
    result = scan(root, tmp_path / "out", max_file_size=4096)
    header, files, _ = records_of(result.report_path)
    assert header["scan"]["overlay_policy"] == {"max_file_size": 4096, "sparse": "skip"}
    assert (files[b"/opt/big"]["note"], files[b"/opt/big"]["in_overlay"]) == ("too_large", False)
    assert files[b"/opt/small"]["in_overlay"]


def test_plain_tar_with_compress_none(tmp_path):
    root = tmp_path / "root"
    (root / "opt").mkdir(parents=True)
    (root / "opt" / "f").write_bytes(b"plain")
    result = scan(root, tmp_path / "out", compress="none")
    assert result.overlay_path.endswith("overlay.tar")
    assert open(result.overlay_path, "rb").read(3) != b"\x1f\x8b\x08"
    assert subprocess.check_output(["tar", "-tf", result.overlay_path]).split() == [b"opt/", b"opt/f"]


def test_failed_scan_leaves_no_partial_files(tmp_path):
    root = tmp_path / "root"
    (root / "opt").mkdir(parents=True)
    (root / "opt" / "f").write_bytes(b"x")

    def explode(path):
        raise KeyboardInterrupt()

    with pytest.raises(KeyboardInterrupt):
        scan(root, tmp_path / "out", hooks=ScanHooks(before_read=explode))
    assert os.listdir(str(tmp_path / "out")) == []


def test_network_and_pseudo_mounts_under_the_root_are_excluded_and_listed(tmp_path):
    from machinescan.agent.scan import build_exclusions
    root = tmp_path / "root"
    root.mkdir()
    real_root = os.fsencode(os.path.realpath(str(root)))
    mounts = {b"/": "ext4", real_root: "ext4", real_root + b"/srv/share": "nfs4",
              real_root + b"/mnt/ram": "tmpfs", real_root + b"/boot": "ext4", real_root + b"/proc": "proc",
              b"/elsewhere": "nfs"}
    exclusions, skipped = build_exclusions(ScanOptions(root=str(root)), mounts)
    assert exclusions.covers(b"/srv/share/x") and exclusions.covers(b"/mnt/ram")
    assert not exclusions.covers(b"/boot/vmlinuz")
    assert skipped == [{"path": b"/mnt/ram", "type": "tmpfs", "network": False},
                       {"path": b"/srv/share", "type": "nfs4", "network": True}]


def test_sockets_and_devices_are_recorded_but_never_archived(tmp_path):
    import socket
    root = tmp_path / "root"
    (root / "run2").mkdir(parents=True)
    os.mknod(str(root / "run2" / "null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(str(root / "run2" / "disk"), 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    cwd = os.getcwd()
    os.chdir(str(root / "run2"))  # a socket path must be short: bind it relative
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind("sock")
        result = scan(root, tmp_path / "out")
    finally:
        server.close()
        os.chdir(cwd)
    _, files, _ = records_of(result.report_path)
    kinds = dict((path, files[path]["kind"]) for path in (b"/run2/null", b"/run2/disk", b"/run2/sock"))
    assert kinds == {b"/run2/null": "chardev", b"/run2/disk": "blockdev", b"/run2/sock": "socket"}
    assert not any(files[path]["in_overlay"] for path in kinds)
    assert tar_member_names(result.overlay_path) == [b"/run2"]
