"""Map what the agent detects (os-release ID, machine arch) to the schema's enumerations, which clients enforce."""

SCHEMA_NAMES = (
    "CentOS", "Debian", "Fedora Core", "OpenSUSE", "Oracle Linux", "RedHat Enterprise Linux",
    "Scientific Linux", "SUSE Linux Enterprise Server", "Ubuntu", "Windows",
)
SCHEMA_ARCHES = ("i386", "i586", "i686", "noarch", "x86_64")

# os-release IDs (lower case) to the nearest schema name. CentOS's rebuilds map to CentOS.
_BY_ID = {
    "centos": "CentOS", "rocky": "CentOS", "almalinux": "CentOS", "eurolinux": "CentOS",
    "debian": "Debian", "raspbian": "Debian", "devuan": "Debian", "kali": "Debian",
    "fedora": "Fedora Core",
    "opensuse": "OpenSUSE", "opensuse-leap": "OpenSUSE", "opensuse-tumbleweed": "OpenSUSE", "suse": "OpenSUSE",
    "ol": "Oracle Linux", "oracle": "Oracle Linux", "oraclelinux": "Oracle Linux",
    "rhel": "RedHat Enterprise Linux", "redhat": "RedHat Enterprise Linux",
    "scientific": "Scientific Linux",
    "sles": "SUSE Linux Enterprise Server", "sled": "SUSE Linux Enterprise Server",
    "ubuntu": "Ubuntu", "linuxmint": "Ubuntu", "pop": "Ubuntu", "elementary": "Ubuntu",
    "windows": "Windows",
}
_BY_ARCH = {
    "x86_64": "x86_64", "amd64": "x86_64", "x64": "x86_64",
    "i386": "i386", "i486": "i386", "i586": "i586", "i686": "i686", "x86": "i686",
    "noarch": "noarch", "all": "noarch",
}
# An ID the table does not know still names a family through ID_LIKE; with neither, Debian stands in
# (documented in docs/api.md) because clients crash on an instance without a distribution name.
FALLBACK_NAME = "Debian"


def schema_name(detected: str | None, id_like: str | None = None) -> str:
    if detected in SCHEMA_NAMES:
        return detected
    for candidate in [detected or ""] + (id_like or "").split():
        name = _BY_ID.get(candidate.lower())
        if name:
            return name
    return FALLBACK_NAME


def schema_arch(detected: str | None) -> str:
    """Architectures the schema cannot name (aarch64, ppc64le, s390x) become `noarch` in XML."""
    return _BY_ARCH.get((detected or "").lower(), "noarch")
