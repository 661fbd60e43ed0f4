"""The agent and the report format run on Python 3.6: checked by vermin, and by running them under 3.6."""

import os
import subprocess
import sys
import textwrap

import pytest

SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
PYTHON36 = "/root/.pyenv/versions/3.6.15/bin/python3.6"
RUN_VERMIN = "import sys; from vermin import main; sys.exit(main())"  # vermin has no __main__ module

SMOKE = textwrap.dedent("""
    import io, json, sys
    from machinescan.report import ReportWriter, read_report, decode_path
    from machinescan.agent.packages import open_package_databases
    from machinescan.agent import osinfo

    output = io.BytesIO()
    writer = ReportWriter(output)
    writer.header({"agent": {"name": "smoke", "version": "0"}, "scan": {"root": "/"}})
    writer.file({"path": b"/srv/caf\\xe9", "kind": "file", "change": "added"})
    writer.close(0.5)
    records = [record for _, record in read_report(io.BytesIO(output.getvalue()))]
    assert decode_path(records[1]["path"]) == b"/srv/caf\\xe9", records

    found = {}
    for root in sys.argv[1:]:
        for database in open_package_databases(root):
            found[database.manager] = sorted(
                [package["key"] for package in database.packages()] +
                [owned.path.decode() for owned in database.owned_paths()])
    json.dumps([osinfo.distribution("/"), osinfo.host_info("/"), osinfo.install_profile("/")])
    print(json.dumps(found, sort_keys=True))
""")


def test_vermin_finds_nothing_newer_than_python_36():
    result = subprocess.run(
        [sys.executable, "-c", RUN_VERMIN, "--target=3.6-", "--no-tips", "--violations",
         os.path.join(SOURCE, "machinescan", "report"), os.path.join(SOURCE, "machinescan", "agent")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    output = result.stdout.decode("utf-8", "replace")
    if "No module named" in output and "vermin" in output:
        pytest.skip("vermin is not installed (pip install -e '.[test]')")
    assert result.returncode == 0, output


@pytest.mark.skipif(not os.path.exists(PYTHON36), reason="no Python 3.6 at %s (pyenv install 3.6.15)" % PYTHON36)
def test_report_packages_and_osinfo_run_under_python_36(dpkg_root, builders, tmp_path):
    dpkg_root.install(builders.DebPackage("smoke", "1.0", files={"/usr/bin/smoke": b"smoke"}).build(tmp_path))
    apk_root = tmp_path / "alpine"
    os.makedirs(str(apk_root / "lib/apk/db"))
    (apk_root / "lib/apk/db/installed").write_bytes(b"P:musl\nV:1.2.4-r2\nA:x86_64\nF:lib\nR:libc.so\n\n")
    result = subprocess.run([PYTHON36, "-c", SMOKE, dpkg_root.path, str(apk_root)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=SOURCE, PYTHONDONTWRITEBYTECODE="1"))
    assert result.returncode == 0, result.stderr.decode("utf-8", "replace")
    assert result.stdout.decode().strip() == (
        '{"apk": ["/lib", "/lib/libc.so", "musl"], "dpkg": ["/usr", "/usr/bin", "/usr/bin/smoke", "smoke"]}')
