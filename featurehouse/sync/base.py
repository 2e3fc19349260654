"""The interface every online store implements, and the pieces the SQL stores share."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from featurehouse.sync.layout import SyncState, ViewLayout

# progress(rows_done) after each written batch
Progress = Callable[[int], None]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class SyncBusyError(OnlineStoreError):
    """Another sync holds the online store's sync lock."""


class Backend:
    """One online store: the sync's writer and the factory of readers."""

    kind: str = ""
    description: str = ""
    _con: Any = None  # the store's connection, opened by connect() on first use

    @property
    def con(self) -> Any:
        """The connection, opened on first use."""
        if self._con is None:
            self.connect()
        assert self._con is not None
        return self._con

    def exists(self) -> bool:
        """Whether there is a store to read yet (an embedded one is created by its first sync)."""
        return True

    def connect(self) -> None:
        """Reach the store now; raise OnlineStoreError with one sentence when it cannot be reached."""
        raise NotImplementedError

    def lock(self, wait: float) -> contextlib.AbstractContextManager[None]:
        """Hold the store's sync lock; wait up to ``wait`` seconds, then raise SyncBusyError."""
        raise NotImplementedError

    def read_state(self, layout: "ViewLayout") -> "SyncState | None":
        raise NotImplementedError

    def states(self) -> list["SyncState"]:
        """The sync state of every view in the store."""
        raise NotImplementedError

    def write(self, layout: "ViewLayout", table: "pa.Table", changed: "np.ndarray | None",
              state: "SyncState", progress: Progress) -> int:
        """Write a snapshot and commit ``state``; return how many entities were written.

        ``changed`` is None for a full refresh (the view is rebuilt from ``table`` and
        entities not in it are dropped); otherwise the mask of rows to upsert, each only
        if it is newer than what the store holds.
        """
        raise NotImplementedError

    def reader(self) -> "Reader":
        raise NotImplementedError

    def close(self) -> None:
        pass


class Reader:
    """Reads feature rows; ``prepare`` once per (view, features), then ``read`` many times."""

    def prepare(self, layout: "ViewLayout", features: Sequence[str]) -> Any:
        raise NotImplementedError

    def read(self, requests: Sequence[tuple[Any, Sequence[tuple[Any, ...]]]]) -> list[list[Any]]:
        """For each (prepared view, entity key tuples): per entity None or (event datetime, [values]).

        A view the store holds no synced snapshot of gives None instead of its list.
        """
        raise NotImplementedError

    def close(self) -> None:
        pass


def rows_to_write(table: "pa.Table", changed: "np.ndarray | None") -> "pa.Table":
    """The rows of ``table`` that ``changed`` marks (all of them when it is None)."""
    import numpy as np
    import pyarrow as pa

    if changed is None or bool(changed.all()):
        return table
    # a bitmap built by hand: pa.array(numpy) imports pandas, 0.3 s of a cron run
    bits = pa.py_buffer(np.packbits(changed, bitorder="little"))
    return table.filter(pa.Array.from_buffers(pa.bool_(), len(changed), [None, bits]))


def lock_owner() -> str:
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S', time.gmtime())} UTC"


def busy(description: str, owner: str, waited: float = 0) -> SyncBusyError:
    advice = (f"still busy after waiting {waited:g} s" if waited > 0 else "use --wait SECONDS to wait for it")
    return SyncBusyError(
        f"another featurehouse sync is writing to {description} ({owner or 'owner unknown'}); "
        f"this one exits without changes ({advice})"
    )


def reason(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# ---- SQL pieces shared by SQLite and Postgres ----------------------------------------------------------
def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def newer_condition(
    layout: "ViewLayout", new: str, old: str, distinct: Callable[[str, str], str],
    order: Callable[[str, str], str] = lambda expression, dtype: expression,
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
    terms = [f"{ev_new} > {ev_old}",
             f"{ev_new} = {ev_old} and {cr_new} is not null and {cr_old} is null",
             f"{ev_new} = {ev_old} and {cr_new} > {cr_old}"]
    equal_so_far: list[str] = []
    for feature, dtype in zip(layout.features, layout.dtypes):
        a, b = order(col(new, feature), dtype), order(col(old, feature), dtype)
        greater = f"({a} > {b} or {a} is null and {b} is not null)"
        terms.append(" and ".join([same_time, *equal_so_far, greater]))
        equal_so_far.append(distinct(a, b))
    return "(" + " or ".join(terms) + ")"


def wait_for(wait: float, attempt: Callable[[], bool], on_busy: Callable[[], BaseException]) -> None:
    """Call ``attempt`` until it returns True; after ``wait`` seconds raise ``on_busy()``."""
    deadline = time.monotonic() + max(wait, 0)
    while not attempt():
        if time.monotonic() >= deadline:
            raise on_busy()
        time.sleep(0.2)
