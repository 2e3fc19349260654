"""The interface every online store implements, and the pieces the stores share.

The SQL stores (SQLite, Postgres) share more: their tables, sync state and upsert are
``featurehouse.sync.sql_store``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from featurehouse.sync.layout import SyncState, ViewLayout
    from featurehouse.sync.search_types import SearchHit, SearchRequest

# progress(rows_done) after each written batch
Progress = Callable[[int], None]
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # Redis stores times as microseconds since; HTTP's "no time"


class SyncBusyError(OnlineStoreError):
    """Another sync holds the online store's sync lock."""


class Backend:
    """One online store: the sync's writer and the factory of readers."""

    description: str = ""
    _con: Any = None  # the store's connection, opened by connect() on first use
    # rows the last write() did not write because the store holds a row that beats them
    # (the monotonic rule); rows equal to the stored ones are not counted
    kept: int = 0

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

    def preflight(self, layouts: Sequence[ViewLayout]) -> None:
        """Check, before any view is written, what these views need of the store (one sentence if missing)."""

    def lock(self, wait: float) -> contextlib.AbstractContextManager[None]:
        """Hold the store's sync lock; wait up to ``wait`` seconds, then raise SyncBusyError."""
        raise NotImplementedError

    def read_state(self, layout: ViewLayout) -> SyncState | None:
        """The sync state of ``layout``'s view, or None when it was never synced."""
        raise NotImplementedError

    def states(self) -> list[SyncState]:
        """The sync state of every view in the store."""
        raise NotImplementedError

    def write(
        self, layout: ViewLayout, table: pa.Table, changed: np.ndarray | None, state: SyncState, progress: Progress
    ) -> int:
        """Write a snapshot and commit ``state``; return how many entities were written.

        ``changed`` is None for a full refresh (the view is rebuilt from ``table`` and
        entities not in it are dropped); otherwise the mask of rows to upsert, each only
        if it is newer than what the store holds.
        """
        raise NotImplementedError

    def push_rows(self, layout: ViewLayout, table: pa.Table, pushed_at: datetime) -> int:
        """Write pushed rows (normalised to ``layout``), each only if it beats the stored row, and
        record the push; return how many were written (``kept``: how many lost to a newer stored row).

        Never touches the view's sync state, except to write ``pushed_state`` when there is none.
        """
        raise NotImplementedError

    def push_times(self) -> dict[str, datetime]:
        """When each view last received a push (views never pushed to are absent)."""
        return {}

    def reader(self, timeout: float | None = None) -> Reader:
        """A reader; with ``timeout`` every store call it makes gives up after about that many seconds."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection; the backend can connect again."""
        pass

    def search(self, layout: ViewLayout, request: SearchRequest) -> list[SearchHit]:
        """The ``request.top_k`` documents of ``layout``'s view nearest ``request.query``, best first.

        Stores without vector search keep this: one sentence naming those that have it.
        """
        from featurehouse.sync.search_types import NoVectorSearchError

        name = type(self).__name__.removesuffix("Backend").lower()
        store = "redis" if name.startswith("redis") else name or "this store"
        raise NoVectorSearchError(
            f"vector search is supported on the sqlite and postgres online stores; {store} has no vector "
            f"search, so feature view '{layout.name}' cannot be searched (set online_store.type to sqlite "
            "or postgres in featurehouse.yml to search it)"
        )


class Reader:
    """Reads feature rows; ``prepare`` once per (view, features), then ``read`` many times."""

    def prepare(self, layout: ViewLayout, features: Sequence[str]) -> Any:
        """What the store needs to read ``features`` of one view, made once and reused by ``read``."""
        raise NotImplementedError

    def read(self, requests: Sequence[tuple[Any, Sequence[tuple[Any, ...]]]]) -> list[list[Any]]:
        """For each (prepared view, entity key tuples): per entity None or (event datetime, [values]).

        A view the store holds no synced snapshot of gives None instead of its list.
        """
        raise NotImplementedError

    def ping(self) -> None:
        """One round trip to the store; raise OnlineStoreError when it does not answer."""
        raise NotImplementedError

    def interrupt(self, thread_id: int) -> None:
        """Make the store call running in thread ``thread_id`` fail now (its deadline passed).

        Called from another thread; the interrupted call raises OnlineStoreError and the
        thread's next call opens a new connection. A no-op when the thread holds none.
        """

    def close(self) -> None:
        """Close every connection the reader opened."""
        pass


def rows_to_write(table: pa.Table, changed: np.ndarray | None) -> pa.Table:
    """The rows of ``table`` that ``changed`` marks (all of them when it is None)."""
    import numpy as np
    import pyarrow as pa

    if changed is None or bool(changed.all()):
        return table
    # a bitmap built by hand: pa.array(numpy) imports pandas, 0.3 s of a cron run
    bits = pa.py_buffer(np.packbits(changed, bitorder="little"))
    return table.filter(pa.Array.from_buffers(pa.bool_(), len(changed), [None, bits]))


def lock_owner() -> str:
    """Who holds the sync lock, as ``busy`` reports it: process, host and start time."""
    return f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S', time.gmtime())} UTC"


def busy(description: str, owner: str, waited: float = 0) -> SyncBusyError:
    """The error for a sync that finds another one writing to the same store."""
    advice = f"still busy after waiting {waited:g} s" if waited > 0 else "use --wait SECONDS to wait for it"
    return SyncBusyError(
        f"another featurehouse sync is writing to {description} ({owner or 'owner unknown'}); "
        f"this one exits without changes ({advice})"
    )


def reason(error: BaseException, url: str | None = None) -> str:
    """The first line of ``error``'s message, with ``url``'s password (if any) blanked out.

    The Postgres and Redis stores raise their OnlineStoreError ``from None`` after this: the
    driver's exception, which a chained traceback would print, can quote the URL with its
    password (libpq echoes a connection string it cannot parse).
    """
    text = str(error).strip()
    text = text.splitlines()[0] if text else type(error).__name__
    return scrub(text, url) if url else text


@functools.lru_cache(maxsize=64)  # a reader names its store in every read (Redis: ~3 µs a parse)
def redact_url(url: str) -> str:
    """``url`` fit to print: ``host:port/path``, never its user info or query (passwords)."""
    from urllib.parse import urlsplit

    if "://" not in url:  # a libpq key=value string: name only where it points
        pairs = dict(re.findall(r"(\w+)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url))
        return f"{pairs.get('host', 'localhost')}:{pairs.get('port', 5432)}/{pairs.get('dbname', '')}".replace("'", "")
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port  # raises ValueError when it is not a number in 0-65535
    except ValueError:
        return "(the configured URL, which does not parse)"
    if ":" in host:
        host = f"[{host}]"
    if port is None:
        port = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6379}.get(parts.scheme)
    return f"{host}{'' if port is None else f':{port}'}{parts.path or ''}"


def url_secrets(url: str) -> list[str]:
    """The secrets in ``url`` (its password, raw and decoded, and query values named like one)."""
    from urllib.parse import parse_qsl, unquote, urlsplit

    secrets: list[str] = []
    for _, value in re.findall(r"(password|passfile|sslpassword)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", url):
        secrets += [value, value.strip("'")]  # a libpq key=value string
    try:
        parts = urlsplit(url)
        userinfo = parts.netloc.rpartition("@")[0]
        if ":" in userinfo:
            secrets.append(userinfo.split(":", 1)[1])
        for key, value in parse_qsl(parts.query, keep_blank_values=False):
            if "pass" in key.lower() or "secret" in key.lower() or "token" in key.lower():
                secrets.append(value)
    except ValueError:
        pass
    secrets += [unquote(s) for s in secrets]
    return sorted({s for s in secrets if s}, key=len, reverse=True)


def scrub(text: str, url: str) -> str:
    """``text`` with every secret of ``url`` replaced by ``***`` (drivers may echo parts of a URL)."""
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


# ---- what readers hand back besides values ----------------------------------------------------------
class Marker:
    """A value that stands for a status, never for data."""

    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


UNSYNCED = Marker("UNSYNCED")  # a feature the view declares but the store has not synced: NOT_FOUND
INVALID = Marker("INVALID")  # a stored value that does not decode as its dtype: status INVALID

_log = logging.getLogger("featurehouse.online.reader")
_reported: set[tuple[str, ...]] = set()


def report_corrupt(store: str, view: str, key: Any, field: str, value: Any, problem: str) -> None:
    """Log a corrupt stored value once per (store, view, entity, field): reads answer it INVALID."""
    token = (store, view, repr(key), field)
    if token in _reported:
        return
    if len(_reported) > 10_000:  # a bound: a badly damaged store must not grow this forever
        _reported.clear()
    _reported.add(token)
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:60] + "…"
    _log.warning(
        "%s: feature view '%s', entity %s, field '%s' holds %s, which is not valid (%s); reads answer it "
        "with status INVALID until a sync rewrites it ('featurehouse sync --full-refresh --views %s')",
        store,
        view,
        key,
        field,
        shown,
        problem,
        view,
    )


def decode_values(raw: Sequence[Any], decoders: Sequence[Any], on_bad: Callable[[int, Any, str], None]) -> list[Any]:
    """``raw`` decoded by ``decoders`` (None: as is); a value a decoder rejects becomes INVALID."""
    try:
        return [v if d is None or v is None else d(v) for v, d in zip(raw, decoders)]
    except Exception:  # one bad cell: decode one by one to find it
        out = []
        for i, (v, d) in enumerate(zip(raw, decoders)):
            try:
                out.append(v if d is None or v is None else d(v))
            except Exception as error:  # any decoding failure is corruption
                on_bad(i, v, reason(error))
                out.append(INVALID)
        return out


def decoder(dtype: str, scalars: Mapping[str, Any], array: Callable[[str], Any]) -> Any:
    """A store's decoder of ``dtype``: ``scalars[dtype]``, or ``array(element dtype)`` for ``array<...>``."""
    return array(dtype[len("array<") : -1]) if dtype.startswith("array<") else scalars[dtype]


def held(mask: Sequence[bool]) -> tuple[list[int], frozenset[int]]:
    """The positions of the features ``mask`` says the store holds, and those of the others."""
    return [i for i, h in enumerate(mask) if h], frozenset(i for i, h in enumerate(mask) if not h)


def spread(values: Sequence[Any], positions: Sequence[int], width: int) -> list[Any]:
    """``values`` of the held features at their ``positions`` among ``width``; the others UNSYNCED."""
    full: list[Any] = [UNSYNCED] * width
    for i, v in zip(positions, values):
        full[i] = v
    return full


def synced_mask(
    layout: ViewLayout, features: Sequence[str], signature: str | None, state_features: dict[str, str] | None
) -> tuple[bool, ...]:
    """Which of ``features`` the store holds as their current dtype, by the view's sync state.

    A state with the layout's signature holds them all; a state of another layout holds
    those it lists with the same dtype (a state written before features were recorded: none).
    """
    if signature == layout.signature:
        return tuple(True for _ in features)
    if state_features is None:
        return tuple(False for _ in features)
    return tuple(state_features.get(f) == layout.dtype(f) for f in features)


class ViewRows(list):
    """A view's rows, and the positions of the requested features the store has not synced."""

    __slots__ = ("unsynced",)

    def __init__(self, rows: Any = (), unsynced: frozenset[int] = frozenset()):
        super().__init__(rows)
        self.unsynced = unsynced


# ---- each reader thread's own connection -------------------------------------------------------------
class Connections:
    """Each thread's own connection to a store (no pool lock per read), and all of them.

    Another thread finds a thread's connection to interrupt it (its deadline passed);
    ``close`` closes them all. Each store opens and closes its own kind of connection.
    """

    def __init__(self) -> None:
        self.local = threading.local()  # .con: this thread's connection; a store may keep more per thread
        self._lock = threading.Lock()
        self._all: list[Any] = []
        self._by_thread: dict[int, Any] = {}
        self._interrupted: set[int] = set()

    def get(self) -> Any:
        """This thread's connection (None: it has none)."""
        return getattr(self.local, "con", None)

    def add(self, con: Any) -> Any:
        """Make ``con`` this thread's connection."""
        self.local.con = con
        with self._lock:
            self._all.append(con)
            self._by_thread[threading.get_ident()] = con
        return con

    def drop(self) -> None:
        """Forget this thread's connection (it is broken): the thread's next call opens a new one."""
        self.local.con = None

    def interrupt(self, thread_id: int) -> Any:
        """Mark thread ``thread_id`` interrupted and return its connection (None: it has none)."""
        with self._lock:
            self._interrupted.add(thread_id)
            return self._by_thread.get(thread_id)

    def interrupted(self) -> bool:
        """Whether this thread was interrupted since it last cleared that."""
        return threading.get_ident() in self._interrupted

    def clear_interrupt(self) -> None:
        """Forget an interrupt of the calling thread, so that its next call runs."""
        self._interrupted.discard(threading.get_ident())

    def close(self, close: Callable[[Any], Any]) -> None:
        """``close`` every connection; threads open new ones on their next call."""
        with self._lock:
            for con in self._all:
                with contextlib.suppress(Exception):
                    close(con)
            self._all.clear()
            self._by_thread.clear()
        self.local = threading.local()


def wait_for(wait: float, attempt: Callable[[], bool], on_busy: Callable[[], BaseException]) -> None:
    """Call ``attempt`` until it returns True; after ``wait`` seconds raise ``on_busy()``."""
    deadline = time.monotonic() + max(wait, 0)
    while not attempt():
        if time.monotonic() >= deadline:
            raise on_busy()
        time.sleep(0.2)
