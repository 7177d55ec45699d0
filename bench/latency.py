"""End-to-end latency benchmark: the real server (uvicorn, 1 and 2 workers) under the fhir_examples mix.

Starts ``imatinib-cds serve --workers N`` on 127.0.0.1 with a fresh SQLite audit log (or the PostgreSQL URL
given with --database), warms it up, then replays the fhir_examples requests (with their prefetch, each with
a fresh hookInstance) at concurrency 1, 8 and 32 for a fixed number of requests per level, and prints
p50/p95/p99 latency, throughput and the RSS of each worker. The client is a minimal asyncio HTTP/1.1 client
with keep-alive connections (one per concurrent caller) so that it takes as little of the two cores as
possible. Every response must be a 200; the audit chain is verified at the end.

    .venv/bin/python bench/latency.py                       # 1 and 2 workers, c = 1, 8, 32, 600 requests each
    .venv/bin/python bench/latency.py --workers 1 --concurrency 8 --requests 2000
    .venv/bin/python bench/latency.py --workers 1 --memory 100000   # RSS every 10,000 requests

Asserts nothing about the figures; exits non-zero if a response was not a 200 or the chain does not verify.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from redated import EXAMPLES, load_mix  # bench/redated.py: the examples moved to today

ROOT = Path(__file__).resolve().parent.parent


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def calibration_ms() -> float:
    """A fixed pure-Python workload, best of five: this virtual machine's speed drifts by half from one minute
    to the next, and every figure here moves with it; print this next to them."""
    best = math.inf
    for _ in range(5):
        started = time.perf_counter()
        sum(i * i for i in range(300_000))
        best = min(best, time.perf_counter() - started)
    return best * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem_kb / 1024 / 1024:.1f} GiB RAM, {platform.system()} "
        f"{platform.release()}, Python {platform.python_version()}"
    )


# --- the server ---------------------------------------------------------------------------------------------


@dataclass
class Server:
    base: str
    port: int
    process: subprocess.Popen[bytes]
    database_url: str
    log: Path

    def worker_pids(self) -> list[int]:
        """uvicorn runs one worker in its own process; with --workers N the workers are its children. A shadow
        evaluator (--shadow-rules) is a child too, named in the server's log: not a worker."""
        children = _children(self.process.pid)
        grandchildren = [g for c in children for g in _children(c)]
        workers = [p for p in children + grandchildren if _is_worker(p) and p != self.shadow_pid()]
        return workers or [self.process.pid]

    def shadow_pid(self) -> int | None:
        found = re.search(r"shadow evaluator started as process (\d+)", self.log.read_text(errors="replace"))
        return int(found.group(1)) if found else None


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return found


def _is_worker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"spawn_main" in cmdline  # uvicorn's workers; not multiprocessing's resource tracker


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the workers have used (their threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def running_server(
    workers: int, database_url: str | None, workdir: Path, shadow_rules: Path | None = None
) -> Iterator[Server]:
    port = free_port()
    url = database_url or f"sqlite:///{workdir}/audit-{workers}w-{port}.sqlite3"
    env = dict(
        os.environ,
        IMATINIB_CDS_PORT=str(port),
        IMATINIB_CDS_DATABASE_URL=url,
        IMATINIB_CDS_LINK_SECRET_FILE=str(workdir / "link-secret"),
        IMATINIB_CDS_PUBLIC_URL=f"http://127.0.0.1:{port}",
    )
    log = (workdir / f"server-{port}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cds.cli.main", "serve", "--workers", str(workers)]
        + (["--shadow-rules", str(shadow_rules)] if shadow_rules else []),
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", port, process, url, workdir / f"server-{port}.log")
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit("the server exited: " + (workdir / f"server-{port}.log").read_text()[-3000:])
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise SystemExit("the server did not start")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


# --- the client ---------------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; just enough of the protocol for this server's JSON answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


def request_bytes(body: dict[str, Any], hook_instance: str) -> bytes:
    return json.dumps(dict(body, hookInstance=hook_instance), separators=(",", ":")).encode()


@dataclass
class Run:
    concurrency: int
    latencies_ms: list[float]
    wall_s: float
    failures: list[tuple[int, bytes]]
    answered: list[str]  # hookInstances answered with 200

    def line(self) -> str:
        lat = self.latencies_ms
        return (
            f"c={self.concurrency:<3d} n={len(lat):<6d} p50 {percentile(lat, 0.50):7.1f} ms  "
            f"p95 {percentile(lat, 0.95):7.1f} ms  p99 {percentile(lat, 0.99):7.1f} ms  "
            f"max {max(lat):7.1f} ms  {len(lat) / self.wall_s:6.1f} req/s"
            + (f"  FAILURES {len(self.failures)}" if self.failures else "")
        )


async def load(port: int, mix: list[tuple[str, dict[str, Any]]], concurrency: int, total: int) -> Run:
    """``total`` requests from ``concurrency`` callers, each sending its next request when the last is answered."""
    next_index = 0
    latencies: list[float] = []
    failures: list[tuple[int, bytes]] = []
    answered: list[str] = []

    async def caller() -> None:
        nonlocal next_index
        connection = await Connection.open(port)
        try:
            while next_index < total:
                i = next_index
                next_index += 1
                path, body = mix[i % len(mix)]
                hook_instance = str(uuid.uuid4())
                payload = request_bytes(body, hook_instance)
                started = time.perf_counter()
                status, answer = await connection.request("POST", path, payload)
                latencies.append((time.perf_counter() - started) * 1000)
                if status == 200:
                    answered.append(hook_instance)
                else:
                    failures.append((status, answer[:300]))
        finally:
            await connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return Run(concurrency, latencies, time.perf_counter() - started, failures, answered)


# --- main ---------------------------------------------------------------------------------------------------


def bench_workers(args: argparse.Namespace, workers: int, workdir: Path, shadow: Path | None = None) -> bool:
    mix = load_mix()
    ok = True
    with running_server(workers, args.database, workdir, shadow) as server:
        pids = server.worker_pids()
        warm = asyncio.run(load(server.port, mix, max(2, workers * 2), len(mix) * 4 * workers))
        ok &= not warm.failures
        rss_start = {p: rss_mib(p) for p in pids}
        mode = f", shadowing {shadow.name}" if shadow else ""
        print(f"\n{workers} worker(s){mode}, pids {pids}, RSS after warm-up " + _rss(rss_start))
        for concurrency in args.concurrency:
            speed = calibration_ms()
            before = cpu_s(pids)
            run = asyncio.run(load(server.port, mix, concurrency, args.requests))
            cpu_ms = (cpu_s(pids) - before) * 1000 / max(1, len(run.latencies_ms))
            print(f"  {run.line()}  server CPU {cpu_ms:5.1f} ms/req  (calibration {speed:.1f} ms)")
            for status, answer in run.failures[:3]:
                print(f"    {status}: {answer!r}")
            ok &= not run.failures
        print(f"  RSS after the runs {_rss({p: rss_mib(p) for p in pids})}")
        if args.memory:
            ok &= memory_run(server, mix, args.memory, pids)
        ok &= verify_chain(server.database_url)
        if shadow:
            print(
                f"  shadow evaluation caught up {shadow_lag_s(server.database_url, shadow):.1f} s after the last answer"
            )
    return ok


def shadow_lag_s(database_url: str, rules: Path) -> float:
    from cds.audit import AuditStore
    from cds.engine.ruleset import load_rules
    from cds.governance.shadow import wait_until_caught_up

    store, started = AuditStore(database_url, create=False), time.perf_counter()
    try:
        if not wait_until_caught_up(store, load_rules(rules).digest, timeout_s=300):
            print("  shadow evaluation did not catch up within 300 s")
    finally:
        store.dispose()
    return time.perf_counter() - started


def memory_run(server: Server, mix: list[tuple[str, dict[str, Any]]], total: int, pids: list[int]) -> bool:
    step = max(1, min(5_000, total // 10))
    print(f"  memory: {total} requests at concurrency 8, RSS (MiB) per worker every {step}")
    done, ok, started = 0, True, time.perf_counter()
    while done < total:
        run = asyncio.run(load(server.port, mix, 8, min(step, total - done)))
        done += len(run.latencies_ms)
        ok &= not run.failures
        print(
            f"    after {done:>7d}: {_rss({p: rss_mib(p) for p in pids})}  "
            f"(p99 of the last {len(run.latencies_ms)}: {percentile(run.latencies_ms, 0.99):.1f} ms, "
            f"{(time.perf_counter() - started) / 60:.1f} min)",
            flush=True,
        )
    return ok


def verify_chain(url: str) -> bool:
    from cds.audit import AuditStore

    store = AuditStore(url)
    try:
        report = store.verify()
    finally:
        store.dispose()
    print(f"  audit chain: {report.entries} entries, " + ("verifies" if report.ok else f"BROKEN: {report.reason}"))
    return report.ok


def _rss(by_pid: dict[int, float]) -> str:
    return ", ".join(f"{pid}: {mib:.1f} MiB" for pid, mib in by_pid.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=600, help="requests per concurrency level")
    parser.add_argument("--memory", type=int, default=0, help="then this many more requests, printing RSS")
    parser.add_argument("--database", help="audit database URL (default: a fresh SQLite file per server)")
    parser.add_argument(
        "--shadow-rules",
        type=Path,
        help="also run each server shadowing these rules, alternately with a plain one, --rounds times",
    )
    parser.add_argument("--rounds", type=int, default=3, help="plain/shadow pairs with --shadow-rules")
    args = parser.parse_args()

    print(f"machine: {machine()}")
    print(f"mix: {len(EXAMPLES)} fhir_examples requests with prefetch, round robin, a fresh hookInstance each")
    ok = True
    with tempfile.TemporaryDirectory(prefix="cds-bench-") as tmp:
        for workers in args.workers:
            for shadow in [None, args.shadow_rules] * args.rounds if args.shadow_rules else [None]:
                ok &= bench_workers(args, workers, Path(tmp), shadow)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
