"""docs/settings.md lists every setting as the code defines it."""

from __future__ import annotations

from cds.service.config import settings
from cds.service.settings_report import with_current_table
from tests.conftest import ROOT

SETTINGS_DOC = ROOT / "docs" / "settings.md"


def test_the_settings_table_in_the_docs_is_current() -> None:
    written = SETTINGS_DOC.read_text(encoding="utf-8")
    assert written == with_current_table(written), (
        "docs/settings.md is out of date: run `imatinib-cds config reference --update docs/settings.md`"
    )


def test_every_setting_is_described_and_all_but_the_client_list_have_a_variable() -> None:
    assert all(each.metadata["doc"] for each in settings())
    assert [each.name for each in settings() if not each.metadata["env"]] == ["trusted_clients"]
