"""The base of the SQL online stores (SQLite, Postgres): one layout, parametrized by a dialect.

Each feature view is one table named after it: the join keys (primary key),
``event_timestamp`` and ``created_timestamp`` (NOT NULL / nullable) and one column per
feature, each typed by the dialect's type map. The sync state of every view is a row of
the table ``_featurehouse_sync_state`` (view, signature, synced_at, rows, state). This
module writes that DDL, the state table's reads and upsert, and the monotonic upsert of a
view's rows (a row replaces the stored one only when it beats it by the point-in-time
tie-break), so a store module keeps only what is its own: connecting, locking, moving
rows in and reading them. See docs/recipes/add-an-online-store.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from featurehouse.sync.base import Backend
from featurehouse.sync.layout import PUSH_TABLE, STATE_TABLE, SyncState

if TYPE_CHECKING:
    from featurehouse.sync.layout import ViewLayout


def quote(name: str) -> str:
    """``name`` as a double-quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a single-quoted SQL string, for a constant inside a statement prepared once
    (values that vary go in as the driver's parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _unordered(expression: str, dtype: str) -> str:
    return expression


@dataclass(frozen=True)
class SQLDialect:
    """What differs between the SQL stores in the SQL they share."""

    types: Mapping[str, str]  # scalar dtype -> column type
    array: Callable[[str], str]  # the element's column type -> the array's column type
    placeholder: str  # the driver's parameter marker: '?' or '%s'
    table_options: str  # written after CREATE TABLE's column list
    distinct: Callable[[str, str], str]  # NULL-safe "a is not distinct from b"
    order: Callable[[str, str], str] = _unordered  # (expression, dtype) -> what compares as the warehouse does

    def column_type(self, dtype: str) -> str:
        """The store's column type for a featurehouse dtype."""
        if dtype.startswith("array<"):
            return self.array(self.column_type(dtype[len("array<") : -1]))
        return self.types[dtype]


def create_table_sql(
    dialect: SQLDialect, layout: ViewLayout, table: str, if_not_exists: bool = False, constraint: str | None = None
) -> str:
    """The CREATE TABLE of a view's table ``table`` (already quoted); ``constraint`` names its primary key."""
    typed = dialect.column_type
    columns = [f"{quote(k)} {typed(d)} NOT NULL" for k, d in zip(layout.join_keys, layout.key_dtypes)]
    columns += [f'"event_timestamp" {typed("timestamp")} NOT NULL', f'"created_timestamp" {typed("timestamp")}']
    columns += [f"{quote(f)} {typed(d)}" for f, d in zip(layout.features, layout.dtypes)]
    keys = ", ".join(quote(k) for k in layout.join_keys)
    exists = "IF NOT EXISTS " if if_not_exists else ""
    name = f"CONSTRAINT {quote(constraint)} " if constraint else ""
    return f"CREATE TABLE {exists}{table} ({', '.join(columns)}, {name}PRIMARY KEY ({keys})) {dialect.table_options}"


def insert_sql(dialect: SQLDialect, layout: ViewLayout, table: str) -> str:
    """An INSERT of one row of ``layout.columns`` into ``table``, by parameters."""
    marks = ", ".join(dialect.placeholder for _ in layout.columns)
    return f"INSERT INTO {table} ({', '.join(quote(c) for c in layout.columns)}) VALUES ({marks})"


def upsert_sql(dialect: SQLDialect, layout: ViewLayout, table: str, source: str | None = None) -> str:
    """The monotonic upsert into ``table``: a row replaces the stored one only if it beats it.

    ``source`` is a SELECT of ``layout.columns``; None: one row by parameters.
    """
    names = ", ".join(quote(c) for c in layout.columns)
    keys = ", ".join(quote(k) for k in layout.join_keys)
    updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in layout.columns if c not in layout.join_keys)
    rows = source if source is not None else f"VALUES ({', '.join(dialect.placeholder for _ in layout.columns)})"
    condition = newer_condition(layout, "excluded", table, dialect.distinct, dialect.order)
    return f"INSERT INTO {table} ({names}) {rows} ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {condition}"


def newer_condition(
    layout: ViewLayout,
    new: str,
    old: str,
    distinct: Callable[[str, str], str],
    order: Callable[[str, str], str] = _unordered,
) -> str:
    """SQL that is true when row ``new`` beats row ``old`` by the point-in-time tie-break.

    Greater event_timestamp; then greater created_timestamp (NULL is oldest); then, on a
    full tie, greater feature values in schema order with NULL greater than any value.
    ``distinct(a, b)`` renders a NULL-safe "a is not distinct from b".
    """

    def col(side: str, name: str) -> str:
        return f"{side}.{quote(name)}"

    ev_new, ev_old = col(new, "event_timestamp"), col(old, "event_timestamp")
    cr_new, cr_old = col(new, "created_timestamp"), col(old, "created_timestamp")
    # One flat OR of AND chains, not one nested level per feature: SQLite's parser overflows
    # its stack at about a dozen nested parentheses. AND binds tighter than OR.
    same_time = f"{ev_new} = {ev_old} and {distinct(cr_new, cr_old)}"
    terms = [
        f"{ev_new} > {ev_old}",
        f"{ev_new} = {ev_old} and {cr_new} is not null and {cr_old} is null",
        f"{ev_new} = {ev_old} and {cr_new} > {cr_old}",
    ]
    equal_so_far: list[str] = []
    for feature, dtype in zip(layout.features, layout.dtypes):
        a, b = order(col(new, feature), dtype), order(col(old, feature), dtype)
        greater = f"({a} > {b} or {a} is null and {b} is not null)"
        terms.append(" and ".join([same_time, *equal_so_far, greater]))
        equal_so_far.append(distinct(a, b))
    return "(" + " or ".join(terms) + ")"


class SQLBackend(Backend):
    """An online store that keeps views as SQL tables: the state table and the DDL, by ``dialect``."""

    dialect: SQLDialect

    def table(self, name: str) -> str:
        """The quoted name of the store's table ``name``."""
        return quote(name)

    def state_table_sql(self) -> str:
        """The statement creating the state table, one row per view."""
        typed = self.dialect.column_type
        return (
            f"CREATE TABLE IF NOT EXISTS {self.table(STATE_TABLE)} (view {typed('string')} PRIMARY KEY, "
            f"signature {typed('string')} NOT NULL, synced_at {typed('timestamp')} NOT NULL, "
            f"rows {typed('int64')} NOT NULL, state {typed('bytes')} NOT NULL)"
        )

    def create_table_sql(
        self, layout: ViewLayout, table: str, if_not_exists: bool = False, constraint: str | None = None
    ) -> str:
        """The statement creating ``layout``'s table, named ``table``, in this store's dialect."""
        return create_table_sql(self.dialect, layout, table, if_not_exists, constraint)

    def upsert_sql(self, layout: ViewLayout, table: str, source: str | None = None) -> str:
        """The statement upserting rows into ``table`` in this store's dialect (see ``upsert_sql``)."""
        return upsert_sql(self.dialect, layout, table, source)

    def stored_time(self, when: datetime) -> Any:
        """``when`` as the driver binds it to a timestamp column."""
        return when

    def read_state(self, layout: ViewLayout) -> SyncState | None:
        row = self.con.execute(
            f"SELECT state FROM {self.table(STATE_TABLE)} WHERE view = {self.dialect.placeholder}", (layout.name,)
        ).fetchone()
        return SyncState.from_bytes(row[0], layout.name) if row else None

    def states(self) -> list[SyncState]:
        rows = self.con.execute(f"SELECT view, state FROM {self.table(STATE_TABLE)} ORDER BY view").fetchall()
        return [s for s in (SyncState.from_bytes(r[1], r[0]) for r in rows) if s is not None]

    def save_state_if_missing(self, state: SyncState) -> None:
        """Write ``state`` unless the view has one (a push into a view no sync wrote yet)."""
        marks = ", ".join(self.dialect.placeholder for _ in range(5))
        self.con.execute(
            f"INSERT INTO {self.table(STATE_TABLE)} (view, signature, synced_at, rows, state) VALUES ({marks}) "
            "ON CONFLICT (view) DO NOTHING",
            (state.view, state.signature, self.stored_time(state.synced_at), state.rows, state.to_bytes()),
        )

    def save_push(self, view: str, pushed_at: datetime, rows: int) -> None:
        """Record a push into ``view`` (in the caller's transaction, with the pushed rows)."""
        typed = self.dialect.column_type
        self.con.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table(PUSH_TABLE)} (view {typed('string')} PRIMARY KEY, "
            f"pushed_at {typed('timestamp')} NOT NULL, rows {typed('int64')} NOT NULL)"
        )
        marks = ", ".join(self.dialect.placeholder for _ in range(3))
        self.con.execute(
            f"INSERT INTO {self.table(PUSH_TABLE)} (view, pushed_at, rows) VALUES ({marks}) "
            "ON CONFLICT (view) DO UPDATE SET pushed_at = excluded.pushed_at, rows = excluded.rows",
            (view, self.stored_time(pushed_at), rows),
        )

    def push_times(self) -> dict[str, datetime]:
        from datetime import timezone

        try:
            rows = self.con.execute(f"SELECT view, pushed_at FROM {self.table(PUSH_TABLE)}").fetchall()
        except Exception:  # no push yet: the table does not exist (the connection autocommits)
            return {}
        found = {}
        for view, at in rows:
            when = datetime.fromisoformat(at) if isinstance(at, str) else at
            found[view] = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
        return found

    def save_state(self, state: SyncState) -> None:
        """Write ``state`` (in the caller's transaction: a view's rows and its state commit together)."""
        marks = ", ".join(self.dialect.placeholder for _ in range(5))
        self.con.execute(
            f"INSERT INTO {self.table(STATE_TABLE)} (view, signature, synced_at, rows, state) VALUES ({marks}) "
            "ON CONFLICT (view) DO UPDATE SET signature = excluded.signature, synced_at = excluded.synced_at, "
            "rows = excluded.rows, state = excluded.state",
            (state.view, state.signature, self.stored_time(state.synced_at), state.rows, state.to_bytes()),
        )
