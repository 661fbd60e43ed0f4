"""What the scanned system is: distribution, host, platform type and install profile, read from its files.

Everything is read under the scanned root, so a mounted root directory works as well as the running
system; what only the running kernel knows (/proc, /sys, uname) is read only when the root is '/'.
Every field is optional: a missing or unreadable file leaves its field out, never stops the scan.
"""

import glob
import os
import re
import shlex
import socket
import struct

from .packages.canonical import PathCanonicaliser

# ELF e_machine numbers of the architectures a scanned system may run.
_ELF_MACHINES = {3: "i386", 62: "x86_64", 183: "aarch64", 40: "arm", 8: "mips", 20: "ppc", 21: "ppc64",
                 22: "s390x", 243: "riscv64", 258: "loongarch64"}
_ELF_PROBES = ("bin/sh", "usr/bin/env", "bin/busybox", "usr/bin/bash", "sbin/init")
# DMI vendor or product strings that only hypervisors report.
_HYPERVISOR_MARKERS = ("qemu", "kvm", "vmware", "virtualbox", "xen", "bochs", "parallels", "virtual machine",
                       "amazon ec2", "google compute engine", "openstack", "hyper-v", "bhyve", "cloud hypervisor")
_CONTAINER_CGROUP_MARKERS = ("docker", "lxc", "kubepods", "containerd", "libpod", "crio")
_SYSTEMD_UNIT_SUFFIXES = (".service", ".socket", ".timer", ".path", ".mount", ".target")
_MAX_SYMLINKS = 40


# Distribution

def distribution(root="/"):
    """name, version, arch, id, id_like, codename (and pretty_name) of the system under root."""
    found = _from_os_release(root) or {}
    for fallback in (_from_lsb_release, _from_redhat_release, _from_alpine_release, _from_debian_version):
        if found.get("version") and found.get("id"):
            break
        for key, value in (fallback(root) or {}).items():
            found.setdefault(key, value)
    if found.get("id") == "debian" and not found.get("version"):
        # testing and unstable have no VERSION_ID: debian_version says "trixie/sid"
        found["version"] = (_from_debian_version(root) or {}).get("version")
    arch = userland_arch(root)
    if arch:
        found["arch"] = arch
    return {key: value for key, value in found.items() if value}


def _from_os_release(root):
    for relative in ("etc/os-release", "usr/lib/os-release"):
        fields = _shell_assignments(_read_text(root, relative))
        if fields:
            codename = fields.get("VERSION_CODENAME") or fields.get("UBUNTU_CODENAME") or \
                _codename_in(fields.get("VERSION", ""))
            return {"name": fields.get("NAME"), "version": fields.get("VERSION_ID"), "id": fields.get("ID"),
                    "id_like": fields.get("ID_LIKE"), "codename": codename,
                    "pretty_name": fields.get("PRETTY_NAME")}
    return None


def _from_lsb_release(root):
    fields = _shell_assignments(_read_text(root, "etc/lsb-release"))
    if not fields.get("DISTRIB_ID"):
        return None
    return {"name": fields["DISTRIB_ID"], "id": fields["DISTRIB_ID"].lower(),
            "version": fields.get("DISTRIB_RELEASE"), "codename": fields.get("DISTRIB_CODENAME"),
            "pretty_name": fields.get("DISTRIB_DESCRIPTION")}


def _from_redhat_release(root):
    """"CentOS release 6.10 (Final)", "Red Hat Enterprise Linux Server release 7.9 (Maipo)"."""
    for relative in ("etc/centos-release", "etc/redhat-release", "etc/fedora-release", "etc/SuSE-release"):
        text = (_read_text(root, relative) or "").strip().splitlines()
        match = re.match(r"(.+?)\s+(?:Linux\s+)?(?:release\s+)?(\d[\w.]*)\s*(?:\((.*)\))?", text[0]) if text \
            else None
        if match:
            name = match.group(1).strip()
            return {"name": name, "id": _release_id(name), "version": match.group(2),
                    "codename": match.group(3), "pretty_name": text[0]}
    return None


def _release_id(name):
    lowered = name.lower()
    for marker, distribution_id in (("centos", "centos"), ("red hat", "rhel"), ("fedora", "fedora"),
                                    ("scientific", "scientific"), ("oracle", "ol"), ("suse", "sles"),
                                    ("rocky", "rocky"), ("alma", "almalinux")):
        if marker in lowered:
            return distribution_id
    return lowered.split()[0] if lowered else None


def _from_alpine_release(root):
    version = (_read_text(root, "etc/alpine-release") or "").strip()
    return {"name": "Alpine Linux", "id": "alpine", "version": version} if version else None


def _from_debian_version(root):
    version = (_read_text(root, "etc/debian_version") or "").strip()
    return {"name": "Debian GNU/Linux", "id": "debian", "version": version} if version else None


def _codename_in(version):
    match = re.search(r"\(([^)]+)\)", version)
    return match.group(1).split(",")[0].strip().lower() if match else None


def userland_arch(root="/"):
    """The machine architecture the root's programs are built for, from an ELF header; uname on '/'."""
    for relative in _ELF_PROBES:
        arch = _elf_arch(_under(root, relative))
        if arch:
            return arch
    return os.uname().machine if _is_live(root) else None


def _elf_arch(path):
    try:
        with open(path, "rb") as program:
            header = program.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    byte_order = "<" if header[5] == 1 else ">"
    machine = _ELF_MACHINES.get(struct.unpack(byte_order + "H", header[18:20])[0])
    if machine == "ppc64" and byte_order == "<":
        return "ppc64le"
    if machine == "x86_64" and header[4] == 1:
        return "x32"
    return machine


# Host

def host_info(root="/"):
    """hostname, kernel, machine, memory, CPU count and platform type; on a root directory, what it holds."""
    if _is_live(root):
        uname = os.uname()
        info = {"hostname": socket.gethostname(), "kernel_release": uname.release,
                "kernel_version": uname.version, "machine": uname.machine,
                "memory_bytes": _memory_bytes(), "cpu_count": os.cpu_count()}
    else:
        info = {"hostname": _configured_hostname(root), "machine": userland_arch(root),
                "installed_kernels": _installed_kernels(root)}
    info["platform_type"] = platform_type(root)
    return {key: value for key, value in info.items() if value not in (None, [], "")}


def _memory_bytes():
    for line in (_read_text("/", "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return None


def _configured_hostname(root):
    hostname = (_read_text(root, "etc/hostname") or "").strip()
    if hostname:
        return hostname.split()[0]
    return _shell_assignments(_read_text(root, "etc/sysconfig/network")).get("HOSTNAME")


def _installed_kernels(root):
    names = sorted(os.path.basename(path) for path in glob.glob(_under(root, "boot/vmlinu[xz]-*")))
    return [name.split("-", 1)[1] for name in names]


def platform_type(root="/"):
    """'container', 'vm' or 'physical' for the running system; None when it cannot be told (root dirs)."""
    if not _is_live(root):
        return None
    if _in_container():
        return "container"
    dmi = " ".join(_read_text("/", "sys/class/dmi/id/" + name) or "" for name in
                   ("sys_vendor", "product_name", "board_vendor", "bios_vendor")).lower()
    cpu_flags = _cpu_flags()
    hypervisor = (_read_text("/", "sys/hypervisor/type") or "").strip()
    if hypervisor or "hypervisor" in cpu_flags or any(marker in dmi for marker in _HYPERVISOR_MARKERS):
        return "vm"
    if dmi.strip() and cpu_flags:
        return "physical"
    return None


def _in_container():
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    if (_read_text("/", "run/systemd/container") or "").strip():
        return True
    environ = _read_bytes("/", "proc/1/environ") or b""
    if b"container=" in environ:
        return True
    cgroups = _read_text("/", "proc/1/cgroup") or ""
    return any(marker in cgroups for marker in _CONTAINER_CGROUP_MARKERS)


def _cpu_flags():
    for line in (_read_text("/", "proc/cpuinfo") or "").splitlines():
        if line.startswith("flags"):
            return line.partition(":")[2].split()
    return []


# Install profile

def install_profile(root="/"):
    """The install profile: each section that could be read; sections that failed are named in `errors`."""
    live = _is_live(root)
    sections = [("disks", lambda: _disks() if live else None),
                ("mounts", lambda: _live_mounts() if live else _fstab_mounts(root)),
                ("fstab", lambda: _fstab_mounts(root)),
                ("swap", lambda: _live_swap() if live else _fstab_swap(root)),
                ("users", lambda: _users(root)),
                ("groups", lambda: _groups(root)),
                ("services", lambda: _enabled_services(root)),
                ("timezone", lambda: _timezone(root)),
                ("locale", lambda: _locale(root)),
                ("keyboard", lambda: _keyboard(root)),
                ("network_interfaces", lambda: _network_interfaces(root, live)),
                ("selinux", lambda: _selinux(root, live)),
                ("kernel_cmdline", lambda: _kernel_cmdline(root, live))]
    profile, errors = {}, []
    for name, read_section in sections:
        try:
            value = read_section()
        except Exception as exc:  # one unreadable section never costs the others
            errors.append({"section": name, "message": "%s: %s" % (type(exc).__name__, exc)})
            continue
        if value not in (None, [], {}, ""):
            profile[name] = value
    if errors:
        profile["errors"] = errors
    return profile


# Disks and partitions (running system only)

def _disks():
    uuids = _device_links("/dev/disk/by-uuid")
    mounts = {mount["device"]: mount for mount in _live_mounts() or []}
    disks = []
    for name, blocks in _proc_partitions():
        if os.path.exists("/sys/class/block/%s/partition" % name):
            continue
        disk = _block_device(name, blocks, uuids, mounts)
        disk["model"] = (_read_text("/", "sys/block/%s/device/model" % name) or "").strip() or None
        disk["partitions"] = [_block_device(part, part_blocks, uuids, mounts)
                              for part, part_blocks in _proc_partitions()
                              if part != name and os.path.exists("/sys/block/%s/%s" % (name, part))]
        disks.append(_without_empty(disk))
    return disks


def _proc_partitions():
    entries = []
    for line in (_read_text("/", "proc/partitions") or "").splitlines()[2:]:
        fields = line.split()
        if len(fields) == 4 and fields[2].isdigit():
            entries.append((fields[3], int(fields[2])))
    return entries


def _block_device(name, blocks, uuids, mounts):
    device = "/dev/" + name
    mount = mounts.get(device, {})
    info = {"device": device, "size": blocks * 1024, "uuid": uuids.get(name),
            "filesystem": mount.get("type"), "mount_point": mount.get("mount_point"),
            "holders": sorted(_holder_names(name))}
    dm_name = (_read_text("/", "sys/class/block/%s/dm/name" % name) or "").strip()
    if dm_name:
        info["lvm_name"] = dm_name
    raid_level = (_read_text("/", "sys/class/block/%s/md/level" % name) or "").strip()
    if raid_level:
        info["raid_level"] = raid_level
        info["raid_members"] = sorted(os.listdir("/sys/class/block/%s/slaves" % name))
    return _without_empty(info)


def _holder_names(name):
    """LVM volumes and RAID arrays built on this device, by their readable names."""
    try:
        holders = os.listdir("/sys/class/block/%s/holders" % name)
    except OSError:
        return []
    return [(_read_text("/", "sys/class/block/%s/dm/name" % holder) or holder).strip() for holder in holders]


def _device_links(directory):
    """{device name: link name} of /dev/disk/by-uuid style directories."""
    links = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return links
    for link_name in names:
        target = os.path.basename(os.path.realpath(os.path.join(directory, link_name)))
        links.setdefault(target, link_name)
    return links


# Mounts and swap

def _live_mounts():
    mounts = []
    for line in (_read_text("/", "proc/self/mounts") or "").splitlines():
        fields = line.split()
        if len(fields) >= 4:
            mounts.append({"device": _unescape_octal(fields[0]), "mount_point": _unescape_octal(fields[1]),
                           "type": fields[2], "options": fields[3]})
    return mounts


def _fstab_mounts(root):
    mounts = []
    for fields in _table_lines(_read_text(root, "etc/fstab")):
        if len(fields) >= 3 and fields[2] != "swap":
            mounts.append({"device": _unescape_octal(fields[0]), "mount_point": _unescape_octal(fields[1]),
                           "type": fields[2], "options": fields[3] if len(fields) > 3 else "defaults"})
    return mounts


def _live_swap():
    swaps = []
    for line in (_read_text("/", "proc/swaps") or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 3:
            swaps.append({"device": _unescape_octal(fields[0]), "type": fields[1], "size": int(fields[2]) * 1024})
    return swaps


def _fstab_swap(root):
    return [{"device": _unescape_octal(fields[0])} for fields in _table_lines(_read_text(root, "etc/fstab"))
            if len(fields) >= 3 and fields[2] == "swap"]


# Users and groups: the password field is never read into the profile

def _users(root):
    users = []
    for fields in _colon_lines(_read_text(root, "etc/passwd")):
        if len(fields) >= 7 and fields[2].isdigit():
            users.append({"name": fields[0], "uid": int(fields[2]), "gid": _int_or_none(fields[3]),
                          "gecos": fields[4], "home": fields[5], "shell": fields[6]})
    return users


def _groups(root):
    groups = []
    for fields in _colon_lines(_read_text(root, "etc/group")):
        if len(fields) >= 4 and fields[2].isdigit():
            members = [member for member in fields[3].split(",") if member]
            groups.append({"name": fields[0], "gid": int(fields[2]), "members": members})
    return groups


# Services

def _enabled_services(root):
    """Enabled services: systemd `*.wants` links, SysV rc start links, OpenRC runlevels."""
    services = {}
    for wants in sorted(glob.glob(_under(root, "etc/systemd/system/*.wants"))):
        for unit in sorted(os.listdir(wants)):
            if unit.endswith(_SYSTEMD_UNIT_SUFFIXES):
                _add_service(services, unit, "systemd", os.path.basename(wants)[:-len(".wants")])
    for rc_dir in sorted(glob.glob(_under(root, "etc/rc[0-6S].d")) + glob.glob(_under(root, "etc/rc.d/rc[0-6].d"))):
        runlevel = os.path.basename(rc_dir)[2:-2]
        for link in sorted(os.listdir(rc_dir)):
            if re.match(r"S\d\d", link):
                _add_service(services, link[3:], "sysv", runlevel)
    for runlevel_dir in sorted(glob.glob(_under(root, "etc/runlevels/*"))):
        for service in sorted(os.listdir(runlevel_dir)):
            _add_service(services, service, "openrc", os.path.basename(runlevel_dir))
    return [services[name] for name in sorted(services)]


def _add_service(services, name, system, wanted_by):
    service = services.setdefault((system, name), {"name": name, "system": system, "enabled_in": []})
    if wanted_by not in service["enabled_in"]:
        service["enabled_in"].append(wanted_by)


# Timezone, locale, keyboard

def _timezone(root):
    configured = (_read_text(root, "etc/timezone") or "").strip()
    if configured:
        return configured
    try:
        target = os.readlink(_under(root, "etc/localtime", follow_last=False))
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        return target.split("zoneinfo/", 1)[1]
    return _shell_assignments(_read_text(root, "etc/sysconfig/clock")).get("ZONE")


def _locale(root):
    for relative in ("etc/default/locale", "etc/locale.conf", "etc/sysconfig/i18n", "etc/env.d/02locale"):
        fields = _shell_assignments(_read_text(root, relative))
        settings = {key: value for key, value in fields.items() if key.startswith(("LANG", "LC_"))}
        if settings:
            settings["source"] = "/" + relative
            return settings
    return None


def _keyboard(root):
    debian = _shell_assignments(_read_text(root, "etc/default/keyboard"))
    vconsole = _shell_assignments(_read_text(root, "etc/vconsole.conf"))
    sysconfig = _shell_assignments(_read_text(root, "etc/sysconfig/keyboard"))
    keyboard = {"layout": debian.get("XKBLAYOUT"), "model": debian.get("XKBMODEL"),
                "variant": debian.get("XKBVARIANT"), "options": debian.get("XKBOPTIONS"),
                "keymap": vconsole.get("KEYMAP") or sysconfig.get("KEYTABLE") or sysconfig.get("KEYMAP")}
    return _without_empty(keyboard)


# Network interfaces

def _network_interfaces(root, live):
    """Interfaces by name: MAC and addresses of the running system, method and addresses configured."""
    interfaces = {}
    if live:
        for name, mac in _live_interfaces():
            interfaces[name] = {"name": name, "mac": mac}
            address = _ipv4_address(name)
            if address:
                interfaces[name]["addresses"] = [address]
    for readers in (_debian_interfaces, _ifcfg_interfaces, _networkmanager_interfaces, _networkd_interfaces):
        for name, config in readers(root):
            interface = interfaces.setdefault(name, {"name": name})
            interface.setdefault("configured", []).append(config)
            interface.setdefault("method", config.get("method"))
    return [_without_empty(interfaces[name]) for name in sorted(interfaces)]


def _live_interfaces():
    try:
        names = sorted(os.listdir("/sys/class/net"))
    except OSError:
        return []
    return [(name, (_read_text("/", "sys/class/net/%s/address" % name) or "").strip() or None) for name in names]


def _ipv4_address(name):
    import fcntl  # only on the running system, where it exists

    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        request = struct.pack("256s", name.encode("utf-8")[:15])
        answer = fcntl.ioctl(probe.fileno(), 0x8915, request)  # SIOCGIFADDR
        return socket.inet_ntoa(answer[20:24])
    except OSError:
        return None  # no IPv4 address
    finally:
        probe.close()


def _debian_interfaces(root):
    """`iface NAME inet dhcp|static` stanzas of etc/network/interfaces (and interfaces.d/*)."""
    paths = [_under(root, "etc/network/interfaces")] + sorted(glob.glob(_under(root, "etc/network/interfaces.d/*")))
    texts = [_read_file_text(path) for path in paths]
    found, current = [], None
    for line in "\n".join(text for text in texts if text).splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[0] == "iface":
            method = {"dhcp": "dhcp", "static": "static", "manual": "manual", "loopback": "loopback"}.get(fields[3],
                                                                                                      fields[3])
            current = {"source": "/etc/network/interfaces", "family": fields[2], "method": method}
            found.append((fields[1], current))
        elif current is not None and len(fields) >= 2 and fields[0] in ("address", "netmask", "gateway"):
            current[fields[0]] = fields[1]
        elif fields and fields[0] in ("auto", "allow-hotplug", "source", "mapping"):
            current = None
    return found


def _ifcfg_interfaces(root):
    found = []
    for path in sorted(glob.glob(_under(root, "etc/sysconfig/network-scripts/ifcfg-*")) +
                       glob.glob(_under(root, "etc/sysconfig/network/ifcfg-*"))):
        fields = _shell_assignments(_read_file_text(path))
        name = fields.get("DEVICE") or os.path.basename(path)[len("ifcfg-"):]
        proto = (fields.get("BOOTPROTO") or "").lower()
        config = {"source": "/" + os.path.relpath(path, _under(root, "")),
                  "method": "dhcp" if proto.startswith("dhcp") else "static" if proto in ("static", "none", "")
                  else proto, "address": fields.get("IPADDR"), "mac": fields.get("HWADDR")}
        found.append((name, _without_empty(config)))
    return found


def _networkmanager_interfaces(root):
    found = []
    for path in sorted(glob.glob(_under(root, "etc/NetworkManager/system-connections/*"))):
        sections = _ini_sections(_read_file_text(path))
        name = sections.get("connection", {}).get("interface-name") or sections.get("connection", {}).get("id")
        method = sections.get("ipv4", {}).get("method")
        config = {"source": "/" + os.path.relpath(path, _under(root, "")),
                  "method": {"auto": "dhcp", "manual": "static"}.get(method, method),
                  "address": sections.get("ipv4", {}).get("address1") or sections.get("ipv4", {}).get("addresses")}
        if name:
            found.append((name, _without_empty(config)))
    return found


def _networkd_interfaces(root):
    found = []
    for path in sorted(glob.glob(_under(root, "etc/systemd/network/*.network"))):
        sections = _ini_sections(_read_file_text(path))
        name = sections.get("match", {}).get("name")
        network = sections.get("network", {})
        dhcp = network.get("dhcp", "no").lower() in ("yes", "true", "ipv4", "ipv6")
        config = {"source": "/" + os.path.relpath(path, _under(root, "")),
                  "method": "dhcp" if dhcp else "static", "address": network.get("address")}
        if name:
            found.append((name, _without_empty(config)))
    return found


# SELinux and kernel command line

def _selinux(root, live):
    configured = _shell_assignments(_read_text(root, "etc/selinux/config"))
    selinux = {"configured_mode": configured.get("SELINUX"), "policy": configured.get("SELINUXTYPE")}
    if live:
        enforce = (_read_text("/", "sys/fs/selinux/enforce") or "").strip()
        selinux["mode"] = {"1": "enforcing", "0": "permissive"}.get(enforce, "disabled" if configured else None)
    return _without_empty(selinux)


def _kernel_cmdline(root, live):
    if live:
        return (_read_text("/", "proc/cmdline") or "").strip() or None
    grub = _shell_assignments(_read_text(root, "etc/default/grub"))
    parts = [grub.get("GRUB_CMDLINE_LINUX"), grub.get("GRUB_CMDLINE_LINUX_DEFAULT")]
    return " ".join(part for part in parts if part) or None


# Reading files under the root

def _is_live(root):
    return os.path.realpath(os.fsdecode(root)) == "/"


def _under(root, relative, follow_last=True):
    """root/relative, its symlinks resolved inside root: an absolute link in a root directory names a
    file of that root, not of the scanning host."""
    if _is_live(root):
        return os.path.join("/", relative)
    root_bytes = os.fsencode(root).rstrip(b"/")
    canonicaliser = PathCanonicaliser(root_bytes)
    path = canonicaliser.canonical(b"/" + os.fsencode(relative))
    for _ in range(_MAX_SYMLINKS if follow_last else 0):
        try:
            target = os.readlink(root_bytes + path)
        except OSError:
            break
        base = b"/" if target.startswith(b"/") else os.path.dirname(path)
        path = canonicaliser.canonical(os.path.join(base, target))
    return os.fsdecode(root_bytes + path)


def _read_bytes(root, relative):
    return _read_file_bytes(_under(root, relative))


def _read_text(root, relative):
    return _read_file_text(_under(root, relative))


def _read_file_bytes(path, limit=1 << 20):
    """The first MiB of a file (configuration files are small), or None when it cannot be read."""
    try:
        with open(path, "rb") as stream:
            return stream.read(limit)
    except (OSError, ValueError):
        return None


def _read_file_text(path):
    data = _read_file_bytes(path)
    return data.decode("utf-8", "replace") if data is not None else None


def _shell_assignments(text):
    """KEY=value lines of os-release style files, with shell quoting undone; {} for None."""
    fields = {}
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export "):]
        key, equals, value = line.partition("=")
        if not equals or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
            continue
        try:
            words = shlex.split(value, comments=True)
        except ValueError:
            words = [value.strip("\"'")]
        fields[key] = " ".join(words)
    return fields


def _ini_sections(text):
    """{section (lower case): {key (lower case): value}} of an ini-style file."""
    sections, current = {}, None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1].strip().lower(), {})
        elif current is not None and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            current.setdefault(key.strip().lower(), value.strip())
    return sections


def _table_lines(text):
    return [line.split() for line in (text or "").splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _colon_lines(text):
    return [line.split(":") for line in (text or "").splitlines() if line and not line.startswith(("#", "+", "-"))]


def _unescape_octal(field):
    """fstab and /proc/mounts write a space as \\040."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), field)


def _int_or_none(value):
    try:
        return int(value)
    except ValueError:
        return None


def _without_empty(mapping):
    return {key: value for key, value in mapping.items() if value not in (None, [], "", {})}
