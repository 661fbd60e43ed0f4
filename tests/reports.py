"""Reports built in tests with the real writer: small, hand-described machines."""

import io

from machinescan.report import ReportWriter


def package(name: str, version: str, arch: str = "amd64", manager: str = "dpkg", **fields) -> dict:
    return {"manager": manager, "name": name, "version": version, "arch": arch, "epoch": None,
            "status": "installed", **fields}


def file(path, change: str = "unchanged", kind: str = "file", size: int = 10, **fields) -> dict:
    return {"path": path, "kind": kind, "change": change, "mode": "0644", "uid": 0, "gid": 0,
            "owner": "root", "group": "root", "size": size, "mtime": 1700000000,
            "in_overlay": change in ("added", "modified") and kind == "file", **fields}


def report_bytes(packages=(), files=(), overlay: bool = False, distribution: dict | None = None,
                 profile: dict | None = None, memory_bytes: int = 2 * 1024**3) -> bytes:
    buffer = io.BytesIO()
    writer = ReportWriter(buffer)
    writer.header({
        "agent": {"name": "test", "version": "0"},
        "scan": {"started": "2026-12-03T10:00:00Z", "root": "/", "excludes": ["/proc"], "overlay": overlay},
        "host": {"hostname": "h", "machine": "x86_64", "memory_bytes": memory_bytes, "platform_type": "vm"},
        "distribution": distribution or {"id": "debian", "name": "Debian GNU/Linux", "version": "12",
                                         "arch": "amd64"},
    })
    for record in packages:
        writer.package(record)
    for record in files:
        writer.file(record)
    if profile is not None:
        writer.profile(profile)
    writer.close(1.0)
    return buffer.getvalue()
