"""A full scan of a real `debootstrap --variant=minbase` Debian root, checked against dpkg-query and debsums.

The root is built once per suite and architecture and kept as a tarball in ~/.cache/machinescan-tests;
the Debian mirror is the one this machine's apt sources use (MACHINESCAN_TEST_DEBIAN_MIRROR overrides it).
Every expected value comes from dpkg-query or debsums run on the scanned root, never from the agent's code.
"""

import collections
import glob
import os
import subprocess
import tarfile
import types
import urllib.request

import pytest

from machinescan.agent.scan import ScanOptions, run_scan
from machinescan.report import decode_path, read_report

pytestmark = pytest.mark.slow

SUITE = os.environ.get("MACHINESCAN_TEST_DEBIAN_SUITE", "bookworm")
CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "machinescan-tests")
APT_SOURCE_FILES = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")) \
    + sorted(glob.glob("/etc/apt/sources.list.d/*.sources"))
# What debootstrap (through wget) prints when the mirror, not the root, is the problem.
NETWORK_FAILURES = ("Failed getting release file", "Failed getting release signature file",
                    "Couldn't download", "Couldn't find these debs", "unable to resolve host address",
                    "Connection refused", "Connection timed out", "Network is unreachable")

# The changes a user makes to the freshly installed root: paths as dpkg lists them.
CHANGED_CONFFILE = "/etc/issue"                         # base-files conffile
REPLACED_PROGRAM = "/bin/hostname"                      # listed under /bin, lives in /usr/bin (merged /usr)
CHMODDED_PROGRAM = "/usr/bin/du"
PATCHED_HARD_LINK = ("/usr/bin/perl", "/usr/bin/perl5.36.0")  # one inode, two names: patched in place
PAM_MODULE = "/security/pam_unix.so"                    # of libpam-modules, Multi-Arch: same
DELETED_FILE = "/lib/systemd/system/apt-daily.timer"    # listed under /lib, lives in /usr/lib
ADDED_FILES = ("/usr/local/bin/site-backup", "/etc/site/backup.conf")


def apt_debian_mirrors(suite):
    """URIs of the enabled `deb` sources in /etc/apt that serve `suite` with the main component."""
    mirrors = []
    for source_file in APT_SOURCE_FILES:
        try:
            with open(source_file) as sources:
                text = sources.read()
        except OSError:
            continue
        parse = _deb822_sources if source_file.endswith(".sources") else _one_line_sources
        for types_, uris, suites, components in parse(text):
            if "deb" in types_ and suite in suites and "main" in components:
                mirrors.extend(uri for uri in uris if uri not in mirrors)
    return mirrors


def _one_line_sources(text):
    for line in text.split("\n"):
        words = line.split("#", 1)[0].split()
        if words[:1] != ["deb"]:
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # [arch=amd64 signed-by=...] options
            while words and not words[0].endswith("]"):
                words = words[1:]
            words = words[1:]
        if len(words) >= 3:
            yield ["deb"], [words[0]], [words[1]], words[2:]


def _deb822_sources(text):
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.split("\n"):
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            name, _, value = line.partition(":")
            fields[name.strip().lower()] = value.split()
        if fields.get("enabled", ["yes"])[0].lower() != "no":
            yield (fields.get("types", []), fields.get("uris", []), fields.get("suites", []),
                   fields.get("components", []))


def reachable_mirror(suite):
    """The mirror to debootstrap from; skips the test when none answers for `suite`."""
    override = os.environ.get("MACHINESCAN_TEST_DEBIAN_MIRROR")
    candidates = [override] if override else apt_debian_mirrors(suite)
    if not candidates:
        pytest.skip("no Debian mirror for %s in the apt sources (%s); set MACHINESCAN_TEST_DEBIAN_MIRROR"
                    % (suite, ", ".join(APT_SOURCE_FILES)))
    failures = []
    for mirror in candidates:
        release = "%s/dists/%s/Release" % (mirror.rstrip("/"), suite)
        try:
            urllib.request.urlopen(release, timeout=20).close()
            return mirror
        except (OSError, ValueError) as error:
            failures.append("%s: %s" % (release, error))
    pytest.skip("Debian mirror unreachable, cannot debootstrap: %s" % "; ".join(failures))


def unmount_everything_under(directory):
    """debootstrap mounts /proc and /sys in the target; never leave them behind (nor delete through them)."""
    with open("/proc/self/mounts") as mounts:
        points = [line.split()[1].replace("\\040", " ") for line in mounts]
    prefix = os.path.realpath(directory).rstrip("/") + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), reverse=True):
        subprocess.call(["umount", "-l", point])


def build_minbase_tarball(suite, arch, tarball, work_dir):
    mirror = reachable_mirror(suite)
    target = os.path.join(str(work_dir), "root")
    partial = "%s.%d.partial" % (tarball, os.getpid())
    try:
        result = subprocess.run(["debootstrap", "--variant=minbase", "--arch=" + arch, suite, target, mirror],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        unmount_everything_under(target)
        check_debootstrap(result, suite, mirror)
        os.makedirs(CACHE_DIR, exist_ok=True)
        # The downloaded .debs stay out: they are a third of the root and the scan skips /var/cache anyway.
        subprocess.check_call(["tar", "--numeric-owner", "--exclude=./var/cache/apt/archives/*.deb", "-czpf",
                               partial, "-C", target, "."])
        os.rename(partial, tarball)
    finally:
        unmount_everything_under(target)
        subprocess.call(["rm", "-rf", "--one-file-system", target, partial])


def check_debootstrap(result, suite, mirror):
    """Skip when debootstrap failed for want of the network; fail with its output for anything else."""
    if result.returncode == 0:
        return
    output = result.stdout.decode("utf-8", "replace")
    if any(failure in output for failure in NETWORK_FAILURES):
        pytest.skip("debootstrap could not download from %s:\n%s" % (mirror, output[-2000:]))
    raise AssertionError("debootstrap %s from %s failed (%d):\n%s" % (suite, mirror, result.returncode,
                                                                      output[-4000:]))


@pytest.fixture(scope="session")
def minbase_tarball(builders, tmp_path_factory):
    """A tarball of a fresh minbase root of SUITE for this machine's architecture, built when not cached."""
    if os.geteuid() != 0:
        pytest.skip("debootstrap needs root")
    builders.require_tools("debootstrap", "debsums", "dpkg-query", "tar")
    arch = subprocess.check_output(["dpkg", "--print-architecture"]).decode().strip()
    tarball = os.path.join(CACHE_DIR, "debootstrap-minbase-%s-%s.tar.gz" % (SUITE, arch))
    if not os.path.exists(tarball):
        build_minbase_tarball(SUITE, arch, tarball, tmp_path_factory.mktemp("debootstrap"))
    return tarball


def unpack(tarball, target):
    os.makedirs(target)
    subprocess.check_call(["tar", "--numeric-owner", "-xzpf", tarball, "-C", target])


def dpkg_listed_paths(root):
    listed = set()
    for list_file in glob.glob(root + "/var/lib/dpkg/info/*.list"):
        with open(list_file) as paths:
            listed.update(paths.read().split("\n"))
    return listed


def make_user_changes(root):
    """Edit a conffile, replace programs, chmod one, delete a file, add two, as an administrator would.

    Returns the dpkg path of the replaced PAM module (its folder depends on the architecture).
    """
    listed = dpkg_listed_paths(root)
    for path in (CHANGED_CONFFILE, REPLACED_PROGRAM, CHMODDED_PROGRAM, DELETED_FILE) + PATCHED_HARD_LINK:
        assert path in listed, "%s is no longer shipped by %s: pick another file" % (path, SUITE)
    pam_modules = sorted(path for path in listed if path.endswith(PAM_MODULE))
    assert pam_modules, "no package of %s ships ...%s: pick another file" % (SUITE, PAM_MODULE)
    pam_module = pam_modules[0]
    with open(root + CHANGED_CONFFILE, "a") as conffile:
        conffile.write("Managed by the site team\n")
    with open(root + REPLACED_PROGRAM, "w") as program:
        program.write("#!/bin/sh\necho site-wide-name\n")
    with open(root + PATCHED_HARD_LINK[0], "ab") as program:
        program.write(b"\0patched")
    with open(root + pam_module, "wb") as module:
        module.write(b"\x7fELF not the packaged module\n")
    os.chmod(root + CHMODDED_PROGRAM, 0o700)
    os.remove(root + DELETED_FILE)
    for path in ADDED_FILES:
        os.makedirs(os.path.dirname(root + path), exist_ok=True)
        with open(root + path, "w") as added:
            added.write("# %s\n" % path)
    return pam_module


def dpkg_query(root, *arguments):
    command = ["dpkg-query", "--admindir=" + root + "/var/lib/dpkg"] + list(arguments)
    return subprocess.run(command, stdout=subprocess.PIPE, check=True).stdout.decode()


def installed_by_dpkg_query(root):
    """{(name, version, arch)} of the packages dpkg-query shows as "install ok installed"."""
    lines = dpkg_query(root, "-W", "-f", "${Status}\t${Package}\t${Version}\t${Architecture}\n").split("\n")
    return set(tuple(line.split("\t")[1:]) for line in lines if line.startswith("install ok installed\t"))


def owners_by_dpkg_query(root, dpkg_paths):
    """Package names (name:arch for Multi-Arch: same) that dpkg-query -S gives as owners of the paths."""
    owners = set()
    for line in dpkg_query(root, "-S", *sorted(dpkg_paths)).split("\n"):
        if line.strip() and not line.startswith("diversion "):
            owners.update(name.strip() for name in line.rsplit(": ", 1)[0].split(","))
    return owners


def run_debsums(root):
    """(changed, missing): dpkg paths debsums -a finds changed (stdout with -c) and missing (stderr)."""
    result = subprocess.run(["debsums", "-a", "-c", "--root", root], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert result.returncode in (0, 2), result.stderr.decode()
    # debsums prints "<root>/<path as dpkg lists it>"; missing ones as "debsums: missing file <root>/<path>
    # (from <package> package)" on stderr.
    changed = set(line[len(root):] for line in result.stdout.decode().split("\n") if line)
    missing = set(line.split("missing file ", 1)[1].rsplit(" (from ", 1)[0][len(root):]
                  for line in result.stderr.decode().split("\n") if "missing file " in line)
    return changed, missing


def where_it_lives(root, dpkg_path):
    """The path as the scan sees it: directories resolved through the root's symlinks (/bin -> usr/bin)."""
    directory = os.path.realpath(root + os.path.dirname(dpkg_path))
    assert directory == root or directory.startswith(root + "/"), "%s leaves the root" % dpkg_path
    return os.path.join(directory, os.path.basename(dpkg_path))[len(root):]


@pytest.fixture(scope="module")
def scanned_minbase(minbase_tarball, tmp_path_factory):
    """The changed minbase root, what dpkg-query and debsums say about it, and the agent's scan of it."""
    work = tmp_path_factory.mktemp("minbase")
    root = str(work / "root")
    unpack(minbase_tarball, root)
    pam_module = make_user_changes(root)
    debsums_changed, debsums_missing = run_debsums(root)
    result = run_scan(ScanOptions(root=root, output_dir=str(work / "out"), overlay=True))
    files, records = {}, collections.defaultdict(list)
    with open(result.report_path, "rb") as report:
        for _, record in read_report(report):
            if record["type"] == "file":
                files[decode_path(record["path"]).decode("utf-8", "surrogateescape")] = record
            else:
                records[record["type"]].append(record)
    yield types.SimpleNamespace(
        root=root, pam_module=pam_module, result=result, files=files, packages=records["package"],
        trailer=records["trailer"][0],
        installed=installed_by_dpkg_query(root), debsums_changed=debsums_changed,
        debsums_missing=debsums_missing,
        changed_owners=owners_by_dpkg_query(root, debsums_changed | debsums_missing))
    subprocess.call(["rm", "-rf", "--one-file-system", str(work)])


def record_of(scan, dpkg_path):
    return scan.files[where_it_lives(scan.root, dpkg_path)]


def paths_with_change(scan, change):
    return set(path for path, record in scan.files.items() if record["change"] == change)


def dpkg_version(package):
    return package["version"] if package["epoch"] is None else "%d:%s" % (package["epoch"], package["version"])


def test_scan_completes_without_errors(scanned_minbase):
    assert scanned_minbase.trailer["complete"] is True
    assert "error" not in scanned_minbase.trailer["counts"]


def test_installed_packages_are_the_ones_dpkg_query_lists(scanned_minbase):
    reported = set((p["name"], dpkg_version(p), p["arch"]) for p in scanned_minbase.packages
                   if p["status"] == "installed")
    assert len(scanned_minbase.installed) > 50, "a minbase root has about 90 packages"
    assert reported == scanned_minbase.installed
    assert len(scanned_minbase.packages) == len(reported), "a fresh minbase root has no half-installed package"


def test_modified_files_are_the_ones_debsums_reports_changed(scanned_minbase):
    root = scanned_minbase.root
    expected = set(where_it_lives(root, path) for path in scanned_minbase.debsums_changed)
    made = (CHANGED_CONFFILE, REPLACED_PROGRAM, scanned_minbase.pam_module) + PATCHED_HARD_LINK
    assert set(where_it_lives(root, path) for path in made) <= expected
    assert paths_with_change(scanned_minbase, "modified") == expected


def test_deleted_files_are_the_ones_debsums_reports_missing(scanned_minbase):
    root = scanned_minbase.root
    expected = set(where_it_lives(root, path) for path in scanned_minbase.debsums_missing)
    assert expected == {where_it_lives(root, DELETED_FILE)}
    assert paths_with_change(scanned_minbase, "deleted") == expected


def test_edited_conffile_is_modified_content_of_a_conffile(scanned_minbase):
    record = record_of(scanned_minbase, CHANGED_CONFFILE)
    assert (record["change"], record["conffile"], record["packages"]) == ("modified", True, ["base-files"])
    assert "digest" in record["changed"] and record["in_overlay"] is True


def test_replaced_program_is_modified_at_its_merged_usr_path(scanned_minbase):
    record = record_of(scanned_minbase, REPLACED_PROGRAM)
    assert (record["change"], record["conffile"], record["packages"]) == ("modified", False, ["hostname"])
    assert "digest" in record["changed"] and record["in_overlay"] is True


def test_program_patched_in_place_is_modified_under_each_of_its_hard_links(scanned_minbase):
    first, second = (record_of(scanned_minbase, path) for path in PATCHED_HARD_LINK)
    assert (first["change"], second["change"]) == ("modified", "modified")
    assert sorted((first["kind"], second["kind"])) == ["file", "hardlink"]
    assert first["sha256"] == second["sha256"]


def test_replaced_module_of_a_multi_arch_package_names_that_package(scanned_minbase):
    record = record_of(scanned_minbase, scanned_minbase.pam_module)
    owners = owners_by_dpkg_query(scanned_minbase.root, [scanned_minbase.pam_module])
    assert (record["change"], set(record["packages"])) == ("modified", owners)
    assert [p["modified"] for p in scanned_minbase.packages if p["key"] in owners] == [True]


def test_chmod_alone_is_recorded_but_unchanged_as_dpkg_keeps_no_modes(scanned_minbase):
    # dpkg's database holds no file modes (debsums and dpkg --verify see nothing): the new mode is
    # reported, the content is the packaged one.
    record = record_of(scanned_minbase, CHMODDED_PROGRAM)
    assert CHMODDED_PROGRAM not in scanned_minbase.debsums_changed
    assert (record["change"], record["mode"], record["in_overlay"]) == ("unchanged", "0700", False)


def test_deleted_file_names_its_package(scanned_minbase):
    record = record_of(scanned_minbase, DELETED_FILE)
    assert (record["change"], record["packages"], record["in_overlay"]) == ("deleted", ["apt"], False)


def test_new_files_are_added_and_in_the_overlay(scanned_minbase):
    for path in ADDED_FILES + ("/etc/site",):
        record = scanned_minbase.files[path]
        assert (record["change"], record["packages"], record["in_overlay"]) == ("added", [], True), path


def test_packages_marked_modified_are_the_owners_of_what_debsums_found(scanned_minbase):
    modified = set(p["key"] for p in scanned_minbase.packages if p["modified"])
    assert modified == scanned_minbase.changed_owners
    missing = dict((p["key"], p["missing_files"]) for p in scanned_minbase.packages if p["missing_files"])
    assert missing == {"apt": 1}


def test_overlay_holds_exactly_the_files_marked_in_overlay(scanned_minbase):
    with tarfile.open(scanned_minbase.result.overlay_path, "r:*") as overlay:
        members = set("/" + member.name.rstrip("/") for member in overlay)
    assert members == set(path for path, record in scanned_minbase.files.items() if record["in_overlay"])
    changed = set(where_it_lives(scanned_minbase.root, path) for path in (CHANGED_CONFFILE, REPLACED_PROGRAM))
    assert changed | set(ADDED_FILES) <= members
