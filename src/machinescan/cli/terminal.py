"""Output of the `machinescan` commands: rich consoles that wrap lines only on a terminal."""

import os
import sys

from rich.console import Console

PIPE_WIDTH = 10_000


def console(stderr: bool = False) -> Console:
    """A console for stdout or stderr. Piped or redirected, it never cuts a line: a password or a path split
    in two breaks copy and paste, grep and scripts (rich would otherwise wrap at 80 columns)."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or "COLUMNS" in os.environ else PIPE_WIDTH
    return Console(stderr=stderr, soft_wrap=True, width=width)
