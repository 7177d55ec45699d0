"""Bring an audit database written by an earlier version up to the current tables, and open one without
changing it.

``metadata.create_all`` creates missing tables but never adds columns; the columns added since the first
version are all nullable, so adding them leaves every existing row (and its hash) as it was.
"""

from __future__ import annotations

from sqlalchemy import Connection, Table, inspect

from cds.audit.tables import cards, entries

ADDED_COLUMNS: dict[Table, tuple[str, ...]] = {entries: ("client", "cards"), cards: ("client",)}


def missing_columns(conn: Connection) -> dict[Table, list[str]]:
    inspector = inspect(conn)
    missing: dict[Table, list[str]] = {}
    for table, names in ADDED_COLUMNS.items():
        if not inspector.has_table(table.name):
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        absent = [n for n in names if n not in present]
        if absent:
            missing[table] = absent
    return missing


def add_missing_columns(conn: Connection) -> None:
    """Within the caller's transaction, which already serialises schema changes between workers."""
    for table, names in missing_columns(conn).items():
        for name in names:
            column = table.c[name]
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f'ALTER TABLE {table.name} ADD COLUMN "{name}" {kind}')


def present_columns(conn: Connection, table: Table) -> list[str]:
    """The columns of ``table`` this database has (a log opened read-only may predate some)."""
    present = {c["name"] for c in inspect(conn).get_columns(table.name)}
    return [c.name for c in table.columns if c.name in present]
