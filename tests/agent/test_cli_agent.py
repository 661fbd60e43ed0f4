"""The agent's command line and its zipapp, run as a user would (subprocesses)."""

import gzip
import json
import os
import subprocess
import sys

import pytest

from machinescan.agent import build
from machinescan.agent.cli import build_parser, size_argument

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PYTHON36 = "/root/.pyenv/versions/3.6.15/bin/python3.6"


def run_agent(args, python=sys.executable, module=True):
    command = [python, "-m", "machinescan.agent"] + args if module else [python] + args
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=120)


def small_root(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("box\n")
    (root / "opt").mkdir()
    (root / "opt" / "app.bin").write_bytes(os.urandom(10000))
    return root


def report_records(path):
    with gzip.open(str(path), "rt", encoding="utf-8") as report:
        return [json.loads(line) for line in report]


def test_uforge_scan_flags_are_understood():
    args = build_parser().parse_args(["-u", "bob", "-p", "pw", "-U", "http://h/api", "-n", "web1", "-o",
                                      "-e", "/srv", "-e", "/data", "-t", "/var/work", "-P"])
    assert (args.user, args.password, args.url, args.name, args.overlay) == ("bob", "pw", "http://h/api",
                                                                              "web1", True)
    assert args.excludes == ["/srv", "/data"] and args.work_dir == "/var/work" and args.probe
    args = build_parser().parse_args(["-a", "KEY", "-s", "SECRET", "--output", "d"])
    assert (args.api_key, args.secret) == ("KEY", "SECRET")


def test_size_arguments():
    assert size_argument("8M") == 8 * 1024 ** 2
    assert size_argument("4GiB") == 4 * 1024 ** 3
    assert size_argument("1000") == 1000


def test_help_teaches_with_examples():
    result = run_agent(["--help"])
    assert result.returncode == 0
    assert b"examples:" in result.stdout and b"--output" in result.stdout and b"-e PATH" in result.stdout


def test_upload_needs_user_and_credentials():
    for flags, expected in ((["-U", "http://server/api"], b"-U needs the user: -u USER"),
                            (["-U", "http://server/api", "-u", "bob"], b"-U needs credentials"),
                            (["-P"], b"-P checks a server: give its URL with -U URL"),
                            ([], b"nothing to do: give --output DIR")):
        result = run_agent(flags)
        assert result.returncode == 2 and expected in result.stderr, (flags, result.stderr)


def test_unreachable_server_is_an_error_naming_it_and_leaves_no_work_files(tmp_path):
    root = small_root(tmp_path)
    work = tmp_path / "work"
    # Port 9 on loopback (discard) is closed: the connection is refused at once.
    result = run_agent(["-U", "http://127.0.0.1:9/api", "-u", "bob", "-p", "pw", "--root", str(root),
                        "-t", str(work), "--quiet"])
    assert result.returncode == 1
    assert b"cannot reach http://127.0.0.1:9/api" in result.stderr
    assert os.listdir(str(work)) == []


def test_probe_of_an_unreachable_server_fails_clearly():
    result = run_agent(["-U", "http://127.0.0.1:9/api", "-u", "bob", "-p", "pw", "-P"])
    assert result.returncode == 1 and b"cannot reach" in result.stderr


def test_output_writes_report_and_overlay(tmp_path):
    root = small_root(tmp_path)
    out = tmp_path / "out"
    result = run_agent(["--root", str(root), "--output", str(out), "-o", "-e", "/etc/hostname"])
    assert result.returncode == 0, result.stderr
    assert b"entries" in result.stderr  # the closing progress line
    records = report_records(out / "report.jsonl.gz")
    assert records[0]["type"] == "header" and records[-1]["complete"] is True
    listing = subprocess.check_output(["tar", "-tzf", str(out / "overlay.tar.gz")]).split()
    assert b"opt/app.bin" in listing and b"etc/hostname" not in listing


def test_quiet_prints_nothing(tmp_path):
    root = small_root(tmp_path)
    result = run_agent(["--root", str(root), "--output", str(tmp_path / "out"), "--quiet"])
    assert result.returncode == 0 and result.stderr == b""


def test_bad_root_is_an_error_naming_it(tmp_path):
    result = run_agent(["--root", str(tmp_path / "missing"), "--output", str(tmp_path / "out")])
    assert result.returncode == 2 and b"missing is not a directory" in result.stderr


@pytest.fixture(scope="module")
def zipapp_path(tmp_path_factory):
    return build.build(str(tmp_path_factory.mktemp("dist") / "machinescan-agent.pyz"))


def test_zipapp_holds_only_the_agent_and_the_report_format(zipapp_path):
    import zipfile
    with open(zipapp_path, "rb") as handle:
        assert handle.readline() == b"#!/usr/bin/env python3\n"
    names = zipfile.ZipFile(zipapp_path).namelist()
    assert "machinescan/__init__.py" in names and "machinescan/agent/cli.py" in names
    assert "machinescan/report/writer.py" in names and "__main__.py" in names
    assert not any(name.startswith("machinescan/server") or "__pycache__" in name for name in names)


@pytest.mark.skipif(not os.path.exists(PYTHON36), reason="Python 3.6 not installed at " + PYTHON36)
def test_zipapp_runs_on_python_3_6(zipapp_path, tmp_path):
    help_result = subprocess.run([PYTHON36, zipapp_path, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert help_result.returncode == 0, help_result.stderr
    assert b"examples:" in help_result.stdout
    root = small_root(tmp_path)
    out = tmp_path / "out36"
    scan = subprocess.run([PYTHON36, zipapp_path, "--root", str(root), "--output", str(out), "-o", "--quiet"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert scan.returncode == 0, scan.stderr
    records = report_records(out / "report.jsonl.gz")
    paths = [r["path"] for r in records if r["type"] == "file"]
    assert "/opt/app.bin" in paths and records[-1]["complete"] is True
    extracted = tmp_path / "x"
    extracted.mkdir()
    subprocess.check_call(["tar", "-xzf", str(out / "overlay.tar.gz"), "-C", str(extracted)])
    assert (extracted / "opt" / "app.bin").read_bytes() == (root / "opt" / "app.bin").read_bytes()


def test_agent_sources_pass_vermin_for_python_3_6():
    vermin = os.path.join(os.path.dirname(sys.executable), "vermin")
    if not os.path.exists(vermin):
        pytest.skip("vermin is not installed in this environment")
    sources = [os.path.join(SRC, "machinescan", "agent"), os.path.join(SRC, "machinescan", "report")]
    result = subprocess.run([vermin, "--target=3.6-", "--no-tips", "--violations"] + sources,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


class FakeTerminal(object):
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_rewrites_one_line_on_a_tty():
    from machinescan.agent.cli import Progress
    terminal = FakeTerminal(tty=True)
    progress = Progress(terminal, interval=0)
    counts = {"entries": 1000, "bytes_read": 5 * 10 ** 6, "in_overlay": 3, "errors": 1}
    progress.tick(counts)
    progress.tick(counts)
    progress.finish(counts)
    assert terminal.text.count("\r") == 2 and terminal.text.endswith("\n")
    assert "1000 entries, 5.0 MB read" in terminal.text and "1 errors" in terminal.text


def test_progress_prints_plain_lines_when_not_a_tty():
    from machinescan.agent.cli import Progress
    log = FakeTerminal(tty=False)
    progress = Progress(log, interval=3600)
    counts = {"entries": 1, "bytes_read": 0, "in_overlay": 0, "errors": 0}
    progress.tick(counts)
    progress.finish(counts)
    assert "\r" not in log.text and log.text.count("\n") == 1
