"""The explanation page over HTTP (TestClient): content, tokens, 403/404, the plot image, old records."""

from __future__ import annotations

import re
import time
from html import unescape
from typing import Any

import pytest

from cds.engine.ruleset import RuleSet
from cds.web.links import LinkSigner, load_secret
from tests.web.conftest import Site
from tests.web.helpers import WITH_PK, WITHOUT_PK, patient_identifiers

LOW = "patient-view-low-trough-cml.json"


def text_of(html: str) -> str:
    """Visible text, roughly: tags dropped, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_low_trough_page_shows_cards_rules_facts_dose_pk_and_audit(site: Site, rule_set: RuleSet) -> None:
    decision = site.decisions[LOW]
    response = site.client.get(decision.link)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html, text = response.text, text_of(response.text)
    for card in decision.response["cards"]:
        assert card["summary"].replace("'", "&#39;") in html
    # a fired rule: id, title, version, evidence link, the facts it used with FHIR source and date
    assert "IMA-TROUGH-050" in text and "CML chronic phase below target - consider 400 to 600 mg" in text
    assert (
        'href="https://dailymed.nlm.nih.gov/dailymed/drugInfo.cfm?setid=211ef2da-2868-4a77-8055-1cb2cd78e24b"' in html
    )
    assert f"Rule set trough version {rule_set.rule('IMA-TROUGH-050').ruleset_version}" in text
    row = re.search(r"<tr><td><code>level\.conc</code></td>(.*?)</tr>", html, re.S)
    assert row is not None
    assert "620 ng/mL" in row.group(1) and "Observation/lvl-1" in row.group(1)
    assert "2026-11-20T19:30:00+00:00" in row.group(1)
    assert "derived by the rules" in text  # tdm.trough
    # dose composition
    assert "Change to 600 mg every 24 h (600 mg/day)." in text
    assert "set to 600 mg/day (IMA-TROUGH-050)" in text
    # PK: method, model citation, dose table with interval and probability
    assert "Bayesian MAP fit" in text and "imatinib-widmer2006" in text
    assert "Widmer N, Decosterd LA" in text
    assert re.search(r"400 mg every 24 h \(400 mg/day\)</td><td>639 ng/mL \(369-894\)</td><td>2%</td>", html)
    assert re.search(r"<tr class=\"proposed\"><td>600 mg every 24 h", html)
    # audit: digest and chain position
    entry = site.audit.decision(decision.hook_instance)
    assert entry is not None
    assert entry["payload"]["ruleset"]["digest"] in html
    assert f"entry {entry['seq']} of" in text and entry["entry_hash"] in html and entry["prev_hash"] in html


def test_headings_are_in_order_and_the_plot_has_alt_text(site: Site) -> None:
    html = site.client.get(site.decisions[LOW].link).text
    levels = [int(h) for h in re.findall(r"<h([1-6])[\s>]", html)]
    assert levels[0] == 1 and levels.count(1) == 1
    assert all(b <= a + 1 for a, b in zip(levels, levels[1:], strict=False)), levels
    img = re.search(r'<img src="([^"]+)" alt="([^"]+)"', html)
    assert img is not None
    assert img.group(1).startswith(f"/explain/{site.decisions[LOW].hook_instance}/plot.png?token=")
    assert "target line at 1000 ng/mL" in img.group(2) and "measured level 620 ng/mL" in img.group(2)
    assert '<th scope="col">Probability of target</th>' in html


def test_pages_are_self_contained_and_do_not_leak_the_token(site: Site) -> None:
    response = site.client.get(site.decisions[LOW].link)
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    html = response.text
    assert '<meta name="referrer" content="no-referrer">' in html
    assert "<link" not in html and "<script" not in html and "@import" not in html and "@font-face" not in html
    for src in re.findall(r'src="([^"]+)"', html):
        assert src.startswith("/explain/")


@pytest.mark.parametrize("name", WITH_PK)
def test_the_plot_image_is_served_behind_the_token(site: Site, name: str) -> None:
    html = site.client.get(site.decisions[name].link).text
    src = re.search(r'<img src="([^"]+)"', html)
    assert src is not None
    image = site.client.get(src.group(1).replace("&amp;", "&"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n") and len(image.content) > 20_000
    assert image.headers["cache-control"] == "no-store"
    bare = src.group(1).split("?")[0]
    assert site.client.get(bare).status_code == 403


def test_a_decision_without_pk_says_so_and_has_no_plot(site: Site) -> None:
    decision = site.decisions[WITHOUT_PK]
    html = site.client.get(decision.link).text
    assert "No PK estimate was made for this decision" in html
    assert "<img" not in html
    path, query = decision.link.split("?")
    assert site.client.get(f"{path}/plot.png?{query}").status_code == 404


def secret_of(site: Site) -> bytes:
    return load_secret(site.config.link_secret_file)


def refused(site: Site, path: str, decision_text: str) -> None:
    response = site.client.get(path)
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("text/html")
    assert "invalid or has expired" in response.text
    assert decision_text not in response.text and "IMA-" not in response.text and "<img" not in response.text


def test_missing_altered_expired_or_foreign_tokens_are_refused(site: Site) -> None:
    decision = site.decisions[LOW]
    summary = decision.response["cards"][0]["summary"][:30]
    path, query = decision.link.split("?")
    token = query.removeprefix("token=")
    expires, mac = token.split(".")
    refused(site, path, summary)
    refused(site, f"{path}?token=", summary)
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    refused(site, f"{path}?token={expires}.{flipped}", summary)
    refused(site, f"{path}?token={int(expires) + 3600}.{mac}", summary)  # a later expiry breaks the MAC
    past = LinkSigner(secret_of(site), 60, clock=lambda: time.time() - 3600).token(decision.hook_instance)
    refused(site, f"{path}?token={past}", summary)
    other = site.decisions[WITH_PK[1]]
    refused(site, f"{path}?{other.link.split('?')[1]}", summary)
    refused(site, f"{path}/plot.png?token={past}", summary)
    wrong_key = LinkSigner(b"another-secret", 3600).token(decision.hook_instance)
    refused(site, f"{path}?token={wrong_key}", summary)


def test_an_unknown_hook_instance_is_404_with_no_data(site: Site) -> None:
    hook_instance = "00000000-0000-4000-8000-000000000000"
    token = LinkSigner(secret_of(site), 600).token(hook_instance)
    for path in (f"/explain/{hook_instance}", f"/explain/{hook_instance}/plot.png"):
        response = site.client.get(f"{path}?token={token}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "No decision is recorded" in response.text and "IMA-" not in response.text


def test_no_patient_identifier_in_links_or_logs(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    name = WITH_PK[2]
    body = site.decisions[name].request
    response = site.client.post(f"/cds-services/imatinib-{body['hook']}", json=body)
    links = [link["url"] for card in response.json()["cards"] for link in card.get("links") or []]
    html = site.client.get(site.decisions[name].link).text
    srcs = re.findall(r'src="([^"]+)"', html)
    for image in srcs:
        site.client.get(image.replace("&amp;", "&"))
    ids = patient_identifiers(body)
    assert ids
    for identifier in ids:
        for url in [*links, site.decisions[name].link, *srcs]:
            assert identifier not in url
        assert identifier not in caplog.text


def test_each_request_has_one_access_line_without_its_query_string(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="cds.access")
    link = site.decisions[WITH_PK[0]].link
    path, token = link.split("?token=")
    assert site.client.get(link).status_code == 200
    assert site.client.get("/no-such-page").status_code == 404
    lines = [r.getMessage() for r in caplog.records if r.name == "cds.access"]
    assert [line.rsplit(" ", 2)[0] for line in lines] == [f"GET {path} 200", "GET /no-such-page 404"]
    assert token not in caplog.text


def record(site: Site, hook_instance: str, payload: dict[str, Any]) -> str:
    site.audit.append("decision", hook_instance, "imatinib-patient-view", payload)
    return f"/explain/{hook_instance}?token={LinkSigner(secret_of(site), 600).token(hook_instance)}"


def stored_payload(site: Site, name: str) -> dict[str, Any]:
    entry = site.audit.decision(site.decisions[name].hook_instance)
    assert entry is not None
    payload: dict[str, Any] = entry["payload"]
    return payload


def test_a_record_from_before_pk_inputs_were_kept_renders_without_a_plot(site: Site) -> None:
    payload = stored_payload(site, LOW)
    payload["pk"]["inputs"] = {}
    html = site.client.get(record(site, "old-decision-1", payload)).text
    assert "PK inputs of this decision were not recorded" in html and "<img" not in html
    assert "639 ng/mL (369-894)" in html  # the recorded dose table is still shown


def dose_rows(html: str) -> dict[str, str]:
    """Dose table: regimen -> predicted trough cell."""
    return dict(re.findall(r"<tr[^>]*><td>([^<]+)</td><td>([^<]+)</td><td>", html))


def test_the_headline_and_the_current_row_show_one_named_estimate(site: Site) -> None:
    for name in WITH_PK:
        html = site.client.get(site.decisions[name].link).text
        payload = stored_payload(site, name)
        pk, facts = payload["pk"], payload["facts"]
        headline = re.search(r"<dt>Predicted steady-state trough at the current regimen</dt><dd>([^<]+)</dd>", html)
        assert headline is not None, name
        trough = f"{pk['cmin_pred']:.0f} ng/mL"
        band = f"({pk['cmin_p05']:.0f}-{pk['cmin_p95']:.0f})"
        expected_name = {"map": "individual estimate (MAP)", "apriori": "typical-patient estimate (a priori)"}
        assert headline.group(1) == f"{trough} (90% interval {band[1:-1]}): {expected_name[pk['method']]}", name
        current = re.search(r'<tr class="current"><td>[^<]+</td><td>([^<]+)</td>', html) or re.search(
            r'<tr class="proposed"><td>[^<]+</td><td>([^<]+)</td><td>[^<]+</td><td>current regimen', html
        )
        assert current is not None, name
        assert current.group(1) == f"{trough} {band}", name  # the same number, beside the same interval
        assert f"Predicted trough, {expected_name[pk['method']]} (90% interval)" in html
        assert int(facts["regimen.daily_mg"]) and "median" not in text_of(html).lower()


def test_a_record_whose_rows_lack_the_point_estimate_gets_it_again(site: Site) -> None:
    """Rows recorded before they carried ``cmin_pred``: re-run from the inputs, else scaled on the same interval."""
    payload = stored_payload(site, LOW)
    now = dose_rows(site.client.get(site.decisions[LOW].link).text)
    for row in payload["pk"]["dose_table"]:
        del row["cmin_pred"]
    assert dose_rows(site.client.get(record(site, "old-decision-rows", payload)).text) == now
    payload["pk"]["inputs"] = {}
    scaled = dose_rows(site.client.get(record(site, "old-decision-rows-2", payload)).text)
    assert scaled["400 mg every 24 h (400 mg/day)"] == now["400 mg every 24 h (400 mg/day)"]
    assert scaled["600 mg every 24 h (600 mg/day)"].split()[0] == f"{1.5 * payload['pk']['cmin_pred']:.0f}"
    assert scaled["400 mg every 12 h (800 mg/day)"].startswith("- ng/mL")  # another interval: not derivable


def test_rules_changed_since_the_decision_are_flagged(site: Site, rule_set: RuleSet) -> None:
    payload = stored_payload(site, LOW)
    carded = next(f for f in payload["fired"] if f.get("evidence"))
    recorded = carded["evidence"][0]["citation"]
    for fired in payload["fired"]:
        fired["version"] = "0.9.0"
    payload["fired"].append({"rule": "IMA-GONE-001", "version": "0.1.0", "ruleset": "gone", "facts_used": {}})
    text = text_of(site.client.get(record(site, "old-decision-2", payload)).text)
    # a rule that made a card records the evidence it cited: shown as it was, whatever the rule says now
    assert recorded in text
    # a decision recorded before evidence was (one card per rule): title and evidence from the card it made
    for fired in payload["fired"]:
        fired.pop("evidence", None)
        fired.pop("topic", None)
    payload["cards"][0]["source"]["topic"]["code"] = carded["rule"]
    payload["cards"][0]["source"]["url"] = "https://www.accessdata.fda.gov/drugsatfda_docs/label/2020/021588s057lbl.pdf"
    older = text_of(site.client.get(record(site, "old-decision-2b", payload)).text)
    assert "Title and evidence as shown on the card this rule produced." in older
    # a rule without a card: current text, flagged
    now = rule_set.rule("IMA-SAMP-001").ruleset_version  # fired without a card
    assert f"The rule has changed since this decision (now version {now})" in text
    assert "This rule is no longer in the rule set" in text and "IMA-GONE-001" in text


def test_card_text_is_escaped(site: Site) -> None:
    payload = stored_payload(site, LOW)
    payload["cards"][0]["summary"] = "<script>alert(1)</script>"
    payload["cards"][0]["detail"] = "**bold** <img src=x onerror=alert(1)> <javascript:alert(1)>"
    payload["cards"][0]["source"]["url"] = "javascript:alert(1)"
    html = site.client.get(record(site, "old-decision-3", payload)).text
    assert "<script>alert" not in html and "<img src=x" not in html and 'href="javascript:' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<strong>bold</strong>" in html


def card_articles(html: str) -> list[str]:
    return re.findall(r'<article class="card [a-z]+">(.*?)</article>', html, re.S)


def test_each_card_shows_what_the_card_builder_leaves_off_it(site: Site, rule_set: RuleSet) -> None:
    """Rules with versions, every fact behind the card (and behind its derived facts) with source and date, the
    dose composition on the card that changes the dose, and the evidence with its notes."""
    decision = site.decisions[LOW]
    articles = card_articles(site.client.get(decision.link).text)
    assert len(articles) == len(decision.response["cards"])
    by_topic = {
        card["source"]["topic"]["code"]: a for card, a in zip(decision.response["cards"], articles, strict=True)
    }
    dose_card = by_topic["dose"]
    version = rule_set.rule("IMA-TROUGH-050").ruleset_version
    assert '<a href="#rule-IMA-TROUGH-050"><code>IMA-TROUGH-050</code></a>' in dose_card
    assert f"(trough rules version {version})" in dose_card
    # tdm.trough is derived; the level behind it is listed with its Observation and date
    assert "<code>tdm.trough</code>" in dose_card
    row = re.search(r"<tr><td><code>level\.conc</code></td>(.*?)</tr>", dose_card, re.S)
    assert row is not None and "Observation/lvl-1" in row.group(1) and "2026-11-20T19:30:00+00:00" in row.group(1)
    assert "How the dose was composed" in dose_card and "set to 600 mg/day (IMA-TROUGH-050)" in dose_card
    note = " ".join(rule_set.rule("IMA-TROUGH-050").evidence[0].note.split())
    assert note in unescape(text_of(dose_card))
    # the low trough that led to the change is on the same card
    assert '<a href="#rule-IMA-TROUGH-020">' in dose_card
    # a card that does not change the dose carries no composition
    random_level = site.decisions[WITH_PK[2]]
    (level_card,) = card_articles(site.client.get(random_level.link).text)
    assert random_level.response["cards"][0]["source"]["topic"]["code"] == "level"
    assert "How the dose was composed" not in level_card and '<a href="#rule-IMA-' in level_card


def test_a_card_on_a_topic_lists_every_rule_of_that_topic(site: Site) -> None:
    """One card per clinical problem: the card's topic code names the problem, the fired rules record theirs."""
    payload = stored_payload(site, LOW)
    payload["cards"] = [payload["cards"][0]]
    payload["cards"][0]["source"]["topic"] = {"code": "level", "display": "Level"}
    for fired in payload["fired"]:
        fired.pop("card", None)  # a record from before cards recorded their placement: the rule's topic decides
        if fired["rule"] in ("IMA-TROUGH-020", "IMA-DOSE-050"):
            fired["topic"] = "level"
    (article,) = card_articles(site.client.get(record(site, "topic-card-1", payload)).text)
    assert '<a href="#rule-IMA-TROUGH-020">' in article and '<a href="#rule-IMA-DOSE-050">' in article
    assert '<a href="#rule-IMA-TROUGH-050">' not in article
    assert "<code>pk.p_target</code>" in article  # read by IMA-DOSE-050 only


def test_the_rules_section_has_an_anchor_per_rule(site: Site) -> None:
    html = site.client.get(site.decisions[LOW].link).text
    for fired in stored_payload(site, LOW)["fired"]:
        assert f'<article class="rule" id="rule-{fired["rule"]}">' in html


def test_the_review_note_of_a_fired_rule_is_on_the_page_and_not_on_its_card(site: Site, rule_set: RuleSet) -> None:
    decision = site.decisions[LOW]
    note = rule_set.rule("IMA-TROUGH-020").review_note
    assert note
    text = text_of(site.client.get(decision.link).text)
    assert f"Review note: {note}" in text
    assert all(note not in str(card.get("detail", "")) for card in decision.response["cards"])
