"""The HTTP feature server: Feast's ``POST /get-online-features`` plus the catalog as JSON.

An existing Feast HTTP client works unchanged: the request body is Feast's
(``features`` or ``feature_service``, column-major ``entities``, ``full_feature_names``)
and so is the answer (``metadata.feature_names`` and one ``results`` entry per column,
join keys first). Every bad request gets a 4xx with ``{"error": "<one sentence>"}``; an
unreachable online store a 503; nothing ever answers with a traceback.

Each uvicorn worker builds its app once (``app_from_environment`` is the factory): the
repo is loaded and the online reader opened at start-up, never per request. The hot
path is answered by a thin ASGI layer in front of FastAPI that reads the raw body and
answers raw bytes (orjson), skipping FastAPI's routing and validation; the OpenAPI page
still documents the body from the pydantic models below.
FastAPI is imported at module level (FastAPI resolves handler annotations from the
module's globals); the CLI imports this module only for ``featurehouse serve``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from featurehouse.errors import FeaturehouseError, OnlineStoreError, RequestError, did_you_mean

if TYPE_CHECKING:
    from featurehouse.repo import FeatureRepo

log = logging.getLogger("featurehouse.server")

ENV_REPO = "FEATUREHOUSE_SERVE_REPO"
ENV_TARGET = "FEATUREHOUSE_SERVE_TARGET"
ENV_PROFILES_DIR = "FEATUREHOUSE_SERVE_PROFILES_DIR"
DEFAULT_PORT = 6566
# A request is one HTTP body held in memory; bigger batches belong to get_historical_features.
MAX_ENTITY_ROWS = 10_000
MAX_BODY_BYTES = 8 * 1024 * 1024
REQUEST_FIELDS = ("features", "feature_service", "entities", "full_feature_names", "request_context")
_JSON_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


# ---- the documented shapes (OpenAPI only; requests are parsed by hand for speed) ----------------------
class GetOnlineFeaturesRequest(BaseModel):
    """Feast's request body: name either ``features`` or ``feature_service``."""

    features: list[str] | None = Field(None, examples=[["driver_hourly_stats:conv_rate"]],
                                       description="Feature refs 'view:feature', or a view name for all of it.")
    feature_service: str | None = Field(None, examples=["driver_activity"])
    entities: dict[str, list[Any]] = Field(examples=[{"driver_id": [1001, 1002]}],
                                           description="Join key → one value per entity row; equal lengths.")
    full_feature_names: bool = Field(False, description="Name features 'view__feature' instead of 'feature'.")


class FeatureColumn(BaseModel):
    values: list[Any]
    statuses: list[str] = Field(description="PRESENT, NOT_FOUND or OUTSIDE_MAX_AGE per row.")
    event_timestamps: list[str | None]


class Metadata(BaseModel):
    feature_names: list[str] = Field(description="Join keys first, then the features, in the results' order.")


class GetOnlineFeaturesResponse(BaseModel):
    """Feast's column-major answer: ``results[i]`` is the column ``metadata.feature_names[i]``."""

    metadata: Metadata
    results: list[FeatureColumn]


class ErrorBody(BaseModel):
    error: str = Field(examples=["feature view 'driver_hourly_stats' has no feature 'conv_rat' "
                                 "(did you mean 'conv_rate'?)"])


# ---- request parsing -----------------------------------------------------------------------------------
def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return _JSON_KINDS.get(type(value), type(value).__name__)


class RequestParser:
    """Turns a Feast request body into ``(features, entity_rows, full_feature_names)``.

    Checks the shape of the body, so that each mistake is one sentence: malformed JSON,
    unknown fields, services and join keys (with did-you-mean), entity lists of different
    lengths. The online reader checks the rest (unknown features, missing join keys, key
    types) with its own one-sentence errors.
    """

    def __init__(self, repo: FeatureRepo):
        self.repo = repo
        self.all_join_keys = {k for e in repo.entities.values() for k in e.join_keys}

    def parse(self, body: bytes) -> tuple[str | list[str], dict[str, list[Any]], bool]:
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
        for name in data:
            if name not in REQUEST_FIELDS:
                raise RequestError(
                    f"unknown field '{name}'{did_you_mean(name, REQUEST_FIELDS)}; expected features or "
                    "feature_service, entities and optionally full_feature_names"
                )
        if data.get("request_context"):
            raise RequestError("request_context is not supported: featurehouse has no on-demand feature views")
        features = self._features(data)
        full = data.get("full_feature_names", False)
        if type(full) is not bool:
            raise RequestError(f"full_feature_names must be true or false, got {_kind(full)}")
        return features, self._entities(data), full

    def _features(self, data: dict[str, Any]) -> str | list[str]:
        features, service = data.get("features"), data.get("feature_service")
        if features is not None and service is not None:
            raise RequestError("name either features or feature_service, not both")
        if service is not None:
            if not isinstance(service, str):
                raise RequestError(f"feature_service must be a string, got {_kind(service)}")
            if service not in self.repo.feature_services:
                raise RequestError(
                    f"unknown feature service '{service}'{did_you_mean(service, self.repo.feature_services)}"
                )
            return service
        if features is None:
            raise RequestError('the request names no features: add "features": ["view:feature", ...] '
                               'or "feature_service": "name"')
        if not isinstance(features, list):
            raise RequestError(f"features must be a list of 'view:feature' strings, got {_kind(features)}")
        if not features:
            raise RequestError("features is an empty list; name at least one 'view:feature'")
        services = self.repo.feature_services
        for ref in features:
            if not isinstance(ref, str):
                raise RequestError(f"features must hold 'view:feature' strings, got {_kind(ref)} ({ref!r})")
            if ref in services and ref not in self.repo.feature_views:
                raise RequestError(f"'{ref}' is a feature service, not a feature view: send "
                                   f"\"feature_service\": \"{ref}\" instead of \"features\"")
        return features

    def _entities(self, data: dict[str, Any]) -> dict[str, list[Any]]:
        """The column-major entities, checked for shape; the reader checks keys needed and their types."""
        entities = data.get("entities")
        if entities is None:
            raise RequestError('the request has no entities: add "entities": {"<join key>": [values, ...]}')
        if not isinstance(entities, dict) or not entities:
            raise RequestError(f"entities must be a non-empty object of join key → list of values, "
                               f"got {_kind(entities) if not isinstance(entities, dict) else 'an empty object'}")
        length = None
        for key, values in entities.items():
            if key not in self.all_join_keys:
                raise RequestError(f"entities has '{key}', which is no entity's join key"
                                   f"{did_you_mean(key, self.all_join_keys)}")
            if not isinstance(values, list):
                raise RequestError(f"entities.{key} must be a list of values, got {_kind(values)}")
            if length is None:
                length, first = len(values), key
            elif len(values) != length:
                raise RequestError(f"entities lists differ in length: {first} has {length} value(s), "
                                   f"{key} has {len(values)}")
        if not length:
            raise RequestError("entities lists are empty: send at least one entity row")
        if length > MAX_ENTITY_ROWS:
            raise RequestError(f"{length} entity rows in one request; the limit is {MAX_ENTITY_ROWS}, "
                               "split the request or use get_historical_features")
        return entities


# ---- the response ----------------------------------------------------------------------------------------
_PLAIN_DTYPES = frozenset({"bool", "int32", "int64", "float32", "float64", "string"})
_EPOCH_Z = "1970-01-01T00:00:00Z"


class FeastEncoder:
    """``OnlineResponse.to_feast_json()`` as JSON bytes, without a Python call per value.

    When every requested feature is a plain scalar (numbers, strings, booleans: values are
    JSON as they are) and the event times are UTC, orjson writes the timestamps itself in
    the same ``2026-01-01T00:00:00Z`` form; at batch 100 that is about ten times faster
    than formatting each one in Python. Anything else (bytes, timestamps, arrays as
    values) goes through ``to_feast_json()``. tests/test_server.py checks the two agree.
    """

    def __init__(self, repo: FeatureRepo):
        self.repo = repo
        self._plain: dict[Any, bool] = {}

    def plain(self, features: str | list[str]) -> bool:
        key = features if isinstance(features, str) else tuple(features)
        found = self._plain.get(key)
        if found is None:
            found = all(
                dtype in _PLAIN_DTYPES
                for selection in self.repo.resolve_features(features)
                for name, dtype in _feature_dtypes(selection.view).items() if name in selection.features
            )
            if len(self._plain) < 1024:
                self._plain[key] = found
        return found

    def encode(self, response: Any, features: str | list[str]) -> bytes:
        import orjson

        if not self.plain(features):
            return orjson.dumps(response.to_feast_json())
        results = []
        for name in response.feature_names:
            stamps = response.event_timestamps[name]
            first = next((t for t in stamps if t is not None), None)
            if first is not None and (first.utcoffset() is None or first.utcoffset().total_seconds() != 0):
                return orjson.dumps(response.to_feast_json())
            results.append({"values": response.values[name], "statuses": response.statuses[name],
                            "event_timestamps": [_EPOCH_Z if t is None else t for t in stamps]})
        return orjson.dumps({"metadata": {"feature_names": response.feature_names}, "results": results},
                            option=orjson.OPT_UTC_Z | orjson.OPT_OMIT_MICROSECONDS)


def _feature_dtypes(view: Any) -> dict[str, str]:
    from featurehouse.join_plan import feature_dtypes

    return feature_dtypes(view)


# ---- the app ---------------------------------------------------------------------------------------------
class FeatureServer:
    """The ASGI app ``featurehouse serve`` runs: ``POST /get-online-features`` and ``GET /health``
    are answered here directly, everything else (catalog, OpenAPI) by the FastAPI app in ``api``.

    Measured on this machine with one worker, the same parse-and-answer work ran at about
    3,500 requests/s as a FastAPI route and 5,500-7,800 here: FastAPI's routing, request
    object and middleware layers cost more than reading a feature from Redis.
    """

    def __init__(self, api: FastAPI, answer: Any, health: bytes):
        self.api = api
        self.answer = answer
        self.health = health  # load balancers ask often: answered here too, from bytes made at start-up

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.api(scope, receive, send)
            return
        path, method = scope["path"], scope["method"]
        if path == "/health" and method == "GET":
            await self._send(send, 200, self.health)
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
        status, payload = self.answer(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        await self._send(send, status, payload)

    @staticmethod
    async def _send(send: Any, status: int, payload: bytes) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def create_app(
    repo_path: str | os.PathLike[str] = ".", target: str | None = None, profiles_dir: str | None = None
) -> FeatureServer:
    """The feature server's ASGI app for the repo at ``repo_path``; builds the store and reader now."""
    import orjson
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from featurehouse import __version__, catalog
    from featurehouse.online import OnlineReader
    from featurehouse.store import FeatureStore

    store = FeatureStore(repo_path, target=target, profiles_dir=profiles_dir)
    repo = store.repo
    parser = RequestParser(repo)
    encoder = FeastEncoder(repo)
    reader = OnlineReader(store)  # one per worker: its connection and per-feature-list plans are reused

    def json_response(body: Any, status: int = 200) -> Response:
        return Response(orjson.dumps(body), status_code=status, media_type="application/json")

    def error(status: int, message: str) -> Response:
        return json_response({"error": message}, status)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        reader.close()

    app = FastAPI(
        title=f"featurehouse feature server: {repo.config.project}",
        version=__version__,
        description="Online features (Feast-compatible POST /get-online-features) and the feature catalog.",
        lifespan=lifespan,
    )

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> Response:
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and detail == "Not Found":
            detail = "no such endpoint; see /docs for the API"
        elif exc.status_code == 405:
            detail = "method not allowed on this endpoint; see /docs for the API"
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
        responses={200: {"model": GetOnlineFeaturesResponse}, 400: {"model": ErrorBody},
                   503: {"model": ErrorBody, "description": "The online store cannot be reached."}},
        openapi_extra={"requestBody": {"required": True, "content": {
            "application/json": {"schema": GetOnlineFeaturesRequest.model_json_schema()}}}},
    )
    async def get_online_features(request: Request) -> Response:
        # documents the endpoint (and answers if the app is mounted without FeatureServer)
        status, payload = answer(await request.body())
        return Response(payload, status_code=status, media_type="application/json")

    def answer(body: bytes) -> tuple[int, bytes]:
        """Status and JSON bytes for one request body; never raises."""
        # The reader runs on the event loop on purpose: one connection and one thread per
        # worker, and a loopback read is shorter than a hop to a thread pool.
        try:
            features, entities, full = parser.parse(body)
            response = reader.read(features, entities, full)
            return 200, encoder.encode(response, features)
        except RequestError as exc:
            return 400, orjson.dumps({"error": str(exc)})
        except OnlineStoreError as exc:
            log.warning("online store error: %s", exc)
            return 503, orjson.dumps({"error": str(exc)})
        except FeaturehouseError as exc:
            log.warning("cannot serve request: %s", exc)
            return 500, orjson.dumps({"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a client must get JSON, the log gets the traceback
            log.exception("unexpected error while serving /get-online-features")
            return 500, orjson.dumps({"error": f"internal error ({type(exc).__name__}); the server log has the details"})

    health_body = {"status": "ok", "project": repo.config.project, "online_store": repo.config.online_store.type}

    @app.get("/health", summary="Liveness: the worker is up and has loaded the repo")
    async def health() -> Response:
        return json_response(health_body)

    def with_online_state(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [i["name"] for i in items if i.get("online")]
        if names:
            state = catalog.online_state(store, names)
            for item in items:
                if item["name"] in state:
                    item["online_store"] = {"type": repo.config.online_store.type, **state[item["name"]]}
        return items

    @app.get("/feature-views", summary="Every feature view, with schema, source, ttl, owner and tags")
    async def feature_views() -> Response:
        return json_response({"feature_views": [catalog.view_info(repo, n) for n in sorted(repo.feature_views)]})

    @app.get("/feature-views/{name}", summary="One feature view, with its online sync state",
             responses={404: {"model": ErrorBody}})
    def feature_view(name: str) -> Response:  # a thread: it asks the online store for its sync state
        if name not in repo.feature_views:
            return error(404, f"unknown feature view '{name}'{did_you_mean(name, repo.feature_views)}")
        return json_response(with_online_state([catalog.view_info(repo, name)])[0])

    @app.get("/feature-services", summary="Every feature service and the features it reads")
    async def feature_services() -> Response:
        return json_response(
            {"feature_services": [catalog.service_info(repo, n) for n in sorted(repo.feature_services)]})

    @app.get("/feature-services/{name}", summary="One feature service", responses={404: {"model": ErrorBody}})
    async def feature_service(name: str) -> Response:
        if name not in repo.feature_services:
            return error(404, f"unknown feature service '{name}'{did_you_mean(name, repo.feature_services)}")
        return json_response(catalog.service_info(repo, name))

    @app.get("/entities", summary="Every entity and its join keys")
    async def entities() -> Response:
        return json_response({"entities": [catalog.entity_info(repo, n) for n in sorted(repo.entities)]})

    return FeatureServer(app, answer, orjson.dumps(health_body))


def app_from_environment() -> FeatureServer:
    """The uvicorn factory: each worker process builds its own app from the serve command's settings."""
    return create_app(
        os.environ.get(ENV_REPO, "."), os.environ.get(ENV_TARGET) or None, os.environ.get(ENV_PROFILES_DIR) or None
    )


def serve(
    repo_path: str | os.PathLike[str],
    target: str | None = None,
    profiles_dir: str | None = None,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    workers: int = 1,
    access_log: bool = False,
    log_level: str = "info",
) -> None:
    """Run uvicorn with ``workers`` processes until interrupted."""
    import uvicorn

    os.environ[ENV_REPO] = str(Path(repo_path).resolve())
    os.environ[ENV_TARGET] = target or ""
    os.environ[ENV_PROFILES_DIR] = str(Path(profiles_dir).resolve()) if profiles_dir else ""
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
    )
