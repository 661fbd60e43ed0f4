"""The Alpine apk database read from lib/apk/db/installed, without running apk."""

import base64
import binascii
import os

from . import OwnedPath, PackageDatabase, PathCanonicaliser, package_record

INSTALLED = b"lib/apk/db/installed"
# apk's defaults when a file (a:) or directory (M:) line is absent: root:root, 0644 and 0755.
_DEFAULT_FILE_ACL = (0, 0, 0o644)
_DEFAULT_DIR_ACL = (0, 0, 0o755)
# apk keeps local changes under etc/ (its default protected path), like other managers' conffiles.
_PROTECTED_PREFIX = b"/etc/"
_UNPROTECTED_PREFIX = b"/etc/apk/"
# Checksum prefixes: Q1 is base64 sha1, Q2 base64 sha256; older databases hold md5 in hex.
_CHECKSUM_ALGORITHMS = {b"Q1": "sha1", b"Q2": "sha256"}


def open_database(root):
    installed = os.path.join(os.fsencode(root), INSTALLED)
    return ApkDatabase(root) if os.path.isfile(installed) else None


class ApkDatabase(PackageDatabase):
    """Packages and owned paths of lib/apk/db/installed (P: V: A: I: o: F: M: R: a: Z: lines).

    apk records the checksum of a symlink's target string, not of a file: an OwnedPath whose kind is
    None (apk does not say file or symlink) carries that digest either way.
    """

    manager = "apk"

    def __init__(self, root):
        super().__init__(root)
        self.installed = os.path.join(self.root, INSTALLED)

    def packages(self):
        for stanza in _stanzas(self.installed):
            yield self._package_record(stanza)

    def owned_paths(self):
        canonical = PathCanonicaliser(self.root).canonical
        users = _id_names(os.path.join(self.root, b"etc/passwd"))
        groups = _id_names(os.path.join(self.root, b"etc/group"))
        owned = {}
        for stanza in _stanzas(self.installed):
            name = _text(stanza.get(b"P", b""))
            for entry in stanza[b"paths"]:
                path = canonical(entry.path)
                owners_and_path = owned.get(path)
                if owners_and_path is None:
                    owned[path] = ([name], _owned_path(path, entry, users, groups))
                elif name not in owners_and_path[0]:
                    owners_and_path[0].append(name)
        for owners, owned_path in owned.values():
            yield owned_path._replace(packages=tuple(owners))

    def _package_record(self, stanza):
        return package_record(
            "apk", _text(stanza.get(b"P", b"")), version=_text(stanza.get(b"V", b"")),
            arch=_text(stanza.get(b"A")), installed_size=_int(stanza.get(b"I")),
            source=_text(stanza.get(b"o") or stanza.get(b"P", b"")), files=len(stanza[b"paths"]))


class _Entry(object):
    """One directory (F:) or file (R:) line of a stanza, with its acl and checksum lines."""

    __slots__ = ("path", "is_dir", "acl", "checksum")

    def __init__(self, path, is_dir):
        self.path = path
        self.is_dir = is_dir
        self.acl = _DEFAULT_DIR_ACL if is_dir else _DEFAULT_FILE_ACL
        self.checksum = None


def _stanzas(installed_path):
    """Each package's single-letter fields, and its paths in order under the key b"paths"."""
    with open(installed_path, "rb") as installed:
        stanza = {b"paths": []}
        directory = b"/"
        for line in installed:
            line = line.rstrip(b"\r\n")
            if not line:
                if len(stanza) > 1:
                    yield stanza
                stanza, directory = {b"paths": []}, b"/"
                continue
            key, _, value = line.partition(b":")
            if key == b"F":
                directory = b"/" + value.strip(b"/")
                stanza[b"paths"].append(_Entry(directory, True))
            elif key == b"R":
                stanza[b"paths"].append(_Entry(directory.rstrip(b"/") + b"/" + value, False))
            elif key in (b"M", b"a") and stanza[b"paths"]:
                stanza[b"paths"][-1].acl = _acl(value, stanza[b"paths"][-1].acl)
            elif key == b"Z" and stanza[b"paths"]:
                stanza[b"paths"][-1].checksum = value
            else:
                stanza.setdefault(key, value)
        if len(stanza) > 1:
            yield stanza


def _owned_path(path, entry, users, groups):
    uid, gid, mode = entry.acl
    conffile = not entry.is_dir and path.startswith(_PROTECTED_PREFIX) and \
        not path.startswith(_UNPROTECTED_PREFIX)
    return OwnedPath(path, "dir" if entry.is_dir else None, None, _digest(entry.checksum), mode,
                     users.get(uid, str(uid)), groups.get(gid, str(gid)), None, conffile, ())


def _acl(value, default):
    """"uid:gid:mode[:xattr checksum]" -> (uid, gid, permission bits)."""
    fields = value.split(b":")
    try:
        return int(fields[0]), int(fields[1]), int(fields[2], 8)
    except (IndexError, ValueError):
        return default


def _digest(checksum):
    """apk checksum -> "sha1:<hex>" (Q1), "sha256:<hex>" (Q2), "md5:<hex>" (legacy hex)."""
    if not checksum:
        return None
    algorithm = _CHECKSUM_ALGORITHMS.get(checksum[:2])
    if algorithm is None:
        return "md5:" + _text(checksum) if len(checksum) == 32 else None
    try:
        return algorithm + ":" + binascii.hexlify(base64.b64decode(checksum[2:])).decode("ascii")
    except (binascii.Error, ValueError):
        return None


def _id_names(path):
    """{numeric id: name} from a passwd or group file; empty when it is unreadable."""
    names = {}
    try:
        with open(path, "rb") as id_file:
            for line in id_file:
                fields = line.split(b":")
                if len(fields) > 2 and fields[2].strip().isdigit():
                    names.setdefault(int(fields[2]), _text(fields[0]))
    except OSError:
        pass
    return names


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _text(value):
    return value.decode("utf-8", "replace") if value is not None else None
