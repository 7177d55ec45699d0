"""Shadow mode: a candidate evaluated on every live decision after it is answered, stored apart, compared by
`audit shadow-report`; the live answers are the same with and without it."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.cli.main import main
from cds.governance.replay import replay
from cds.governance.report import ReplayReport
from cds.governance.shadow import ShadowEvaluator, wait_until_caught_up
from cds.governance.shadow_report import shadow_report
from cds.pipeline import Pipeline
from cds.service.app import create_app
from cds.service.config import ServiceConfig
from tests.conftest import examples_clock
from tests.governance.conftest import candidate
from tests.governance.test_replay import CML_TARGET_600
from tests.robustness.conftest import ServerProcess, examples, service_path
from tests.service.conftest import service_for


def post_examples(client: Any, prefix: str) -> list[tuple[int, dict[str, Any]]]:
    answers = []
    for i, body in enumerate(examples()):
        body = dict(body, hookInstance=f"{prefix}-{i:02d}")
        response = client.post(service_for(body), json=body)
        answers.append((response.status_code, response.json()))
    return answers


def test_shadow_advice_is_what_replay_gives_and_resumes_after_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    store = AuditStore(url)
    store.append("decision", "before-shadowing", "imatinib-patient-view", {"status": "ok"})
    shadow = Pipeline(candidate(tmp_path, CML_TARGET_600))
    evaluator = ShadowEvaluator(store, shadow)
    assert evaluator.after == 1  # a new candidate starts with the decisions that come next
    config = ServiceConfig(database_url=url, link_secret_file=tmp_path / "secret")
    with TestClient(create_app(config, audit=store, clock=examples_clock)) as client:
        answered = sum(status == 200 for status, _ in post_examples(client, "live"))
        assert evaluator.catch_up() == answered
        report = shadow_report(store)
        assert report["candidate"]["digest"] == shadow.rule_set.digest
        replayed = ReplayReport(shadow.rule_set)
        for result in replay(store, shadow):
            if result.hook_instance != "before-shadowing":
                replayed.add(result)
        assert (report["decisions"], report["disagreements"]) == (replayed.decisions, replayed.changed)
        assert report["by_rule"] == {
            rule: {"live": n["fired_before"], "shadow": n["fired_after"]}
            for rule, n in replayed.summary()["by_rule"].items()
        }
        replayed.close()
        # the CML trough of 607 ng/mL is below a target of 1000 and on a target of 600
        assert any(
            "IMA-TROUGH-020" in e["live"]["fired"] and "IMA-TROUGH-020" not in e["shadow"]["fired"]
            for e in report["examples"]
        )
        # restarted, it resumes where it stopped: only the decision made since is evaluated
        resumed = ShadowEvaluator(store, shadow)
        assert resumed.after == evaluator.after
        body = dict(examples()[0], hookInstance="after-restart")
        assert client.post(service_for(body), json=body).status_code == 200
        assert resumed.catch_up() == 1
    assert shadow_report(store)["decisions"] == report["decisions"] + 1
    store.dispose()


def test_shadow_report_cli_json_and_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    store = AuditStore(url)
    assert main(["audit", "shadow-report", "--db", url]) == 1  # no shadow run yet: an error, not zeros
    assert "no shadow evaluations" in capsys.readouterr().err
    evaluator = ShadowEvaluator(store, Pipeline(candidate(tmp_path, CML_TARGET_600)))
    config = ServiceConfig(database_url=url, link_secret_file=tmp_path / "secret")
    with TestClient(create_app(config, audit=store, clock=examples_clock)) as client:
        post_examples(client, "live")
    evaluator.catch_up()
    store.dispose()
    assert main(["audit", "shadow-report", "--db", url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {"decisions", "disagreements", "by_rule", "examples"}
    assert report["disagreements"] == len(report["examples"]) > 0
    assert main(["audit", "shadow-report", "--db", url]) == 0
    text = capsys.readouterr().out
    assert f"{report['disagreements']} advised differently" in text and "IMA-TROUGH-020" in text


def test_a_candidate_failing_rules_check_is_refused_at_start_up_with_the_linters_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMATINIB_CDS_DATABASE_URL", f"sqlite:///{tmp_path}/audit.sqlite3")
    broken = candidate(tmp_path, {"policy.yaml": [("value: 1000 ng/mL", "value: 600 ng/mL")]})  # tests not moved
    assert main(["serve", "--shadow-rules", str(broken)]) == 1
    err = capsys.readouterr().err
    assert "E010 IMA-TROUGH-020" in err and "fails `rules check`" in err


def test_serve_with_shadow_rules_answers_exactly_as_without(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two real servers at the same time, one shadowing a candidate: the same answers (links carry their own
    signed token); the shadow server's candidate advice is in its log afterwards, and agrees with replay."""
    rules = candidate(tmp_path, CML_TARGET_600)
    live, shadowed = (tmp_path / "live", tmp_path / "shadowed")
    live.mkdir(), shadowed.mkdir()
    servers = [
        ServerProcess(live, f"sqlite:///{live}/audit.sqlite3"),
        ServerProcess(shadowed, f"sqlite:///{shadowed}/audit.sqlite3", extra_args=("--shadow-rules", str(rules))),
    ]
    try:
        for server in servers:
            server.start()
        with httpx.Client(timeout=30) as client:
            for server in servers:
                server.wait_healthy(client)
            for i, body in enumerate(examples()):
                body = dict(body, hookInstance=f"same-{i:02d}")
                a, b = (client.post(s.base + service_path(body["hook"]), json=body) for s in servers)
                assert a.status_code == b.status_code == 200
                assert without_links(a.json()) == without_links(b.json())
        store = AuditStore(servers[1].database_url, create=False)
        digest = Pipeline(rules).rule_set.digest
        assert wait_until_caught_up(store, digest, timeout_s=60), servers[1].log()[-2000:]
        store.dispose()
    finally:
        for server in servers:
            server.stop()
    evaluator = re.search(r"shadow evaluator started as process (\d+)", servers[1].log())
    assert evaluator is not None and stopped(int(evaluator.group(1)), within_s=5)  # no evaluator left behind
    assert main(["audit", "shadow-report", "--db", servers[1].database_url, "--json"]) == 0
    shadow = json.loads(capsys.readouterr().out)
    assert main(["audit", "replay", "--db", servers[1].database_url, "--rules", str(rules), "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)
    assert shadow["decisions"] == replayed["decisions"] == len(examples())
    assert shadow["disagreements"] == replayed["changed"]


def stopped(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def without_links(response: dict[str, Any]) -> dict[str, Any]:
    return {"cards": [{k: v for k, v in card.items() if k != "links"} for card in response["cards"]]}


def test_two_evaluators_of_one_candidate_write_each_decision_once(tmp_path: Path) -> None:
    """Two hosts each started with --shadow-rules on one database: no error, one row per decision."""
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    store = AuditStore(url)
    shadow = Pipeline(candidate(tmp_path, CML_TARGET_600))
    first, second = ShadowEvaluator(store, shadow), ShadowEvaluator(store, shadow)
    config = ServiceConfig(database_url=url, link_secret_file=tmp_path / "secret")
    with TestClient(create_app(config, audit=store, clock=examples_clock)) as client:
        answered = sum(status == 200 for status, _ in post_examples(client, "live"))
    assert first.catch_up() == second.catch_up() == answered  # the second found the rows written: no error
    assert shadow_report(store)["decisions"] == answered
    assert ShadowEvaluator(store, shadow).after == first.after  # progress never moved back
    store.dispose()
