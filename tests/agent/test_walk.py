"""The walk: lstat only, bytes paths, exclusions, mounts, errors recorded per entry."""

import os
import stat

import pytest

from machinescan.agent.walk import (DEFAULT_EXCLUDES, Exclusions, MountPolicy, Walker, normalize_path,
                                    read_mounts, unescape_mount_field)


def walked(root, excludes=(), mounts=None, **kwargs):
    """{path: Entry} of a walk with a mount table that has only the root (no foreign mounts)."""
    walker = Walker(root, Exclusions(excludes), mounts={} if mounts is None else mounts, **kwargs)
    return dict((entry.path, entry) for entry in walker)


def paths_by_find(root):
    """Every path under root as `find` reports it, from the scanned root ('/x/y')."""
    found = set()
    for directory, dirs, files in os.walk(os.fsencode(root)):
        for name in dirs + files:
            found.add(os.path.join(directory, name)[len(os.fsencode(root)):])
    return found


def test_walk_yields_every_path_once_with_its_lstat(tmp_path):
    (tmp_path / "etc" / "app").mkdir(parents=True)
    (tmp_path / "etc" / "app" / "conf").write_text("x=1\n")
    (tmp_path / "etc" / "link").symlink_to("app/conf")
    entries = walked(str(tmp_path))
    assert set(entries) - {b"/"} == paths_by_find(tmp_path)
    link = entries[b"/etc/link"]
    assert stat.S_ISLNK(link.stat.st_mode)
    assert link.disk_path == os.fsencode(str(tmp_path / "etc" / "link"))


def test_non_utf8_and_newline_names_are_kept_as_raw_bytes(tmp_path):
    root = os.fsencode(str(tmp_path))
    odd_names = [b"caf\xe9", b"line\nbreak", b"tab\there"]
    for name in odd_names:
        with open(os.path.join(root, name), "wb") as handle:
            handle.write(name)
    entries = walked(root)
    for name in odd_names:
        assert entries[b"/" + name].stat.st_size == len(name)


def test_symlink_loops_are_not_followed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "loop").symlink_to("..")
    (tmp_path / "self").symlink_to("self")
    entries = walked(str(tmp_path))
    assert sorted(entries) == [b"/", b"/a", b"/a/loop", b"/self"]


def test_excluded_tree_is_yielded_once_and_not_entered(tmp_path):
    (tmp_path / "srv" / "data" / "deep").mkdir(parents=True)
    (tmp_path / "srv" / "keep").write_text("k")
    (tmp_path / "srv" / "data" / "deep" / "big").write_text("b")
    entries = walked(str(tmp_path), excludes=[b"/srv/data"])
    assert entries[b"/srv/data"].excluded
    assert not entries[b"/srv/keep"].excluded
    assert b"/srv/data/deep" not in entries
    assert b"/srv/data/deep/big" not in entries


def test_excluded_single_file(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "secret").write_text("s")
    (tmp_path / "etc" / "secret2").write_text("s")
    entries = walked(str(tmp_path), excludes=["etc//secret/"])
    assert entries[b"/etc/secret"].excluded
    assert not entries[b"/etc/secret2"].excluded


def test_default_excludes_are_relative_to_the_root(tmp_path):
    for name in ("proc", "tmp", "var/cache", "var/lib"):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "inside").write_text("i")
    entries = walked(str(tmp_path), excludes=DEFAULT_EXCLUDES)
    assert entries[b"/tmp"].excluded and entries[b"/var/cache"].excluded
    assert b"/tmp/inside" not in entries and b"/proc/inside" not in entries
    assert b"/var/lib/inside" in entries


def test_file_deleted_after_listing_is_reported_vanished_and_walk_goes_on(tmp_path):
    (tmp_path / "d").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "d" / name).write_text(name)

    def delete_b(dir_path):
        if dir_path == b"/d":
            (tmp_path / "d" / "b").unlink()

    entries = walked(str(tmp_path), on_dir_listed=delete_b)
    assert entries[b"/d/b"].error == "vanished"
    assert entries[b"/d/b"].stat is None
    assert entries[b"/d/c"].stat is not None


def test_directory_that_vanishes_before_its_listing_is_an_error_entry(tmp_path):
    (tmp_path / "gone").mkdir()
    (tmp_path / "after").write_text("a")
    entries = {}
    for entry in Walker(str(tmp_path), Exclusions(()), mounts={}):
        if entry.path == b"/gone" and entry.error is None:
            (tmp_path / "gone").rmdir()
        entries.setdefault(entry.path, []).append(entry)
    errors = [e.error for e in entries[b"/gone"] if e.error]
    assert errors == ["cannot list directory: vanished"]
    assert entries[b"/after"][0].stat is not None


def test_name_too_long_is_recorded_not_fatal(tmp_path):
    # Build a path longer than PATH_MAX (4096) with relative mkdirs, then walk it.
    root = str(tmp_path)
    depth_name = "d" * 200
    current = os.open(root, os.O_RDONLY)
    try:
        for _ in range(25):
            os.mkdir(depth_name, dir_fd=current)
            next_fd = os.open(depth_name, os.O_RDONLY, dir_fd=current)
            os.close(current)
            current = next_fd
    finally:
        os.close(current)
    (tmp_path / "sibling").write_text("s")
    entries = walked(root)
    errors = [e for e in entries.values() if e.error]
    assert errors, "a path beyond PATH_MAX must give an error entry"
    assert any("name too long" in e.error for e in errors)
    assert entries[b"/sibling"].stat is not None


def test_mount_policy_enters_local_disks_and_skips_others():
    policy = MountPolicy({b"/mnt/x/boot": "ext4", b"/mnt/x/nfs": "nfs4", b"/mnt/x/run": "tmpfs"})
    assert policy.enters(b"/boot", b"/mnt/x/boot")
    assert not policy.enters(b"/nfs", b"/mnt/x/nfs")
    assert not policy.enters(b"/run", b"/mnt/x/run")
    assert policy.enters(b"/subvol", b"/mnt/x/subvol")  # btrfs subvolume: no mount entry
    assert policy.skipped == [(b"/nfs", "nfs4"), (b"/run", "tmpfs")]
    assert not MountPolicy({}).enters(b"/other", b"/other")


def test_walk_does_not_cross_into_a_tmpfs_mount(tmp_path):
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    if os.system("mount -t tmpfs none %s 2>/dev/null" % mount_point) != 0:
        pytest.skip("cannot mount a tmpfs here (needs CAP_SYS_ADMIN)")
    try:
        (mount_point / "inside").write_text("volatile")
        walker = Walker(str(tmp_path), Exclusions(()))
        paths = [entry.path for entry in walker]
        assert b"/mnt" in paths and b"/mnt/inside" not in paths
        assert walker.skipped_mounts == [(b"/mnt", "tmpfs")]
    finally:
        os.system("umount %s" % mount_point)


def test_mount_table_unescapes_spaces(tmp_path):
    table = tmp_path / "mounts"
    table.write_bytes(b"/dev/sda1 /mnt/my\\040disk ext4 rw 0 0\nserver:/x /net nfs4 rw 0 0\n")
    assert read_mounts(str(table)) == {b"/mnt/my disk": "ext4", b"/net": "nfs4"}
    assert unescape_mount_field(b"a\\011b") == b"a\tb"


def test_normalize_path():
    assert normalize_path("etc//x/") == b"/etc/x"
    assert normalize_path(b"/./var/tmp") == b"/var/tmp"
    assert normalize_path("/") == b"/"
