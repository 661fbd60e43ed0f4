"""Real package roots built with the real tools: dpkg-deb and dpkg, rpmbuild and rpm."""

import os
import shutil
import subprocess

import pytest


def run(command, **kwargs):
    """Run a tool; on failure show its output, so a broken fixture says why."""
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)
    if result.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(map(str, command)), result.returncode,
                                                      result.stdout.decode("utf-8", "replace")))
    return result.stdout


def require_tools(*names):
    missing = [name for name in names if shutil.which(name) is None]
    if missing:
        pytest.skip("needs %s (listed in .ci/apt-packages)" % ", ".join(missing))


class DebPackage:
    """A .deb to build: files maps a path ("/usr/bin/x") to bytes, or to ("symlink", target)."""

    def __init__(self, name, version, arch="all", files=None, conffiles=(), multi_arch=None, source=None):
        self.name, self.version, self.arch = name, version, arch
        self.files = files or {}
        self.conffiles = list(conffiles)
        self.multi_arch, self.source = multi_arch, source

    def build(self, work_dir):
        tree = os.path.join(str(work_dir), "%s_%s" % (self.name, self.arch))
        os.makedirs(os.path.join(tree, "DEBIAN"))
        for path, content in self.files.items():
            target = os.path.join(tree, path.lstrip("/"))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            if isinstance(content, tuple):
                os.symlink(content[1], target)
            else:
                with open(target, "wb") as stream:
                    stream.write(content)
        with open(os.path.join(tree, "DEBIAN", "control"), "w") as control:
            control.write(self._control())
        if self.conffiles:
            with open(os.path.join(tree, "DEBIAN", "conffiles"), "w") as conffiles:
                conffiles.write("".join(path + "\n" for path in self.conffiles))
        deb = tree + ".deb"
        run(["dpkg-deb", "--root-owner-group", "--build", tree, deb])
        return deb

    def _control(self):
        lines = ["Package: " + self.name, "Version: " + self.version, "Architecture: " + self.arch,
                 "Maintainer: Test <test@example.org>", "Installed-Size: 7", "Description: test package"]
        if self.multi_arch:
            lines.append("Multi-Arch: " + self.multi_arch)
        if self.source:
            lines.append("Source: " + self.source)
        return "\n".join(lines) + "\n"


class DpkgRoot:
    """A root directory with an empty dpkg database, filled with real `dpkg --root` runs."""

    def __init__(self, path):
        self.path = str(path)
        admin = os.path.join(self.path, "var/lib/dpkg")
        for directory in ("info", "updates", "alternatives", "triggers"):
            os.makedirs(os.path.join(admin, directory), exist_ok=True)
        for name in ("status", "available"):
            open(os.path.join(admin, name), "a").close()

    def dpkg(self, *arguments):
        return run(["dpkg", "--root=" + self.path, "--force-not-root", "--force-bad-path",
                    "--force-script-chrootless"] + list(arguments))

    def install(self, *debs):
        self.dpkg("-i", *debs)

    def divert(self, path, divert_to, package):
        run(["dpkg-divert", "--root=" + self.path, "--package", package, "--divert", divert_to, "--rename",
             "--add", path])


class RpmPackage:
    """An .rpm to build with rpmbuild; files maps paths to bytes or ("symlink", target)."""

    def __init__(self, name, version, release="1", epoch=None, files=None, config=(), attrs=None,
                 ghosts=(), directories=()):
        self.name, self.version, self.release, self.epoch = name, version, release, epoch
        self.files = files or {}
        self.config = set(config)
        self.attrs = attrs or {}
        self.ghosts = list(ghosts)
        self.directories = list(directories)

    def spec(self):
        install = ["mkdir -p %{buildroot}"]
        for path, content in sorted(self.files.items()):
            install.append("mkdir -p %%{buildroot}%s" % os.path.dirname(path))
            if isinstance(content, tuple):
                install.append("ln -s '%s' %%{buildroot}%s" % (content[1], path))
            else:
                install.append("printf '%%s' '%s' > %%{buildroot}%s" % (content.decode("ascii"), path))
        for directory in self.directories:
            install.append("mkdir -p %%{buildroot}%s" % directory)
        listed = ["%%dir %s" % directory for directory in self.directories]
        for path in sorted(self.files):
            prefix = "%%attr(%s) " % self.attrs[path] if path in self.attrs else ""
            listed.append(prefix + ("%config(noreplace) " if path in self.config else "") + path)
        listed += ["%%ghost %s" % path for path in self.ghosts]
        header = ["Name: " + self.name, "Version: " + self.version, "Release: " + self.release,
                  "Summary: test", "License: MIT", "BuildArch: noarch"]
        if self.epoch is not None:
            header.append("Epoch: %d" % self.epoch)
        return "\n".join(header + ["%description", "test", "%install"] + install + ["%files"] + listed) + "\n"

    def build(self, top_dir):
        top_dir = str(top_dir)
        spec_path = os.path.join(top_dir, "%s-%s.spec" % (self.name, self.version))
        with open(spec_path, "w") as spec:
            spec.write(self.spec())
        run(["rpmbuild", "-bb", "--define", "_topdir " + top_dir, "--define", "_build_id_links none",
             "--define", "__os_install_post %{nil}", spec_path])
        return os.path.join(top_dir, "RPMS", "noarch", "%s-%s-%s.noarch.rpm" % (self.name, self.version,
                                                                              self.release))


class RpmRoot:
    """A root directory whose rpm database lives where distributions keep it: /var/lib/rpm."""

    def __init__(self, path):
        self.path = str(path)
        os.makedirs(self.path, exist_ok=True)

    def install(self, *rpms):
        run(["rpm", "--root", self.path, "--dbpath", "/var/lib/rpm", "--nodeps", "-i"] + list(rpms))
