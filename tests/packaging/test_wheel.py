"""The wheel works anywhere (issue 17): built from the sources, installed into a fresh virtual environment and run
from an empty folder, it finds its own rule pack, evaluates a request and serves.

The wheel is built offline with the build backend of the development environment (``--no-build-isolation``).
The fresh environment gets the wheel alone (``--no-deps``); the dependencies come from the development
environment's site-packages through a .pth line, which adds the folder but none of its .pth files, so the
checkout's editable install stays out and ``cds`` is the wheel's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from cds import __version__
from cds.engine.ruleset import load_rules
from tests.conftest import ROOT, RULES
from tests.robustness.conftest import ServerProcess
from tests.service.metrics import Samples, samples

EXAMPLE = ROOT / "fhir_examples" / "order-sign-new-start-moderate-renal.json"
SOURCES = ("pyproject.toml", "README.md", "cds", "rules")


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path  # empty when the tests start: nothing of the checkout around
    env: dict[str, str]

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "imatinib-cds"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.command), *args], cwd=self.workdir, env=self.env, capture_output=True, text=True, timeout=120
        )


def _pip(*args: str, cwd: Path | None = None) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _clean_env(tmp: Path) -> dict[str, str]:
    """This environment without anything that points at the checkout or at a configured service."""
    drop = ("PYTHONPATH", "VIRTUAL_ENV", "PROMETHEUS_MULTIPROC_DIR")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("IMATINIB_CDS_")}
    return dict(env, TMPDIR=str(tmp))


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    source.mkdir()
    for name in SOURCES:  # a copy: the build writes build/ and *.egg-info next to the sources
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, source / name)
    _pip("wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet", "-w", str(base / "dist"), str(source))
    (wheel,) = (base / "dist").glob("imatinib_cds-*.whl")

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    (target,) = (venv / "lib").glob("python3.*/site-packages")
    (target / "dev-dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    _pip("--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index", "--quiet", str(wheel))
    workdir = base / "empty"
    workdir.mkdir()
    (base / "tmp").mkdir()
    return Installed(wheel, venv, workdir, _clean_env(base / "tmp"))


def test_the_wheel_holds_the_rule_pack_and_no_examples(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    pack = {str(p.relative_to(RULES)) for p in RULES.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert pack and {f"cds/rulepack/{name}" for name in pack} <= names, "all of rules/ ships as cds/rulepack"
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "cds").rglob("__init__.py")}
    missing = sorted(p for p in packages if f"{p}/__init__.py" not in names)
    assert not missing, f"add {missing} to [tool.setuptools] packages in pyproject.toml"
    assert "cds/py.typed" in names and "cds/web/static/web.css" in names
    assert not [n for n in names if n.startswith(("fhir_examples/", "tests/", "bench/", "docs/"))]


def test_cds_is_imported_from_the_wheel(installed: Installed) -> None:
    python = installed.venv / "bin" / "python"
    code = "import cds; print(cds.__file__); print(cds.shipped_rules())"
    out = subprocess.run(
        [str(python), "-c", code], cwd=installed.workdir, env=installed.env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert Path(out[0]).is_relative_to(installed.venv), out
    assert Path(out[1]) == Path(out[0]).parent / "rulepack"


def test_version_names_the_package_and_the_shipped_pack(installed: Installed) -> None:
    done = installed.run("--version")
    assert done.returncode == 0, done.stderr
    rule_set = load_rules(RULES)
    lines = done.stdout.splitlines()
    assert lines[0] == f"imatinib-cds {__version__}"
    assert Path(lines[1].removeprefix("rule pack ")).is_relative_to(installed.venv)
    assert lines[2:4] == [f"  version {rule_set.version}", f"  digest {rule_set.digest}"]


def test_rules_check_and_test_run_on_the_shipped_pack(installed: Installed) -> None:
    check = installed.run("rules", "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.splitlines()[-1].startswith("0 error(s), 0 warning(s);")
    test = installed.run("rules", "test")
    assert test.returncode == 0, test.stdout + test.stderr
    # the cases that name a fhir_examples request are skipped and say why; every other case passes
    requests = sum(1 for rule in load_rules(RULES).rules for t in rule.tests if t.request is not None)
    summary = test.stdout.splitlines()[-1]
    assert re.fullmatch(rf"(\d+) cases ran: \1 passed, 0 failed; {requests} skipped: .*", summary), summary
    assert test.stdout.count("\nskip  ") == requests and "ship with the repository" in test.stdout


def test_evaluate_answers_as_the_checkout_does(installed: Installed) -> None:
    done = installed.run("evaluate", str(EXAMPLE), "--now", "2026-11-25T12:00:00Z")
    assert done.returncode == 0, done.stderr
    from cds.pipeline import EXAMPLES_EVALUATION_TIME, Pipeline

    expected = Pipeline().run(EXAMPLE.read_bytes(), now=EXAMPLES_EVALUATION_TIME).response
    assert json.loads(done.stdout) == json.loads(json.dumps(expected, default=str))


@pytest.fixture(scope="module")
def server(installed: Installed) -> Iterator[ServerProcess]:
    """``serve`` from the empty folder: two workers (metrics from both), JSON log lines, the default SQLite path."""
    process = ServerProcess(
        installed.workdir,
        "sqlite:///var/audit.sqlite3",
        workers=2,
        program=(str(installed.command),),
        options=("--log-format", "json"),
        env=installed.env,
    )
    process.start()
    try:
        with httpx.Client() as client:
            process.wait_healthy(client)
        _wait_for_workers(process, 2)
        yield process
    finally:
        process.stop()


def _wait_for_workers(process: ServerProcess, workers: int, timeout_s: float = 60) -> None:
    """/health answers as soon as one worker is up; each worker writes its rule set series once it has loaded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(_live_workers(samples(httpx.get(process.base + "/metrics", timeout=10).text))) == workers:
            return
        time.sleep(0.2)
    raise AssertionError(f"not {workers} workers up: " + process.log()[-3000:])


def _live_workers(metrics: Samples) -> set[str]:
    return {s.labels["pid"] for s in metrics.of("imatinib_cds_ruleset_info") if s.value == 1}


def test_serve_answers_discovery_and_a_hook_call(server: ServerProcess, installed: Installed) -> None:
    discovery = httpx.get(server.base + "/cds-services", timeout=10)
    assert discovery.status_code == 200
    assert {s["id"] for s in discovery.json()["services"]} == {
        "imatinib-order-sign",
        "imatinib-order-select",
        "imatinib-patient-view",
    }
    body = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    answer = httpx.post(server.base + "/cds-services/imatinib-order-sign", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["cards"]  # dated 2026-11-25: a renal dose card, or later one asking for a new creatinine
    assert (installed.workdir / "var" / "audit.sqlite3").is_file()


def test_metrics_add_up_over_the_workers(server: ServerProcess) -> None:
    body = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    url = server.base + "/cds-services/imatinib-order-sign"
    before = samples(httpx.get(server.base + "/metrics", timeout=10).text)
    for i in range(6):  # fresh connections: the kernel spreads them over the workers
        assert httpx.post(url, json=dict(body, hookInstance=f"wheel-{i}"), timeout=30).status_code == 200
    after = samples(httpx.get(server.base + "/metrics", timeout=10).text)
    calls = {"endpoint": "/cds-services/{service_id}", "service": "imatinib-order-sign", "status": "200"}
    # whichever worker answered the scrape, the counts are those of both
    assert (
        after.value("imatinib_cds_requests_total", **calls) == before.value("imatinib_cds_requests_total", **calls) + 6
    )
    assert len(_live_workers(after)) == 2, "one rule set series per live worker"


def test_log_lines_are_json_without_credentials(server: ServerProcess) -> None:
    token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    httpx.get(server.base + "/cds-services", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    body = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    httpx.post(server.base + "/cds-services/imatinib-order-sign", json=dict(body, hookInstance="logged"), timeout=30)
    stopped = server.log()
    lines = [json.loads(line) for line in stopped.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "event"} <= set(line) for line in lines)
    decision = [line for line in lines if line["event"] == "decision" and line.get("hookInstance") == "logged"]
    assert decision and decision[0]["service"] == "imatinib-order-sign" and decision[0]["status"] == 200
    assert "duration_ms" in decision[0]
    assert token not in stopped and "Huang" not in stopped  # nor the prescriber named in the request
