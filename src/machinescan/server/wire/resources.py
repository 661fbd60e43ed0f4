"""Database rows to resource dicts (the shapes of uforge.xsd), with URIs relative to the API base."""

from datetime import datetime, timezone

from ..db.models import Scan, ScannedInstance, User
from .distributions import schema_arch, schema_name
from .schema import uforge_schema


def user_uri(user: User) -> str:
    return f"users/{user.login_name}"


def instance_uri(login_name: str, instance_id: int) -> str:
    return f"users/{login_name}/scannedinstances/{instance_id}"


def scan_uri(login_name: str, instance_id: int, scan_id: int) -> str:
    return f"{instance_uri(login_name, instance_id)}/scans/{scan_id}"


def _base(row) -> dict:
    return {"created": row.created, "dbId": row.id, "lastModified": row.last_modified}


def user(row: User) -> dict:
    uri = user_uri(row)
    return {
        **_base(row),
        "loginName": row.login_name,
        "active": True,
        "email": row.email,
        "admin": row.is_admin,
        "name": row.login_name,
        "scannedInstancesUri": f"{uri}/scannedinstances",
        "scansUri": f"{uri}/scans",
        "uri": uri,
        # ours (JSON only)
        "entitlements": row.entitlements.split(),
    }


def distribution(instance: ScannedInstance) -> dict:
    return {
        "arch": schema_arch(instance.distribution_arch),
        "family": "linux",
        "name": schema_name(instance.distribution_name),
        "version": instance.distribution_version or "",
        # ours (JSON only): exactly what was detected
        "detectedName": instance.distribution_name,
        "detectedArch": instance.distribution_arch,
    }


def scanned_instance(row: ScannedInstance, login_name: str, scans: list[dict] | None = None,
                     total_scans: int | None = None) -> dict:
    uri = instance_uri(login_name, row.id)
    return {
        **_base(row),
        "distribution": distribution(row),
        "name": row.name,
        "parentUri": f"users/{login_name}",
        "platformType": row.platform_type,
        "ramSize": row.ram_size_mb,
        "overlayIncluded": bool(row.overlay_included),
        "scans": scans,
        "scansUri": f"{uri}/scans",
        "totalScans": total_scans,
        "uri": uri,
    }


def op_status(scan: Scan, uri: str, bytes_loaded: int | None = None, bytes_total: int | None = None) -> dict:
    return {
        "created": scan.created,
        "lastModified": scan.last_modified,
        "bytesLoaded": bytes_loaded,
        "bytesTotal": bytes_total,
        "cancelled": scan.cancelled,
        "complete": scan.complete,
        "error": scan.error,
        "errorMessage": scan.error_message,
        "message": scan.status_message or "",
        "parentUri": uri,
        "percentage": scan.percentage,
        "uri": f"{uri}/status",
    }


def scan(row: Scan, login_name: str, extra: dict | None = None,
         overlay_progress: tuple[int, int | None] | None = None) -> dict:
    """`extra` carries what other layers add (the heavy lists); `overlay_progress` is (received, total)."""
    instance_id = row.instance_id
    uri = scan_uri(login_name, instance_id, row.id)
    loaded, total = overlay_progress or (None, None)
    resource = {
        **_base(row),
        "binariesExtracted": row.binaries_extracted,
        "binariesReceived": row.binaries_received,
        "error": row.error,
        "errorMsg": row.error_message,
        "filesUri": f"{uri}/files",
        "installProfileUri": f"{uri}/installProfile",
        "name": row.name or f"scan {row.id}",
        "overlayUri": f"{uri}/overlay",
        "packagesUri": f"{uri}/packages",
        "scanned": row.scanned,
        "scannedInstanceUri": instance_uri(login_name, instance_id),
        "status": op_status(row, uri, loaded, total),
        "totalFilesAdded": row.total_files_added,
        "totalFilesDeleted": row.total_files_deleted,
        "totalFilesModified": row.total_files_modified,
        "totalPackages": row.total_packages,
        "uncompressedBinarySize": row.uncompressed_binary_size,
        "uri": uri,
        "validated": row.validated,
        # ours (JSON only)
        "scannedInstanceId": instance_id,
        "reportFileName": row.report_file_name,
        "overlayName": row.overlay_name,
        "overlaySize": row.overlay_size,
        "overlaySha256": row.overlay_sha256,
    }
    resource.update(extra or {})
    return resource


def listing(items_key: str, items: list[dict], total: int) -> dict:
    return {"total": total, items_key: items}


def service_status(version: str) -> dict:
    return {"alive": True, "version": version, "serviceLoad": 0}


def uforge_error(status_code: int, message: str, method: str, uri: str) -> dict:
    return {
        "localizedErrorMsg": {"message": message},
        "requestMethod": method,
        "requestUri": uri,
        "statusCode": status_code,
        "timestamp": datetime.now(timezone.utc),
    }


# ---------------------------------------------------------------- what a scan found

# The schema knows three change types; `metadata` (mode/owner/group only) is a modification to clients.
_SCHEMA_CHANGE = {"added": "added", "modified": "modified", "metadata": "modified", "deleted": "deleted"}


def package_uri(scan_uri_: str, package_id: int) -> str:
    return f"{scan_uri_}/packages/{package_id}"


def scanned_package(row, scan_uri_: str, instance_id: int, modified_files: list[dict] | None = None,
                    comparison: str | None = None, previous=None, inherited: bool | None = None) -> dict:
    uri = package_uri(scan_uri_, row.id)
    resource = {
        "dbId": row.id,
        "size": row.installed_size,
        "arch": row.arch,
        "fullName": full_package_name(row),
        "name": row.name,
        "parentUri": scan_uri_,
        "release": row.release,
        "type": row.manager,
        "uri": uri,
        "version": row.version,
        "epoch": row.epoch,
        "deleted": comparison == "removed" or None,
        "filesUri": f"{uri}/files",
        "inherited": inherited,
        "modifiedFiles": modified_files,
        "scannedInstanceId": instance_id,
        # ours (JSON only)
        "manager": row.manager,
        "source": row.source,
        "packageStatus": row.status,  # `status` is the schema's OpStatus
        "modified": row.modified,
        "missingFiles": row.missing_files,
        "installTime": row.install_time,
    }
    if comparison:
        resource["comparison"] = comparison
    if previous is not None:
        resource["previousVersion"] = full_package_name(previous)
    return resource


def full_package_name(row) -> str:
    epoch = f"{row.epoch}:" if row.epoch is not None else ""
    release = f"-{row.release}" if row.release else ""
    return f"{row.name}-{epoch}{row.version}{release}" + (f".{row.arch}" if row.arch else "")


def scanned_file(row, scan_uri_: str, instance_id: int, change: str | None = None,
                 inherited: bool | None = None) -> dict:
    change = change or row.change
    name = row.path.rsplit("/", 1)[-1] or "/"
    return {
        "dbId": row.id,
        "checksum": row.sha256,
        "directory": row.kind == "dir",
        "fullPath": row.path,
        "group": row.group,
        "linkTarget": row.link_target,
        "name": name,
        "owner": row.owner,
        "permissions": row.mode,
        "scannedInstanceId": instance_id,
        "size": row.size,
        "uri": f"{scan_uri_}/files/{row.id}",
        "deleted": change == "deleted",
        "inherited": inherited,
        "uploaded": row.uploaded,
        "changeType": _SCHEMA_CHANGE.get(change),
        # ours (JSON only)
        "kind": row.kind,
        "change": change,
        "changed": row.changed.split(",") if row.changed else None,
        "packages": row.packages.split() if row.packages else None,
        "inOverlay": row.in_overlay,
        "note": row.note,
        "pathB64": row.path_b64,
        "mtime": row.mtime,
        "uid": row.uid,
        "gid": row.gid,
    }


def scanned_directory(path: str, counts, subdirectories: list[dict], files: list[dict]) -> dict:
    return {"id": path, "path": path, "subDirectories": subdirectories, "sumAdded": counts.added,
            "sumChanged": counts.changed, "sumDeleted": counts.deleted, "files": files}


def directory_structure(path: str, counts, subdirectories: list[dict]) -> dict:
    """A folder in the tree; the schema has no counts here, so they are ours (JSON only)."""
    return {"id": path, "path": path, "subDirectories": subdirectories, "sumAdded": counts.added,
            "sumChanged": counts.changed, "sumDeleted": counts.deleted}


def _records(profile: dict, key: str) -> list[dict]:
    """The list of objects under `key`; anything else a report may hold there is left out, never a 500."""
    value = profile.get(key)
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def install_profile(profile: dict, uri: str, memory_bytes: int | None = None) -> dict:
    """The schema's InstallProfile from the report's profile record; the whole record is kept in `profile`.

    The report's profile fields are free-form, so each is taken only when it has the expected type."""
    keyboards = uforge_schema().enumeration("InstallProfile", "keyboard")
    keyboard = (profile.get("keyboard") or {}).get("layout") if isinstance(profile.get("keyboard"), dict) \
        else profile.get("keyboard")
    selinux = profile.get("selinux") or {}
    selinux = selinux.get("mode") or selinux.get("configured_mode") if isinstance(selinux, dict) else selinux
    swap = sum(_count(item.get("size")) for item in _records(profile, "swap"))
    memory = _count(memory_bytes)
    return {
        "groups": [{"groupId": str(group.get("gid", "")), "name": _text(group.get("name")),
                    "systemGroup": isinstance(group.get("gid"), int) and group["gid"] < 1000}
                   for group in _records(profile, "groups")],
        "kernelParameters": _text(profile.get("kernel_cmdline")),
        "keyboard": keyboard if isinstance(keyboard, str) and keyboard in keyboards else None,
        "memorySize": memory // (1024 * 1024) if memory else None,
        "nics": [{"name": _text(nic.get("name")), "type": "ETHERNET", "order": order}
                 for order, nic in enumerate(_records(profile, "network_interfaces"))],
        "swapSize": swap // (1024 * 1024) if swap else None,
        "timezone": _text(profile.get("timezone")),
        "uri": uri,
        "users": [{"fullName": _text(user.get("gecos")), "homeDir": _text(user.get("home")),
                   "name": _text(user.get("name")), "primaryGroup": str(user.get("gid", "")),
                   "shell": _text(user.get("shell")),
                   "systemUser": isinstance(user.get("uid"), int) and user["uid"] < 1000,
                   "userId": str(user.get("uid", ""))}
                  for user in _records(profile, "users")],
        "seLinuxMode": selinux if isinstance(selinux, str) and selinux in ("disabled", "permissive", "enforcing")
        else None,
        # ours (JSON only): everything the agent found
        "profile": profile,
    }


def scan_compare(scan_a_uri: str, scan_b_uri: str, packages: list[dict], files: list[dict],
                 files_uri: str) -> dict:
    return {"extraFiles": files, "filesUri": files_uri, "scanAUri": scan_a_uri, "scanBUri": scan_b_uri,
            "packages": packages}
