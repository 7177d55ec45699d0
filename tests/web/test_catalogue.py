"""The rule catalogue: generated from the rule files, every active rule with its parts, searchable."""

from __future__ import annotations

import re
from pathlib import Path

from cds.engine.ruleset import RuleSet, load_rules
from cds.web.catalogue import build_catalogue, own_changes
from tests.conftest import RULES, make_rules_root
from tests.web.conftest import Site


def test_every_active_rule_is_listed_with_its_parts(site: Site, rule_set: RuleSet) -> None:
    response = site.client.get("/rules")
    assert response.status_code == 200
    html = response.text
    assert f"{len(rule_set.rules)} active rules" in html
    for rule in rule_set.rules:
        assert f'<article class="rule" id="{rule.id}">' in html
    article = html.split('id="IMA-RENAL-001"')[1].split("</article>")[0]
    assert "Mild renal impairment (CrCl 40-59 mL/min)" in article
    rule = rule_set.rule("IMA-RENAL-001")
    assert f"<dt>Version</dt><dd>renal {rule.ruleset_version}, active</dd>" in article
    assert 'href="https://dailymed.nlm.nih.gov/' in article and "(label)" in article
    assert '<th scope="col">Test</th>' in article
    assert "<h4>Changes to this rule</h4>" in article and "None named in the change log." in article
    assert "- id: IMA-RENAL-001\n  title: Mild renal impairment" in article.replace("&#39;", "'")


def test_the_yaml_is_the_rule_as_written(rule_set: RuleSet) -> None:
    catalogue = build_catalogue(rule_set)
    entry = next(e for e in catalogue.entries if e.id == "IMA-TROUGH-001")
    assert entry.yaml.startswith("- id: IMA-TROUGH-001\n  title: Valid trough with a log-linear correction")
    assert (
        "&wang" in entry.yaml
        and "derive: {tdm.trough: {from: pk.loglinear_cmin}, tdm.trough_basis: corrected for sampling time}"
        in entry.yaml
    )
    assert "IMA-TROUGH-002" not in entry.yaml.split("tests:")[0]


def test_a_rule_lists_only_the_changes_that_name_it(rule_set: RuleSet) -> None:
    renal = next(f for f in rule_set.files if f.meta.id == "renal")
    rule = next(r for r in renal.rules if r.id == "IMA-RENAL-020")
    changes = own_changes(rule, renal)
    assert len(changes) == 1 and changes[0].startswith("1.3.0 (2026-12-06): IMA-RENAL-020 takes 50% of the")
    assert own_changes(next(r for r in renal.rules if r.id == "IMA-RENAL-001"), renal) == ()
    # IMA-RENAL-02 is not IMA-RENAL-020: ids are matched whole
    assert not any("IMA-RENAL-011" in c for c in own_changes(rule, renal))


def test_the_review_page_states_each_rule_in_words_with_policy_values_resolved(site: Site, rule_set: RuleSet) -> None:
    html = site.client.get("/rules").text
    article = html.split('id="IMA-TROUGH-020"')[1].split("</article>")[0]
    when = re.search(r'<ul class="when">(.*?)</ul>', article, re.S)
    assert when is not None
    assert "The trough used for interpretation (tdm.trough) is below 1000 ng/mL [policy.cml_trough_target, study]" in (
        when.group(1)
    )
    assert "is below the CML target of 1000 ng/mL: check adherence" in article  # card text, resolved
    assert "{policy." not in re.sub(r"<details.*?</details>", "", html, flags=re.S)  # only the YAML as written
    # every policy value a rule refers to is resolved, with its unit and evidence level
    for rule in rule_set.rules:
        part = html.split(f'id="{rule.id}"')[1].split("</article>")[0]
        names = set(re.findall(r"policy\.([a-z0-9_]+)", str(rule.source.get("when"))))
        for name in names:
            value = rule_set.policy.parameters[name]
            assert f"[policy.{name}, {value.level}]" in part, (rule.id, name)
    # the guideline recommendation and the approval
    assert "USPI-RENAL-MOD-START" in html.split('id="IMA-RENAL-020"')[1].split("</article>")[0]
    renal = next(f for f in rule_set.files if f.meta.id == "renal")
    assert f"not approved: {renal.meta.approved_by} ({renal.meta.approved_date})" in html.replace("&amp;", "&")
    # the policy table
    row = re.search(r'<tr id="policy-cml_trough_target">(.*?)</tr>', html, re.S)
    assert row is not None and '<td class="value">1000 ng/mL</td><td>study</td>' in row.group(1)
    assert 'href="#IMA-TROUGH-020"' in row.group(1)
    # the file's whole change log is not repeated under every rule
    assert html.count("First version from the US label renal sections") == 0


def test_search_by_text(site: Site) -> None:
    html = site.client.get("/rules", params={"q": "rifampin"}).text
    ids = set(re.findall(r'<article class="rule" id="([^"]+)"', html))
    assert "IMA-CYP-010" in ids and "IMA-RENAL-001" not in ids
    assert "rules match <q>rifampin</q>" in html

    def found(query: str) -> set[str]:
        return set(
            re.findall(r'<article class="rule" id="([^"]+)"', site.client.get("/rules", params={"q": query}).text)
        )

    renal, both = found("renal"), found("renal CEILING")  # every word must match, in any case
    assert "IMA-RENAL-011" in both and both < renal
    assert "No rule matches." in site.client.get("/rules", params={"q": "zzz-no-such-thing"}).text


def test_search_text_is_escaped(site: Site) -> None:
    html = site.client.get("/rules", params={"q": '"><script>x</script>'}).text
    assert "<script>x" not in html and "&lt;script&gt;x" in html


def test_a_rule_file_edited_after_loading_shows_the_loaded_rule(tmp_path: Path) -> None:
    root = make_rules_root(tmp_path, *sorted((RULES / "imatinib").glob("*.yaml")))
    loaded = load_rules(root)
    path = root / "imatinib" / "renal.yaml"
    before = next(e for e in build_catalogue(loaded).entries if e.id == "IMA-RENAL-001")
    assert before.yaml.startswith("- id: IMA-RENAL-001\n")
    path.write_text(path.read_text(encoding="utf-8").replace("(CrCl 40-59 mL/min)", "(edited)"), encoding="utf-8")
    after = next(e for e in build_catalogue(loaded).entries if e.id == "IMA-RENAL-001")
    assert "(edited)" not in after.yaml and "Mild renal impairment (CrCl 40-59 mL/min)" in after.yaml
    assert after.yaml.startswith("- id: IMA-RENAL-001\n")  # the loaded rule, dumped
