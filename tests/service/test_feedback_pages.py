"""The feedback figures on the public rule pages (issue 16 item 5): ``/rules`` shows each rule's counts and fatigue
flag, ``/rules/{rule_id}`` its weekly trend; request text never reaches them unescaped, free-text comments not
at all; an empty log shows zeros; the figures are cached for a short time over a bounded window of entries."""

from __future__ import annotations

import base64
import re
import struct
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.audit.stats import FatigueRule
from cds.service.app import create_app
from cds.service.config import ServiceConfig
from cds.web.feedback import FeedbackFigures
from tests.conftest import examples_clock
from tests.hostile import HOSTILE
from tests.service.feedback import (
    HOSTILE_CODE,
    HOSTILE_COMMENT,
    TDM,
    AuditClock,
    answer,
    overridden,
    pin_audit_clock,
    post_scenario,
    show,
)

DATA_PNG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)" alt="([^"]*)"')


@pytest.fixture()
def config(tmp_path: Path) -> ServiceConfig:
    """Figures recomputed on every request, and flagged from two cards shown."""
    return ServiceConfig(
        database_url=f"sqlite:///{tmp_path}/audit.sqlite3",
        link_secret_file=tmp_path / "secret",
        feedback_stats_cache_s=0.0,
        fatigue_min_shown=2,
    )


@pytest.fixture()
def audit_clock(monkeypatch: pytest.MonkeyPatch) -> type[AuditClock]:
    return pin_audit_clock(monkeypatch)


def index_row(html: str, rule_id: str) -> list[str]:
    """The cells of a rule's row in the catalogue index, tags removed."""
    row = re.search(rf'<tr><td><a href="#{rule_id}">.*?</tr>', html)
    assert row is not None, rule_id
    return [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row.group(0))]


def png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_catalogue_shows_each_rules_figures(client: TestClient, audit_clock: type[AuditClock]) -> None:
    post_scenario(client, audit_clock)
    html = client.get("/rules").text
    # rule, title, status, version, tests, then shown, accepted, overridden, no feedback
    assert index_row(html, "IMA-RENAL-020")[5:] == ["6", "3", "1", "2"]
    assert index_row(html, "IMA-RENAL-060")[5:] == ["1", "0", "1", "0"]
    assert index_row(html, "IMA-TDMIND-007")[5:] == ["2", "0", "2 !", "0"]  # 100 % overridden, 2 shown
    assert index_row(html, "IMA-CYP-010")[5:] == ["0", "0", "0", "0"]
    assert '<a href="/rules/IMA-RENAL-020" title="feedback and weekly trend of IMA-RENAL-020">6</a>' in html
    article = html.split('<article class="rule" id="IMA-TDMIND-007">')[1].split("</article>")[0]
    assert (
        "shown 2, accepted 0, overridden 2, no feedback 0 (overridden 100%): <strong>alert-fatigue candidate</strong>"
        in article
    )
    assert '<a href="/rules/IMA-TDMIND-007">feedback and weekly trend</a>' in article
    assert "cards shown from 2026-11-24 to 2026-12-01 (UTC) by 8 decisions" in html
    assert "overridden on more than 50% of its cards, with at least 2 shown" in html


def test_a_rules_page_plots_its_weekly_trend(client: TestClient, audit_clock: type[AuditClock]) -> None:
    post_scenario(client, audit_clock)
    response = client.get("/rules/IMA-RENAL-020")
    assert response.status_code == 200
    html = response.text
    match = DATA_PNG.search(html)
    assert match is not None
    assert png_size(base64.b64decode(match.group(1))) == (750, 340)
    assert match.group(2).startswith("Weekly trend of IMA-RENAL-020 over 2 ISO weeks from 2026-W48 to 2026-W49")
    weeks = re.findall(r"<tr><td>(2026-W\d\d)</td>((?:<td class=\"num\">\d+</td>)+)</tr>", html)
    assert [(w, re.findall(r"\d+", cells)) for w, cells in weeks] == [
        ("2026-W48", ["3", "2", "1", "0"]),
        ("2026-W49", ["3", "1", "0", "2"]),
    ]
    assert "<dt>Shown</dt><dd>6</dd>" in html and "<dt>No feedback</dt><dd>2</dd>" in html
    assert "<dt>Alert-fatigue candidate</dt><dd>no " in html and 'id="fatigue"' not in html
    assert '<td>Change to 200 mg once daily: 2 x 100 mg tablets</td><td class="num">2</td>' in html
    reason = "<td>Clinical judgement: advice does not apply to this patient</td><td><code>clinical-judgement</code>"
    assert reason in html


def test_a_flagged_rule_says_so(client: TestClient, audit_clock: type[AuditClock]) -> None:
    post_scenario(client, audit_clock)
    html = client.get("/rules/IMA-TDMIND-007").text
    assert 'id="fatigue">Alert-fatigue candidate: overridden on 100% of its 2 cards' in html
    assert '<td>No reason given</td><td><code>(none)</code></td><td class="num">1</td>' in html
    assert "<td>A reason the card did not offer</td><td><code>(not offered)</code></td>" in html


def test_request_text_never_reaches_the_pages(client: TestClient, audit_clock: type[AuditClock]) -> None:
    """Comments are free text (maybe about the patient) on a public page: not shown, not even escaped. A reason
    code the card did not offer is counted as "(not offered)", never echoed."""
    post_scenario(client, audit_clock)
    shown = [show(client, TDM, f"hostile-{n}") for n in range(len(HOSTILE))]
    for decision, text in zip(shown, HOSTILE, strict=True):
        answer(client, decision, overridden(decision.card("monitoring"), text, text, system=text))
    pages = [client.get(path).text for path in ("/rules", "/rules/IMA-TDMIND-007", "/rules/IMA-RENAL-020")]
    for html in pages:
        for text in (HOSTILE_COMMENT, HOSTILE_CODE, "Jane Doe", "alert(1)", "evil.example", "STOP IMATINIB"):
            assert text not in html
        assert "&lt;script" not in html and "&lt;img" not in html


@pytest.mark.parametrize(
    ("rule_id", "shown"),
    [
        ('"><script>alert(1)', "&#34;&gt;&lt;script&gt;alert(1)"),
        ("<img src=x onerror=alert(1)>", "&lt;img src=x onerror=alert(1)&gt;"),
        ("IMA-NOPE-001", "IMA-NOPE-001"),
    ],
)
def test_an_unknown_rule_id_is_a_plain_404_with_the_id_escaped(client: TestClient, rule_id: str, shown: str) -> None:
    response = client.get("/rules/" + quote(rule_id, safe=""))
    assert response.status_code == 404
    assert "<h1>No such rule</h1>" in response.text
    assert f"<p>No rule {shown} is loaded or counted in the audit log.</p>" in response.text
    assert "<script" not in response.text and "<img" not in response.text


def test_an_empty_log_shows_zeros_and_no_plot(client: TestClient) -> None:
    html = client.get("/rules").text
    assert "Feedback figures: no card has been shown yet." in html
    assert index_row(html, "IMA-RENAL-020")[5:] == ["0", "0", "0", "0"]
    assert "alert-fatigue candidate" not in html
    page = client.get("/rules/IMA-RENAL-020")
    assert page.status_code == 200
    assert "<img" not in page.text and 'id="no-trend"' in page.text
    assert "No card has been shown yet." in page.text and "<dt>Shown</dt><dd>0</dd>" in page.text


def test_the_catalogue_stays_up_when_the_log_cannot_be_read(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    figures = client.app.state.service.feedback_figures  # type: ignore[attr-defined]

    def broken() -> None:
        raise OSError("database is down")

    monkeypatch.setattr(figures, "current", broken)
    response = client.get("/rules")
    assert response.status_code == 200 and "Feedback figures are not available right now" in response.text
    assert '<article class="rule" id="IMA-RENAL-020">' in response.text
    assert '<th scope="col">Shown</th>' not in response.text
    assert client.get("/rules/IMA-RENAL-020").status_code == 503
    assert "feedback figures not computed" in caplog.text


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_figures_are_reused_for_the_cache_period(client: TestClient, audit: AuditStore) -> None:
    clock = Ticks()
    figures = FeedbackFigures(audit, FatigueRule(), entries=1000, ttl_s=60.0, clock=clock)
    first = figures.current()
    show(client, TDM, "tdm-1")
    clock.now = 59.9
    assert figures.current() is first and first.decisions == 0
    clock.now = 60.0
    assert figures.current().decisions == 1


def test_figures_cover_the_latest_entries_only(client: TestClient, audit: AuditStore) -> None:
    for n in range(3):
        show(client, TDM, f"tdm-{n}")
    figures = FeedbackFigures(audit, FatigueRule(), entries=2, ttl_s=0.0)
    assert figures.current().decisions == 2
    assert figures.current().rules["IMA-TDMIND-007"].total.shown == 2


def test_the_page_window_is_a_setting(tmp_path: Path) -> None:
    config = ServiceConfig(
        database_url=f"sqlite:///{tmp_path}/audit.sqlite3",
        link_secret_file=tmp_path / "secret",
        feedback_stats_entries=2,
        fatigue_override_rate=0.25,
    )
    audit = AuditStore(config.database_url)
    try:
        with TestClient(create_app(config, audit=audit, clock=examples_clock)) as client:
            for n in range(3):
                show(client, TDM, f"tdm-{n}")
            html = client.get("/rules").text
            assert index_row(html, "IMA-TDMIND-007")[5] == "2"
            assert "overridden on more than 25% of its cards, with at least 10 shown" in html
    finally:
        audit.dispose()
