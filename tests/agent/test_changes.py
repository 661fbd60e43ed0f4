"""Classification of walked paths against owned paths (built here as plain records)."""

import collections
import hashlib
import os

from machinescan.agent.changes import Classifier, Identity, OwnedIndex, digest_file, kind_of, mode_string
from machinescan.agent.walk import Exclusions, Walker

# Same fields as machinescan.agent.packages.OwnedPath, so the tests do not depend on a package database.
Owned = collections.namedtuple(
    "Owned", "path kind size digest mode owner group link_target conffile packages")


def owned(path, kind="file", size=None, digest=None, mode=None, owner=None, group=None, link_target=None,
          conffile=False, packages=("pkg",)):
    return Owned(path, kind, size, digest, mode, owner, group, link_target, conffile, packages)


def md5_of(data):
    return "md5:" + hashlib.md5(data).hexdigest()


def classify_tree(root, owned_paths):
    """{path: Verdict} for every walked entry of root."""
    index = OwnedIndex(owned_paths)
    classifier = Classifier(index, Identity(str(root)))
    verdicts = {}
    for entry in Walker(str(root), Exclusions(()), mounts={}):
        verdicts[entry.path] = classifier.classify(entry)
    return verdicts, index


def make_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nwww:x:33:\n")
    return root


def test_unowned_file_is_added(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "mine").write_text("m")
    verdicts, _ = classify_tree(root, [])
    assert verdicts[b"/etc/mine"].change == "added"


def test_owned_file_with_same_md5_is_unchanged(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "conf").write_bytes(b"original\n")
    verdicts, _ = classify_tree(root, [owned(b"/etc/conf", digest=md5_of(b"original\n"))])
    assert verdicts[b"/etc/conf"].change == "unchanged"
    assert verdicts[b"/etc/conf"].changed == []


def test_same_size_other_content_is_modified_digest(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "conf").write_bytes(b"edited!!\n")
    verdicts, _ = classify_tree(root, [owned(b"/etc/conf", size=9, digest=md5_of(b"original\n"))])
    assert verdicts[b"/etc/conf"].change == "modified"
    assert verdicts[b"/etc/conf"].changed == ["digest"]


def test_other_size_is_modified_without_reading(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "conf").write_bytes(b"longer content\n")
    os.chmod(str(root / "etc" / "conf"), 0)  # root can still read; reading is simply not needed
    verdicts, _ = classify_tree(root, [owned(b"/etc/conf", size=3, digest=md5_of(b"abc"))])
    assert verdicts[b"/etc/conf"].changed == ["size", "digest"]


def test_sha256_digest_is_kept_for_the_report(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "conf").write_bytes(b"rpm style\n")
    digest = hashlib.sha256(b"rpm style\n").hexdigest()
    verdicts, _ = classify_tree(root, [owned(b"/etc/conf", digest="sha256:" + digest)])
    assert verdicts[b"/etc/conf"].change == "unchanged"
    assert verdicts[b"/etc/conf"].sha256 == digest


def test_only_mode_owner_group_changed_is_metadata(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "conf").write_bytes(b"same\n")
    os.chmod(str(root / "etc" / "conf"), 0o600)
    os.chown(str(root / "etc" / "conf"), 33, 33)
    entry = owned(b"/etc/conf", digest=md5_of(b"same\n"), mode=0o100644, owner="root", group="root")
    verdicts, _ = classify_tree(root, [entry])
    assert verdicts[b"/etc/conf"].change == "metadata"
    assert verdicts[b"/etc/conf"].changed == ["mode", "owner", "group"]


def test_content_and_mode_changed_is_modified(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "conf").write_bytes(b"new!\n")
    os.chmod(str(root / "etc" / "conf"), 0o600)
    verdicts, _ = classify_tree(root, [owned(b"/etc/conf", digest=md5_of(b"old!\n"), mode=0o644)])
    assert verdicts[b"/etc/conf"].change == "modified"
    assert verdicts[b"/etc/conf"].changed == ["digest", "mode"]


def test_symlink_with_other_target_is_modified(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "alt").symlink_to("/usr/bin/vim")
    verdicts, _ = classify_tree(root, [owned(b"/etc/alt", kind="symlink", link_target=b"/usr/bin/nano")])
    assert verdicts[b"/etc/alt"].change == "modified"
    assert verdicts[b"/etc/alt"].changed == ["target"]
    assert verdicts[b"/etc/alt"].link_target == b"/usr/bin/vim"


def test_file_replaced_by_directory_is_modified_kind(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "was_file").mkdir()
    verdicts, _ = classify_tree(root, [owned(b"/etc/was_file", kind="file", digest=md5_of(b""))])
    assert verdicts[b"/etc/was_file"].change == "modified"
    assert verdicts[b"/etc/was_file"].changed == ["kind"]


def test_second_path_of_an_inode_is_a_hardlink_to_the_first(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "a").write_bytes(b"shared")
    os.link(str(root / "etc" / "a"), str(root / "etc" / "b"))
    verdicts, _ = classify_tree(root, [])
    assert verdicts[b"/etc/a"].kind == "file"
    assert verdicts[b"/etc/b"].kind == "hardlink"
    assert verdicts[b"/etc/b"].link_target == b"/etc/a"


def test_owned_paths_never_met_are_unseen(tmp_path):
    root = make_root(tmp_path)
    (root / "etc" / "present").write_bytes(b"p")
    verdicts, index = classify_tree(root, [owned(b"/etc/present"), owned(b"/etc/absent")])
    assert [o.path for o in index.unseen()] == [b"/etc/absent"]


def test_path_owned_twice_keeps_every_owner(tmp_path):
    index = OwnedIndex([owned(b"/usr/share/doc", kind="dir", packages=("a",)),
                        owned(b"/usr/share/doc", kind="dir", packages=("b",), conffile=True)])
    merged = index.lookup(b"/usr/share/doc")
    assert merged.packages == ("a", "b") and merged.conffile


def test_fifo_socket_and_device_kinds(tmp_path):
    root = make_root(tmp_path)
    os.mkfifo(str(root / "fifo"))
    os.mknod(str(root / "null"), 0o600 | 0o020000, os.makedev(1, 3))
    verdicts, _ = classify_tree(root, [])
    assert verdicts[b"/fifo"].kind == "fifo"
    assert verdicts[b"/null"].kind == "chardev"


def test_identity_reads_names_inside_the_root(tmp_path):
    root = make_root(tmp_path)
    identity = Identity(str(root))
    assert identity.user(33) == "www" and identity.group(0) == "root" and identity.user(999) is None


def test_digest_file_computes_several_algorithms_in_one_read(tmp_path):
    path = tmp_path / "data"
    data = os.urandom(3 * 1024 * 1024 + 5)
    path.write_bytes(data)
    digests = digest_file(str(path), ["md5", "sha256"])
    assert digests == {"md5": hashlib.md5(data).hexdigest(), "sha256": hashlib.sha256(data).hexdigest()}


def test_mode_string_and_kind():
    assert mode_string(0o104755) == "4755"
    assert mode_string(0o40700) == "0700"
    assert kind_of(0o120777) == "symlink"
