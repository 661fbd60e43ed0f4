"""Overlay upload throughput: our server vs the Node tus reference server vs `dd`, on the same disk, in one run.

    .venv/bin/python bench/upload.py                 # 1 GiB in 8 MiB chunks
    .venv/bin/python bench/upload.py --size 4G       # the RSS goal is stated for 4 GiB
    .venv/bin/python bench/upload.py --size 256M --skip-tus

Uploads one random file in chunks over loopback to a fresh `machinescan serve` (SQLite, local blobs,
each chunk fsynced before its 201) and to `@tus/server` + `@tus/file-store` (installed with `npm install`
into the scratch folder), then writes the same number of bytes with `dd conv=fdatasync`. Prints MB/s of
each, the ratios, and our server's peak RSS (VmHWM) against its RSS before the upload. dd runs twice:
through the page cache, and with `oflag=direct`, which is how our local blob store writes (see
src/machinescan/server/blobs/local.py). tus acknowledges a PATCH without any fsync, so it does less.
Goals (measured, not asserted): >= 1.5x tus, >= 60 % of dd, RSS growth <= 64 MB for 4 GiB.
"""

import argparse
import hashlib
import http.client
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from pathlib import Path

MiB = 1024 * 1024
TUS_SERVER = """
import http from 'node:http';
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const [port, directory] = process.argv.slice(2);
const tus = new Server({ path: '/files', datastore: new FileStore({ directory }) });
http.createServer((req, res) => tus.handle(req, res)).listen(Number(port), '127.0.0.1', () => console.log('ready'));
"""


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(text)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


def make_source(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    with open(path, "wb") as out:
        remaining = size
        while remaining:
            block = os.urandom(min(8 * MiB, remaining))
            hasher.update(block)
            out.write(block)
            remaining -= len(block)
    return hasher.hexdigest()


def chunks(path: Path, chunk_size: int):
    with open(path, "rb") as source:
        first = 0
        while block := source.read(chunk_size):
            yield first, block
            first += len(block)


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


# ---------------------------------------------------------------- ours


def run_ours(scratch: Path, source: Path, size: int, chunk_size: int, digest: str) -> dict:
    from machinescan.server.auth import MIGRATION_ACCESS, add_user
    from machinescan.server.db.engine import Database, migrate

    data_dir = scratch / "machinescan"
    data_dir.mkdir()
    database_url = f"sqlite:///{data_dir / 'db.sqlite'}"
    database = Database(database_url)
    migrate(database.engine)
    password = uuid.uuid4().hex
    with database.session() as session:
        add_user(session, "bench", password, entitlements=(MIGRATION_ACCESS,))
    database.engine.dispose()
    port = free_port()
    log = open(data_dir / "server.log", "wb")
    server = subprocess.Popen([sys.executable, "-m", "machinescan.cli.main", "serve", "--data-dir", str(data_dir),
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                              env={**os.environ, "MACHINESCAN_DATABASE_URL": database_url,
                                   "MACHINESCAN_JOB_THREADS": "0"})
    try:
        wait_for_port(port, server)
        import base64

        auth = "Basic " + base64.b64encode(f"bench:{password}".encode()).decode()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        headers = {"Authorization": auth, "Accept": "application/json"}
        connection.request("POST", "/api/users/bench/scannedinstances", b'{"name": "bench"}',
                           {**headers, "Content-Type": "application/json"})
        siid = __import__("json").loads(_answer(connection, 201))["dbId"]
        report = b"bench report"
        connection.request("POST", f"/api/users/bench/scannedinstances/{siid}/scans?crc={zlib.crc32(report)}",
                           report, headers)
        sid = __import__("json").loads(_answer(connection, 201))["dbId"]
        url = f"/api/users/bench/scannedinstances/{siid}/scans/{sid}/overlay"
        rss_before = rss_kib(server.pid, "VmRSS")
        started = time.perf_counter()
        for first, block in chunks(source, chunk_size):
            query = f"?crc={zlib.crc32(block)}"
            if first + len(block) == size:
                query += f"&sha256={digest}"
            connection.request("POST", url + query, block, {
                **headers, "Content-Type": "application/octet-stream",
                "Content-Range": f"bytes {first}-{first + len(block) - 1}/{size}"})
            _answer(connection, 201)
        elapsed = time.perf_counter() - started
        peak = rss_kib(server.pid, "VmHWM")
        return {"seconds": elapsed, "rss_before_kib": rss_before, "peak_rss_kib": peak}
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answer(connection: http.client.HTTPConnection, expected: int) -> bytes:
    response = connection.getresponse()
    body = response.read()
    if response.status != expected:
        raise RuntimeError(f"HTTP {response.status}: {body[:500]!r}")
    return body


# ---------------------------------------------------------------- tus


def run_tus(scratch: Path, source: Path, size: int, chunk_size: int) -> dict:
    folder = scratch / "tus"
    (folder / "files").mkdir(parents=True)
    (folder / "package.json").write_text('{"name": "tus-bench", "private": true, "type": "module"}\n')
    subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--silent", "@tus/server", "@tus/file-store"],
                   cwd=folder, check=True)
    (folder / "server.mjs").write_text(TUS_SERVER)
    port = free_port()
    server = subprocess.Popen(["node", "server.mjs", str(port), str(folder / "files")], cwd=folder,
                              stdout=subprocess.DEVNULL)
    try:
        wait_for_port(port, server)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        tus = {"Tus-Resumable": "1.0.0"}
        connection.request("POST", "/files", b"", {**tus, "Upload-Length": str(size)})
        response = connection.getresponse()
        response.read()
        if response.status != 201:
            raise RuntimeError(f"tus creation answered {response.status}")
        location = response.getheader("Location")
        path = location.split("127.0.0.1", 1)[-1].split(f":{port}", 1)[-1] if "://" in location else location
        started = time.perf_counter()
        for first, block in chunks(source, chunk_size):
            connection.request("PATCH", path, block, {**tus, "Upload-Offset": str(first),
                                                      "Content-Type": "application/offset+octet-stream"})
            response = connection.getresponse()
            response.read()
            if response.status != 204:
                raise RuntimeError(f"tus PATCH answered {response.status}")
        return {"seconds": time.perf_counter() - started}
    finally:
        server.terminate()
        server.wait(timeout=30)


# ---------------------------------------------------------------- dd


def run_dd(scratch: Path, size: int, chunk_size: int, *flags: str) -> dict:
    target = scratch / "dd.bin"
    started = time.perf_counter()
    subprocess.run(["dd", "if=/dev/zero", f"of={target}", f"bs={chunk_size}", f"count={size // chunk_size}",
                    "conv=fdatasync", *flags], check=True, stderr=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    target.unlink()
    return {"seconds": elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="1G", help="bytes to upload (e.g. 256M, 1G, 4G; default 1G)")
    parser.add_argument("--chunk", default="8M", help="chunk size (default 8M, the agent's default)")
    parser.add_argument("--dir", help="scratch folder on the disk to measure (default: a temporary folder)")
    parser.add_argument("--skip-tus", action="store_true", help="do not install and run the tus server")
    args = parser.parse_args()
    size, chunk_size = parse_size(args.size), parse_size(args.chunk)
    scratch = Path(tempfile.mkdtemp(prefix="machinescan-bench-", dir=args.dir))
    try:
        print(f"scratch {scratch}; {size / MiB:.0f} MiB in {chunk_size / MiB:.0f} MiB chunks", flush=True)
        source = scratch / "source.bin"
        digest = make_source(source, size)
        ours = run_ours(scratch, source, size, chunk_size, digest)
        shutil.rmtree(scratch / "machinescan")
        tus = None if args.skip_tus else run_tus(scratch, source, size, chunk_size)
        if tus:
            shutil.rmtree(scratch / "tus" / "files")
        dd = run_dd(scratch, size, chunk_size)
        dd_direct = run_dd(scratch, size, chunk_size, "oflag=direct")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def rate(result):
        return size / result["seconds"] / 1e6

    print(f"machinescan  {rate(ours):8.1f} MB/s  ({ours['seconds']:.2f} s, fsync per chunk)")
    if tus:
        print(f"tus (node)   {rate(tus):8.1f} MB/s  ({tus['seconds']:.2f} s, @tus/file-store)")
    print(f"dd           {rate(dd):8.1f} MB/s  ({dd['seconds']:.2f} s, conv=fdatasync)")
    print(f"dd direct    {rate(dd_direct):8.1f} MB/s  ({dd_direct['seconds']:.2f} s, conv=fdatasync oflag=direct)")
    if tus:
        print(f"ours / tus   {rate(ours) / rate(tus):8.2f}x   (goal >= 1.5)")
    print(f"ours / dd    {rate(ours) / rate(dd):8.0%}    (goal >= 60 %)")
    print(f"ours / dd direct {rate(ours) / rate(dd_direct):4.0%}")
    growth = (ours["peak_rss_kib"] - ours["rss_before_kib"]) / 1024
    print(f"server RSS   {ours['rss_before_kib'] / 1024:.1f} MiB before, peak {ours['peak_rss_kib'] / 1024:.1f} MiB "
          f"(growth {growth:.1f} MiB; goal <= 64 MB for 4 GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
