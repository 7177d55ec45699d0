"""Database tables of the audit store (SQLAlchemy Core; SQLite by default, PostgreSQL by URL)."""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

# One chain for decisions and feedback: entry_hash = sha256(prev_hash + canonical entry).
entries = Table(
    "audit_entries",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # decision | feedback
    Column("hook_instance", String(128), nullable=False),
    Column("service_id", String(128), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("payload", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False),
    # Added with client scoping (cds.audit.migrate adds them to older databases; NULL on older entries, whose
    # hash does not cover them): the issuer of the client that called ("" when calls are not authenticated),
    # and the uuids of the cards shown (canonical JSON list), both covered by entry_hash.
    Column("client", String(512), nullable=True),
    Column("cards", Text, nullable=True),
)
Index("ix_audit_entries_hook_instance", entries.c.hook_instance)
Index("ix_audit_entries_created_at", entries.c.created_at)

# The chain head, one row; appends lock it so concurrent writers (threads, workers) form one chain.
head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("entry_hash", String(64), nullable=False),
)

# Card uuid -> the decision that showed it, so feedback links to its card.
cards = Table(
    "audit_cards",
    metadata,
    Column("card_uuid", String(64), primary_key=True),
    Column("hook_instance", String(128), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("client", String(512), nullable=True),  # the decision's client; NULL for cards recorded before scoping
)

# JWT ids already used, kept until they expire: replay protection shared by every worker.
used_jtis = Table(
    "used_jtis",
    metadata,
    Column("iss", String(512), primary_key=True),  # a jti is unique per issuer
    Column("jti", String(512), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

# One row rewritten by AuditStore.probe (service /health): a committed write outside the chain, to learn whether
# a decision could be recorded right now (read-only file, full disk, database down).
write_probe = Table(
    "audit_write_probe",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("written_at", Float, nullable=False),
)

# Shadow evaluations (`serve --shadow-rules`): what a candidate rule set would have advised on each live decision,
# kept apart from the chain: never shown, never sent, and not evidence of what the service advised.
shadow = Table(
    "audit_shadow",
    metadata,
    Column("candidate", String(64), primary_key=True),  # the candidate rule set's digest
    Column("seq", Integer, primary_key=True, autoincrement=False),  # the live decision's chain entry
    Column("hook_instance", String(128), nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("outcome", Text, nullable=False),  # JSON: candidate version, live and shadow advice, what differs
)

# How far the shadow evaluator of each candidate has read the chain (updated with its rows, in one transaction).
shadow_progress = Table(
    "audit_shadow_progress",
    metadata,
    Column("candidate", String(64), primary_key=True),
    Column("seq", Integer, nullable=False),
    Column("started_at", String(40), nullable=False),
)
