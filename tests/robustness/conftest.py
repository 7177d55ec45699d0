"""Shared by the robustness tests: the examples, a real server process, and what every answer must satisfy."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from cds.cards.schema import response_schema
from tests.conftest import ROOT

EXAMPLES = sorted((ROOT / "fhir_examples").glob("*.json"))
SERVICES = {
    "order-sign": "imatinib-order-sign",
    "order-select": "imatinib-order-select",
    "patient-view": "imatinib-patient-view",
}
_RESPONSE = Draft202012Validator(response_schema())


def examples() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in EXAMPLES]


def service_path(hook: str) -> str:
    return f"/cds-services/{SERVICES[hook]}"


def answer_problem(status: int, content: bytes) -> str | None:
    """What is wrong with an answer, or None: never 5xx; every 4xx an OperationOutcome; every 200 valid."""
    if status >= 500:
        return f"server error {status}: {content[:500]!r}"
    try:
        body = json.loads(content) if content else None
    except ValueError:
        return f"{status} with a body that is not JSON: {content[:200]!r}"
    if 400 <= status < 500:
        if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome" or not body.get("issue"):
            return f"{status} without an OperationOutcome: {content[:300]!r}"
    if status == 200 and isinstance(body, dict) and "cards" in body:
        errors = [e.message for e in _RESPONSE.iter_errors(body)]
        if errors:
            return f"200 with a response that breaks the CDS Hooks schema: {errors[:3]}"
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """``imatinib-cds serve`` in a subprocess on loopback; started and stopped (or killed) by the test."""

    workdir: Path
    database_url: str
    workers: int = 1
    config_file: Path | None = None
    public_url: str | None = None  # what clients put in the JWT audience; behind a proxy, shared by all
    extra_args: tuple[str, ...] = ()  # more `serve` options
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    program: tuple[str, ...] = (sys.executable, "-m", "cds.cli.main")  # or an installed `imatinib-cds`
    options: tuple[str, ...] = ()  # more `serve` options
    env: Mapping[str, str] | None = None  # the environment to start from (default: this process's)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> None:
        env = dict(
            os.environ if self.env is None else self.env,
            IMATINIB_CDS_PORT=str(self.port),
            IMATINIB_CDS_DATABASE_URL=self.database_url,
            IMATINIB_CDS_LINK_SECRET_FILE=str(self.workdir / "link-secret"),
            IMATINIB_CDS_PUBLIC_URL=self.public_url or self.base,
        )
        command = [*self.program, "serve", "--workers", str(self.workers), *self.options]
        if self.config_file is not None:
            command += ["--config", str(self.config_file)]
        command += self.extra_args
        log = (self.workdir / f"server-{self.port}.log").open("ab")
        self.process = subprocess.Popen(command, env=env, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited {self.process.returncode}: {self.log()[-3000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError("the server did not start: " + self.log()[-3000:])

    def wait_healthy(self, client: httpx.Client, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if client.get(self.base + "/health", timeout=5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the server never became healthy: " + self.log()[-3000:])

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush; what was committed is all that remains."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def log(self) -> str:
        path = self.workdir / f"server-{self.port}.log"
        return path.read_text(errors="replace") if path.exists() else ""
