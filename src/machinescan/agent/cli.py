"""Command line of the agent, flag-compatible with UForge's `uforge-scan`, plus local-output options."""

import argparse
import os
import sys
import time

from machinescan import __version__

from .overlay import COMPRESS_MODES, DEFAULT_MAX_FILE_SIZE, SPARSE_POLICIES, OverlayError
from .scan import ScanError, ScanOptions, run_scan

EXAMPLES = """\
examples:
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

UPLOAD_NOT_AVAILABLE = ("uploading is not available yet, use --output DIR to write the report "
                        "(and the overlay with -o) into a folder")


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
        description="Scan this machine (or a mounted root): packages, files added or changed since "
                    "install, and an install profile; optionally collect those files in an overlay.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    server = parser.add_argument_group("server (uforge-scan compatible)")
    server.add_argument("-u", dest="user", metavar="USER", help="user login on the server")
    server.add_argument("-p", dest="password", metavar="PASSWORD", help="password of USER")
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
                      help="work folder for temporary files (never scanned)")
    scan.add_argument("--root", default="/", metavar="DIR",
                      help="scan the system mounted at DIR instead of / (default: /)")
    scan.add_argument("--output", metavar="DIR",
                      help="write report.jsonl.gz (and overlay.tar.gz with -o) into DIR instead of uploading")
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
    options = ScanOptions(root=args.root, output_dir=args.output, overlay=args.overlay,
                          excludes=args.excludes, work_dir=args.work_dir, compress=args.compress,
                          max_file_size=args.max_file_size, sparse=args.sparse, name=args.name)
    progress = None if args.quiet else Progress(sys.stderr)
    try:
        result = run_scan(options, progress)
    except (ScanError, OverlayError) as error:
        sys.stderr.write("machinescan-agent: error: %s\n" % error)
        return 1
    except OSError as error:  # the output folder filled up or went away: nothing was kept
        sys.stderr.write("machinescan-agent: error: cannot write into %s: %s\n" % (args.output, error))
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("machinescan-agent: interrupted, nothing kept\n")
        return 130
    if not args.quiet:
        sys.stderr.write("report: %s\n" % result.report_path)
        if result.overlay_path:
            sys.stderr.write("overlay: %s\n" % result.overlay_path)
    return 0


def usage_problem(args):
    """Why the flags cannot work together, or None."""
    if args.output is None:
        if args.url or args.probe:
            return UPLOAD_NOT_AVAILABLE
        return "nothing to do: give --output DIR (uploading with -U is not available yet)"
    if args.api_key and not args.secret:
        return "-a KEY needs its secret key: -s SECRET"
    if not os.path.isdir(args.root):
        return "--root %s is not a directory" % args.root
    return None


if __name__ == "__main__":
    sys.exit(main())
