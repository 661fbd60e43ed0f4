"""`machinescan demo` (what `make run` runs): serve on the embedded default, scan this machine into the
server with the agent through the HTTP API, summarise, and keep serving until Ctrl-C."""

import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from rich.table import Table

from ..server.auth import MIGRATION_ACCESS, add_user
from ..server.db.models import User
from . import terminal
from .admin import add_state_options, ensure_first_admin, settings_from
from .scan import AGENT

console = terminal.console(stderr=True)


def add_commands(commands) -> None:
    demo = commands.add_parser(
        "demo", help="serve, scan this machine into the server, and keep serving (make run)",
        description="Start the server on the embedded default, scan this machine (/ with the default "
                    "exclusions, with overlay) into it through the API with the agent, print a summary "
                    "and the commands to explore it, then keep serving until Ctrl-C.")
    add_state_options(demo)
    demo.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    demo.add_argument("--port", type=int, help="port to listen on (default 8080)")
    demo.add_argument("--root", default="/", help="root to scan (default /)")
    demo.add_argument("-e", dest="excludes", action="append", default=[], metavar="PATH",
                      help="leave PATH out of the scan (repeatable)")
    demo.add_argument("--no-overlay", action="store_true", help="scan without collecting the overlay")
    demo.add_argument("--no-serve", action="store_true", help="stop after the scan instead of serving")
    demo.set_defaults(run=run_demo)


def demo_account(settings) -> tuple[str, str]:
    """The `demo` user that `make run` scans into; its password is kept in the data folder (mode 600)."""
    path = settings.data_dir / "demo-user.json"
    if path.exists():
        stored = json.loads(path.read_text())
        return stored["user"], stored["password"]
    from ..server.db.engine import Database

    password = secrets.token_urlsafe(12)
    database = Database(settings.resolved_database_url())
    with database.session() as session:
        if session.query(User).filter_by(login_name="demo").first() is None:
            add_user(session, "demo", password, entitlements=(MIGRATION_ACCESS,))
        else:  # created by an earlier demo whose file was removed: give it a new password
            from ..server.auth import hash_password
            session.query(User).filter_by(login_name="demo").update({"password_hash": hash_password(password)})
    database.engine.dispose()
    path.touch(mode=0o600)
    path.write_text(json.dumps({"user": "demo", "password": password}))
    return "demo", password


def start_server(app, host: str, port: int):
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise SystemExit(f"the server could not start on {host}:{port} (is the port taken? choose another: MACHINESCAN_PORT=8081 make run, or --port)")
        time.sleep(0.05)
    return server, thread


def run_agent(url: str, user: str, password: str, args, data_dir: Path) -> int:
    if not AGENT.exists():
        raise SystemExit(f"the agent is not built: run `make agent` (expected {AGENT})")
    command = [sys.executable, str(AGENT), "-U", url, "-u", user, "--password-stdin", "-n", socket.gethostname(),
               "--root", args.root, "-e", str(data_dir.resolve())]
    if not args.no_overlay:
        command.append("-o")
    for path in args.excludes:
        command += ["-e", path]
    console.print(f"[bold]scanning[/bold] {args.root}: {' '.join(command)}", highlight=False)
    return subprocess.run(command, input=password.encode() + b"\n").returncode


def wait_until_processed(client: httpx.Client, scan_uri: str) -> dict:
    with console.status("the server is indexing the report and checking the overlay") as status:
        while True:
            scan = client.get("/" + scan_uri, params={"pkgs": "false"}).json()
            state = scan["status"]
            if state["complete"] or state["error"] or state["cancelled"]:
                return scan
            status.update(f"{state['percentage']}% {state.get('message', '')}")
            time.sleep(0.5)


def latest_scan(client: httpx.Client, user: str) -> dict:
    name = socket.gethostname()
    listing = client.get(f"/users/{user}/scannedinstances", params={"name": name, "includeScans": "true"}).json()
    scans = [scan for instance in listing["scannedInstances"] for scan in instance.get("scans", [])]
    if not scans:
        raise SystemExit("the agent finished but the server has no scan of this machine; see the messages above")
    return max(scans, key=lambda scan: scan["dbId"])


def summary(scan: dict, instance: dict, timings: dict) -> Table:
    table = Table(title=f"scan {scan['dbId']} of {instance['name']}", show_header=False)
    distribution = instance.get("distribution", {})
    rows = [("distribution", f"{distribution.get('detectedName')} {distribution.get('version')} "
                             f"{distribution.get('detectedArch')}"),
            ("status", "complete" if scan["status"]["complete"] else f"[red]{scan.get('errorMsg')}[/red]"),
            ("packages", scan.get("totalPackages")), ("files added", scan.get("totalFilesAdded")),
            ("files modified", scan.get("totalFilesModified")), ("files deleted", scan.get("totalFilesDeleted")),
            ("overlay", f"{(scan.get('overlaySize') or 0) / 1e6:,.1f} MB compressed, "
                        f"{(scan.get('uncompressedBinarySize') or 0) / 1e6:,.1f} MB of files")]
    rows += [(f"time: {phase}", f"{seconds:.1f} s") for phase, seconds in timings.items()]
    for name, value in rows:
        table.add_row(name, str(value))
    return table


def run_demo(args: argparse.Namespace) -> int:
    from ..server.app import create_app

    settings = settings_from(args)
    # The demo scans a whole machine: let its overlay be as large as the disk allows.
    os.environ.setdefault("MACHINESCAN_MAX_OVERLAY_SIZE", str(1 << 40))
    settings.max_overlay_size = int(os.environ["MACHINESCAN_MAX_OVERLAY_SIZE"])
    app = create_app(settings)
    admin = ensure_first_admin(app.state.services.database)
    if admin:
        console.print(f"First administrator created (shown only this once): user {admin[0]}, password {admin[1]}")
    user, password = demo_account(settings)
    started = time.monotonic()
    server, thread = start_server(app, settings.host, settings.port)
    url = f"http://{settings.host}:{settings.port}/api"
    console.print(f"machinescan serving {url} (data in {settings.data_dir.resolve()})")
    timings = {"server start": time.monotonic() - started}
    code = 1
    try:
        started = time.monotonic()
        code = run_agent(url, user, password, args, settings.data_dir)
        timings["scan and upload (agent)"] = time.monotonic() - started
        with httpx.Client(base_url=url, auth=(user, password), headers={"Accept": "application/json"},
                          timeout=60) as client:
            if code != 0:
                console.print(f"[red]the agent stopped with exit status {code}[/red]; the server keeps running")
            else:
                started = time.monotonic()
                scan = wait_until_processed(client, latest_scan(client, user)["uri"])
                timings["indexing and overlay check (server)"] = time.monotonic() - started
                instance = client.get("/" + scan["scannedInstanceUri"]).json()
                console.print(summary(scan, instance, timings))
                explore(url, user, password, scan["dbId"])
        if not args.no_serve:
            console.print("serving until Ctrl-C")
            thread.join()
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return 0 if code == 0 else 1


def explore(url: str, user: str, password: str, scan_id: int) -> None:
    console.print("\n[bold]Explore it[/bold] (in another terminal):", highlight=False)
    print(f"  export MACHINESCAN_URL={url} MACHINESCAN_USER={user} MACHINESCAN_PASSWORD={password}")
    for command in ("list", f"show {scan_id}", f"packages {scan_id} --changed", f"files {scan_id} --added",
                    f"download {scan_id} -o overlay.tar.gz"):
        print(f"  .venv/bin/machinescan {command}")
    print(f"  curl -u {user}:{password} -H 'Accept: application/json' {url}/users/{user}/scannedinstances")
    print(f"  API reference: {url}/docs")
