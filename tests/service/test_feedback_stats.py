"""``imatinib-cds audit stats`` over decisions and feedback posted through the real service (issue 16 item 5):
exact figures per rule, per suggestion, per reason and per ISO week; ``--since``; the fatigue flag at its
boundary; an empty log; the JSON shape. SQLite, and PostgreSQL when IMATINIB_CDS_TEST_POSTGRES_URL is set."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cds.audit import AuditStore
from cds.audit.stats import FatigueRule, checked_threshold, collect_stats
from cds.cli.main import main
from cds.service.config import ConfigError, ServiceConfig, load_config
from tests.conftest import ROOT
from tests.service.feedback import (
    EXPECTED,
    TDM,
    TROUGH_LABEL,
    WEEK_49,
    AuditClock,
    accepted,
    answer,
    database_url,
    figures,
    overridden,
    pin_audit_clock,
    post_scenario,
    show,
)

TOP_LEVEL = {
    "since",
    "first_shown",
    "last_shown",
    "decisions",
    "cards_shown",
    "feedback_superseded",
    "feedback_unmatched",
    "cards_unattributed",
    "threshold",
    "min_shown",
    "rules",
}
PER_RULE = {
    "title",
    "shown",
    "accepted",
    "overridden",
    "no_feedback",
    "override_rate",
    "fatigue_candidate",
    "accepted_suggestions",
    "override_reasons",
    "weeks",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from database_url(request.param, tmp_path)


@pytest.fixture()
def config(tmp_path: Path, url: str) -> ServiceConfig:
    return ServiceConfig(database_url=url, link_secret_file=tmp_path / "secret")


@pytest.fixture()
def audit_clock(monkeypatch: pytest.MonkeyPatch) -> type[AuditClock]:
    return pin_audit_clock(monkeypatch)


def stats_json(url: str, capsys: pytest.CaptureFixture[str], *options: str) -> dict[str, Any]:
    assert main(["audit", "--db", url, "stats", "--json", *options]) == 0
    result: dict[str, Any] = json.loads(capsys.readouterr().out)
    return result


def test_figures_match_the_feedback_posted(
    client: TestClient, url: str, audit_clock: type[AuditClock], capsys: pytest.CaptureFixture[str]
) -> None:
    post_scenario(client, audit_clock)
    stats = stats_json(url, capsys)
    assert {k: {f: v for f, v in r.items() if f in EXPECTED[k]} for k, r in stats["rules"].items()} == EXPECTED
    assert stats["decisions"] == 8 and stats["cards_shown"] == 9  # the refused call is not a decision shown
    assert (stats["feedback_superseded"], stats["feedback_unmatched"], stats["cards_unattributed"]) == (1, 0, 0)
    renal = stats["rules"]["IMA-RENAL-020"]
    assert renal["title"].startswith("Moderate renal impairment") and renal["override_rate"] == round(1 / 6, 4)
    assert stats["first_shown"].startswith("2026-11-24T09:00") and stats["last_shown"].startswith("2026-12-01")


def test_the_table_shows_the_same_figures(
    client: TestClient, url: str, audit_clock: type[AuditClock], capsys: pytest.CaptureFixture[str]
) -> None:
    post_scenario(client, audit_clock)
    assert main(["audit", "--db", url, "stats", "--min-shown", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "Card feedback per rule: 8 decisions with status ok, shown 2026-11-24 09:00 to 2026-12-01 09:00 (UTC)"
    )
    assert "IMA-RENAL-020       6         3           1            2           17%" in out
    assert "IMA-TDMIND-007      2         0           2            0          100% !" in out
    assert "  overridden: (none) 1; (not offered) 1" in out
    assert "  2026-W48      3         2           1            0" in out
    assert out[-1] == "Feedback replaced by a later item on the same card (the latest counts): 1"


def test_since_counts_only_cards_shown_from_then_on(
    client: TestClient, url: str, audit_clock: type[AuditClock], capsys: pytest.CaptureFixture[str]
) -> None:
    post_scenario(client, audit_clock)
    stats = stats_json(url, capsys, "--since", "2026-11-30T00:00:00+00:00")
    assert stats["since"] == "2026-11-30T00:00:00+00:00" and stats["decisions"] == 5
    renal = stats["rules"]["IMA-RENAL-020"]
    assert {k: renal[k] for k in ("shown", "accepted", "overridden", "no_feedback")} == figures(3, 1, 0, 2)
    assert list(renal["weeks"]) == ["2026-W49"] and renal["override_reasons"] == {}
    # renal-1 was shown in week 48 and answered in week 49: its feedback has no card in the period
    assert stats["feedback_unmatched"] == 1
    assert stats_json(url, capsys, "--since", "2026-12-01T09:00:01Z")["rules"] == {}


def test_since_must_be_iso_8601_with_an_offset(url: str, audit: AuditStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", url, "stats", "--since", "last week"]) == 2
    assert capsys.readouterr().err == "imatinib-cds: invalid input: --since: not an ISO 8601 date-time: 'last week'\n"
    assert main(["audit", "--db", url, "stats", "--since", "2026-11-30T00:00:00"]) == 2
    assert "needs a UTC offset" in capsys.readouterr().err


def test_fatigue_flag_at_the_threshold_and_just_above(
    client: TestClient, url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = [show(client, TDM, f"tdm-{n}") for n in range(4)]
    cards = [s.card("monitoring") for s in shown]
    answer(client, shown[0], overridden(cards[0], "clinical-judgement"))
    answer(client, shown[1], overridden(cards[1], "patient-preference"))
    answer(client, shown[2], accepted(cards[2], TROUGH_LABEL))

    def flagged(*options: str) -> bool:
        return bool(stats_json(url, capsys, *options)["rules"]["IMA-TDMIND-007"]["fatigue_candidate"])

    assert stats_json(url, capsys)["rules"]["IMA-TDMIND-007"]["override_rate"] == 0.5
    assert not flagged("--fatigue-threshold", "0.5", "--min-shown", "4")  # 2/4 is at the threshold, not above
    assert flagged("--fatigue-threshold", "0.49", "--min-shown", "4")
    assert not flagged("--fatigue-threshold", "0.49", "--min-shown", "5")  # too few cards to judge
    assert not flagged()  # the defaults: 0.5 and 10 cards
    answer(client, shown[3], overridden(cards[3], "data-incorrect"))  # 3/4: just above
    assert flagged("--fatigue-threshold", "0.5", "--min-shown", "4")


def test_the_threshold_defaults_come_from_the_service_settings(
    client: TestClient, url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    shown = show(client, TDM, "tdm-0")
    answer(client, shown, overridden(shown.card("monitoring"), "clinical-judgement"))
    monkeypatch.setenv("IMATINIB_CDS_FATIGUE_MIN_SHOWN", "1")
    stats = stats_json(url, capsys)
    assert (stats["threshold"], stats["min_shown"]) == (0.5, 1)
    assert stats["rules"]["IMA-TDMIND-007"]["fatigue_candidate"]
    settings = tmp_path / "service.yaml"
    settings.write_text("fatigue_override_rate: 1.0\nfatigue_min_shown: 1\n", encoding="utf-8")
    monkeypatch.setenv("IMATINIB_CDS_CONFIG", str(settings))
    monkeypatch.delenv("IMATINIB_CDS_FATIGUE_MIN_SHOWN")
    assert stats_json(url, capsys)["threshold"] == 1.0  # nothing is above 100 %
    assert not stats_json(url, capsys)["rules"]["IMA-TDMIND-007"]["fatigue_candidate"]


@pytest.mark.parametrize(
    ("option", "value"),
    [("--fatigue-threshold", "1.5"), ("--fatigue-threshold", "nan"), ("--min-shown", "0"), ("--min-shown", "2.5")],
)
def test_bad_fatigue_options_are_one_line(
    url: str, audit: AuditStore, capsys: pytest.CaptureFixture[str], option: str, value: str
) -> None:
    assert main(["audit", "--db", url, "stats", option, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"imatinib-cds: invalid input: {option}: got '{value}', must be") and err.count("\n") == 1


def test_bad_fatigue_settings_stop_the_configuration() -> None:
    with pytest.raises(ConfigError, match="fatigue_override_rate: got 2.0, must be a number from 0 to 1"):
        load_config(env={"IMATINIB_CDS_FATIGUE_OVERRIDE_RATE": "2"})
    with pytest.raises(ConfigError, match="fatigue_min_shown: got 0"):
        load_config(env={"IMATINIB_CDS_FATIGUE_MIN_SHOWN": "0"})


def test_the_rate_is_compared_exactly() -> None:
    """57/100 is exactly 0.57, although 0.57 * 100 is 56.99999999999999 in floating point."""
    assert not FatigueRule(0.57, 100).flags(100, 57)
    assert FatigueRule(0.57, 100).flags(100, 58)
    assert not FatigueRule(checked_threshold("0.1"), 30).flags(30, 3) and FatigueRule(0.1, 30).flags(30, 4)


def test_an_empty_log_has_no_figures(url: str, audit: AuditStore, capsys: pytest.CaptureFixture[str]) -> None:
    stats = stats_json(url, capsys)
    assert set(stats) == TOP_LEVEL
    assert stats["rules"] == {} and stats["decisions"] == stats["cards_shown"] == 0
    assert stats["first_shown"] is None and stats["since"] is None
    assert main(["audit", "--db", url, "stats"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Card feedback per rule: 0 decisions with status ok",
        "No card was shown in this period.",
    ]


def test_no_log_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "--db", f"sqlite:///{tmp_path}/none.sqlite3", "stats"]) == 1
    assert capsys.readouterr().err.startswith("imatinib-cds: AuditLogMissing: no audit log at")
    assert not (tmp_path / "none.sqlite3").exists()


def test_json_shape(client: TestClient, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    shown = show(client, TDM, "tdm-0")
    answer(client, shown, accepted(shown.card("monitoring"), TROUGH_LABEL))
    stats = stats_json(url, capsys, "--since", "2026-01-01T00:00:00Z")
    assert set(stats) == TOP_LEVEL and set(stats["rules"]) == {"IMA-TDMIND-007"}
    rule = stats["rules"]["IMA-TDMIND-007"]
    assert set(rule) == PER_RULE
    assert rule["accepted_suggestions"] == {TROUGH_LABEL: 1} and rule["override_rate"] == 0.0
    (week,) = rule["weeks"].values()
    assert week == figures(1, 1, 0, 0)
    assert isinstance(stats["threshold"], float) and isinstance(stats["min_shown"], int)


def test_memory_holds_one_hook_instance_at_a_time(
    client: TestClient, audit: AuditStore, audit_clock: type[AuditClock]
) -> None:
    """A hookInstance reused for many calls (a misbehaving client) shows the same card uuids again: each new
    decision closes the earlier showing, so the cards held stay those of one decision."""
    for _ in range(5):
        shown = show(client, TDM, "reused")
    answer(client, shown, overridden(shown.card("monitoring"), "clinical-judgement"))
    stats = collect_stats(audit, FatigueRule())
    assert stats.rules["IMA-TDMIND-007"].total.shown == 5
    assert stats.rules["IMA-TDMIND-007"].total.overridden == 1  # feedback goes to the latest showing
    assert collect_stats(audit, FatigueRule(), since=WEEK_49).decisions == 0  # all were written in week 48


def test_the_window_of_entries(client: TestClient, audit: AuditStore) -> None:
    shown = [show(client, TDM, f"tdm-{n}") for n in range(3)]
    answer(client, shown[0], overridden(shown[0].card("monitoring"), "clinical-judgement"))
    last = audit.count()  # entries: 3 decisions, 1 feedback
    stats = collect_stats(audit, FatigueRule(), first_seq=last - 1)
    # the latest two entries: tdm-2's decision and the feedback on tdm-0, whose card is outside the window
    assert stats.decisions == 1 and stats.feedback_unmatched == 1
    assert stats.rules["IMA-TDMIND-007"].total.shown == 1


def test_the_pages_window_counts_as_the_whole_log_does(
    client: TestClient, audit: AuditStore, audit_clock: type[AuditClock]
) -> None:
    """Read in order within a window (the rule pages) or ordered by hookInstance (the CLI): the same figures."""
    post_scenario(client, audit_clock)
    for _ in range(2):  # a reused hookInstance, answered on its first and its latest showing
        shown = show(client, TDM, "reused")
        answer(client, shown, overridden(shown.card("monitoring"), "clinical-judgement"))
    whole = collect_stats(audit, FatigueRule(0.5, 2))
    window = collect_stats(audit, FatigueRule(0.5, 2), first_seq=1)
    assert whole.as_json() == window.as_json()
    assert whole.rules["IMA-TDMIND-007"].total.shown == 4 and whole.feedback_unmatched == 0


def docs_block(heading: str) -> list[str]:
    """The lines of the docs/deploy.md example whose command line starts with ``heading``."""
    text = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    block = text.split(heading, 1)[1].split("```", 1)[0]
    return block.splitlines()[1:]


def test_the_documented_output_is_real(
    client: TestClient, url: str, audit_clock: type[AuditClock], capsys: pytest.CaptureFixture[str]
) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("the documented output is SQLite's")
    post_scenario(client, audit_clock)
    assert main(["audit", "--db", url, "stats", "--min-shown", "2"]) == 0
    table = capsys.readouterr().out.splitlines()
    documented = docs_block("$ imatinib-cds audit --db sqlite:///var/audit.sqlite3 stats --min-shown 2")
    first, rest = documented[: documented.index("...")], documented[documented.index("...") + 1 :]
    assert table[: len(first)] == first and table[-len(rest) :] == rest
    documented = docs_block("$ imatinib-cds audit --db sqlite:///var/audit.sqlite3 stats --json --since")
    stats = stats_json(url, capsys, "--since", "2026-11-30T00:00:00Z")
    stats["rules"] = {"IMA-TDMIND-007": stats["rules"]["IMA-TDMIND-007"]}
    assert json.loads("\n".join(documented)) == stats
