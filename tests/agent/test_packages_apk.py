"""apk database read from lib/apk/db/installed, written here by hand with checksums computed here."""

import base64
import hashlib
import os

import pytest

from machinescan.agent.packages import open_package_databases
from machinescan.agent.packages.apk import ApkDatabase

BUSYBOX = b"busybox binary"
MOTD = b"Welcome to Alpine!\n"
MUSL = b"musl libc"
LINK_TARGET = b"/bin/busybox"


def q1(content):
    """apk's checksum form: "Q1" and the base64 of the sha1."""
    return b"Q1" + base64.b64encode(hashlib.sha1(content).digest())


def sha1(content):
    return "sha1:" + hashlib.sha1(content).hexdigest()


INSTALLED = b"\n".join([
    b"C:Q1abc=", b"P:busybox", b"V:1.36.1-r15", b"A:x86_64", b"S:500000", b"I:1000000",
    b"T:Size optimized toolbox", b"o:busybox", b"t:1700000000",
    b"F:bin", b"R:busybox", b"a:0:0:755", b"Z:" + q1(BUSYBOX),
    b"R:sh", b"a:0:0:777", b"Z:" + q1(LINK_TARGET),
    b"F:etc", b"R:motd", b"Z:" + q1(MOTD),
    b"F:var/mail", b"M:0:12:2775",
    b"",
    b"P:musl", b"V:1.2.4-r2", b"A:x86_64", b"I:600000", b"o:musl",
    b"F:lib", b"R:libc.musl-x86_64.so.1", b"Z:" + q1(MUSL),
    b"F:etc",
    b"", b""])


@pytest.fixture
def apk_root(tmp_path):
    os.makedirs(str(tmp_path / "lib/apk/db"))
    (tmp_path / "lib/apk/db/installed").write_bytes(INSTALLED)
    os.makedirs(str(tmp_path / "etc"))
    (tmp_path / "etc/passwd").write_bytes(b"root:x:0:0:root:/root:/bin/ash\n")
    (tmp_path / "etc/group").write_bytes(b"root:x:0:root\nmail:x:12:\n")
    return str(tmp_path)


def owned_by_path(root):
    return {owned.path: owned for owned in ApkDatabase(root).owned_paths()}


def test_packages_are_exactly_the_installed_ones(apk_root):
    found = [(p["name"], p["version"], p["epoch"], p["arch"], p["installed_size"], p["source"])
             for p in ApkDatabase(apk_root).packages()]
    assert found == [("busybox", "1.36.1-r15", None, "x86_64", 1000000, "busybox"),
                     ("musl", "1.2.4-r2", None, "x86_64", 600000, "musl")]


def test_file_count_includes_directories(apk_root):
    counts = {p["name"]: p["files"] for p in ApkDatabase(apk_root).packages()}
    assert counts == {"busybox": 6, "musl": 3}


def test_owned_paths_are_exactly_the_listed_ones(apk_root):
    assert set(owned_by_path(apk_root)) == {b"/bin", b"/bin/busybox", b"/bin/sh", b"/etc", b"/etc/motd",
                                            b"/var/mail", b"/lib", b"/lib/libc.musl-x86_64.so.1"}


def test_q1_checksums_become_sha1_hex(apk_root):
    owned = owned_by_path(apk_root)
    assert owned[b"/bin/busybox"].digest == sha1(BUSYBOX)
    assert owned[b"/lib/libc.musl-x86_64.so.1"].digest == sha1(MUSL)
    assert owned[b"/bin/sh"].digest == sha1(LINK_TARGET)  # apk hashes a symlink's target


def test_acl_lines_and_defaults(apk_root):
    owned = owned_by_path(apk_root)
    assert (owned[b"/bin/busybox"].mode, owned[b"/bin/busybox"].owner) == (0o755, "root")
    assert owned[b"/etc/motd"].mode == 0o644
    assert (owned[b"/bin"].kind, owned[b"/bin"].mode) == ("dir", 0o755)
    mail = owned[b"/var/mail"]
    assert (mail.mode, mail.owner, mail.group) == (0o2775, "root", "mail")


def test_directory_owned_by_two_packages_lists_both(apk_root):
    assert owned_by_path(apk_root)[b"/etc"].packages == ("busybox", "musl")


def test_files_under_etc_are_conffiles(apk_root):
    owned = owned_by_path(apk_root)
    assert owned[b"/etc/motd"].conffile
    assert not owned[b"/bin/busybox"].conffile


def test_merged_usr_alpine_paths_are_canonical(apk_root):
    os.makedirs(os.path.join(apk_root, "usr/bin"))
    os.symlink("usr/bin", os.path.join(apk_root, "bin"))
    owned = owned_by_path(apk_root)
    assert owned[b"/usr/bin/busybox"].digest == sha1(BUSYBOX)
    assert b"/bin/busybox" not in owned


def test_open_package_databases_finds_apk(apk_root):
    assert [database.manager for database in open_package_databases(apk_root)] == ["apk"]
