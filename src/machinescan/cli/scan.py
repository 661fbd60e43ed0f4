"""`machinescan scan`: run the agent on this machine, or push it to a host over ssh and run it there (the flow
of `hammr scan run`), following the scan on the server until it is processed."""

import argparse
import ipaddress
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn, TextColumn, TimeElapsedColumn

from . import terminal
from .browse import _size, add_connection_options, emit_json
from .client import Api, ClientError, connection_from

AGENT = Path(__file__).resolve().parents[3] / "dist" / "machinescan-agent.pyz"
# Never stop on a prompt (password, passphrase, unknown host key), and notice a host that went away.
SSH_OPTIONS = ("BatchMode=yes", "ConnectTimeout=15", "ServerAliveInterval=15", "ServerAliveCountMax=4")
SSH_FAILED = 255  # ssh's own exit status; any other one is the remote command's
COMMAND_NOT_FOUND = 127
OLDEST_PYTHON = (3, 6)
POLL_SECONDS = 0.5

console = terminal.console(stderr=True)

EXAMPLES = """\
examples:
  Scan this machine, with its overlay, into the server of the config file or MACHINESCAN_URL:
    machinescan scan -o
  Scan web1 over ssh; web1 reaches the server by another address than this machine does:
    machinescan scan --host root@web1 -o --agent-url http://10.0.0.5:8080/api
  Scan a disk mounted on web1, leaving out a data tree:
    machinescan scan --host admin@web1 --identity ~/.ssh/scan_key --root /mnt/disk -e /srv/data

  The host needs python3 (3.6 or newer) and an ssh login that works without a prompt (a key).
  The agent is copied to /tmp there and removed afterwards; the password travels over the ssh channel,
  never on a command line.
"""


def add_commands(commands) -> None:
    scan = commands.add_parser(
        "scan", help="scan this machine, or a host over ssh, into the server and follow the scan",
        description="Run the agent (dist/machinescan-agent.pyz) on this machine, or copy it to a host over "
                    "ssh and run it there; show the progress the server reports until the scan is processed, "
                    "then a one-line summary. Exits 1 when the agent or the scan failed.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_connection_options(scan)
    where = scan.add_argument_group("where the agent runs")
    where.add_argument("--host", metavar="[USER@]HOST", help="scan this host over ssh instead of this machine")
    where.add_argument("--ssh-port", type=int, metavar="N", help="ssh port of the host (default: ssh's)")
    where.add_argument("--identity", metavar="FILE", help="private key for the ssh login (ssh -i)")
    where.add_argument("--ssh-option", dest="ssh_options", action="append", default=[], metavar="OPTION",
                       help="extra ssh option, as ssh -o takes it (repeatable), e.g. UserKnownHostsFile=FILE")
    where.add_argument("--agent-url", metavar="URL",
                       help="server URL as the scanned machine reaches it (default: the same as --url)")
    what = scan.add_argument_group("what the agent scans")
    what.add_argument("-n", dest="name", metavar="NAME",
                      help="name of the scanned instance (default: the scanned machine's host name)")
    what.add_argument("-o", "--overlay", action="store_true",
                      help="collect the overlay: added and modified files, in a tar.gz")
    what.add_argument("-e", dest="excludes", action="append", default=[], metavar="PATH",
                      help="leave PATH out of the scan (repeatable)")
    what.add_argument("--root", default="/", metavar="DIR", help="scan the system mounted at DIR (default: /)")
    scan.set_defaults(run=run_scan)


# ---------------------------------------------------------------- where the agent runs


class AgentProcess:
    """A running agent: its exit status, and its output (stderr and stdout) kept line by line."""

    def __init__(self, command: list[str], password: str):
        try:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT)
        except FileNotFoundError:
            raise ClientError(f"{command[0]} is not installed here") from None
        self.lines: deque[str] = deque(maxlen=200)
        self.unread: deque[str] = deque()
        self.reader = threading.Thread(target=self._read, name="agent-output", daemon=True)
        self.reader.start()
        try:
            self.process.stdin.write(password.encode("utf-8") + b"\n")
            self.process.stdin.close()
        except BrokenPipeError:  # it stopped before reading: its output says why
            pass

    def _read(self) -> None:
        for raw in self.process.stdout:
            for line in raw.decode("utf-8", "replace").replace("\r", "\n").splitlines():
                if line.strip():
                    self.lines.append(line.strip())
                    self.unread.append(line.strip())

    def poll(self) -> int | None:
        return self.process.poll()

    def finished(self) -> int:
        """The exit status, once the output is read to the end."""
        status = self.process.wait()
        self.reader.join(timeout=10)
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def new_lines(self) -> list[str]:
        lines = []
        while self.unread:
            lines.append(self.unread.popleft())
        return lines


class LocalMachine:
    """This machine: the agent runs with the Python that runs this command."""

    label = "this machine"

    def host_name(self) -> str:
        return socket.gethostname()

    def start_agent(self, agent_args: list[str], password: str) -> AgentProcess:
        return AgentProcess([sys.executable, str(built_agent()), *agent_args], password)

    def clean_up(self, agent_status: int | None) -> None:
        pass


class SshHost:
    """A host reached with the ssh command: the agent is copied to /tmp there, run with python3, then removed."""

    def __init__(self, destination: str, port: int | None, identity: str | None, options: list[str]):
        self.destination = destination
        self.label = destination
        self.base_command = ["ssh", *(f"-o{option}" for option in (*SSH_OPTIONS, *options))]
        if port:
            self.base_command += ["-p", str(port)]
        if identity:
            self.base_command += ["-i", identity, "-oIdentitiesOnly=yes"]
        self.agent_path = f"/tmp/machinescan-agent-{secrets.token_hex(8)}.pyz"
        self.copied = False

    def command(self, remote_command: str) -> list[str]:
        return [*self.base_command, "--", self.destination, remote_command]  # `--`: a host is never an option

    def run(self, remote_command: str, input: bytes = b"", timeout: float = 120) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(self.command(remote_command), input=input, capture_output=True,
                                    timeout=timeout)
        except FileNotFoundError:
            raise ClientError("the ssh command is not installed here (package openssh-client)") from None
        except subprocess.TimeoutExpired:
            raise ClientError(f"ssh to {self.destination} did not answer within {timeout:.0f} s") from None
        if result.returncode == SSH_FAILED:
            raise ClientError(self.explain_failure(result.stderr.decode("utf-8", "replace")))
        return result

    def explain_failure(self, stderr: str) -> str:
        lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("Warning:")]
        cause = lines[-1].strip() if lines else "ssh failed without a message"
        hints = (("Permission denied", "the login needs a key that works without a prompt: check the user, "
                                       "--identity, and the host's authorized_keys"),
                 ("Host key verification failed", f"ssh {self.destination} once to check and accept its host key"),
                 ("Could not resolve", "check --host"),
                 ("Connection refused", "is sshd running there? check --host and --ssh-port"),
                 ("timed out", "check --host, --ssh-port and the network"),
                 ("No route to host", "check --host and the network"))
        hint = next((text for marker, text in hints if marker in cause), "see `ssh -v` for details")
        return f"ssh to {self.destination} failed: {cause} ({hint})"

    def host_name(self) -> str:
        """The host's name, after checking that it has a python3 the agent can run on."""
        check = "import socket, sys; print(socket.gethostname()); print('%d.%d' % sys.version_info[:2])"
        result = self.run(f"python3 -c {shlex.quote(check)}")
        if result.returncode == COMMAND_NOT_FOUND:
            raise ClientError(f"{self.destination} has no python3: the agent needs Python "
                              f"{'.'.join(map(str, OLDEST_PYTHON))} or newer there")
        output = result.stdout.decode("utf-8", "replace").split()
        if result.returncode != 0 or len(output) < 2:
            raise ClientError(f"python3 does not run on {self.destination}: "
                              f"{result.stderr.decode('utf-8', 'replace').strip()[-300:]}")
        name, version = output[-2], output[-1]
        if tuple(int(part) for part in version.split(".")) < OLDEST_PYTHON:
            raise ClientError(f"{self.destination} has Python {version}; the agent needs "
                              f"{'.'.join(map(str, OLDEST_PYTHON))} or newer")
        return name

    def start_agent(self, agent_args: list[str], password: str) -> AgentProcess:
        self.copy_agent()
        arguments = " ".join(shlex.quote(argument) for argument in agent_args)
        # The shell removes the agent when it ends, whatever its status; that status is the session's.
        remote = (f"python3 {self.agent_path} {arguments}; status=$?; rm -f {self.agent_path}; "
                  f"exit $status")
        return AgentProcess(self.command(remote), password)

    def copy_agent(self) -> None:
        # noclobber: never write through a file (or link) somebody else put at that path
        copied = self.run(f"umask 077 && set -C && cat > {self.agent_path}", input=built_agent().read_bytes())
        if copied.returncode != 0:
            raise ClientError(f"cannot copy the agent to {self.destination}:{self.agent_path}: "
                              f"{copied.stderr.decode('utf-8', 'replace').strip()}")
        self.copied = True

    def clean_up(self, agent_status: int | None) -> None:
        """Remove the agent when the session that ran it did not get to (interrupted, connection lost)."""
        if self.copied and agent_status in (None, SSH_FAILED):
            try:
                self.run(f"rm -f {self.agent_path}", timeout=30)
            except ClientError:
                console.print(f"[yellow]could not remove {self.agent_path} from {self.destination}[/yellow]")


def built_agent() -> Path:
    if not AGENT.is_file():
        raise ClientError(f"the agent is not built: run `make agent` (expected {AGENT})")
    return AGENT


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# ---------------------------------------------------------------- what the server says


class ScanWatch:
    """The server's view of the scan the agent is sending: the new scan of the instance NAME."""

    def __init__(self, api: Api, name: str):
        self.api = api
        self.name = name
        self.known_ids = {scan["dbId"] for scan in self.scans_of_instance()}
        self.scan_uri: str | None = None

    def scans_of_instance(self) -> list[dict]:
        listing = self.api.get(f"{self.api.user_path}/scannedinstances", name=self.name, includeScans="true")
        return [scan for instance in listing.get("scannedInstances", []) for scan in instance.get("scans") or []]

    def current(self) -> dict | None:
        """The scan with its status, or None while the agent has not sent its report yet."""
        if self.scan_uri is None:
            new = [scan for scan in self.scans_of_instance() if scan["dbId"] not in self.known_ids]
            if not new:
                return None
            self.scan_uri = "/" + max(new, key=lambda scan: scan["dbId"])["uri"]
        return self.api.get(self.scan_uri, pkgs="false")


def is_processed(scan: dict) -> bool:
    status = scan["status"]
    return bool(status.get("complete") or status.get("error") or status.get("cancelled") or scan.get("error"))


def succeeded(scan: dict) -> bool:
    return bool(scan["status"].get("complete")) and not scan.get("error") and not scan["status"].get("error")


# ---------------------------------------------------------------- showing it


class LiveProgress:
    """The agent's latest line and the server's progress: bars on a terminal, plain lines in a log."""

    def __init__(self, machine_label: str):
        self.interactive = console.is_terminal
        self.bars = Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                             TaskProgressColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
                             console=console, disable=not self.interactive)
        self.agent_task = self.bars.add_task(f"agent on {machine_label}", total=None, detail="starting")
        self.scan_task = None
        self.last_state = None

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc_info):
        self.bars.stop()

    def agent_output(self, lines: list[str]) -> None:
        if not lines:
            return
        if self.interactive:
            self.bars.update(self.agent_task, detail=lines[-1][:70])
        else:
            for line in lines:
                console.print(f"agent: {line}", highlight=False)

    def agent_ended(self, status: int) -> None:
        self.bars.update(self.agent_task, total=1, completed=1,
                         detail="done" if status == 0 else f"[red]failed (exit status {status})[/red]")

    def scan_state(self, scan: dict) -> None:
        status = scan["status"]
        detail = status.get("message") or ""
        if status.get("bytesTotal"):
            detail += (f" (overlay: {_size(status.get('bytesLoaded') or 0)} of {_size(status['bytesTotal'])} "
                       f"received)")
        if self.interactive:
            if self.scan_task is None:
                self.scan_task = self.bars.add_task(f"scan {scan['dbId']} on the server", total=100, detail="")
            self.bars.update(self.scan_task, completed=status.get("percentage") or 0, detail=detail.strip())
            return
        state = (status.get("percentage"), detail.strip())
        if state != self.last_state:
            self.last_state = state
            console.print(f"server: scan {scan['dbId']} {state[0] or 0}% {state[1]}", highlight=False)


def outcome(scan: dict) -> str:
    status = scan["status"]
    if succeeded(scan):
        return "complete"
    if status.get("cancelled"):
        return "cancelled"
    if status.get("error") or scan.get("error"):
        return f"error: {scan.get('errorMsg') or status.get('errorMessage') or 'no message'}"
    return f"unfinished at {status.get('percentage') or 0}% ({status.get('message') or 'no message'})"


def summary_line(scan: dict, name: str) -> str:
    overlay = "no overlay"
    if scan.get("overlaySize"):
        overlay = (f"overlay {_size(scan['overlaySize'])} "
                   f"({_size(scan.get('uncompressedBinarySize') or 0)} of files)")
    return (f"scan {scan['dbId']} of {name}: {outcome(scan)}, {scan.get('totalPackages') or 0} packages, "
            f"{scan.get('totalFilesAdded') or 0} added, {scan.get('totalFilesModified') or 0} modified, "
            f"{scan.get('totalFilesDeleted') or 0} deleted, {overlay}")


# ---------------------------------------------------------------- the command


def run_scan(args: argparse.Namespace) -> int:
    if not args.host and (args.ssh_port or args.identity or args.ssh_options):
        raise ClientError("--ssh-port, --identity and --ssh-option go with --host [USER@]HOST")
    api = Api(connection_from(args.url, args.user, args.password))
    api.get(api.user_path)  # the server and the credentials work, before anything runs
    agent_url = (args.agent_url or api.connection.url).rstrip("/")
    machine = (SshHost(args.host, args.ssh_port, args.identity, args.ssh_options) if args.host
               else LocalMachine())
    if args.host and is_loopback(urlsplit(agent_url).hostname or "") and not is_loopback(
            args.host.rpartition("@")[2]):
        console.print(f"[yellow]note: {args.host} will look for the server at {agent_url}, its own loopback; "
                      f"give --agent-url with an address it can reach[/yellow]")
    built_agent()
    name = args.name or machine.host_name()
    watch = ScanWatch(api, name)
    agent_args = ["-U", agent_url, "-u", api.connection.user, "--password-stdin", "-n", name, "--root", args.root]
    agent_args += ["-o"] if args.overlay else []
    for path in args.excludes:
        agent_args += ["-e", path]
    agent_status = None
    try:
        agent = machine.start_agent(agent_args, api.connection.password)
        try:
            agent_status, scan = follow(agent, watch, machine.label)
        finally:
            agent.stop()
    finally:
        machine.clean_up(agent_status)
    return report(agent, agent_status, scan, name, machine.label, args.json)


def follow(agent: AgentProcess, watch: ScanWatch, machine_label: str) -> tuple[int, dict | None]:
    """Show progress until the agent has ended and the server has processed its scan (or the agent failed)."""
    agent_status = None
    with LiveProgress(machine_label) as live:
        while True:
            live.agent_output(agent.new_lines())
            if agent_status is None and agent.poll() is not None:
                agent_status = agent.finished()
                live.agent_output(agent.new_lines())
                live.agent_ended(agent_status)
            scan = watch.current()
            if scan is not None:
                live.scan_state(scan)
            if agent_status is not None and (agent_status != 0 or scan is None or is_processed(scan)):
                return agent_status, scan
            time.sleep(POLL_SECONDS)


def report(agent: AgentProcess, agent_status: int, scan: dict | None, name: str, machine_label: str,
           as_json: bool) -> int:
    if agent_status != 0:
        console.print(f"[red]the agent on {machine_label} failed (exit status {agent_status}):[/red] "
                      f"{agent_error(agent.lines)}", highlight=False)
    elif scan is None:
        console.print(f"[red]the agent finished but the server has no new scan of {name}[/red] "
                      f"(the agent said: {agent_error(agent.lines)})", highlight=False)
    if scan is not None:
        if as_json:
            emit_json(scan)
        else:
            print(summary_line(scan, name))
    return 0 if agent_status == 0 and scan is not None and succeeded(scan) else 1


def agent_error(lines) -> str:
    """The agent's own error line, else its last line (ssh's, when the connection broke)."""
    prefix = "machinescan-agent: error: "
    errors = [line[len(prefix):] for line in lines if line.startswith(prefix)]
    return errors[-1] if errors else (list(lines)[-1] if lines else "no message")
