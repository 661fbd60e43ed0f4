"""rpm database read through `rpm --root -qa --queryformat`: packages, epochs, owned paths and digests."""

import hashlib
import os

import pytest

from machinescan.agent.packages import open_package_databases
from machinescan.agent.packages.rpm import RpmDatabase

HELLO_BIN = b"hello binary"
HELLO_CONF = b"greeting=hi"
WORLD_DATA = b"world data"
ZERO_DATA = b"zero"

HELLO = dict(name="hello", version="1.0", release="3", epoch=2,
             files={"/usr/bin/hello": HELLO_BIN, "/etc/hello.conf": HELLO_CONF,
                    "/usr/share/hello/link": ("symlink", "../../bin/hello")},
             config=["/etc/hello.conf"], attrs={"/usr/bin/hello": "4755,root,root"},
             ghosts=["/var/log/hello.log", "/var/log/hello.present"], directories=["/usr/share/hello"])
WORLD = dict(name="world", version="2.1", release="1", files={"/usr/share/world/data": WORLD_DATA},
             directories=["/usr/share/world", "/usr/share/hello"])
ZERO = dict(name="zero", version="0.1", release="7", epoch=0, files={"/usr/share/zero": ZERO_DATA})
MULTI = [dict(name="multi", version=version, release="1", files={"/usr/lib/multi-%s/x" % version: b"m"})
         for version in ("1.0", "2.0")]


def sha256(content):
    return "sha256:" + hashlib.sha256(content).hexdigest()


@pytest.fixture(scope="module")
def rpm_system(tmp_path_factory, builders):
    """A root with hello (Epoch 2), world (no epoch), zero (Epoch 0) and two versions of multi."""
    builders.require_tools("rpm", "rpmbuild")
    top = tmp_path_factory.mktemp("rpmbuild")
    rpms = [builders.RpmPackage(**fields).build(top) for fields in [HELLO, WORLD, ZERO] + MULTI]
    root = builders.RpmRoot(top / "root")
    root.install(*rpms)
    # a ghost is owned while something is there: make one of the two exist
    os.makedirs(os.path.join(root.path, "var/log"), exist_ok=True)
    open(os.path.join(root.path, "var/log/hello.present"), "w").close()
    return RpmDatabase(root.path, b"/var/lib/rpm")


def owned_by_path(database):
    return {owned.path: owned for owned in database.owned_paths()}


def test_packages_are_exactly_the_installed_ones(rpm_system):
    found = {(p["name"], p["epoch"], p["version"], p["release"], p["arch"]) for p in rpm_system.packages()}
    assert found == {("hello", 2, "1.0", "3", "noarch"), ("world", None, "2.1", "1", "noarch"),
                     ("zero", 0, "0.1", "7", "noarch"), ("multi", None, "1.0", "1", "noarch"),
                     ("multi", None, "2.0", "1", "noarch")}
    assert rpm_system.problems == []


def test_package_record_fields(rpm_system):
    hello = next(p for p in rpm_system.packages() if p["name"] == "hello")
    assert (hello["manager"], hello["source"], hello["status"], hello["key"]) == ("rpm", "hello", "installed",
                                                                                 "hello")
    assert hello["installed_size"] == len(HELLO_BIN) + len(HELLO_CONF) + len("../../bin/hello")
    assert hello["files"] == 4  # the directory, two files and the symlink; ghosts are not counted
    assert hello["install_time"].endswith("Z")


def test_repeated_names_get_versioned_keys(rpm_system):
    keys = sorted(p["key"] for p in rpm_system.packages() if p["name"] == "multi")
    assert keys == ["multi-1.0-1.noarch", "multi-2.0-1.noarch"]
    owned = owned_by_path(rpm_system)
    assert owned[b"/usr/lib/multi-2.0/x"].packages == ("multi-2.0-1.noarch",)


def test_owned_paths_are_exactly_the_package_files(rpm_system):
    expected = {b"/usr/bin/hello", b"/etc/hello.conf", b"/usr/share/hello/link", b"/usr/share/hello",
                b"/var/log/hello.present", b"/usr/share/world", b"/usr/share/world/data", b"/usr/share/zero",
                b"/usr/lib/multi-1.0/x", b"/usr/lib/multi-2.0/x"}
    assert set(owned_by_path(rpm_system)) == expected


def test_regular_file_attributes(rpm_system):
    hello = owned_by_path(rpm_system)[b"/usr/bin/hello"]
    assert (hello.kind, hello.size, hello.digest) == ("file", len(HELLO_BIN), sha256(HELLO_BIN))
    assert (hello.mode, hello.owner, hello.group) == (0o4755, "root", "root")
    assert (hello.conffile, hello.link_target, hello.packages) == (False, None, ("hello",))


def test_config_file_is_a_conffile(rpm_system):
    conf = owned_by_path(rpm_system)[b"/etc/hello.conf"]
    assert (conf.conffile, conf.digest, conf.mode) == (True, sha256(HELLO_CONF), 0o644)


def test_symlink_has_its_target_and_no_digest(rpm_system):
    link = owned_by_path(rpm_system)[b"/usr/share/hello/link"]
    assert (link.kind, link.link_target, link.digest, link.size) == ("symlink", b"../../bin/hello", None, None)


def test_shared_directory_lists_both_owners(rpm_system):
    shared = owned_by_path(rpm_system)[b"/usr/share/hello"]
    assert sorted(shared.packages) == ["hello", "world"]
    assert (shared.kind, shared.mode) == ("dir", 0o755)


def test_present_ghost_is_owned_without_content(rpm_system):
    ghost = owned_by_path(rpm_system)[b"/var/log/hello.present"]
    assert (ghost.packages, ghost.digest, ghost.size) == (("hello",), None, None)


def test_open_package_databases_finds_rpm(rpm_system):
    assert [database.manager for database in open_package_databases(rpm_system.root)] == ["rpm"]


def test_without_rpm_command_the_database_is_a_problem(rpm_system, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    database = RpmDatabase(rpm_system.root, b"/var/lib/rpm")
    assert list(database.packages()) == []
    assert "no rpm command" in database.problems[0][1]


def test_corrupt_database_is_a_problem_not_a_crash(tmp_path):
    os.makedirs(str(tmp_path / "var/lib/rpm"))
    (tmp_path / "var/lib/rpm/rpmdb.sqlite").write_bytes(b"this is not sqlite")
    database = open_package_databases(str(tmp_path))[0]
    assert list(database.owned_paths()) == []
    assert database.problems and "rpm -qa failed" in database.problems[0][1]


def test_every_digest_is_the_sha256_of_what_the_package_shipped(rpm_system):
    shipped = {"/usr/bin/hello": HELLO_BIN, "/etc/hello.conf": HELLO_CONF, "/usr/share/world/data": WORLD_DATA,
               "/usr/share/zero": ZERO_DATA, "/usr/lib/multi-1.0/x": b"m", "/usr/lib/multi-2.0/x": b"m"}
    digests = {owned.path: owned.digest for owned in rpm_system.owned_paths() if owned.digest}
    assert digests == {path.encode(): sha256(content) for path, content in shipped.items()}
