"""The default rule pack from a checkout, a pharmacist's copy of it, and the commands that read either (issue 17)."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest

from cds.cli.main import main
from cds.engine.ruleset import load_rules
from cds.pipeline import ExampleRequests
from cds.shipped import ExportError, default_rules, export_rules, shipped_rules
from tests.conftest import ROOT, RULES

REQUEST_CASES = sum(1 for rule in load_rules(RULES).rules for t in rule.tests if t.request is not None)


def test_a_checkout_reads_its_own_rules_folder() -> None:
    assert shipped_rules() == RULES
    assert default_rules({}) == RULES
    assert default_rules({"IMATINIB_CDS_RULES": "/srv/pharmacy/rules"}) == Path("/srv/pharmacy/rules")


def test_export_copies_the_whole_pack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dest = tmp_path / "local" / "rules"
    assert main(["rules", "export", str(dest)]) == 0
    files = sorted(p.relative_to(RULES) for p in RULES.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert sorted(p.relative_to(dest) for p in dest.rglob("*") if p.is_file()) == files
    assert all(filecmp.cmp(RULES / f, dest / f, shallow=False) for f in files)
    assert f"{len(files)} file(s)" in capsys.readouterr().out
    assert main(["rules", "check", str(dest)]) == 0


def test_export_refuses_a_folder_that_is_not_empty_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "policy.yaml").write_text("edited: locally\n")
    with pytest.raises(ExportError, match="not empty; use --force"):
        export_rules(tmp_path)
    assert main(["rules", "export", str(tmp_path)]) == 1
    assert (tmp_path / "policy.yaml").read_text() == "edited: locally\n"
    assert main(["rules", "export", "--force", str(tmp_path)]) == 0
    assert filecmp.cmp(RULES / "policy.yaml", tmp_path / "policy.yaml", shallow=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the pack's own files are written
    with pytest.raises(ExportError, match="not a folder"):
        export_rules(tmp_path / "notes.txt", force=True)


def test_version_prints_the_package_and_the_shipped_pack(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    rule_set = load_rules(RULES)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("imatinib-cds ") and lines[1] == f"rule pack {RULES}"
    assert lines[2:] == [f"  version {rule_set.version}", f"  digest {rule_set.digest}"]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pharmacist's copy, away from the repository: no fhir_examples/ beside it."""
    dest = tmp_path_factory.mktemp("pharmacy") / "rules"
    export_rules(dest)
    return dest


def test_request_cases_of_a_copy_are_skipped_and_said_so(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requests = ExampleRequests(copy, roots=[copy.parent])
    assert main(["rules", "test", str(copy), "--requests-root", str(copy.parent)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sum(line.startswith("skip  ") for line in out) == REQUEST_CASES
    assert out[-1].endswith(f"0 failed; {REQUEST_CASES} skipped: their requests are not here (see --requests-root)")
    assert requests.roots == (copy.parent,)


def test_request_cases_of_a_copy_run_against_a_checkout(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(copy), "--requests-root", str(ROOT)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not [line for line in out if line.startswith("skip  ")]
    assert out[-1].endswith(" 0 failed")


def test_by_default_requests_are_also_looked_up_in_the_checkout(copy: Path) -> None:
    assert ExampleRequests(copy).roots == (copy.parent, ROOT)
    facts, hook = ExampleRequests(copy)("fhir_examples/order-sign-new-start-moderate-renal.json")
    assert hook == "order-sign" and facts["renal.crcl"] > 0


def test_a_mistyped_request_in_a_folder_that_is_there_is_an_error(copy: Path) -> None:
    from cds.errors import InvalidInput

    with pytest.raises(InvalidInput, match="cannot read the request"):
        ExampleRequests(copy)("fhir_examples/no-such-request.json")


def test_facts_and_evaluate_read_the_rules_folder_given(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    request = str(ROOT / "fhir_examples" / "order-sign-new-start-moderate-renal.json")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "facts.yaml").write_text("facts: not-a-mapping\n")
    assert main(["facts", request, "--rules", str(broken)]) == 1
    assert "facts.yaml" in capsys.readouterr().err
    monkeypatch.setenv("IMATINIB_CDS_RULES", str(broken))
    assert main(["evaluate", request, "--now", "2026-11-25T12:00:00Z"]) == 1
    capsys.readouterr()
    assert main(["evaluate", request, "--now", "2026-11-25T12:00:00Z", "--rules", str(copy)]) == 0
    assert main(["facts", request, "--now", "2026-11-25T12:00:00Z", "--rules", str(copy)]) == 0
    assert "renal.crcl" in capsys.readouterr().out
