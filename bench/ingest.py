"""Benchmark: ingest a synthetic report (300k file records, 2k packages) on SQLite and PostgreSQL.

Prints records per second and the ingesting process's peak RSS, against a baseline measured in the
same run: reading the same report with `read_report` alone (no database). Each ingestion runs in a
fresh process so that its peak RSS is its own; running two report sizes shows whether RSS stays flat.
The report parser process that an ingestion starts (server/report_rows.py) is measured on its own.

    .venv/bin/python bench/ingest.py [--files 300000] [--packages 2000] [--postgres URL]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from machinescan.report import ReportWriter, read_report


def write_report(path: Path, files: int, packages: int) -> None:
    with open(path, "wb") as out, ReportWriter(out, compresslevel=1) as writer:
        writer.header({"agent": {"name": "bench", "version": "0"},
                       "scan": {"started": "2026-01-01T00:00:00Z", "root": "/", "overlay": False},
                       "host": {"hostname": "bench", "machine": "x86_64"},
                       "distribution": {"id": "debian", "version": "12", "arch": "amd64"}})
        for number in range(packages):
            writer.package({"manager": "dpkg", "name": f"pkg{number}", "key": f"pkg{number}",
                            "version": "1.0-1", "arch": "amd64", "epoch": None, "status": "installed"})
        changes = ("unchanged",) * 17 + ("added", "modified", "deleted")
        for number in range(files):
            change = changes[number % len(changes)]
            writer.file({"path": f"/usr/share/d{number // 200}/sub{number % 7}/file-{number}.txt", "kind": "file",
                         "mode": "0644", "uid": 0, "gid": 0, "owner": "root", "group": "root", "size": number % 9000,
                         "mtime": 1700000000 + number, "nlink": 1, "sha256": f"{number:064x}",
                         "packages": [] if change == "added" else [f"pkg{number % packages}"], "change": change,
                         "changed": ["digest"] if change == "modified" else None,
                         "in_overlay": change in ("added", "modified")})
        writer.close(1.0)


def baseline_read(path: Path) -> float:
    started = time.perf_counter()
    with open(path, "rb") as report:
        for _ in read_report(report):
            pass
    return time.perf_counter() - started


def worker(database_url: str, report: Path) -> None:
    """In a fresh process: store the report as a scan's blob, run the ingestion job, print the figures."""
    from machinescan.server.api.deps import Services
    from machinescan.server.auth import add_user
    from machinescan.server.blobs import open_blob_store
    from machinescan.server.db.engine import Database, migrate
    from machinescan.server.db.models import Scan, ScannedInstance
    from machinescan.server.jobs import enqueue, run_job
    from machinescan.server.jobs.ingest import INGEST_REPORT
    from machinescan.server.settings import Settings

    data_dir = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    database = Database(database_url)
    migrate(database.engine)
    services = Services(Settings(data_dir=data_dir), database, open_blob_store(f"file://{data_dir}/blobs"))
    with database.session() as session:
        user = add_user(session, f"bench-{uuid.uuid4().hex[:8]}", "x")
        instance = ScannedInstance(user_id=user.id, name="bench")
        session.add(instance)
        session.flush()
        scan = Scan(instance_id=instance.id, blob_prefix=f"scans/{uuid.uuid4().hex}/",
                    report_size=report.stat().st_size, scanned=True)
        session.add(scan)
        session.flush()
        job = enqueue(session, INGEST_REPORT, scan.id)
        job_id, scan_id, key = job.id, scan.id, scan.report_blob
    with services.blobs.writer(key) as writer, open(report, "rb") as source:
        while block := source.read(1 << 20):
            writer.write(block)
        writer.commit()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    run_job(services, job_id)
    elapsed = time.perf_counter() - started
    with database.session() as session:
        scan = session.get(Scan, scan_id)
        ok = scan.validated and not scan.error
        error = scan.error_message
    print(json.dumps({"seconds": elapsed, "ok": ok, "error": error, "rss_before_kb": rss_before,
                      "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))


def parser_peak_rss_mb(report: Path) -> float:
    """VmHWM of the parser process: its getrusage figure would count the parent's memory from before exec."""
    parse = ("import runpy, sys; sys.argv = ['report_rows', '1']; "
             "runpy.run_module('machinescan.server.report_rows', run_name='__main__'); "
             "print(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')), file=sys.stderr)")
    with open(report, "rb") as source:
        status = subprocess.run([sys.executable, "-c", parse], stdin=source, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, check=True, text=True).stderr
    return int(status.split()[1]) / 1024


def measure(database_url: str, report: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--worker", database_url, str(report)], check=True,
                            capture_output=True, text=True).stdout
    return json.loads(output.splitlines()[-1])


def postgres_schema(base_url: str) -> str:
    from sqlalchemy import create_engine, text

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base_url)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{base_url}{'&' if '?' in base_url else '?'}options=-csearch_path%3D{schema}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300_000)
    parser.add_argument("--packages", type=int, default=2_000)
    parser.add_argument("--postgres", default=os.environ.get("MACHINESCAN_TEST_POSTGRES_URL"),
                        help="PostgreSQL URL (default: MACHINESCAN_TEST_POSTGRES_URL; skipped when unset)")
    parser.add_argument("--worker", nargs=2, metavar=("DATABASE_URL", "REPORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    scratch = Path(tempfile.mkdtemp(prefix="ingest-bench-"))
    sizes = (args.files // 3, args.files)
    reports = {}
    for files in sizes:
        reports[files] = scratch / f"report-{files}.jsonl.gz"
        write_report(reports[files], files, args.packages)
    records = args.files + args.packages
    base = baseline_read(reports[args.files])
    print(f"report: {args.files} files + {args.packages} packages, {reports[args.files].stat().st_size / 1e6:.1f} MB")
    print(f"baseline read_report only: {records / base:,.0f} records/s ({base:.2f} s)")
    backends = [("sqlite", lambda: f"sqlite:///{scratch / uuid.uuid4().hex}.sqlite")]
    if args.postgres:
        backends.append(("postgresql", lambda: postgres_schema(args.postgres)))
    parser_peaks = [parser_peak_rss_mb(reports[files]) for files in sizes]
    print(f"parser process peak RSS: {parser_peaks[0]:.0f} MB at {sizes[0]} files, "
          f"{parser_peaks[1]:.0f} MB at {sizes[1]} files")
    for name, make_url in backends:
        peaks = []
        for files in sizes:
            result = measure(make_url(), reports[files])
            if not result["ok"]:
                sys.exit(f"{name}: ingestion failed: {result['error']}")
            peaks.append(result["peak_rss_kb"] / 1024)
            rate = (files + args.packages) / result["seconds"]
            print(f"{name:10} {files:>8} files: {rate:>9,.0f} records/s ({result['seconds']:.2f} s), "
                  f"{rate * base / records:.2f}x of baseline, peak RSS {peaks[-1]:.0f} MB")
        print(f"{name:10} peak RSS ratio {sizes[1]} vs {sizes[0]} files: {peaks[1] / peaks[0]:.2f} "
              f"(1.00 = flat in report size)")


if __name__ == "__main__":
    main()
