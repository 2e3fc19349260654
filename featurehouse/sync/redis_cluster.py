"""The Redis Cluster online store: the Redis layout, spread over a cluster's hash slots.

``online_store: {type: redis, url: redis://any-node:7000, cluster: true}``. The keys are
exactly those of ``featurehouse.sync.redis`` (docs/store-layouts.md) and carry no hash
tags: each entity hash lands in the slot of its own key, so the entities spread evenly
over the nodes and any client that computes Redis' slot of a key finds them.

- Sync: the rows of each chunk are sorted by slot; one EVALSHA per slot (at most BATCH
  entities) writes them with the same conditional script, because every key a script
  touches must sit in one slot. Each primary gets its own connection and its own window
  of commands in flight, fed in turn, so that the nodes work in parallel.
- Sync state and lock: ``P:#state:<view>`` and ``P:#lock`` are single keys; every process
  computes the same slot for them, so all agree on where they live. The state is written
  by one transaction on its one key; the lock is ``SET NX PX`` on its one key.
- Reads: the keys of a call are grouped by the primary owning their slot; each primary
  gets one pipeline (the view's state signature rides along in the pipeline of its
  node); all pipelines are sent before any reply is read, so a batch costs one round
  trip to the slowest node. Replicas are never read.
- Failures: a MOVED/ASK reply or a node that does not answer makes the reader refresh
  the slot map and retry the call once; when a primary is down and no replica has taken
  over its slots yet, the read fails with one OnlineStoreError naming the node (never a
  value from the wrong key). See docs/decisions/0026-redis-cluster.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.base import Connections, Progress, reason, redact_url, synced_mask
from featurehouse.sync.layout import SyncState, ViewLayout
from featurehouse.sync.redis import (
    BATCH,
    CHUNK,
    WRITE_SCRIPT,
    RedisBackend,
    RedisReader,
    _glob_escape,
    _Prepared,
    _reply,
    _Variant,
    drain_write_replies,
    key_part,
    refused,
    signature_of,
)

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    from redis.cluster import RedisCluster

SLOTS = 16_384
UNLINK_BATCH = 1_000  # keys per UNLINK (all of one slot)
GROUP = 16  # script calls per send to one node
WINDOW = 4  # groups in flight per node


def _crc_table() -> np.ndarray:
    from binascii import crc_hqx

    import numpy as np

    return np.array([crc_hqx(bytes([i]), 0) for i in range(256)], dtype=np.uint32)


def key_slots(keys: pa.Array, prefix: bytes = b"") -> np.ndarray:
    """Redis Cluster's hash slot of every key (CRC16/XMODEM mod 16384), vectorised with numpy.

    ``prefix``: bytes every key starts with (its CRC is computed once). Keys with a ``{``
    may carry a hash tag: those are computed one by one by redis-py's ``key_slot``, the
    reference this function is tested against.
    """
    from binascii import crc_hqx

    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    from redis.crc import key_slot

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    keys = keys.cast(pa.large_binary())
    count = len(keys)
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    if b"{" in prefix:
        return np.fromiter((key_slot(k) for k in keys.to_pylist()), dtype=np.int32, count=count)
    offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset : keys.offset + count + 1]
    data_buffer = keys.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(1, dtype=np.uint8)
    if len(data) == 0:
        data = np.zeros(1, dtype=np.uint8)
    lengths = offsets[1:] - offsets[:-1]
    table = _crc_table()
    skip = len(prefix)
    crc = np.full(count, crc_hqx(prefix, 0), dtype=np.uint32)
    starts = offsets[:-1]
    for position in range(skip, int(lengths.max())):
        active = lengths > position
        index = starts + position
        if active.all():
            byte = data[index]
            crc = ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF]
        else:
            byte = data[np.where(active, index, 0)]
            crc = np.where(active, ((crc << 8) & 0xFFFF) ^ table[((crc >> 8) ^ byte) & 0xFF], crc)
    slots = (crc % SLOTS).astype(np.int32)
    tagged = np.flatnonzero(pc.fill_null(pc.match_substring(keys, "{"), False).to_numpy(zero_copy_only=False))
    for i in tagged.tolist():
        slots[i] = key_slot(keys[i].as_py())
    return slots


def _cluster_client(url: str, timeout: float = 60) -> RedisCluster:
    from redis.cluster import RedisCluster

    try:
        return RedisCluster.from_url(url, socket_connect_timeout=5, socket_timeout=timeout)
    except ValueError as error:
        raise OnlineStoreError(
            f"online_store.url {redact_url(url)} is not a valid Redis URL: {reason(error, url)}"
        ) from None


def _cluster_error(error: BaseException, where: str, url: str) -> OnlineStoreError:
    """One sentence for a cluster that moved slots or lost a node while we used it."""
    import redis

    text = reason(error, url)
    if isinstance(error, (redis.exceptions.MovedError, redis.exceptions.AskError)):
        return OnlineStoreError(
            f"{where} failed: the cluster moved hash slots meanwhile ({text}); nothing was committed, run it again"
        )
    return OnlineStoreError(f"{where} failed: {text}")


def _why(error: BaseException, url: str) -> str:
    """``reason``, and a plain sentence for a node that is not in cluster mode."""
    text = reason(error, url)
    if "cluster mode is not enabled" in text.lower() or "cluster support disabled" in text.lower():
        return "that Redis is not a cluster (cluster_enabled:0); remove cluster: true from online_store"
    return text


def slot_of(key: bytes) -> int:
    """Redis Cluster's hash slot of ``key`` (CRC16 of the key, or of its ``{hash tag}``, mod 16384)."""
    from redis.crc import key_slot

    return key_slot(key)


class RedisClusterBackend(RedisBackend):
    """Writes the Redis layout to a Redis Cluster: one EVALSHA per slot, one connection per primary."""

    def __init__(self, url: str, prefix: str):
        super().__init__(url, prefix)
        self.description = f"the Redis Cluster online store {redact_url(url)} (prefix {prefix})"

    def _make_client(self) -> Any:
        """A cluster client: it asks the node in the URL for the slot map (raises when none answers)."""
        import redis

        try:
            return _cluster_client(self.url)
        except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
            raise OnlineStoreError(f"cannot reach {self.description}: {_why(error, self.url)}") from None

    def connect(self) -> None:
        """Reach the cluster and check that it serves all its slots."""
        import redis
        from redis.cluster import RedisCluster

        if self._client is not None:
            return
        client = self._make_client()
        try:
            client.ping(target_nodes=RedisCluster.PRIMARIES)
        except redis.RedisError as error:
            raise OnlineStoreError(f"cannot reach {self.description}: {reason(error, self.url)}") from None
        self._client = client

    @property
    def cluster(self) -> Any:
        """The cluster client (a redis.cluster.RedisCluster), connected on first use."""
        return self.client

    def states(self) -> list[SyncState]:
        """The state of every synced view: a SCAN of every primary."""
        found = []
        pattern = _glob_escape(f"{self.prefix}:#state:") + "*"
        for key in sorted(set(self._scan(pattern))):
            data = self.cluster.hget(key, "state")
            view = key.decode(errors="replace").removeprefix(f"{self.prefix}:#state:")
            state = SyncState.from_bytes(data, view) if data else None
            if state is not None:
                found.append(state)
        return found

    def _scan(self, pattern: str) -> list[bytes]:
        """Every key matching ``pattern`` on every primary."""
        found: list[bytes] = []
        for node in self.cluster.get_primaries():
            client = node.redis_connection
            cursor = 0
            while True:
                cursor, keys = client.scan(cursor, match=pattern, count=20_000)
                found.extend(keys)
                if cursor == 0:
                    break
        return found

    def _write_rows(self, layout: ViewLayout, rows: pa.Table, force: bool, progress: Progress) -> int:
        """Sort the rows by slot, send one EVALSHA per slot to the primary owning it, all primaries at once."""
        import numpy as np
        import pyarrow as pa
        import redis

        if rows.num_rows == 0:
            return 0
        client = self.cluster
        owners = {}  # slot -> primary name
        for slot, nodes in client.nodes_manager.slots_cache.items():
            owners[slot] = nodes[0].name
        if len(owners) < SLOTS:
            raise OnlineStoreError(
                f"writing {layout.name} to {self.description} failed: the cluster serves "
                f"{len(owners):,} of its {SLOTS:,} hash slots (is a primary down without a replica to take over?)"
            )
        primaries = {node.name: node for node in client.get_primaries()}
        names = sorted(primaries)
        owner_index = np.array([names.index(owners[s]) for s in range(SLOTS)], dtype=np.int32)
        # the whole table sorted by slot once: a slot's entities are then one run (few script calls)
        slots = key_slots(self._keys(layout, rows), f"{self.prefix}:{layout.name}:".encode())
        order = np.argsort(slots, kind="stable")
        slots = slots[order]
        rows = rows.take(pa.array(order))
        connections: dict[str, Any] = {}
        pending: dict[str, list[tuple[int, int]]] = {name: [] for name in names}
        written = 0

        def drain(name: str, limit: int) -> None:
            nonlocal written
            done, kept = drain_write_replies(connections[name], pending[name], limit, progress)
            written += done
            self.kept += kept

        try:
            sha = b""
            for name in names:
                sha = primaries[name].redis_connection.script_load(WRITE_SCRIPT).encode()
                connections[name] = primaries[name].redis_connection.connection_pool.get_connection()
            offset = 0
            for chunk in rows.to_batches(max_chunksize=CHUNK):
                chunk_slots = slots[offset : offset + chunk.num_rows]
                offset += chunk.num_rows
                # one script call per slot (split at BATCH), in slot order, to the slot's owner
                starts = np.flatnonzero(np.r_[True, chunk_slots[1:] != chunk_slots[:-1]])
                stops = np.r_[starts[1:], len(chunk_slots)]
                bounds: list[tuple[int, int]] = []
                targets: list[str] = []
                for start, stop in zip(starts.tolist(), stops.tolist()):
                    owner = names[owner_index[chunk_slots[start]]]
                    for begin in range(start, stop, BATCH):
                        bounds.append((begin, min(begin + BATCH, stop)))
                        targets.append(owner)
                # per node: groups of GROUP calls, each group one buffer and one send
                groups: dict[str, list[tuple[bytes, int, int]]] = {name: [] for name in names}
                open_groups: dict[str, tuple[list[Any], int, int]] = {name: ([], 0, 0) for name in names}
                for target, (parts, replies, count) in zip(targets, self._encode(layout, chunk, force, sha, bounds)):
                    buffer, calls, entities = open_groups[target]
                    buffer.extend(parts)
                    calls, entities = calls + replies, entities + count
                    if calls >= GROUP:
                        groups[target].append((b"".join(buffer), calls, entities))
                        buffer, calls, entities = [], 0, 0
                    open_groups[target] = (buffer, calls, entities)
                for name, (buffer, calls, entities) in open_groups.items():
                    if calls:
                        groups[name].append((b"".join(buffer), calls, entities))
                # feed the primaries in turn so that all of them work at once
                for round_ in range(max(len(g) for g in groups.values())):
                    for name in names:
                        if round_ < len(groups[name]):
                            data, calls, entities = groups[name][round_]
                            connections[name].send_packed_command([data], check_health=False)
                            pending[name].append((calls, entities))
                            drain(name, WINDOW)
            for name in names:
                drain(name, 0)
        except BaseException as error:
            for connection in connections.values():
                connection.disconnect()  # replies may be pending: never reuse these connections
            if isinstance(error, (redis.exceptions.MovedError, redis.exceptions.AskError)):
                client.nodes_manager.initialize()
                raise _cluster_error(error, f"writing {layout.name} to {self.description}", self.url) from None
            raise
        finally:
            for name, connection in connections.items():
                primaries[name].redis_connection.connection_pool.release(connection)
        return written

    def _drop_gone(self, layout: ViewLayout, rows: pa.Table) -> None:
        """After a full refresh: delete the view's hashes whose entity is not in the snapshot (every primary)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        found = self._scan(_glob_escape(f"{self.prefix}:{layout.name}:") + "*")
        if not found:
            return
        current = self._keys(layout, rows) if rows.num_rows else pa.array([], pa.binary())
        scanned = pa.array(found, pa.binary())
        gone = pc.filter(scanned, pc.invert(pc.is_in(scanned, value_set=current))).to_pylist()
        by_slot: dict[int, list[bytes]] = {}
        for key in gone:
            by_slot.setdefault(slot_of(key), []).append(key)
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        for keys in by_slot.values():
            for start in range(0, len(keys), UNLINK_BATCH):
                pipe.unlink(*keys[start : start + UNLINK_BATCH])  # one slot: a legal multi-key command
                queued += 1
                if queued >= 1_000:
                    pipe.execute()
                    queued = 0
        if queued:
            pipe.execute()

    def reader(self, timeout: float | None = None) -> RedisClusterReader:
        return RedisClusterReader(self.url, self.prefix, timeout)


class _NodeConnections:
    """One thread's connections, one per cluster node it has read from."""

    def __init__(self) -> None:
        self.by_node: dict[tuple[str, int], Any] = {}

    def shutdown(self) -> None:
        import socket

        for connection in self.by_node.values():
            sock = getattr(connection, "_sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def disconnect(self) -> None:
        for connection in self.by_node.values():
            with contextlib.suppress(Exception):
                connection.disconnect()
        self.by_node.clear()


class RedisClusterReader(RedisReader):
    """One pipeline per primary node per call, all sent before any reply is read."""

    def __init__(self, url: str, prefix: str, timeout: float | None = None):
        from redis.connection import parse_url

        self.prefix = prefix
        self.url = url
        self.timeout = timeout
        try:
            options = parse_url(url)
        except ValueError as error:
            raise OnlineStoreError(
                f"online_store.url {redact_url(url)} is not a valid Redis URL: {reason(error, url)}"
            ) from None
        options.pop("db", None)  # a cluster has database 0 only
        options.pop("host", None)
        options.pop("port", None)
        self._options = options
        self._connections = Connections()
        self._cluster: Any = None
        self._owner: list[tuple[str, int]] = []  # slot -> (host, port) of its primary

    # ---- topology ----------------------------------------------------------------------
    def _refresh(self) -> None:
        """(Re)read the slot map from any node that answers."""
        import redis

        try:
            if self._cluster is None:
                self._cluster = _cluster_client(self.url, self.timeout or 10)
            else:
                # every node known so far is asked, not only the one in the URL (it may be the dead one)
                known = [(n.host, int(n.port)) for n in self._cluster.nodes_manager.nodes_cache.values()]
                self._cluster.nodes_manager.initialize(additional_startup_nodes_info=known)
            slots = self._cluster.nodes_manager.slots_cache
        except (redis.RedisError, redis.exceptions.RedisClusterException) as error:
            raise OnlineStoreError(
                f"reading the Redis Cluster online store {redact_url(self.url)} failed: no node gives the "
                f"slot map ({_why(error, self.url)})"
            ) from None
        missing = [s for s in range(SLOTS) if not slots.get(s)]
        if missing:
            raise OnlineStoreError(
                f"reading the Redis Cluster online store {redact_url(self.url)} failed: hash slot {missing[0]} "
                f"(and {len(missing) - 1:,} more) has no primary"
            )
        self._owner = [(slots[s][0].host, int(slots[s][0].port)) for s in range(SLOTS)]

    def _node_connection(self, node: tuple[str, int]) -> Any:
        from redis.connection import Connection

        mine = self._connections.get()
        if mine is None:
            mine = self._connections.add(_NodeConnections())
        connection = mine.by_node.get(node)
        if connection is None:
            kind = self._options.get("connection_class", Connection)
            options = {k: v for k, v in self._options.items() if k != "connection_class"}
            connection = kind(
                host=node[0],
                port=node[1],
                socket_connect_timeout=self.timeout or 5,
                socket_timeout=self.timeout or 10,
                **options,
            )
            mine.by_node[node] = connection
        return connection

    def _drop_all(self) -> None:
        mine = self._connections.get()
        if mine is not None:
            mine.disconnect()

    def interrupt(self, thread_id: int) -> None:
        mine = self._connections.interrupt(thread_id)
        if mine is not None:
            mine.shutdown()

    def ping(self) -> None:
        """PING every primary (one pipeline each, sent together)."""
        self._connections.clear_interrupt()
        if not self._owner:
            self._refresh()
        nodes = sorted(set(self._owner))
        try:
            self._send({node: [b"*1\r\n$4\r\nPING\r\n"] for node in nodes}, "is not ready", True)
        except _Retry:
            self._send({node: [b"*1\r\n$4\r\nPING\r\n"] for node in sorted(set(self._owner))}, "is not ready", False)

    # ---- reads -------------------------------------------------------------------------
    def _send(
        self, batches: dict[tuple[str, int], list[bytes]], failure: str, retry: bool
    ) -> dict[tuple[str, int], list[Any]]:
        """Send each node its commands as one pipeline, then read all replies.

        A node that does not answer: with ``retry`` the slot map is refreshed and _Retry
        raised (the caller tries once more), otherwise one OnlineStoreError naming the node.
        """
        import redis

        replies: dict[tuple[str, int], list[Any]] = {}
        failed: tuple[str, int] | None = None
        try:
            for node, commands in batches.items():
                failed = node
                self._node_connection(node).send_packed_command([b"".join(commands)], check_health=False)
            for node, commands in batches.items():
                failed = node
                connection = self._node_connection(node)
                replies[node] = [_reply(connection) for _ in commands]
            return replies
        except (redis.ConnectionError, redis.TimeoutError) as error:
            self._drop_all()
            interrupted = self._connections.interrupted()
            if interrupted:
                self._connections.clear_interrupt()
            if retry and not interrupted and not isinstance(error, redis.TimeoutError):
                self._refresh()
                raise _Retry() from None
            where = f"{failed[0]}:{failed[1]}" if failed else "a node"
            raise OnlineStoreError(
                f"the Redis Cluster online store {redact_url(self.url)} {failure}: node {where} does not answer "
                f"({reason(error, self.url)}); if a primary died, reads of its hash slots fail until a replica "
                "takes over"
            ) from None
        except redis.RedisError as error:
            self._drop_all()
            raise OnlineStoreError(
                f"the Redis Cluster online store {redact_url(self.url)} {failure}: {reason(error, self.url)}"
            ) from None

    def read(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]]) -> list[Any]:
        self._connections.clear_interrupt()
        if not self._owner:
            self._refresh()
        try:
            return self._read_once(requests, retry=True)
        except _Retry:  # a node did not answer; the slot map is fresh now
            return self._read_once(requests, retry=False)
        except _Moved:  # the slot map was out of date
            self._refresh()
            try:
                return self._read_once(requests, retry=False)
            except _Moved as moved:
                raise OnlineStoreError(
                    f"reading the Redis Cluster online store {redact_url(self.url)} failed: the cluster "
                    f"keeps moving hash slots ({reason(moved.error, self.url)})"
                ) from None

    def _read_once(self, requests: Sequence[tuple[_Prepared, Sequence[tuple[Any, ...]]]], retry: bool) -> list[Any]:
        import redis
        from redis.crc import key_slot

        owner = self._owner
        batches: dict[tuple[str, int], list[bytes]] = {}
        # where each view's replies are: per key (node, position in that node's pipeline)
        places: list[list[tuple[tuple[str, int], int]]] = []
        variants = [prepared.variants[prepared.current] for prepared, _ in requests]
        for (prepared, keys), variant in zip(requests, variants):
            view_places = []
            for name, command in self._commands(prepared, variant, keys):
                node = owner[key_slot(name)]
                batch = batches.setdefault(node, [])
                view_places.append((node, len(batch)))
                batch.append(command)
            places.append(view_places)
        signature_places = []
        for prepared, _ in requests:
            node = owner[key_slot(self._state_name(prepared))]
            batch = batches.setdefault(node, [])
            signature_places.append((node, len(batch)))
            batch.append(prepared.signature)
        replies = self._send(batches, "failed to answer a read", retry)
        for node_replies in replies.values():
            for reply in node_replies:
                if isinstance(reply, (redis.exceptions.MovedError, redis.exceptions.AskError)):
                    raise _Moved(reply)
                if refused(reply):  # TRYAGAIN, CLUSTERDOWN, NOPERM, ...: never read as a missing key
                    raise OnlineStoreError(
                        f"reading the Redis Cluster online store {redact_url(self.url)} failed: "
                        f"{reason(reply, self.url)}"
                    )
        results: list[Any] = []
        for (prepared, keys), variant, view_places, (s_node, s_at) in zip(requests, variants, places, signature_places):
            where = f"the Redis Cluster online store {redact_url(self.url)}"
            signature = signature_of(replies[s_node][s_at], prepared.view, where)
            if signature is None:  # no state: never synced
                results.append(None)
                continue
            view_replies = [replies[node][at] for node, at in view_places]
            if signature != prepared.current:  # synced by another definition since: re-plan
                variant = self._variant(prepared, signature)
                again = self._read_once([(prepared, keys)], retry=False)
                results.append(again[0])
                continue
            results.append(self._rows(prepared, variant, view_replies, keys))
        return results

    def _state_name(self, prepared: _Prepared) -> bytes:
        return f"{self.prefix}:#state:{prepared.view}".encode()

    def _commands(
        self, prepared: _Prepared, variant: _Variant, keys: Sequence[tuple[Any, ...]]
    ) -> list[tuple[bytes, bytes]]:
        """(key name, packed HMGET) per entity."""
        out = []
        head, tail, prefix = variant.head, variant.tail, prepared.prefix
        for key in keys:
            if prepared.single:
                name = prefix + str(key[0]).encode()
            else:
                parts = [key_part(v) for v in key]
                name = prefix + b":".join(p if isinstance(p, bytes) else p.encode() for p in parts)
            out.append((name, b"%s$%d\r\n%s\r\n%s" % (head, len(name), name, tail)))
        return out

    def _variant(self, prepared: _Prepared, signature: str) -> _Variant:
        from redis.crc import key_slot

        variant = prepared.variants.get(signature)
        if variant is None:
            node = self._owner[key_slot(self._state_name(prepared))]
            data = self._send({node: [prepared.state]}, "failed to answer a read", False)[node][0]
            if refused(data):
                raise OnlineStoreError(
                    f"reading the Redis Cluster online store {redact_url(self.url)} failed: {reason(data, self.url)}"
                )
            state = SyncState.from_bytes(data, prepared.view) if isinstance(data, bytes) else None
            mask = synced_mask(
                prepared.layout, prepared.features, signature, state.features if state is not None else None
            )
            variant = prepared.variants[signature] = _Variant(prepared.layout, prepared.features, mask)
        prepared.current = signature
        return variant

    def close(self) -> None:
        self._connections.close(lambda mine: mine.disconnect())
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._cluster.close()
            self._cluster = None


class _Retry(Exception):
    """A node did not answer; the slot map was refreshed: try the call once more."""


class _Moved(Exception):
    """A MOVED/ASK reply: the slot map is out of date."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error
