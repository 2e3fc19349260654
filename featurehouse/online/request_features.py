"""Request-time features online: the checked expressions evaluated in-process, per entity row.

Each expression tree (``featurehouse.spec.request_views.Node``) is compiled once into nested
Python closures that follow the SQL the warehouse runs (``featurehouse.compile.request_sql``):
NULL in gives NULL out, ``/`` is float division with NULL for a zero divisor, ``%`` keeps the
dividend's sign, AND/OR are three-valued, an integer result beyond int64 is an error (as in
DuckDB and Postgres), NaN equals NaN and orders above every number (as in both engines).
Why closures and not an embedded engine: docs/decisions/0024-request-time-evaluation.md.

``request_read`` is what ``OnlineReader.read`` calls when a feature list names request views:
it reads the feature views' features (those asked for and those the expressions use), then
evaluates the request features on them and on the request data.
"""

from __future__ import annotations

import math
import struct
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean
from featurehouse.spec.request_views import (
    BOOL,
    FLOAT,
    INT,
    INT64_MAX,
    INT64_MIN,
    STRING,
    TIMESTAMP,
    Node,
    RequestFeaturePlan,
    RequestJoinPlan,
    join_plan,
    nodes,
)

if TYPE_CHECKING:
    from featurehouse.spec.repo import FeatureRepo

Env = list[Any]
Fn = Callable[[Env], Any]
PRESENT = "PRESENT"


class EvaluationError(RequestError):
    """An expression failed on one row's values (an integer beyond int64, a float beyond float32)."""


class _Overflow(Exception):
    pass


def _int(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise _Overflow
    return value


def _key(value: float) -> tuple[int, float]:
    """Float order as the warehouses have it: NaN equals NaN and is above every number."""
    return (1, 0.0) if value != value else (0, value)


def _compare(op: str, family: str) -> Callable[[Any, Any], bool]:
    if family == FLOAT:
        table: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: _key(float(a)) == _key(float(b)),
            "<>": lambda a, b: _key(float(a)) != _key(float(b)),
            "<": lambda a, b: _key(float(a)) < _key(float(b)),
            "<=": lambda a, b: _key(float(a)) <= _key(float(b)),
            ">": lambda a, b: _key(float(a)) > _key(float(b)),
            ">=": lambda a, b: _key(float(a)) >= _key(float(b)),
        }
    else:
        table = {
            "=": lambda a, b: a == b,
            "<>": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
    return table[op]


def _identity(value: Any) -> Any:
    return value


def _to(node: Node, fn: Fn, family: str) -> Fn:
    """``fn`` giving ``family``: an integer meeting a float becomes a float."""
    if family == FLOAT and node.type == INT:
        return lambda env: None if (v := fn(env)) is None else float(v)
    return fn


def compile_tree(tree: Node, slot: Callable[[Node], int]) -> Fn:
    """A function of the row's input values (``env``, indexed by ``slot(node)``) giving the tree's value."""

    def build(node: Node) -> Fn:
        op, args = node.op, node.args
        if op in ("field", "ref"):
            index = slot(node)
            return lambda env: env[index]
        if op == "lit":
            value = node.value
            return lambda env: value
        if op == "neg":
            inner = build(args[0])
            if node.type == INT:
                return lambda env: None if (v := inner(env)) is None else _int(-v)
            return lambda env: None if (v := inner(env)) is None else -v
        if op in ("add", "sub", "mul"):
            left, right = (_to(a, build(a), node.type) for a in args)
            operation = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}[op]
            if node.type == INT:

                def integer(env: Env) -> Any:
                    a = left(env)
                    if a is None:
                        return None
                    b = right(env)
                    return None if b is None else _int(operation(a, b))

                return integer

            def number(env: Env) -> Any:
                a = left(env)
                if a is None:
                    return None
                b = right(env)
                return None if b is None else operation(a, b)

            return number
        if op == "div":
            left, right = build(args[0]), build(args[1])

            def divide(env: Env) -> Any:
                a, b = left(env), right(env)
                if a is None or b is None or b == 0:
                    return None
                return float(a) / float(b)

            return divide
        if op == "mod":
            left, right = build(args[0]), build(args[1])

            def modulo(env: Env) -> Any:
                a, b = left(env), right(env)
                if a is None or b is None or b == 0:
                    return None
                remainder = abs(a) % abs(b)
                return -remainder if a < 0 else remainder

            return modulo
        if op == "cmp":
            family = FLOAT if FLOAT in {a.type for a in args} else args[0].type
            left, right = build(args[0]), build(args[1])
            check = _compare(node.value, family)

            def compare(env: Env) -> Any:
                a, b = left(env), right(env)
                return None if a is None or b is None else check(a, b)

            return compare
        if op == "and":
            left, right = build(args[0]), build(args[1])

            def conjunction(env: Env) -> Any:
                a = left(env)
                if a is False:
                    return False
                b = right(env)
                if b is False:
                    return False
                return None if a is None or b is None else True

            return conjunction
        if op == "or":
            left, right = build(args[0]), build(args[1])

            def disjunction(env: Env) -> Any:
                a = left(env)
                if a is True:
                    return True
                b = right(env)
                if b is True:
                    return True
                return None if a is None or b is None else False

            return disjunction
        if op == "not":
            inner = build(args[0])
            return lambda env: None if (v := inner(env)) is None else not v
        if op == "isnull":
            inner = build(args[0])
            return lambda env: inner(env) is None
        if op == "case":
            pairs = [
                (build(args[i]), _to(args[i + 1], build(args[i + 1]), node.type)) for i in range(0, len(args) - 1, 2)
            ]
            default = _to(args[-1], build(args[-1]), node.type)

            def case(env: Env) -> Any:
                for condition, value in pairs:
                    if condition(env) is True:
                        return value(env)
                return default(env)

            return case
        if op == "coalesce":
            parts = [_to(a, build(a), node.type) for a in args]

            def coalesce(env: Env) -> Any:
                for part in parts:
                    value = part(env)
                    if value is not None:
                        return value
                return None

            return coalesce
        if op == "nullif":
            left, right = (_to(a, build(a), node.type) for a in args)
            equal = _compare("=", node.type)

            def nullif(env: Env) -> Any:
                a = left(env)
                if a is None:
                    return None
                b = right(env)
                return None if b is not None and equal(a, b) else a

            return nullif
        if op in ("least", "greatest"):
            parts = [_to(a, build(a), node.type) for a in args]
            order: Callable[[Any], Any] = _key if node.type == FLOAT else _identity
            pick = min if op == "least" else max

            def extreme(env: Env) -> Any:
                values = [v for v in (part(env) for part in parts) if v is not None]
                return pick(values, key=order) if values else None

            return extreme
        if op == "abs":
            inner = build(args[0])
            if node.type == INT:
                return lambda env: None if (v := inner(env)) is None else _int(abs(v))
            return lambda env: None if (v := inner(env)) is None else abs(v)
        if op in ("floor", "ceil"):
            inner = build(args[0])
            rounding = math.floor if op == "floor" else math.ceil

            def whole(env: Env) -> Any:
                v = inner(env)
                if v is None:
                    return None
                v = float(v)
                return float(rounding(v)) if math.isfinite(v) else v

            return whole
        if op == "length":
            inner = build(args[0])
            return lambda env: None if (v := inner(env)) is None else len(v)
        if op == "concat":
            left, right = build(args[0]), build(args[1])

            def concat(env: Env) -> Any:
                a, b = left(env), right(env)
                return None if a is None or b is None else a + b

            return concat
        if op == "cast":
            return _to(args[0], build(args[0]), node.value)
        raise AssertionError(f"unknown operation {op}")  # the checker builds only the ones above

    return build(tree)


def _float32(value: float) -> float:
    """``value`` rounded to float32, as CAST(x AS REAL) does; beyond float32 an error, as in the warehouses."""
    if math.isfinite(value) and abs(value) > 3.4028234663852886e38:
        raise _Overflow
    return float(struct.unpack("f", struct.pack("f", value))[0])


_STORE: dict[str, Callable[[Any], Any]] = {
    "int32": lambda v: v if -(1 << 31) <= v < (1 << 31) else _raise(),
    "int64": lambda v: v,
    "float32": lambda v: _float32(float(v)),
    "float64": float,
    "bool": lambda v: v,
    "string": lambda v: v,
    "timestamp": lambda v: v,
}


def _raise() -> Any:
    raise _Overflow


def compile_feature(feature: RequestFeaturePlan, slot: Callable[[Node], int], view: str) -> Fn:
    """The feature's function of ``env``: the expression's value in the declared dtype."""
    inner = compile_tree(feature.tree, slot)
    store = _STORE[feature.dtype]

    def evaluate(env: Env) -> Any:
        try:
            value = inner(env)
            return None if value is None else store(value)
        except _Overflow:
            raise EvaluationError(
                f"request feature '{view}:{feature.name}' = {feature.text}: the result is beyond "
                f"{feature.dtype if feature.dtype != 'float64' else 'int64'} for this row, which the warehouse "
                "refuses too"
            ) from None

    return evaluate


# ---- request values ------------------------------------------------------------------------------
def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def request_value(value: Any, dtype: str, where: str) -> Any:
    """A request field's value in its canonical Python type; RequestError naming ``where`` otherwise."""
    if value is None:
        return None
    if isinstance(value, float) and value != value and dtype in ("float32", "float64"):
        return value
    family = {"int32": INT, "int64": INT, "float32": FLOAT, "float64": FLOAT}.get(dtype, dtype)
    if family == INT and not isinstance(value, bool) and hasattr(value, "__index__"):
        number = value.__index__()
        if INT64_MIN <= number <= INT64_MAX:
            return number
    elif family == FLOAT and not isinstance(value, bool) and (isinstance(value, (int, float)) or _numpy_float(value)):
        return float(value)
    elif family == STRING and isinstance(value, str):
        return value
    elif family == BOOL and isinstance(value, bool):
        return value
    elif family == TIMESTAMP:
        if isinstance(value, datetime):
            return _utc(value)
        if hasattr(value, "to_pydatetime"):  # pandas
            return _utc(value.to_pydatetime())
        if isinstance(value, str):
            try:
                return _utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                pass
    text = repr(value) if not isinstance(value, (list, dict)) else f"a {type(value).__name__}"
    text = text if len(text) <= 60 else text[:60] + "…"
    raise RequestError(f"{where} must be {dtype}, got {text} ({type(value).__name__})")


def _numpy_float(value: Any) -> bool:
    return type(value).__module__ == "numpy" and hasattr(value, "is_integer")


def _feature_value(value: Any, family: str) -> Any:
    if family == TIMESTAMP and isinstance(value, datetime):
        return _utc(value)
    return value


# ---- reading -------------------------------------------------------------------------------------
class OnlinePlan:
    """How one feature list with request views is read: the inner read and the evaluation."""

    def __init__(self, repo: FeatureRepo, plan: RequestJoinPlan):
        self.plan = plan
        # the feature views' features, read with full names so that nothing clashes
        self.inner = [f"{s.view.name}:{f}" for s in plan.selections for f in s.features]
        hidden = set(plan.hidden)
        names = iter(plan.visible_names())
        self.visible = [
            (next(names), f"{s.view.name}__{f}")
            for s in plan.selections
            for f in s.features
            if (s.view.name, f) not in hidden
        ]
        self.fields = plan.fields()
        self.field_names = list(self.fields)
        refs: list[tuple[str, str]] = []
        for selection in plan.requests:
            for name in selection.features:
                for node in nodes(selection.plan.feature(name).tree):
                    if node.op == "ref" and node.value not in refs:
                        refs.append(node.value)
        self.ref_columns = [f"{v}__{f}" for v, f in refs]
        self.ref_families = [_family_of(repo, v, f) for v, f in refs]
        slots: dict[tuple[str, Any], int] = {("field", n): i for i, n in enumerate(self.field_names)}
        slots.update({("ref", r): len(self.field_names) + i for i, r in enumerate(refs)})

        def slot(node: Node) -> int:
            return slots[(node.op, node.value)]

        self.outputs: list[tuple[str, Fn]] = []
        for selection in plan.requests:
            for name in selection.features:
                function = compile_feature(selection.plan.feature(name), slot, selection.view.name)
                self.outputs.append((plan.request_prefix(selection) + name, function))

    def request_columns(self, entity_rows: Any, request_data: Any, n: int) -> list[list[Any]]:
        """One column per request field, from ``request_data`` (a dict of lists) or the entity rows."""
        columns = []
        for name in self.field_names:
            dtype = self.fields[name]
            if isinstance(request_data, Mapping) and name in request_data:
                raw = request_data[name]
                if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence):
                    raise RequestError(f"request_data['{name}'] must be a list of {n} values, got {type(raw).__name__}")
                raw = list(raw)
            elif isinstance(entity_rows, Mapping) and name in entity_rows:
                raw = list(entity_rows[name])
            elif (
                isinstance(entity_rows, Sequence)
                and entity_rows
                and all(isinstance(r, Mapping) and name in r for r in entity_rows)
            ):
                raw = [row[name] for row in entity_rows]
            else:
                sent = list(request_data) if isinstance(request_data, Mapping) else []
                if isinstance(entity_rows, Mapping):
                    sent += [str(k) for k in entity_rows]
                elif isinstance(entity_rows, Sequence) and entity_rows and isinstance(entity_rows[0], Mapping):
                    sent += [str(k) for k in entity_rows[0]]
                raise RequestError(
                    f"the request has no '{name}' ({dtype}), a request field of the requested request-time "
                    f"features{did_you_mean(name, sent)}; send it in request_data (the server's request_context) "
                    "with one value per entity row"
                )
            if len(raw) != n:
                raise RequestError(f"request field '{name}' has {len(raw)} values for {n} entity rows")
            columns.append(
                [request_value(v, dtype, f"request field '{name}', entity row {i}") for i, v in enumerate(raw)]
            )
        return columns


def _family_of(repo: FeatureRepo, view: str, feature: str) -> str:
    from featurehouse.spec.request_views import FAMILY

    for declared in repo.feature_views[view].features:
        if declared.name == feature:
            return FAMILY.get(declared.dtype, declared.dtype)
    return FLOAT


_lock = threading.Lock()
_plans: dict[tuple[int, Any, bool], OnlinePlan | None] = {}
_MAX_PLANS = 512


def online_plan(repo: FeatureRepo, features: Sequence[str] | str, full_feature_names: bool) -> OnlinePlan | None:
    """The request plan of a feature list, or None when it names no request view (cached)."""
    key = (id(repo), features if isinstance(features, str) else tuple(features), full_feature_names)
    if key in _plans:
        return _plans[key]
    plan = join_plan(repo, features if isinstance(features, str) else list(features), full_feature_names)
    found = OnlinePlan(repo, plan) if isinstance(plan, RequestJoinPlan) else None
    with _lock:
        if len(_plans) >= _MAX_PLANS:
            _plans.clear()
        _plans[key] = found
    return found


def evaluate(
    plan: OnlinePlan, response: Any, entity_rows: Any, request_data: Any
) -> tuple[list[str], dict[str, list[Any]], dict[str, list[str]], dict[str, list[Any]]]:
    """(names, values, statuses, event timestamps) of the answer, from the inner read's ``response``
    (None when the expressions read request fields only)."""
    if response is None:
        n = len(next(iter(entity_rows.values()), [])) if isinstance(entity_rows, Mapping) else len(entity_rows)
        response = _Empty(n)
    keys = response.feature_names[: len(response.feature_names) - len(plan.inner)]
    values: dict[str, list[Any]] = {k: response.values[k] for k in keys}
    statuses: dict[str, list[str]] = {k: response.statuses[k] for k in keys}
    stamps: dict[str, list[Any]] = {k: response.event_timestamps[k] for k in keys}
    n = len(response.values[response.feature_names[0]]) if response.feature_names else getattr(response, "n", 0)
    out = list(keys)
    for visible, inner in plan.visible:
        values[visible] = response.values[inner]
        statuses[visible] = response.statuses[inner]
        stamps[visible] = response.event_timestamps[inner]
        out.append(visible)
    inputs = plan.request_columns(entity_rows, request_data, n)
    for column, family in zip(plan.ref_columns, plan.ref_families):
        read = response.values[column]
        inputs.append([_feature_value(v, family) for v in read] if family == TIMESTAMP else read)
    rows = [list(row) for row in zip(*inputs)] if inputs else [[] for _ in range(n)]
    for name, function in plan.outputs:
        values[name] = [function(env) for env in rows]
        statuses[name] = [PRESENT] * n
        stamps[name] = [None] * n
        out.append(name)
    return out, values, statuses, stamps


class _Empty:
    """The inner read of a feature list whose expressions read no feature view: nothing but a row count."""

    def __init__(self, n: int):
        self.n = n
        self.feature_names: list[str] = []
        self.values: dict[str, list[Any]] = {}
        self.statuses: dict[str, list[str]] = {}
        self.event_timestamps: dict[str, list[Any]] = {}


def merge_request_context(context: Any, entities: dict[str, list[Any]], max_name: int) -> dict[str, list[Any]]:
    """The server's ``request_context`` (field -> one value per entity row) joined to the entity columns."""
    if not isinstance(context, Mapping):
        raise RequestError(
            'request_context must be an object of request field -> list of values, such as {"amount": [12.5]}, '
            f"not {type(context).__name__}"
        )
    n = len(next(iter(entities.values()))) if entities else 0
    merged = dict(entities)
    for name, values in context.items():
        shown_name = name if len(name) <= max_name else name[:40] + "…"
        if not isinstance(values, list):
            raise RequestError(
                f"request_context.{shown_name} must be a list of {n} values, got {type(values).__name__}"
            )
        if len(values) != n:
            raise RequestError(f"request_context.{shown_name} has {len(values)} values for {n} entity rows")
        if name in entities:
            raise RequestError(f"'{shown_name}' is both in entities and in request_context; send it once")
        merged[name] = values
    return merged
