"""`audit shadow-report`: live and shadow advice compared over the decisions a candidate has shadowed."""

from __future__ import annotations

import json
from typing import Any, TextIO

from sqlalchemy import inspect, select

from cds.audit import AuditStore
from cds.audit.store import AuditLogMissing
from cds.audit.tables import shadow, shadow_progress

EXAMPLES = 20  # disagreements listed in full (all are counted)


def shadow_report(store: AuditStore, candidate: str | None = None) -> dict[str, Any]:
    """For ``candidate`` (a digest or its prefix; default: the candidate shadowing most recently started)."""
    progress = _progress(store, candidate)
    report: dict[str, Any] = {
        "candidate": {"digest": progress["candidate"], "version": None, "started_at": progress["started_at"]},
        "evaluated_through_entry": progress["seq"],
        "decisions": 0,
        "disagreements": 0,
        "not_evaluated": 0,
        "by_rule": {},
        "examples": [],
    }
    counts: dict[str, list[int]] = {}
    query = select(shadow.c.seq, shadow.c.hook_instance, shadow.c.outcome).where(
        shadow.c.candidate == progress["candidate"]
    )
    with store.reading(stream=True) as conn:
        result = conn.execute(query.order_by(shadow.c.seq))
        try:
            for seq, hook_instance, text in result:
                _count(report, counts, seq, hook_instance, json.loads(text))
        finally:
            result.close()
    report["by_rule"] = {rule: {"live": a, "shadow": b} for rule, (a, b) in sorted(counts.items())}
    return report


def _count(report: dict[str, Any], counts: dict[str, list[int]], seq: int, hook: str, outcome: dict[str, Any]) -> None:
    report["decisions"] += 1
    report["candidate"]["version"] = outcome["version"]
    if outcome["shadow"] is None:
        report["not_evaluated"] += 1
        return
    for side, name in enumerate(("live", "shadow")):
        for rule in set(outcome[name]["fired"]):
            counts.setdefault(rule, [0, 0])[side] += 1
    if outcome["differs"]:
        report["disagreements"] += 1
        if len(report["examples"]) < EXAMPLES:
            report["examples"].append(
                {
                    "seq": seq,
                    "hookInstance": hook,
                    "rules": outcome.get("rules", []),
                    **{k: outcome[k] for k in ("differs", "live", "shadow")},
                }
            )


def _progress(store: AuditStore, candidate: str | None) -> dict[str, Any]:
    with store.reading() as conn:
        if not inspect(conn).has_table(shadow_progress.name):
            raise AuditLogMissing("no shadow evaluations in this audit log (start `serve --shadow-rules DIR`)")
        rows = list(conn.execute(select(shadow_progress)).mappings())
    if candidate:
        rows = [r for r in rows if str(r["candidate"]).startswith(candidate)]
    if not rows:
        raise AuditLogMissing(f"no shadow evaluations of candidate {candidate} in this audit log")
    return dict(max(rows, key=lambda r: str(r["started_at"])))


def write_text(report: dict[str, Any], out: TextIO) -> None:
    c = report["candidate"]
    out.write(
        f"shadow rules (digest {c['digest'][:12]}), shadowing since {c['started_at'][:16].replace('T', ' ')} UTC: "
        f"{report['decisions']} live decisions, {report['disagreements']} advised differently"
        + (f", {report['not_evaluated']} could not be evaluated" if report["not_evaluated"] else "")
        + "\n"
    )
    moved = {r: n for r, n in report["by_rule"].items() if n["live"] != n["shadow"]}
    if moved:
        out.write("\nrules firing differently    live  shadow\n")
        for rule, n in moved.items():
            out.write(f"  {rule:24} {n['live']:6} {n['shadow']:7}\n")
    for example in report["examples"]:
        out.write(
            f"\n{example['hookInstance']} (entry {example['seq']}): {', '.join(example['differs'])} differ; "
            f"rules {', '.join(example['rules'])}\n"
            f"  live:   {' | '.join(example['live']['summaries']) or 'no cards'}\n"
            f"  shadow: {' | '.join(example['shadow']['summaries']) or 'no cards'}\n"
        )
