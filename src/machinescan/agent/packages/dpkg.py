"""The dpkg database read straight from its files under var/lib/dpkg, without running dpkg."""

import os
import time

from . import OwnedPath, PackageDatabase, PathCanonicaliser, package_record

ADMIN_DIR = b"var/lib/dpkg"
_WANTED_FIELDS = frozenset([b"Package", b"Status", b"Version", b"Architecture", b"Installed-Size",
                            b"Source", b"Conffiles", b"Multi-Arch"])
# A conffile line ends with one of these flags when the package no longer ships that file.
_GONE_CONFFILE_FLAGS = (b"obsolete", b"remove-on-upgrade")


def open_database(root):
    status = os.path.join(os.fsencode(root), ADMIN_DIR, b"status")
    return DpkgDatabase(root) if os.path.isfile(status) else None


class DpkgDatabase(PackageDatabase):
    """Packages from var/lib/dpkg/status; owned paths from info/*.list, *.md5sums, diversions, statoverride."""

    manager = "dpkg"

    def __init__(self, root):
        super().__init__(root)
        self.admin_dir = os.path.join(self.root, ADMIN_DIR)

    def packages(self):
        for stanza in self._present_stanzas():
            yield self._package_record(stanza)

    def owned_paths(self):
        canonical = PathCanonicaliser(self.root).canonical
        diversions = self._diversions()
        owned = {}
        for stanza in self._present_stanzas():
            name = _text(stanza[b"Package"])
            key = _owner_key(stanza)
            digests = self._md5sums(key)
            conffiles = _conffile_digests(stanza)
            for listed in self._package_paths(key, conffiles):
                path = canonical(_diverted(listed, name, diversions))
                digest = conffiles.get(listed) or digests.get(listed)
                _merge_owner(owned, path, key, digest, listed in conffiles)
        _mark_parent_directories(owned)
        overrides = self._stat_overrides(canonical)
        for path, (owners, digest, conffile, kind) in owned.items():
            owner, group, mode = overrides.get(path, (None, None, None))
            yield OwnedPath(path, kind, None, digest and "md5:" + digest, mode, owner, group, None,
                            conffile, tuple(owners))

    def _package_record(self, stanza):
        name = _text(stanza[b"Package"])
        epoch, version = _split_epoch(_text(stanza.get(b"Version", b"")))
        key = _owner_key(stanza)
        list_file = self._info_file(key, b"list")
        record = package_record(
            "dpkg", name, key=key, version=version, epoch=epoch, arch=_text(stanza.get(b"Architecture")),
            installed_size=_kib_to_bytes(stanza.get(b"Installed-Size")), install_time=_mtime_iso(list_file),
            source=_source_name(stanza, name), status=_status_word(stanza),
            files=sum(1 for _ in self._package_paths(key, _conffile_digests(stanza))))
        if stanza.get(b"Multi-Arch"):
            record["multi_arch"] = _text(stanza[b"Multi-Arch"])
        return record

    def _present_stanzas(self):
        """Status stanzas of packages with something on disk: every state but not-installed."""
        for stanza in _stanzas(os.path.join(self.admin_dir, b"status")):
            if b"Package" in stanza and _status_word(stanza) != "not-installed":
                yield stanza

    def _package_paths(self, key, conffiles):
        """Paths a package owns, as dpkg recorded them: its .list, plus conffiles it still ships."""
        seen = set()
        for line in self._info_lines(key, b"list"):
            if line not in (b"/.", b"/", b"") and line not in seen:
                seen.add(line)
                yield line
        for path in conffiles:
            if path not in seen:
                yield path

    def _md5sums(self, key):
        digests = {}
        for line in self._info_lines(key, b"md5sums"):
            # "<32 hex digits>  <path without the leading slash>", or " *" before a binary-mode path
            if len(line) > 34 and line[32:34] in (b"  ", b" *"):
                digests[b"/" + line[34:].lstrip(b"/")] = _text(line[:32])
        return digests

    def _info_lines(self, key, suffix):
        path = self._info_file(key, suffix)
        try:
            with open(path, "rb") as info:
                return info.read().split(b"\n")
        except FileNotFoundError:
            return []
        except OSError as exc:
            self.problems.append((path, "cannot read: %s" % exc.strerror))
            return []

    def _info_file(self, key, suffix):
        """info/<name>.<suffix>, or info/<name>:<arch>.<suffix> (multiarch), whichever exists."""
        info_dir = os.path.join(self.admin_dir, b"info")
        path = os.path.join(info_dir, key.encode("utf-8") + b"." + suffix)
        if ":" in key and not os.path.exists(path):
            return os.path.join(info_dir, key.split(":")[0].encode("utf-8") + b"." + suffix)
        return path

    def _diversions(self):
        """{diverted path: (where it went, diverting package or None for a local diversion)}."""
        lines = _lines_of(os.path.join(self.admin_dir, b"diversions"), self.problems)
        diversions = {}
        for index in range(0, len(lines) - 2, 3):
            diverter = _text(lines[index + 2])
            diversions[lines[index]] = (lines[index + 1], None if diverter == ":" else diverter)
        return diversions

    def _stat_overrides(self, canonical):
        """{canonical path: (owner, group, mode)} from dpkg-statoverride."""
        overrides = {}
        for line in _lines_of(os.path.join(self.admin_dir, b"statoverride"), self.problems):
            fields = line.split(b" ", 3)
            if len(fields) == 4:
                try:
                    mode = int(fields[2], 8)
                except ValueError:
                    continue
                overrides[canonical(fields[3])] = (_text(fields[0]), _text(fields[1]), mode)
        return overrides


def _stanzas(status_path):
    """The status file's stanzas as {field name: raw value}, continuation lines joined by newlines."""
    with open(status_path, "rb") as status_file:
        stanza = {}
        field = None
        for line in status_file:
            line = line.rstrip(b"\r\n")
            if line[:1] in (b" ", b"\t"):
                if field is not None:
                    stanza[field] += b"\n" + line.strip()
            elif not line.strip():
                if stanza:
                    yield stanza
                stanza, field = {}, None
            else:
                name, _, value = line.partition(b":")
                field = name if name in _WANTED_FIELDS else None
                if field is not None:
                    stanza[field] = value.strip()
        if stanza:
            yield stanza


def _merge_owner(owned, path, key, digest, conffile):
    entry = owned.get(path)
    if entry is None:
        owned[path] = [[key], digest, conffile, "file" if digest else None]
        return
    if key not in entry[0]:
        entry[0].append(key)
    if digest and not entry[1]:
        entry[1], entry[3] = digest, "file"
    entry[2] = entry[2] or conffile


def _mark_parent_directories(owned):
    # dpkg does not record kinds; a listed path that holds other listed paths is a directory.
    for path in list(owned):
        parent = path.rpartition(b"/")[0]
        entry = owned.get(parent)
        if entry is not None and entry[3] is None:
            entry[3] = "dir"


def _diverted(path, package_name, diversions):
    """Where a package's file really is: moved aside unless this package is the diverting one."""
    diversion = diversions.get(path)
    if diversion is None or diversion[1] == package_name:
        return path
    return diversion[0]


def _conffile_digests(stanza):
    """{conffile path: md5 hex} of the conffiles a package still ships."""
    conffiles = {}
    for line in stanza.get(b"Conffiles", b"").split(b"\n"):
        fields = line.split()
        if len(fields) >= 2 and not any(flag in fields[2:] for flag in _GONE_CONFFILE_FLAGS):
            digest = _text(fields[1])
            conffiles[fields[0]] = digest if len(digest) == 32 else None  # "newconffile" while unpacking
    return conffiles


def _owner_key(stanza):
    name = _text(stanza[b"Package"])
    if stanza.get(b"Multi-Arch") == b"same" and stanza.get(b"Architecture"):
        return name + ":" + _text(stanza[b"Architecture"])
    return name


def _status_word(stanza):
    words = stanza.get(b"Status", b"").split()
    return _text(words[2]) if len(words) == 3 else "unknown"


def _split_epoch(version):
    epoch, colon, rest = version.partition(":")
    if colon and epoch.isdigit():
        return int(epoch), rest
    return None, version


def _source_name(stanza, name):
    source = stanza.get(b"Source")
    return _text(source.split()[0]) if source else name


def _kib_to_bytes(value):
    try:
        return int(value) * 1024
    except (TypeError, ValueError):
        return None


def _mtime_iso(path):
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(os.stat(path).st_mtime))
    except OSError:
        return None


def _lines_of(path, problems):
    try:
        with open(path, "rb") as text_file:
            return text_file.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.append((path, "cannot read: %s" % exc.strerror))
        return []


def _text(value):
    return value.decode("utf-8", "replace") if value is not None else None
