"""The Redis online store (redis-py), with a layout any language can read.

Layout (``P`` is ``online_store.key_prefix``, default ``fh``):

- one hash per entity and view: ``P:<view>:<key>``, where ``<key>`` is the entity's join
  key values in the view's join-key order, joined by ``:``; integers in decimal, booleans
  ``true``/``false``, strings and bytes as they are with ``\\`` and ``:`` escaped by a
  backslash. Example: ``fh:driver_hourly_stats:1001``.
- fields: ``_ts`` the event time and ``_created`` the created time (microseconds since
  the Unix epoch, UTC, decimal; ``_created`` absent when NULL), then one field per
  feature: integers in decimal; floats as the shortest decimal that reads back as the
  same float64 (a float32 is first widened to float64); booleans ``true``/``false``;
  strings UTF-8; bytes raw; timestamps as epoch microseconds; arrays as JSON. A NULL
  feature has no field.
- a reader computes ``now - ttl`` itself: a hash whose ``_ts`` is older is expired.
- sync bookkeeping: ``P:#state:<view>`` (a hash) and ``P:#lock``. Readers only ask
  whether ``P:#state:<view>`` exists (the view has been synced), so that a missing hash
  in a synced aggregation view reads as an empty window. Deleting ``P:#state:<view>``
  makes the next sync a full refresh.

Writes are scripted: one EVALSHA per batch of entities writes each hash only if its row
beats the stored one by the point-in-time tie-break, so an older row never replaces a
newer one; batches are pipelined and their commands encoded with Arrow, not per value in
Python. Every hash is written whole by one script call, so a reader never sees half an
entity. The sync lock is ``SET P:#lock NX PX`` with a heartbeat; a lock left by a process
that died on this host is taken over at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import uuid
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.base import (
    EPOCH,
    INVALID,
    Backend,
    Connections,
    Progress,
    Reader,
    ViewRows,
    busy,
    decode_values,
    decoder,
    held,
    lock_owner,
    reason,
    redact_url,
    report_corrupt,
    rows_to_write,
    spread,
    synced_mask,
    wait_for,
)
from featurehouse.sync.layout import SyncState, ViewLayout, check_push_target, pushed_state

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import redis

BATCH = 1_000  # entities per EVALSHA (or plain HSETs per send)
PIPELINE = 16  # command groups in flight
CHUNK = 100_000  # rows encoded at a time
LOCK_MS = 15_000

# KEYS: entity hashes. ARGV: n, mode ('c' conditional | 'f' force), kinds (one letter per
# feature: n numeric, s bytes, j JSON), n field names, then per entity: event µs, created µs
# ('' = NULL), null mask ('1' = NULL, one per feature), n values.
WRITE_SCRIPT = r"""
local n = tonumber(ARGV[1])
local force = ARGV[2] == 'f'
local kinds = ARGV[3]
local fields = {}
for j = 1, n do fields[j] = ARGV[3 + j] end
local per = 3 + n
local base = 4 + n
local written = 0
local kept = 0
local wrong = nil
local function beats(key, o, ts, cr)
  local cur = redis.pcall('HMGET', key, '_ts', '_created')
  if cur.err then wrong = key; return false end
  if not cur[1] then return true end
  local a, b = tonumber(ts), tonumber(cur[1])
  if a ~= b then return a > b end
  local c1 = nil
  if cr ~= '' then c1 = tonumber(cr) end
  local c2 = nil
  if cur[2] then c2 = tonumber(cur[2]) end
  if c1 ~= c2 then
    if c2 == nil then return true end
    if c1 == nil then return false end
    return c1 > c2
  end
  local old = redis.call('HMGET', key, unpack(fields))
  local mask = ARGV[o + 2]
  for j = 1, n do
    local new_null = mask:sub(j, j) == '1'
    local v_old = old[j]
    if new_null then
      if v_old then return true end
    elseif not v_old then
      return false
    else
      local v_new = ARGV[o + 2 + j]
      if kinds:sub(j, j) == 'n' then v_new = tonumber(v_new); v_old = tonumber(v_old) end
      if v_new ~= v_old then return v_new > v_old end
    end
  end
  return nil  -- the same row: neither written nor kept
end
-- a key of another type than a hash: a full refresh replaces it; a conditional write has stopped above
local function hset(key, args)
  local r = redis.pcall('HSET', key, unpack(args))
  if type(r) == 'table' and r.err then
    redis.call('DEL', key)
    redis.call('HSET', key, unpack(args))
  end
end
-- one argument table reused for every complete row (no NULLs): the common, fast case
local full = {'_ts', '', '_created', ''}
for j = 1, n do full[3 + 2 * j] = fields[j]; full[4 + 2 * j] = '' end
local complete = string.rep('0', n)
for i, key in ipairs(KEYS) do
  local o = base + (i - 1) * per
  local ts, cr, mask = ARGV[o], ARGV[o + 1], ARGV[o + 2]
  local wins = force or beats(key, o, ts, cr)
  if not wins then
    -- the stored row is newer (or the same): keep it
    if wrong then return redis.error_reply('FHWRONGTYPE ' .. wrong) end
    if wins == false then kept = kept + 1 end
  elseif mask == complete and cr ~= '' then
    full[2] = ts
    full[4] = cr
    for j = 1, n do full[4 + 2 * j] = ARGV[o + 2 + j] end
    hset(key, full)
    written = written + 1
  else
    local set = {'_ts', ts}
    local del = {}
    if cr == '' then del[#del + 1] = '_created' else set[#set + 1] = '_created'; set[#set + 1] = cr end
    for j = 1, n do
      if mask:sub(j, j) == '1' then del[#del + 1] = fields[j]
      else set[#set + 1] = fields[j]; set[#set + 1] = ARGV[o + 2 + j] end
    end
    if #del > 0 then redis.pcall('HDEL', key, unpack(del)) end
    hset(key, set)
    written = written + 1
  end
end
return {written, kept}
"""

# KEYS[1] lock; ARGV[1] expected value, ARGV[2] ms: extend the lock only if we still hold it
EXTEND_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
# KEYS[1] lock; ARGV[1] expected value: delete only if it still holds that value
RELEASE_SCRIPT = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _kind(dtype: str) -> str:
    if dtype.startswith("array<"):
        return "j"
    return "n" if dtype in ("int32", "int64", "float32", "float64", "timestamp") else "s"


def _escape_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def key_part(value: Any) -> str | bytes:
    """One join key value as it appears in a Redis key."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, bytes):
        return value.replace(b"\\", b"\\\\").replace(b":", b"\\:")
    return _escape_text(str(value))


def entity_key(prefix: str, view: str, values: Sequence[Any]) -> bytes:
    """The Redis key of one entity's hash: ``prefix:view:key parts``."""
    parts = [key_part(v) for v in values]
    encoded = b":".join(p if isinstance(p, bytes) else p.encode() for p in parts)
    return f"{prefix}:{view}:".encode() + encoded


# ---- Arrow encoders (the sync's write path) ------------------------------------------------------------
def _text(column: pa.Array, dtype: str) -> pa.Array:
    """A column as the binary text stored in Redis (nulls stay null)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if dtype in ("int32", "int64", "float64", "bool"):
        return pc.cast(pc.cast(column, pa.string()), pa.binary())
    if dtype == "float32":
        return pc.cast(pc.cast(pc.cast(column, pa.float64()), pa.string()), pa.binary())
    if dtype == "timestamp":
        return pc.cast(pc.cast(pc.cast(column, pa.int64()), pa.string()), pa.binary())
    if dtype == "string":
        return pc.cast(column, pa.binary())
    if dtype == "bytes":
        return column
    # arrays: JSON, floats widened, timestamps as epoch microseconds
    values = column.to_pylist()

    def plain(v: Any) -> Any:
        if isinstance(v, datetime):
            return (v.replace(tzinfo=timezone.utc) - EPOCH) // timedelta(microseconds=1)
        if isinstance(v, bytes):
            return v.decode("latin-1")
        return v

    return pa.array(
        [None if v is None else json.dumps([plain(x) for x in v], separators=(",", ":")).encode() for v in values],
        pa.binary(),
    )


def _key_text(column: pa.Array, dtype: str) -> pa.Array:
    import pyarrow as pa
    import pyarrow.compute as pc

    if dtype in ("string", "bytes"):
        binary = pc.cast(column, pa.binary())
        escaped = pc.replace_substring(binary, b"\\", b"\\\\")
        return pc.replace_substring(escaped, b":", b"\\:")
    if dtype in ("int32", "int64", "bool"):
        return pc.cast(pc.cast(column, pa.string()), pa.binary())
    raise OnlineStoreError(f"join keys of dtype {dtype} are not supported by the Redis online store")


def _bulk(values: pa.Array) -> pa.Array:
    """RESP bulk strings ``$<len>\\r\\n<bytes>\\r\\n`` for a binary array without nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = pc.cast(pc.cast(pc.binary_length(values), pa.string()), pa.binary())
    return pc.binary_join_element_wise(
        pa.scalar(b"$"), lengths, pa.scalar(b"\r\n"), values, pa.scalar(b"\r\n"), pa.scalar(b"")
    )


def _bulk_bytes(value: bytes | str) -> bytes:
    data = value.encode() if isinstance(value, str) else value
    return b"$%d\r\n%s\r\n" % (len(data), data)


class _Chunks:
    """A large_binary array whose consecutive elements can be taken as one contiguous bytes slice."""

    def __init__(self, array: pa.Array):
        import numpy as np
        import pyarrow as pa

        array = array.cast(pa.large_binary())
        if isinstance(array, pa.ChunkedArray):
            array = array.combine_chunks()
        self.offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
        data = array.buffers()[2]
        self.data = memoryview(data) if data is not None else memoryview(b"")

    def slice(self, start: int, stop: int) -> memoryview:
        return self.data[self.offsets[start] : self.offsets[stop]]


def _client(url: str) -> redis.Redis:
    import redis

    try:
        return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=60)
    except ValueError as error:  # a bad port or scheme: redis-py says so before connecting
        raise OnlineStoreError(
            f"online_store.url {redact_url(url)} is not a valid Redis URL: {reason(error, url)}"
        ) from None


def drain_write_replies(
    connection: Any, pending: list[tuple[int, int]], limit: int, progress: Progress
) -> tuple[int, int]:
    """Read the write script's replies of the oldest command groups until at most ``limit`` are in
    flight; (entities written, entities kept because the stored row was newer)."""
    written = kept = 0
    while len(pending) > limit:
        replies, count = pending.pop(0)
        for _ in range(replies):
            reply = connection.read_response()
            written += int(reply[0])
            kept += int(reply[1])
        progress(count)
    return written, kept


class RedisBackend(Backend):
    """Writes the online store to Redis: one hash per entity and view, and a state key per view."""

    def __init__(self, url: str, prefix: str):
        self.url = url
        self.prefix = prefix
        self.description = f"the Redis online store {redact_url(url)} (prefix {prefix})"
        self._client: redis.Redis | None = None

    @property
    def client(self) -> redis.Redis:
        """The Redis client, connected on first use."""
        if self._client is None:
            self.connect()
        assert self._client is not None
        return self._client

    def connect(self) -> None:
        import redis

        if self._client is not None:
            return
        client = self._make_client()
        try:
            client.ping()
        except redis.RedisError as error:
            raise OnlineStoreError(f"cannot reach {self.description}: {reason(error, self.url)}") from None
        self._client = client

    def _make_client(self) -> redis.Redis:
        """A new client of the store (not connected yet); the cluster store makes a cluster client."""
        return _client(self.url)

    def state_key(self, view: str) -> str:
        """The key holding the sync state of ``view``."""
        return f"{self.prefix}:#state:{view}"

    @property
    def lock_key(self) -> str:
        """The key of the store's sync lock."""
        return f"{self.prefix}:#lock"

    # ---- lock --------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, wait: float) -> Iterator[None]:
        import redis

        client = self.client
        host = socket.gethostname()
        value = f"{lock_owner()}|{host}|{os.getpid()}|{uuid.uuid4().hex}"
        release = client.register_script(RELEASE_SCRIPT)

        def attempt() -> bool:
            if client.set(self.lock_key, value, nx=True, px=LOCK_MS):
                return True
            # replies are bytes: the client is made without decode_responses
            held = cast("bytes | None", client.get(self.lock_key))
            if held is not None:
                owner_host, owner_pid = _lock_holder(held)
                if owner_host == host and owner_pid and not _alive(owner_pid):
                    release(keys=[self.lock_key], args=[held])  # its process died (kill -9): take over
                    return bool(client.set(self.lock_key, value, nx=True, px=LOCK_MS))
            return False

        def owner() -> str:
            held = cast("bytes | None", client.get(self.lock_key))
            return held.decode(errors="replace").split("|", 1)[0] if held else ""

        try:
            wait_for(wait, attempt, lambda: busy(self.description, owner(), wait))
        except redis.RedisError as error:
            raise OnlineStoreError(
                f"cannot take the sync lock in {self.description}: {reason(error, self.url)}"
            ) from None
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(value, stop), daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            with contextlib.suppress(redis.RedisError):
                release(keys=[self.lock_key], args=[value])

    def _heartbeat(self, value: str, stop: threading.Event) -> None:
        import redis

        client = self._make_client()
        extend = client.register_script(EXTEND_SCRIPT)
        while not stop.wait(LOCK_MS / 3000):
            with contextlib.suppress(redis.RedisError):
                extend(keys=[self.lock_key], args=[value, LOCK_MS])
        client.close()

    # ---- state -------------------------------------------------------------------------
    def read_state(self, layout: ViewLayout) -> SyncState | None:
        data = cast("bytes | None", self.client.hget(self.state_key(layout.name), "state"))
        return SyncState.from_bytes(data, layout.name) if data else None

    def states(self) -> list[SyncState]:
        found = []
        for key in sorted(self.client.scan_iter(match=_glob_escape(f"{self.prefix}:#state:") + "*", count=1000)):
            data = cast("bytes | None", self.client.hget(key, "state"))
            view = key.decode(errors="replace").removeprefix(f"{self.prefix}:#state:")
            state = SyncState.from_bytes(data, view) if data else None
            if state is not None:
                found.append(state)
        return found

    # ---- writes ------------------------------------------------------------------------
    def write(
        self, layout: ViewLayout, table: pa.Table, changed: np.ndarray | None, state: SyncState, progress: Progress
    ) -> int:
        import redis

        self.kept = 0
        rows = rows_to_write(table, changed)
        state_key = self.state_key(layout.name)
        try:
            # A full refresh must delete entities that are gone, which takes a SCAN of the
            # keyspace; a view that never had a state key has nothing to delete. The
            # marker makes a full refresh that dies half-way look "existing" to the next one.
            scan = changed is None and bool(self.client.exists(state_key))
            if changed is None:
                self.client.hset(state_key, "incomplete", "1")
            written = self._write_rows(layout, rows, force=changed is None, progress=progress)
            if scan:
                self._drop_gone(layout, rows)
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(
                state_key,
                mapping={
                    "state": state.to_bytes(),
                    "synced_at": state.synced_at.isoformat(),
                    "rows": state.rows,
                    "signature": state.signature,
                },
            )
            pipe.hdel(state_key, "incomplete")
            pipe.execute()
        except redis.RedisError as error:
            text = str(error)
            if "FHWRONGTYPE " in text:
                key = text.split("FHWRONGTYPE ", 1)[1].split()[0]
                raise OnlineStoreError(
                    f"the Redis key {key} in {self.description} holds another type than the hash featurehouse "
                    f"keeps for an entity of view '{layout.name}'; run 'featurehouse sync --full-refresh --views "
                    f"{layout.name}' to replace it"
                ) from None
            raise OnlineStoreError(
                f"writing {layout.name} to {self.description} failed: {reason(error, self.url)}"
            ) from None
        return written

    def push_rows(self, layout: ViewLayout, table: pa.Table, pushed_at: datetime) -> int:
        import redis

        self.kept = 0
        state_key = self.state_key(layout.name)
        try:
            state = self.read_state(layout)
            check_push_target(layout, state, self.description)
            # each entity's hash is written whole by one script call, only if the row beats the stored one
            written = self._write_rows(layout, table, force=False, progress=lambda rows: None)
            if state is None:
                made = pushed_state(layout, pushed_at)
                # HSETNX: a sync that wrote its state meanwhile keeps it
                if self.client.hsetnx(state_key, "signature", made.signature):
                    self.client.hset(
                        state_key,
                        mapping={"state": made.to_bytes(), "synced_at": made.synced_at.isoformat(), "rows": 0},
                    )
            self.client.hset(f"{self.prefix}:#push", layout.name, pushed_at.isoformat())
        except redis.RedisError as error:
            text = str(error)
            if "FHWRONGTYPE " in text:
                key = text.split("FHWRONGTYPE ", 1)[1].split()[0]
                raise OnlineStoreError(
                    f"the Redis key {key} in {self.description} holds another type than the hash featurehouse "
                    f"keeps for an entity of view '{layout.name}'; run 'featurehouse sync --full-refresh --views "
                    f"{layout.name}' to replace it"
                ) from None
            raise OnlineStoreError(
                f"pushing to {layout.name} in {self.description} failed: {reason(error, self.url)}"
            ) from None
        return written

    def push_times(self) -> dict[str, datetime]:
        raw = cast("dict[bytes, bytes]", self.client.hgetall(f"{self.prefix}:#push"))
        return {k.decode(): datetime.fromisoformat(v.decode()) for k, v in raw.items()}

    def _keys(self, layout: ViewLayout, rows: pa.Table) -> pa.Array:
        import pyarrow as pa
        import pyarrow.compute as pc

        parts = [_key_text(rows.column(k).combine_chunks(), d) for k, d in zip(layout.join_keys, layout.key_dtypes)]
        prefix = pa.scalar(f"{self.prefix}:{layout.name}:".encode())
        if len(parts) == 1:
            return pc.binary_join_element_wise(prefix, parts[0], pa.scalar(b""))
        joined = pc.binary_join_element_wise(*parts, pa.scalar(b":"))
        return pc.binary_join_element_wise(prefix, joined, pa.scalar(b""))

    def _write_rows(self, layout: ViewLayout, rows: pa.Table, force: bool, progress: Progress) -> int:
        """Encode ``rows`` chunk by chunk with Arrow and stream EVALSHAs, replies read in a window.

        One reply per batch of entities keeps the client's parsing out of the way (one
        reply per entity cost more in Python than the script costs in Redis). Encoding
        the next chunk overlaps with Redis executing the previous one.
        """
        if rows.num_rows == 0:
            return 0
        sha = self.client.script_load(WRITE_SCRIPT).encode()
        connection = self.client.connection_pool.get_connection()
        pending: list[tuple[int, int]] = []  # (replies, rows) per command group in flight
        written = 0

        def drain(limit: int) -> None:
            nonlocal written
            done, kept = drain_write_replies(connection, pending, limit, progress)
            written += done
            self.kept += kept

        try:
            for chunk in rows.to_batches(max_chunksize=CHUNK):
                for parts, replies, count in self._encode(layout, chunk, force, sha):
                    connection.send_packed_command(parts, check_health=False)
                    pending.append((replies, count))
                    drain(PIPELINE)
            drain(0)
        except BaseException:
            connection.disconnect()  # replies may be pending: never reuse this connection
            raise
        finally:
            self.client.connection_pool.release(connection)
        return written

    def _encode(
        self,
        layout: ViewLayout,
        chunk: pa.RecordBatch,
        force: bool,
        sha: bytes,
        bounds: Sequence[tuple[int, int]] | None = None,
    ) -> Iterator[tuple[list[Any], int, int]]:
        """One EVALSHA per batch of ``chunk``'s rows: BATCH rows each, or the (start, stop) ``bounds`` given."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(layout.features)
        key_chunks = _Chunks(_bulk(self._keys(layout, pa.Table.from_batches([chunk]))))
        empty, one, zero = pa.scalar(b""), pa.scalar(b"1"), pa.scalar(b"0")
        event = _text(chunk.column(layout.columns.index("event_timestamp")), "timestamp")
        created = _text(chunk.column(layout.columns.index("created_timestamp")), "timestamp")
        texts = [_text(chunk.column(layout.columns.index(f)), d) for f, d in zip(layout.features, layout.dtypes)]
        # per entity: event, created ('' = NULL), NULL mask, values ('' where NULL)
        columns = [event, pc.fill_null(created, b"")]
        if n:
            marks = [pc.if_else(pc.is_null(t), one, zero) for t in texts]
            columns.append(pc.binary_join_element_wise(*marks, empty))
        else:
            columns.append(pa.array([b""] * chunk.num_rows, pa.binary()))
        columns += [pc.fill_null(t, b"") for t in texts]
        per_entity = _Chunks(pc.binary_join_element_wise(*[_bulk(c) for c in columns], empty))
        fixed = b"".join(
            _bulk_bytes(a)
            for a in [str(n), "f" if force else "c", "".join(_kind(d) for d in layout.dtypes) or "-", *layout.features]
        )
        fixed_count = 3 + n
        total = chunk.num_rows
        if bounds is None:
            bounds = [(start, min(start + BATCH, total)) for start in range(0, total, BATCH)]
        for start, stop in bounds:
            size = stop - start
            header = b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n%s" % (
                3 + size + fixed_count + size * (3 + n),
                sha,
                _bulk_bytes(str(size)),
            )
            yield [header, key_chunks.slice(start, stop), fixed, per_entity.slice(start, stop)], 1, size

    def _drop_gone(self, layout: ViewLayout, rows: pa.Table) -> None:
        """After a full refresh: delete the view's hashes whose entity is not in the snapshot."""
        import pyarrow as pa
        import pyarrow.compute as pc

        pattern = _glob_escape(f"{self.prefix}:{layout.name}:") + "*"
        found: list[bytes] = []
        cursor = 0
        while True:
            cursor, keys = self.client.scan(cursor, match=pattern, count=20_000)
            found.extend(cast("list[bytes]", keys))
            if cursor == 0:
                break
        if not found:
            return
        current = self._keys(layout, rows) if rows.num_rows else pa.array([], pa.binary())
        scanned = pa.array(found, pa.binary())
        gone = pc.filter(scanned, pc.invert(pc.is_in(scanned, value_set=current))).to_pylist()
        for start in range(0, len(gone), 10_000):
            self.client.unlink(*gone[start : start + 10_000])

    def reader(self, timeout: float | None = None) -> RedisReader:
        return RedisReader(self.url, self.prefix, timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _reply(connection: Any) -> Any:
    import redis

    try:
        return connection.read_response()
    except redis.ResponseError as error:  # the reply was read whole: the pipeline stays in step
        return error


def refused(reply: Any) -> bool:
    """Whether a pipelined reply is an error that says the store did not serve the read.

    A WRONGTYPE reply for an entity's key is that key's problem (it is reported and answered
    INVALID); any other error (NOPERM, OOM, a cluster error) must fail the read: read as a
    missing key, it would serve every feature as not found.
    """
    return isinstance(reply, Exception) and not str(reply).startswith("WRONGTYPE")


def signature_of(reply: Any, view: str, where: str) -> str | None:
    """A view's sync signature from the reply to its state key's HGET; None when never synced."""
    if reply is None:
        return None
    if isinstance(reply, bytes):
        return reply.decode()
    problem = reason(reply) if isinstance(reply, Exception) else f"the reply was {type(reply).__name__}"
    raise OnlineStoreError(f"reading {where} failed: the sync state of view '{view}' could not be read ({problem})")


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _lock_holder(value: bytes) -> tuple[str, int]:
    parts = value.decode(errors="replace").split("|")
    if len(parts) < 4:
        return "", 0
    try:
        return parts[1], int(parts[2])
    except ValueError:
        return "", 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---- reads -------------------------------------------------------------------------------------------
def _int(b: bytes) -> int:
    value = int(b)
    if not -(1 << 63) <= value < (1 << 63):
        raise ValueError("outside int64")
    return value


def _bool(b: bytes) -> bool:
    if b == b"true":
        return True
    if b == b"false":
        return False
    raise ValueError("expected true or false")


def _micros(value: Any) -> datetime:
    if type(value) is not int and not isinstance(value, bytes):
        raise ValueError("expected epoch microseconds")
    return EPOCH + timedelta(microseconds=int(value))  # OverflowError beyond year 9999


def _json_list(b: bytes) -> list[Any]:
    values = json.loads(b)
    if not isinstance(values, list):
        raise ValueError("expected a JSON array")
    return values


# From the stored bytes to the dtype's Python value (None: the bytes as they are); each raises on anything else.
_DECODERS = {
    "int32": _int,
    "int64": _int,
    "float32": float,
    "float64": float,
    "bool": _bool,
    "string": lambda b: b.decode(),
    "bytes": None,
    "timestamp": _micros,
}


def _array_decoder(inner: str) -> Any:
    """An array's decoder: JSON of its elements, timestamps as epoch microseconds, bytes one code point a byte."""
    if inner == "timestamp":
        return lambda b: [None if x is None else _micros(x) for x in _json_list(b)]
    if inner == "bytes":
        return lambda b: [None if x is None else x.encode("latin-1") for x in _json_list(b)]
    return _json_list


class _Variant:
    """The HMGET for the requested features the store holds (by one state signature)."""

    __slots__ = ("head", "tail", "decoders", "positions", "unsynced")

    def __init__(self, layout: ViewLayout, features: Sequence[str], mask: Sequence[bool]):
        self.positions, self.unsynced = held(mask)
        fields = ["_ts", *(features[i] for i in self.positions)]
        self.head = b"*%d\r\n$5\r\nHMGET\r\n" % (2 + len(fields))
        self.tail = b"".join(_bulk_bytes(f) for f in fields)
        self.decoders = [decoder(layout.dtype(features[i]), _DECODERS, _array_decoder) for i in self.positions]


class _Prepared:
    __slots__ = ("view", "layout", "features", "signature", "state", "prefix", "single", "variants", "current")

    def __init__(self, prefix: str, layout: ViewLayout, features: Sequence[str]):
        self.view = layout.name
        self.layout = layout
        self.features = list(features)
        state_key = f"{prefix}:#state:{layout.name}"
        # the signature of the layout the store holds, asked in the same round trip as the values
        self.signature = b"*3\r\n$4\r\nHGET\r\n" + _bulk_bytes(state_key) + _bulk_bytes("signature")
        self.state = b"*3\r\n$4\r\nHGET\r\n" + _bulk_bytes(state_key) + _bulk_bytes("state")
        self.prefix = f"{prefix}:{layout.name}:".encode()
        self.single = len(layout.join_keys) == 1 and layout.key_dtypes[0] in ("int32", "int64")
        self.variants = {layout.signature: _Variant(layout, features, [True] * len(features))}
        self.current = layout.signature  # the state signature last seen


class RedisReader(Reader):
    """One HMGET per (view, entity), all sent as one pipeline; one round trip per call."""

    def __init__(self, url: str, prefix: str, timeout: float | None = None):
        import redis

        self.prefix = prefix
        self.url = url
        try:
            # the socket timeouts bound a thread stuck on a frozen Redis (the server's deadline
            # answers the client first, and interrupt() usually frees the thread sooner)
            self.pool = redis.ConnectionPool.from_url(
                url, socket_connect_timeout=timeout or 5, socket_timeout=timeout or 10
            )
        except ValueError as error:
            raise OnlineStoreError(
                f"online_store.url {redact_url(url)} is not a valid Redis URL: {reason(error, url)}"
            ) from None
        self._connections = Connections()

    def _connection(self) -> Any:
        """This thread's own connection: no pool lock and no health poll on every read."""
        connection = self._connections.get()
        if connection is None:
            connection = self._connections.add(self.pool.make_connection())
        return connection

    def interrupt(self, thread_id: int) -> None:
        import socket

        connection = self._connections.interrupt(thread_id)
        sock = getattr(connection, "_sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # the blocked recv returns at once; the fd stays the thread's

    def ping(self) -> None:
        import redis

        self._connections.clear_interrupt()
        for attempt in (0, 1):  # a retry for a connection the server dropped since its last use
            connection = self._connection()
            try:
                connection.send_command("PING", check_health=False)
                connection.read_response()
                return
            except redis.ConnectionError as error:
                self._drop(connection)
                if not attempt and not self._connections.interrupted():
                    continue
                raise OnlineStoreError(
                    f"the Redis online store {redact_url(self.url)} does not answer: {reason(error, self.url)}"
                ) from None
            except redis.RedisError as error:
                self._drop(connection)
                raise OnlineStoreError(
                    f"the Redis online store {redact_url(self.url)} does not answer: {reason(error, self.url)}"
                ) from None

    def _drop(self, connection: Any) -> None:
        connection.disconnect()  # replies may be pending; the next read reconnects

    def prepare(self, layout: ViewLayout, features: Sequence[str]) -> _Prepared:
        return _Prepared(self.prefix, layout, features)

    def _command(self, prepared: _Prepared, variant: _Variant, keys: Sequence[tuple[Any, ...]]) -> list[bytes]:
        out = []
        head, tail, prefix = variant.head, variant.tail, prepared.prefix
        for key in keys:
            if prepared.single:
                name = prefix + str(key[0]).encode()
            else:
                parts = [key_part(v) for v in key]
                name = prefix + b":".join(p if isinstance(p, bytes) else p.encode() for p in parts)
            out.append(b"%s$%d\r\n%s\r\n%s" % (head, len(name), name, tail))
        return out

    def _roundtrip(self, commands: list[bytes]) -> list[Any]:
        """Send ``commands`` as one pipeline; an error reply (a key of the wrong type) is returned, not raised."""
        import redis

        packed = b"".join(commands)
        self._connections.clear_interrupt()  # an interrupt that came after this thread's last call ended
        for attempt in (0, 1):
            connection = self._connection()
            try:
                connection.send_packed_command([packed], check_health=False)
                replies = [_reply(connection) for _ in commands]
                break
            except (redis.ConnectionError, redis.TimeoutError) as error:
                self._drop(connection)
                # one retry for a stale connection (Redis restarted); none after a timeout or
                # an interrupt, which would only double the wait on a frozen server
                interrupted = self._connections.interrupted()
                if interrupted:
                    self._connections.clear_interrupt()
                if attempt or interrupted or isinstance(error, redis.TimeoutError):
                    raise OnlineStoreError(
                        f"reading the Redis online store {redact_url(self.url)} failed: {reason(error, self.url)}"
                    ) from None
            except redis.RedisError as error:
                self._drop(connection)
                raise OnlineStoreError(
                    f"reading the Redis online store {redact_url(self.url)} failed: {reason(error, self.url)}"
                ) from None
        return replies

    def read(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]]) -> list[Any]:
        variants = [prepared.variants[prepared.current] for prepared, _ in requests]
        commands: list[bytes] = []
        for (prepared, keys), variant in zip(requests, variants):
            commands.extend(self._command(prepared, variant, keys))
        commands.extend(prepared.signature for prepared, _ in requests)
        replies = self._roundtrip(commands)
        signatures = replies[len(replies) - len(requests) :]
        results: list[Any] = []
        position = 0
        where = f"the Redis online store {redact_url(self.url)}"
        self._raise_refused(replies)
        for (prepared, keys), variant, reply in zip(requests, variants, signatures):
            view_replies = replies[position : position + len(keys)]
            position += len(keys)
            signature = signature_of(reply, prepared.view, where)
            if signature is None:  # no state: never synced
                results.append(None)
                continue
            if signature != prepared.current:  # synced by another definition since: re-plan
                variant = self._variant(prepared, signature)
                view_replies = self._roundtrip(self._command(prepared, variant, keys))
                self._raise_refused(view_replies)
            results.append(self._rows(prepared, variant, view_replies, keys))
        return results

    def _raise_refused(self, replies: Sequence[Any]) -> None:
        """One OnlineStoreError for the first reply by which the store refused the read (see ``refused``)."""
        for reply in replies:
            if refused(reply):
                raise OnlineStoreError(
                    f"reading the Redis online store {redact_url(self.url)} failed: {reason(reply, self.url)}"
                )

    def _variant(self, prepared: _Prepared, signature: str) -> _Variant:
        variant = prepared.variants.get(signature)
        if variant is None:
            data = self._roundtrip([prepared.state])[0]
            self._raise_refused([data])
            state = SyncState.from_bytes(data, prepared.view) if isinstance(data, bytes) else None
            mask = synced_mask(
                prepared.layout, prepared.features, signature, state.features if state is not None else None
            )
            variant = prepared.variants[signature] = _Variant(prepared.layout, prepared.features, mask)
        prepared.current = signature
        return variant

    def _rows(
        self, prepared: _Prepared, variant: _Variant, replies: list[Any], keys: Sequence[tuple[Any, ...]]
    ) -> ViewRows:
        decoders = variant.decoders
        width = len(prepared.features)
        where = f"the Redis online store {redact_url(self.url)}"
        view_rows: list[Any] = []
        for key, reply in zip(keys, replies):
            if not isinstance(reply, list):  # an error reply: the key holds another type than a hash
                report_corrupt(where, prepared.view, key, "(the key itself)", reply, reason(reply))
                view_rows.append((INVALID, None))
                continue
            ts = reply[0]
            if ts is None:
                view_rows.append(None)
                continue

            def bad(i: int, value: Any, problem: str, key: Any = key) -> None:
                report_corrupt(where, prepared.view, key, prepared.features[variant.positions[i]], value, problem)

            try:
                stamp: Any = _micros(ts)
            except (ValueError, OverflowError) as error:
                report_corrupt(where, prepared.view, key, "_ts", ts, reason(error))
                view_rows.append((INVALID, None))
                continue
            values = decode_values(reply[1:], decoders, bad)
            if variant.unsynced:
                values = spread(values, variant.positions, width)
            view_rows.append((stamp, values))
        return ViewRows(view_rows, variant.unsynced)

    def close(self) -> None:
        self._connections.close(lambda connection: connection.disconnect())
        self.pool.disconnect()
