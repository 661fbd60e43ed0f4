"""Command line of the agent, flag-compatible with UForge's `uforge-scan`, plus local-output options."""

import argparse
import os
import shutil
import socket
import sys
import tempfile
import time

from machinescan import __version__

from .overlay import COMPRESS_MODES, DEFAULT_MAX_FILE_SIZE, SPARSE_POLICIES, OverlayError
from .scan import ScanError, ScanOptions, run_scan

EXAMPLES = """\
examples:
  Scan this machine and send it to the server, with the overlay (as uforge-scan does):
    machinescan-agent -U http://server:8080/api -u alice -p secret -n web1 -o
  Same with an API key pair, after checking the server and the keys with -P:
    machinescan-agent -U http://server:8080/api -u alice -a PUBKEY -s SECRETKEY -P
    machinescan-agent -U http://server:8080/api -u alice -a PUBKEY -s SECRETKEY -n web1 -o
  Scan this machine into a folder, report only:
    machinescan-agent --output /srv/scans/web1
  Same, with the overlay (files no package can rebuild), leaving out a data tree:
    machinescan-agent -o -e /srv/data --output /srv/scans/web1
  Scan a disk of another machine mounted at /mnt/disk:
    machinescan-agent --root /mnt/disk -o --output /srv/scans/old-db
  Faster on already-compressed data (stores the archive uncompressed):
    machinescan-agent -o --compress none --output /srv/scans/media1

  The folder then holds report.jsonl.gz (and overlay.tar.gz with -o). List the overlay with
  `tar -tzvf overlay.tar.gz`; extract it with `tar -xzpf overlay.tar.gz -C /target`.

  /proc /sys /dev /run /tmp /var/tmp /var/cache, network filesystems and the work folder are never
  scanned; each mount of a local disk is scanned on its own filesystem.
"""

# Scans that upload are written here first (in a folder of their own), unless -t names another place.
DEFAULT_WORK_PARENT = "/var/tmp"


def size_argument(text):
    """'512M', '4G', '1000' -> bytes."""
    units = {"k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
    value = text.strip().lower().rstrip("b").rstrip("i")
    factor = units.get(value[-1:], 1)
    number = value[:-1] if value[-1:] in units else value
    try:
        size = int(float(number) * factor)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a size (examples: 8M, 4G, 1048576)" % text)
    if size <= 0:
        raise argparse.ArgumentTypeError("a size must be positive, not %r" % text)
    return size


def build_parser():
    parser = argparse.ArgumentParser(
        prog="machinescan-agent",
        description="Scan this machine (or a mounted root): packages, files added or changed since\n"
                    "install, and an install profile; optionally collect those files in an overlay.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    server = parser.add_argument_group("server (uforge-scan compatible)")
    server.add_argument("-u", dest="user", metavar="USER", help="user login on the server")
    server.add_argument("-p", dest="password", metavar="PASSWORD", help="password of USER")
    server.add_argument("--password-stdin", action="store_true",
                        help="read the password of USER from the first line of standard input instead of -p, "
                             "so that it never shows in the process list")
    server.add_argument("-a", dest="api_key", metavar="KEY", help="public API key (instead of -p)")
    server.add_argument("-s", dest="secret", metavar="SECRET", help="secret API key that goes with -a")
    server.add_argument("-U", dest="url", metavar="URL", help="server URL, e.g. http://host:8080/api")
    server.add_argument("-n", dest="name", metavar="NAME", help="name of the scanned instance")
    server.add_argument("-P", dest="probe", action="store_true",
                        help="probe only: check the server and credentials, scan nothing")
    scan = parser.add_argument_group("scan")
    scan.add_argument("-o", dest="overlay", action="store_true",
                      help="collect the overlay: added and modified files, in a tar.gz")
    scan.add_argument("-e", dest="excludes", metavar="PATH", action="append", default=[],
                      help="leave PATH (a file or a whole tree, as seen from the root) out; repeatable")
    scan.add_argument("-t", dest="work_dir", metavar="DIR",
                      help="work folder for the files before they are uploaded (default /var/tmp; never scanned)")
    scan.add_argument("--root", default="/", metavar="DIR",
                      help="scan the system mounted at DIR instead of / (default: /)")
    scan.add_argument("--output", metavar="DIR",
                      help="write report.jsonl.gz (and overlay.tar.gz with -o) into DIR and keep them; "
                           "with -U they are uploaded too")
    scan.add_argument("--compress", choices=COMPRESS_MODES, default="auto",
                      help="overlay compression: auto stores incompressible blocks as they are (default), "
                           "gzip compresses every block, none writes a plain tar")
    scan.add_argument("--max-file-size", type=size_argument, default=DEFAULT_MAX_FILE_SIZE, metavar="SIZE",
                      help="largest file put in the overlay (default 4G); larger ones are reported as too_large")
    scan.add_argument("--sparse", choices=SPARSE_POLICIES, default="skip",
                      help="sparse files: skip (default, reported as sparse) or store them whole")
    scan.add_argument("--chunk-size", type=size_argument, default=8 * 1024 ** 2, metavar="SIZE",
                      help="upload chunk size (default 8M)")
    scan.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return parser


class Progress(object):
    """Entries walked, bytes read and rate on stderr: one rewritten line on a tty, a line now and then otherwise."""

    def __init__(self, stream, interval=None):
        self.stream = stream
        self.is_tty = hasattr(stream, "isatty") and stream.isatty()
        self.interval = interval if interval is not None else (0.5 if self.is_tty else 15.0)
        self.started = time.monotonic()
        self.last_shown = self.started

    def tick(self, counts):
        now = time.monotonic()
        if now - self.last_shown >= self.interval:
            self.last_shown = now
            self._show(counts, now, end="\r" if self.is_tty else "\n")

    def finish(self, counts):
        self._show(counts, time.monotonic(), end="\n")

    def _show(self, counts, now, end):
        elapsed = max(now - self.started, 1e-6)
        line = "%d entries, %.1f MB read, %.0f entries/s, %.1f MB/s, %d in overlay, %d errors" % (
            counts["entries"], counts["bytes_read"] / 1e6, counts["entries"] / elapsed,
            counts["bytes_read"] / 1e6 / elapsed, counts["in_overlay"], counts["errors"])
        self.stream.write(line.ljust(79) + end if self.is_tty else line + end)
        self.stream.flush()


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = usage_problem(args)
    if problem:
        parser.error(problem)
    if args.password_stdin:
        args.password = read_password(sys.stdin)
        if not args.password:
            parser.error("--password-stdin: the first line of standard input is empty")
    try:
        if args.probe:
            return run_probe(args)
        return scan_and_send(args)
    except (ScanError, OverlayError) as error:
        return fail(str(error))
    except KeyboardInterrupt:
        sys.stderr.write("machinescan-agent: interrupted, nothing kept\n")
        return 130
    except OSError as error:  # the output folder filled up or went away: nothing was kept
        return fail("cannot write into %s: %s" % (args.output or args.work_dir or DEFAULT_WORK_PARENT, error))


def fail(message):
    sys.stderr.write("machinescan-agent: error: %s\n" % message)
    return 1


def usage_problem(args):
    """Why the flags cannot work together, or None."""
    if args.probe and not args.url:
        return "-P checks a server: give its URL with -U URL"
    if args.url:
        if not args.user:
            return "-U needs the user: -u USER (with -p PASSWORD, or -a KEY -s SECRET)"
        if not args.password and not args.password_stdin and not args.api_key:
            return "-U needs credentials: -p PASSWORD, --password-stdin, or -a KEY -s SECRET"
    elif args.output is None:
        return "nothing to do: give --output DIR to write the files, or -U URL -u USER -p PASSWORD to upload"
    if args.password_stdin and (args.password or args.api_key):
        return "--password-stdin replaces -p and -a/-s: give only one kind of credentials"
    if args.api_key and not args.secret:
        return "-a KEY needs its secret key: -s SECRET"
    if not os.path.isdir(args.root):
        return "--root %s is not a directory" % args.root
    return None


def read_password(stream):
    """The first line of `stream`, read as UTF-8 bytes whatever the locale (a bare ssh session may be ASCII)."""
    line = stream.buffer.readline() if hasattr(stream, "buffer") else stream.readline()
    if isinstance(line, bytes):
        line = line.decode("utf-8")
    return line.rstrip("\r\n")


def scan_and_send(args):
    """Scan into --output (kept) or a work folder (removed after the upload), then upload when -U is given."""
    folder = args.output or make_work_folder(args.work_dir)
    options = ScanOptions(root=args.root, output_dir=folder, overlay=args.overlay, excludes=args.excludes,
                          work_dir=args.work_dir or (None if args.output else folder), compress=args.compress,
                          max_file_size=args.max_file_size, sparse=args.sparse, name=args.name)
    try:
        result = run_scan(options, None if args.quiet else Progress(sys.stderr))
        if args.url:
            return send(args, result)
        say(args, "report: %s" % result.report_path)
        if result.overlay_path:
            say(args, "overlay: %s" % result.overlay_path)
        return 0
    finally:
        if not args.output:
            shutil.rmtree(folder, ignore_errors=True)


def make_work_folder(parent):
    parent = parent or DEFAULT_WORK_PARENT
    try:
        os.makedirs(parent, exist_ok=True)
        return tempfile.mkdtemp(prefix="machinescan-agent-", dir=parent)
    except OSError as error:
        raise ScanError("cannot create a work folder in %s: %s (choose another with -t DIR)"
                        % (parent, error.strerror or error))


def send(args, result):
    """Upload the report, then the overlay, to the server; prints where the scan is."""
    from . import upload
    client = upload.ApiClient(args.url, upload.Credentials(args.user, args.password, args.api_key, args.secret))
    name = args.name or socket.gethostname()
    try:
        siid = upload.instance_id(client, args.user, name, result.header.get("distribution") or {}, args.overlay)
        sid = upload.upload_report(client, args.user, siid, result.report_path)
        say(args, "report sent: scan %d of %r" % (sid, name))
        if result.overlay_path:
            uploader = upload.OverlayUpload(client, args.user, siid, sid, chunk_size=args.chunk_size,
                                            progress=None if args.quiet else TransferProgress(sys.stderr))
            uploader.upload(result.overlay_path, result.overlay_record["sha256"])
            say(args, "overlay sent: %d bytes" % result.overlay_record["size"])
    except upload.UploadError as error:
        return fail(str(error))
    except (OSError, upload.http.client.HTTPException) as error:
        return fail("cannot reach %s: %s (check -U and the network)" % (args.url, error))
    finally:
        client.close()
    say(args, "scan uploaded: %s/users/%s/scannedinstances/%d/scans/%d" % (args.url.rstrip("/"), args.user, siid, sid))
    return 0


def run_probe(args):
    from . import upload
    client = upload.ApiClient(args.url, upload.Credentials(args.user, args.password, args.api_key, args.secret))
    try:
        version = upload.probe(client, args.user)
    except upload.UploadError as error:
        return fail(str(error))
    except (OSError, upload.http.client.HTTPException) as error:
        return fail("cannot reach %s: %s (check -U and the network)" % (args.url, error))
    finally:
        client.close()
    print("server %s answers (version %s); the credentials of %s work" % (args.url, version, args.user))
    return 0


class TransferProgress(object):
    """Bytes sent of the overlay, on one rewritten line on a tty, every 10% otherwise."""

    def __init__(self, stream):
        self.stream = stream
        self.is_tty = hasattr(stream, "isatty") and stream.isatty()
        self.last_tenth = -1

    def __call__(self, sent, total):
        tenth = 10 * sent // total if total else 10
        if not self.is_tty and tenth == self.last_tenth:
            return
        self.last_tenth = tenth
        line = "overlay upload: %.1f of %.1f MB" % (sent / 1e6, total / 1e6)
        self.stream.write(line + ("\r" if self.is_tty and sent < total else "\n"))
        self.stream.flush()


def say(args, message):
    if not args.quiet:
        sys.stderr.write(message + "\n")


if __name__ == "__main__":
    sys.exit(main())
