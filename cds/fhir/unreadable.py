"""Never silent about lab values: the newest result of a kind whose value cannot be read becomes a fact
``lab.<kind>_unreadable`` (and ``lab.<kind>_flag`` when only an interpretation flag was sent), which
rules/imatinib/unreadable-labs.yaml turns into a card naming the result (by its date) and what is missing."""

from __future__ import annotations

from cds.fhir.labs import Labs, Want
from cds.fhir.request_text import escape_markdown
from cds.fhir.sink import FactSink
from cds.fhir.terminology import ValueSet


def report_unreadable(labs: Labs, sink: FactSink, group: ValueSet, want: Want, kind: str) -> bool:
    """Record why the newest ``kind`` result cannot be read; True when it could not be."""
    found = labs.newest_unreadable(group, want)
    if found is None:
        return False
    sink.put(f"lab.{kind}_unreadable", escape_markdown(found.for_clinician()), [found.source])
    flag_fact = f"lab.{kind}_flag"
    if found.reason.flag is not None and flag_fact in sink.vocabulary:
        sink.put(flag_fact, found.reason.flag, [found.source])
    labs.index.warnings.append(f"{found.describe()} (value not used)")
    return True
