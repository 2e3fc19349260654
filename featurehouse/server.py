"""The HTTP feature server: Feast's ``POST /get-online-features`` plus the catalog as JSON.

An existing Feast HTTP client works unchanged: the request body is Feast's
(``features`` or ``feature_service``, column-major ``entities``, ``full_feature_names``)
and so is the answer (``metadata.feature_names`` and one ``results`` entry per column,
join keys first). Every bad request gets a 4xx with ``{"error": "<one sentence>"}``; an
unreachable or slow online store a 503 naming the store (never its host, port or path);
nothing ever answers with a traceback.

Store calls run in ``StoreCalls``' threads, each with a deadline, so the event loop (and
``/health``) never waits on a store; a Redis store is read on the event loop instead, over
one pipelined asyncio connection per worker with the same deadline and limit
(featurehouse.sync.redis_async, docs/decisions/0030-server-hot-path.md), falling back to
the threads for the cases only ``RedisReader.read`` answers. ``GuardedHttpToolsProtocol`` adds the slow-client
timeouts and connection limits uvicorn lacks; ``FEATUREHOUSE_AUTH_TOKENS`` turns on
bearer-token authentication (docs/decisions/0011-server-deadlines-and-limits.md).

Each uvicorn worker builds its app once (``app_from_environment`` is the factory): the
repo is loaded and the online reader opened at start-up, never per request. The hot
path is answered by a thin ASGI layer in front of FastAPI that reads the raw body and
answers raw bytes (orjson), skipping FastAPI's routing and validation; the OpenAPI page
still documents the body from the pydantic models below.
FastAPI is imported at module level (FastAPI resolves handler annotations from the
module's globals); the CLI imports this module only for ``featurehouse serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.responses import Response
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from featurehouse.errors import FeaturehouseError, OnlineStoreError, RequestError, did_you_mean
from featurehouse.online.reader import shown

if TYPE_CHECKING:
    from featurehouse.spec.repo import FeatureRepo

log = logging.getLogger("featurehouse.server")

ENV_REPO = "FEATUREHOUSE_SERVE_REPO"
ENV_TARGET = "FEATUREHOUSE_SERVE_TARGET"
ENV_PROFILES_DIR = "FEATUREHOUSE_SERVE_PROFILES_DIR"
ENV_SETTINGS = "FEATUREHOUSE_SERVE_SETTINGS"  # ServerSettings as JSON, from `serve` to its workers
ENV_TOKENS = "FEATUREHOUSE_AUTH_TOKENS"  # bearer tokens, separated by commas or whitespace
MIN_TOKEN_CHARS = 16
DEFAULT_PORT = 6566
# A request is one HTTP body held in memory; bigger batches belong to get_historical_features.
MAX_ENTITY_ROWS = 10_000
MAX_BODY_BYTES = 8 * 1024 * 1024
# What one request may name: bounds the work and the cached plans a body can cause.
MAX_FEATURE_REFS = 1_000
MAX_NAME_CHARS = 256
MAX_ERROR_CHARS = 600  # an error message echoes names: never more than this back to a client
# Feast 0.67's body fields and request_context (request-time features); others are ignored, as Feast does
REQUEST_FIELDS = (
    "features",
    "feature_service",
    "entities",
    "full_feature_names",
    "include_feature_view_version_metadata",
    "request_context",
)
_JSON_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


# ---- the documented shapes (OpenAPI only; requests are parsed by hand for speed) ----------------------
class GetOnlineFeaturesRequest(BaseModel):
    """Feast's request body: name either ``features`` or ``feature_service``."""

    features: list[str] | None = Field(
        None,
        examples=[["driver_hourly_stats:conv_rate"]],
        description="Feature refs 'view:feature', or a view name for all of it.",
    )
    feature_service: str | None = Field(None, examples=["driver_activity"])
    entities: dict[str, list[Any]] = Field(
        examples=[{"driver_id": [1001, 1002]}], description="Join key → one value per entity row; equal lengths."
    )
    full_feature_names: bool = Field(False, description="Name features 'view__feature' instead of 'feature'.")
    include_feature_view_version_metadata: bool = Field(
        False, description="Add metadata.feature_view_metadata: [{name}] per view read (Feast's version 0)."
    )


class FeatureColumn(BaseModel):
    """One column of the answer: a value, a status and an event timestamp per entity."""

    values: list[Any]
    statuses: list[str] = Field(description="PRESENT, NOT_FOUND or OUTSIDE_MAX_AGE per row.")
    event_timestamps: list[str | None]


class Metadata(BaseModel):
    """The names of the answer's columns."""

    feature_names: list[str] = Field(description="Join keys first, then the features, in the results' order.")


class GetOnlineFeaturesResponse(BaseModel):
    """Feast's column-major answer: ``results[i]`` is the column ``metadata.feature_names[i]``."""

    metadata: Metadata
    results: list[FeatureColumn]


class ErrorBody(BaseModel):
    """The body of a 4xx/5xx answer: one sentence."""

    error: str = Field(
        examples=["feature view 'driver_hourly_stats' has no feature 'conv_rat' (did you mean 'conv_rate'?)"]
    )


# ---- request parsing -----------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _JSON_KINDS.get(type(value), type(value).__name__)


_INTEGER_TEXT = re.compile(r"[+-]?[0-9]{1,20}")
_KEY_TYPES = {"int64": int, "int32": int, "string": str, "bool": bool}
_KEY_RANGES = {"int64": (-(1 << 63), (1 << 63) - 1), "int32": (-(1 << 31), (1 << 31) - 1)}


def _exact_key_value(value: Any, dtype: str) -> Any:
    """``value`` in the join key's type when JSON carried it in another one without loss, else as it is.

    Feast's server converts entity values to the key's type (``int("1001")``); featurehouse does
    so only where nothing is lost: ``"1001"`` and ``1001.0`` for an integer key, ``1001`` for a
    string key, ``0``/``1`` for a boolean one. ``1001.5``, ``"1e3"``, ``" 1001"`` or ``true``
    for an integer key stay as they are and fail the key's type check with one sentence.
    """
    kind = type(value)
    if dtype in ("int64", "int32"):
        if kind is float and value.is_integer():
            return int(value)
        if kind is str and _INTEGER_TEXT.fullmatch(value):
            return int(value)
    elif dtype == "string":
        if kind is int:
            return str(value)
    elif dtype == "bool":
        if kind is int and value in (0, 1):
            return bool(value)
    return value


def _name(name: str) -> str:
    """A name from the body for a message: as it is when short and printable, else a safe excerpt."""
    return name if len(name) <= 60 and name.isprintable() else shown(name)


def _typo_of(data: dict[str, Any], *fields: str) -> str:
    """' (is 'entites' a typo of 'entities'?)' when an ignored field of the body looks like a missing one."""
    import difflib

    unknown = [name for name in data if name not in REQUEST_FIELDS and len(name) <= MAX_NAME_CHARS]
    for field in fields:
        match = difflib.get_close_matches(field, unknown, n=1, cutoff=0.6)
        if match:
            return f" (is {shown(match[0])} a typo of '{field}'?)"
    return ""


class OnlineRequest:
    """One parsed ``/get-online-features`` body."""

    __slots__ = ("features", "entities", "full_feature_names", "keys", "version_metadata")

    def __init__(
        self,
        features: str | list[str],
        entities: dict[str, list[Any]],
        full_feature_names: bool,
        keys: list[str],
        version_metadata: bool,
    ):
        self.features = features
        # every column of the body: join keys converted to their type; the others stay for the
        # reader's did-you-mean when a join key it needs is missing, and are otherwise unused
        self.entities = entities
        self.full_feature_names = full_feature_names
        self.keys = keys  # the join keys among the columns, in the body's order: echoed in the answer
        self.version_metadata = version_metadata  # include_feature_view_version_metadata


class RequestParser:
    """Turns a Feast request body into an :class:`OnlineRequest`.

    Accepts what Feast 0.67's server accepts (docs/feature-server.md, "Compared with Feast's server"): fields
    it does not know are ignored (Feast's client always sends
    ``include_feature_view_version_metadata``), ``features: []`` may stand beside
    ``feature_service``, an entity value JSON carried in another type is converted when nothing
    is lost (``"1001"`` for an integer key), an entity's name stands for its join key, and
    entity columns that are no join key are ignored. Everything else is checked, so that each
    mistake is one sentence: malformed JSON, wrong types, unknown services (with did-you-mean),
    entity lists of different lengths, key values of the wrong type. The online reader checks
    the rest (unknown features, missing join keys) with its own one-sentence errors.
    """

    def __init__(self, repo: FeatureRepo):
        from featurehouse.online.reader import _key_check

        self.repo = repo
        self.key_checks: dict[str, tuple[str, Any]] = {}  # join key -> (dtype, check)
        self.entity_keys: dict[str, str] = {}  # entity name -> its join key (Feast still accepts names)
        for entity in repo.entities.values():
            for key in entity.join_keys:
                if key not in self.key_checks:
                    try:
                        check = _key_check(key, entity.value_type, entity.name)
                    except RequestError:  # a key dtype online reads cannot look up: the reader says so
                        check = None
                    self.key_checks[key] = (entity.value_type, check)
            if len(entity.join_keys) == 1:
                self.entity_keys[entity.name] = entity.join_keys[0]
        self.all_join_keys = set(self.key_checks)

    def parse(self, body: bytes) -> OnlineRequest:
        """The request in ``body`` (Feast's JSON), checked; RequestError with one sentence otherwise."""
        import orjson

        if not body or not body.strip():
            raise RequestError(
                'the request body is empty; send JSON such as {"features": ["view:feature"], '
                '"entities": {"driver_id": [1001]}}'
            )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise RequestError(f"the request body is not valid JSON: {error}") from None
        if not isinstance(data, dict):
            raise RequestError(f"the request body must be a JSON object, got {_kind(data)}")
        features = self._features(data)
        full = self._flag(data, "full_feature_names")
        version_metadata = self._flag(data, "include_feature_view_version_metadata")
        entities, keys = self._entities(data)
        if data.get("request_context"):  # the request fields of request-time features
            from featurehouse.online.request_features import merge_request_context

            entities = merge_request_context(data["request_context"], entities, MAX_NAME_CHARS)
        return OnlineRequest(features, entities, full, keys, version_metadata)

    @staticmethod
    def _flag(data: dict[str, Any], name: str) -> bool:
        value = data.get(name, False)
        if type(value) is not bool:
            raise RequestError(f"{name} must be true or false, got {_kind(value)}")
        return value

    def _features(self, data: dict[str, Any]) -> str | list[str]:
        features, service = data.get("features"), data.get("feature_service")
        if service is not None:
            if features:  # Feast's server silently prefers the service; two answers to one question is a mistake
                raise RequestError("name either features or feature_service, not both")
            if features is not None and not isinstance(features, list):
                raise RequestError(f"features must be a list of 'view:feature' strings, got {_kind(features)}")
            if not isinstance(service, str):
                raise RequestError(f"feature_service must be a string, got {_kind(service)}")
            if len(service) > MAX_NAME_CHARS:
                raise RequestError(
                    f"feature_service is {len(service)} characters long; names are at most {MAX_NAME_CHARS}"
                )
            if service not in self.repo.feature_services:
                raise RequestError(
                    f"unknown feature service '{service}'{did_you_mean(service, self.repo.feature_services)}"
                )
            return service
        if features is None:
            raise RequestError(
                'the request names no features: add "features": ["view:feature", ...] '
                f'or "feature_service": "name"{_typo_of(data, "features", "feature_service")}'
            )
        if not isinstance(features, list):
            raise RequestError(f"features must be a list of 'view:feature' strings, got {_kind(features)}")
        if not features:
            raise RequestError("features is an empty list; name at least one 'view:feature'")
        if len(features) > MAX_FEATURE_REFS:
            raise RequestError(f"features names {len(features)} refs; the limit is {MAX_FEATURE_REFS} per request")
        services = self.repo.feature_services
        for ref in features:
            if not isinstance(ref, str):
                raise RequestError(f"features must hold 'view:feature' strings, got {_kind(ref)} ({shown(ref)})")
            if len(ref) > MAX_NAME_CHARS:
                raise RequestError(
                    f"features has a ref of {len(ref)} characters ({shown(ref, 40)}); "
                    f"names are at most {MAX_NAME_CHARS}"
                )
            if ref in services and ref not in self.repo.feature_views:
                raise RequestError(
                    f"'{ref}' is a feature service, not a feature view: send "
                    f'"feature_service": "{ref}" instead of "features"'
                )
        return features

    def _entities(self, data: dict[str, Any]) -> tuple[dict[str, list[Any]], list[str]]:
        """Every entity column, join keys converted to their type and checked, and the join keys sent."""
        entities = data.get("entities")
        if entities is None:
            raise RequestError(
                'the request has no entities: add "entities": {"<join key>": [values, ...]}'
                f"{_typo_of(data, 'entities')}"
            )
        if not isinstance(entities, dict) or not entities:
            raise RequestError(
                f"entities must be a non-empty object of join key → list of values, "
                f"got {_kind(entities) if not isinstance(entities, dict) else 'an empty object'}"
            )
        length = None
        columns: dict[str, list[Any]] = {}
        keys: list[str] = []
        for name, values in entities.items():
            if not isinstance(values, list):
                raise RequestError(f"entities.{_name(name)} must be a list of values, got {_kind(values)}")
            if length is None:
                length, first = len(values), name
                if length > MAX_ENTITY_ROWS:  # before any value is looked at
                    raise RequestError(
                        f"{length} entity rows in one request; the limit is {MAX_ENTITY_ROWS}, "
                        "split the request or use get_historical_features"
                    )
            elif len(values) != length:
                raise RequestError(
                    f"entities lists differ in length: {_name(first)} has {length} value(s), "
                    f"{_name(name)} has {len(values)}"
                )
            key = name if name in self.key_checks else self.entity_keys.get(name)
            if key is None:  # no join key: ignored, as Feast's server does (a label column, request data)
                if len(name) <= MAX_NAME_CHARS:  # kept for the reader's did-you-mean only
                    columns[name] = values
                continue
            if key in columns or (key != name and key in entities):
                raise RequestError(
                    f"entities has both '{_name(name)}' and '{key}' for the join key '{key}'; send only '{key}'"
                )
            dtype, check = self.key_checks[key]
            kind = _KEY_TYPES.get(dtype)
            bounds = _KEY_RANGES.get(dtype)
            # the common case, every value already of the key's type (and in range), costs no Python call per value
            if (
                kind is None
                or set(map(type, values)) != {kind}
                or (bounds and not (bounds[0] <= min(values) and max(values) <= bounds[1]))
            ):
                if kind is not None:
                    values = [_exact_key_value(v, dtype) for v in values]
                if check is not None:
                    values = [check(v, row) for row, v in enumerate(values)]
            columns[key] = values
            keys.append(key)
        if not length:
            raise RequestError("entities lists are empty: send at least one entity row")
        return columns, keys


# ---- the response ----------------------------------------------------------------------------------------
_PLAIN_DTYPES = frozenset({"bool", "int32", "int64", "float32", "float64", "string"})
_EPOCH_Z = "1970-01-01T00:00:00Z"


class FeastEncoder:
    """``OnlineResponse.to_feast_json()`` as JSON bytes, without a Python call per value.

    Given the parsed request, the join keys come first as Feast's server sends them: every
    join key of the body (also one no requested view uses), in the body's order, then the
    features. When every requested feature is a plain scalar (numbers, strings, booleans:
    values are JSON as they are) and the event times are UTC, orjson writes the timestamps
    itself in the same ``2026-01-01T00:00:00Z`` form; at batch 100 that is about ten times
    faster than formatting each one in Python. Anything else (bytes, timestamps, arrays as
    values) goes through ``to_feast_json()``. tests/server/test_server_encoding.py checks the two agree.
    """

    def __init__(self, repo: FeatureRepo):
        self.repo = repo
        self._shapes: dict[Any, tuple[bool, int, list[str]]] = {}

    def shape(self, features: str | list[str]) -> tuple[bool, int, list[str]]:
        """(only plain scalars?, how many join keys the reader puts first, the views read) of a feature list."""
        key = features if isinstance(features, str) else tuple(features)
        found = self._shapes.get(key)
        if found is None:
            from featurehouse.spec.request_views import RequestJoinPlan, join_plan

            plan = join_plan(self.repo, features, False)  # request views: the feature views they read too
            selections = plan.selections
            plain = not isinstance(plan, RequestJoinPlan) and all(
                dtype in _PLAIN_DTYPES
                for selection in selections
                for name, dtype in _feature_dtypes(selection.view).items()
                if name in selection.features
            )
            keys = {k for selection in selections for k in self.repo.join_keys(selection.view)}
            found = (plain, len(keys), [selection.view.name for selection in selections])
            if len(self._shapes) < 1024:
                self._shapes[key] = found
        return found

    def plain(self, features: str | list[str]) -> bool:
        """Whether ``features`` is answered without the per-view prefix."""
        return self.shape(features)[0]

    def encode(self, response: Any, features: str | list[str], request: OnlineRequest | None = None) -> bytes:
        """The answer to ``request`` (without one: the reader's own join keys first, as the SDK has them)."""
        import orjson

        plain, key_count, views = self.shape(features)
        if request is None:  # the response as it is, join keys included
            key_count, keys = 0, []
        names = response.feature_names[key_count:]
        if request is not None:
            taken = set(names)
            keys = [k for k in request.keys if k not in taken]  # a feature named like an unused key wins
        metadata: dict[str, Any] = {"feature_names": keys + names}
        if request is not None and request.version_metadata:
            # Feast's answer for a view at version 0 (featurehouse has no view versions): the name only
            metadata["feature_view_metadata"] = [{"name": v} for v in views]
        entities = request.entities if request is not None else {}  # no request: no keys either
        n = len(entities[keys[0]]) if keys else 0
        present, epochs = ["PRESENT"] * n, [_EPOCH_Z] * n
        results = [{"values": entities[k], "statuses": present, "event_timestamps": epochs} for k in keys]
        if plain:
            for name in names:
                stamps = response.event_timestamps[name]
                first = next((t for t in stamps if t is not None), None)
                if first is not None and (first.utcoffset() is None or first.utcoffset().total_seconds() != 0):
                    break  # another zone: formatted in Python below
                results.append(
                    {
                        "values": response.values[name],
                        "statuses": response.statuses[name],
                        "event_timestamps": [_EPOCH_Z if t is None else t for t in stamps],
                    }
                )
            else:
                return orjson.dumps(
                    {"metadata": metadata, "results": results}, option=orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS
                )
            del results[len(keys) :]
        results += response.to_feast_json()["results"][key_count:]
        return orjson.dumps({"metadata": metadata, "results": results})


def _feature_dtypes(view: Any) -> dict[str, str]:
    from featurehouse.plan.joins import feature_dtypes

    return feature_dtypes(view)


# ---- settings, authentication, store deadlines -------------------------------------------------------------
@dataclass(frozen=True)
class ServerSettings:
    """What `featurehouse serve` configures, per worker (see docs/decisions/0011)."""

    store_timeout: float = 2.0  # seconds a store call may take before the client gets a 503
    store_concurrency: int = 32  # store calls in flight per worker; beyond that a 503 at once
    header_timeout: float = 10.0  # seconds from connection (or end of the last response) to complete headers
    body_timeout: float = 30.0  # seconds from complete headers to the complete body
    keep_alive_timeout: float = 5.0  # an idle keep-alive connection is closed after this
    keep_alive_requests: int = 10_000  # requests on one connection before it is closed
    max_connections: int = 10_000  # open connections per worker; more are answered 503 and closed
    max_header_bytes: int = 64 * 1024  # request line plus headers
    loop_reads: bool = True  # read Redis on the event loop (False: in the store threads, as other stores)
    docs: bool = False  # /docs and /openapi.json

    def to_env(self) -> str:
        """The settings as JSON, for the worker processes' environment."""
        return json.dumps(asdict(self))

    @classmethod
    def from_env(cls) -> ServerSettings:
        """The settings the parent process put in the environment (defaults without)."""
        text = os.environ.get(ENV_SETTINGS)
        return cls(**json.loads(text)) if text else cls()


def tokens_from_environment() -> list[bytes] | None:
    """The bearer tokens of FEATUREHOUSE_AUTH_TOKENS, or None when it is unset (no authentication)."""
    text = os.environ.get(ENV_TOKENS)
    if text is None:
        return None
    tokens = [t for t in text.replace(",", " ").split() if t]
    if not tokens:
        raise FeaturehouseError(
            f"{ENV_TOKENS} is set but holds no token; unset it to serve without "
            "authentication, or give tokens separated by commas"
        )
    short = [i + 1 for i, t in enumerate(tokens) if len(t) < MIN_TOKEN_CHARS]
    if short:
        raise FeaturehouseError(
            f"{ENV_TOKENS}: token {short[0]} is shorter than {MIN_TOKEN_CHARS} characters; "
            "use long random tokens (python -c 'import secrets; print(secrets.token_urlsafe())')"
        )
    return [t.encode() for t in tokens]


def _authorized(headers: list[tuple[bytes, bytes]], tokens: list[bytes]) -> bool:
    """Whether the Authorization header carries one of ``tokens``; compares in constant time."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            if scheme.lower() != b"bearer":
                return False
            given = given.strip()
            match = False
            for token in tokens:  # every token compared: the time does not tell which one matched
                match |= hmac.compare_digest(given, token)
            return match
    return False


class StoreUnavailable(OnlineStoreError):
    """A store call missed its deadline or found too many calls in flight; the message is for clients."""


class StoreCalls:
    """Runs blocking online-store calls in a bounded thread pool, each with a deadline.

    The event loop never waits on the store: ``/health`` and every other connection keep
    being answered whatever the store does. A call that misses its deadline answers 503 and
    is interrupted (``interrupt(thread_id)`` shuts its connection down); a worker holds at
    most ``limit`` calls in flight, including interrupted ones not yet returned, and answers
    503 at once beyond that instead of queueing behind a frozen store.
    """

    def __init__(self, kind: str, timeout: float, limit: int, interrupt: Callable[[int], None]):
        self.kind = kind
        self.timeout = timeout
        self.limit = limit
        self.interrupt = interrupt
        self.in_flight = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="featurehouse-store")

    def _release(self, _: Any) -> None:
        with self._lock:
            self.in_flight -= 1

    def _admit(self) -> None:
        """Count one more call in flight, or refuse it (503) when ``limit`` are already waiting."""
        with self._lock:
            busy = self.in_flight >= self.limit
            if not busy:
                self.in_flight += 1
        if busy:
            raise StoreUnavailable(
                f"the {self.kind} online store is not keeping up: {self.limit} calls are "
                "already waiting on it in this worker; retry later"
            )

    async def run(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` in the pool within the deadline; OnlineStoreError (503) otherwise."""
        self._admit()
        running: list[int | None] = [None]

        def call() -> Any:
            running[0] = threading.get_ident()
            try:
                return function(*args)
            finally:
                running[0] = None

        future = self._executor.submit(call)
        future.add_done_callback(self._release)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.timeout)
        except asyncio.TimeoutError:
            thread = running[0]
            if thread is not None:
                with contextlib.suppress(Exception):
                    self.interrupt(thread)
            raise StoreUnavailable(f"the {self.kind} online store did not answer within {self.timeout:g} s") from None

    async def run_async(self, function: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Await ``function(*args)`` on the event loop, counted with the threads' calls.

        ``function`` keeps its own deadline (the store's event-loop reads) and raises
        asyncio.TimeoutError past it: a 503, as for a thread's call.
        """
        self._admit()
        try:
            return await function(*args)
        except asyncio.TimeoutError:
            raise StoreUnavailable(f"the {self.kind} online store did not answer within {self.timeout:g} s") from None
        finally:
            with self._lock:
                self.in_flight -= 1

    def close(self) -> None:
        """Stop the pool without waiting for calls still running."""
        self._executor.shutdown(wait=False, cancel_futures=True)


# ---- the HTTP protocol: limits uvicorn's httptools protocol lacks ------------------------------------------
class _Throttled:
    """Logs the first event of a kind, then at most one line per ``every`` seconds with the count."""

    def __init__(self, every: float = 10.0):
        self.every = every
        self._last: dict[str, float] = {}
        self._count: dict[str, int] = {}

    def warn(self, kind: str, message: str) -> None:
        now = time.monotonic()
        self._count[kind] = self._count.get(kind, 0) + 1
        if now - self._last.get(kind, -1e9) >= self.every:
            count = self._count.pop(kind)
            log.warning("%s%s", message, f" ({count} times in the last {self.every:g} s)" if count > 1 else "")
            self._last[kind] = now


_throttled = _Throttled()


def _raw_response(status: bytes, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    return (
        b"HTTP/1.1 "
        + status
        + b"\r\ncontent-type: application/json\r\ncontent-length: "
        + str(len(body)).encode()
        + b"\r\nconnection: close\r\n\r\n"
        + body
    )


class _HeadersTooLarge(Exception):
    pass


class _CorkedTransport:
    """A transport whose writes of one turn of the event loop leave in one system call, at its end.

    uvicorn writes a response's status line and headers, then its body: two ``send`` calls
    and often two TCP segments for a small answer. Here they leave together (measured in
    docs/decisions/0030-server-hot-path.md). ``close`` sends what is buffered first; every
    other attribute is the real transport's.
    """

    __slots__ = ("_transport", "_loop", "_buffer")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._buffer: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._buffer:
            self._loop.call_soon(self._flush)
        self._buffer.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        buffer, self._buffer = self._buffer, []
        if buffer and not self._transport.is_closing():
            self._transport.write(buffer[0] if len(buffer) == 1 else b"".join(buffer))

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._buffer = []
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol plus what a server facing slow or hostile clients needs.

    uvicorn closes idle keep-alive connections but has no timeout for a client that sends
    half a request and stops, no cap on open connections that holds file descriptors, and
    no bound on header size with httptools. Here: headers must be complete within
    ``header_timeout`` of the connection (or of the previous response) and the body within
    ``body_timeout`` of the headers (else 408 and close); a worker holds at most
    ``max_connections`` (more get 503 and are closed at once); headers above
    ``max_header_bytes`` get 431; a connection serves at most ``keep_alive_requests``.
    Each of these is logged, at most one line per kind every 10 s.
    """

    settings: ServerSettings | None = None  # per worker process, from the environment

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if GuardedHttpToolsProtocol.settings is None:
            GuardedHttpToolsProtocol.settings = ServerSettings.from_env()
        self.limits = GuardedHttpToolsProtocol.settings
        # one timer per connection, moved lazily: arming a deadline only records it, and the
        # timer, when it fires, waits on for a later one (no timer made and cancelled per request)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._deadline: float | None = None
        self._what = "headers"
        self._header_bytes = 0
        self._requests = 0
        self._oversized = False

    def _arm(self, seconds: float, what: str) -> None:
        deadline = self.loop.time() + seconds
        self._deadline, self._what = deadline, what
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._check)

    def _disarm(self) -> None:
        self._deadline = None  # a live timer finds nothing to do

    def _check(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if deadline > self.loop.time() + 0.001:  # armed again since (a timer may fire a little early)
            self._timer_at = deadline
            self._timer = self.loop.call_at(deadline, self._check)
            return
        self._deadline = None
        self._expire(self._what)

    def _expire(self, what: str) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        seconds = self.limits.header_timeout if what == "headers" else self.limits.body_timeout
        _throttled.warn(what, f"closed a connection whose request {what} did not arrive within {seconds:g} s")
        self.transport.write(
            _raw_response(b"408 Request Timeout", f"the request {what} did not arrive within {seconds:g} s")
        )
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _CorkedTransport(transport, self.loop)  # type: ignore[assignment]
        if len(self.connections) > self.limits.max_connections:
            _throttled.warn(
                "connections",
                f"refused a connection: this worker already holds {self.limits.max_connections} (--limit-connections)",
            )
            transport.write(
                _raw_response(b"503 Service Unavailable", "the server holds too many connections; retry later")
            )
            transport.close()
            return
        self._arm(self.limits.header_timeout, "headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # a new request on a kept-alive connection: its headers have header_timeout from now
        if self._deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm(self.limits.header_timeout, "headers")
        super().data_received(data)

    def on_message_begin(self) -> None:
        """A new request: its header bytes count from zero."""
        self._header_bytes = 0
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Count the URL towards the header limit."""
        self._count_header_bytes(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Count a header towards the header limit."""
        self._count_header_bytes(len(name) + len(value))
        super().on_header(name, value)

    def _count_header_bytes(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.limits.max_header_bytes:
            self._oversized = True
            raise _HeadersTooLarge()  # httptools turns it into HttpParserError: send_400_response below

    def send_400_response(self, msg: str) -> None:
        """Answer a bad request: 431 for oversized headers, else uvicorn's 400."""
        self._disarm()
        if self._oversized:
            _throttled.warn(
                "headers-size", f"refused a request whose headers exceed {self.limits.max_header_bytes} bytes"
            )
            self.transport.write(
                _raw_response(
                    b"431 Request Header Fields Too Large",
                    f"the request headers exceed {self.limits.max_header_bytes} bytes",
                )
            )
            self.transport.close()
            return
        super().send_400_response(msg)

    def on_headers_complete(self) -> None:
        """Start the body deadline; close the connection after the last keep-alive request."""
        self._arm(self.limits.body_timeout, "body")
        super().on_headers_complete()
        self._requests += 1
        if self._requests >= self.limits.keep_alive_requests and self.cycle is not None:
            self.cycle.keep_alive = False  # answered with "connection: close"

    def on_message_complete(self) -> None:
        """The request is complete: stop its deadline."""
        self._disarm()
        super().on_message_complete()


# ---- the app ---------------------------------------------------------------------------------------------
class FeatureServer:
    """The ASGI app ``featurehouse serve`` runs: ``POST /get-online-features`` and ``GET /health``
    are answered here directly, everything else (catalog, OpenAPI) by the FastAPI app in ``api``.

    Measured on this machine with one worker, the same parse-and-answer work ran at about
    3,500 requests/s as a FastAPI route and 5,500-7,800 here: FastAPI's routing, request
    object and middleware layers cost more than reading a feature from Redis.
    """

    def __init__(self, api: FastAPI, answer: Any, health: bytes, ready: Any = None, tokens: list[bytes] | None = None):
        self.api = api
        self.answer = answer
        self.health = health  # load balancers ask often: answered here too, from bytes made at start-up
        self.ready = ready  # async () -> (status, body): a round trip to the store, with its deadline
        self.tokens = tokens  # None: no authentication

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/health" and method in ("GET", "HEAD"):  # from memory: never waits on the store
            await self._send(send, 200, self.health, head=method == "HEAD")
            return
        if path == "/ready" and method in ("GET", "HEAD") and self.ready is not None:
            status, payload = await self.ready()
            await self._send(send, status, payload, head=method == "HEAD")
            return
        if self.tokens is not None and not _authorized(scope["headers"], self.tokens):
            await self._send(send, 401, _UNAUTHORIZED, extra=[(b"www-authenticate", b"Bearer")])
            return
        if path != "/get-online-features" or method != "POST":
            await self.api(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                await self._send(send, 413, b'{"error":"the request body is larger than %d bytes"}' % MAX_BODY_BYTES)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        status, payload = await self.answer(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        await self._send(send, status, payload)

    @staticmethod
    async def _send(
        send: Any, status: int, payload: bytes, head: bool = False, extra: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers + extra if extra else headers})
        await send({"type": "http.response.body", "body": b"" if head else payload})


_UNAUTHORIZED = json.dumps(
    {
        "error": "this server needs a bearer token: send the header "
        "'Authorization: Bearer <token>' with one of its tokens"
    }
).encode()


async def _bounded_body(request: Request) -> bytes | None:
    """The request body, or None once it passes MAX_BODY_BYTES (read no further)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _unknown(what: str, name: str, choices: Any) -> str:
    if len(name) > MAX_NAME_CHARS:  # neither echoed nor compared: names are short
        return f"unknown {what} (a name of {len(name)} characters; names are at most {MAX_NAME_CHARS})"
    return f"unknown {what} '{name}'{did_you_mean(name, choices)}"


def create_app(
    repo_path: str | os.PathLike[str] = ".",
    target: str | None = None,
    profiles_dir: str | None = None,
    settings: ServerSettings | None = None,
    tokens: list[bytes] | None = None,
) -> FeatureServer:
    """The feature server's ASGI app for the repo at ``repo_path``; builds the store and reader now.

    ``settings`` (deadlines, limits, docs) default to ``ServerSettings()``; ``tokens``, when
    given, are the bearer tokens every endpoint but /health and /ready requires.
    """
    import orjson
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from featurehouse import __version__, catalog
    from featurehouse.online.reader import OnlineReader
    from featurehouse.sdk.store import FeatureStore

    settings = settings or ServerSettings()
    store = FeatureStore(repo_path, target=target, profiles_dir=profiles_dir)
    repo = store.repo
    kind = repo.config.online_store.type
    parser = RequestParser(repo)
    encoder = FeastEncoder(repo)
    # one per worker: its connections (one per store thread) and per-feature-list plans are reused
    reader = OnlineReader(store, timeout=settings.store_timeout)
    calls = StoreCalls(kind, settings.store_timeout, settings.store_concurrency, reader.interrupt)
    # Redis is read on the event loop (no hop to a thread: docs/decisions/0030-server-hot-path.md)
    loop_reads = reader.loop_reads(settings.store_timeout) if settings.loop_reads else None

    def json_response(body: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    def error(status: int, message: str) -> Response:
        return json_response({"error": message}, status)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        if loop_reads is not None:
            loop_reads.close()
        calls.close()
        reader.close()

    app = FastAPI(
        title=f"featurehouse feature server: {repo.config.project}",
        version=__version__,
        description="Online features (Feast-compatible POST /get-online-features) and the feature catalog.",
        lifespan=lifespan,
        # the API's description is for people who run the server: off unless `serve --docs`
        docs_url="/docs" if settings.docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs else None,
    )
    not_found = "no such endpoint; see /docs for the API" if settings.docs else "no such endpoint"

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = not_found
        elif exc.status_code == 405:
            detail = "method not allowed on this endpoint"
        return error(exc.status_code, detail)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> Response:
        log.exception("unexpected error while serving a request")
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.post(
        "/get-online-features",
        summary="Online features for entity rows (Feast's request and response shapes)",
        response_model=None,
        responses={
            200: {"model": GetOnlineFeaturesResponse},
            400: {"model": ErrorBody},
            503: {"model": ErrorBody, "description": "The online store cannot be reached."},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": GetOnlineFeaturesRequest.model_json_schema()}},
            }
        },
    )
    async def get_online_features(request: Request) -> Response:
        # documents the endpoint (and answers if the app is mounted without FeatureServer)
        status, payload = await answer(await request.body())
        return Response(payload, status_code=status, media_type="application/json")

    def store_failed(exc: OnlineStoreError) -> tuple[int, bytes]:
        # The client learns which store and what happened, never hosts, ports or paths: the log has them.
        if isinstance(exc, StoreUnavailable):
            log.warning("%s", exc)
            return 503, orjson.dumps({"error": str(exc)})
        log.warning("online store error: %s", exc)
        return 503, orjson.dumps({"error": f"the {kind} online store cannot be read; the server log has the details"})

    async def read(request: OnlineRequest) -> Any:
        """The reader's answer: on the event loop where the store allows, else in StoreCalls' threads."""
        if loop_reads is not None:
            staged = reader.stage(request.features, request.entities, request.full_feature_names)
            if staged is not None:
                plan, columns, requests = staged
                rows = await calls.run_async(loop_reads.read, requests) if requests else [[] for _ in plan.views]
                if rows is not None:
                    return reader.finish(plan, columns, rows)
        # request-time features, other stores, and the store states only Reader.read answers
        return await calls.run(reader.read, request.features, request.entities, request.full_feature_names)

    async def answer(body: bytes) -> tuple[int, bytes]:
        """Status and JSON bytes for one request body; never raises."""
        # The body is parsed here, on the event loop (bounded by MAX_BODY_BYTES); the store is
        # read with a deadline, on the loop (Redis) or in StoreCalls' threads: never waited on.
        try:
            request = parser.parse(body)
            return 200, encoder.encode(await read(request), request.features, request)
        except RequestError as exc:
            message = str(exc)
            if len(message) > MAX_ERROR_CHARS:
                message = message[: MAX_ERROR_CHARS - 1] + "…"
            return 400, orjson.dumps({"error": message})
        except OnlineStoreError as exc:
            return store_failed(exc)
        except FeaturehouseError as exc:
            log.warning("cannot serve request: %s", exc)
            return 500, orjson.dumps(
                {"error": f"the server cannot answer ({type(exc).__name__}); the server log has the details"}
            )
        except Exception as exc:  # a client must get JSON, the log gets the traceback
            log.exception("unexpected error while serving /get-online-features")
            message = f"internal error ({type(exc).__name__}); the server log has the details"
            return 500, orjson.dumps({"error": message})

    async def ready() -> tuple[int, bytes]:
        """200 when the online store answers a round trip within the deadline, else 503."""
        try:
            await calls.run(reader.ping)
        except OnlineStoreError as exc:
            return store_failed(exc)
        except Exception:
            log.exception("unexpected error while checking the online store for /ready")
            return 503, orjson.dumps(
                {"error": f"the {kind} online store cannot be checked; the server log has the details"}
            )
        return 200, ready_body

    # with authentication on, the unauthenticated endpoints say no more than that the server is up
    health_body = (
        {"status": "ok"}
        if tokens is not None
        else {"status": "ok", "project": repo.config.project, "online_store": kind}
    )
    ready_body = orjson.dumps({"status": "ready", **({} if tokens is not None else {"online_store": kind})})

    @app.get("/health", summary="Liveness: the worker is up and has loaded the repo (never asks the store)")
    async def health() -> Response:
        return json_response(health_body)

    @app.get(
        "/ready",
        summary="Readiness: the online store answers a round trip within the deadline",
        responses={503: {"model": ErrorBody}},
    )
    async def readiness() -> Response:
        status, payload = await ready()
        return Response(payload, status_code=status, media_type="application/json")

    async def write_answer(request: Request, handler: Callable[[Any, bytes], Any]) -> Response:
        # featurehouse.online.push parses, validates and writes; a write is not cut short by the
        # read deadline (a 503 would leave the client unsure what was written): it runs to its end
        from starlette.concurrency import run_in_threadpool

        from featurehouse.online.push import PushError

        body = await _bounded_body(request)
        if body is None:
            return error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        try:
            return json_response(await run_in_threadpool(handler, store, body))
        except RequestError as exc:
            message = str(exc)
            return error(400, message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…")
        except PushError as exc:  # which part was written is the client's; the store's details are the log's
            log.warning("push failed: %s", exc)
            return error(503, exc.sentence("the server log has the details"))
        except FeaturehouseError as exc:
            log.warning("write failed: %s", exc)
            message = f"the {kind} online store cannot be written; nothing was written; the server log has the details"
            return error(503, message)

    @app.post(
        "/push",
        summary="Push rows to a push source: online, offline or both (Feast 0.67's request body)",
        response_model=None,
        responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def push(request: Request) -> Response:
        from featurehouse.online.push import http_push

        return await write_answer(request, http_push)

    @app.post(
        "/write-to-online-store",
        summary="Write rows of one feature view to the online store (Feast 0.67's request body)",
        response_model=None,
        responses={400: {"model": ErrorBody}, 413: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def write_to_online_store(request: Request) -> Response:
        from featurehouse.online.push import http_write

        return await write_answer(request, http_write)

    @app.post(
        "/retrieve-online-documents",
        summary="The documents nearest a query vector, best first (Feast 0.67's request and response shapes)",
        response_model=None,
        responses={400: {"model": ErrorBody}, 503: {"model": ErrorBody}},
    )
    async def retrieve_online_documents(request: Request) -> Response:
        # parsing, checks and the search: featurehouse.online.search; run with the store deadline
        from featurehouse.online.search import http_answer
        from featurehouse.sync.search_types import NoVectorSearchError

        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return error(413, f"the request body is larger than {MAX_BODY_BYTES} bytes")
        try:
            return json_response(await calls.run(http_answer, store, body))
        except (RequestError, NoVectorSearchError) as exc:
            message = str(exc)
            return error(400, message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…")
        except OnlineStoreError as exc:
            status, payload = store_failed(exc)
            return Response(payload, status_code=status, media_type="application/json")

    async def with_online_state(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [i["name"] for i in items if i.get("online")]
        if names:
            try:
                state = await calls.run(catalog.online_state, store, names)
            except StoreUnavailable as exc:
                state = {n: {"error": str(exc)} for n in names}
            for name, value in state.items():
                if "error" in value:  # the store's own message names hosts or paths: the log only
                    log.warning("online state of %s: %s", name, value["error"])
                    state[name] = {
                        "error": value["error"]
                        if isinstance(value.get("error"), str) and value["error"].startswith(f"the {kind} online store")
                        else f"the {kind} online store cannot be read; the server log has the details"
                    }
            for item in items:
                if item["name"] in state:
                    item["online_store"] = {"type": repo.config.online_store.type, **state[item["name"]]}
        return items

    @app.get("/feature-views", summary="Every feature view, with schema, source, ttl, owner and tags")
    async def feature_views() -> Response:
        return json_response({"feature_views": [catalog.view_info(repo, n) for n in sorted(repo.feature_views)]})

    @app.get(
        "/feature-views/{name}",
        summary="One feature view, with its online sync state",
        responses={404: {"model": ErrorBody}},
    )
    async def feature_view(name: str) -> Response:  # the store's sync state: in StoreCalls, with the deadline
        if name not in repo.feature_views:
            return error(404, _unknown("feature view", name, repo.feature_views))
        return json_response((await with_online_state([catalog.view_info(repo, name)]))[0])

    @app.get("/feature-services", summary="Every feature service and the features it reads")
    async def feature_services() -> Response:
        return json_response(
            {"feature_services": [catalog.service_info(repo, n) for n in sorted(repo.feature_services)]}
        )

    @app.get("/feature-services/{name}", summary="One feature service", responses={404: {"model": ErrorBody}})
    async def feature_service(name: str) -> Response:
        if name not in repo.feature_services:
            return error(404, _unknown("feature service", name, repo.feature_services))
        return json_response(catalog.service_info(repo, name))

    @app.get("/entities", summary="Every entity and its join keys")
    async def entities() -> Response:
        return json_response({"entities": [catalog.entity_info(repo, n) for n in sorted(repo.entities)]})

    return FeatureServer(app, answer, orjson.dumps(health_body), ready, tokens)


def app_from_environment() -> FeatureServer:
    """The uvicorn factory: each worker process builds its own app from the serve command's settings."""
    return create_app(
        os.environ.get(ENV_REPO, "."),
        os.environ.get(ENV_TARGET) or None,
        os.environ.get(ENV_PROFILES_DIR) or None,
        settings=ServerSettings.from_env(),
        tokens=tokens_from_environment(),
    )


def _check_tls(keyfile: str | None, certfile: str | None) -> None:
    import ssl

    if bool(keyfile) != bool(certfile):
        raise FeaturehouseError("TLS needs both --ssl-keyfile and --ssl-certfile")
    if not keyfile or not certfile:
        return
    for option, path in (("--ssl-keyfile", keyfile), ("--ssl-certfile", certfile)):
        if not Path(path).is_file():
            raise FeaturehouseError(f"{option} {path}: no such file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(certfile, keyfile)
    except (ssl.SSLError, OSError) as error:
        raise FeaturehouseError(
            f"cannot load the TLS key {keyfile} and certificate {certfile}: {getattr(error, 'reason', None) or error}"
        ) from None


def _file_limit(wanted: int) -> int:
    """Raise this process's open-file limit toward ``wanted`` (workers inherit it); return what it is."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def serve(
    repo_path: str | os.PathLike[str],
    target: str | None = None,
    profiles_dir: str | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "info",
    settings: ServerSettings | None = None,
    ssl_keyfile: str | None = None,
    ssl_certfile: str | None = None,
) -> None:
    """Run uvicorn with ``workers`` processes until interrupted.

    Raises FeaturehouseError before starting when the tokens in FEATUREHOUSE_AUTH_TOKENS or
    the TLS files are unusable.
    """
    import uvicorn

    settings = settings or ServerSettings()
    tokens = tokens_from_environment()
    _check_tls(ssl_keyfile, ssl_certfile)
    # connections hold file descriptors: leave room for the store's connections, files and logs
    files = _file_limit(settings.max_connections + settings.store_concurrency + 256)
    room = files - settings.store_concurrency - 256
    if room < settings.max_connections:
        log.warning(
            "the open-file limit is %d: --limit-connections lowered from %d to %d",
            files,
            settings.max_connections,
            max(room, 16),
        )
        settings = ServerSettings(**{**asdict(settings), "max_connections": max(room, 16)})
    if tokens is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s without authentication: anyone who reaches this port reads features "
            "(set %s, or put an authenticating proxy in front)",
            host,
            ENV_TOKENS,
        )
    os.environ[ENV_REPO] = str(Path(repo_path).resolve())
    os.environ[ENV_TARGET] = target or ""
    os.environ[ENV_PROFILES_DIR] = str(Path(profiles_dir).resolve()) if profiles_dir else ""
    os.environ[ENV_SETTINGS] = settings.to_env()
    uvicorn.run(
        "featurehouse.server:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level=log_level,
        server_header=False,
        date_header=False,
        http="featurehouse.server:GuardedHttpToolsProtocol",
        timeout_keep_alive=settings.keep_alive_timeout,  # type: ignore[arg-type]  # a float works (call_later)
        ssl_keyfile=ssl_keyfile,
        ssl_certfile=ssl_certfile,
    )
