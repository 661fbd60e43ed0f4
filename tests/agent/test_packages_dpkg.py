"""dpkg database read from its files: packages, owned paths, digests, conffiles, multiarch, diversions."""

import hashlib
import os

import pytest

from machinescan.agent.packages import open_package_databases
from machinescan.agent.packages.dpkg import DpkgDatabase


CONF = b"listen = 8080\n"
TOOL = b"#!/bin/sh\necho tool\n"
README = b"read me\n"
LIB = {"amd64": b"\x7fELF amd64 library", "i386": b"\x7fELF i386 library"}
COPYRIGHT = b"Copyright: test\n"
REPLACEMENT = b"#!/bin/sh\necho replacement\n"
OLD_CONF = b"old = yes\n"

TRIPLETS = {"amd64": "x86_64-linux-gnu", "i386": "i386-linux-gnu"}


def md5(content):
    return "md5:" + hashlib.md5(content).hexdigest()


def with_parents(paths):
    """Every path and each of its parent directories but "/", as dpkg lists them."""
    listed = set()
    for path in paths:
        while path != "/":
            listed.add(path)
            path = os.path.dirname(path)
    return listed


TOOLBOX = dict(name="toolbox", version="1:2.5-3", files={"/etc/toolbox.conf": CONF, "/usr/bin/toolbox": TOOL,
                                                   "/usr/bin/tb": ("symlink", "toolbox"),
                                                   "/usr/share/doc/toolbox/README": README},
                     conffiles=["/etc/toolbox.conf"], source="toolbox-src")
WRAPPER = dict(name="wrapper", version="0.9", files={"/usr/bin/toolbox": REPLACEMENT})
OLDCONF = dict(name="oldconf", version="1.0", files={"/etc/oldconf.conf": OLD_CONF, "/usr/share/oldconf/x": b"x"},
                     conffiles=["/etc/oldconf.conf"])
LIBS = [dict(name="libdemo1", version="3.1-1", arch=arch, multi_arch="same",
                   files={"/usr/lib/%s/libdemo.so.1" % TRIPLETS[arch]: LIB[arch],
                          "/usr/share/doc/libdemo1/copyright": COPYRIGHT}) for arch in ("amd64", "i386")]


@pytest.fixture(scope="module")
def dpkg_system(tmp_path_factory, builders):
    """A root built with dpkg: toolbox diverted by wrapper, libdemo1 for two arches, oldconf removed."""
    builders.require_tools("dpkg", "dpkg-deb", "dpkg-divert")
    work = tmp_path_factory.mktemp("debs")

    def deb(fields):
        return builders.DebPackage(**fields).build(work)

    root = builders.DpkgRoot(work / "root")
    root.dpkg("--add-architecture", "i386")
    root.install(deb(TOOLBOX), deb(OLDCONF), *[deb(lib) for lib in LIBS])
    root.divert("/usr/bin/toolbox", "/usr/bin/toolbox.real", "wrapper")
    root.install(deb(WRAPPER))
    root.dpkg("--remove", "oldconf")
    with open(os.path.join(root.path, "var/lib/dpkg/statoverride"), "w") as overrides:
        overrides.write("root staff 4750 /usr/bin/toolbox.real\n")
    return DpkgDatabase(root.path)


def owned_by_path(database):
    return {owned.path: owned for owned in database.owned_paths()}


def test_packages_are_exactly_the_installed_ones(dpkg_system):
    found = {(p["name"], p["version"], p["epoch"], p["arch"], p["status"]) for p in dpkg_system.packages()}
    assert found == {("toolbox", "2.5-3", 1, "all", "installed"), ("wrapper", "0.9", None, "all", "installed"),
                     ("oldconf", "1.0", None, "all", "config-files"),
                     ("libdemo1", "3.1-1", None, "amd64", "installed"),
                     ("libdemo1", "3.1-1", None, "i386", "installed")}


def test_package_record_fields(dpkg_system):
    toolbox = next(p for p in dpkg_system.packages() if p["name"] == "toolbox")
    assert toolbox["manager"] == "dpkg"
    assert toolbox["source"] == "toolbox-src"
    assert toolbox["installed_size"] == 7 * 1024
    assert toolbox["key"] == "toolbox"
    assert toolbox["files"] == len(with_parents(TOOLBOX["files"]))
    assert (toolbox["modified"], toolbox["missing_files"]) == (False, 0)
    assert toolbox["install_time"].endswith("Z")


def test_owned_paths_are_exactly_the_listed_paths_after_diversion(dpkg_system):
    expected = with_parents(list(TOOLBOX["files"]) + ["/usr/bin/toolbox.real"] + list(OLDCONF["files"])[:1] +
                            [path for lib in LIBS for path in lib["files"]])
    assert set(owned_by_path(dpkg_system)) == {path.encode() for path in expected}


def test_file_digests_are_md5_of_the_shipped_content(dpkg_system):
    owned = owned_by_path(dpkg_system)
    assert owned[b"/usr/share/doc/toolbox/README"].digest == md5(README)
    assert owned[b"/usr/share/doc/toolbox/README"].kind == "file"
    assert owned[b"/usr/share/doc/toolbox"].kind == "dir"
    assert owned[b"/usr/bin/tb"].kind is None  # dpkg keeps no kind for a symlink
    assert owned[b"/usr/bin/tb"].digest is None


def test_conffile_is_flagged_with_its_md5_from_status(dpkg_system):
    conf = owned_by_path(dpkg_system)[b"/etc/toolbox.conf"]
    assert (conf.conffile, conf.digest, conf.packages) == (True, md5(CONF), ("toolbox",))
    assert not owned_by_path(dpkg_system)[b"/usr/bin/tb"].conffile


def test_diversion_moves_the_diverted_package_file(dpkg_system):
    owned = owned_by_path(dpkg_system)
    real = owned[b"/usr/bin/toolbox.real"]
    assert (real.packages, real.digest) == (("toolbox",), md5(TOOL))
    replacement = owned[b"/usr/bin/toolbox"]
    assert (replacement.packages, replacement.digest) == (("wrapper",), md5(REPLACEMENT))


def test_statoverride_gives_mode_owner_and_group(dpkg_system):
    real = owned_by_path(dpkg_system)[b"/usr/bin/toolbox.real"]
    assert (real.mode, real.owner, real.group) == (0o4750, "root", "staff")
    assert owned_by_path(dpkg_system)[b"/usr/share/doc/toolbox/README"].mode is None


def test_multiarch_same_instances_are_told_apart(dpkg_system):
    keys = {p["key"] for p in dpkg_system.packages() if p["name"] == "libdemo1"}
    assert keys == {"libdemo1:amd64", "libdemo1:i386"}
    owned = owned_by_path(dpkg_system)
    copyright_file = owned[b"/usr/share/doc/libdemo1/copyright"]
    assert sorted(copyright_file.packages) == ["libdemo1:amd64", "libdemo1:i386"]
    assert copyright_file.digest == md5(COPYRIGHT)
    for arch, triplet in TRIPLETS.items():
        library = owned[("/usr/lib/%s/libdemo.so.1" % triplet).encode()]
        assert (library.packages, library.digest) == (("libdemo1:" + arch,), md5(LIB[arch]))


def test_config_files_package_owns_only_its_conffile(dpkg_system):
    owned = owned_by_path(dpkg_system)
    assert owned[b"/etc/oldconf.conf"].packages == ("oldconf",)
    assert owned[b"/etc/oldconf.conf"].digest == md5(OLD_CONF)
    assert b"/usr/share/oldconf/x" not in owned
    oldconf = next(p for p in dpkg_system.packages() if p["name"] == "oldconf")
    assert oldconf["files"] == len(with_parents(["/etc/oldconf.conf"]))


def test_merged_usr_paths_are_canonical(dpkg_root, tmp_path, builders):
    os.makedirs(os.path.join(dpkg_root.path, "usr/bin"))
    os.symlink("usr/bin", os.path.join(dpkg_root.path, "bin"))
    dpkg_root.install(builders.DebPackage("oldstyle", "1", files={"/bin/oldtool": TOOL}).build(tmp_path))
    owned = owned_by_path(DpkgDatabase(dpkg_root.path))
    assert owned[b"/usr/bin/oldtool"].digest == md5(TOOL)
    assert b"/bin/oldtool" not in owned
    assert set(owned) == {b"/bin", b"/usr/bin/oldtool"}


def test_open_package_databases_finds_dpkg(dpkg_root):
    assert [database.manager for database in open_package_databases(dpkg_root.path)] == ["dpkg"]


def test_open_package_databases_on_an_empty_root(tmp_path):
    assert open_package_databases(str(tmp_path)) == []


def test_unreadable_list_is_a_problem_not_a_crash(dpkg_root, tmp_path, builders):
    dpkg_root.install(builders.DebPackage("broken", "1", files={"/usr/share/broken/a": b"a"}).build(tmp_path))
    list_file = os.path.join(dpkg_root.path, "var/lib/dpkg/info/broken.list")
    os.remove(list_file)
    os.mkdir(list_file)  # root reads any file: a directory in its place cannot be read, even by root
    database = DpkgDatabase(dpkg_root.path)
    assert list(database.owned_paths()) == []
    assert [path for path, _ in database.problems] == [list_file.encode()]


def test_every_digest_is_the_md5_of_what_the_package_shipped_there(dpkg_system):
    shipped = {"/etc/toolbox.conf": CONF, "/usr/bin/toolbox.real": TOOL, "/usr/share/doc/toolbox/README": README,
               "/usr/bin/toolbox": REPLACEMENT, "/etc/oldconf.conf": OLD_CONF,
               "/usr/share/doc/libdemo1/copyright": COPYRIGHT}
    for arch, triplet in TRIPLETS.items():
        shipped["/usr/lib/%s/libdemo.so.1" % triplet] = LIB[arch]
    digests = {owned.path: owned.digest for owned in dpkg_system.owned_paths() if owned.digest}
    assert digests == {path.encode(): md5(content) for path, content in shipped.items()}
