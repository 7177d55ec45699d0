"""The explanation pages, the rule catalogue and a rule's feedback page in Debian's chromium (playwright, 1280x800
viewport).

Screenshots are kept in test-artifacts/screenshots/ (git-ignored): for each explanation the top of the page and
the PK section, plus the catalogue and a refused link.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from typing import Any

import pytest

from cds.cli.main import main
from tests.browser.conftest import LiveSite, browser_missing, screenshot
from tests.conftest import ROOT
from tests.web.helpers import WITH_PK, WITHOUT_PK, patient_identifiers

pytestmark = [pytest.mark.browser, pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))]

NOW = "2026-11-25T12:00:00Z"  # the time fhir_examples/ are written for
EXPECTED_SECTIONS = ["Cards shown", "Dose composition", "Rules that fired", "PK estimate", "Warnings", "Audit record"]


def headings(page: Any) -> list[tuple[int, str]]:
    found: list[list[Any]] = page.eval_on_selector_all(
        "h1, h2, h3, h4, h5, h6", "hs => hs.map(h => [Number(h.tagName[1]), h.innerText])"
    )
    return [(int(level), str(text)) for level, text in found]


def check_heading_order(page: Any) -> list[tuple[int, str]]:
    found = headings(page)
    assert [lv for lv, _ in found].count(1) == 1 and found[0][0] == 1
    for (before, _), (after, text) in zip(found, found[1:], strict=False):
        assert after <= before + 1, f"heading level jumps to h{after} at {text!r}"
    return found


@pytest.mark.parametrize("name", [*WITH_PK, WITHOUT_PK])
def test_explanation_page(page: Any, live: LiveSite, name: str) -> None:
    response = page.goto(live.links[name])
    assert response is not None and response.status == 200
    found = check_heading_order(page)
    assert found[0][1] == "Why this advice: imatinib decision explanation"
    sections = [re.sub(r" \(\d+\)$", "", text) for level, text in found if level == 2]
    assert sections == EXPECTED_SECTIONS
    cards = page.locator("article.card h3")
    assert cards.count() >= 1
    assert cards.first.is_visible()
    assert page.locator("article.rule").count() >= 1
    assert "Rule set digest" in page.inner_text("#h-audit + dl") and "entry " in page.inner_text("#h-audit + dl")
    screenshot(page, f"explain-{name.removesuffix('.json')}")
    if name == WITHOUT_PK:
        assert page.locator("figure img").count() == 0
        assert "No PK estimate was made for this decision" in page.inner_text("body")
        return
    image = page.locator("figure img")
    assert image.count() == 1
    image.scroll_into_view_if_needed()
    page.wait_for_function("() => { const i = document.querySelector('figure img'); return i && i.complete; }")
    width = page.eval_on_selector("figure img", "i => i.naturalWidth")
    assert width == 900, "the plot image did not load"
    alt = image.get_attribute("alt") or ""
    assert alt.startswith("Concentration-time plot") and "target line at" in alt
    table = page.locator("#h-dose-table + table")
    dose, trough, probability = table.locator("thead th").all_inner_texts()[:3]
    assert (dose, probability) == ("Dose", "Probability of target")
    assert trough.startswith("Predicted trough, ") and trough.endswith(" (90% interval)") and "estimate" in trough
    assert table.locator("tbody tr").count() == 6
    assert "imatinib-widmer2006" in page.inner_text("#h-pk ~ dl")
    page.evaluate("document.getElementById('h-pk').scrollIntoView()")
    screenshot(page, f"explain-{name.removesuffix('.json')}-pk")
    page.evaluate("document.getElementById('h-dose-table').scrollIntoView()")
    screenshot(page, f"explain-{name.removesuffix('.json')}-dose-table")
    screenshot(page, f"explain-{name.removesuffix('.json')}-full", full_page=True)


def test_rule_catalogue_search(page: Any, live: LiveSite) -> None:
    response = page.goto(live.base + "/rules")
    assert response is not None and response.status == 200
    check_heading_order(page)
    assert page.inner_text("h1") == "Imatinib rules for committee review"
    total = page.locator("article.rule").count()
    assert total > 50
    screenshot(page, "rules")
    page.get_by_label("Search rules").fill("rifampin")
    with page.expect_navigation():
        page.get_by_role("button", name="Search").click()
    assert "q=rifampin" in page.url
    shown = page.locator("article.rule")
    assert 0 < shown.count() < total
    assert page.locator("#IMA-CYP-010").is_visible()
    assert re.match(r"\d+ of \d+ rules match", page.inner_text("#result-count"))
    page.locator("#IMA-CYP-010 details summary").click()
    assert "- id: IMA-CYP-010" in page.inner_text("#IMA-CYP-010 details pre")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "rules-search-rifampin")
    page.evaluate("document.getElementById('IMA-CYP-010').scrollIntoView()")
    screenshot(page, "rules-yaml-IMA-CYP-010")


# elements whose right edge must stay inside the page: text, tables and their cells, code blocks
CLIPPABLE = "main h1, main h2, main h3, main p, main li, main dd, main table, main td, main th, main pre, main code"
CLIPPED_JS = """(selector) => {
  const width = document.documentElement.clientWidth;
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    const style = getComputedStyle(el);
    if (style.display === 'none' || el.closest('details:not([open])')) continue;
    const box = el.getBoundingClientRect();
    if (box.width === 0) continue;
    if (box.right > width + 1 || el.scrollWidth > el.clientWidth + 1 && style.overflowX !== 'visible')
      out.push(el.tagName + ' ' + (el.id || el.className) + ': ' + el.innerText.slice(0, 60));
  }
  return out.slice(0, 10);
}"""


def test_rules_review_page_reads_as_a_review_document(page: Any, live: LiveSite) -> None:
    page.goto(live.base + "/rules")
    trough = page.locator("#IMA-TROUGH-020")
    when = trough.locator("ul.when").inner_text()
    assert "is below 1000 ng/mL [policy.cml_trough_target, study]" in when
    assert "Imatinib trough [The trough used for interpretation] ng/mL" in trough.locator("ul.then").inner_text()
    assert "CML-TROUGH-TARGET" in trough.locator("ul.implements").inner_text()
    assert trough.locator("table.tests tbody tr").count() >= 2
    assert trough.locator("dd.approval").inner_text().startswith("not approved: pending P&T review")
    policy = page.locator("#policy-cml_trough_target td").all_inner_texts()
    assert policy[:3] == ["cml_trough_target", "1000 ng/mL", "study"]
    assert page.locator("details.yaml[open]").count() == 0
    assert page.evaluate(CLIPPED_JS, CLIPPABLE) == []
    height = page.evaluate("document.documentElement.scrollHeight")
    page.evaluate("document.getElementById('IMA-TROUGH-020').scrollIntoView()")
    screenshot(page, "rules-review-IMA-TROUGH-020")
    page.evaluate("document.getElementById('h-policy').scrollIntoView()")
    screenshot(page, "rules-review-policy")
    assert height > 0


def test_rules_review_page_prints_without_clipping(page: Any, live: LiveSite, tmp_path: Path) -> None:
    """The print layout: A4 width, no search form or YAML, nothing past the right edge, values resolved."""
    page.set_viewport_size({"width": 700, "height": 1000})  # A4 less 12 mm margins, at 96 dpi
    page.goto(live.base + "/rules")
    page.emulate_media(media="print")
    assert not page.locator("form.search").is_visible()
    assert not page.locator("details.yaml").first.is_visible()
    assert page.evaluate(CLIPPED_JS, CLIPPABLE) == []
    assert page.locator("#policy-cml_trough_target td.value").inner_text() == "1000 ng/mL"
    assert "1000 ng/mL [policy.cml_trough_target, study]" in page.locator("#IMA-TROUGH-020 ul.when").inner_text()
    assert page.locator("#h-signoff").is_visible()
    page.evaluate("document.getElementById('IMA-RENAL-020').scrollIntoView()")
    screenshot(page, "rules-review-print-IMA-RENAL-020")
    pdf = tmp_path / "rules-review.pdf"
    page.pdf(path=str(pdf), format="A4", margin={"top": "14mm", "bottom": "14mm", "left": "12mm", "right": "12mm"})
    data = pdf.read_bytes()
    pages = len(re.findall(rb"/Type\s*/Page[^s]", data))
    assert data.startswith(b"%PDF") and pages > 10, pages


def test_rule_feedback_page_from_the_catalogue(page: Any, live: LiveSite) -> None:
    """The figures' link leads to the rule's page; its trend plot (a data: PNG) passes the page's CSP."""
    page.goto(live.base + "/rules")
    shown = page.locator('a[href="/rules/IMA-RENAL-020"]').first
    assert shown.inner_text() == "1"  # the moderate-renal decision of the live site, no feedback
    with page.expect_navigation():
        shown.click()
    check_heading_order(page)
    assert page.inner_text("h1").startswith("Feedback on IMA-RENAL-020")
    page.wait_for_function("() => { const i = document.querySelector('figure img'); return i && i.complete; }")
    assert page.eval_on_selector("figure img", "i => i.naturalWidth") == 750
    assert "No feedback\n1" in page.inner_text("#figures")
    screenshot(page, "rule-feedback-IMA-RENAL-020", full_page=True)


def test_altered_token_is_refused_with_a_plain_page(page: Any, live: LiveSite) -> None:
    link = live.links[WITH_PK[0]]
    response = page.goto(link[:-2] + ("AA" if not link.endswith("AA") else "BB"))
    assert response is not None and response.status == 403
    assert page.inner_text("h1") == "Link not valid"
    assert page.locator("article").count() == 0 and page.locator("img").count() == 0
    screenshot(page, "explain-refused")


def test_no_patient_identifier_in_any_url_or_log_line(page: Any, live: LiveSite) -> None:
    for name in WITH_PK:
        page.goto(live.links[name])
        page.wait_for_load_state("networkidle")
    assert any("/plot.png?token=" in url for url in live.seen_urls)
    assert any("GET /explain/" in line for line in live.log.lines), "the access log was not captured"
    identifiers = set().union(*(patient_identifiers(body) for body in live.requests.values()))
    assert identifiers
    for identifier in identifiers:
        assert not [url for url in live.seen_urls if identifier in url]
        assert not [line for line in live.log.lines if identifier in line]


def test_offline_explanation_file_shows_its_embedded_plot(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "explain.html"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["evaluate", str(ROOT / "fhir_examples" / WITH_PK[0]), "--now", NOW, "--explain-html", str(out)])
    assert code == 0
    context = browser.new_context(viewport={"width": 1280, "height": 800}, offline=True)
    try:
        page = context.new_page()
        page.goto(out.as_uri())
        check_heading_order(page)
        page.wait_for_function("() => { const i = document.querySelector('figure img'); return i && i.complete; }")
        assert page.eval_on_selector("figure img", "i => i.naturalWidth") == 900
        page.evaluate("document.getElementById('h-pk').scrollIntoView()")
        screenshot(page, "offline-patient-view-low-trough-cml-pk")
    finally:
        context.close()
