"""canonical_path: package paths through symlinked directories, never leaving the scanned root."""

import os

import pytest

from machinescan.agent.packages import PathCanonicaliser, canonical_path


@pytest.fixture
def root(tmp_path):
    """A merged-/usr root: /bin -> usr/bin, /lib -> /usr/lib (absolute), /sbin -> bin (a chain)."""
    for directory in ("usr/bin", "usr/lib/modules", "opt/real"):
        os.makedirs(str(tmp_path / directory))
    os.symlink("usr/bin", str(tmp_path / "bin"))
    os.symlink("/usr/lib", str(tmp_path / "lib"))
    os.symlink("bin", str(tmp_path / "sbin"))
    return str(tmp_path)


def test_relative_directory_symlink_is_followed(root):
    assert canonical_path(root, b"/bin/ls") == b"/usr/bin/ls"


def test_absolute_directory_symlink_stays_inside_root(root):
    assert canonical_path(root, b"/lib/modules/6.1") == b"/usr/lib/modules/6.1"


def test_chain_of_symlinks_is_followed(root):
    assert canonical_path(root, b"/sbin/init") == b"/usr/bin/init"


def test_last_component_is_not_followed(root):
    assert canonical_path(root, b"/bin") == b"/bin"


def test_dot_and_double_slash_are_removed(root):
    assert canonical_path(root, b"//usr/./bin//ls") == b"/usr/bin/ls"
    assert canonical_path(root, b"/.") == b"/"


def test_symlink_pointing_above_root_stays_at_root(root):
    os.symlink("../../../../etc", os.path.join(root, "opt", "escape"))
    assert canonical_path(root, b"/opt/escape/passwd") == b"/etc/passwd"


def test_absolute_symlink_to_host_path_is_read_inside_root(root):
    os.symlink("/opt/real", os.path.join(root, "usr", "real"))
    assert canonical_path(root, b"/usr/real/x") == b"/opt/real/x"


def test_symlink_loop_is_left_as_it_is(root):
    os.symlink("loop-b", os.path.join(root, "loop-a"))
    os.symlink("loop-a", os.path.join(root, "loop-b"))
    assert canonical_path(root, b"/loop-a/x").endswith(b"/x")


def test_non_utf8_names_pass_through(root):
    assert canonical_path(root, b"/bin/caf\xe9") == b"/usr/bin/caf\xe9"


def test_canonicaliser_remembers_directories(root):
    canonicaliser = PathCanonicaliser(root)
    assert canonicaliser.canonical(b"/bin/a") == b"/usr/bin/a"
    os.remove(os.path.join(root, "bin"))
    assert canonicaliser.canonical(b"/bin/b") == b"/usr/bin/b"  # resolved once per scan
