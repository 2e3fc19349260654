"""Redis online reads on the event loop: ``RedisReader``'s pipelines over one asyncio connection.

The feature server reads Redis here instead of in a thread of its pool: the same packed
``HMGET`` commands (``RedisReader._command``), the same state-signature check and the
same decoding of the replies (``RedisReader._rows``), sent over one connection per worker
on which concurrent requests are pipelined; replies come back in order. Measured on the
2-core machine (docs/decisions/0030-server-hot-path.md), the hop to a thread and back
cost more CPU per batch-1 request than the Redis round trip itself.

Only the common case is answered here: every view read has the state signature the
reader last saw and every reply is a hash's fields. Anything else (a view never synced,
synced by another definition since, any error reply: a key of another type, the state
key unreadable, ACL or memory errors) answers ``None`` and the caller reads again through
``RedisReader.read`` in a thread, so those cases keep exactly that method's semantics.

Deadline: each read has ``timeout`` seconds from its start, connect included; past it
``asyncio.TimeoutError`` (the server answers 503) and the connection is aborted, as a
thread's connection is shut down when its call misses the deadline: the replies of every
request pipelined on it are abandoned, and those requests retry once on a new
connection within their own deadlines. A connection lost otherwise (Redis restarted)
is also retried once. Any other failure is an ``OnlineStoreError`` naming the store.

Used only for a plain single-node ``RedisReader`` over ``redis://`` or ``unix://`` (host,
port or socket path, user, password, database) with hiredis installed; TLS, cluster and
URL options keep the threaded path (``AsyncRedisReads.of`` answers None).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Sequence
from typing import Any

from featurehouse.errors import OnlineStoreError
from featurehouse.sync.base import reason, redact_url
from featurehouse.sync.redis import RedisReader, _bulk_bytes

# connection keywords this path understands; anything else in the URL keeps the threaded path
_KNOWN = frozenset({"host", "port", "path", "db", "username", "password", "socket_connect_timeout", "socket_timeout"})
_IGNORED = frozenset(  # redis-py's own bookkeeping, not options of the URL
    {"himport_registry", "maint_notifications_pool_handler", "maint_notifications_config"}
    | {"orig_host_address", "orig_socket_timeout", "orig_socket_connect_timeout"}
)


class _Lost(Exception):
    """The connection closed before a reply came: the read may be retried on a new one."""


def _pack(*args: str | bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(_bulk_bytes(a) for a in args)


class _Pipe(asyncio.Protocol):
    """One Redis connection: requests are written in order and their replies handed back in order.

    Each request carries its deadline; one timer per connection watches the soonest (not one
    per request). When a request misses its deadline it fails with ``asyncio.TimeoutError``
    and the connection is aborted: the requests still waiting on it fail with ``_Lost``.
    """

    def __init__(self, reply_error: Any, timeout: float):
        import hiredis

        self._parser = hiredis.Reader(replyError=reply_error)
        self._protocol_error = hiredis.ProtocolError
        self._timeout = timeout
        # (future, replies expected, replies so far, deadline), oldest first
        self._waiting: collections.deque[tuple[asyncio.Future[list[Any]], int, list[Any], float]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._out: list[bytes] = []  # requests of this turn of the event loop, sent together at its end
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, packed: bytes, count: int, deadline: float) -> asyncio.Future[list[Any]]:
        """Send ``packed`` (``count`` commands); the future holds their ``count`` replies."""
        future: asyncio.Future[list[Any]] = self._loop.create_future()
        if self.closed or self.transport is None:
            future.set_exception(_Lost("the connection is closed"))
            return future
        self._waiting.append((future, count, [], deadline))
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._check)
        if not self._out:  # one write (one system call) for every request made in this turn
            self._loop.call_soon(self._flush)
        self._out.append(packed)
        return future

    def _flush(self) -> None:
        out, self._out = self._out, []
        if self.transport is not None and not self.closed:
            self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _check(self) -> None:
        """The deadline timer: fail the requests past their deadline, else wait for the soonest."""
        self._timer = None
        if self.closed or not self._waiting:
            return
        now = self._loop.time() + 0.001  # a timer may fire a little early (millisecond resolution)
        soonest = min(entry[3] for entry in self._waiting)
        if soonest > now:
            self._timer_at = soonest
            self._timer = self._loop.call_at(soonest, self._check)
            return
        for future, _, _, deadline in self._waiting:
            if deadline <= now and not future.done():
                future.set_exception(asyncio.TimeoutError())
        # like a thread's connection when its call misses the deadline: shut down, the others retry
        self.abort(f"another read on the connection missed its deadline of {self._timeout:g} s")

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        parser.feed(data)
        waiting = self._waiting
        while True:
            try:
                reply = parser.gets()
            except self._protocol_error as error:  # not Redis speaking: nothing more on it can be trusted
                self.abort(f"the reply is not the Redis protocol ({error})")
                return
            if reply is False:
                return
            if not waiting:
                self.abort("Redis sent a reply nobody asked for")
                return
            future, count, replies, _ = waiting[0]
            replies.append(reply)
            if len(replies) == count:
                waiting.popleft()
                if not future.done():  # done: its read gave up and the replies are dropped
                    future.set_result(replies)

    def abort(self, why: str) -> None:
        """Close now; every waiting request fails with ``_Lost(why)``."""
        self._fail(why)
        if self.transport is not None:
            with contextlib.suppress(Exception):  # a transport of a loop already closed
                self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(reason(exc) if exc is not None else "Redis closed the connection")

    def _fail(self, why: str) -> None:
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._waiting:
            future = self._waiting.popleft()[0]
            if not future.done():
                future.set_exception(_Lost(why))


def _reply_error() -> Any:
    """redis-py's mapping of an error reply to its exception (what ``RedisReader`` reads)."""
    try:
        from redis._parsers.base import BaseParser

        return BaseParser.parse_error
    except ImportError:  # another redis-py layout: the plain class (``_rows`` only asks isinstance/str)
        from redis.exceptions import ResponseError

        return ResponseError


class AsyncRedisReads:
    """``RedisReader.read`` for the event loop: one connection per worker, requests pipelined on it."""

    def __init__(self, reader: RedisReader, timeout: float, where: dict[str, Any]):
        self.reader = reader
        self.timeout = timeout
        self._where = where  # host and port, or path
        self._hello = b""  # AUTH and SELECT, sent first on each new connection
        self._hello_count = 0
        self._reply_error = _reply_error()
        self._pipe: _Pipe | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting: asyncio.Future[_Pipe] | None = None
        self._description = f"the Redis online store {redact_url(reader.url)}"

    @classmethod
    def of(cls, reader: Any, timeout: float) -> AsyncRedisReads | None:
        """The event-loop reads of ``reader``, or None when only the threaded path can read its store."""
        import redis

        try:
            import hiredis  # noqa: F401  # the reply parser
        except ImportError:
            return None
        if type(reader) is not RedisReader:  # a cluster reader routes by slot: threads
            return None
        pool = reader.pool
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _IGNORED}
        if pool.connection_class not in (redis.Connection, redis.UnixDomainSocketConnection):  # TLS
            return None
        if set(kwargs) - _KNOWN:
            return None
        where = {"path": kwargs["path"]} if "path" in kwargs else {"host": kwargs["host"], "port": kwargs["port"]}
        reads = cls(reader, timeout, where)
        hello = []
        if kwargs.get("password") is not None:
            user = kwargs.get("username")
            hello.append(
                _pack("AUTH", user, kwargs["password"]) if user is not None else _pack("AUTH", kwargs["password"])
            )
        if kwargs.get("db"):
            hello.append(_pack("SELECT", str(int(kwargs["db"]))))
        reads._hello, reads._hello_count = b"".join(hello), len(hello)
        return reads

    async def read(self, requests: Sequence[tuple[Any, Sequence[tuple[Any, ...]]]]) -> list[Any] | None:
        """What ``RedisReader.read(requests)`` answers, or None: read through it instead (see the module)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        reader = self.reader
        seen = [(prepared.current, prepared) for prepared, _ in requests]
        variants = [prepared.variants[current] for current, prepared in seen]
        commands: list[bytes] = []
        for (prepared, keys), variant in zip(requests, variants):
            commands.extend(reader._command(prepared, variant, keys))
        commands.extend(prepared.signature for prepared, _ in requests)
        replies = await self._roundtrip(b"".join(commands), len(commands), deadline)
        split = len(replies) - len(requests)
        for (current, _), signature in zip(seen, replies[split:]):
            if type(signature) is not bytes or signature.decode(errors="replace") != current:
                return None  # never synced, re-planned, or an error reply: RedisReader.read decides
        for reply in replies[:split]:
            if type(reply) is not list:  # an error reply (a key of another type, ACL, OOM): RedisReader.read decides
                return None
        results: list[Any] = []
        position = 0
        for (prepared, keys), variant in zip(requests, variants):
            results.append(reader._rows(prepared, variant, replies[position : position + len(keys)], keys))
            position += len(keys)
        return results

    async def _roundtrip(self, packed: bytes, count: int, deadline: float) -> list[Any]:
        for attempt in (0, 1):
            pipe = self._pipe
            if pipe is None or pipe.closed or self._loop is not asyncio.get_running_loop():
                pipe = await self._connect(deadline)
            try:
                return await pipe.request(packed, count, deadline)
            except _Lost as lost:
                if attempt:
                    raise OnlineStoreError(f"reading {self._description} failed: {lost}") from None
        raise AssertionError("unreachable")

    async def _within(self, future: asyncio.Future[Any], deadline: float) -> Any:
        """``future``'s result, or asyncio.TimeoutError at ``deadline``."""
        loop = asyncio.get_running_loop()
        if future.done():
            return future.result()
        expired: list[bool] = []

        def expire() -> None:
            if not future.done():
                expired.append(True)
                future.cancel()

        handle = loop.call_at(deadline, expire)
        try:
            return await future
        except asyncio.CancelledError:
            if not expired:
                raise  # the request itself was cancelled (client gone, shutdown)
            raise asyncio.TimeoutError() from None
        finally:
            handle.cancel()

    async def _connect(self, deadline: float) -> _Pipe:
        """The connection, new; concurrent callers share one attempt."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests): the old connection belongs to another
            self.close()
            self._loop = loop
        connecting = self._connecting
        if connecting is None or connecting.done():
            connecting = self._connecting = loop.create_future()
            task = loop.create_task(self._open())

            def settle(done: asyncio.Task[_Pipe]) -> None:
                if done.cancelled():
                    connecting.cancel()
                elif done.exception() is not None:
                    connecting.set_exception(done.exception())  # type: ignore[arg-type]
                    connecting.exception()  # retrieved: callers that gave up on it log nothing
                else:
                    self._pipe = done.result()
                    connecting.set_result(done.result())
                if self._connecting is connecting:
                    self._connecting = None

            task.add_done_callback(settle)
        try:
            return await self._within(asyncio.shield(connecting), deadline)
        except _Lost as lost:
            raise OnlineStoreError(f"reading {self._description} failed: {lost}") from None

    async def _open(self) -> _Pipe:
        """A new connection, greeted (AUTH, SELECT); at most ``timeout`` seconds, as redis-py's connect."""
        try:
            return await asyncio.wait_for(self._greeted(), self.timeout)
        except asyncio.TimeoutError:
            raise OnlineStoreError(
                f"reading {self._description} failed: no connection within {self.timeout:g} s"
            ) from None

    async def _greeted(self) -> _Pipe:
        loop = asyncio.get_running_loop()
        try:
            if "path" in self._where:
                _, pipe = await loop.create_unix_connection(
                    lambda: _Pipe(self._reply_error, self.timeout), self._where["path"]
                )
            else:
                _, pipe = await loop.create_connection(
                    lambda: _Pipe(self._reply_error, self.timeout), self._where["host"], self._where["port"]
                )
        except OSError as error:
            raise OnlineStoreError(
                f"reading {self._description} failed: cannot connect ({reason(error, self.reader.url)})"
            ) from None
        if self._hello_count:
            try:
                replies = await pipe.request(
                    self._hello, self._hello_count, asyncio.get_running_loop().time() + self.timeout
                )
            except BaseException:  # the deadline, or the connection lost
                pipe.abort("no greeting")
                raise
            for reply in replies:
                if isinstance(reply, Exception):
                    pipe.abort("refused")
                    raise OnlineStoreError(
                        f"reading {self._description} failed: {reason(reply, self.reader.url)}"
                    ) from None
        return pipe

    def close(self) -> None:
        """Close the connection (reads open a new one)."""
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.abort("closed")
