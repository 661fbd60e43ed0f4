"""Builds the agent as one executable zipapp: `python -m machinescan.agent.build dist/machinescan-agent.pyz`."""

import os
import shutil
import sys
import tempfile
import zipapp

INTERPRETER = "/usr/bin/env python3"
# zipapp's `main=` would drop main()'s return value: the archive's exit status must be the agent's.
MAIN_SCRIPT = "import sys\n\nfrom machinescan.agent.cli import main\n\nsys.exit(main())\n"
# What the agent needs on the scanned machine: the package marker, the report format and the agent itself.
INCLUDED = ("__init__.py", "report", "agent")


def package_dir():
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def copy_sources(source_package, staging):
    """Copy the included parts of the machinescan package (Python sources only) into staging/machinescan."""
    target_package = os.path.join(staging, "machinescan")
    os.makedirs(target_package)
    for name in INCLUDED:
        source = os.path.join(source_package, name)
        if os.path.isdir(source):
            shutil.copytree(source, os.path.join(target_package, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
        else:
            shutil.copy2(source, os.path.join(target_package, name))


def build(target):
    """Write the zipapp at `target` (its folder is created); returns the target path."""
    target = os.path.abspath(target)
    target_dir = os.path.dirname(target)
    if target_dir:
        os.makedirs(target_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix="machinescan-agent-build-")
    try:
        copy_sources(package_dir(), staging)
        with open(os.path.join(staging, "__main__.py"), "w") as script:
            script.write(MAIN_SCRIPT)
        zipapp.create_archive(staging, target, interpreter=INTERPRETER)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        sys.stderr.write("usage: python -m machinescan.agent.build TARGET.pyz\n"
                         "example: python -m machinescan.agent.build dist/machinescan-agent.pyz\n")
        return 2
    print(build(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
