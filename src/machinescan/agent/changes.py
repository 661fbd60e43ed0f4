"""Classification of walked paths against the package databases: unchanged, added, modified, metadata, deleted."""

import hashlib
import os
import stat

READ_BLOCK = 1024 * 1024

KIND_BY_FORMAT = (
    (stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"), (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"),
)


def kind_of(mode):
    """The report's `kind` for an st_mode (regular files are 'file'; hard links are decided elsewhere)."""
    for test, kind in KIND_BY_FORMAT:
        if test(mode):
            return kind
    return "file"


def mode_string(mode):
    """Permission bits plus setuid/setgid/sticky as an octal string ('0755', '4755')."""
    return "%04o" % stat.S_IMODE(mode)


class Identity(object):
    """User and group names of the scanned root (its /etc/passwd and /etc/group), by numeric id."""

    def __init__(self, root):
        self.users = _read_id_names(os.path.join(os.fsencode(root), b"etc/passwd"))
        self.groups = _read_id_names(os.path.join(os.fsencode(root), b"etc/group"))
        # Id 0 is root on every Unix, even in a root whose /etc/passwd is missing or incomplete.
        self.users.setdefault(0, "root")
        self.groups.setdefault(0, "root")

    def user(self, uid):
        return self.users.get(uid)

    def group(self, gid):
        return self.groups.get(gid)


def _read_id_names(path):
    names = {}
    try:
        with open(path, "rb") as table:
            for line in table:
                fields = line.rstrip(b"\n").split(b":")
                if len(fields) >= 3 and fields[2].isdigit():
                    names.setdefault(int(fields[2]), fields[0].decode("utf-8", "replace"))
    except OSError:
        pass
    return names


def open_regular_file(disk_path):
    """A read-only fd on a regular file, never following a symlink nor blocking on a fifo put in its place.

    Raises OSError (ENOENT when it vanished) or NotARegularFile.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    noatime = getattr(os, "O_NOATIME", 0)
    try:
        fd = os.open(disk_path, flags | noatime)
    except PermissionError:
        # O_NOATIME needs ownership of the file or CAP_FOWNER; keep reading without it.
        fd = os.open(disk_path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(disk_path)
    return fd


class NotARegularFile(OSError):
    """The path no longer holds a regular file (replaced since it was walked)."""


def digest_file(disk_path, algorithms):
    """{algorithm: hex digest} of a file's content, read once for every algorithm."""
    hashers = dict((name, hashlib.new(name)) for name in algorithms)
    fd = open_regular_file(disk_path)
    try:
        while True:
            block = os.read(fd, READ_BLOCK)
            if not block:
                break
            for hasher in hashers.values():
                hasher.update(block)
    finally:
        os.close(fd)
    return dict((name, hasher.hexdigest()) for name, hasher in hashers.items())


def split_digest(digest):
    """'md5:ab12' -> ('md5', 'ab12'); None -> (None, None)."""
    if not digest or ":" not in digest:
        return None, None
    algorithm, value = digest.split(":", 1)
    return algorithm.lower(), value.lower()


class OwnedIndex(object):
    """Every path the package databases own, by canonical path, remembering which ones the walk met."""

    def __init__(self, owned_paths):
        self.by_path = {}
        for owned in owned_paths:
            earlier = self.by_path.get(owned.path)
            self.by_path[owned.path] = owned if earlier is None else _merge_owners(earlier, owned)
        self.seen = set()

    def lookup(self, path):
        owned = self.by_path.get(path)
        if owned is not None:
            self.seen.add(path)
        return owned

    def unseen(self):
        """Owned paths the walk never met, sorted."""
        for path in sorted(self.by_path):
            if path not in self.seen:
                yield self.by_path[path]


def _merge_owners(first, second):
    """Two databases (or two packages) owning one path: keep the first's metadata, all the owners."""
    owners = tuple(first.packages) + tuple(p for p in second.packages if p not in first.packages)
    return first._replace(packages=owners, conffile=bool(first.conffile or second.conffile))


class Verdict(object):
    """What the classification found about one walked path."""

    __slots__ = ("change", "changed", "kind", "link_target", "sha256", "owned", "note")

    def __init__(self, kind, owned):
        self.kind = kind
        self.owned = owned
        self.change = "unchanged"
        self.changed = []
        self.link_target = None
        self.sha256 = None
        self.note = None


class Classifier(object):
    """Compares walked entries with the owned paths; reads a file only when a digest decides."""

    def __init__(self, owned_index, identity):
        self.owned_index = owned_index
        self.identity = identity
        self.first_path_of_inode = {}   # (dev, ino) -> first walked path, for files with several links
        self.digests_of_inode = {}      # (dev, ino) -> {algorithm: hex}, so a hard link is read once

    def classify(self, entry, read_content=True):
        """A Verdict for a walked entry; `read_content=False` never opens the file (excluded content)."""
        st = entry.stat
        verdict = Verdict(kind_of(st.st_mode), self.owned_index.lookup(entry.path))
        if verdict.kind == "file" and st.st_nlink > 1:
            self._note_hard_link(entry, verdict)
        elif verdict.kind == "symlink":
            verdict.link_target = _read_link(entry, verdict)
        if verdict.owned is None:
            verdict.change = "added"
            return verdict
        verdict.changed = self._differences(entry, verdict, read_content)
        verdict.change = _change_of(verdict.changed)
        return verdict

    def _note_hard_link(self, entry, verdict):
        inode = (entry.stat.st_dev, entry.stat.st_ino)
        first = self.first_path_of_inode.setdefault(inode, entry.path)
        if first != entry.path:
            verdict.kind = "hardlink"
            verdict.link_target = first

    def _differences(self, entry, verdict, read_content):
        owned, st = verdict.owned, entry.stat
        owned_kind = _comparable_kind(owned.kind)
        actual_kind = "file" if verdict.kind == "hardlink" else verdict.kind
        if owned_kind is not None and owned_kind != actual_kind:
            return ["kind"]
        changed = []
        if actual_kind == "file":
            changed.extend(self._content_differences(entry, verdict, read_content))
        elif actual_kind == "symlink" and owned.link_target is not None:
            if verdict.link_target is not None and verdict.link_target != owned.link_target:
                changed.append("target")
        changed.extend(self._metadata_differences(owned, st))
        return changed

    def _content_differences(self, entry, verdict, read_content):
        owned, st = verdict.owned, entry.stat
        algorithm, expected = split_digest(owned.digest)
        if owned.size is not None and owned.size != st.st_size:
            return ["size", "digest"] if expected else ["size"]
        if not expected or not read_content:
            return []
        actual = self._digest(entry, algorithm, verdict)
        if actual is None:
            return []
        if algorithm == "sha256":
            verdict.sha256 = actual
        return [] if actual == expected else ["digest"]

    def _digest(self, entry, algorithm, verdict):
        inode = (entry.stat.st_dev, entry.stat.st_ino)
        cached = self.digests_of_inode.get(inode, {})
        if algorithm in cached:
            return cached[algorithm]
        try:
            digests = digest_file(entry.disk_path, [algorithm])
        except NotARegularFile:
            verdict.note = "vanished"
            return None
        except FileNotFoundError:
            verdict.note = "vanished"
            return None
        except (OSError, ValueError):
            verdict.note = "unreadable"
            return None
        if entry.stat.st_nlink > 1:
            self.digests_of_inode.setdefault(inode, {}).update(digests)
        return digests[algorithm]

    def _metadata_differences(self, owned, st):
        changed = []
        if owned.mode is not None and stat.S_IMODE(owned.mode) != stat.S_IMODE(st.st_mode):
            changed.append("mode")
        if owned.owner is not None and owned.owner != self._user_name(st.st_uid):
            changed.append("owner")
        if owned.group is not None and owned.group != self._group_name(st.st_gid):
            changed.append("group")
        return changed

    def _user_name(self, uid):
        name = self.identity.user(uid)
        return name if name is not None else str(uid)

    def _group_name(self, gid):
        name = self.identity.group(gid)
        return name if name is not None else str(gid)


METADATA_ATTRIBUTES = frozenset(("mode", "owner", "group"))


def _change_of(changed):
    if not changed:
        return "unchanged"
    if METADATA_ATTRIBUTES.issuperset(changed):
        return "metadata"
    return "modified"


def _comparable_kind(kind):
    """Owned kinds as the walk names them; None when the database does not say."""
    if kind in (None, "", "unknown"):
        return None
    return {"hardlink": "file", "regular": "file", "directory": "dir", "link": "symlink"}.get(kind, kind)


def _read_link(entry, verdict):
    try:
        return os.readlink(entry.disk_path)
    except FileNotFoundError:
        verdict.note = "vanished"
    except OSError:
        verdict.note = "unreadable"
    return None
