"""How entries are chained: canonical JSON, the entry hash, the rows that continue the chain, and the
statements that append them (SQLAlchemy Core, shared by every way of writing)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select, update

from cds.audit.tables import cards, entries, head

if TYPE_CHECKING:
    from cds.audit.group import Pending

GENESIS = "0" * 64

READ_HEAD = select(head.c.seq, head.c.entry_hash).where(head.c.id == 1)
INSERT_ENTRY = insert(entries)
MOVE_HEAD = update(head).where(head.c.id == 1).values(seq=bindparam("new_seq"), entry_hash=bindparam("new_hash"))


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def entry_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    fields = {k: row[k] for k in ("seq", "kind", "hook_instance", "service_id", "created_at", "payload")}
    if row.get("client") is not None:  # entries written since client scoping; older ones keep their hash
        fields.update(client=row["client"], cards=row["cards"])
    return hashlib.sha256(f"{prev_hash}\n{canonical_json(fields)}".encode()).hexdigest()


def chained(seq: int, prev: str, pending: Sequence[Pending]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """The rows that continue the chain after entry ``seq`` (hash ``prev``), the card links they make, and
    the new head hash. A card shown by two of them points at the later."""
    created_at = datetime.now(UTC).isoformat(timespec="microseconds")
    rows: list[dict[str, Any]] = []
    links: dict[str, dict[str, Any]] = {}
    for entry in pending:
        seq += 1
        row = {
            "seq": seq,
            "kind": entry.kind,
            "hook_instance": entry.hook_instance,
            "service_id": entry.service_id,
            "created_at": created_at,
            "payload": entry.payload,
            "client": entry.client,
            "cards": canonical_json(list(entry.cards)),
        }
        digest = entry_hash(prev, row)
        rows.append({**row, "prev_hash": prev, "entry_hash": digest})
        prev = digest
        link = {"hook_instance": entry.hook_instance, "seq": seq, "client": entry.client}
        links.update({u: {"card_uuid": u, **link} for u in entry.cards})
    return rows, list(links.values()), prev


def link_cards(dialect: Any) -> Any:
    """Each card uuid points at its latest decision (a retried hookInstance shows the same cards again);
    ``dialect`` is sqlalchemy.dialects.sqlite or .postgresql (both have INSERT ... ON CONFLICT)."""
    statement = dialect.insert(cards)
    return statement.on_conflict_do_update(
        index_elements=[cards.c.card_uuid],
        set_={
            "hook_instance": statement.excluded.hook_instance,
            "seq": statement.excluded.seq,
            "client": statement.excluded.client,
        },
    )
