"""Database rows to resource dicts (the shapes of uforge.xsd), with URIs relative to the API base."""

from datetime import datetime, timezone

from ..db.models import Scan, ScannedInstance, User
from .distributions import schema_arch, schema_name


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


def scan(row: Scan, login_name: str, extra: dict | None = None) -> dict:
    """`extra` carries what other layers add: the heavy lists, upload progress, the install profile."""
    instance_id = row.instance_id
    uri = scan_uri(login_name, instance_id, row.id)
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
        "status": op_status(row, uri),
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
