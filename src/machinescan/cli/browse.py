"""Commands that talk to a server: list, show, packages, files, compare, download, delete."""

import argparse
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from . import terminal
from .client import Api, ClientError, connection_from, explain

console = terminal.console()


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="API base URL (default http://127.0.0.1:8080/api, or MACHINESCAN_URL)")
    parser.add_argument("--user", help="user name (or MACHINESCAN_USER)")
    parser.add_argument("--password", help="password (or MACHINESCAN_PASSWORD)")
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def api_from(args: argparse.Namespace) -> Api:
    return Api(connection_from(args.url, args.user, args.password))


def add_commands(commands) -> None:
    def command(name: str, run, help_text: str, description: str | None = None) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, help=help_text, description=description or help_text)
        add_connection_options(parser)
        parser.set_defaults(run=run)
        return parser

    command("list", run_list, "list scanned instances and their scans")
    show = command("show", run_show, "a scan's summary and install profile")
    show.add_argument("scan", type=int, metavar="SCAN", help="scan id, as `list` shows it")
    packages = command("packages", run_packages, "the packages of a scan")
    packages.add_argument("scan", type=int, metavar="SCAN")
    packages.add_argument("--changed", action="store_true", help="only packages with changed files")
    packages.add_argument("--search", help="only packages whose name contains this")
    files = command("files", run_files, "the changed files of a scan")
    files.add_argument("scan", type=int, metavar="SCAN")
    for change in ("added", "modified", "deleted"):
        files.add_argument(f"--{change}", action="store_true", help=f"only {change} files")
    files.add_argument("--all", action="store_true", help="every file, unchanged ones too")
    files.add_argument("--dir", help="only under this folder")
    compare = command("compare", run_compare, "packages and files that differ between two scans")
    compare.add_argument("scan_a", type=int, metavar="SCAN_A")
    compare.add_argument("scan_b", type=int, metavar="SCAN_B")
    download = command("download", run_download, "download a scan's overlay (resumable) or chosen files",
                       "Download the overlay of a scan: the archive of the files no package can rebuild; an "
                       "interrupted download resumes where it stopped. With --files, a tar.gz of only the "
                       "changed files you choose (--dir, --since), cut out of the overlay by the server.")
    download.add_argument("scan", type=int, metavar="SCAN")
    what = download.add_mutually_exclusive_group()
    what.add_argument("--overlay", action="store_true", help="the whole overlay archive (the default)")
    what.add_argument("--files", action="store_true", help="a tar.gz of the changed files only")
    download.add_argument("--dir", help="with --files: only files under this folder")
    download.add_argument("--since", type=int, metavar="SCAN_B",
                          help="with --files: only files new or changed since scan SCAN_B (usually an earlier scan of the same machine)")
    download.add_argument("-o", "--output", help="file to write (default: the server's file name)")
    delete = command("delete", run_delete, "delete a scan, or a scanned instance with all its scans",
                     "Delete a scan (`machinescan delete 3`) or a scanned instance with every scan of it "
                     "(`machinescan delete --instance web1`), their stored reports and overlays included.")
    which = delete.add_mutually_exclusive_group(required=True)
    which.add_argument("scan", type=int, metavar="SCAN", nargs="?", help="scan id, as `list` shows it")
    which.add_argument("--instance", metavar="NAME", help="the scanned instance of that name")


def emit_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def status_text(scan: dict) -> str:
    status = scan.get("status", {})
    if status.get("error") or scan.get("error"):
        return "[red]error[/red]"
    if status.get("cancelled"):
        return "cancelled"
    if status.get("complete"):
        return "[green]complete[/green]"
    return f"{status.get('percentage', 0)}%"


def run_list(args: argparse.Namespace) -> int:
    api = api_from(args)
    instances = list(api.pages(f"{api.user_path}/scannedinstances", "scannedInstances", includeScans="true"))
    if args.json:
        emit_json(instances)
        return 0
    table = Table(title=f"scans of {api.connection.user} at {api.connection.url}")
    for column in ("SCAN", "INSTANCE", "DISTRIBUTION", "STATUS", "PACKAGES", "ADDED", "MODIFIED", "DELETED", "DATE"):
        table.add_column(column)
    for instance in instances:
        distribution = instance.get("distribution", {})
        described = " ".join(str(distribution.get(k) or "") for k in ("detectedName", "version", "detectedArch"))
        for scan in instance.get("scans", []) or [{}]:
            table.add_row(str(scan.get("dbId", "-")), instance["name"], described.strip(),
                          status_text(scan) if scan else "no scan", *(str(scan.get(k, "")) for k in (
                              "totalPackages", "totalFilesAdded", "totalFilesModified", "totalFilesDeleted")),
                          scan.get("created", ""))
    console.print(table)
    if not instances:
        print(f"{api.connection.user} has no scanned instance yet: `machinescan scan` scans a machine",
              file=sys.stderr)
    return 0


def run_show(args: argparse.Namespace) -> int:
    api = api_from(args)
    path = api.scan_path(args.scan)
    scan = api.get(path, pkgs="false")
    profile = api.get(f"{path}/installProfile") if scan.get("validated") else {}
    if args.json:
        emit_json({"scan": scan, "installProfile": profile})
        return 0
    table = Table(show_header=False, title=f"scan {scan['dbId']}: {scan.get('name', '')}")
    rows = [("status", status_text(scan)), ("error", scan.get("errorMsg") or ""),
            ("packages", scan.get("totalPackages")), ("files added", scan.get("totalFilesAdded")),
            ("files modified", scan.get("totalFilesModified")), ("files deleted", scan.get("totalFilesDeleted")),
            ("overlay content", _size(scan.get("uncompressedBinarySize"))),
            ("overlay received", scan.get("binariesReceived")), ("created", scan.get("created"))]
    details = profile.get("profile", {})
    rows += [("timezone", profile.get("timezone")), ("kernel command line", profile.get("kernelParameters")),
             ("users", ", ".join(u["name"] for u in profile.get("users", []) if not u.get("systemUser"))),
             ("disks", ", ".join(f"{d.get('device')} {_size(d.get('size'))}" for d in details.get("disks", []))),
             ("enabled services", len(details.get("services", [])) or "")]
    for name, value in rows:
        if value not in (None, ""):
            table.add_row(name, str(value))
    console.print(table)
    return 0


def _size(value) -> str:
    if not isinstance(value, int):
        return ""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def run_packages(args: argparse.Namespace) -> int:
    api = api_from(args)
    params = {"all": "false"} if args.changed else {}
    if args.search:
        params["search"] = args.search
    packages = list(api.pages(f"{api.scan_path(args.scan)}/packages", "scannedPackages", **params))
    if args.json:
        emit_json(packages)
        return 0
    table = Table(title=f"{len(packages)} packages")
    for column in ("NAME", "VERSION", "ARCH", "MANAGER", "MODIFIED"):
        table.add_column(column)
    for package in packages:
        version = (f"{package['epoch']}:" if package.get("epoch") is not None else "") + package["version"] + (
            f"-{package['release']}" if package.get("release") else "")
        table.add_row(package["name"], version, package.get("arch", ""), package.get("manager", ""),
                      "yes" if package.get("modified") else "")
    console.print(table)
    return 0


def run_files(args: argparse.Namespace) -> int:
    api = api_from(args)
    wanted = [change for change in ("added", "modified", "deleted") if getattr(args, change)]
    if "modified" in wanted:
        wanted.append("metadata")
    params = {"changeType": "all" if args.all else ",".join(wanted)} if args.all or wanted else {}
    if args.dir:
        params["dir"] = args.dir
    files = api.pages(f"{api.scan_path(args.scan)}/files", "scannedFiles", **params)
    if args.json:
        emit_json(list(files))
        return 0
    listed = 0
    for listed, item in enumerate(files, 1):
        print(f"{item.get('change', ''):<9} {item['fullPath']}")
    if not listed:
        print("no file matches: without --added/--modified/--deleted every changed file is listed, "
              "--all adds the unchanged ones", file=sys.stderr)
    return 0


def run_compare(args: argparse.Namespace) -> int:
    api = api_from(args)
    path_a, path_b = api.scan_path(args.scan_a), api.scan_path(args.scan_b)
    result = api.request("POST", path_b, json={"scanAUri": path_a.lstrip("/"), "scanBUri": path_b.lstrip("/")}).json()
    # The answer holds the first files only (UForge clients take it whole); its filesUri pages through all.
    files_path, _, query = result["filesUri"].partition("?")
    result["extraFiles"] = list(api.pages("/" + files_path, "scannedFiles", **dict(parse_qsl(query))))
    if args.json:
        emit_json(result)
        return 0
    marks = {"added": "+", "removed": "-", "changed": "~", "modified": "~", "deleted": "-"}
    console.print(f"[bold]packages[/bold] ({len(result.get('packages', []))} differ)")
    for package in result.get("packages", []):
        before = f" (was {package['previousVersion']})" if package.get("previousVersion") else ""
        console.print(f"  {marks[package['comparison']]} {package['fullName']}{before}", highlight=False)
    console.print(f"[bold]files[/bold] ({len(result.get('extraFiles', []))} differ)")
    for item in result.get("extraFiles", []):
        console.print(f"  {marks[item['change']]} {item['fullPath']}", highlight=False)
    return 0


def run_download(args: argparse.Namespace) -> int:
    api = api_from(args)
    if args.files:
        return _download_files(api, args)
    if args.dir or args.since:
        raise ClientError("--dir and --since choose files: add --files")
    path = f"{api.scan_path(args.scan)}/overlay"
    head = api.request("HEAD", path)
    total = int(head.headers.get("upload-length") or 0)  # HEAD is the upload status: no Content-Length
    target = Path(args.output or _file_name(head, f"overlay-{args.scan}.tar.gz"))
    if target.exists() and target.stat().st_size == total:
        console.print(f"{target} is already complete ({_size(total)})", highlight=False)
        return 0
    # Bytes arrive in `<target>.part`, renamed when complete: a cut download never sits under the final name.
    partial = target.with_name(target.name + ".part")
    done = partial.stat().st_size if partial.exists() else 0
    headers = {}
    if 0 < done < total:
        headers = {"Range": f"bytes={done}-", "If-Range": head.headers.get("etag", "")}
        console.print(f"resuming {partial} at byte {done} of {total}", highlight=False)
    try:
        with _transfer(target.name, total, done) as advance, \
                api.http.stream("GET", path, headers={**headers, "Accept": "application/octet-stream"}) as response:
            _check(response)
            with open(partial, "ab" if response.status_code == 206 else "wb") as out:
                _save(response, out, advance)
    except KeyboardInterrupt:
        raise ClientError(f"interrupted: {partial} holds what arrived; run the same command again to resume") \
            from None
    partial.replace(target)
    console.print(f"{target}: {_size(target.stat().st_size)}", highlight=False)
    return 0


def _download_files(api: Api, args: argparse.Namespace) -> int:
    """The archive is made as it is sent, so it cannot resume: it is written beside the target and renamed
    when complete, never leaving a cut archive under the final name."""
    params = {"dir": args.dir} if args.dir else {}
    if args.since:
        params["compareWith"] = api.find_scan(args.since)["uri"]
    path = f"{api.scan_path(args.scan)}/files"
    with api.http.stream("GET", path, params=params, headers={"Accept": "application/gzip"}) as response:
        _check(response)
        target = Path(args.output or _file_name(response, f"scan{args.scan}-files.tar.gz"))
        partial = target.with_name(target.name + ".part")
        with _transfer(target.name, 0, 0) as advance, open(partial, "wb") as out:
            _save(response, out, advance)
    partial.replace(target)
    console.print(f"{target}: {_size(target.stat().st_size)}", highlight=False)
    return 0


def _file_name(response, default: str) -> str:
    disposition = response.headers.get("content-disposition", "")
    if "filename=" in disposition:
        return Path(disposition.split("filename=")[-1].strip('"')).name  # never a path of the server's choosing
    return default


def _check(response) -> None:
    if response.status_code >= 400:
        response.read()
        raise ClientError(explain(response))


def _save(response, out, advance) -> None:
    for block in response.iter_bytes(1 << 20):
        out.write(block)
        advance(len(block))


@contextmanager
def _transfer(name: str, total: int, done: int):
    """A progress bar on stderr (when it is a terminal); yields the function that moves it on."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  console=terminal.console(stderr=True), disable=not sys.stderr.isatty()) as progress:
        task = progress.add_task(name, total=total or None, completed=done)
        yield lambda count: progress.advance(task, count)


def run_delete(args: argparse.Namespace) -> int:
    api = api_from(args)
    if args.instance is None:
        api.request("DELETE", api.scan_path(args.scan))
        console.print(f"scan {args.scan} deleted")
        return 0
    found = api.get(f"{api.user_path}/scannedinstances", name=args.instance).get("scannedInstances", [])
    if not found:
        raise ClientError(f"no scanned instance named {args.instance!r}: `machinescan list` shows yours")
    api.request("DELETE", f"{api.user_path}/scannedinstances/{found[0]['dbId']}")
    console.print(f"scanned instance {args.instance} deleted with its scans", highlight=False)
    return 0
