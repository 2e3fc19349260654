"""The feature server's Redis reads on the event loop (featurehouse/sync/redis_async.py).

The loop path must answer byte for byte what the threaded path answers (statuses, ttl,
misses, keys with ':' and '\\', services, damaged keys), and every failure must be one
clear error: a dead Redis, a Redis that does not answer within the deadline, bytes that
are not the Redis protocol, a reply nobody asked for, a connection closed under a read
(retried once on a new connection), a wrong password. The hostile servers are a small
asyncio proxy in front of the machine's Redis that misbehaves on demand.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from support.online import build_repo, drop_store, redis_store, set_store, unique, utc_hour

from featurehouse.errors import OnlineStoreError
from featurehouse.online.reader import OnlineReader
from featurehouse.sdk.store import FeatureStore
from featurehouse.server import ServerSettings, create_app
from featurehouse.sync import redis_async, sync
from featurehouse.sync.redis import RedisReader

pytestmark = pytest.mark.redis
DRIVERS = range(1, 21)
FEATURES = ["stats:conv_rate", "stats:trips", "stats:city", "stats:active"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[tuple[Path, str]]:
    root = build_repo(
        tmp_path_factory.mktemp("loop") / "repo", DRIVERS, "  type: sqlite\n  path: data/online.db\n", now=utc_hour()
    )
    prefix = unique("fhloop")
    set_store(root, redis_store(redis_url, prefix))
    sync(FeatureStore(root))
    yield root, prefix
    drop_store("redis", redis_url, prefix)


class Spy:
    """Counts the event-loop reads that answered (not None: the thread path was not needed)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.answered = self.declined = 0
        read = redis_async.AsyncRedisReads.read

        async def spied(reads: Any, requests: Any) -> Any:
            rows = await read(reads, requests)
            if rows is None:
                self.declined += 1
            else:
                self.answered += 1
            return rows

        monkeypatch.setattr(redis_async.AsyncRedisReads, "read", spied)


BODIES = [
    {"features": FEATURES, "entities": {"driver_id": [1]}},
    {"features": FEATURES, "entities": {"driver_id": [9, 2, 404, 19, 3]}},  # 9, 19: too old for the ttl
    {"features": ["stats"], "entities": {"driver_id": [5, 6]}, "full_feature_names": True},
    {"feature_service": "ranking", "entities": {"driver_id": [1, 2], "rider_id": ["r:1", "r\\x"]}},
    {
        "features": ["pairs:rating", "pairs:last_seen", "stats:trips"],
        "entities": {"rider_id": ["r:2", "r\\x", "nobody"], "driver_id": [2, 3, 4]},
        "include_feature_view_version_metadata": True,
    },
    {"features": ["stats:trips"], "entities": {"driver_id": ["7", 8.0]}},  # converted key values
    {"features": ["stats:nope"], "entities": {"driver_id": [1]}},  # 400 with did-you-mean
    {"features": ["stats:trips"], "entities": {"driver_id": [True]}},  # 400: wrong key type
]


def answers(root: Path, loop_reads: bool) -> list[tuple[int, bytes]]:
    with TestClient(create_app(root, settings=ServerSettings(loop_reads=loop_reads))) as client:
        return [(r.status_code, r.content) for r in (client.post("/get-online-features", json=b) for b in BODIES)]


def test_loop_reads_answer_byte_for_byte_what_thread_reads_answer(
    repo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, _ = repo
    spy = Spy(monkeypatch)
    loop = answers(root, loop_reads=True)
    assert spy.answered == 6 and spy.declined == 0  # every readable body was read on the loop
    threads = answers(root, loop_reads=False)
    assert spy.answered == 6  # and none of these
    assert loop == threads
    statuses = [c["statuses"] for c in json.loads(loop[1][1])["results"][1:]]
    assert statuses[1][1] == statuses[1][4] == "PRESENT" and statuses[1][2] == "NOT_FOUND"
    assert [status for status, _ in loop] == [200] * 6 + [400, 400]


def test_a_key_of_the_wrong_type_goes_through_the_threaded_read(
    repo: tuple[Path, str], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, prefix = repo
    with replaced_key(redis_url, f"{prefix}:stats:4", b"oops"):
        spy = Spy(monkeypatch)
        loop = answers(root, loop_reads=True)
        assert spy.declined >= 1  # the error reply: RedisReader.read decides, as without the loop path
        assert loop == answers(root, loop_reads=False)


def test_a_view_never_synced_goes_through_the_threaded_read(
    repo: tuple[Path, str], redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, prefix = repo
    with replaced_key(redis_url, f"{prefix}:#state:stats", None):
        spy = Spy(monkeypatch)
        loop = answers(root, loop_reads=True)
        assert spy.declined >= 1
        assert loop == answers(root, loop_reads=False)
        assert b'"NOT_FOUND"' in loop[0][1] and b'"PRESENT","PRESENT","PRESENT","PRESENT"' not in loop[0][1]


@contextlib.contextmanager
def replaced_key(redis_url: str, key: str, value: bytes | None) -> Iterator[None]:
    """Within: ``key`` holds the string ``value`` (absent for None); afterwards its old value again."""
    import redis

    client = redis.Redis.from_url(redis_url)
    saved = client.dump(key)
    client.delete(key)
    if value is not None:
        client.set(key, value)
    try:
        yield
    finally:
        client.delete(key)
        client.restore(key, 0, saved)
        client.close()


# ---- hostile servers ----------------------------------------------------------------------------------
class Hostile:
    """A TCP proxy to the real Redis that behaves as ``mode`` says: proxy, freeze, garbage, close, extra."""

    def __init__(self, redis_url: str):
        from redis.connection import parse_url

        options = parse_url(redis_url)
        self.target = (options.get("host", "127.0.0.1"), int(options.get("port", 6379)))
        self.mode = "proxy"
        self.connections = 0
        self.server: asyncio.AbstractServer | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        upstream_reader, upstream = await asyncio.open_connection(*self.target)

        async def replies() -> None:  # Redis -> client, whole chunks, with a surprise in mode "extra"
            while data := await upstream_reader.read(65536):
                writer.write(data + (b"+SURPRISE\r\n" if self.mode == "extra" else b""))
                await writer.drain()

        pump = asyncio.ensure_future(replies())
        try:
            while data := await reader.read(65536):  # client -> Redis
                if self.mode == "freeze":
                    continue
                if self.mode == "garbage":
                    writer.write(b"%%% not the redis protocol\r\n")
                    await writer.drain()
                    continue
                if self.mode == "close":
                    self.mode = "proxy"  # once: the retry on a new connection is answered
                    return
                upstream.write(data)
                await upstream.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            pump.cancel()
            upstream.close()
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            self.server.close()


def requests_of(root: Path, ids: list[int]) -> Any:
    reader = OnlineReader(FeatureStore(root))
    staged = reader.stage(FEATURES, {"driver_id": ids})
    assert staged is not None
    return reader, staged


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_hostile_redis_servers_get_one_clear_error_and_the_next_read_recovers(
    repo: tuple[Path, str], redis_url: str
) -> None:
    root, prefix = repo
    reader, (plan, columns, requests) = requests_of(root, [1, 2, 404])
    expected = reader.finish(plan, columns, reader._reader.read(requests)).values
    hostile = Hostile(redis_url)

    async def scenario() -> None:
        async with hostile.running() as url:
            reads = redis_async.AsyncRedisReads.of(RedisReader(url, prefix), 0.5)
            assert reads is not None

            async def values() -> Any:
                rows = await reads.read(requests)
                assert rows is not None
                return reader.finish(plan, columns, rows).values

            assert await values() == expected
            # a Redis that does not answer: the deadline, then the connection is dropped
            hostile.mode = "freeze"
            loop = asyncio.get_running_loop()
            started = loop.time()
            outcomes = await asyncio.gather(*(reads.read(requests) for _ in range(5)), return_exceptions=True)
            assert all(isinstance(o, asyncio.TimeoutError) for o in outcomes), outcomes
            assert loop.time() - started < 0.5 + 1.0
            hostile.mode = "proxy"
            assert await values() == expected
            # bytes that are not the Redis protocol
            hostile.mode = "garbage"
            with pytest.raises(OnlineStoreError) as raised:
                await reads.read(requests)
            text = str(raised.value)
            assert (
                "\n" not in text
                and text.startswith("reading the Redis online store 127.0.0.1:")
                and ("not the Redis protocol" in text)
            ), text
            hostile.mode = "proxy"
            assert await values() == expected
            # a reply nobody asked for: the connection cannot be trusted, and is dropped
            hostile.mode = "extra"
            await asyncio.sleep(0)
            first = await reads.read(requests)  # answered before the surprise arrives, or retried
            assert first is not None
            hostile.mode = "proxy"
            assert await values() == expected
            # the connection closed under a read (Redis restarted): retried once on a new one
            before = hostile.connections
            hostile.mode = "close"
            assert await values() == expected
            assert hostile.connections == before + 1
            reads.close()

    run(scenario())


def test_a_dead_redis_and_a_wrong_password_are_one_sentence(repo: tuple[Path, str], redis_url: str) -> None:
    import socket

    root, prefix = repo
    _, (_, _, requests) = requests_of(root, [1])
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the socket is closed

    async def dead() -> None:
        reads = redis_async.AsyncRedisReads.of(RedisReader(f"redis://127.0.0.1:{port}/0", prefix), 0.5)
        assert reads is not None
        with pytest.raises(OnlineStoreError) as raised:
            await reads.read(requests)
        text = str(raised.value)
        assert "\n" not in text and text.startswith(f"reading the Redis online store 127.0.0.1:{port}/0 failed"), text

    async def wrong_password() -> None:
        from redis.connection import parse_url

        options = parse_url(redis_url)
        where = f"{options.get('host', '127.0.0.1')}:{options.get('port', 6379)}"
        url = f"redis://nobody-{unique('u')}:hunter2-secret@{where}/0"
        reads = redis_async.AsyncRedisReads.of(RedisReader(url, prefix), 0.5)
        assert reads is not None
        with pytest.raises(OnlineStoreError) as raised:
            await reads.read(requests)
        text = str(raised.value)
        assert "\n" not in text and "hunter2" not in text and text.startswith("reading the Redis online store"), text

    run(dead())
    run(wrong_password())


def test_a_dead_redis_is_a_503_naming_the_store(repo: tuple[Path, str], redis_url: str) -> None:
    import socket

    root, prefix = repo
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    set_store(root, redis_store(f"redis://127.0.0.1:{port}/0", prefix))  # the module's repo, restored below
    try:
        with TestClient(create_app(root, settings=ServerSettings(store_timeout=0.5))) as client:
            response = client.post("/get-online-features", json=BODIES[0])
            health = client.get("/health")
    finally:
        set_store(root, redis_store(redis_url, prefix))
    assert response.status_code == 503, response.text
    assert response.json() == {"error": "the redis online store cannot be read; the server log has the details"}
    assert health.status_code == 200


def test_urls_the_loop_path_does_not_speak_keep_the_threaded_path() -> None:
    for url in (
        "rediss://127.0.0.1:6380/0",
        "redis://127.0.0.1:6379/0?client_name=x",
        "redis://127.0.0.1:6379/0?protocol=3",
    ):
        assert redis_async.AsyncRedisReads.of(RedisReader(url, "p"), 1.0) is None, url
    assert redis_async.AsyncRedisReads.of(RedisReader("redis://127.0.0.1:6379/3", "p"), 1.0) is not None
    assert redis_async.AsyncRedisReads.of(RedisReader("unix:///tmp/redis.sock?db=1", "p"), 1.0) is not None
    assert redis_async.AsyncRedisReads.of(object(), 1.0) is None  # not a plain RedisReader (a cluster's)


def test_the_loop_path_over_a_unix_socket_with_a_database(
    repo: tuple[Path, str], redis_url: str, tmp_path: Path
) -> None:
    """A unix:// URL with db=N: the proxy listens on a socket and checks the SELECT it is sent."""
    root, prefix = repo
    reader, (plan, columns, requests) = requests_of(root, [1, 2])
    expected = reader.finish(plan, columns, reader._reader.read(requests)).values
    hostile = Hostile(redis_url)
    seen: list[bytes] = []

    async def scenario() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            first = await r.read(65536)
            seen.append(first)
            w.write(b"+OK\r\n")  # SELECT 0 of the real Redis is the default: answered here
            await w.drain()
            up_r, up_w = await asyncio.open_connection(*hostile.target)
            while data := await r.read(65536):
                up_w.write(data)
                await up_w.drain()
                w.write(await up_r.read(65536))
                await w.drain()
            up_w.close()
            w.close()

        path = str(tmp_path / "r.sock")
        server = await asyncio.start_unix_server(handle, path)
        try:
            reads = redis_async.AsyncRedisReads.of(RedisReader(f"unix://{path}?db=5", prefix), 1.0)
            assert reads is not None
            rows = await reads.read(requests)
            assert rows is not None and reader.finish(plan, columns, rows).values == expected
            reads.close()
        finally:
            server.close()

    run(scenario())
    assert seen and seen[0].startswith(b"*2\r\n$6\r\nSELECT\r\n$1\r\n5\r\n")


def test_loop_reads_share_the_workers_limit_and_deadline_sentences() -> None:
    """StoreCalls.run_async: counted with the threads' calls, 503 at once beyond the limit, a missed
    deadline is the same sentence as a thread's, and nothing stays counted afterwards."""
    from featurehouse.server import StoreCalls, StoreUnavailable

    calls = StoreCalls("redis", 0.2, 2, lambda thread: None)

    async def scenario() -> None:
        release = asyncio.Event()

        async def waits() -> str:
            await release.wait()
            return "read"

        async def misses_its_deadline() -> None:
            raise asyncio.TimeoutError()

        first = asyncio.ensure_future(calls.run_async(waits))
        second = asyncio.ensure_future(calls.run_async(waits))
        await asyncio.sleep(0)
        assert calls.in_flight == 2
        with pytest.raises(StoreUnavailable, match="is not keeping up: 2 calls are already waiting"):
            await calls.run_async(waits)
        release.set()
        assert await first == await second == "read"
        with pytest.raises(StoreUnavailable) as raised:
            await calls.run_async(misses_its_deadline)
        assert str(raised.value) == "the redis online store did not answer within 0.2 s"
        assert calls.in_flight == 0

    try:
        run(scenario())
    finally:
        calls.close()
