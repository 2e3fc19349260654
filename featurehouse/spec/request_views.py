"""Request views: their expressions parsed by sqlglot and checked against an allow-list.

A request view's features are SQL expressions over its request fields (sent with each
online request, spine columns offline) and features of other views (``view__feature``).
Each expression is turned into a small typed tree (:class:`Node`) that only holds
constructs whose result is the same in DuckDB, Postgres and Python: the compiler writes
SQL from it (``featurehouse.compile.request_sql``) and the online reader evaluates it
(``featurehouse.online.request_features``). Everything else is one SpecError naming the
file, line, view, feature and construct. The pinned semantics are in
docs/decisions/0025-request-expression-semantics.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from featurehouse.errors import RequestError, did_you_mean, excerpt
from featurehouse.spec.outputs import JoinPlan

if TYPE_CHECKING:
    from sqlglot import exp

    from featurehouse.spec.model import FeatureView, RequestView
    from featurehouse.spec.repo import FeatureRepo, ViewSelection

# the type families expressions compute in (every int is int64, every float float64)
INT, FLOAT, STRING, BOOL, TIMESTAMP, NULL = "int", "float", "string", "bool", "timestamp", "null"
FAMILY = {
    "bool": BOOL,
    "int32": INT,
    "int64": INT,
    "float32": FLOAT,
    "float64": FLOAT,
    "string": STRING,
    "timestamp": TIMESTAMP,
}
# which declared dtypes a family may be stored as
STORABLE = {
    INT: ("int32", "int64", "float32", "float64"),
    FLOAT: ("float32", "float64"),
    STRING: ("string",),
    BOOL: ("bool",),
    TIMESTAMP: ("timestamp",),
}
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
REF_SEPARATOR = "__"

# what users may write, for the error messages
ACCEPTED = (
    "+ - * / % (integers), comparisons (= <> < <= > >=), AND OR NOT, IS [NOT] NULL, BETWEEN, IN (...), "
    "CASE WHEN, COALESCE, NULLIF, ABS, LEAST, GREATEST, FLOOR, CEIL, LENGTH, || (strings), "
    "CAST to bigint, double, text, boolean or timestamp"
)
# functions users may know from SQL that are refused on purpose, with the reason
_REFUSED_FUNCTIONS = {
    "ROUND": "rounds halves differently in DuckDB and Postgres",
    "LOWER": "changes case by the database's locale",
    "UPPER": "changes case by the database's locale",
    "CONCAT": "skips NULLs in some engines; use || (NULL if either side is NULL)",
    "NOW": "is not the same instant offline and online",
    "CURRENT_TIMESTAMP": "is not the same instant offline and online",
    "RANDOM": "gives another value on each side",
}
_CAST_TARGETS = {
    "BIGINT": INT,
    "INT": INT,
    "INTEGER": INT,
    "DOUBLE": FLOAT,
    "DOUBLE PRECISION": FLOAT,
    "FLOAT8": FLOAT,
    "TEXT": STRING,
    "VARCHAR": STRING,
    "BOOLEAN": BOOL,
    "TIMESTAMP": TIMESTAMP,
}
# what a cast may convert from (only conversions that are exact in every engine)
_CAST_FROM = {INT: (INT,), FLOAT: (INT, FLOAT), STRING: (STRING,), BOOL: (BOOL,), TIMESTAMP: (TIMESTAMP,)}
COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")


@dataclass(frozen=True)
class Node:
    """One checked, typed operation. ``op`` is one of: field, ref, lit, neg, add, sub, mul, div,
    mod, cmp, and, or, not, isnull, case, coalesce, nullif, abs, least, greatest, floor, ceil,
    length, concat, cast. ``value``: the field name, (view, feature), the literal, the
    comparison operator or the cast's family."""

    op: str
    type: str
    args: tuple[Node, ...] = ()
    value: Any = None


@dataclass(frozen=True)
class RequestFeaturePlan:
    """One checked feature of a request view."""

    name: str
    dtype: str
    tree: Node
    text: str


@dataclass
class RequestPlan:
    """A request view's checked features, and what they read."""

    view: str
    fields: dict[str, str]  # request field -> dtype
    refs: list[tuple[str, str]]  # (view, feature) read, in first-use order
    features: list[RequestFeaturePlan] = field(default_factory=list)

    def feature(self, name: str) -> RequestFeaturePlan:
        """The checked feature ``name``."""
        return next(f for f in self.features if f.name == name)


# ---- checking --------------------------------------------------------------------------------
class _Refused(Exception):
    """An expression outside the allow-list; the message completes 'expression ... '."""


def validate(repo: FeatureRepo) -> None:
    """Check every request view of ``repo`` and keep its plan on the view (``compiled``)."""
    for view in repo.request_views.values():
        view._compiled = _plan(repo, view)


def compiled(repo: FeatureRepo, view: RequestView) -> RequestPlan:
    """The checked plan of ``view`` (built when the repo was loaded)."""
    plan: RequestPlan | None = view._compiled
    if plan is None:
        plan = view._compiled = _plan(repo, view)
    return plan


def _plan(repo: FeatureRepo, view: RequestView) -> RequestPlan:
    fields: dict[str, str] = {}
    for i, request_field in enumerate(view.request):
        problem = None
        if request_field.dtype not in FAMILY:
            problem = f"has dtype {request_field.dtype}; request fields are one of {', '.join(FAMILY)}"
        elif REF_SEPARATOR in request_field.name:
            problem = f"may not contain '{REF_SEPARATOR}', which names features of other views ('view__feature')"
        elif request_field.name in fields:
            problem = "is declared twice"
        if problem:
            raise repo.spec_error(
                "request_views", view.name, ("request", i, "name"), f"request field '{request_field.name}' {problem}"
            )
        fields[request_field.name] = request_field.dtype
    plan = RequestPlan(view.name, fields, [])
    names: set[str] = set()
    for i, feature in enumerate(view.features):
        if feature.name.lower() in names:
            raise repo.spec_error(
                "request_views", view.name, ("schema", i, "name"), "is declared twice", feature=feature.name
            )
        names.add(feature.name.lower())
        try:
            tree = _check_text(repo, plan, feature.expression)
            if feature.dtype not in FAMILY:
                raise _Refused(f"cannot give dtype {feature.dtype}; request features are one of {', '.join(FAMILY)}")
            if tree.type != NULL and feature.dtype not in STORABLE[tree.type]:
                raise _Refused(f"gives {_TYPE_WORDS[tree.type]}, which dtype {feature.dtype} cannot hold")
        except _Refused as refused:
            where = ("schema", i, "expression")
            message = f"expression {excerpt(feature.expression)} {refused}"
            raise repo.spec_error("request_views", view.name, where, message, feature=feature.name) from None
        plan.features.append(RequestFeaturePlan(feature.name, feature.dtype, tree, feature.expression))
    return plan


_TYPE_WORDS = {
    INT: "an integer",
    FLOAT: "a float",
    STRING: "a string",
    BOOL: "a boolean",
    TIMESTAMP: "a timestamp",
    NULL: "NULL",
}


def _check_text(repo: FeatureRepo, plan: RequestPlan, text: str) -> Node:
    import sqlglot

    if not text.strip():
        raise _Refused("is empty: write one SQL expression, such as 'amount / nullif(view__feature, 0)'")
    try:
        statements = [s for s in sqlglot.parse(text) if s is not None]
    except sqlglot.errors.SqlglotError as error:
        details = getattr(error, "errors", None) or [{}]
        column = details[0].get("col")
        raise _Refused(f"is not valid SQL{f' (column {column})' if column else ''}") from None
    if len(statements) != 1:
        raise _Refused(f"must be one expression, not {len(statements)} statements")
    return _Checker(repo, plan).check(statements[0])


class _Checker:
    def __init__(self, repo: FeatureRepo, plan: RequestPlan):
        self.repo = repo
        self.plan = plan

    # names --------------------------------------------------------------------------------
    def names(self) -> list[str]:
        refs = [
            f"{view.name}{REF_SEPARATOR}{name}"
            for view in self.repo.feature_views.values()
            for name in view.feature_names
        ]
        return [*self.plan.fields, *refs]

    def column(self, node: exp.Column) -> Node:
        if node.table:
            raise _Refused(
                f"uses the qualified column '{node.sql()}'; write request fields by name and features "
                "of other views as 'view__feature'"
            )
        name = node.name
        if name in self.plan.fields:
            return Node("field", FAMILY[self.plan.fields[name]], value=name)
        view_name, separator, _ = name.partition(REF_SEPARATOR)
        if view_name in self.repo.request_views and separator:
            raise _Refused(f"uses '{name}', a feature of request view '{view_name}'; request views cannot read others")
        raise _Refused(
            f"uses unknown name '{name}'{did_you_mean(name, self.names())}; write a request field of the "
            "view or a feature of another view as 'view__feature'"
        )

    # the tree -----------------------------------------------------------------------------
    def check(self, node: exp.Expr) -> Node:
        from sqlglot import exp

        if isinstance(node, exp.Paren):
            return self.check(node.this)
        if isinstance(node, exp.Column):
            return self.ref_or_field(node)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return Node("lit", STRING, value=node.this)
            text = node.this
            if node.is_int:
                value = int(text)
                if not INT64_MIN <= value <= INT64_MAX:
                    raise _Refused(f"has the integer {excerpt(text)}, outside int64")
                return Node("lit", INT, value=value)
            number = float(text)
            if not math.isfinite(number):
                raise _Refused(f"has the number {excerpt(text)}, which is not finite")
            return Node("lit", FLOAT, value=number)
        if isinstance(node, exp.Boolean):
            return Node("lit", BOOL, value=bool(node.this))
        if isinstance(node, exp.Null):
            return Node("lit", NULL, value=None)
        if isinstance(node, exp.Neg):
            inner = self.numeric(node.this, "unary -")
            return Node("neg", inner.type, (inner,))
        arithmetic = {exp.Add: "add", exp.Sub: "sub", exp.Mul: "mul"}
        for kind, op in arithmetic.items():
            if type(node) is kind:
                left, right = self.numeric(node.this, op), self.numeric(node.expression, op)
                return Node(op, INT if left.type in (INT, NULL) and right.type in (INT, NULL) else FLOAT, (left, right))
        if isinstance(node, exp.Div):
            return Node("div", FLOAT, (self.numeric(node.this, "/"), self.numeric(node.expression, "/")))
        if isinstance(node, exp.Mod):
            left, right = self.check(node.this), self.check(node.expression)
            if left.type not in (INT, NULL) or right.type not in (INT, NULL):
                raise _Refused("uses % on a float; % takes integers (Postgres has no float remainder)")
            return Node("mod", INT, (left, right))
        comparisons = {exp.EQ: "=", exp.NEQ: "<>", exp.LT: "<", exp.LTE: "<=", exp.GT: ">", exp.GTE: ">="}
        for kind, op in comparisons.items():
            if type(node) is kind:
                return self.comparison(op, self.check(node.this), self.check(node.expression))
        if isinstance(node, (exp.And, exp.Or)):
            args = (self.boolean(node.this), self.boolean(node.expression))
            return Node("and" if isinstance(node, exp.And) else "or", BOOL, args)
        if isinstance(node, exp.Not):
            return Node("not", BOOL, (self.boolean(node.this),))
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise _Refused(f"uses '{node.sql()}'; IS is accepted only as IS NULL / IS NOT NULL")
            return Node("isnull", BOOL, (self.check(node.this),))
        if isinstance(node, exp.Between):
            tested = self.check(node.this)
            low = self.comparison(">=", tested, self.check(node.args["low"]))
            high = self.comparison("<=", tested, self.check(node.args["high"]))
            return Node("and", BOOL, (low, high))
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise _Refused("uses IN over a subquery; list the values: x IN (1, 2, 3)")
            member = self.check(node.this)
            options = [self.comparison("=", member, self.check(option)) for option in node.expressions]
            if not options:
                raise _Refused("uses an empty IN list")
            result = options[0]
            for option in options[1:]:
                result = Node("or", BOOL, (result, option))
            return result
        if isinstance(node, exp.Case):
            return self.case(node)
        if isinstance(node, exp.Coalesce):
            parts = [self.check(node.this), *(self.check(e) for e in node.expressions)]
            return Node("coalesce", self.unify(parts, "COALESCE"), tuple(parts))
        if isinstance(node, exp.Nullif):
            first, second = self.check(node.this), self.check(node.expression)
            self.comparison("=", first, second)  # checks the two are comparable
            # the engines give NULLIF the common type of both arguments (an integer and a float: a float)
            return Node("nullif", self.unify([first, second], "NULLIF"), (first, second))
        if isinstance(node, (exp.Least, exp.Greatest)):
            extremes = [self.check(node.this), *(self.check(e) for e in node.expressions)]
            function = "least" if isinstance(node, exp.Least) else "greatest"
            family = self.unify(extremes, function.upper())
            if family == BOOL:
                raise _Refused(f"uses {function.upper()} on booleans; compare numbers, strings or timestamps")
            if family == STRING:
                raise _Refused(f"uses {function.upper()} on strings, which engines order by their collation")
            return Node(function, family, tuple(extremes))
        if isinstance(node, exp.Abs):
            inner = self.numeric(node.this, "ABS")
            return Node("abs", inner.type, (inner,))
        if isinstance(node, (exp.Floor, exp.Ceil)):
            if node.args.get("decimals") is not None:
                raise _Refused(f"uses {node.key.upper()} with a number of decimals; write {node.key.upper()}(x)")
            inner = self.numeric(node.this, node.key.upper())
            return Node(node.key, FLOAT, (inner,))
        if isinstance(node, exp.Length):
            inner = self.check(node.this)
            if inner.type not in (STRING, NULL):
                raise _Refused(f"uses LENGTH on {_TYPE_WORDS[inner.type]}; LENGTH takes a string")
            return Node("length", INT, (inner,))
        if isinstance(node, exp.DPipe):
            left, right = self.check(node.this), self.check(node.expression)
            for side in (left, right):
                if side.type not in (STRING, NULL):
                    raise _Refused(f"uses || on {_TYPE_WORDS[side.type]}; || joins strings (CAST numbers first)")
            return Node("concat", STRING, (left, right))
        if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
            return self.cast(node)
        raise _Refused(self.refusal(node))

    def ref_or_field(self, node: exp.Column) -> Node:
        name = node.name
        view_name, separator, feature = name.partition(REF_SEPARATOR)
        view = self.repo.feature_views.get(view_name) if separator else None
        if not node.table and name not in self.plan.fields and view is not None and feature in view.feature_names:
            dtype = _feature_dtype(view, feature)
            if dtype not in FAMILY:
                raise _Refused(f"uses '{name}', of dtype {dtype}, which request-time expressions cannot read")
            if (view.name, feature) not in self.plan.refs:
                self.plan.refs.append((view.name, feature))
            return Node("ref", FAMILY[dtype], value=(view.name, feature))
        return self.column(node)

    def refusal(self, node: exp.Expr) -> str:
        from sqlglot import exp

        if isinstance(node, (exp.Query, exp.Subquery)):
            return "may not contain a subquery: it is evaluated for one row at a time"
        if isinstance(node, exp.AggFunc):
            return f"uses the aggregate function {node.sql_name()}(); use an aggregation view for windows"
        if isinstance(node, exp.Window):
            return "uses a window function; use an aggregation view for windows"
        if isinstance(node, exp.Func):
            name = node.name.upper() if isinstance(node, exp.Anonymous) else node.sql_name().upper()
            reason = _REFUSED_FUNCTIONS.get(name, "is not evaluated identically offline and online")
            known = [
                "ABS",
                "CEIL",
                "COALESCE",
                "FLOOR",
                "GREATEST",
                "LEAST",
                "LENGTH",
                "NULLIF",
            ]
            hint = "" if name in _REFUSED_FUNCTIONS else did_you_mean(name, known)
            return f"uses the function {name}(), which {reason}{hint}; request-time features accept {ACCEPTED}"
        label = type(node).__name__
        try:
            label = excerpt(node.sql(), 40)
        except Exception:  # sqlglot may not print every tree; the class name will do
            pass
        return (
            f"uses {label}, which is not evaluated identically offline and online; "
            f"request-time features accept {ACCEPTED}"
        )

    def numeric(self, node: exp.Expr, what: str) -> Node:
        checked = self.check(node)
        if checked.type not in (INT, FLOAT, NULL):
            raise _Refused(f"uses {what} on {_TYPE_WORDS[checked.type]}; it takes numbers")
        return checked

    def boolean(self, node: exp.Expr) -> Node:
        checked = self.check(node)
        if checked.type not in (BOOL, NULL):
            raise _Refused(f"uses {_TYPE_WORDS[checked.type]} as a condition; write a comparison such as x > 0")
        return checked

    def comparison(self, op: str, left: Node, right: Node) -> Node:
        kinds = {left.type, right.type} - {NULL}
        if len(kinds) > 1 and kinds != {INT, FLOAT}:
            words = " and ".join(_TYPE_WORDS[k] for k in sorted(kinds))
            raise _Refused(f"compares {words}; compare values of one kind (CAST first)")
        if op not in ("=", "<>") and kinds & {BOOL, STRING}:
            kind = (kinds & {BOOL, STRING}).pop()
            raise _Refused(
                f"orders {_TYPE_WORDS[kind]}s with {op}; engines order them by their collation, so only = and <> "
                "are accepted"
            )
        return Node("cmp", BOOL, (left, right), op)

    def unify(self, args: list[Node], what: str) -> str:
        kinds = {a.type for a in args} - {NULL}
        if not kinds:
            return NULL
        if kinds == {INT, FLOAT}:
            return FLOAT
        if len(kinds) > 1:
            words = " and ".join(_TYPE_WORDS[k] for k in sorted(kinds))
            raise _Refused(f"mixes {words} in {what}; give every branch one kind (CAST first)")
        return kinds.pop()

    def case(self, node: exp.Case) -> Node:
        subject = node.args.get("this")
        args: list[Node] = []
        values: list[Node] = []
        for branch in node.args.get("ifs") or []:
            if subject is not None:
                condition = self.comparison("=", self.check(subject), self.check(branch.this))
            else:
                condition = self.boolean(branch.this)
            value = self.check(branch.args["true"])
            args += [condition, value]
            values.append(value)
        default = node.args.get("default")
        other = self.check(default) if default is not None else Node("lit", NULL, value=None)
        values.append(other)
        kind = self.unify(values, "CASE")
        return Node("case", kind, (*args, other))

    def cast(self, node: exp.Cast) -> Node:
        target = node.to.sql(dialect="postgres").upper()
        family = _CAST_TARGETS.get(target)
        if family is None:
            choices = ", ".join(sorted({t.lower() for t in _CAST_TARGETS}))
            raise _Refused(f"casts to {target.lower()}; request-time features cast to {choices}")
        inner = self.check(node.this)
        if inner.type != NULL and inner.type not in _CAST_FROM[family]:
            raise _Refused(
                f"casts {_TYPE_WORDS[inner.type]} to {target.lower()}, a conversion engines do not all do alike"
            )
        return Node("cast", family, (inner,), family)


# ---- what a feature list means -------------------------------------------------------------------
@dataclass(frozen=True)
class RequestSelection:
    """Some features of one request view, as requested."""

    view: RequestView
    plan: RequestPlan
    features: tuple[str, ...]


def split_refs(repo: FeatureRepo, features: str | list[str] | tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(refs of feature views, refs of request views): a service name expanded, order kept."""
    if isinstance(features, str):
        if features in repo.feature_services:
            return split_refs(repo, repo.feature_services[features].features)
        if features not in repo.request_views and features not in repo.feature_views and ":" not in features:
            repo.resolve_features(features)  # raises: unknown view or service, with "did you mean"
        features = [features]
    regular: list[str] = []
    requested: list[str] = []
    for ref in features:
        name = ref.partition(":")[0] if isinstance(ref, str) else None
        (requested if name in repo.request_views else regular).append(ref)
    return regular, requested


def request_selections(repo: FeatureRepo, refs: list[str]) -> list[RequestSelection]:
    """``view:feature`` / ``view`` refs of request views as selections (unknown features: RequestError)."""
    chosen: dict[str, list[str]] = {}
    for ref in refs:
        view_name, _, feature = ref.partition(":")
        view = repo.request_views[view_name]
        if not feature:
            names = view.feature_names
        elif feature in view.feature_names:
            names = [feature]
        else:
            raise RequestError(
                f"request view '{view_name}' has no feature '{feature}'{did_you_mean(feature, view.feature_names)}"
            )
        bucket = chosen.setdefault(view_name, [])
        bucket += [n for n in names if n not in bucket]
    return [
        RequestSelection(repo.request_views[v], compiled(repo, repo.request_views[v]), tuple(n))
        for v, n in chosen.items()
    ]


def regular_selections(repo: FeatureRepo, features: str | list[str] | tuple[str, ...]) -> list[ViewSelection]:
    """The feature-view selections of a feature list; request-view refs are checked and left out."""
    regular, requested = split_refs(repo, features)
    for ref in requested:
        view_name, _, feature = ref.partition(":")
        names = repo.request_views[view_name].feature_names
        if feature and feature not in names:
            raise RequestError(f"request view '{view_name}' has no feature '{feature}'{did_you_mean(feature, names)}")
    if not regular:
        return []
    return repo.resolve_features(regular)


@dataclass(frozen=True)
class RequestJoinPlan(JoinPlan):
    """A join plan whose feature list names request views.

    ``selections`` are what the point-in-time join reads: the requested features of feature
    views and the features the expressions read (``hidden``); ``output_names()`` are what
    the caller asked for: the feature views' features, then the request views'.
    """

    requests: tuple[RequestSelection, ...] = ()
    hidden: tuple[tuple[str, str], ...] = ()  # (view, feature) read only for the expressions
    # views the expressions read: the join names their columns 'view__feature' whatever
    # full_feature_names says, so that they cannot clash with the spine's columns (a request field
    # 'city' beside a feature 'city'); their requested features are renamed around the join
    prefixed: tuple[str, ...] = ()

    def prefix(self, view: FeatureView) -> str:
        """``view__`` with full feature names or for a view only the expressions read, else nothing."""
        return f"{view.name}__" if self.full_feature_names or view.name in self.prefixed else ""

    def visible_columns(self) -> list[tuple[str, str]]:
        """(the join's column, the caller's name) of each requested feature of a feature view."""
        hidden = set(self.hidden)
        outer = "{}__" if self.full_feature_names else ""
        return [
            (self.prefix(s.view) + f, outer.format(s.view.name) + f)
            for s in self.selections
            for f in s.features
            if (s.view.name, f) not in hidden
        ]

    def visible_names(self) -> list[str]:
        """The requested features of feature views, as the caller gets them."""
        return [name for _, name in self.visible_columns()]

    def request_names(self) -> list[str]:
        """The output names of the request views' features."""
        return [self.request_prefix(r) + f for r in self.requests for f in r.features]

    def request_prefix(self, selection: RequestSelection) -> str:
        """``view__`` with full feature names, else nothing."""
        return f"{selection.view.name}__" if self.full_feature_names else ""

    def output_names(self) -> list[str]:
        """What the caller gets: the feature views' features, then the request views'."""
        return self.visible_names() + self.request_names()

    def fields(self) -> dict[str, str]:
        """Every request field the requested request views read, with its dtype."""
        out: dict[str, str] = {}
        for selection in self.requests:
            used = {
                n.value for f in selection.features for n in nodes(selection.plan.feature(f).tree) if n.op == "field"
            }
            for name, dtype in selection.plan.fields.items():
                if name in used and out.setdefault(name, dtype) != dtype:
                    raise RequestError(
                        f"request field '{name}' is {out[name]} in one requested request view and {dtype} in "
                        f"'{selection.view.name}'; request them separately"
                    )
        return out

    def column(self, view: str, feature: str) -> str:
        """The join's output column of ``view``'s ``feature``."""
        selection = next(s for s in self.selections if s.view.name == view)
        return self.prefix(selection.view) + feature


def join_plan(
    repo: FeatureRepo, features: str | list[str] | tuple[str, ...], full_feature_names: bool
) -> JoinPlan | RequestJoinPlan:
    """The join plan of a feature list: a RequestJoinPlan when it names request views."""
    if not repo.request_views:
        return JoinPlan(tuple(repo.resolve_features(features)), full_feature_names)
    regular, requested = split_refs(repo, features)
    if not requested:
        return JoinPlan(tuple(repo.resolve_features(features)), full_feature_names)
    selections = {s.view.name: list(s.features) for s in (repo.resolve_features(regular) if regular else [])}
    requests = request_selections(repo, requested)
    hidden: list[tuple[str, str]] = []
    for request in requests:
        for name in request.features:
            for view, feature in _refs_of(request.plan.feature(name).tree):
                chosen = selections.setdefault(view, [])
                if feature not in chosen:
                    chosen.append(feature)
                    hidden.append((view, feature))
    # the same selections resolve_features gives (views in order of first mention, features as asked)
    refs = [f"{view}:{feature}" for view, chosen in selections.items() for feature in chosen]
    plan = RequestJoinPlan(
        tuple(repo.resolve_features(refs)) if refs else (),
        full_feature_names,
        tuple(requests),
        tuple(hidden),
        tuple(dict.fromkeys(v for v, _ in hidden)),
    )
    outputs = [n.lower() for n in plan.output_names()]
    for name in plan.output_names():
        if outputs.count(name.lower()) > 1:
            raise RequestError(
                f"feature '{name}' is requested from two views (a request view or feature view each); "
                "ask for full_feature_names=True to get 'view__feature' columns"
            )
    plan.fields()  # one dtype per field
    return plan


def _feature_dtype(view: FeatureView, feature: str) -> str:
    """The dtype of a feature of ``view``; an aggregation's count is int64, its other functions float64
    (as featurehouse.plan.aggregations.output_dtype says)."""
    for declared in view.features:
        if declared.name == feature:
            return declared.dtype
    aggregation = next(a for a in view.aggregations if a.output_name == feature)
    return "int64" if aggregation.function == "count" else "float64"


def _refs_of(node: Node) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    if node.op == "ref":
        found.append(node.value)
    for arg in node.args:
        found += [r for r in _refs_of(arg) if r not in found]
    return found


def nodes(node: Node) -> list[Node]:
    """``node`` and every node below it."""
    return [node, *(n for arg in node.args for n in nodes(arg))]
