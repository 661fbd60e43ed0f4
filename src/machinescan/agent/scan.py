"""One scan, start to end: detect the OS, read the package databases, walk and classify, write report and overlay."""

import datetime
import os
import socket
import sys
import time

from machinescan import __version__

from . import walk as walking
from .changes import Classifier, Identity, NotARegularFile, OwnedIndex, digest_file, mode_string
from .overlay import CompressedOutput, OverlayError, OverlayPolicy, OverlayWriter, DEFAULT_MAX_FILE_SIZE
from ..report import ReportWriter

AGENT_NAME = "machinescan-agent"
REPORT_NAME = "report.jsonl.gz"
OVERLAY_KINDS = ("file", "hardlink", "symlink", "dir")
# Notes that mean the content could not be taken, so the entry cannot be stored in the overlay.
UNSTORABLE_NOTES = ("vanished", "unreadable")


class ScanError(Exception):
    """The scan cannot be done or finished (bad root, output not writable); the message says what to do."""


class ScanOptions(object):
    """Everything a scan needs to know, as given on the command line."""

    def __init__(self, root="/", output_dir=None, overlay=False, excludes=(), work_dir=None,
                 compress="auto", max_file_size=DEFAULT_MAX_FILE_SIZE, sparse="skip", name=None,
                 workers=None):
        self.root = os.path.abspath(root)
        self.output_dir = output_dir
        self.overlay = overlay
        self.excludes = list(excludes)
        self.work_dir = work_dir
        self.compress = compress
        self.max_file_size = max_file_size
        self.sparse = sparse
        self.name = name
        self.workers = workers


class ScanHooks(object):
    """Test seams: `before_read(path)` before any file content is read, `on_chunk(path, done)` while stored."""

    def __init__(self, before_read=None, on_chunk=None, on_dir_listed=None):
        self.before_read = before_read
        self.on_chunk = on_chunk
        self.on_dir_listed = on_dir_listed


class ScanResult(object):
    """Where the scan wrote its files, what it counted, its report header and overlay record."""

    def __init__(self, report_path, overlay_path, counts, header, overlay_record):
        self.report_path = report_path
        self.overlay_path = overlay_path
        self.counts = counts
        self.header = header
        self.overlay_record = overlay_record


def utc_now():
    return datetime.datetime.utcnow().replace(microsecond=0).isoformat() + "Z"


def overlay_file_name(compress):
    return "overlay.tar" if compress == "none" else "overlay.tar.gz"


def run_scan(options, progress=None, hooks=None, databases=None):
    """Scan `options.root` and write the report (and overlay) into `options.output_dir`.

    `databases` replaces the package databases found under the root (tests use it).
    """
    if not os.path.isdir(options.root):
        raise ScanError("cannot scan %s: not a directory" % options.root)
    output_dir = options.output_dir
    try:
        os.makedirs(output_dir, exist_ok=True)
    except OSError as error:
        raise ScanError("cannot create the output folder %s: %s" % (output_dir, error.strerror))
    report_path = os.path.join(output_dir, REPORT_NAME)
    overlay_path = os.path.join(output_dir, overlay_file_name(options.compress)) if options.overlay else None
    partial_paths = [report_path + ".partial"] + ([overlay_path + ".partial"] if overlay_path else [])
    try:
        counts, header, overlay_record = _scan_into(options, partial_paths, progress, hooks or ScanHooks(),
                                                    databases)
    except BaseException:
        for path in partial_paths:
            _remove_quietly(path)
        raise
    os.rename(partial_paths[0], report_path)
    if overlay_path:
        os.rename(partial_paths[1], overlay_path)
    return ScanResult(report_path, overlay_path, counts, header, overlay_record)


def _scan_into(options, partial_paths, progress, hooks, databases):
    started_clock = time.monotonic()
    started = utc_now()
    root = os.fsencode(options.root)
    mounts = walking.read_mounts()
    exclusions, skipped_mounts = build_exclusions(options, mounts)
    if databases is None:
        databases, database_errors = _open_databases(options.root)
    else:
        database_errors = []
    owned_index = OwnedIndex(_all_owned_paths(databases, database_errors))
    with open(partial_paths[0], "wb") as report_file:
        report = ReportWriter(report_file)
        header = _header(options, started, exclusions, skipped_mounts, databases)
        report.header(header)
        for message in database_errors:
            report.error(None, "packages", message)
        overlay = _open_overlay(options, partial_paths) if options.overlay else None
        scanner = EntryScanner(options, report, owned_index, Identity(root), overlay, progress, hooks)
        walker = walking.Walker(root, exclusions, mounts=mounts, on_dir_listed=hooks.on_dir_listed)
        try:
            for entry in walker:
                scanner.handle(entry)
        except BaseException:
            if overlay is not None:
                overlay.abandon()
            raise
        scanner.not_walked.paths.update(path for path, _ in walker.skipped_mounts)
        scanner.write_deleted(exclusions)
        scanner.write_packages(_all_packages(databases, report))
        _write_profile(options.root, report)
        overlay_record = overlay.finish() if overlay is not None else None
        if overlay_record is not None:
            report.overlay(overlay_record)
        if progress is not None:
            progress.finish(scanner.counts)
        report.close(time.monotonic() - started_clock)
    return scanner.counts, header, overlay_record


def build_exclusions(options, mounts):
    """The walk's exclusions (defaults, -e, work and output folders, foreign mounts) and the skipped mounts."""
    root = os.fsencode(os.path.realpath(options.root))
    paths = list(walking.DEFAULT_EXCLUDES) + [walking.normalize_path(p) for p in options.excludes]
    for folder in (options.work_dir, options.output_dir):
        inside = _path_inside_root(root, folder)
        if inside is not None:
            paths.append(inside)
    exclusions = walking.Exclusions(paths)
    skipped_mounts = []
    for mount_point, fs_type in sorted(mounts.items()):
        inside = _path_inside_root(root, mount_point)
        if inside in (None, b"/") or fs_type in walking.LOCAL_DISK_FILESYSTEMS or exclusions.covers(inside):
            continue
        exclusions.paths.add(inside)
        skipped_mounts.append({"path": inside, "type": fs_type,
                               "network": fs_type in walking.NETWORK_FILESYSTEMS})
    return exclusions, skipped_mounts


def _path_inside_root(root, folder):
    """`folder` as a path from the scanned root, or None when it lies outside it."""
    if folder is None:
        return None
    folder = os.path.realpath(os.fsencode(folder))
    if folder == root:
        return b"/"
    prefix = root.rstrip(b"/") + b"/"
    if folder.startswith(prefix):
        return b"/" + folder[len(prefix):]
    return None


class EntryScanner(object):
    """Turns each walked entry into a file record, storing it in the overlay when it belongs there."""

    def __init__(self, options, report, owned_index, identity, overlay, progress, hooks):
        self.options = options
        self.report = report
        self.owned_index = owned_index
        self.identity = identity
        self.classifier = Classifier(owned_index, identity)
        self.overlay = overlay
        self.policy = OverlayPolicy(options.max_file_size, options.sparse)
        self.progress = progress
        self.hooks = hooks
        self.not_walked = walking.Exclusions(())   # unlistable directories: nothing under them is "deleted"
        self.package_changes = {}                 # package name -> [modified, missing_files]
        self.counts = {"entries": 0, "bytes_read": 0, "errors": 0, "in_overlay": 0}
        self.sha256_of_inode = {}

    def handle(self, entry):
        self.counts["entries"] += 1
        if entry.error is not None:
            self._record_walk_error(entry)
        else:
            self._record_entry(entry)
        if self.progress is not None:
            self.progress.tick(self.counts)

    def _record_walk_error(self, entry):
        self.counts["errors"] += 1
        self.report.error(entry.path, "walk", "%s: %s" % (_shown(entry.path), entry.error))
        if entry.error != "vanished":  # an unlistable directory or an unreachable name
            self.not_walked.paths.add(entry.path)
        # An owned path that vanished mid-scan was there when the scan began: not "deleted".
        self.owned_index.lookup(entry.path)

    def _record_entry(self, entry):
        st = entry.stat
        verdict = self.classifier.classify(entry, read_content=not entry.excluded)
        if entry.path == b"/" and verdict.owned is None:
            verdict.change = "unchanged"  # every target has a root: it is never an overlay member
        record = self._base_record(entry, verdict)
        if entry.excluded:
            record["note"] = "excluded_content"
        elif verdict.note is None:
            self._take_content(entry, verdict, record)
        if verdict.note is not None and "note" not in record:
            record["note"] = verdict.note
        self._count_package_change(verdict)
        if record["in_overlay"]:
            self.counts["in_overlay"] += 1
        self.report.file(record)

    def _base_record(self, entry, verdict):
        st = entry.stat
        record = {
            "path": entry.path, "kind": verdict.kind, "mode": mode_string(st.st_mode),
            "uid": st.st_uid, "gid": st.st_gid, "owner": self.identity.user(st.st_uid),
            "group": self.identity.group(st.st_gid), "size": st.st_size, "mtime": int(st.st_mtime),
            "nlink": st.st_nlink, "change": verdict.change, "in_overlay": False,
            "conffile": bool(verdict.owned.conffile) if verdict.owned is not None else False,
            "packages": list(verdict.owned.packages) if verdict.owned is not None else [],
        }
        if verdict.changed:
            record["changed"] = list(verdict.changed)
        if verdict.link_target is not None:
            record["link_target"] = verdict.link_target
        if verdict.sha256 is not None:
            record["sha256"] = verdict.sha256
        return record

    def _take_content(self, entry, verdict, record):
        """Store the entry in the overlay, or hash an added file, as the options and the policy allow."""
        wanted = self.overlay is not None and verdict.change in ("added", "modified") \
            and verdict.kind in OVERLAY_KINDS
        is_file = verdict.kind in ("file", "hardlink")
        if is_file and (wanted or verdict.change == "added"):
            policy_note = self.policy.exclusion_note(entry.stat, entry.disk_path)
            if policy_note is not None:
                record["note"] = policy_note
                return
        if wanted:
            self._store(entry, verdict, record)
        elif is_file and verdict.change == "added":
            self._hash_added_file(entry, record)

    def _store(self, entry, verdict, record):
        st = entry.stat
        owner, group = record["owner"], record["group"]
        if verdict.kind == "dir":
            self.overlay.writer.add_directory(entry.path, st, owner, group)
        elif verdict.kind == "symlink":
            if verdict.link_target is None:
                return
            self.overlay.writer.add_symlink(entry.path, st, verdict.link_target, owner, group)
        else:
            self._before_read(entry)
            stored = self.overlay.writer.add_file(entry.path, entry.disk_path, st, owner, group,
                                                  on_chunk=self.hooks.on_chunk)
            self.counts["bytes_read"] += st.st_size if stored.stored else 0
            if stored.error is not None:
                self._content_error(entry, stored.error)
            if stored.note is not None:
                record["note"] = stored.note
            if not stored.stored:
                return
            record["sha256"] = stored.sha256
        record["in_overlay"] = True

    def _hash_added_file(self, entry, record):
        inode = (entry.stat.st_dev, entry.stat.st_ino)
        if inode in self.sha256_of_inode:
            record["sha256"] = self.sha256_of_inode[inode]
            return
        self._before_read(entry)
        try:
            sha256 = digest_file(entry.disk_path, ["sha256"])["sha256"]
        except (NotARegularFile, FileNotFoundError):
            record["note"] = "vanished"
            self._content_error(entry, "vanished before it was read")
            return
        except OSError as error:
            record["note"] = "unreadable"
            self._content_error(entry, "cannot read: %s" % (error.strerror or error))
            return
        self.counts["bytes_read"] += entry.stat.st_size
        record["sha256"] = sha256
        if entry.stat.st_nlink > 1:
            self.sha256_of_inode[inode] = sha256

    def _before_read(self, entry):
        if self.hooks.before_read is not None:
            self.hooks.before_read(entry.path)

    def _content_error(self, entry, message):
        self.counts["errors"] += 1
        self.report.error(entry.path, "content", "%s: %s" % (_shown(entry.path), message))

    def _count_package_change(self, verdict):
        if verdict.owned is None or verdict.change == "unchanged":
            return
        for package in verdict.owned.packages:
            self.package_changes.setdefault(package, [False, 0])[0] = True

    def write_deleted(self, exclusions):
        """A file record for every owned path the walk did not meet, unless it was not looked for."""
        for owned in self.owned_index.unseen():
            if exclusions.covers(owned.path) or self.not_walked.covers(owned.path):
                continue
            for package in owned.packages:
                self.package_changes.setdefault(package, [False, 0])[1] += 1
            record = {"path": owned.path, "kind": owned.kind or "file", "change": "deleted",
                      "packages": list(owned.packages), "conffile": bool(owned.conffile),
                      "in_overlay": False}
            if owned.link_target is not None:
                record["link_target"] = owned.link_target
            self.report.file(record)

    def write_packages(self, packages):
        """Package records, each with `modified` and `missing_files` from this scan's classification."""
        for package in packages:
            names = _owner_keys(package)
            modified, missing = False, 0
            for name in names:
                change = self.package_changes.get(name)
                if change is not None:
                    modified, missing = modified or change[0], missing + change[1]
            record = dict(package)
            record["modified"] = modified or missing > 0
            record["missing_files"] = missing
            self.report.package(record)


def _owner_keys(package):
    """How owned paths name this package: its `key` when the database gives one, else name and name:arch."""
    if package.get("key"):
        return (package["key"],)
    return (package.get("name"), "%s:%s" % (package.get("name"), package.get("arch")))


def _shown(path):
    return path.decode("utf-8", "backslashreplace")


class OpenOverlay(object):
    """The overlay being written: its file, compressed output and tar writer."""

    # zlib gives the GIL back between output buffers; with the default 5 ms switch interval a worker
    # waits that long each time the reading thread holds it, which halved the throughput on 2 cores.
    SWITCH_INTERVAL = 0.0005

    def __init__(self, path, compress, workers):
        self.file = open(path, "wb")
        self.compress = compress
        self.output = CompressedOutput(self.file, compress, workers)
        self.writer = OverlayWriter(self.output)
        self._saved_switch_interval = sys.getswitchinterval()
        if compress != "none":
            sys.setswitchinterval(self.SWITCH_INTERVAL)

    def finish(self):
        """Close the archive; returns the report's `overlay` record."""
        self.writer.close()
        size, sha256 = self.output.close()
        self.file.close()
        sys.setswitchinterval(self._saved_switch_interval)
        return {"members": self.writer.members, "size": size, "sha256": sha256,
                "format": "tar" if self.compress == "none" else "tar.gz", "compress": self.compress,
                "uncompressed_size": self.output.raw_size}

    def abandon(self):
        self.output.abandon()
        self.file.close()
        sys.setswitchinterval(self._saved_switch_interval)


def _open_overlay(options, partial_paths):
    try:
        return OpenOverlay(partial_paths[1], options.compress, options.workers)
    except OSError as error:
        raise ScanError("cannot create the overlay %s: %s" % (partial_paths[1], error.strerror))


def _header(options, started, exclusions, skipped_mounts, databases):
    scan = {
        "started": started, "finished": None, "root": options.root,
        "excludes": [p.decode("utf-8", "surrogateescape") for p in exclusions.sorted()],
        "skipped_mounts": [dict(m, path=m["path"].decode("utf-8", "surrogateescape")) for m in skipped_mounts],
        "overlay": bool(options.overlay),
        "overlay_policy": OverlayPolicy(options.max_file_size, options.sparse).as_record(),
        "compress": options.compress,
        "package_managers": [database.manager for database in databases],
    }
    if options.name:
        scan["name"] = options.name
    header = {"agent": {"name": AGENT_NAME, "version": __version__, "python": sys.version.split()[0]},
              "scan": scan}
    header.update(_system_description(options.root))
    return header


def _system_description(root):
    """`host` and `distribution` from osinfo; a minimal host when that module is not available."""
    description = {"host": {"hostname": socket.gethostname()}, "distribution": {}}
    try:
        from . import osinfo
    except ImportError:
        return description
    for field, function_name in (("host", "host_info"), ("distribution", "distribution")):
        function = getattr(osinfo, function_name, None)
        if function is not None:
            description[field] = function(root)
    return description


def _write_profile(root, report):
    try:
        from . import osinfo
    except ImportError:
        return
    install_profile = getattr(osinfo, "install_profile", None)
    if install_profile is None:
        return
    try:
        report.profile(install_profile(root))
    except Exception as error:  # the profile is extra information: the scan survives its failure
        report.error(None, "profile", "cannot read the install profile: %s" % error)


def _open_databases(root):
    try:
        from .packages import open_package_databases
    except ImportError:
        return [], ["package databases not read: the packages module is not available"]
    try:
        return list(open_package_databases(root)), []
    except Exception as error:
        return [], ["cannot open the package databases under %s: %s" % (root, error)]


def _all_owned_paths(databases, errors):
    for database in databases:
        try:
            for owned in database.owned_paths():
                yield owned
        except Exception as error:
            errors.append("cannot read the files of the %s database: %s" % (database.manager, error))


def _all_packages(databases, report):
    packages = []
    for database in databases:
        try:
            packages.extend(database.packages())
        except Exception as error:
            report.error(None, "packages", "cannot read the %s packages: %s" % (database.manager, error))
    return packages


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass
