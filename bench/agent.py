"""Benchmark: the agent's scan of a root against `find ROOT -xdev` plus `debsums -a --root ROOT`, same run.

usage: python bench/agent.py ROOT [--overlay] [--compress auto|gzip|none] [--runs N]

Both sides walk every path of the root and check every package file's md5; the agent also hashes the
files no package owns and writes the report (and with --overlay the archive). The page cache is warmed
first with one untimed `find`, so both sides read from memory as much as the machine allows.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def timed_child(command, env=None):
    """(seconds, peak RSS in KiB, exit status) of one child process, its output discarded."""
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    elapsed = time.monotonic() - started
    errors = child.stderr.read().decode("utf-8", "replace")
    child.stderr.close()
    return elapsed, usage.ru_maxrss, child.returncode, errors


def run_agent(root, overlay, compress):
    output = tempfile.mkdtemp(prefix="bench-agent-")
    command = [sys.executable, "-m", "machinescan.agent", "--root", root, "--output", output, "--quiet",
               "--compress", compress] + (["-o"] if overlay else [])
    try:
        return timed_child(command, env=dict(os.environ, PYTHONPATH=SRC))
    finally:
        shutil.rmtree(output, ignore_errors=True)


def run_baseline(root):
    find_seconds, find_rss, _, _ = timed_child(["find", root, "-xdev"])
    # debsums exits 2 when files differ: that is its finding, not a failure of the benchmark.
    debsums_seconds, debsums_rss, status, errors = timed_child(["debsums", "-a", "--root", root])
    if status not in (0, 1, 2):
        raise SystemExit("debsums failed (%s): %s" % (status, errors.strip()[-500:]))
    return find_seconds + debsums_seconds, max(find_rss, debsums_rss), find_seconds, debsums_seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("--overlay", action="store_true", help="also write the overlay (-o)")
    parser.add_argument("--compress", default="auto", choices=("auto", "gzip", "none"))
    parser.add_argument("--runs", type=int, default=1, help="runs of each side; the best is kept")
    args = parser.parse_args()
    if shutil.which("debsums") is None:
        raise SystemExit("debsums is not installed: apt-get install debsums")
    subprocess.call(["find", args.root, "-xdev"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agent_runs, baseline_runs = [], []
    for _ in range(args.runs):
        seconds, rss, status, errors = run_agent(args.root, args.overlay, args.compress)
        if status != 0:
            raise SystemExit("the agent failed (%s): %s" % (status, errors.strip()[-500:]))
        agent_runs.append((seconds, rss))
        baseline_runs.append(run_baseline(args.root))
    agent_seconds, agent_rss = min(agent_runs)
    baseline = min(baseline_runs)
    print("root:                 %s" % args.root)
    print("agent (--output%s):    %.2f s, peak RSS %.1f MiB" % (
        " -o" if args.overlay else "", agent_seconds, agent_rss / 1024.0))
    print("find -xdev + debsums: %.2f s (find %.2f s, debsums %.2f s)" % (baseline[0], baseline[2], baseline[3]))
    print("ratio agent / baseline: %.2f" % (agent_seconds / baseline[0]))


if __name__ == "__main__":
    main()
