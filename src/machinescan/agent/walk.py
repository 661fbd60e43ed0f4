"""Filesystem walk of a scanned root: lstat only, bytes paths, one filesystem per mount, exclusions, errors per entry."""

import errno
import os
import stat

# Skipped by default: kernel views, volatile state and caches that a migration never needs.
DEFAULT_EXCLUDES = (b"/proc", b"/sys", b"/dev", b"/run", b"/tmp", b"/var/tmp", b"/var/cache")

# Mount types whose content lives on a local disk of the machine; every other type (pseudo, tmpfs,
# network, fuse) is skipped when the walk meets its mount point.
LOCAL_DISK_FILESYSTEMS = frozenset((
    "ext2", "ext3", "ext4", "xfs", "btrfs", "jfs", "reiserfs", "vfat", "exfat", "ntfs", "ntfs3",
    "f2fs", "zfs", "bcachefs", "hfsplus", "ufs", "nilfs2", "msdos",
))

NETWORK_FILESYSTEMS = frozenset((
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "ceph", "glusterfs", "fuse.glusterfs",
    "fuse.sshfs", "sshfs", "9p", "afs", "lustre", "gpfs", "ocfs2", "gfs2", "davfs", "fuse.s3fs",
    "fuse.rclone", "beegfs", "fuse.ceph",
))


class Entry(object):
    """One walked path: `path` as seen from the scanned root, `disk_path` where it is, its lstat or error."""

    __slots__ = ("path", "disk_path", "stat", "error", "excluded")

    def __init__(self, path, disk_path, stat_result=None, error=None, excluded=False):
        self.path = path
        self.disk_path = disk_path
        self.stat = stat_result
        self.error = error
        self.excluded = excluded

    def __repr__(self):
        return "Entry(%r, error=%r, excluded=%r)" % (self.path, self.error, self.excluded)


class Exclusions(object):
    """Paths (files or whole trees) under the scanned root that the walk must not enter."""

    def __init__(self, paths):
        self.paths = set(normalize_path(p) for p in paths)

    def covers(self, path):
        """True when `path` is an excluded path or lies under one."""
        if path in self.paths:
            return True
        parent = path
        while parent not in (b"/", b""):
            parent = parent.rsplit(b"/", 1)[0] or b"/"
            if parent in self.paths:
                return True
        return False

    def sorted(self):
        return sorted(self.paths)


def normalize_path(path):
    """An absolute, slash-normalised bytes path ('etc//x/' -> '/etc/x')."""
    if isinstance(path, str):
        path = os.fsencode(path)
    parts = [part for part in path.split(b"/") if part and part != b"."]
    return b"/" + b"/".join(parts)


def join_root(root, path):
    """The on-disk location of `path` (absolute, from the scanned root) under `root`."""
    if root == b"/":
        return path
    return root.rstrip(b"/") + path


def read_mounts(mounts_file="/proc/self/mounts"):
    """{mount point (bytes, as on the host): filesystem type}; empty when the table cannot be read."""
    mounts = {}
    try:
        with open(mounts_file, "rb") as table:
            for line in table:
                fields = line.split()
                if len(fields) >= 3:
                    mounts[unescape_mount_field(fields[1])] = fields[2].decode("ascii", "replace")
    except OSError:
        pass
    return mounts


def unescape_mount_field(field):
    """Undo the octal escapes (\\040 for a space) that /proc/self/mounts uses in paths."""
    if b"\\" not in field:
        return field
    out = bytearray()
    index = 0
    while index < len(field):
        if field[index:index + 1] == b"\\" and field[index + 1:index + 4].isdigit():
            out.append(int(field[index + 1:index + 4], 8))
            index += 4
        else:
            out.append(field[index])
            index += 1
    return bytes(out)


class MountPolicy(object):
    """Decides whether the walk enters a directory that sits on another device than its parent."""

    def __init__(self, mounts):
        self.mounts = mounts
        self.skipped = []  # (path from root, filesystem type) of the mounts left out

    def enters(self, path, disk_path):
        fs_type = self.mounts.get(disk_path)
        if fs_type is None:
            # A device change that is no mount point (a btrfs subvolume) belongs to the parent
            # filesystem; without a mount table (no /proc) stay on one device, like find -xdev.
            if not self.mounts:
                self.skipped.append((path, "unknown"))
                return False
            return True
        if fs_type in LOCAL_DISK_FILESYSTEMS:
            return True
        self.skipped.append((path, fs_type))
        return False


class Walker(object):
    """Yields an Entry for every path under `root` (bytes), depth first, names sorted.

    Excluded paths are yielded once (excluded=True, with their lstat) and not entered. Entries that
    vanish or cannot be read are yielded with `error` set; the walk goes on. `mounts` is the mount
    table (read_mounts()); `on_dir_listed(path)` runs after each directory listing (a test seam).
    After the walk, `skipped_mounts` lists the (path, filesystem type) of mounts left out.
    """

    def __init__(self, root, exclusions, mounts=None, on_dir_listed=None):
        self.root = os.path.realpath(os.fsencode(root))
        self.exclusions = exclusions
        self.policy = MountPolicy(read_mounts() if mounts is None else mounts)
        self.on_dir_listed = on_dir_listed

    @property
    def skipped_mounts(self):
        return self.policy.skipped

    def __iter__(self):
        try:
            root_stat = os.lstat(self.root)
        except OSError as error:
            yield Entry(b"/", self.root, error=describe_error(error))
            return
        yield Entry(b"/", self.root, root_stat)
        if not stat.S_ISDIR(root_stat.st_mode):
            return
        stack = [(b"/", self.root, root_stat.st_dev)]
        while stack:
            dir_path, dir_disk_path, dir_dev = stack.pop()
            children = []
            for entry in self._directory_entries(dir_path, dir_disk_path):
                yield entry
                if self._descends_into(entry, dir_dev):
                    children.append((entry.path, entry.disk_path, entry.stat.st_dev))
            stack.extend(reversed(children))

    def _descends_into(self, entry, parent_dev):
        if entry.stat is None or entry.excluded or not stat.S_ISDIR(entry.stat.st_mode):
            return False
        return entry.stat.st_dev == parent_dev or self.policy.enters(entry.path, entry.disk_path)

    def _directory_entries(self, dir_path, dir_disk_path):
        """Entries of one directory (sorted by name), or one error entry for the directory itself."""
        try:
            with os.scandir(dir_disk_path) as listing:
                names = sorted(item.name for item in listing)
        except OSError as error:
            yield Entry(dir_path, dir_disk_path, error="cannot list directory: " + describe_error(error))
            return
        if self.on_dir_listed is not None:
            self.on_dir_listed(dir_path)
        excluded = self.exclusions.paths
        prefix = dir_path.rstrip(b"/") + b"/"
        disk_prefix = dir_disk_path.rstrip(b"/") + b"/"
        for name in names:
            path = prefix + name
            disk_path = disk_prefix + name
            try:
                entry_stat = os.lstat(disk_path)
            except OSError as error:
                yield Entry(path, disk_path, error=describe_error(error))
                continue
            # Ancestors of an excluded path are never entered, so the path itself is all to check.
            yield Entry(path, disk_path, entry_stat, excluded=path in excluded)


def describe_error(error):
    """A short cause for an OSError: 'vanished', 'unreadable (Permission denied)', 'name too long'."""
    if error.errno == errno.ENOENT:
        return "vanished"
    if error.errno == errno.ENAMETOOLONG:
        return "name too long"
    if error.errno in (errno.EACCES, errno.EPERM):
        return "unreadable (%s)" % os.strerror(error.errno)
    return os.strerror(error.errno) if error.errno else str(error)
