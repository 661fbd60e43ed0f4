"""osinfo on root directories built in the test, and on the running system."""

import json
import os
import socket
import struct

import pytest

from machinescan.agent import osinfo

SHADOW_HASH = "$6$salt$2kZrT0pSecretHashThatMustNeverLeak"


def write(root, relative, text):
    path = os.path.join(str(root), relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as stream:
        stream.write(text)
    return path


def elf_header(machine, little_endian=True):
    order = "<" if little_endian else ">"
    return b"\x7fELF" + bytes([2, 1 if little_endian else 2, 1]) + b"\x00" * 9 + struct.pack(order + "HH", 2, machine)


# Distribution

def test_os_release_gives_name_version_id_and_codename(tmp_path):
    write(tmp_path, "etc/os-release", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\n'
          'VERSION_ID="12"\nVERSION="12 (bookworm)"\nVERSION_CODENAME=bookworm\nID=debian\n')
    assert osinfo.distribution(str(tmp_path)) == {
        "name": "Debian GNU/Linux", "version": "12", "id": "debian", "codename": "bookworm",
        "pretty_name": "Debian GNU/Linux 12 (bookworm)"}


def test_os_release_in_usr_lib_with_id_like(tmp_path):
    write(tmp_path, "usr/lib/os-release", 'NAME="Rocky Linux"\nVERSION_ID="9.3"\nID="rocky"\n'
          'ID_LIKE="rhel centos fedora"\nVERSION="9.3 (Blue Onyx)"\n')
    found = osinfo.distribution(str(tmp_path))
    assert (found["id"], found["id_like"], found["version"], found["codename"]) == (
        "rocky", "rhel centos fedora", "9.3", "blue onyx")


def test_ubuntu_codename(tmp_path):
    write(tmp_path, "etc/os-release", 'NAME="Ubuntu"\nVERSION_ID="22.04"\nID=ubuntu\nID_LIKE=debian\n'
          'UBUNTU_CODENAME=jammy\n')
    assert osinfo.distribution(str(tmp_path))["codename"] == "jammy"


def test_old_centos_from_redhat_release(tmp_path):
    write(tmp_path, "etc/redhat-release", "CentOS release 6.10 (Final)\n")
    found = osinfo.distribution(str(tmp_path))
    assert (found["name"], found["id"], found["version"], found["codename"]) == ("CentOS", "centos", "6.10",
                                                                                 "Final")


def test_old_rhel_from_redhat_release(tmp_path):
    write(tmp_path, "etc/redhat-release", "Red Hat Enterprise Linux Server release 7.9 (Maipo)\n")
    found = osinfo.distribution(str(tmp_path))
    assert (found["id"], found["version"]) == ("rhel", "7.9")


def test_alpine_release(tmp_path):
    write(tmp_path, "etc/alpine-release", "3.18.4\n")
    assert osinfo.distribution(str(tmp_path)) == {"name": "Alpine Linux", "id": "alpine", "version": "3.18.4"}


def test_lsb_release(tmp_path):
    write(tmp_path, "etc/lsb-release", "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=12.04\nDISTRIB_CODENAME=precise\n")
    found = osinfo.distribution(str(tmp_path))
    assert (found["id"], found["version"], found["codename"]) == ("ubuntu", "12.04", "precise")


def test_old_debian_from_debian_version(tmp_path):
    write(tmp_path, "etc/debian_version", "7.11\n")
    assert osinfo.distribution(str(tmp_path))["version"] == "7.11"


def test_debian_testing_version_comes_from_debian_version(tmp_path):
    write(tmp_path, "etc/os-release", 'NAME="Debian GNU/Linux"\nID=debian\nVERSION_CODENAME=trixie\n')
    write(tmp_path, "etc/debian_version", "trixie/sid\n")
    assert osinfo.distribution(str(tmp_path))["version"] == "trixie/sid"


@pytest.mark.parametrize("machine, little_endian, arch", [(62, True, "x86_64"), (183, True, "aarch64"),
                                                           (3, True, "i386"), (21, False, "ppc64"),
                                                           (21, True, "ppc64le")])
def test_arch_comes_from_the_elf_header_of_the_roots_shell(tmp_path, machine, little_endian, arch):
    os.makedirs(str(tmp_path / "usr/bin"))
    (tmp_path / "usr/bin/dash").write_bytes(elf_header(machine, little_endian) + b"\x00" * 40)
    os.makedirs(str(tmp_path / "bin"))
    os.symlink("/usr/bin/dash", str(tmp_path / "bin/sh"))  # resolved inside the root
    assert osinfo.distribution(str(tmp_path))["arch"] == arch


def test_absolute_symlink_in_a_root_directory_is_read_inside_it(tmp_path):
    write(tmp_path, "usr/lib/os-release", "ID=alpine\nVERSION_ID=3.19.1\n")
    os.makedirs(str(tmp_path / "etc"))
    os.symlink("/usr/lib/os-release", str(tmp_path / "etc/os-release"))
    assert osinfo.distribution(str(tmp_path)) == {"id": "alpine", "version": "3.19.1"}


def test_empty_root_gives_empty_answers(tmp_path):
    assert osinfo.distribution(str(tmp_path)) == {}
    assert osinfo.host_info(str(tmp_path)) == {}
    assert osinfo.install_profile(str(tmp_path)) == {}


# Host

def test_host_info_of_a_root_directory(tmp_path):
    write(tmp_path, "etc/hostname", "web01\n")
    write(tmp_path, "boot/vmlinuz-6.1.0-13-amd64", "")
    write(tmp_path, "boot/vmlinuz-6.1.0-18-amd64", "")
    assert osinfo.host_info(str(tmp_path)) == {"hostname": "web01",
                                               "installed_kernels": ["6.1.0-13-amd64", "6.1.0-18-amd64"]}


def test_host_info_of_the_running_system():
    info = osinfo.host_info("/")
    assert info["hostname"] == socket.gethostname()
    assert info["kernel_release"] == os.uname().release
    assert info["cpu_count"] == os.cpu_count()
    assert info["memory_bytes"] > 0
    assert info.get("platform_type") in (None, "physical", "vm", "container")


# Install profile of a root directory

@pytest.fixture
def configured_root(tmp_path):
    root = str(tmp_path)
    write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000:Alice,,,:/home/alice:/bin/zsh\n")
    write(root, "etc/shadow", "root:%s:19000:0:99999:7:::\n" % SHADOW_HASH)
    write(root, "etc/group", "root:x:0:\nsudo:x:27:alice,bob\n")
    write(root, "etc/fstab", "# comment\nUUID=1234-abcd / ext4 errors=remount-ro 0 1\n"
          "/dev/sda2 none swap sw 0 0\n/srv/my\\040data /data none bind 0 0\n")
    for unit, target in (("ssh.service", "multi-user.target"), ("cron.service", "multi-user.target"),
                         ("systemd-timesyncd.service", "sysinit.target")):
        os.makedirs(os.path.join(root, "etc/systemd/system", target + ".wants"), exist_ok=True)
        os.symlink("/lib/systemd/system/" + unit, os.path.join(root, "etc/systemd/system", target + ".wants", unit))
    os.makedirs(os.path.join(root, "etc/rc3.d"))
    os.symlink("../init.d/apache2", os.path.join(root, "etc/rc3.d/S02apache2"))
    os.symlink("../init.d/halt", os.path.join(root, "etc/rc3.d/K01halt"))
    write(root, "etc/timezone", "Europe/Paris\n")
    write(root, "etc/default/locale", 'LANG="fr_FR.UTF-8"\n')
    write(root, "etc/default/keyboard", 'XKBMODEL="pc105"\nXKBLAYOUT="fr"\nXKBVARIANT=""\n')
    write(root, "etc/network/interfaces", "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet static\n"
          "    address 10.0.0.5/24\n    gateway 10.0.0.1\n\nallow-hotplug eth1\niface eth1 inet dhcp\n")
    write(root, "etc/sysconfig/network-scripts/ifcfg-eth2", 'DEVICE=eth2\nBOOTPROTO=dhcp\nHWADDR=52:54:00:aa:bb:cc\n')
    write(root, "etc/NetworkManager/system-connections/wired.nmconnection",
          "[connection]\nid=Wired\ninterface-name=eth3\n[ipv4]\nmethod=manual\naddress1=192.168.1.9/24\n")
    write(root, "etc/selinux/config", "SELINUX=enforcing\nSELINUXTYPE=targeted\n")
    write(root, "etc/default/grub", 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="console=ttyS0"\n')
    return root


def test_users_and_groups_never_carry_password_hashes(configured_root):
    profile = osinfo.install_profile(configured_root)
    assert profile["users"] == [
        {"name": "root", "uid": 0, "gid": 0, "gecos": "root", "home": "/root", "shell": "/bin/bash"},
        {"name": "alice", "uid": 1000, "gid": 1000, "gecos": "Alice,,,", "home": "/home/alice", "shell": "/bin/zsh"}]
    assert profile["groups"] == [{"name": "root", "gid": 0, "members": []},
                                 {"name": "sudo", "gid": 27, "members": ["alice", "bob"]}]
    text = json.dumps(profile)
    assert SHADOW_HASH not in text and '"x"' not in text


def test_mounts_and_swap_from_fstab(configured_root):
    profile = osinfo.install_profile(configured_root)
    assert profile["mounts"] == [
        {"device": "UUID=1234-abcd", "mount_point": "/", "type": "ext4", "options": "errors=remount-ro"},
        {"device": "/srv/my data", "mount_point": "/data", "type": "none", "options": "bind"}]
    assert profile["swap"] == [{"device": "/dev/sda2"}]
    assert "disks" not in profile  # only the running system has /proc/partitions


def test_enabled_services_from_systemd_wants_and_sysv_links(configured_root):
    services = osinfo.install_profile(configured_root)["services"]
    assert [(s["system"], s["name"], s["enabled_in"]) for s in services] == [
        ("systemd", "cron.service", ["multi-user.target"]), ("systemd", "ssh.service", ["multi-user.target"]),
        ("systemd", "systemd-timesyncd.service", ["sysinit.target"]), ("sysv", "apache2", ["3"])]


def test_timezone_locale_keyboard(configured_root):
    profile = osinfo.install_profile(configured_root)
    assert profile["timezone"] == "Europe/Paris"
    assert profile["locale"] == {"LANG": "fr_FR.UTF-8", "source": "/etc/default/locale"}
    assert profile["keyboard"] == {"layout": "fr", "model": "pc105"}


def test_timezone_from_localtime_link(tmp_path):
    os.makedirs(str(tmp_path / "etc"))
    os.symlink("/usr/share/zoneinfo/America/New_York", str(tmp_path / "etc/localtime"))
    assert osinfo.install_profile(str(tmp_path))["timezone"] == "America/New_York"


def test_vconsole_keymap_and_locale_conf(tmp_path):
    write(tmp_path, "etc/vconsole.conf", "KEYMAP=de-latin1\n")
    write(tmp_path, "etc/locale.conf", "LANG=de_DE.UTF-8\n")
    profile = osinfo.install_profile(str(tmp_path))
    assert profile["keyboard"] == {"keymap": "de-latin1"}
    assert profile["locale"]["LANG"] == "de_DE.UTF-8"


def test_network_configuration_dhcp_or_static(configured_root):
    interfaces = {i["name"]: i for i in osinfo.install_profile(configured_root)["network_interfaces"]}
    assert sorted(interfaces) == ["eth0", "eth1", "eth2", "eth3", "lo"]
    assert interfaces["eth0"]["method"] == "static"
    assert interfaces["eth0"]["configured"][0]["address"] == "10.0.0.5/24"
    assert interfaces["eth1"]["method"] == "dhcp"
    assert (interfaces["eth2"]["method"], interfaces["eth2"]["configured"][0]["mac"]) == ("dhcp",
                                                                                        "52:54:00:aa:bb:cc")
    assert (interfaces["eth3"]["method"], interfaces["eth3"]["configured"][0]["address"]) == ("static",
                                                                                            "192.168.1.9/24")


def test_selinux_and_kernel_command_line(configured_root):
    profile = osinfo.install_profile(configured_root)
    assert profile["selinux"] == {"configured_mode": "enforcing", "policy": "targeted"}
    assert profile["kernel_cmdline"] == "console=ttyS0 quiet"


def test_unreadable_files_are_left_out(tmp_path):
    os.makedirs(str(tmp_path / "etc/passwd"))  # a directory cannot be read as a file, even by root
    write(tmp_path, "etc/os-release", "ID=debian\n\x00\xff garbage without equals\nVERSION_ID='unterminated\n")
    assert "users" not in osinfo.install_profile(str(tmp_path))
    assert osinfo.distribution(str(tmp_path))["id"] == "debian"


# The running system

def test_profile_of_the_running_system_is_json():
    profile = osinfo.install_profile("/")
    json.dumps(profile)
    assert "errors" not in profile, profile.get("errors")
    assert profile["users"][0]["name"] == "root"
    if os.path.exists("/proc/self/mounts"):
        assert any(mount["mount_point"] == "/" for mount in profile["mounts"])
    if os.path.exists("/proc/cmdline"):
        assert profile["kernel_cmdline"]
