"""The `machinescan` command: run the server, administer users, and (later) browse scans."""

import argparse
import os
import sys

from . import admin, browse, demo, scan
from .client import ClientError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="machinescan",
        description="Self-hosted machine scan service (UForge-compatible API).",
        epilog="Examples:\n"
               "  machinescan serve --port 8080\n"
               "  echo 's3cret' | machinescan user add alice --entitlement migration_access --password-stdin\n"
               "  machinescan user apikey alice\n"
               "  machinescan list --user alice --password s3cret\n"
               "  machinescan compare 3 4\n"
               "  machinescan scan --host root@web1 -o\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    admin.add_commands(commands)
    browse.add_commands(commands)
    demo.add_commands(commands)
    scan.add_commands(commands)
    return parser


FAILED = 1  # the command could not do its work; 2 is argparse's, for a command line it cannot read
INTERRUPTED = 130
OUTPUT_CLOSED = 141  # as a process killed by SIGPIPE, the way `… | head` expects


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except (admin.CommandError, ClientError) as error:
        print(f"machinescan: {error}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return INTERRUPTED
    except BrokenPipeError:
        # The reader (`head`, `less`) has gone: stop quietly, and keep Python from complaining at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return OUTPUT_CLOSED


if __name__ == "__main__":
    sys.exit(main())
