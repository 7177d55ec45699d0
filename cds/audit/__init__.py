"""Tamper-evident audit log: every decision and every feedback, hash-chained, append-only."""

from cds.audit.chain import canonical_json
from cds.audit.store import AuditStore, ChainReport, request_digest

__all__ = ["AuditStore", "ChainReport", "canonical_json", "request_digest"]
