"""`audit verify --db URL` (the option after the command): a log that is missing or empty is never "intact"."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.audit import AuditStore
from cds.cli.main import main


def test_verify_db_after_the_command_refuses_a_missing_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "audit.sqlite3"
    assert main(["audit", "verify", "--db", f"sqlite:///{missing}"]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"imatinib-cds: AuditLogMissing: no audit log at {missing}\n")
    assert not missing.exists()


def test_verify_db_after_the_command_refuses_an_empty_log_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/audit.sqlite3"
    AuditStore(url).dispose()
    assert main(["audit", "verify", "--db", url]) == 1
    out, err = capsys.readouterr()
    assert (out, err) == ("", "imatinib-cds: the audit log is empty (--allow-empty if that is expected)\n")
    assert main(["audit", "verify", "--db", url, "--allow-empty"]) == 0
    assert capsys.readouterr().out == "audit chain intact: 0 entries\n"
