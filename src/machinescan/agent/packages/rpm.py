"""The rpm database, read through `rpm --root ROOT -qa --queryformat` streamed field by field."""

import os
import shutil
import stat
import subprocess
import tempfile
import time

from . import OwnedPath, PackageDatabase, PathCanonicaliser, package_record

# Where distributions keep the database (relative to the root), and the files that make one.
DATABASE_DIRS = (b"var/lib/rpm", b"usr/lib/sysimage/rpm")
DATABASE_FILES = (b"rpmdb.sqlite", b"Packages", b"Packages.db")

# Control characters no package field holds: records start with RS, fields are split by US.
_RECORD = "\x1e"
_FIELD = "\x1f"
_PACKAGE_TAGS = ("NAME", "EPOCH", "VERSION", "RELEASE", "ARCH", "SIZE", "INSTALLTIME", "SOURCERPM",
                 "FILEDIGESTALGO")
_FILE_TAGS = ("FILENAMES", "FILESIZES", "FILEMODES", "FILEDIGESTS", "FILEUSERNAME", "FILEGROUPNAME",
              "FILELINKTOS", "FILEFLAGS", "FILESTATES")
_PACKAGE_FORMAT = _RECORD + "P" + "".join(_FIELD + "%{" + tag + "}" for tag in _PACKAGE_TAGS)
_FILES_FORMAT = "[" + _RECORD + "F" + "".join(_FIELD + "%{" + tag + "}" for tag in _FILE_TAGS) + "]"
_STATES_FORMAT = "[%{FILESTATES}:%{FILEFLAGS},]"

# PGPHASHALGO numbers of FILEDIGESTALGO; rpm before 4.6 wrote md5 and no tag.
_DIGEST_ALGORITHMS = {b"1": "md5", b"2": "sha1", b"8": "sha256", b"9": "sha384", b"10": "sha512",
                      b"11": "sha224"}
_RPMFILE_CONFIG = 1
_RPMFILE_GHOST = 64
# FILESTATES: 0 normal, 1 replaced (by another package's file), 2 not installed, 3 net shared,
# 4 wrong color (the other multilib arch's file is on disk).
_STATE_NORMAL = b"0"
_STATES_ON_DISK = (b"0", b"1", b"4")
_KINDS = {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink", stat.S_IFCHR: "chardev",
          stat.S_IFBLK: "blockdev", stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket"}
# Public keys imported into the database are pseudo-packages owning nothing.
_PSEUDO_PACKAGES = (b"gpg-pubkey",)
# What is known of a path whose only owners have it replaced or in another arch's version.
_UNKNOWN_ATTRIBUTES = (None, None, None, None, None, None, None, False)


def open_database(root):
    database_dir = find_database_dir(root)
    if database_dir is None:
        return None
    return RpmDatabase(root, database_dir)


def find_database_dir(root):
    """The database directory under root, as an absolute path inside root; None when there is none."""
    for relative in DATABASE_DIRS:
        directory = os.path.join(os.fsencode(root), relative)
        if any(os.path.exists(os.path.join(directory, name)) for name in DATABASE_FILES):
            return b"/" + relative
    return None


class RpmDatabase(PackageDatabase):
    """Packages and owned paths of an rpm database; needs an `rpm` binary on the scanning host."""

    manager = "rpm"

    def __init__(self, root, database_dir):
        super().__init__(root)
        self.database_dir = database_dir
        self.rpm = shutil.which("rpm")
        if self.rpm is None:
            self.problems.append((os.path.join(self.root, database_dir.lstrip(b"/")),
                                  "rpm database found but no rpm command to read it: install rpm"))

    def packages(self):
        headers = list(self._package_headers(with_states=True))
        keys = _owner_keys(headers)
        for fields in headers:
            yield self._package_record(fields, keys[_identity(fields)])

    def owned_paths(self):
        keys = _owner_keys(list(self._package_headers(with_states=False)))
        canonical = PathCanonicaliser(self.root).canonical
        owned = {}
        package_key = algorithm = None
        for fields in self._query(_PACKAGE_FORMAT + _FILES_FORMAT):
            if fields[0] == b"P":
                package_key = keys.get(_identity(fields)) if fields[1] not in _PSEUDO_PACKAGES else None
                algorithm = _DIGEST_ALGORITHMS.get(fields[9], "md5")
            elif package_key is not None and len(fields) == 10 and fields[9] in _STATES_ON_DISK:
                self._add_file(owned, canonical, package_key, algorithm, fields)
        for path, (owners, attributes) in owned.items():
            yield OwnedPath(path, *(attributes or _UNKNOWN_ATTRIBUTES), packages=tuple(owners))

    def _add_file(self, owned, canonical, package_key, algorithm, fields):
        flags = _int(fields[8]) or 0
        if flags & _RPMFILE_GHOST and not os.path.lexists(self.root + fields[1]):
            return  # a ghost is owned only while something is there
        path = canonical(fields[1])
        entry = owned.get(path)
        if entry is None:
            entry = owned[path] = [[], None]
        if package_key not in entry[0]:
            entry[0].append(package_key)
        if entry[1] is None and fields[9] == _STATE_NORMAL:
            entry[1] = _file_attributes(fields, algorithm, bool(flags & _RPMFILE_GHOST),
                                        bool(flags & _RPMFILE_CONFIG))

    def _package_headers(self, with_states):
        query = _PACKAGE_FORMAT + (_FIELD + _STATES_FORMAT if with_states else "")
        for fields in self._query(query):
            if fields[0] == b"P" and fields[1] not in _PSEUDO_PACKAGES:
                yield fields

    def _package_record(self, fields, key):
        return package_record(
            "rpm", _text(fields[1]), key=key, epoch=_int(fields[2]), version=_text(fields[3]),
            release=_text(fields[4]), arch=_none_or_text(fields[5]), installed_size=_int(fields[6]),
            install_time=_iso_time(fields[7]), source=_source_name(fields[8]),
            files=_installed_file_count(fields[10] if len(fields) > 10 else b""))

    def _query(self, query_format):
        """Field lists of each record rpm prints; memory stays bounded whatever the database size."""
        if self.rpm is None:
            return
        command = [self.rpm, "--root", os.fsdecode(self.root), "--dbpath", os.fsdecode(self.database_dir),
                   "-qa", "--queryformat", query_format]
        env = dict(os.environ, LC_ALL="C")
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, env=env)
            read_to_the_end = False
            try:
                for record in _records(process.stdout):
                    yield record.split(_FIELD.encode())
                read_to_the_end = True
            finally:
                process.stdout.close()
                if not read_to_the_end:
                    process.kill()  # the consumer stopped early: rpm would block on a full pipe
                process.wait()
            if process.returncode != 0 and read_to_the_end:
                errors.seek(0)
                self.problems.append((self.root + self.database_dir, "rpm -qa failed (exit %d): %s" % (
                    process.returncode, errors.read(2000).decode("utf-8", "replace").strip())))


def _records(stream):
    partial = b""
    separator = _RECORD.encode()
    while True:
        chunk = stream.read(1 << 16)
        if not chunk:
            break
        records = (partial + chunk).split(separator)
        partial = records.pop()
        for record in records:
            if record:
                yield record
    if partial:
        yield partial


def _file_attributes(fields, algorithm, ghost, conffile):
    """(kind, size, digest, mode, owner, group, link_target, conffile) of one file line."""
    mode = _int(fields[3]) or 0
    kind = _KINDS.get(stat.S_IFMT(mode))
    regular = kind == "file" and not ghost
    digest = algorithm + ":" + _text(fields[4]) if regular and fields[4] else None
    return (kind, _int(fields[2]) if regular else None, digest, stat.S_IMODE(mode),
            _none_or_text(fields[5]), _none_or_text(fields[6]), fields[7] if kind == "symlink" else None,
            conffile)


def _identity(fields):
    return tuple(fields[1:6])


def _owner_keys(headers):
    """{identity: key}: the name, or name-[epoch:]version-release.arch when the name is repeated."""
    counts = {}
    for fields in headers:
        counts[fields[1]] = counts.get(fields[1], 0) + 1
    keys = {}
    for fields in headers:
        name = _text(fields[1])
        if counts[fields[1]] > 1:
            epoch = "" if fields[2] == b"(none)" else _text(fields[2]) + ":"
            name = "%s-%s%s-%s.%s" % (name, epoch, _text(fields[3]), _text(fields[4]), _text(fields[5]))
        keys[_identity(fields)] = name
    return keys


def _installed_file_count(states):
    count = 0
    for item in states.split(b","):
        state, _, flags = item.partition(b":")
        if state in _STATES_ON_DISK and not (_int(flags) or 0) & _RPMFILE_GHOST:
            count += 1
    return count


def _source_name(source_rpm):
    """hello-1.0-3.src.rpm -> hello."""
    if source_rpm in (b"", b"(none)"):
        return None
    return _text(source_rpm).rsplit("-", 2)[0]


def _iso_time(value):
    seconds = _int(value)
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)) if seconds is not None else None


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None  # "(none)": absent, which is not 0


def _none_or_text(value):
    return None if value in (b"", b"(none)") else _text(value)


def _text(value):
    return value.decode("utf-8", "replace")
